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

mod arbitrary_bytes {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    /// Any JSON value, nested a few levels.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|x| json!(x)),
            "[ -~é✓]{0,12}".prop_map(Value::String),
            Just(json!("user")),
            Just(json!("assistant")),
            Just(json!("text")),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("role".to_owned()),
                        Just("content".to_owned()),
                        Just("type".to_owned()),
                        Just("text".to_owned()),
                        "[a-z_]{1,8}",
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Request bodies with the real field names and values of any type.
    fn request_body() -> impl Strategy<Value = Vec<u8>> {
        let field = prop_oneof![
            Just("model"),
            Just("messages"),
            Just("max_tokens"),
            Just("stream"),
            Just("system"),
            Just("temperature"),
            Just("top_k"),
            Just("stop_sequences"),
            Just("metadata"),
        ];
        let object =
            proptest::collection::vec((field.clone(), any_json()), 0..9).prop_map(|fields| {
                let map: serde_json::Map<String, Value> =
                    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                serde_json::to_vec(&Value::Object(map)).unwrap_or_default()
            });
        // A valid request with one field replaced by anything: deep into the validator.
        let one_off = (field, any_json()).prop_map(|(k, v)| {
            let mut valid: Value = serde_json::from_str(OK).unwrap_or_default();
            valid[k] = v;
            serde_json::to_vec(&valid).unwrap_or_default()
        });
        prop_oneof![
            3 => object,
            3 => one_off,
            1 => proptest::collection::vec(any::<u8>(), 0..200),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any bytes: an error that says something, or a request within the contract.
        #[test]
        fn any_body_is_refused_with_a_reason_or_valid(
            body in request_body(),
            count in any::<bool>(),
        ) {
            let endpoint = if count { Endpoint::CountTokens } else { Endpoint::Messages };
            match parse_request(&body, endpoint) {
                Err(reason) => prop_assert!(!reason.is_empty()),
                Ok(r) => {
                    prop_assert!(!r.model.is_empty());
                    prop_assert!(!r.messages.is_empty());
                    prop_assert!(u64::from(r.max_tokens) <= MAX_TOKENS_LIMIT);
                    if !count {
                        prop_assert!(r.max_tokens >= 1);
                    }
                }
            }
        }

        /// Any header bytes: a session agent exactly when the id is 1 to 256 bytes of
        /// `[A-Za-z0-9_-]`.
        #[test]
        fn any_session_header_is_judged_by_its_grammar(
            raw in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..300),
                "[A-Za-z0-9_-]{0,300}".prop_map(String::into_bytes),
            ],
        ) {
            let valid = (1..=256).contains(&raw.len())
                && raw.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
            prop_assert_eq!(session_agent(&raw).is_ok(), valid);
        }
    }
}
