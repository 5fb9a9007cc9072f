//! Server-sent events of a streamed Messages reply: an incremental parser for the harness and an
//! encoder for the reference server.
//!
//! The parser follows the WHATWG event-stream rules that matter here: lines end in LF, CRLF or a
//! lone CR; a line starting with `:` is a comment; `event:` names the event; several `data:`
//! lines join with `\n`; a blank line dispatches the event. Bytes may arrive split anywhere,
//! including inside a CRLF pair or a UTF-8 sequence.
//!
//! One comment is read rather than ignored: `: t=<µs>` before an event is the writer's time
//! stamp (the reference server writes it when asked with `x-semantic-stamp: 1`), kept in
//! [`Event::stamp`]. Any other comment is ignored, and so is a stamp to every other client.

use std::time::Duration;

use bytes::Bytes;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field; `None` when the event had none (the default type `message`).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The writer's time stamp, from a `: t=<µs>` comment line within the event's lines: when
    /// the writer wrote the event, measured from the request's arrival at the writer.
    pub stamp: Option<Duration>,
}

/// Why a stream could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// One event grew past the parser's limit.
    #[error("event larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// An event's field was not UTF-8.
    #[error("event is not valid UTF-8")]
    InvalidUtf8,
}

/// An incremental event-stream parser: feed it bytes as they arrive, take events as they
/// complete.
///
/// Memory: O(largest event), bounded by `max_event_bytes`.
#[derive(Debug)]
pub struct Parser {
    line: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
    stamp: Option<Duration>,
    pending_cr: bool,
    event_bytes: usize,
    max_event_bytes: usize,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new(1 << 20)
    }
}

impl Parser {
    /// A parser that rejects events larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            event: None,
            data: String::new(),
            has_data: false,
            stamp: None,
            pending_cr: false,
            event_bytes: 0,
            max_event_bytes,
        }
    }

    /// Feeds bytes; every event they complete is pushed to `out`.
    ///
    /// # Errors
    ///
    /// [`ParseError`] when an event is too large or not UTF-8; the parser should then be
    /// dropped.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Event>) -> Result<(), ParseError> {
        for &b in bytes {
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(out)?,
                b'\r' => {
                    self.pending_cr = true;
                    self.end_line(out)?;
                }
                _ => {
                    self.event_bytes += 1;
                    if self.event_bytes > self.max_event_bytes {
                        return Err(ParseError::TooLarge {
                            limit: self.max_event_bytes,
                        });
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(())
    }

    /// Whether bytes of an unfinished event are buffered (a stream that ends here was cut).
    pub fn has_partial(&self) -> bool {
        !self.line.is_empty() || self.has_data || self.event.is_some()
    }

    fn end_line(&mut self, out: &mut Vec<Event>) -> Result<(), ParseError> {
        if self.line.is_empty() {
            if self.has_data {
                out.push(Event {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data),
                    stamp: self.stamp.take(),
                });
            }
            self.event = None;
            self.stamp = None;
            self.has_data = false;
            self.event_bytes = 0;
            return Ok(());
        }
        let line = std::mem::take(&mut self.line);
        let line = std::str::from_utf8(&line).map_err(|_| ParseError::InvalidUtf8)?;
        if let Some(comment) = line.strip_prefix(':') {
            if let Some(micros) = comment.trim_start().strip_prefix("t=") {
                self.stamp = micros.parse().ok().map(Duration::from_micros);
            }
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            // `id`, `retry` and unknown fields carry nothing the harness uses.
            _ => {}
        }
        Ok(())
    }
}

/// Encodes one event as `event: NAME\ndata: DATA\n\n` (multi-line data split into `data:` lines).
pub fn encode(event: &str, data: &str) -> Bytes {
    let mut s = String::with_capacity(event.len() + data.len() + 16);
    s.push_str("event: ");
    s.push_str(event);
    s.push('\n');
    for line in data.split('\n') {
        s.push_str("data: ");
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    Bytes::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> (Vec<Event>, bool) {
        let mut p = Parser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        (out, p.has_partial())
    }

    const STREAM: &str = "event: message_start\ndata: {\"a\":1}\n\n: keep-alive comment\n\nevent: ping\ndata: {}\n\n: t=1234\nevent: content_block_delta\ndata: line one\ndata: line two\n\n";

    fn expected() -> Vec<Event> {
        vec![
            Event {
                event: Some("message_start".into()),
                data: "{\"a\":1}".into(),
                stamp: None,
            },
            Event {
                event: Some("ping".into()),
                data: "{}".into(),
                stamp: None,
            },
            Event {
                event: Some("content_block_delta".into()),
                data: "line one\nline two".into(),
                stamp: Some(Duration::from_micros(1234)),
            },
        ]
    }

    #[test]
    fn parses_whole_stream_with_comment_and_multiline_data() {
        let (events, partial) = parse_all(&[STREAM.as_bytes()]);
        assert_eq!(events, expected());
        assert!(!partial);
    }

    #[test]
    fn split_at_every_byte_boundary_gives_same_events() {
        let bytes = STREAM.as_bytes();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let (events, _) = parse_all(&[&bytes[..i], &bytes[i..j], &bytes[j..]]);
                assert_eq!(events, expected(), "split at {i} and {j}");
            }
        }
    }

    #[test]
    fn crlf_and_lone_cr_line_endings() {
        let crlf = STREAM.replace('\n', "\r\n");
        let cr = STREAM.replace('\n', "\r");
        for s in [crlf, cr] {
            let bytes = s.as_bytes();
            for i in 0..=bytes.len() {
                let (events, _) = parse_all(&[&bytes[..i], &bytes[i..]]);
                assert_eq!(events, expected(), "split at {i} of {s:?}");
            }
        }
    }

    #[test]
    fn truncated_stream_leaves_partial_event() {
        let (events, partial) = parse_all(&[b"event: message_start\ndata: {\"a\"" as &[u8]]);
        assert!(events.is_empty());
        assert!(partial);
        let (events, partial) = parse_all(&[b"event: x\ndata: 1\n" as &[u8]]);
        assert!(events.is_empty(), "no blank line: not dispatched");
        assert!(partial);
    }

    #[test]
    fn utf8_split_inside_a_character() {
        let s = "event: d\ndata: héllo ✓\n\n".as_bytes();
        for i in 0..=s.len() {
            let (events, _) = parse_all(&[&s[..i], &s[i..]]);
            assert_eq!(events[0].data, "héllo ✓");
        }
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut p = Parser::new(16);
        let mut out = Vec::new();
        let err = p.feed(&[b'x'; 64], &mut out).unwrap_err();
        assert_eq!(err, ParseError::TooLarge { limit: 16 });
    }

    #[test]
    fn encode_round_trips() {
        let bytes = encode("content_block_delta", "a\nb");
        assert_eq!(
            &bytes[..],
            b"event: content_block_delta\ndata: a\ndata: b\n\n"
        );
        let (events, _) = parse_all(&[&bytes]);
        assert_eq!(events[0].data, "a\nb");
    }

    mod arbitrary_bytes {
        use super::*;
        use proptest::prelude::*;

        /// Feeds `chunks` to a fresh parser with `limit`; the events, or the first error.
        fn parse(chunks: &[&[u8]], limit: usize) -> Result<Vec<Event>, ParseError> {
            let mut p = Parser::new(limit);
            let mut out = Vec::new();
            for c in chunks {
                p.feed(c, &mut out)?;
            }
            Ok(out)
        }

        /// Bytes that look like an event stream often enough to reach every branch: field
        /// names, separators, line ends of every kind, multi-byte and invalid UTF-8.
        fn stream_bytes() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                Just(b"event: ".to_vec()),
                Just(b"data: ".to_vec()),
                Just(b"data:".to_vec()),
                Just(b": comment".to_vec()),
                Just(b"id: 1".to_vec()),
                Just(b"\n".to_vec()),
                Just(b"\r\n".to_vec()),
                Just(b"\r".to_vec()),
                Just("é✓".as_bytes().to_vec()),
                Just(vec![0xff, 0xfe]),
                proptest::collection::vec(any::<u8>(), 0..16),
            ];
            proptest::collection::vec(piece, 0..40).prop_map(|p| p.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Any bytes, split anywhere: never a panic, the same events as unsplit, and no
            /// event larger than the limit.
            #[test]
            fn any_split_of_any_bytes_parses_the_same(
                bytes in prop_oneof![stream_bytes(), proptest::collection::vec(any::<u8>(), 0..256)],
                cut in any::<prop::sample::Index>(),
                limit in 1usize..64,
            ) {
                let whole = parse(&[&bytes], limit);
                let at = cut.index(bytes.len() + 1);
                let split = parse(&[&bytes[..at], &bytes[at..]], limit);
                match (&whole, &split) {
                    (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                    (Err(a), Err(b)) => prop_assert_eq!(a, b),
                    _ => prop_assert!(false, "split changed the result: {:?} vs {:?}", whole, split),
                }
                if let Ok(events) = whole {
                    for e in events {
                        let size = e.data.len() + e.event.as_ref().map_or(0, String::len);
                        prop_assert!(size <= limit, "event of {} bytes past {}", size, limit);
                    }
                }
            }

            /// What the encoder writes, the parser reads back, whatever the text.
            #[test]
            fn encoded_events_round_trip(name in "[a-z_]{1,20}", data in "[^\r]{0,200}") {
                let bytes = encode(&name, &data);
                let events = parse(&[&bytes], 1 << 20).expect("valid stream");
                prop_assert_eq!(events, vec![Event { event: Some(name), data, stamp: None }]);
            }
        }
    }
}
