//! The reference-server binary, started as a user would start it: on port 0, read the
//! `listening on` line, talk plain HTTP/1.1 over TCP, exhaust the pool, stop it with SIGTERM.
//!
//! Every wait is bounded with `tokio::time::timeout`; the child is killed on drop and started
//! with `--exit-on-stdin-eof`, so a failing test never leaves a server behind.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::timeout;

/// Longest wait for any single step.
const STEP: Duration = Duration::from_secs(30);
/// Concurrent requests of the burst (a 32 MB pool admits about 60 at once).
const BURST: usize = 150;

/// A running `reference-server` child.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    async fn start(args: &[&str]) -> Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_reference-server"))
            .args(["--port", "0", "--exit-on-stdin-eof"])
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

    async fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        // `Child::wait` closes the child's stdin first; keep it open so that the server stops
        // because of the signal, not because of `--exit-on-stdin-eof`.
        let _stdin = self.child.stdin.take();
        let pid = self.child.id().context("child still running")?;
        let killed = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await?;
        assert!(killed.success(), "kill -TERM {pid}");
        Ok(timeout(STEP, self.child.wait())
            .await
            .context("server exited in time")??)
    }
}

/// One HTTP exchange's result.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body).with_context(|| format!("JSON body: {:?}", self.body))
    }

    /// SSE event names, in order.
    fn events(&self) -> Vec<String> {
        self.body
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .map(str::to_owned)
            .collect()
    }
}

/// Connects, then sends one request with `Connection: close` and reads the whole response.
async fn connect(addr: SocketAddr) -> Result<TcpStream> {
    Ok(timeout(STEP, TcpStream::connect(addr)).await??)
}

async fn exchange(
    mut stream: TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Reply> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    timeout(STEP, stream.read_to_end(&mut raw))
        .await
        .context("response in time")??;
    parse(&raw)
}

async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Reply> {
    exchange(connect(addr).await?, method, path, headers, body).await
}

fn parse(raw: &[u8]) -> Result<Reply> {
    let text = String::from_utf8_lossy(raw);
    let Some((head, rest)) = text.split_once("\r\n\r\n") else {
        bail!("no response head in {text:?}");
    };
    let mut lines = head.lines();
    let status = lines
        .next()
        .context("status line")?
        .split(' ')
        .nth(1)
        .context("status")?
        .parse()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v == "chunked");
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_owned()
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &str) -> Result<String> {
    let mut out = String::new();
    loop {
        let (size, tail) = rest.split_once("\r\n").context("chunk size line")?;
        let size = usize::from_str_radix(size.trim(), 16)?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(tail.get(..size).context("whole chunk")?);
        rest = tail.get(size + 2..).context("chunk end")?;
    }
}

fn ask(text: &str, max_tokens: u32, stream: bool) -> String {
    json!({"model": "reference", "max_tokens": max_tokens, "stream": stream,
           "messages": [{"role": "user", "content": text}]})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_json_and_streams_with_prefix_reuse() -> Result<()> {
    let mut server = Server::start(&[]).await?;
    let a = server.addr;
    let health = http(a, "GET", "/health", &[], "").await?;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()?["pool"]["total_blocks"], 768);

    let first = http(
        a,
        "POST",
        "/v1/messages",
        &[("x-session-id", "t1"), ("x-request-id", "rid-7")],
        &ask("remember CANARY-t1", 30, false),
    )
    .await?;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("x-request-id"), Some("rid-7"));
    let v = first.json()?;
    let text = v["content"][0]["text"].as_str().context("text")?.to_owned();
    assert!(text.starts_with("CANARY-t1"), "{text}");
    assert_eq!(v["usage"]["cache_read_input_tokens"], 0);

    let turn2 = json!({"model": "reference", "max_tokens": 20, "stream": true, "messages": [
        {"role": "user", "content": "remember CANARY-t1"},
        {"role": "assistant", "content": text},
        {"role": "user", "content": "go on"}]});
    let streamed = http(
        a,
        "POST",
        "/v1/messages",
        &[("x-session-id", "t1")],
        &turn2.to_string(),
    )
    .await?;
    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.header("content-type"), Some("text/event-stream"));
    assert!(streamed.header("x-request-id").is_some());
    let events = streamed.events();
    assert_eq!(
        events[..3],
        ["message_start", "content_block_start", "ping"]
    );
    assert_eq!(
        events[events.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert!(events.iter().any(|e| e == "content_block_delta"));
    let start: Value = serde_json::from_str(
        streamed
            .body
            .lines()
            .find(|l| l.contains("\"message_start\""))
            .context("start")?
            .trim_start_matches("data: "),
    )?;
    let usage = &start["message"]["usage"];
    assert!(
        usage["cache_read_input_tokens"].as_u64() > Some(3),
        "reused the first turn: {usage}"
    );

    let bad = http(a, "POST", "/v1/messages", &[], "{broken").await?;
    assert_eq!(
        (bad.status, bad.json()?["error"]["type"].as_str()),
        (400, Some("invalid_request_error"))
    );
    let missing = http(a, "GET", "/nowhere", &[], "").await?;
    assert_eq!(missing.status, 404);
    assert!(missing.header("x-request-id").is_some());
    assert_eq!(server.terminate().await?.code(), Some(0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_exhausts_the_pool_gracefully_and_it_recovers() -> Result<()> {
    let mut server = Server::start(&["--cache-budget-mb", "32"]).await?;
    let a = server.addr;
    // Connect everyone first, then send: the requests arrive together.
    let mut streams = Vec::with_capacity(BURST);
    for _ in 0..BURST {
        streams.push(connect(a).await?);
    }
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let session = format!("burst-{i}");
            tokio::spawn(async move {
                exchange(
                    s,
                    "POST",
                    "/v1/messages",
                    &[("x-session-id", &session)],
                    &ask("a short prompt for the burst test", 100, false),
                )
                .await
            })
        })
        .collect();
    let (mut ok, mut rejected) = (0, 0);
    for t in tasks {
        let r = timeout(STEP, t)
            .await
            .context("burst answered in time")???;
        match r.status {
            200 => ok += 1,
            429 => {
                rejected += 1;
                let after: u64 = r
                    .header("retry-after")
                    .context("Retry-After on 429")?
                    .parse()?;
                assert!(after >= 1);
                assert_eq!(r.json()?["error"]["type"], "overloaded_error");
            }
            other => bail!("unexpected status {other}: {}", r.body),
        }
    }
    assert!(rejected > 0 && ok >= 50, "ok {ok}, rejected {rejected}");

    let stats = http(a, "GET", "/v1/agents/stats", &[], "").await?.json()?;
    let s = &stats["server"];
    assert_eq!(s["messages_received"], BURST);
    assert_eq!(s["completed"], ok);
    assert_eq!(s["rejected_by_status"]["429"], rejected);
    assert!(s["pool"]["peak_utilization"].as_f64() > Some(0.9), "{s}");
    assert!(s["pool"]["peak_utilization"].as_f64() <= Some(0.95), "{s}");

    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let r = http(
            a,
            "POST",
            "/v1/messages",
            &[("x-session-id", "after")],
            &ask("after the storm", 50, false),
        )
        .await?;
        if r.status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pool never recovered: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = http(a, "GET", "/health/ready", &[], "").await?;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(server.terminate().await?.code(), Some(0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_stream_finish_then_exits_zero() -> Result<()> {
    let mut server = Server::start(&["--decode-tokens-per-sec", "100"]).await?;
    let a = server.addr;
    let stream = connect(a).await?;
    let in_flight = tokio::spawn(async move {
        exchange(
            stream,
            "POST",
            "/v1/messages",
            &[],
            &ask("slow one", 40, true),
        )
        .await
    });
    // Wait until the server has admitted it, then ask it to stop.
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let s = http(a, "GET", "/v1/agents/stats", &[], "").await?.json()?;
        if s["server"]["in_flight"] == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "request never admitted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = server.terminate().await?;
    assert_eq!(status.code(), Some(0));
    let reply = timeout(STEP, in_flight).await???;
    assert_eq!(
        reply.events().last().map(String::as_str),
        Some("message_stop")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_stdin_stops_the_server() -> Result<()> {
    let mut server = Server::start(&[]).await?;
    drop(server.child.stdin.take());
    let status = timeout(STEP, server.child.wait())
        .await
        .context("exited in time")??;
    assert_eq!(status.code(), Some(0));
    Ok(())
}
