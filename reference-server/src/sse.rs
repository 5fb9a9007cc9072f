//! Server-sent events of a streamed Messages reply, in the exact Anthropic sequence:
//! `message_start`, `content_block_start`, `ping`, one `content_block_delta` per chunk,
//! `content_block_stop`, `message_delta`, `message_stop` (or `error` after the headers).
//!
//! Each event is an `event:` line, one `data:` line of compact JSON, and a blank line.

use bytes::Bytes;
use serde_json::{Value, json};

use semantic_stress::anthropic::Usage;

/// One event as bytes.
pub(crate) fn event(name: &str, data: &Value) -> Bytes {
    // Compact JSON never contains a raw newline, so one `data:` line suffices.
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// `message_start`: the message with empty content and the prompt's usage.
pub(crate) fn message_start(id: &str, model: &str, usage: &Usage) -> Bytes {
    event(
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "content": [], "model": model,
            "stop_reason": null, "stop_sequence": null, "usage": usage,
        }}),
    )
}

/// `content_block_start` of the single text block.
pub(crate) fn content_block_start() -> Bytes {
    event(
        "content_block_start",
        &json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
    )
}

/// `ping`.
pub(crate) fn ping() -> Bytes {
    event("ping", &json!({"type": "ping"}))
}

/// `content_block_delta` carrying `text`.
pub(crate) fn delta(text: &str) -> Bytes {
    event(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": text}}),
    )
}

/// `content_block_stop`.
pub(crate) fn content_block_stop() -> Bytes {
    event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    )
}

/// `message_delta` with the stop reason and the output token count.
pub(crate) fn message_delta(stop_reason: &str, output_tokens: u64) -> Bytes {
    event(
        "message_delta",
        &json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                "usage": {"output_tokens": output_tokens}}),
    )
}

/// `message_stop`.
pub(crate) fn message_stop() -> Bytes {
    event("message_stop", &json!({"type": "message_stop"}))
}

/// `error` after the headers were sent.
pub(crate) fn error(kind: &str, message: &str) -> Bytes {
    event(
        "error",
        &json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &Bytes) -> (String, Value) {
        let text = std::str::from_utf8(bytes).unwrap();
        assert!(text.ends_with("\n\n"), "{text:?}");
        let mut lines = text.trim_end().lines();
        let name = lines
            .next()
            .unwrap()
            .strip_prefix("event: ")
            .unwrap()
            .to_owned();
        let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
        assert!(lines.next().is_none(), "one data line");
        (name, serde_json::from_str(data).unwrap())
    }

    #[test]
    fn events_have_name_type_and_one_data_line() {
        let usage = Usage {
            input_tokens: 12,
            cache_read_input_tokens: 4,
            cache_creation_input_tokens: 8,
            output_tokens: 0,
        };
        let all = [
            message_start("msg_1", "m", &usage),
            content_block_start(),
            ping(),
            delta("multi\nline \"quoted\""),
            content_block_stop(),
            message_delta("end_turn", 3),
            message_stop(),
            error("overloaded_error", "busy"),
        ];
        let names: Vec<String> = all
            .iter()
            .map(|b| {
                let (name, data) = parse(b);
                assert_eq!(data["type"], name.as_str());
                name
            })
            .collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
                "error"
            ]
        );
        let (_, start) = parse(&all[0]);
        assert_eq!(start["message"]["usage"]["cache_read_input_tokens"], 4);
        assert_eq!(start["message"]["content"], json!([]));
        let (_, d) = parse(&all[3]);
        assert_eq!(d["delta"]["text"], "multi\nline \"quoted\"");
        let (_, md) = parse(&all[5]);
        assert_eq!(md["delta"]["stop_reason"], "end_turn");
        assert_eq!(md["usage"]["output_tokens"], 3);
    }
}
