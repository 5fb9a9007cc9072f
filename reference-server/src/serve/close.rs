//! [`CloseAfterStream`]: llama-server's way with a streamed reply — it writes the last chunk,
//! then closes the connection although its headers advertised keep-alive.
//!
//! llama-server's chunked content provider returns `false` once the stream is done
//! (`tools/server/server-http.cpp:445-458` @ d6588daa: `sink.done(); … return has_next;`);
//! cpp-httplib takes a provider's `false` as a cancelled write (`vendor/cpp-httplib/
//! httplib.cpp:3720-3729`, `Error::Canceled`) and ends the keep-alive loop. A client that sends
//! its next request at once on that connection has it written whole and never read.
//!
//! Here the response body marks the connection when it ends; once the terminating chunk has
//! been written after that mark, reads of the connection return end-of-file, so hyper closes
//! it (without a `Connection: close` header, as llama-server) and drops whatever request the
//! client had already sent on it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::response::Body;

/// Open: the connection serves on.
const OPEN: u8 = 0;
/// A streamed body ended: the terminating chunk is still to be written.
const ENDED: u8 = 1;
/// Written after the end: reads now see end-of-file.
const CLOSING: u8 = 2;

/// One connection's state, shared by its streamed bodies and its socket.
#[derive(Debug, Clone, Default)]
pub(crate) struct CloseAfterStream(Arc<AtomicU8>);

impl CloseAfterStream {
    /// `body`, which marks this connection to close once it has ended.
    pub(crate) fn wrap(&self, body: Body) -> Body {
        Body::new(EndMark {
            inner: body,
            state: self.clone(),
        })
    }

    /// A write reached the socket: after a streamed body's end, that was its last chunk.
    pub(crate) fn wrote(&self) {
        // Relaxed: one connection's task does both, in order.
        let _ = self
            .0
            .compare_exchange(ENDED, CLOSING, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Whether reads must now see end-of-file.
    pub(crate) fn closing(&self) -> bool {
        self.0.load(Ordering::Relaxed) == CLOSING
    }
}

/// A body that marks its connection when it ends.
struct EndMark {
    inner: Body,
    state: CloseAfterStream,
}

impl HttpBody for EndMark {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(poll, Poll::Ready(None)) {
            let _ =
                self.state
                    .0
                    .compare_exchange(OPEN, ENDED, Ordering::Relaxed, Ordering::Relaxed);
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        // Never ends early: hyper must poll the end, which marks the connection.
        false
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
