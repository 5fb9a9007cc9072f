//! [`Conn`]: one worker's own keep-alive connection.
//!
//! A worker has at most one request in flight, so it needs exactly one connection, and owning
//! it skips what the shared pool costs per request: a pool lock on checkout, a spawned task
//! that hands the connection back after each response, and parsing an absolute URI. The
//! connection count is capped by construction (one per worker). Traps handled here:
//! - a connection idle for longer than [`IDLE_LIMIT`] is not reused: the server may be closing
//!   it (uvicorn closes idle keep-alive connections after 5 s by default, hyper's server after
//!   30 s), and a request written into a closing connection fails for a reason that is not the
//!   server's load;
//! - a connection is reused only after an exchange that read its whole response; any failure,
//!   timeout or cancellation drops it (a half-read response would poison the next request);
//! - no local address is bound before connect.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::error_chain;

/// Longest idle time after which a connection is replaced rather than reused: under the
/// shortest keep-alive timeout common among servers (uvicorn's 5 s; hyper's is 30 s). A
/// reconnect after a pause this long costs nothing measurable.
pub(crate) const IDLE_LIMIT: Duration = Duration::from_secs(4);

/// A worker's connection, opened on first use and reopened when it cannot be reused.
#[derive(Debug, Default)]
pub(crate) struct Conn {
    open: Option<Open>,
    /// The origin-form URI of the last path sent: a worker usually sends the same path again.
    last_uri: Option<(String, Uri)>,
}

#[derive(Debug)]
struct Open {
    sender: SendRequest<Full<Bytes>>,
    idle_since: Instant,
}

impl Conn {
    /// A worker's connection; nothing is opened until the first request.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The origin-form URI for `path_and_query` (with the base URL's `prefix`).
    pub(super) fn uri(&mut self, prefix: &str, path: &str) -> Result<Uri, String> {
        if let Some((last, uri)) = &self.last_uri
            && last == path
        {
            return Ok(uri.clone());
        }
        let uri: Uri = if prefix.is_empty() {
            path.parse()
        } else {
            format!("{prefix}{path}").parse()
        }
        .map_err(|e| format!("invalid path {path:?}: {e}"))?;
        self.last_uri = Some((path.to_owned(), uri.clone()));
        Ok(uri)
    }

    /// A sender ready for one request: the open connection if it can be reused, else a new one
    /// to `addr` (`host:port`), connected within `connect_timeout`.
    ///
    /// The sender is taken out: give it back with [`put_back`](Self::put_back) once its
    /// response has been read whole.
    pub(super) async fn checkout(
        &mut self,
        addr: &str,
        connect_timeout: Duration,
    ) -> Result<SendRequest<Full<Bytes>>, String> {
        if let Some(mut open) = self.open.take()
            && open.idle_since.elapsed() < IDLE_LIMIT
            && !open.sender.is_closed()
            && open.sender.ready().await.is_ok()
        {
            return Ok(open.sender);
        }
        connect(addr, connect_timeout).await
    }

    /// Keeps `sender` for the next request.
    pub(super) fn put_back(&mut self, sender: SendRequest<Full<Bytes>>) {
        self.open = Some(Open {
            sender,
            idle_since: Instant::now(),
        });
    }
}

async fn connect(
    addr: &str,
    connect_timeout: Duration,
) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("tcp connect error: {addr}: {e}")),
        Err(_) => {
            return Err(format!(
                "tcp connect error: {addr}: no connection within {:.1} s",
                connect_timeout.as_secs_f64()
            ));
        }
    };
    // Small requests must not wait for Nagle's algorithm; failure only costs latency.
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake failed: {}", error_chain(&e)))?;
    // The connection task ends when the sender is dropped or the peer closes.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}
