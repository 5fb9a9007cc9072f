//! The `chaos-server` binary as a user starts it: it announces its address, answers
//! `/chaos-stats`, plays the case a path names, and exits when its stdin closes.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::timeout;

/// Longest wait for any single step.
const STEP: Duration = Duration::from_secs(30);

async fn get(addr: &str, path: &str) -> Result<Vec<u8>> {
    let mut stream = timeout(STEP, TcpStream::connect(addr)).await??;
    let request = format!("GET {path} HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut got = vec![0_u8; 4096];
    let n = timeout(STEP, stream.read(&mut got)).await??;
    got.truncate(n);
    Ok(got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_cases_by_path_and_exits_with_its_stdin() -> Result<()> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chaos-server"))
        .args(["--port", "0", "--exit-on-stdin-eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawn chaos-server")?;
    let stdout = child.stdout.take().context("stdout")?;
    let line = timeout(STEP, BufReader::new(stdout).lines().next_line())
        .await??
        .context("a first line")?;
    let addr = line
        .strip_prefix("listening on http://")
        .with_context(|| format!("unexpected first line {line:?}"))?
        .to_owned();
    let stats = get(&addr, "/chaos-stats").await?;
    let stats = String::from_utf8_lossy(&stats);
    assert!(stats.starts_with("HTTP/1.1 200"), "{stats}");
    assert!(stats.contains("\"open_connections\":1"), "{stats}");
    let garbage = get(&addr, "/chaos/garbage/v1/messages").await?;
    assert!(!garbage.starts_with(b"HTTP/"), "{garbage:?}");
    drop(child.stdin.take());
    let status = timeout(STEP, child.wait())
        .await
        .context("exits when its stdin closes")??;
    assert!(status.success(), "{status}");
    Ok(())
}
