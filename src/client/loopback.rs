//! A raw TCP HTTP/1.1 server on loopback for the connection tests: each connection follows a
//! [`Script`] (answer, answer late, close after reading, stop reading, close when idle).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// What the server does with each request of a connection.
#[derive(Debug, Clone, Copy)]
pub(super) enum Script {
    /// Answers every request at once; closes the connection once it has been idle for this long.
    IdleClose(Duration),
    /// Answers the first request, then closes right after (no `Connection: close`).
    CloseAfterAnswer,
    /// Answers requests until the `n`th (1-based), which it reads whole, then closes without
    /// answering.
    CloseOnRead(usize),
    /// Reads a request whole, answers after this delay.
    Late(Duration),
    /// Accepts, never reads a byte (the connection stays open).
    NeverRead,
    /// Reads the head only, answers without reading the body, then stops reading (open).
    AnswerBeforeBody,
}

/// The server, on a thread and runtime of its own (a test may block its own thread while
/// the server goes on): its address, requests read whole and connections accepted.
pub(super) struct Server {
    pub(super) addr: std::net::SocketAddr,
    pub(super) requests: Arc<AtomicUsize>,
    pub(super) connections: Arc<AtomicUsize>,
    _stop: oneshot::Sender<()>,
}

impl Server {
    pub(super) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

const ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";

/// Starts a server following `script`; it stops when the [`Server`] is dropped.
pub(super) fn start(script: Script) -> Server {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    std_listener.set_nonblocking(true).expect("nonblocking");
    let addr = std_listener.local_addr().expect("addr");
    let requests = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicUsize::new(0));
    let (r, c) = (requests.clone(), connections.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        runtime.block_on(async move {
            let listener = TcpListener::from_std(std_listener).expect("listener");
            let accept = async {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    c.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve(tcp, script, r.clone()));
                }
            };
            tokio::select! {
                () = accept => {}
                _ = stopped => {}
            }
        });
    });
    Server {
        addr,
        requests,
        connections,
        _stop: stop,
    }
}

/// Reads one request head; returns its content length, or `None` at EOF or after `idle`.
async fn read_head(
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
    idle: Option<Duration>,
) -> Option<usize> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            buf.drain(..end + 4);
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            return Some(len);
        }
        let mut chunk = [0u8; 16 << 10];
        let n = match idle {
            Some(d) if buf.is_empty() => tokio::time::timeout(d, tcp.read(&mut chunk))
                .await
                .ok()?
                .ok()?,
            _ => tcp.read(&mut chunk).await.ok()?,
        };
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn read_body(tcp: &mut TcpStream, buf: &mut Vec<u8>, len: usize) -> Option<()> {
    while buf.len() < len {
        let mut chunk = [0u8; 64 << 10];
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.drain(..len);
    Some(())
}

async fn serve(mut tcp: TcpStream, script: Script, requests: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    if let Script::NeverRead = script {
        tokio::time::sleep(Duration::from_secs(60)).await;
        return;
    }
    let idle = match script {
        Script::IdleClose(d) => Some(d),
        _ => None,
    };
    let mut read = 0;
    loop {
        let Some(len) = read_head(&mut tcp, &mut buf, idle).await else {
            return;
        };
        if let Script::AnswerBeforeBody = script {
            let _ = tcp.write_all(ANSWER).await;
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        }
        if read_body(&mut tcp, &mut buf, len).await.is_none() {
            return;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        read += 1;
        match script {
            Script::CloseOnRead(n) if read >= n => return,
            Script::Late(d) => tokio::time::sleep(d).await,
            _ => {}
        }
        if tcp.write_all(ANSWER).await.is_err() {
            return;
        }
        if let Script::CloseAfterAnswer = script {
            return;
        }
    }
}
