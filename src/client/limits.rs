//! [`ResponseLimits`]: how much of a response the harness reads and holds before it gives up
//! on the response, whatever the server sends.
//!
//! A server under test may be broken or hostile: headers that never end, a body or an event
//! far larger than any reply, a stream that never stops or stalls. Each bound below turns such
//! a response into a failed request of a named class with a detail saying which bound ended
//! it; the request timeout stays the outer bound of every exchange. With these bounds one
//! request in flight holds at most `head_bytes + max(body_bytes, event_bytes + text_limit)`
//! bytes of response, and a worker is never held longer than the request timeout.

use std::time::Duration;

use crate::Error;

/// Bounds on what one response may make the harness read and hold, whatever the server sends.
///
/// Each crossing turns the request into a failure of a named class (`protocol` or `timeout`)
/// whose detail names the bound; the request timeout stays the outer bound of every exchange.
/// One request in flight holds at most `head_bytes + max(body_bytes, event_bytes + text_limit)`
/// bytes of response. The behaviours each bound answers are listed in `docs/hostile.md`.
///
/// ```
/// use std::time::Duration;
/// use semantic_stress::{ResponseLimits, StressConfig};
///
/// let config = StressConfig::new("http://127.0.0.1:8000").limits(ResponseLimits {
///     stream_idle: Duration::from_secs(5),
///     ..ResponseLimits::default()
/// });
/// assert_eq!(config.limits.event_bytes, 1 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseLimits {
    /// Largest response head (status line and headers), in bytes: a larger one, or more than
    /// 100 header fields, is a `protocol` failure. Default 64 KiB (real servers send under
    /// 1 KiB). Heads that never end are cut at `max(head_bytes, 8 KiB)` bytes read.
    pub head_bytes: usize,
    /// Largest body read whole (a non-streamed reply, an error body), in bytes: `protocol`
    /// past it. Default 8 MiB.
    pub body_bytes: usize,
    /// Largest single server-sent event, in bytes: `protocol` past it. Default 1 MiB.
    pub event_bytes: usize,
    /// Most events in one stream: `protocol` past it. Default 100,000, three times a
    /// 32k-token reply sent one token per event.
    pub stream_events: u64,
    /// Longest time without a byte within a stream: `timeout` past it. Default 20 s, above the
    /// 15 s keep-alive comments of sse-starlette, the semantic caching server's SSE library.
    pub stream_idle: Duration,
}

impl Default for ResponseLimits {
    fn default() -> Self {
        Self {
            head_bytes: 64 << 10,
            body_bytes: 8 << 20,
            event_bytes: 1 << 20,
            stream_events: 100_000,
            stream_idle: Duration::from_secs(20),
        }
    }
}

impl ResponseLimits {
    /// Checks that every bound is positive.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the first bound that is zero.
    pub fn validate(&self) -> crate::Result<()> {
        let zero = [
            ("limits.head_bytes", self.head_bytes == 0),
            ("limits.body_bytes", self.body_bytes == 0),
            ("limits.event_bytes", self.event_bytes == 0),
            ("limits.stream_events", self.stream_events == 0),
            ("limits.stream_idle", self.stream_idle.is_zero()),
        ];
        match zero.into_iter().find(|(_, is_zero)| *is_zero) {
            Some((field, _)) => Err(Error::InvalidConfig {
                field,
                reason: "must be positive".to_owned(),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zero_bounds_are_named() {
        assert!(ResponseLimits::default().validate().is_ok());
        let err = ResponseLimits {
            stream_idle: Duration::ZERO,
            ..ResponseLimits::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("limits.stream_idle"), "{err}");
    }
}
