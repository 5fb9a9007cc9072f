//! Raw HTTP/1 on a TCP stream, as little as the chaos target needs: reading a request head
//! and body (bounded), and writing heads, chunks and bodies byte for byte as a case wants them,
//! valid or not.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest request head read.
const MAX_HEAD: usize = 64 << 10;
/// Largest request body read.
const MAX_BODY: usize = 16 << 20;
/// Longest wait for a whole request (head and body) once its first byte is due.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A request's head as far as a case needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// The request target (path and query).
    pub(crate) path: String,
    /// `Content-Length`, 0 when absent.
    pub(crate) content_length: usize,
}

/// Why a connection ends: the client left, or sent something that is not a request.
pub(crate) type Ended = std::io::Error;

/// Reads the next request head from `stream`; `None` when the client closed the connection
/// between requests. Bytes past the head stay in `buf`.
pub(crate) async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Option<Head>, Ended> {
    let read = async {
        loop {
            if let Some(end) = find(buf, b"\r\n\r\n") {
                let head = parse_head(&buf[..end])?;
                buf.drain(..end + 4);
                return Ok(Some(head));
            }
            if buf.len() > MAX_HEAD {
                return Err(invalid("request head too large"));
            }
            let mut chunk = [0_u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return if buf.is_empty() {
                    Ok(None)
                } else {
                    Err(invalid("request head cut short"))
                };
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(REQUEST_READ_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| Err(invalid("request head not sent in time")))
}

/// Reads a body of `len` bytes (`buf` holds what already arrived).
pub(crate) async fn read_body(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    len: usize,
) -> Result<Vec<u8>, Ended> {
    if len > MAX_BODY {
        return Err(invalid("request body too large"));
    }
    let read = async {
        while buf.len() < len {
            let mut chunk = [0_u8; 16 << 10];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(invalid("request body cut short"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok(buf.drain(..len).collect())
    };
    tokio::time::timeout(REQUEST_READ_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| Err(invalid("request body not sent in time")))
}

/// Waits until the client closes the connection (or resets it), discarding what it sends.
pub(crate) async fn until_closed(stream: &mut TcpStream) {
    let mut sink = [0_u8; 4096];
    while let Ok(n) = stream.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
}

/// `HTTP/1.1 {status}` with `headers` and an end of head.
pub(crate) fn head(status: &str, headers: &[(&str, String)]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A whole response: `status`, a content type and a body with its exact length.
pub(crate) fn response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = head(
        status,
        &[
            ("content-type", content_type.to_owned()),
            ("content-length", body.len().to_string()),
        ],
    );
    out.extend_from_slice(body);
    out
}

/// One chunk of a chunked body.
pub(crate) async fn chunk(stream: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    stream
        .write_all(format!("{:x}\r\n", data.len()).as_bytes())
        .await?;
    stream.write_all(data).await?;
    stream.write_all(b"\r\n").await
}

/// The head of a chunked event stream.
pub(crate) fn sse_head() -> Vec<u8> {
    head(
        "200 OK",
        &[
            ("content-type", "text/event-stream".to_owned()),
            ("cache-control", "no-cache".to_owned()),
            ("transfer-encoding", "chunked".to_owned()),
        ],
    )
}

fn parse_head(bytes: &[u8]) -> Result<Head, Ended> {
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("request head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(_method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("not a request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(invalid("not HTTP/1"));
    }
    let mut content_length = 0;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(invalid("header line without colon"));
        };
        if name.trim().eq_ignore_ascii_case("content-length") {
            content_length = value
                .trim()
                .parse()
                .map_err(|_| invalid("content-length is not a number"))?;
        }
    }
    Ok(Head {
        path: path.to_owned(),
        content_length,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(what: &str) -> Ended {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_path_and_length() {
        let head =
            parse_head(b"POST /chaos/drip/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 12")
                .unwrap();
        assert_eq!(head.path, "/chaos/drip/v1/messages");
        assert_eq!(head.content_length, 12);
        assert!(parse_head(b"GARBAGE").is_err());
        assert!(parse_head(b"GET / HTTP/1.1\r\ncontent-length: x").is_err());
    }

    #[test]
    fn heads_and_responses_are_framed() {
        assert_eq!(
            response("200 OK", "text/plain", b"hi"),
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nhi"
        );
    }
}
