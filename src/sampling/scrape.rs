//! Samplers whose read is an HTTP request to the server under test: [`Scrape`] one path and
//! parse the reply (the `/metrics` memory gauge here, [`prometheus_rss_bytes`]).
//!
//! A new scraper is a parse function and a [`Plan`](super::Plan):
//! `Periodic::start(Scrape::new(client, Request::get("/metrics"), parse), plan.floor(SCRAPE_FLOOR))`.

use std::time::Duration;

use super::periodic::{Source, Tick};
use crate::{Client, Request};

/// Shortest interval between scrapes: each is a request to the server under test.
pub(crate) const SCRAPE_FLOOR: Duration = Duration::from_millis(100);

/// Turns a reply's text, read at offset `at`, into a sample, or says why it holds none.
pub(crate) type Parse<T> = Box<dyn Fn(&str, Duration) -> Result<T, String> + Send + Sync>;

/// A [`Source`] that sends one control request (`Client::control_text`, bounded by the client's
/// timeout) per tick and parses the reply. A failed request or parse yields no sample; the
/// latest reason is kept for the caller.
pub(crate) struct Scrape<T> {
    client: Client,
    request: Request,
    parse: Parse<T>,
    error: Option<String>,
}

impl<T> Scrape<T> {
    /// Scrapes with `request` through `client`, parsing each reply with `parse`.
    pub(crate) fn new(client: Client, request: Request, parse: Parse<T>) -> Self {
        Self {
            client,
            request,
            parse,
            error: None,
        }
    }

    /// Why the latest failed scrape gave no sample, if one failed.
    pub(crate) fn into_error(self) -> Option<String> {
        self.error
    }
}

impl<T: Send + 'static> Source for Scrape<T> {
    type Sample = T;

    async fn read(&mut self, tick: Tick) -> Option<T> {
        let parsed = match self.client.control_text(&self.request).await {
            Ok(text) => (self.parse)(&text, tick.at),
            Err(e) => Err(e.to_string()),
        };
        parsed.map_err(|e| self.error = Some(e)).ok()
    }
}

/// The `process_resident_memory_bytes` gauge of a Prometheus text exposition, if present.
pub fn prometheus_rss_bytes(text: &str) -> Option<u64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let rest = l.strip_prefix("process_resident_memory_bytes")?;
        // Skip labels, if any, then take the value.
        let rest = match rest.strip_prefix('{') {
            Some(r) => r.split_once('}')?.1,
            None => rest,
        };
        let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
        // Byte counts are integral and far below 2^53; negative or NaN is no reading.
        (value.is_finite() && value >= 0.0).then_some(value as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_gauge_with_or_without_labels() {
        let text = "# HELP process_resident_memory_bytes RSS\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1.2345e+07\n";
        assert_eq!(prometheus_rss_bytes(text), Some(12_345_000));
        assert_eq!(
            prometheus_rss_bytes("process_resident_memory_bytes{pid=\"1\"} 42 1700000000\n"),
            Some(42)
        );
        assert_eq!(
            prometheus_rss_bytes("process_resident_memory_bytes_total 1\n"),
            None
        );
        assert_eq!(prometheus_rss_bytes("other 1\n"), None);
    }
}
