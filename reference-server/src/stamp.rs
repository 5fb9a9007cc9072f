//! The server's own timing of streamed replies: when each content delta was handed to the
//! connection, measured from the request's arrival.
//!
//! Every `text/event-stream` response goes through [`Stamped`], which looks at each frame as
//! the connection polls it (the moment it is about to be written to the socket):
//!
//! - the first `content_block_delta` of a reply is the server's **time to first token**, each
//!   later one closes an **inter-token gap**; both feed histograms of `GET /metrics`
//!   (`semantic_server_ttft_seconds`, `semantic_server_itl_seconds`);
//! - when the request carried [`STAMP_HEADER`]` = 1`, each `content_block_delta` frame is
//!   preceded by an SSE comment line `: t=<µs>`, the write time in microseconds since the
//!   request arrived. Comment lines are ignored by every event-stream client (WHATWG HTML
//!   §9.2.6: a line starting with U+003A COLON is ignored), so stamped streams stay valid
//!   Anthropic streams; the harness reads them only in its self-test mode.
//!
//! "Arrival" is when the request's head reached the service (`App::handle`), the same origin as
//! `semantic_request_duration_seconds`.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Response};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};

use super::app::App;
use super::metrics::Histogram;
use super::response::Body;

/// Request header asking for write stamps on a streamed reply (`1` to ask).
pub const STAMP_HEADER: &str = "x-semantic-stamp";

/// Upper bounds of the token-timing histograms' buckets, in seconds: fine below 10 ms, where
/// inter-token gaps live.
const BUCKETS: [f64; 18] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Whether the request asked for write stamps.
pub(crate) fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get(STAMP_HEADER)
        .is_some_and(|v| v.as_bytes() == b"1")
}

/// Wraps an event-stream response so that its deltas are timed (and stamped when `stamps`);
/// any other response is returned as is.
pub(crate) fn wrap(
    app: &App,
    arrived: Instant,
    stamps: bool,
    resp: Response<Body>,
) -> Response<Body> {
    let is_sse = resp
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !is_sse {
        return resp;
    }
    let app = app.clone();
    resp.map(move |inner| {
        Stamped {
            inner,
            app,
            arrived,
            stamps,
            last: None,
        }
        .boxed_unsync()
    })
}

/// A streamed body that times (and optionally stamps) its content deltas as they are polled.
struct Stamped {
    inner: Body,
    app: App,
    arrived: Instant,
    stamps: bool,
    /// When the previous content delta was polled.
    last: Option<Instant>,
}

impl hyper::body::Body for Stamped {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let Poll::Ready(Some(Ok(frame))) = polled else {
            return polled;
        };
        let frame = match frame.into_data() {
            Ok(data) if data.starts_with(b"event: content_block_delta") => {
                let now = Instant::now();
                let times = &this.app.inner.http.tokens;
                match this.last.replace(now) {
                    None => times
                        .ttft
                        .observe(now.saturating_duration_since(this.arrived)),
                    Some(previous) => times.itl.observe(now.saturating_duration_since(previous)),
                }
                if this.stamps {
                    let micros = now.saturating_duration_since(this.arrived).as_micros();
                    let mut out = BytesMut::with_capacity(data.len() + 24);
                    // Writing to a BytesMut cannot fail.
                    let _ = writeln!(out, ": t={micros}");
                    out.extend_from_slice(&data);
                    Frame::data(out.freeze())
                } else {
                    Frame::data(data)
                }
            }
            Ok(data) => Frame::data(data),
            Err(frame) => frame,
        };
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // Stamps add bytes: only the lower bound of the inner body still holds.
        let mut hint = SizeHint::new();
        hint.set_lower(self.inner.size_hint().lower());
        hint
    }
}

/// The server's time to first token and inter-token gaps of every streamed reply.
#[derive(Debug)]
pub(crate) struct TokenTimes {
    ttft: Histogram,
    itl: Histogram,
}

impl Default for TokenTimes {
    fn default() -> Self {
        Self {
            ttft: Histogram::new(&BUCKETS),
            itl: Histogram::new(&BUCKETS),
        }
    }
}

impl TokenTimes {
    /// Appends both histograms in the Prometheus text format.
    pub(crate) fn render(&self, out: &mut String) {
        self.ttft.render(
            out,
            "semantic_server_ttft_seconds",
            "Time from a streamed request's arrival to the write of its first content delta.",
        );
        self.itl.render(
            out,
            "semantic_server_itl_seconds",
            "Time between the writes of consecutive content deltas of a streamed reply.",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn histograms_render_cumulative_buckets() {
        let t = TokenTimes::default();
        t.ttft.observe(Duration::from_millis(3));
        t.itl.observe(Duration::from_micros(400));
        t.itl.observe(Duration::from_millis(20));
        let mut out = String::new();
        t.render(&mut out);
        for line in [
            "semantic_server_ttft_seconds_bucket{le=\"0.005\"} 1",
            "semantic_server_ttft_seconds_count 1",
            "semantic_server_itl_seconds_bucket{le=\"0.0005\"} 1",
            "semantic_server_itl_seconds_bucket{le=\"0.02\"} 2",
            "semantic_server_itl_seconds_bucket{le=\"+Inf\"} 2",
            "semantic_server_itl_seconds_count 2",
        ] {
            assert!(out.contains(line), "missing {line}\n{out}");
        }
    }

    #[test]
    fn only_the_literal_one_asks_for_stamps() {
        let mut h = HeaderMap::new();
        assert!(!wanted(&h));
        h.insert(STAMP_HEADER, "0".parse().unwrap());
        assert!(!wanted(&h));
        h.insert(STAMP_HEADER, "1".parse().unwrap());
        assert!(wanted(&h));
    }
}
