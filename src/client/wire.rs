//! What reached the wire: [`Counted`] wraps a worker connection's stream (plain TCP or TLS)
//! and counts the bytes written and read; [`Tracked`] wraps a request body and marks when
//! hyper took its end. Both report into the connection's [`Wire`].
//!
//! A request is written whole once the stream was flushed after its body's end was taken:
//! hyper buffers a request's head and body and flushes the stream only after every buffered
//! byte was written to it (hyper 1.x `proto/h1/io.rs`, `Buffered::poll_flush`), so a flush
//! that completes after the end was taken means the operating system has every byte. A TLS
//! stream flushes its records into the TCP stream before its own flush completes.

use std::convert::Infallible;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Counts of one connection, shared by its stream, its request bodies and its owner.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    written: AtomicU64,
    read: AtomicU64,
    flushes: AtomicU64,
    /// One more than `flushes` when the body of the request in flight ended; 0 before.
    body_end: AtomicU64,
}

/// The counts at one moment: compare two to learn what one request moved.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub(crate) written: u64,
    pub(crate) read: u64,
}

impl Wire {
    /// The counts now, and a clean slate for the next request's body.
    pub(crate) fn start_request(&self) -> Counts {
        self.body_end.store(0, Ordering::SeqCst);
        self.counts()
    }

    /// Bytes written and read so far.
    pub(crate) fn counts(&self) -> Counts {
        Counts {
            written: self.written.load(Ordering::SeqCst),
            read: self.read.load(Ordering::SeqCst),
        }
    }

    /// Whether the request in flight was written whole: its body ended, and the stream was
    /// flushed after that.
    pub(crate) fn request_written(&self) -> bool {
        let end = self.body_end.load(Ordering::SeqCst);
        end != 0 && self.flushes.load(Ordering::SeqCst) >= end
    }

    fn body_ended(&self) {
        let mark = self.flushes.load(Ordering::SeqCst) + 1;
        let _ = self
            .body_end
            .compare_exchange(0, mark, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// A stream that counts what goes through it into a [`Wire`].
#[derive(Debug)]
pub(crate) struct Counted<T> {
    inner: T,
    wire: Arc<Wire>,
}

impl<T> Counted<T> {
    pub(crate) fn new(inner: T, wire: Arc<Wire>) -> Self {
        Self { inner, wire }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let n = buf.filled().len().saturating_sub(before);
            self.wire.read.fetch_add(n as u64, Ordering::SeqCst);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.wire.written.fetch_add(n as u64, Ordering::SeqCst);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.wire.written.fetch_add(n as u64, Ordering::SeqCst);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = polled {
            self.wire.flushes.fetch_add(1, Ordering::SeqCst);
        }
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that tells its [`Wire`] when hyper has taken its end.
#[derive(Debug)]
pub(crate) struct Tracked {
    inner: Full<Bytes>,
    wire: Arc<Wire>,
}

impl Tracked {
    pub(crate) fn new(inner: Full<Bytes>, wire: Arc<Wire>) -> Self {
        Self { inner, wire }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.wire.body_ended();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        // hyper asks before writing the head (an empty body) and after each frame.
        let end = self.inner.is_end_stream();
        if end {
            self.wire.body_ended();
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
