//! Pieces shared by the personalities' streamed replies and generations: the SSE response, one
//! event at a time, following the engine's progress, and waiting for a whole generation.

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http::Response;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http_body_util::BodyExt;
use http_body_util::channel::{Channel, Sender};
use serde_json::Value;
use tokio::sync::watch;

use crate::response::Body;

/// Frames buffered between the writer task and the connection.
const CHANNEL_FRAMES: usize = 16;

/// A 200 `text/event-stream` response whose events `write` sends from its own task.
pub(crate) fn sse_response<F, Fut>(write: F) -> Response<Body>
where
    F: FnOnce(Sender<Bytes>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, body) = Channel::<Bytes, Infallible>::new(CHANNEL_FRAMES);
    tokio::spawn(write(tx));
    let mut resp = Response::new(body.boxed_unsync());
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// Sends one event; `false` once the client has gone.
pub(crate) async fn send(tx: &mut Sender<Bytes>, name: &str, data: &Value) -> bool {
    tx.send_data(crate::sse::event(name, data)).await.is_ok()
}

/// The engine's progress on one sequence.
#[derive(Debug)]
pub(crate) struct Follow {
    rx: Option<watch::Receiver<u32>>,
    total: usize,
    seen: usize,
}

/// What the next wait on a [`Follow`] brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Tokens `from..to` were produced.
    Tokens { from: usize, to: usize },
    /// Every token is produced.
    Done,
    /// The engine dropped the sequence (failed batch, or shutdown).
    Lost,
}

impl Follow {
    /// Follows `rx` (`None`: instant) to `total` tokens.
    pub(crate) fn new(rx: Option<watch::Receiver<u32>>, total: usize) -> Self {
        Self { rx, total, seen: 0 }
    }

    /// Waits for more tokens.
    pub(crate) async fn next(&mut self) -> Step {
        if self.seen >= self.total {
            return Step::Done;
        }
        let done = match self.rx.as_mut() {
            None => self.total,
            Some(rx) => {
                if rx.changed().await.is_err() {
                    return Step::Lost;
                }
                (*rx.borrow_and_update() as usize).min(self.total)
            }
        };
        let from = self.seen;
        self.seen = self.seen.max(done);
        if self.seen > from {
            Step::Tokens {
                from,
                to: self.seen,
            }
        } else {
            Step::Tokens { from, to: from }
        }
    }

    /// Waits until every token is produced (`true`) or the sequence is lost (`false`).
    pub(crate) async fn finish(&mut self) -> bool {
        loop {
            match self.next().await {
                Step::Done => return true,
                Step::Lost => return false,
                Step::Tokens { .. } => {}
            }
        }
    }
}
