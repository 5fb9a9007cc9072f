//! Binding and serving: [`ReferenceServer`] runs an [`App`] on a TCP listener.
//!
//! The listener is bound before [`ReferenceServer::start`] returns, so `addr()` is ready to
//! use. Shutdown stops accepting, marks the server as draining (`/health/ready` → 503), lets
//! in-flight requests finish within the drain timeout, then stops the engine.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::app::App;
use super::config::ServerConfig;
use super::stats::{Stats, bump};
use crate::Error;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

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
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl ReferenceServer {
    /// Validates `config`, binds its address and starts serving on the current runtime.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad setting, [`Error::Bind`] if the address is taken.
    pub async fn start(config: ServerConfig) -> Result<Self, Error> {
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
        let task = tokio::spawn(serve(listener, app.clone(), stop.clone()));
        Ok(Self {
            addr,
            app,
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

async fn serve(listener: TcpListener, app: App, stop: CancellationToken) {
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
        bump(&app.inner.counters.connections_accepted);
        // Small SSE frames must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let service_app = app.clone();
        let service = service_fn(move |req| {
            let app = service_app.clone();
            async move { app.handle(req).await }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Connection errors (resets, timeouts, dropped connections) end only that connection.
            let _ = conn.await;
        });
    }
    drop(listener);
    app.begin_drain();
    let _ = tokio::time::timeout(app.config().http.drain_timeout, graceful.shutdown()).await;
    app.stop_engine();
}
