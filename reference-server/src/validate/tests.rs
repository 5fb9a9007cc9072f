//! Every bad-input case gets a message naming the problem.

use super::*;

fn err(body: &str) -> String {
    parse_request(body.as_bytes(), Endpoint::Messages).expect_err(body)
}

const OK: &str = r#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;

#[test]
fn a_good_request_parses() {
    let r = parse_request(OK.as_bytes(), Endpoint::Messages).unwrap();
    assert_eq!(r.model, "m");
    assert_eq!(r.max_tokens, 10);
    assert_eq!(r.messages, vec![(Role::User, "hi".to_owned())]);
    assert!(!r.stream);
}

#[test]
fn blocks_system_and_sampling_are_accepted() {
    let body = r#"{"model":"m","max_tokens":1,"stream":true,"system":[{"type":"text","text":"be brief"}],
        "temperature":0.5,"top_p":0.9,"top_k":5,"stop_sequences":["x"],"metadata":{"user_id":"u"},
        "messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
                    {"role":"assistant","content":"c"},{"role":"user","content":"d"}]}"#;
    let r = parse_request(body.as_bytes(), Endpoint::Messages).unwrap();
    assert_eq!(r.system.as_deref(), Some("be brief"));
    assert_eq!(r.messages[0].1, "ab");
    assert_eq!(r.messages.len(), 3);
    assert!(r.stream);
}

#[test]
fn invalid_json_and_non_objects() {
    assert!(err("{not json").starts_with("invalid JSON"));
    assert!(err("").contains("empty"));
    assert!(err("[1,2]").contains("must be a JSON object, got an array"));
}

#[test]
fn missing_fields_are_named() {
    assert_eq!(
        err(r#"{"max_tokens":1,"messages":[]}"#),
        "missing field `model`"
    );
    assert_eq!(
        err(r#"{"model":"m","max_tokens":1}"#),
        "missing field `messages`"
    );
    assert_eq!(
        err(r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#),
        "missing field `max_tokens`"
    );
    assert!(
        err(r#"{"model":"m","max_tokens":1,"messages":[{"role":"user"}]}"#).contains("`content`")
    );
    assert!(err(r#"{"model":"m","max_tokens":1,"messages":[{"content":"x"}]}"#).contains("`role`"));
}

#[test]
fn wrong_types_are_named() {
    assert!(
        err(r#"{"model":5,"max_tokens":1,"messages":[]}"#)
            .contains("`model` must be a string, got a number")
    );
    assert!(
        err(r#"{"model":"m","max_tokens":"9","messages":[{"role":"user","content":"x"}]}"#)
            .contains("`max_tokens` must be an integer in 1..=65536, got a string")
    );
    assert!(
        err(r#"{"model":"m","max_tokens":1,"messages":{}}"#)
            .contains("`messages` must be an array")
    );
    assert!(err(r#"{"model":"m","max_tokens":1,"stream":"yes","messages":[{"role":"user","content":"x"}]}"#)
        .contains("`stream` must be a boolean"));
    assert!(
        err(r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":7}]}"#)
            .contains("`messages[0].content` must be a string or an array of text blocks")
    );
    assert!(err(r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image"}]}]}"#)
        .contains("`messages[0].content[0].type` must be \"text\""));
    assert!(err(r#"{"model":"m","max_tokens":1,"temperature":3,"messages":[{"role":"user","content":"x"}]}"#)
        .contains("`temperature`"));
    assert!(
        err(r#"{"model":"m","max_tokens":1,"messages":[{"role":"robot","content":"x"}]}"#)
            .contains("\"user\" or \"assistant\"")
    );
}

#[test]
fn empty_and_non_alternating_messages() {
    assert_eq!(
        err(r#"{"model":"m","max_tokens":1,"messages":[]}"#),
        "`messages` must not be empty"
    );
    assert!(
        err(r#"{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":"x"}]}"#)
            .contains("first message must be a user turn")
    );
    let twice = r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"},{"role":"user","content":"y"}]}"#;
    assert!(err(twice).contains("`messages[1].role` must be \"assistant\": roles must alternate"));
}

#[test]
fn max_tokens_out_of_range() {
    for bad in ["0", "65537", "-1", "1.5"] {
        let body = format!(
            r#"{{"model":"m","max_tokens":{bad},"messages":[{{"role":"user","content":"x"}}]}}"#
        );
        assert!(err(&body).contains("1..=65536"), "{bad}");
    }
    let edge = r#"{"model":"m","max_tokens":65536,"messages":[{"role":"user","content":"x"}]}"#;
    assert!(parse_request(edge.as_bytes(), Endpoint::Messages).is_ok());
}

#[test]
fn count_tokens_needs_no_max_tokens() {
    let body = r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#;
    assert_eq!(
        parse_request(body.as_bytes(), Endpoint::CountTokens)
            .unwrap()
            .max_tokens,
        0
    );
}

#[test]
fn session_ids() {
    assert_eq!(session_agent(b"abc_D-9").unwrap(), "sess_abc_D-9");
    assert!(session_agent(&[b'a'; 256]).is_ok());
    for bad in [&b""[..], b"has space", b"semi;colon", b"\xff", &[b'a'; 257]] {
        let e = session_agent(bad).unwrap_err();
        assert!(e.starts_with("invalid X-Session-ID"), "{e}");
    }
}
