//! What the fuzz targets check, shared by the libFuzzer targets (`fuzz_targets/`, nightly) and
//! the stable driver (`examples/fuzz.rs` at the root): any input may be refused, none may
//! panic, and every bound holds.

use semantic_stress::anthropic::sse::{Event, ParseError, Parser};
use semantic_stress::anthropic::stream::Accumulator;
use semantic_stress::anthropic::{ErrorEnvelope, MessagesResponse};

/// Text kept by the accumulators below.
const TEXT_LIMIT: usize = 64;

fn parse(chunks: &[&[u8]], limit: usize) -> Result<Vec<Event>, ParseError> {
    let mut parser = Parser::new(limit);
    let mut out = Vec::new();
    for chunk in chunks {
        parser.feed(chunk, &mut out)?;
    }
    Ok(out)
}

/// The SSE parser and the stream accumulator over any bytes. The first byte picks the event
/// size limit and where the rest is split: a split never changes the result, no event passes
/// the limit, and the accumulated text stays within its bound.
pub(crate) fn sse_parser(data: &[u8]) {
    let Some((&knob, bytes)) = data.split_first() else {
        return;
    };
    let limit = 1 + usize::from(knob) * 64;
    let cut = usize::from(knob) % (bytes.len() + 1);
    let whole = parse(&[bytes], limit);
    let split = parse(&[&bytes[..cut], &bytes[cut..]], limit);
    assert_eq!(whole, split, "splitting at {cut} changed the result");
    let Ok(events) = whole else {
        return;
    };
    let mut acc = Accumulator::new(TEXT_LIMIT);
    for event in &events {
        assert!(event.data.len() <= limit, "event past the limit {limit}");
        let _ = acc.apply(event);
    }
    assert!(acc.text.len() <= TEXT_LIMIT);
}

/// The readers of usage and errors over any bytes: a non-streamed reply, an error envelope,
/// and every event type whose data carries usage or text.
pub(crate) fn usage_reader(data: &[u8]) {
    if let Ok(message) = serde_json::from_slice::<MessagesResponse>(data) {
        let _ = message.text();
        let _ = message.usage.is_inclusive();
    }
    let _ = ErrorEnvelope::parse(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut acc = Accumulator::new(TEXT_LIMIT);
    for kind in [
        "message_start",
        "content_block_delta",
        "message_delta",
        "error",
        "message_stop",
    ] {
        let event = Event {
            event: Some(kind.to_owned()),
            data: text.to_owned(),
            stamp: None,
        };
        let _ = acc.apply(&event);
    }
    assert!(acc.text.len() <= TEXT_LIMIT);
}
