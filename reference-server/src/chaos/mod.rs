//! The chaos target: a raw-TCP HTTP/1 server that answers each request with one hostile or
//! broken behaviour ([`Case`]), chosen by the request path (`/chaos/<case>/…`), so that a
//! harness can be shown to survive any server.
//!
//! It is not built on hyper on purpose: hyper would refuse to send most of these replies.
//! Point a harness at `http://ADDR/chaos/<case>` as its base URL and every request it sends
//! plays that case; any other path gets a valid reply ([`Case::Ok`]). `GET /chaos-stats`
//! answers `{"open_connections": N, "connections": N, "requests": N}`.
//!
//! Bounded: every case that writes forever stops at the first failed write (the client left),
//! every case that waits stops when the client closes, and no connection lives longer than
//! [`ChaosConfig::connection_lifetime`] nor more than [`ChaosConfig::max_connections`] at once.

mod cases;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use cases::Case;
use cases::{Asked, ConnState, Next};

use crate::Error;

/// Settings of a [`ChaosServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChaosConfig {
    /// Address to listen on (port 0 picks a free one).
    pub addr: SocketAddr,
    /// Connections served at once; more are closed as soon as accepted.
    pub max_connections: usize,
    /// Longest life of one connection, whatever its case.
    pub connection_lifetime: Duration,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_connections: 1024,
            connection_lifetime: Duration::from_secs(120),
        }
    }
}

/// A running chaos target; dropping it stops accepting (connections end within their
/// lifetime).
#[derive(Debug)]
pub struct ChaosServer {
    addr: SocketAddr,
    counters: Arc<Counters>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Counters {
    open: AtomicU64,
    connections: AtomicU64,
    requests: AtomicU64,
}

impl ChaosServer {
    /// Binds `config.addr` and starts serving on the current runtime.
    ///
    /// # Errors
    /// [`Error::Bind`] if the address is taken, [`Error::InvalidConfig`] for zero
    /// connections.
    pub async fn start(config: ChaosConfig) -> Result<Self, Error> {
        if config.max_connections == 0 || config.connection_lifetime.is_zero() {
            return Err(Error::InvalidConfig {
                field: "chaos",
                reason: "max_connections and connection_lifetime must be positive".to_owned(),
            });
        }
        let bind_error = |source| Error::Bind {
            addr: config.addr.to_string(),
            source,
        };
        let listener = TcpListener::bind(config.addr).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept(
            listener,
            config,
            Arc::clone(&counters),
            stop.clone(),
        ));
        Ok(Self {
            addr,
            counters,
            stop,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> u64 {
        self.counters.open.load(Ordering::Relaxed)
    }

    /// Stops accepting and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ChaosServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept(
    listener: TcpListener,
    config: ChaosConfig,
    counters: Arc<Counters>,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        // Over the cap: the connection is dropped at once.
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let counters = Arc::clone(&counters);
        let lifetime = config.connection_lifetime;
        tokio::spawn(async move {
            counters.open.fetch_add(1, Ordering::Relaxed);
            counters.connections.fetch_add(1, Ordering::Relaxed);
            let _ = tokio::time::timeout(lifetime, connection(stream, &counters)).await;
            counters.open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

/// Serves one connection's requests until a case closes it or the client leaves.
async fn connection(mut stream: TcpStream, counters: &Counters) {
    let mut buf = Vec::new();
    let mut state = ConnState::default();
    loop {
        let Ok(Some(head)) = wire::read_head(&mut stream, &mut buf).await else {
            return;
        };
        let n = counters.requests.fetch_add(1, Ordering::Relaxed) + 1;
        if head.path.starts_with("/chaos-stats") {
            let body = serde_json::json!({
                "open_connections": counters.open.load(Ordering::Relaxed),
                "connections": counters.connections.load(Ordering::Relaxed),
                "requests": n,
            });
            let reply = wire::response("200 OK", "application/json", body.to_string().as_bytes());
            if wire::read_body(&mut stream, &mut buf, head.content_length)
                .await
                .is_err()
                || stream.write_all(&reply).await.is_err()
            {
                return;
            }
            continue;
        }
        let case = Case::of_path(&head.path);
        if case == Case::EarlyReply {
            if stream.write_all(&cases::early_reply()).await.is_ok() {
                cases::drain(&mut stream, &mut buf, head.content_length).await;
                let _ = stream.shutdown().await;
            }
            return;
        }
        let Ok(body) = wire::read_body(&mut stream, &mut buf, head.content_length).await else {
            return;
        };
        let asked = Asked::new(head.path, &body, format!("msg_chaos_{n:016x}"));
        match cases::play(case, &mut stream, &asked, &mut state).await {
            Ok(Next::KeepAlive) => {}
            Ok(Next::Close) => {
                let _ = stream.shutdown().await;
                return;
            }
            Ok(Next::Drop) | Err(_) => return,
        }
    }
}
