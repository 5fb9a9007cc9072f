//! Keep-alive after a streamed reply: the llama.cpp personality closes the connection once the
//! stream is written, as llama-server does (without `Connection: close`), so a request sent at
//! once on that connection is never answered; other personalities keep the connection.

use std::time::Duration;

use anyhow::{Context, Result};
use reference_server::{Personality, ReferenceServer, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// A streamed Messages request on a kept-alive connection.
fn streamed() -> Vec<u8> {
    let body = r#"{"model":"test-model","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    format!(
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads until the chunked stream's terminator; returns the reply head and body.
async fn read_stream(socket: &mut TcpStream) -> Result<String> {
    let mut seen = Vec::new();
    let mut buf = [0_u8; 4096];
    while !seen.ends_with(b"0\r\n\r\n") {
        let n = timeout(Duration::from_secs(10), socket.read(&mut buf))
            .await
            .with_context(|| {
                format!(
                    "the stream ends in time: {}",
                    String::from_utf8_lossy(&seen)
                )
            })??;
        anyhow::ensure!(n > 0, "connection closed mid-stream");
        seen.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&seen).into_owned())
}

/// Sends two streamed requests on one connection, the second at once after the first reply;
/// returns the first reply and what the second got (`None`: the connection was closed).
async fn two_on_one(kind: Personality) -> Result<(String, Option<String>)> {
    let server = ReferenceServer::start(ServerConfig::default().personality(kind)).await?;
    let addr = server.base_url().trim_start_matches("http://").to_owned();
    let mut socket = TcpStream::connect(&addr).await?;
    socket.write_all(&streamed()).await?;
    let first = read_stream(&mut socket).await?;
    // At once, as an agent's next turn: the write itself succeeds either way.
    socket.write_all(&streamed()).await?;
    let second = match read_stream(&mut socket).await {
        Ok(reply) => Some(reply),
        Err(e)
            if e.to_string().contains("closed") || e.downcast_ref::<std::io::Error>().is_some() =>
        {
            None
        }
        Err(e) => return Err(e),
    };
    Ok((first, second))
}

#[tokio::test]
async fn llamacpp_closes_after_a_streamed_reply_without_saying_so() -> Result<()> {
    let (first, second) = two_on_one(Personality::LlamaCpp).await?;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(
        !first.to_ascii_lowercase().contains("connection: close"),
        "no Connection: close header: {first}"
    );
    assert!(first.contains("message_stop"), "{first}");
    assert!(
        second.is_none(),
        "the second request was answered: {second:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_contract_keeps_the_connection_after_a_stream() -> Result<()> {
    for kind in [Personality::Semantic, Personality::AgentMemory] {
        let (first, second) = two_on_one(kind).await?;
        assert!(first.contains("message_stop"), "{kind:?}: {first}");
        let second = second.with_context(|| format!("{kind:?}: second request not answered"))?;
        assert!(second.starts_with("HTTP/1.1 200"), "{kind:?}: {second}");
    }
    Ok(())
}
