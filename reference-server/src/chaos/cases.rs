//! [`Case`]: every hostile or broken behaviour the chaos target can play, and how it plays it
//! on the raw connection.

use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use semantic_stress::anthropic::{MessagesResponse, Role, TextBlock, Usage};

use super::wire::{self, chunk, head, response, sse_head, until_closed};
use crate::sse;

/// One behaviour of the chaos target, chosen per request by its path: `/chaos/<name>/…`
/// (any other path plays [`Case::Ok`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Case {
    /// A valid reply: a message, or an event stream when the request asks for one.
    Ok,
    /// Bytes that are no HTTP instead of a status line, then close.
    Garbage,
    /// A status line, then silence until the client leaves.
    StatusThenSilence,
    /// A status line, then a 1 KiB header line every 10 ms, forever.
    EndlessHeaders,
    /// A 1 MiB header, then a valid reply.
    HugeHeader,
    /// `Content-Length: 20` before a whole reply and 1 MiB more.
    BodyLongerThanLength,
    /// `Content-Length` of 1 MiB, 100 bytes of body, then close.
    BodyShorterThanLength,
    /// A chunked body whose second chunk size is not hexadecimal.
    BrokenChunked,
    /// Invalid UTF-8 inside the reply's text (JSON or event data).
    InvalidUtf8,
    /// A 200 whose JSON (or event data) does not parse.
    InvalidJson,
    /// An event stream that never ends: a delta every 10 ms, forever.
    EndlessStream,
    /// A valid reply whose head comes at once and whose body comes one byte a second.
    Drip,
    /// A reply whose text is 100 MiB: one event (or one body) of 100 MiB.
    HugeEvent,
    /// `content-encoding: gzip` on a body that is not gzip.
    FakeGzip,
    /// An HTTP/1.0 reply without length, delimited by closing the connection.
    Http10Close,
    /// `302 Found` back to the same path.
    RedirectLoop,
    /// `100 Continue` and `103 Early Hints` before a valid reply.
    Informational,
    /// A head announcing 1000 bytes, then a TCP reset.
    ResetAfterHeaders,
    /// `413` with the error envelope before the request body was read, then close.
    EarlyReply,
    /// Every reply on a connection after its first is the first one again (same message id):
    /// the reply to an earlier request.
    StaleReply,
    /// A valid reply naming another model.
    WrongModel,
}

impl Case {
    /// Every case, in the order of the documentation.
    pub const ALL: [Self; 21] = [
        Self::Ok,
        Self::Garbage,
        Self::StatusThenSilence,
        Self::EndlessHeaders,
        Self::HugeHeader,
        Self::BodyLongerThanLength,
        Self::BodyShorterThanLength,
        Self::BrokenChunked,
        Self::InvalidUtf8,
        Self::InvalidJson,
        Self::EndlessStream,
        Self::Drip,
        Self::HugeEvent,
        Self::FakeGzip,
        Self::Http10Close,
        Self::RedirectLoop,
        Self::Informational,
        Self::ResetAfterHeaders,
        Self::EarlyReply,
        Self::StaleReply,
        Self::WrongModel,
    ];

    /// The case's name in paths (`/chaos/<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Garbage => "garbage",
            Self::StatusThenSilence => "status-then-silence",
            Self::EndlessHeaders => "endless-headers",
            Self::HugeHeader => "huge-header",
            Self::BodyLongerThanLength => "body-longer-than-length",
            Self::BodyShorterThanLength => "body-shorter-than-length",
            Self::BrokenChunked => "broken-chunked",
            Self::InvalidUtf8 => "invalid-utf8",
            Self::InvalidJson => "invalid-json",
            Self::EndlessStream => "endless-stream",
            Self::Drip => "drip",
            Self::HugeEvent => "huge-event",
            Self::FakeGzip => "fake-gzip",
            Self::Http10Close => "http10-close",
            Self::RedirectLoop => "redirect-loop",
            Self::Informational => "informational",
            Self::ResetAfterHeaders => "reset-after-headers",
            Self::EarlyReply => "early-reply",
            Self::StaleReply => "stale-reply",
            Self::WrongModel => "wrong-model",
        }
    }

    /// The base URL path that selects this case: `/chaos/<name>`.
    pub fn prefix(self) -> String {
        format!("/chaos/{}", self.name())
    }

    /// The case a request path selects.
    pub fn of_path(path: &str) -> Self {
        let name = path
            .strip_prefix("/chaos/")
            .and_then(|rest| rest.split(['/', '?']).next())
            .unwrap_or("");
        Self::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .unwrap_or(Self::Ok)
    }
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the connection does after a case played.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Read the next request.
    KeepAlive,
    /// Close the connection (FIN).
    Close,
    /// The client is gone, or the case reset the connection: just drop it.
    Drop,
}

/// What a case needs to know of the request.
#[derive(Debug, Clone)]
pub(crate) struct Asked {
    pub(crate) path: String,
    pub(crate) model: String,
    pub(crate) stream: bool,
    pub(crate) id: String,
}

impl Asked {
    /// From a request body (lenient: a body that is no JSON asks for a plain reply).
    pub(crate) fn new(path: String, body: &[u8], id: String) -> Self {
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        Self {
            path,
            model: json
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("chaos")
                .to_owned(),
            stream: json.get("stream").and_then(Value::as_bool).unwrap_or(false),
            id,
        }
    }
}

/// State kept per connection.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    /// The first reply sent on this connection, for [`Case::StaleReply`].
    first_reply: Option<Vec<u8>>,
}

/// Size of [`Case::HugeEvent`]'s text.
const HUGE: usize = 100 << 20;
/// Size of [`Case::HugeHeader`]'s header value.
const HUGE_HEADER: usize = 1 << 20;
/// Pause between the deltas of [`Case::EndlessStream`] and the lines of
/// [`Case::EndlessHeaders`].
const TICK: Duration = Duration::from_millis(10);

/// Plays `case` for `asked` on `stream`.
pub(crate) async fn play(
    case: Case,
    stream: &mut TcpStream,
    asked: &Asked,
    conn: &mut ConnState,
) -> std::io::Result<Next> {
    match case {
        Case::Ok => send(stream, &ok(asked, &asked.model)).await,
        Case::WrongModel => send(stream, &ok(asked, "another-model")).await,
        Case::StaleReply => {
            let reply = conn
                .first_reply
                .get_or_insert_with(|| ok(asked, &asked.model))
                .clone();
            send(stream, &reply).await
        }
        Case::Garbage => {
            stream
                .write_all(b"SSH-2.0-chaos \xff\xfe\x00 this is not HTTP\r\n\r\n")
                .await?;
            Ok(Next::Close)
        }
        Case::StatusThenSilence => {
            stream.write_all(b"HTTP/1.1 200 OK\r\n").await?;
            until_closed(stream).await;
            Ok(Next::Drop)
        }
        Case::EndlessHeaders => endless_headers(stream).await,
        Case::HugeHeader => huge_header(stream, asked).await,
        Case::BodyLongerThanLength => {
            let body = message(asked, &asked.model, "longer than announced");
            let mut out = head(
                "200 OK",
                &[
                    ("content-type", "application/json".to_owned()),
                    ("content-length", "20".to_owned()),
                ],
            );
            out.extend_from_slice(&body);
            stream.write_all(&out).await?;
            stream.write_all(&vec![b'x'; 1 << 20]).await?;
            Ok(Next::Close)
        }
        Case::BodyShorterThanLength => {
            let body = message(asked, &asked.model, "shorter than announced");
            let mut out = head(
                "200 OK",
                &[
                    ("content-type", "application/json".to_owned()),
                    ("content-length", (1 << 20).to_string()),
                ],
            );
            out.extend_from_slice(&body[..100.min(body.len())]);
            stream.write_all(&out).await?;
            Ok(Next::Close)
        }
        Case::BrokenChunked => {
            let mut out = head(
                "200 OK",
                &[
                    ("content-type", "application/json".to_owned()),
                    ("transfer-encoding", "chunked".to_owned()),
                ],
            );
            out.extend_from_slice(b"10\r\n{\"id\":\"msg_chaos\r\nzz\r\nnot a chunk\r\n");
            stream.write_all(&out).await?;
            Ok(Next::Close)
        }
        Case::InvalidUtf8 => {
            let text = b"\xff\xfe\xfd";
            send(stream, &broken_text(asked, text)).await
        }
        Case::InvalidJson => send(stream, &broken_text(asked, b"\"}}{not json")).await,
        Case::EndlessStream => endless_stream(stream, asked).await,
        Case::Drip => {
            let reply = ok(asked, &asked.model);
            let body_at = reply
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(0, |at| at + 4);
            stream.write_all(&reply[..body_at]).await?;
            for byte in &reply[body_at..] {
                stream.write_all(&[*byte]).await?;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(Next::KeepAlive)
        }
        Case::HugeEvent => huge_event(stream, asked).await,
        Case::FakeGzip => {
            let (content_type, body) = ok_body(asked, &asked.model);
            let mut out = head(
                "200 OK",
                &[
                    ("content-type", content_type.to_owned()),
                    ("content-encoding", "gzip".to_owned()),
                    ("content-length", body.len().to_string()),
                ],
            );
            out.extend_from_slice(&body);
            send(stream, &out).await
        }
        Case::Http10Close => {
            let (content_type, body) = ok_body(asked, &asked.model);
            let mut out =
                format!("HTTP/1.0 200 OK\r\ncontent-type: {content_type}\r\n\r\n").into_bytes();
            out.extend_from_slice(&body);
            stream.write_all(&out).await?;
            Ok(Next::Close)
        }
        Case::RedirectLoop => {
            let out = head(
                "302 Found",
                &[
                    ("location", asked.path.clone()),
                    ("content-length", "0".to_owned()),
                ],
            );
            send(stream, &out).await
        }
        Case::Informational => {
            let mut out = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
            out.extend_from_slice(
                b"HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload\r\n\r\n",
            );
            out.extend_from_slice(&ok(asked, &asked.model));
            send(stream, &out).await
        }
        Case::ResetAfterHeaders => {
            let out = head(
                "200 OK",
                &[
                    ("content-type", "application/json".to_owned()),
                    ("content-length", "1000".to_owned()),
                ],
            );
            stream.write_all(&out).await?;
            stream.flush().await?;
            // Let the head arrive before the reset, so the reset cuts the body, not the head.
            tokio::time::sleep(Duration::from_millis(100)).await;
            stream.set_zero_linger()?;
            Ok(Next::Drop)
        }
        // Played by the connection loop before the body is read.
        Case::EarlyReply => Ok(Next::Close),
    }
}

/// [`Case::EarlyReply`]'s reply: 413 with the envelope, sent before the body is read.
pub(crate) fn early_reply() -> Vec<u8> {
    let body = serde_json::json!({"type": "error", "error": {
        "type": "request_too_large", "message": "replied before reading the body"}});
    let body = body.to_string();
    let mut out = head(
        "413 Payload Too Large",
        &[
            ("content-type", "application/json".to_owned()),
            ("content-length", body.len().to_string()),
            ("connection", "close".to_owned()),
        ],
    );
    out.extend_from_slice(body.as_bytes());
    out
}

async fn send(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<Next> {
    stream.write_all(bytes).await?;
    Ok(Next::KeepAlive)
}

/// A valid reply as one response, streamed or not as asked.
fn ok(asked: &Asked, model: &str) -> Vec<u8> {
    let (content_type, body) = ok_body(asked, model);
    response("200 OK", content_type, &body)
}

fn ok_body(asked: &Asked, model: &str) -> (&'static str, Vec<u8>) {
    if asked.stream {
        let mut body = Vec::new();
        for event in stream_events(asked, model, &["Hello", " from", " chaos"]) {
            body.extend_from_slice(&event);
        }
        ("text/event-stream", body)
    } else {
        (
            "application/json",
            message(asked, model, "Hello from chaos"),
        )
    }
}

fn stream_events(asked: &Asked, model: &str, deltas: &[&str]) -> Vec<bytes::Bytes> {
    let mut events = vec![
        sse::message_start(&asked.id, model, &usage(0)),
        sse::content_block_start(),
    ];
    events.extend(deltas.iter().map(|d| sse::delta(d)));
    events.push(sse::content_block_stop());
    events.push(sse::message_delta("end_turn", deltas.len() as u64));
    events.push(sse::message_stop());
    events
}

fn usage(output_tokens: u64) -> Usage {
    Usage {
        input_tokens: 8,
        output_tokens,
        ..Usage::default()
    }
}

fn message(asked: &Asked, model: &str, text: &str) -> Vec<u8> {
    let reply = MessagesResponse {
        id: asked.id.clone(),
        kind: "message".to_owned(),
        role: Role::Assistant,
        content: vec![TextBlock::new(text)],
        model: model.to_owned(),
        stop_reason: Some("end_turn".to_owned()),
        stop_sequence: None,
        usage: usage(3),
    };
    // A plain data struct with string keys always serializes.
    serde_json::to_vec(&reply).unwrap_or_default()
}

/// A reply whose text is the raw bytes `text` (not escaped): invalid UTF-8 or broken JSON.
fn broken_text(asked: &Asked, text: &[u8]) -> Vec<u8> {
    let marker = "@@TEXT@@";
    if asked.stream {
        let mut body = Vec::new();
        for event in stream_events(asked, &asked.model, &[marker]) {
            body.extend_from_slice(&replace(&event, marker.as_bytes(), text));
        }
        response("200 OK", "text/event-stream", &body)
    } else {
        let body = replace(
            &message(asked, &asked.model, marker),
            marker.as_bytes(),
            text,
        );
        response("200 OK", "application/json", &body)
    }
}

fn replace(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    match haystack.windows(needle.len()).position(|w| w == needle) {
        Some(at) => [&haystack[..at], with, &haystack[at + needle.len()..]].concat(),
        None => haystack.to_vec(),
    }
}

async fn endless_headers(stream: &mut TcpStream) -> std::io::Result<Next> {
    stream.write_all(b"HTTP/1.1 200 OK\r\n").await?;
    let value = "a".repeat(1000);
    for i in 0u64.. {
        stream
            .write_all(format!("x-chaos-{i}: {value}\r\n").as_bytes())
            .await?;
        tokio::time::sleep(TICK).await;
    }
    Ok(Next::Drop)
}

async fn huge_header(stream: &mut TcpStream, asked: &Asked) -> std::io::Result<Next> {
    stream.write_all(b"HTTP/1.1 200 OK\r\nx-huge: ").await?;
    let piece = vec![b'h'; 64 << 10];
    for _ in 0..HUGE_HEADER / piece.len() {
        stream.write_all(&piece).await?;
    }
    let (content_type, body) = ok_body(asked, &asked.model);
    let mut rest = format!(
        "\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    rest.extend_from_slice(&body);
    send(stream, &rest).await
}

async fn endless_stream(stream: &mut TcpStream, asked: &Asked) -> std::io::Result<Next> {
    stream.write_all(&sse_head()).await?;
    chunk(
        stream,
        &sse::message_start(&asked.id, &asked.model, &usage(0)),
    )
    .await?;
    chunk(stream, &sse::content_block_start()).await?;
    loop {
        chunk(stream, &sse::delta("tok")).await?;
        tokio::time::sleep(TICK).await;
    }
}

/// 100 MiB of text, written 64 KiB at a time from one buffer: the target never holds it.
async fn huge_event(stream: &mut TcpStream, asked: &Asked) -> std::io::Result<Next> {
    let marker = "@@TEXT@@";
    let piece = vec![b'x'; 64 << 10];
    let n_pieces = HUGE / piece.len();
    if asked.stream {
        stream.write_all(&sse_head()).await?;
        let events = stream_events(asked, &asked.model, &[marker]);
        for event in &events {
            let Some(at) = event
                .windows(marker.len())
                .position(|w| w == marker.as_bytes())
            else {
                chunk(stream, event).await?;
                continue;
            };
            chunk(stream, &event[..at]).await?;
            for _ in 0..n_pieces {
                chunk(stream, &piece).await?;
            }
            chunk(stream, &event[at + marker.len()..]).await?;
        }
        stream.write_all(b"0\r\n\r\n").await?;
    } else {
        let body = message(asked, &asked.model, marker);
        let at = body
            .windows(marker.len())
            .position(|w| w == marker.as_bytes())
            .unwrap_or(0);
        let len = body.len() - marker.len() + n_pieces * piece.len();
        let out = head(
            "200 OK",
            &[
                ("content-type", "application/json".to_owned()),
                ("content-length", len.to_string()),
            ],
        );
        stream.write_all(&out).await?;
        stream.write_all(&body[..at]).await?;
        for _ in 0..n_pieces {
            stream.write_all(&piece).await?;
        }
        stream.write_all(&body[at + marker.len()..]).await?;
    }
    Ok(Next::KeepAlive)
}

/// The request body of [`Case::EarlyReply`], read after the reply so the close is clean.
pub(crate) async fn drain(stream: &mut TcpStream, buf: &mut Vec<u8>, len: usize) {
    let _ = wire::read_body(stream, buf, len).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_select_cases_and_names_round_trip() {
        for case in Case::ALL {
            assert_eq!(
                Case::of_path(&format!("{}/v1/messages", case.prefix())),
                case
            );
        }
        assert_eq!(Case::of_path("/v1/messages"), Case::Ok);
        assert_eq!(Case::of_path("/chaos/unknown/v1/messages"), Case::Ok);
        assert_eq!(Case::of_path("/chaos/drip?x=1"), Case::Drip);
    }

    #[test]
    fn broken_text_is_really_broken() {
        let asked = Asked::new("/".into(), br#"{"model":"m"}"#, "msg_1".into());
        let bytes = broken_text(&asked, b"\xff");
        assert!(std::str::from_utf8(&bytes).is_err());
        let ok = ok(&asked, "m");
        let body = &ok[ok.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
        let reply: MessagesResponse = serde_json::from_slice(body).unwrap();
        assert_eq!(reply.id, "msg_1");
    }
}
