//! Body readers: a whole body (bounded), a body drained unread, a Messages reply, and a
//! Messages event stream folded event by event. Each fills in what it learned in the record
//! and returns the [`Failure`] that ends it, if any.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::classify::{Failure, error_chain, truncated};
use crate::RequestResult;
use crate::anthropic::MessagesResponse;
use crate::anthropic::sse::{Event, Parser};
use crate::anthropic::stream::{Accumulator, Step};

/// Largest non-streamed body read, in bytes; a larger one is a protocol failure.
pub(crate) const MAX_BODY_BYTES: usize = 8 << 20;
/// Largest single server-sent event, in bytes.
pub(crate) const MAX_EVENT_BYTES: usize = 1 << 20;

/// Reads a whole body, at most [`MAX_BODY_BYTES`].
pub(crate) async fn read_body(mut body: Incoming) -> Result<Bytes, Failure> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Failure::BodyCut(error_chain(&e)))?;
        if let Some(data) = frame.data_ref() {
            if buf.len() + data.len() > MAX_BODY_BYTES {
                return Err(Failure::BodyTooLarge {
                    limit: MAX_BODY_BYTES,
                });
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(Bytes::from(buf))
}

/// Reads a body to its end without keeping it (same size bound as [`read_body`]).
pub(crate) async fn drain_body(mut body: Incoming) -> Result<(), Failure> {
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Failure::BodyCut(error_chain(&e)))?;
        if let Some(data) = frame.data_ref() {
            len += data.len();
            if len > MAX_BODY_BYTES {
                return Err(Failure::BodyTooLarge {
                    limit: MAX_BODY_BYTES,
                });
            }
        }
    }
    Ok(())
}

/// Reads a non-streamed Messages reply: usage and text (up to `text_limit` bytes). It arrives
/// whole, so it has no first-token time: its arrival is its end.
pub(crate) async fn read_message(
    body: Incoming,
    record: &mut RequestResult,
    text_limit: usize,
    max_tokens: u32,
) -> Result<(), Failure> {
    let bytes = read_body(body).await?;
    let message: MessagesResponse = serde_json::from_slice(&bytes).map_err(Failure::NotAMessage)?;
    record.usage = Some(message.usage);
    if text_limit > 0 {
        let text = message.text();
        record.text = Some(truncated(text.as_bytes(), text_limit));
    }
    if max_tokens > 0 && message.usage.output_tokens == 0 {
        return Err(Failure::ZeroOutput { streamed: false });
    }
    Ok(())
}

/// Reads a Messages event stream: chunks, usage, text (up to `text_limit` bytes) and the
/// arrival of every text delta ([`RequestResult::delta_arrived`]; a gap over `stall` is a
/// stall). A delta's arrival is when the network frame holding it was read: the events of one
/// frame arrive together. What arrived before a failure stays in the record; a stream that
/// ends without `message_stop`, or with an `error` event, is a failure.
pub(crate) async fn read_stream(
    mut body: Incoming,
    record: &mut RequestResult,
    text_limit: usize,
    max_tokens: u32,
    stall: Duration,
) -> Result<(), Failure> {
    let mut parser = Parser::new(MAX_EVENT_BYTES);
    let mut acc = Accumulator::new(text_limit);
    let mut events: Vec<Event> = Vec::new();
    let mut failure: Option<Failure> = None;
    'read: while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                failure = Some(Failure::StreamCut(error_chain(&e)));
                break;
            }
        };
        let arrived = Instant::now();
        let Some(data) = frame.data_ref() else {
            continue;
        };
        if let Err(e) = parser.feed(data, &mut events) {
            failure = Some(e.into());
            break;
        }
        for event in events.drain(..) {
            match acc.apply(&event) {
                Ok(Step::Delta) => record.delta_arrived(arrived, stall),
                Ok(Step::Stop | Step::Nothing) => {}
                Err(e) => {
                    failure = Some(e.into());
                    break 'read;
                }
            }
        }
    }
    record.chunks = acc.chunks;
    record.usage = acc.started.then_some(acc.usage);
    if text_limit > 0 {
        record.text = Some(std::mem::take(&mut acc.text));
    }
    match failure {
        Some(f) => Err(f),
        None if !acc.stopped => Err(Failure::StreamWithoutStop),
        None if max_tokens > 0 && acc.usage.output_tokens == 0 => {
            Err(Failure::ZeroOutput { streamed: true })
        }
        None => Ok(()),
    }
}
