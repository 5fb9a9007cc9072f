//! The reference server under hostile clients: slowloris heads, request bodies that never
//! finish, clients that never read their replies, and 10,000 connections opened and left idle.
//! In each case well-behaved clients keep being served, every hostile connection ends within
//! its documented bound (`serve.rs`), and the server's memory stays bounded.
//!
//! Every wait is bounded; the spawned server exits with this process (`--exit-on-stdin-eof`).

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use reference_server::{ConnectionLimits, ReferenceServer, ServerConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;
use tokio::time::timeout;

/// Longest wait for any single step.
const STEP: Duration = Duration::from_secs(30);
/// Slack on top of a bound for scheduling on a loaded machine.
const SLACK: Duration = Duration::from_secs(2);
/// How long the server waits for a request body (`messages.rs`).
const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// A well-behaved request.
const MESSAGE: &str = r#"{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;

/// A spawned `reference-server` process (memory is measured per process).
struct Process {
    child: Child,
    addr: SocketAddr,
}

impl Process {
    async fn start(args: &[&str]) -> Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_reference-server"))
            .args(["--port", "0", "--exit-on-stdin-eof", "--instant"])
            .args(args)
            .env_remove("ANTHROPIC_API_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("spawn reference-server")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = timeout(STEP, lines.next_line())
            .await
            .context("server announced itself in time")??
            .context("server printed a line")?;
        let addr = line
            .strip_prefix("listening on http://")
            .with_context(|| format!("unexpected first line {line:?}"))?
            .parse()?;
        Ok(Self { child, addr })
    }

    fn rss(&self) -> Result<u64> {
        let pid = self.child.id().context("server running")?;
        semantic_stress::process_rss_bytes(pid).context("server RSS")
    }
}

/// One well-behaved exchange (`Connection: close`); its status.
async fn status(addr: SocketAddr, method: &str, path: &str, body: &str) -> Result<u16> {
    let mut stream = timeout(STEP, TcpStream::connect(addr)).await??;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    timeout(STEP, stream.read_to_end(&mut raw)).await??;
    let head = String::from_utf8_lossy(&raw[..raw.len().min(12)]).into_owned();
    head.get(9..12)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("status line {head:?}"))
}

/// `n` well-behaved requests, alternating a message and a health check, one after another;
/// asserts each is answered 200.
async fn well_behaved(addr: SocketAddr, n: usize) -> Result<()> {
    for i in 0..n {
        let s = if i % 2 == 0 {
            status(addr, "POST", "/v1/messages", MESSAGE).await?
        } else {
            status(addr, "GET", "/health/live", "").await?
        };
        assert_eq!(s, 200, "well-behaved request {i} answered {s}");
    }
    Ok(())
}

/// Reads until the server closes the connection (or resets it); what it sent.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0_u8; 4096];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// Peak resident memory of `process` while `work` runs, sampled every 20 ms.
async fn peak_rss<F: std::future::Future>(process: &Process, work: F) -> Result<(F::Output, u64)> {
    let work = std::pin::pin!(work);
    let mut peak = process.rss()?;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut work = work;
    loop {
        tokio::select! {
            out = &mut work => return Ok((out, peak.max(process.rss()?))),
            _ = tick.tick() => peak = peak.max(process.rss()?),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_heads_are_cut_by_the_header_timeout() -> Result<()> {
    const CLIENTS: usize = 200;
    const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
    let server = Process::start(&["--keep-alive-timeout", "2s"]).await?;
    let addr = server.addr;
    let before = server.rss()?;
    let (closed_after, peak) = peak_rss(&server, async move {
        let mut slow = JoinSet::new();
        for _ in 0..CLIENTS {
            slow.spawn(async move {
                let mut stream = TcpStream::connect(addr).await?;
                let started = Instant::now();
                let (mut read, mut write) = stream.split();
                let drip = async {
                    let head = format!(
                        "GET /health/live HTTP/1.1\r\nhost: t\r\nx-slow: {}",
                        "a".repeat(1000)
                    );
                    for byte in head.bytes() {
                        if write.write_all(&[byte]).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    std::future::pending::<()>().await;
                };
                let mut sink = [0_u8; 1024];
                let closed = async {
                    while let Ok(n) = read.read(&mut sink).await {
                        if n == 0 {
                            break;
                        }
                    }
                };
                timeout(STEP, async {
                    tokio::select! {
                        () = drip => {}
                        () = closed => {}
                    }
                })
                .await
                .context("the server closed the slowloris connection")?;
                anyhow::Ok(started.elapsed())
            });
        }
        well_behaved(addr, 40).await?;
        let mut closed_after = Vec::new();
        while let Some(r) = slow.join_next().await {
            closed_after.push(r??);
        }
        anyhow::Ok(closed_after)
    })
    .await?;
    let closed_after = closed_after?;
    let slowest = closed_after.iter().max().copied().unwrap_or_default();
    assert_eq!(closed_after.len(), CLIENTS);
    assert!(
        slowest < HEADER_TIMEOUT + SLACK,
        "a slowloris connection lived {slowest:?}, header timeout {HEADER_TIMEOUT:?}"
    );
    let growth = peak.saturating_sub(before);
    eprintln!(
        "slowloris: {CLIENTS} connections, slowest closed after {slowest:?}, server RSS +{} KiB",
        growth >> 10
    );
    assert!(
        growth < 64 << 20,
        "server RSS grew {} MiB under {CLIENTS} slowloris clients",
        growth >> 20
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_that_never_finish_get_400_within_the_body_timeout() -> Result<()> {
    const CLIENTS: usize = 50;
    let server = ReferenceServer::start(ServerConfig::default().instant()).await?;
    let addr = server.addr();
    let mut stalled = JoinSet::new();
    for _ in 0..CLIENTS {
        stalled.spawn(async move {
            let mut stream = TcpStream::connect(addr).await?;
            let started = Instant::now();
            stream
                .write_all(b"POST /v1/messages HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"model\":")
                .await?;
            let reply = timeout(STEP, until_closed(&mut stream))
                .await
                .context("the server answered the stalled body")?;
            anyhow::Ok((started.elapsed(), String::from_utf8_lossy(&reply).into_owned()))
        });
    }
    well_behaved(addr, 40).await?;
    while let Some(r) = stalled.join_next().await {
        let (took, reply) = r??;
        assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
        assert!(
            reply.contains("timed out reading the request body"),
            "{reply}"
        );
        assert!(took < BODY_TIMEOUT + SLACK, "answered after {took:?}");
    }
    assert_eq!(server.stats().in_flight, 0);
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_are_cut_after_the_write_stall() -> Result<()> {
    const CLIENTS: usize = 8;
    /// Pipelined requests per client: far more replies than socket buffers hold.
    const PIPELINED: usize = 3000;
    let limits = ConnectionLimits {
        write_stall: Duration::from_millis(500),
        ..ConnectionLimits::default()
    };
    let server =
        ReferenceServer::start_with_limits(ServerConfig::default().instant(), limits).await?;
    let addr = server.addr();
    let stream_request = {
        let body = r#"{"model":"m","max_tokens":4096,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        format!(
            "POST /v1/messages HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let mut sockets = Vec::new();
    for _ in 0..CLIENTS {
        let socket = TcpSocket::new_v4()?;
        // A small window, so the server's writes block soon.
        socket.set_recv_buffer_size(4096)?;
        let mut stream = timeout(STEP, socket.connect(addr)).await??;
        let mut pipelined = stream_request.clone();
        for _ in 0..PIPELINED {
            pipelined.push_str("GET /metrics HTTP/1.1\r\nhost: t\r\n\r\n");
        }
        stream.write_all(pipelined.as_bytes()).await?;
        // Kept open and never read.
        sockets.push(stream);
    }
    well_behaved(addr, 20).await?;
    let sent = Instant::now();
    let deadline = sent + limits.write_stall + SLACK + SLACK;
    loop {
        let stats = server.stats();
        if server.open_connections() == 0 && stats.in_flight == 0 {
            eprintln!(
                "never-read: {CLIENTS} connections released {:?} after sending",
                sent.elapsed()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} connections and {} requests still held by clients that never read",
            server.open_connections(),
            stats.in_flight
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    well_behaved(addr, 4).await?;
    drop(sockets);
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_cost_bounded_memory() -> Result<()> {
    const IDLE: usize = 10_000;
    /// Server memory allowed per idle connection: hyper's 8 KiB read buffer, the connection
    /// task and the socket's bookkeeping, with room.
    const PER_CONNECTION: u64 = 24 << 10;
    let server = Process::start(&[]).await?;
    let addr = server.addr;
    well_behaved(addr, 4).await?;
    let before = server.rss()?;
    let mut idle = Vec::with_capacity(IDLE);
    while idle.len() < IDLE {
        let mut batch = JoinSet::new();
        for _ in 0..500.min(IDLE - idle.len()) {
            batch.spawn(async move { timeout(STEP, TcpStream::connect(addr)).await });
        }
        while let Some(r) = batch.join_next().await {
            idle.push(r???);
        }
    }
    // The server has accepted them all once a request behind them is served.
    well_behaved(addr, 40).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = server.rss()?;
    let per_connection = held.saturating_sub(before) / IDLE as u64;
    eprintln!(
        "idle: {IDLE} connections, server RSS {} -> {} MiB, {per_connection} bytes each",
        before >> 20,
        held >> 20
    );
    assert!(
        per_connection < PER_CONNECTION,
        "{} bytes of server memory per idle connection ({} MiB for {IDLE})",
        per_connection,
        held.saturating_sub(before) >> 20
    );
    drop(idle);
    well_behaved(addr, 4).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_at_once() -> Result<()> {
    const CAP: usize = 50;
    let limits = ConnectionLimits {
        max_connections: CAP,
        ..ConnectionLimits::default()
    };
    let server =
        ReferenceServer::start_with_limits(ServerConfig::default().instant(), limits).await?;
    let addr = server.addr();
    let mut held = Vec::new();
    for _ in 0..CAP {
        held.push(timeout(STEP, TcpStream::connect(addr)).await??);
    }
    let deadline = Instant::now() + STEP;
    while server.open_connections() < CAP {
        assert!(
            Instant::now() < deadline,
            "the server accepts the first {CAP}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // One more: closed without an answer.
    let mut extra = timeout(STEP, TcpStream::connect(addr)).await??;
    let _ = extra
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: t\r\n\r\n")
        .await;
    let got = timeout(STEP, until_closed(&mut extra)).await?;
    assert!(
        got.is_empty(),
        "answered past the cap: {:?}",
        String::from_utf8_lossy(&got)
    );
    // Room again once the held connections go.
    drop(held);
    let deadline = Instant::now() + STEP;
    while server.open_connections() > 0 {
        assert!(Instant::now() < deadline, "held connections released");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    well_behaved(addr, 4).await?;
    server.shutdown().await;
    Ok(())
}
