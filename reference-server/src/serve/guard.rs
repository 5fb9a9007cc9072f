//! [`StallGuard`]: a connection whose writes fail once they have made no progress for a bound,
//! so a client that never reads its reply cannot hold a connection, its request's pool blocks
//! and the task streaming to it forever.
//!
//! hyper has no write timeout (its header read timeout only bounds reading a request head), so
//! the bound sits under hyper, on the socket: a write or flush that stays pending for longer
//! than the bound returns `TimedOut`, hyper drops the connection, the response body's sender
//! fails, and the request is counted as dropped by its client.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::close::CloseAfterStream;

/// A TCP stream whose writes fail after `limit` without progress.
#[derive(Debug)]
pub(crate) struct StallGuard {
    inner: TcpStream,
    limit: Duration,
    /// Running while a write or flush is pending: allocated only under backpressure.
    stalled: Option<Pin<Box<Sleep>>>,
    /// Closes after a streamed reply (llama-server), when set.
    close: Option<CloseAfterStream>,
}

impl StallGuard {
    pub(crate) fn new(inner: TcpStream, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
            close: None,
        }
    }

    /// Reads see end-of-file once a streamed reply has been written whole (see
    /// [`CloseAfterStream`]).
    pub(crate) fn close_after_stream(mut self, state: CloseAfterStream) -> Self {
        self.close = Some(state);
        self
    }

    /// Notes a write that reached the socket.
    fn wrote<T>(&self, poll: &Poll<io::Result<T>>) {
        if let (Some(close), Poll::Ready(Ok(_))) = (&self.close, poll) {
            close.wrote();
        }
    }

    /// Passes a ready result through (and stops the stall timer); on pending, fails once the
    /// stall has lasted `limit`.
    fn guard<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {limit:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.close.as_ref().is_some_and(CloseAfterStream::closing) {
            // End-of-file: hyper closes the connection, unread bytes and all.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(&poll);
        this.guard(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(&poll);
        this.guard(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.guard(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpSocket};

    #[tokio::test]
    async fn a_client_that_never_reads_fails_the_write_after_the_limit() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let _client = socket
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut guarded = StallGuard::new(server, Duration::from_millis(200));
        let chunk = vec![b'x'; 64 << 10];
        let started = std::time::Instant::now();
        let err = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Err(e) = guarded.write_all(&chunk).await {
                    return e;
                }
            }
        })
        .await
        .expect("the write fails within its bound");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
