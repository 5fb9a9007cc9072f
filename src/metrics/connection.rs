//! [`ConnectionUse`]: how one request used its connection, and which side lost a request
//! that got no response ([`Delivery`]).

use std::time::Duration;

/// How one request used its connection: new or reused, and how much of the request and the
/// response crossed it. Says which side lost a request that got no response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionUse {
    /// Whether the connection had carried earlier requests.
    pub reused: bool,
    /// How long the connection had been idle before this request (zero when new).
    pub idle_before: Duration,
    /// How many requests the connection had carried before this one.
    pub requests_before: u32,
    /// Whether the connection was established (TCP, TLS, HTTP/1 handshake).
    pub connected: bool,
    /// Request bytes handed to the operating system (head and body; TLS records over https).
    pub request_bytes: u64,
    /// Whether the request was written whole.
    pub request_written: bool,
    /// Response bytes received while this request was in flight.
    pub response_bytes: u64,
    /// When the request first went on a reused connection that closed before a byte of it
    /// was written, and was then sent once more on a new connection: why the first try
    /// failed.
    pub moved_from_reused: Option<String>,
}

/// How much of a request reached the server's side of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Not a byte: the server never had it.
    Never,
    /// Part of it (the server stopped reading, or the connection broke mid-request).
    Partly,
    /// All of it: the server had it.
    Whole,
}

impl ConnectionUse {
    /// How much of the request was written.
    pub fn delivery(&self) -> Delivery {
        if self.request_written {
            Delivery::Whole
        } else if self.request_bytes > 0 {
            Delivery::Partly
        } else {
            Delivery::Never
        }
    }

    /// The connection in words: `a new connection`, or `a connection reused after 4.1 s idle
    /// (its 7th request)`.
    pub fn describe_connection(&self) -> String {
        if !self.reused {
            return "a new connection".to_owned();
        }
        let nth = self.requests_before.saturating_add(1);
        format!(
            "a connection reused after {:.1} s idle (its {nth}{} request)",
            self.idle_before.as_secs_f64(),
            ordinal_suffix(nth)
        )
    }

    /// Which side lost a request that got no (complete) response, in words; `closed` when
    /// the connection closed (or was reset) rather than staying silent.
    pub fn verdict(&self, closed: bool) -> String {
        let conn = self.describe_connection();
        let received = match self.response_bytes {
            0 => "no response byte".to_owned(),
            n => format!("{n} response bytes"),
        };
        match self.delivery() {
            Delivery::Whole if closed && self.response_bytes == 0 && self.reused => format!(
                "a request written whole on {conn}, {received}: the server had it and closed \
                 the connection without answering (a keep-alive close crossing the request \
                 looks like this: such a server drops the request unread)"
            ),
            Delivery::Whole if closed && self.response_bytes == 0 => format!(
                "a request written whole on {conn}, {received}: the server had it and closed \
                 the connection without answering"
            ),
            Delivery::Whole => {
                format!("a request written whole on {conn}, {received}: the server had it")
            }
            Delivery::Partly => format!(
                "a request written only in part ({} bytes) on {conn}, {received}: the server \
                 had part of it",
                self.request_bytes
            ),
            Delivery::Never if !self.connected => {
                "no connection was established, the request was never written: the server \
                 never had it"
                    .to_owned()
            }
            Delivery::Never => {
                format!("a request never written on {conn}, {received}: the server never had it")
            }
        }
    }
}

fn ordinal_suffix(n: u32) -> &'static str {
    match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_use_says_which_side_had_the_request() {
        let mut u = ConnectionUse {
            reused: true,
            idle_before: Duration::from_millis(4_120),
            requests_before: 6,
            connected: true,
            request_bytes: 900,
            request_written: true,
            ..ConnectionUse::default()
        };
        assert_eq!(
            u.verdict(false),
            "a request written whole on a connection reused after 4.1 s idle (its 7th \
             request), no response byte: the server had it"
        );
        u.request_written = false;
        assert_eq!(u.delivery(), Delivery::Partly);
        assert!(u.verdict(false).ends_with("the server had part of it"));
        u.request_bytes = 0;
        assert_eq!(u.delivery(), Delivery::Never);
        assert!(u.verdict(true).ends_with("the server never had it"));
        let nths: Vec<String> = [0, 1, 2, 10, 11, 20, 22, 102, 110]
            .iter()
            .map(|&before| {
                ConnectionUse {
                    reused: true,
                    requests_before: before,
                    ..ConnectionUse::default()
                }
                .describe_connection()
            })
            .map(|d| d.rsplit("(its ").next().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            nths,
            [
                "1st request)",
                "2nd request)",
                "3rd request)",
                "11th request)",
                "12th request)",
                "21st request)",
                "23rd request)",
                "103rd request)",
                "111th request)"
            ]
        );
    }
}
