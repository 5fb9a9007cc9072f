//! Body readers: a whole body (bounded), a body drained unread, a Messages reply, and a
//! Messages event stream folded event by event. Each fills in what it learned in the record
//! and returns the [`Failure`] that ends it, if any. Every bound comes from
//! [`ResponseLimits`].

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::ResponseLimits;
use super::classify::{Failure, error_chain, truncated};
use crate::RequestResult;
use crate::anthropic::MessagesResponse;
use crate::anthropic::sse::{Event, Parser};
use crate::anthropic::stream::{Accumulator, Step};

/// Reads a whole body of at most `limit` bytes.
pub(crate) async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, Failure> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Failure::BodyCut(error_chain(&e)))?;
        if let Some(data) = frame.data_ref() {
            if buf.len().saturating_add(data.len()) > limit {
                return Err(Failure::BodyTooLarge { limit });
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(Bytes::from(buf))
}

/// Reads a body of at most `limit` bytes to its end without keeping it.
pub(crate) async fn drain_body(mut body: Incoming, limit: usize) -> Result<(), Failure> {
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Failure::BodyCut(error_chain(&e)))?;
        if let Some(data) = frame.data_ref() {
            len = len.saturating_add(data.len());
            if len > limit {
                return Err(Failure::BodyTooLarge { limit });
            }
        }
    }
    Ok(())
}

/// How to read one reply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading {
    /// Text kept, in bytes (0: none).
    pub(crate) text_limit: usize,
    /// The request's `max_tokens` (0: a reply without output is fine).
    pub(crate) max_tokens: u32,
    /// A gap between deltas longer than this is a stall.
    pub(crate) stall: Duration,
    /// Self-test mode: measure each delta's arrival against the server's write stamp.
    pub(crate) truth: bool,
    /// Test-only delay injected after each frame is read, before its arrival is taken.
    pub(crate) delay: Duration,
    /// The bounds on the reply.
    pub(crate) limits: ResponseLimits,
}

/// Reads a non-streamed Messages reply: usage and text (up to `text_limit` bytes). It arrives
/// whole, so it has no first-token time: its arrival is its end. Returns the message id.
pub(crate) async fn read_message(
    body: Incoming,
    record: &mut RequestResult,
    reading: Reading,
) -> Result<String, Failure> {
    let bytes = read_body(body, reading.limits.body_bytes).await?;
    let message: MessagesResponse = serde_json::from_slice(&bytes).map_err(Failure::NotAMessage)?;
    record.usage = Some(message.usage);
    if reading.text_limit > 0 {
        let text = message.text();
        record.text = Some(truncated(text.as_bytes(), reading.text_limit));
    }
    if reading.max_tokens > 0 && message.usage.output_tokens == 0 {
        return Err(Failure::ZeroOutput { streamed: false });
    }
    Ok(message.id)
}

/// Reads a Messages event stream: chunks, usage, text (up to `text_limit` bytes) and the
/// arrival of every text delta ([`RequestResult::delta_arrived`]; a gap over `stall` is a
/// stall). A delta's arrival is when the network frame holding it was read: the events of one
/// frame arrive together. What arrived before a failure stays in the record; a stream that
/// ends without `message_stop`, or with an `error` event, is a failure. In self-test mode each
/// delta's arrival is also compared with the server's stamp ([`crate::metrics::TimingTruth`]).
/// Returns the message id (empty when `message_start` had none).
pub(crate) async fn read_stream(
    body: Incoming,
    record: &mut RequestResult,
    reading: Reading,
) -> Result<String, Failure> {
    let mut acc = Accumulator::new(reading.text_limit);
    let failure = fold_stream(body, record, reading, &mut acc).await;
    record.chunks = acc.chunks;
    record.usage = acc.started.then_some(acc.usage);
    if reading.text_limit > 0 {
        record.text = Some(std::mem::take(&mut acc.text));
    }
    match failure {
        Some(f) => Err(f),
        None if !acc.stopped => Err(Failure::StreamWithoutStop),
        None if reading.max_tokens > 0 && acc.usage.output_tokens == 0 => {
            Err(Failure::ZeroOutput { streamed: true })
        }
        None => Ok(acc.id.unwrap_or_default()),
    }
}

/// Feeds the stream's bytes to `acc` until it ends or a bound or an error stops it.
async fn fold_stream(
    mut body: Incoming,
    record: &mut RequestResult,
    reading: Reading,
    acc: &mut Accumulator,
) -> Option<Failure> {
    let limits = reading.limits;
    let mut parser = Parser::new(limits.event_bytes);
    let mut events: Vec<Event> = Vec::new();
    let mut n_events = 0u64;
    // One timer for the whole stream, pushed back whenever bytes arrive.
    let idle = tokio::time::sleep_until(idle_deadline(limits.stream_idle));
    tokio::pin!(idle);
    loop {
        let frame = tokio::select! {
            biased;
            frame = body.frame() => frame,
            () = &mut idle => return Some(Failure::StreamIdle { after: limits.stream_idle }),
        };
        let frame = match frame {
            None => return None,
            Some(Ok(f)) => f,
            Some(Err(e)) => return Some(Failure::StreamCut(error_chain(&e))),
        };
        if !reading.delay.is_zero() {
            tokio::time::sleep(reading.delay).await;
        }
        let arrived = Instant::now();
        let Some(data) = frame.data_ref() else {
            continue;
        };
        idle.as_mut().reset(idle_deadline(limits.stream_idle));
        if let Err(e) = parser.feed(data, &mut events) {
            return Some(e.into());
        }
        n_events = n_events.saturating_add(events.len() as u64);
        if n_events > limits.stream_events {
            return Some(Failure::StreamTooLong {
                limit: limits.stream_events,
            });
        }
        for event in events.drain(..) {
            match acc.apply(&event) {
                Ok(Step::Delta) => {
                    record.delta_arrived(arrived, reading.stall);
                    if reading.truth {
                        let started = record.started_at;
                        let t = record.truth.get_or_insert_with(Box::default);
                        let origin = t.sent_at.unwrap_or(started);
                        t.observe(arrived.saturating_duration_since(origin), event.stamp);
                    }
                }
                Ok(Step::Stop | Step::Nothing) => {}
                Err(e) => return Some(e.into()),
            }
        }
    }
}

/// `now + idle`, or a year ahead when that would overflow.
fn idle_deadline(idle: std::time::Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(idle)
        .unwrap_or_else(|| now + std::time::Duration::from_secs(365 * 24 * 3600))
}
