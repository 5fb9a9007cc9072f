//! Binding and serving: [`ReferenceServer`] runs an [`App`] on a TCP listener.
//!
//! The listener is bound before [`ReferenceServer::start`] returns, so `addr()` is ready to
//! use. Shutdown stops accepting, marks the server as draining (`/health/ready` → 503), lets
//! in-flight requests finish within the drain timeout, then stops the engine.
//!
//! # Hostile clients
//!
//! Every way a client can hold the server's resources is bounded ([`ConnectionLimits`] and the
//! server settings), so it keeps serving well-behaved clients with bounded memory:
//!
//! | client | bound |
//! |---|---|
//! | sends its request head a byte at a time (slowloris), or never sends one | the keep-alive timeout (default 120 s) bounds the wait for a whole head, idle or partial (hyper's header read timeout) |
//! | sends a request body that never finishes | 5 s to read a body, then 400 `timed out reading the request body` |
//! | never reads its reply | [`ConnectionLimits::write_stall`]: a write stalled that long closes the connection and releases the request |
//! | opens connections and leaves them idle | [`ConnectionLimits::max_connections`] at once (more are closed as soon as accepted), each closed after the keep-alive timeout |
//! | sends a head over 400 KiB or a body over `max_body_bytes` | hyper refuses the head (431); 413 for the body |

mod close;
mod guard;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::app::App;
use super::config::ServerConfig;
use super::stats::{Stats, bump};
use crate::Error;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Bounds on connections, whatever their clients do: with them and the server settings
/// (keep-alive timeout, body limit), every way a client can hold the server's resources is
/// bounded. The behaviours each bound answers are listed in `docs/hostile.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; one more is closed as soon as it is accepted. Default
    /// 16,384: each idle connection costs the server a few KiB (`tests/hostile_clients.rs`
    /// measures it), so the cap bounds that memory, and it stays under a usual open-file
    /// limit of 20,000.
    pub max_connections: usize,
    /// Longest time a write to a client may stay blocked (the client reads nothing) before
    /// the connection is closed. Default 30 s.
    pub write_stall: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 16_384,
            write_stall: Duration::from_secs(30),
        }
    }
}

/// A running reference server.
///
/// Dropping it signals shutdown (the serving task drains in the background); prefer
/// [`ReferenceServer::shutdown`], which waits for the drain.
///
/// # Example
/// ```no_run
/// use reference_server::{ReferenceServer, ServerConfig};
///
/// # async fn demo() -> Result<(), reference_server::Error> {
/// let server = ReferenceServer::start(ServerConfig::default()).await?;
/// println!("serving on {}", server.base_url());
/// assert_eq!(server.stats().messages_received, 0);
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ReferenceServer {
    addr: SocketAddr,
    app: App,
    open: Arc<AtomicUsize>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl ReferenceServer {
    /// Validates `config`, binds its address and starts serving on the current runtime.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad setting, [`Error::Bind`] if the address is taken.
    pub async fn start(config: ServerConfig) -> Result<Self, Error> {
        Self::start_with_limits(config, ConnectionLimits::default()).await
    }

    /// [`start`](Self::start) with connection bounds other than the defaults.
    ///
    /// # Errors
    /// As [`start`](Self::start); [`Error::InvalidConfig`] for zero connections or a zero
    /// write stall.
    pub async fn start_with_limits(
        config: ServerConfig,
        limits: ConnectionLimits,
    ) -> Result<Self, Error> {
        if limits.max_connections == 0 || limits.write_stall.is_zero() {
            return Err(Error::InvalidConfig {
                field: "connection limits",
                reason: "max_connections and write_stall must be positive".to_owned(),
            });
        }
        let bind = config.bind_addr();
        let app = App::new(config)?;
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| Error::Bind {
                addr: bind.to_string(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: bind.to_string(),
            source,
        })?;
        let stop = CancellationToken::new();
        let open = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(serve(
            listener,
            app.clone(),
            stop.clone(),
            limits,
            Arc::clone(&open),
        ));
        Ok(Self {
            addr,
            app,
            open,
            stop,
            task: Some(task),
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A snapshot of the server's counters and gauges.
    pub fn stats(&self) -> Stats {
        self.app.stats()
    }

    /// The service being served.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Stops accepting, drains in-flight requests (within the drain timeout) and waits for
    /// the serving task to end.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            // The serving task does not panic; if it did, shutdown is complete anyway.
            let _ = task.await;
        }
    }
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(
    listener: TcpListener,
    app: App,
    stop: CancellationToken,
    limits: ConnectionLimits,
    open: Arc<AtomicUsize>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(app.config().http.keep_alive_timeout);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let Ok((stream, _peer)) = accepted else {
            tokio::time::sleep(ACCEPT_BACKOFF).await;
            continue;
        };
        // Over the cap: closed at once, so the client learns it now rather than after a
        // connect timeout.
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        bump(&app.inner.counters.connections_accepted);
        // Small SSE frames must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let service_app = app.clone();
        let closes = app.config().personality.kind.closes_after_stream();
        let close = close::CloseAfterStream::default();
        let body_close = close.clone();
        let service = service_fn(move |req| {
            let app = service_app.clone();
            let close = body_close.clone();
            async move {
                let response = app.handle(req).await?;
                Ok::<_, super::app::Dropped>(if closes && is_stream(&response) {
                    response.map(|body| close.wrap(body))
                } else {
                    response
                })
            }
        });
        let mut guarded = guard::StallGuard::new(stream, limits.write_stall);
        if closes {
            guarded = guarded.close_after_stream(close);
        }
        let io = TokioIo::new(guarded);
        let conn = graceful.watch(builder.serve_connection(io, service));
        // Relaxed: a gauge read for reports and tests, ordering nothing else.
        open.fetch_add(1, Ordering::Relaxed);
        let open = Arc::clone(&open);
        tokio::spawn(async move {
            // Connection errors (resets, timeouts, dropped connections) end only that connection.
            let _ = conn.await;
            open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    app.begin_drain();
    let _ = tokio::time::timeout(app.config().http.drain_timeout, graceful.shutdown()).await;
    app.stop_engine();
}

/// Whether `response` is a server-sent-event stream.
fn is_stream(response: &hyper::Response<crate::response::Body>) -> bool {
    response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}
