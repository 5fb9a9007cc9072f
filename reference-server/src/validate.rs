//! Request validation with messages that name the problem.
//!
//! Bodies are parsed as `serde_json::Value` and checked field by field, so that each error says
//! which field is wrong and why (`messages[2].role must be "user" …`), where serde's derived
//! errors would only say what type was expected somewhere.

use serde_json::{Map, Value};

use semantic_stress::anthropic::Role;

/// Largest accepted `max_tokens`.
pub(crate) const MAX_TOKENS_LIMIT: u64 = 65_536;
/// Longest accepted session id.
const SESSION_ID_MAX: usize = 256;

/// A validated Messages (or count_tokens) request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParsedRequest {
    /// Model name, echoed.
    pub(crate) model: String,
    /// System prompt text.
    pub(crate) system: Option<String>,
    /// The turns, text joined per message.
    pub(crate) messages: Vec<(Role, String)>,
    /// Output bound (0 for count_tokens).
    pub(crate) max_tokens: u32,
    /// Stream the reply.
    pub(crate) stream: bool,
}

/// Which endpoint a body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `POST /v1/messages`: `max_tokens` required.
    Messages,
    /// `POST /v1/messages/count_tokens`: `max_tokens` not needed.
    CountTokens,
}

/// Parses and validates a request body.
pub(crate) fn parse_request(body: &[u8], endpoint: Endpoint) -> Result<ParsedRequest, String> {
    if body.is_empty() {
        return Err("request body is empty; expected a JSON object".to_owned());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err(format!(
            "request body must be a JSON object, got {}",
            kind(&value)
        ));
    };
    let model = match obj.get("model") {
        None => return Err("missing field `model`".to_owned()),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) => return Err("`model` must not be empty".to_owned()),
        Some(v) => return Err(format!("`model` must be a string, got {}", kind(v))),
    };
    let messages = parse_messages(obj.get("messages"))?;
    let max_tokens = match (obj.get("max_tokens"), endpoint) {
        (None, Endpoint::Messages) => return Err("missing field `max_tokens`".to_owned()),
        (None, Endpoint::CountTokens) => 0,
        (Some(v), _) => parse_max_tokens(v)?,
    };
    let system = match obj.get("system") {
        None | Some(Value::Null) => None,
        Some(v) => Some(text_of(v, "system")?),
    };
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(format!("`stream` must be a boolean, got {}", kind(v))),
    };
    check_sampling(&obj)?;
    Ok(ParsedRequest {
        model,
        system,
        messages,
        max_tokens,
        stream,
    })
}

fn parse_max_tokens(v: &Value) -> Result<u32, String> {
    let range = format!("an integer in 1..={MAX_TOKENS_LIMIT}");
    match v.as_u64() {
        Some(n) if (1..=MAX_TOKENS_LIMIT).contains(&n) => {
            // n <= 65536 fits in u32.
            Ok(n as u32)
        }
        _ if v.is_number() => Err(format!("`max_tokens` must be {range}, got {v}")),
        _ => Err(format!("`max_tokens` must be {range}, got {}", kind(v))),
    }
}

fn parse_messages(v: Option<&Value>) -> Result<Vec<(Role, String)>, String> {
    let list = match v {
        None => return Err("missing field `messages`".to_owned()),
        Some(Value::Array(list)) => list,
        Some(v) => return Err(format!("`messages` must be an array, got {}", kind(v))),
    };
    if list.is_empty() {
        return Err("`messages` must not be empty".to_owned());
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let Value::Object(m) = m else {
            return Err(format!(
                "`messages[{i}]` must be an object, got {}",
                kind(m)
            ));
        };
        let role = match m.get("role") {
            None => return Err(format!("`messages[{i}]`: missing field `role`")),
            Some(Value::String(r)) if r == "user" => Role::User,
            Some(Value::String(r)) if r == "assistant" => Role::Assistant,
            Some(v) => {
                return Err(format!(
                    "`messages[{i}].role` must be \"user\" or \"assistant\", got {v}"
                ));
            }
        };
        let expected = if i % 2 == 0 {
            Role::User
        } else {
            Role::Assistant
        };
        if role != expected {
            let (want, got) = (role_name(expected), role_name(role));
            return Err(if i == 0 {
                format!(
                    "`messages[0].role` must be \"user\": the first message must be a user turn, got \"{got}\""
                )
            } else {
                format!(
                    "`messages[{i}].role` must be \"{want}\": roles must alternate user/assistant, got \"{got}\" twice in a row"
                )
            });
        }
        let content = match m.get("content") {
            None => return Err(format!("`messages[{i}]`: missing field `content`")),
            Some(c) => text_of(c, &format!("messages[{i}].content"))?,
        };
        out.push((role, content));
    }
    Ok(out)
}

/// Text of a string or of a list of `{type:"text", text}` blocks (joined).
fn text_of(v: &Value, field: &str) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut out = String::new();
            for (j, b) in blocks.iter().enumerate() {
                let Value::Object(b) = b else {
                    return Err(format!(
                        "`{field}[{j}]` must be a text block object, got {}",
                        kind(b)
                    ));
                };
                match b.get("type") {
                    Some(Value::String(t)) if t == "text" => {}
                    Some(t) => {
                        return Err(format!("`{field}[{j}].type` must be \"text\", got {t}"));
                    }
                    None => return Err(format!("`{field}[{j}]`: missing field `type`")),
                }
                match b.get("text") {
                    Some(Value::String(t)) => out.push_str(t),
                    Some(t) => {
                        return Err(format!(
                            "`{field}[{j}].text` must be a string, got {}",
                            kind(t)
                        ));
                    }
                    None => return Err(format!("`{field}[{j}]`: missing field `text`")),
                }
            }
            Ok(out)
        }
        other => Err(format!(
            "`{field}` must be a string or an array of text blocks, got {}",
            kind(other)
        )),
    }
}

/// Checks the optional sampling fields (accepted, otherwise ignored).
fn check_sampling(obj: &Map<String, Value>) -> Result<(), String> {
    for (field, lo, hi) in [("temperature", 0.0, 1.0), ("top_p", 0.0, 1.0)] {
        match obj.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_f64().is_some_and(|x| (lo..=hi).contains(&x)) => {}
            Some(v) => {
                return Err(format!(
                    "`{field}` must be a number in {lo}..={hi}, got {v}"
                ));
            }
        }
    }
    match obj.get("top_k") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64().is_some() => {}
        Some(v) => return Err(format!("`top_k` must be a non-negative integer, got {v}")),
    }
    match obj.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => {}
        Some(v) => {
            return Err(format!(
                "`stop_sequences` must be an array of strings, got {v}"
            ));
        }
    }
    match obj.get("metadata") {
        None | Some(Value::Null | Value::Object(_)) => Ok(()),
        Some(v) => Err(format!("`metadata` must be an object, got {}", kind(v))),
    }
}

/// The agent named by an `X-Session-ID` header value: `sess_S`.
pub(crate) fn session_agent(raw: &[u8]) -> Result<String, String> {
    let ok = !raw.is_empty()
        && raw.len() <= SESSION_ID_MAX
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-');
    if ok {
        // All bytes are ASCII, so this is valid UTF-8.
        Ok(format!("sess_{}", String::from_utf8_lossy(raw)))
    } else {
        let shown: String = String::from_utf8_lossy(raw).chars().take(40).collect();
        Err(format!(
            "invalid X-Session-ID {shown:?}: must match [A-Za-z0-9_-]{{1,{SESSION_ID_MAX}}} ({} bytes given)",
            raw.len()
        ))
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

/// A JSON value's type, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
