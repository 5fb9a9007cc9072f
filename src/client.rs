//! Sends one request, returns one [`RequestResult`]: whatever happens, never an error.
//!
//! One pooled hyper-util HTTP/1.1 client per harness. Traps of this stack, handled here:
//! - the legacy client has no cap on connections: the harness caps concurrency itself (one
//!   in-flight request per worker), so the pool never holds more than `workers` connections;
//! - its idle pool (90 s) outlives servers' keep-alive timeouts (uvicorn 5 s, hyper 30 s): the
//!   idle timeout here is 4 s (with a pool timer, without which it is not enforced);
//! - `retry_canceled_requests` would retry failures silently: it is off, every failure counts;
//! - no local address is bound before connect (that exhausts loopback ports under churn).
//!
//! Workers of a run do not go through the pool: each owns a [`Conn`] (one keep-alive
//! connection), which takes about 40% less client CPU per request than the pooled path.

mod conn;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Method, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::anthropic::sse::{Event, Parser};
use crate::anthropic::stream::{Accumulator, Step};
use crate::anthropic::{ErrorEnvelope, MessagesRequest, MessagesResponse};
use crate::{Error, Outcome, RequestResult};

pub(crate) use conn::Conn;

const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
const X_SESSION_ID: HeaderName = HeaderName::from_static("x-session-id");
const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");

/// Largest non-streamed body read, in bytes; a larger one is a protocol failure.
const MAX_BODY_BYTES: usize = 8 << 20;
/// Largest single server-sent event, in bytes.
const MAX_EVENT_BYTES: usize = 1 << 20;

/// What a request expects back, which decides its outcome class on a 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Any 2xx is a success (health, stats, admin routes).
    Any,
    /// A Messages reply: a valid message body, or a stream ending in `message_stop`; with
    /// non-zero `max_tokens`, zero output tokens is a protocol failure.
    Message {
        /// Whether the reply is a server-sent-event stream.
        stream: bool,
        /// The request's `max_tokens`.
        max_tokens: u32,
    },
}

/// One request to send: method, path, body and what to expect.
#[derive(Debug, Clone)]
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// Path and query, starting with `/`.
    pub path: String,
    /// JSON body, if any.
    pub body: Option<Bytes>,
    /// What the reply must be to count as a success.
    pub expect: Expect,
    /// `X-Session-ID`: the agent this request belongs to.
    pub session_id: Option<String>,
    /// Extra headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Keep the reply's text (bounded) in the record.
    pub keep_text: bool,
    /// Conversation turn, 1-based, recorded for cache-rate figures.
    pub turn: Option<u32>,
}

impl Request {
    /// `POST /v1/messages` with the given body; streamed when `body.stream` is set.
    pub fn messages(body: &MessagesRequest) -> Self {
        // Serializing plain data structs with string keys cannot fail.
        let json = serde_json::to_vec(body).expect("MessagesRequest serializes");
        Self {
            method: Method::POST,
            path: "/v1/messages".to_owned(),
            body: Some(Bytes::from(json)),
            expect: Expect::Message {
                stream: body.stream,
                max_tokens: body.max_tokens,
            },
            session_id: None,
            headers: Vec::new(),
            keep_text: false,
            turn: None,
        }
    }

    /// `POST path` with a JSON body; a Messages reply is expected when `path` is
    /// `/v1/messages` (with `stream` and `max_tokens` read from the body), any 2xx otherwise.
    pub fn post_json(path: impl Into<String>, body: &serde_json::Value) -> Self {
        let path = path.into();
        let expect = if path == "/v1/messages" {
            Expect::Message {
                stream: body
                    .get("stream")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false),
                max_tokens: body
                    .get("max_tokens")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0),
            }
        } else {
            Expect::Any
        };
        Self {
            method: Method::POST,
            path,
            body: Some(Bytes::from(body.to_string())),
            expect,
            session_id: None,
            headers: Vec::new(),
            keep_text: false,
            turn: None,
        }
    }

    /// A request without body (`GET`, `DELETE`, …); any 2xx is a success.
    pub fn bare(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            body: None,
            expect: Expect::Any,
            session_id: None,
            headers: Vec::new(),
            keep_text: false,
            turn: None,
        }
    }

    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self::bare(Method::GET, path)
    }

    /// Sets `X-Session-ID`.
    #[must_use]
    pub fn session(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Keeps the reply's text in the record.
    #[must_use]
    pub fn keep_text(mut self) -> Self {
        self.keep_text = true;
        self
    }

    /// Marks the conversation turn (1-based).
    #[must_use]
    pub fn turn(mut self, turn: u32) -> Self {
        self.turn = Some(turn);
        self
    }
}

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
pub(crate) struct ClientConfig {
    pub(crate) base_url: String,
    pub(crate) connections: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) api_key: Option<String>,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) graceful_statuses: Vec<u16>,
    pub(crate) text_limit: usize,
}

/// A pooled HTTP/1.1 client that turns every request into one [`RequestResult`].
///
/// Cheap to clone: clones share the connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    http: HyperClient<HttpConnector, Full<Bytes>>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    scheme_authority: String,
    /// `host:port` to connect to (port 80 when the URL has none).
    connect_to: String,
    /// The `Host` header of requests sent on a [`Conn`].
    host: HeaderValue,
    prefix: String,
    api_key: Option<HeaderValue>,
    config: ClientConfig,
}

impl Client {
    pub(crate) fn new(config: ClientConfig) -> crate::Result<Self> {
        let uri: Uri = config.base_url.parse().map_err(|e| Error::InvalidUrl {
            url: config.base_url.clone(),
            reason: format!("{e}"),
        })?;
        let bad = |reason: &str| Error::InvalidUrl {
            url: config.base_url.clone(),
            reason: reason.to_owned(),
        };
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => return Err(bad(&format!("scheme {other} is not supported, use http"))),
            None => return Err(bad("missing scheme, expected http://HOST:PORT")),
        }
        let authority = uri.authority().ok_or_else(|| bad("missing host"))?;
        let prefix = uri.path().trim_end_matches('/').to_owned();
        let connect_to = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| bad("invalid host"))?;
        let api_key = match &config.api_key {
            None => None,
            Some(key) => Some(
                HeaderValue::from_str(key).map_err(|_| Error::InvalidConfig {
                    field: "api_key",
                    reason: "not a valid header value".to_owned(),
                })?,
            ),
        };
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(conn::IDLE_LIMIT)
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(config.connections.max(1))
            .retry_canceled_requests(false)
            .build(connector);
        Ok(Self {
            http,
            shared: Arc::new(Shared {
                scheme_authority: format!("http://{authority}"),
                connect_to,
                host,
                prefix,
                api_key,
                config,
            }),
        })
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.shared.config.base_url
    }

    /// Sends `request`, meant to start at `scheduled_at`, and records what happened.
    ///
    /// Never fails: a request that gets no response, a bad one or none in time is a record
    /// with the matching [`Outcome`]. Bounded by the request timeout.
    pub async fn send(&self, request: &Request, scheduled_at: Instant) -> RequestResult {
        self.send_via(None, request, scheduled_at).await
    }

    /// [`send`](Self::send) on a worker's own connection instead of the shared pool.
    pub(crate) async fn send_on(
        &self,
        conn: &mut Conn,
        request: &Request,
        scheduled_at: Instant,
    ) -> RequestResult {
        self.send_via(Some(conn), request, scheduled_at).await
    }

    async fn send_via(
        &self,
        conn: Option<&mut Conn>,
        request: &Request,
        scheduled_at: Instant,
    ) -> RequestResult {
        let started_at = Instant::now();
        let mut record = RequestResult::pending(scheduled_at, started_at);
        record.agent_id = request.session_id.clone();
        record.turn = request.turn;
        record.streamed = matches!(request.expect, Expect::Message { stream: true, .. });
        let timeout = self.shared.config.request_timeout;
        let exchange = async {
            match conn {
                Some(conn) => self.exchange_on(conn, request, &mut record).await,
                None => self.exchange(request, &mut record).await,
            }
        };
        if tokio::time::timeout(timeout, exchange).await.is_err() {
            record.outcome = Outcome::Timeout;
            record.error = Some(format!(
                "no complete response within {:.1} s",
                timeout.as_secs_f64()
            ));
        }
        record.finished_at = Instant::now();
        record
    }

    /// `GET path` (or another bare method) and parse the JSON body; for control routes
    /// (health, stats, admin), not load.
    ///
    /// # Errors
    ///
    /// [`Error::Server`] when there is no 2xx JSON reply in time.
    pub async fn control(&self, request: &Request) -> crate::Result<serde_json::Value> {
        let body = self.control_body(request).await?;
        if body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| Error::Server {
            what: format!("{} {}", request.method, request.path),
            reason: format!("invalid JSON: {e}"),
        })
    }

    /// Like [`control`](Self::control), for a text body (Prometheus `/metrics`).
    ///
    /// # Errors
    ///
    /// [`Error::Server`] when there is no 2xx reply in time.
    pub async fn control_text(&self, request: &Request) -> crate::Result<String> {
        let body = self.control_body(request).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    async fn control_body(&self, request: &Request) -> crate::Result<Bytes> {
        let what = format!("{} {}", request.method, request.path);
        let fut = async {
            let response = self
                .http
                .request(self.build(request)?)
                .await
                .map_err(|e| format!("no response: {}", error_chain(&e)))?;
            let status = response.status();
            let body = read_body(response.into_body()).await?;
            if !status.is_success() {
                return Err(format!(
                    "status {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ));
            }
            Ok(body)
        };
        tokio::time::timeout(self.shared.config.request_timeout, fut)
            .await
            .unwrap_or_else(|_| Err("no reply in time".to_owned()))
            .map_err(|reason| Error::Server { what, reason })
    }

    /// The request for the shared pool: absolute URI, `Host` added by the pool.
    fn build(&self, request: &Request) -> Result<http::Request<Full<Bytes>>, String> {
        let shared = &self.shared;
        let uri = format!(
            "{}{}{}",
            shared.scheme_authority, shared.prefix, request.path
        );
        let uri: Uri = uri
            .parse()
            .map_err(|e| format!("cannot build request: invalid URI {uri:?}: {e}"))?;
        self.build_with(request, uri, false)
    }

    /// The request with `uri`; with `host`, the `Host` header is set here (origin-form URI).
    fn build_with(
        &self,
        request: &Request,
        uri: Uri,
        host: bool,
    ) -> Result<http::Request<Full<Bytes>>, String> {
        let shared = &self.shared;
        let mut built = http::Request::new(Full::new(request.body.clone().unwrap_or_default()));
        *built.method_mut() = request.method.clone();
        *built.uri_mut() = uri;
        let headers: &mut HeaderMap = built.headers_mut();
        if host {
            headers.insert(HOST, shared.host.clone());
        }
        if request.body.is_some() {
            headers.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(key) = &shared.api_key {
            headers.append(X_API_KEY, key.clone());
        }
        headers.append(ANTHROPIC_VERSION, HeaderValue::from_static("2023-06-01"));
        if let Some(session) = &request.session_id {
            let value = HeaderValue::from_str(session)
                .map_err(|e| format!("cannot build request: session id {session:?}: {e}"))?;
            headers.append(X_SESSION_ID, value);
        }
        for (name, value) in shared.config.headers.iter().chain(&request.headers) {
            headers.append(name.clone(), value.clone());
        }
        Ok(built)
    }

    async fn exchange(&self, request: &Request, record: &mut RequestResult) {
        let http_request = match self.build(request) {
            Ok(r) => r,
            Err(e) => {
                record.outcome = Outcome::ClientError;
                record.error = Some(e);
                return;
            }
        };
        let response = match self.http.request(http_request).await {
            Ok(r) => r,
            Err(e) => {
                record.outcome = Outcome::Connect;
                record.error = Some(error_chain(&e));
                return;
            }
        };
        self.receive(request, record, response).await;
    }

    /// [`exchange`](Self::exchange) on `conn`; the connection is kept for the next request
    /// only when this response was read whole.
    async fn exchange_on(&self, conn: &mut Conn, request: &Request, record: &mut RequestResult) {
        let shared = &self.shared;
        let built = conn
            .uri(&shared.prefix, &request.path)
            .and_then(|uri| self.build_with(request, uri, true));
        let http_request = match built {
            Ok(r) => r,
            Err(e) => return fail(record, Outcome::ClientError, e),
        };
        let mut sender = match conn
            .checkout(&shared.connect_to, shared.config.connect_timeout)
            .await
        {
            Ok(s) => s,
            Err(e) => return fail(record, Outcome::Connect, e),
        };
        let response = match sender.send_request(http_request).await {
            Ok(r) => r,
            Err(e) => return fail(record, Outcome::Connect, error_chain(&e)),
        };
        self.receive(request, record, response).await;
        let read_whole = record.status != 0
            && !matches!(
                record.outcome,
                Outcome::Protocol | Outcome::Timeout | Outcome::Connect
            );
        if read_whole {
            conn.put_back(sender);
        }
    }

    /// Reads and classifies a response.
    async fn receive(
        &self,
        request: &Request,
        record: &mut RequestResult,
        response: http::Response<hyper::body::Incoming>,
    ) {
        record.first_byte_at = Some(Instant::now());
        record.status = response.status().as_u16();
        record.retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let text_limit = if request.keep_text {
            self.shared.config.text_limit
        } else {
            0
        };
        let body = response.into_body();
        if response_is_success(record.status) {
            match request.expect {
                Expect::Message {
                    stream: true,
                    max_tokens,
                } if is_sse => {
                    read_stream(body, record, text_limit, max_tokens).await;
                }
                Expect::Message { max_tokens, .. } => {
                    read_message(body, record, text_limit, max_tokens).await;
                }
                Expect::Any if text_limit == 0 => match drain_body(body).await {
                    Ok(()) => {
                        record.outcome = Outcome::Success;
                        record.first_token_at = Some(Instant::now());
                    }
                    Err(e) => fail(record, Outcome::Protocol, e),
                },
                Expect::Any => match read_body(body).await {
                    Ok(bytes) => {
                        record.outcome = Outcome::Success;
                        record.first_token_at = Some(Instant::now());
                        record.text = Some(truncated(&bytes, text_limit));
                    }
                    Err(e) => fail(record, Outcome::Protocol, e),
                },
            }
            return;
        }
        let bytes = match read_body(body).await {
            Ok(b) => b,
            Err(e) => {
                fail(record, Outcome::Protocol, e);
                return;
            }
        };
        let envelope = ErrorEnvelope::parse(&bytes);
        record.error_type = envelope.as_ref().map(|e| e.error.kind.clone());
        let graceful = &self.shared.config.graceful_statuses;
        record.outcome = classify_failure(
            record.status,
            record.retry_after.is_some(),
            envelope.is_some(),
            graceful,
        );
        record.error = Some(match &envelope {
            Some(e) => format!("{} {}: {}", record.status, e.error.kind, e.error.message),
            None => format!(
                "{} without error envelope: {}",
                record.status,
                truncated(&bytes, 200)
            ),
        });
    }
}

/// A `Retry-After` value as the contract allows it: whole seconds, at least 1 (`0` invites a
/// retry storm; the HTTP-date form is not used by this server family).
fn retry_after(value: &str) -> Option<Duration> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|s| *s >= 1)
        .map(Duration::from_secs)
}

fn response_is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// The outcome class of a non-2xx reply.
///
/// A status in `graceful` is a graceful rejection only with `Retry-After` and the error
/// envelope; without them it falls back to its plain class (4xx client error, 5xx server error).
pub(crate) fn classify_failure(
    status: u16,
    has_retry_after: bool,
    has_envelope: bool,
    graceful: &[u16],
) -> Outcome {
    if graceful.contains(&status) && has_retry_after && has_envelope {
        Outcome::Rejected
    } else if (400..500).contains(&status) {
        Outcome::ClientError
    } else if status >= 500 {
        Outcome::ServerError
    } else {
        // 1xx/3xx: not a reply the Messages API gives.
        Outcome::Protocol
    }
}

fn fail(record: &mut RequestResult, outcome: Outcome, error: String) {
    record.outcome = outcome;
    record.error = Some(error);
}

fn truncated(bytes: &[u8], limit: usize) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(limit)]);
    s.into_owned()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

async fn read_body(mut body: hyper::body::Incoming) -> Result<Bytes, String> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body cut short: {}", error_chain(&e)))?;
        if let Some(data) = frame.data_ref() {
            if buf.len() + data.len() > MAX_BODY_BYTES {
                return Err(format!("body larger than {MAX_BODY_BYTES} bytes"));
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(Bytes::from(buf))
}

/// Reads a body to its end without keeping it (same size bound as [`read_body`]).
async fn drain_body(mut body: hyper::body::Incoming) -> Result<(), String> {
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body cut short: {}", error_chain(&e)))?;
        if let Some(data) = frame.data_ref() {
            len += data.len();
            if len > MAX_BODY_BYTES {
                return Err(format!("body larger than {MAX_BODY_BYTES} bytes"));
            }
        }
    }
    Ok(())
}

async fn read_message(
    body: hyper::body::Incoming,
    record: &mut RequestResult,
    text_limit: usize,
    max_tokens: u32,
) {
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return fail(record, Outcome::Protocol, e),
    };
    record.first_token_at = Some(Instant::now());
    let message: MessagesResponse = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => {
            return fail(
                record,
                Outcome::Protocol,
                format!("2xx body is not a message: {e}"),
            );
        }
    };
    record.usage = Some(message.usage);
    if text_limit > 0 {
        let text = message.text();
        record.text = Some(truncated(text.as_bytes(), text_limit));
    }
    if max_tokens > 0 && message.usage.output_tokens == 0 {
        return fail(
            record,
            Outcome::Protocol,
            "2xx with zero output tokens".to_owned(),
        );
    }
    record.outcome = Outcome::Success;
}

async fn read_stream(
    mut body: hyper::body::Incoming,
    record: &mut RequestResult,
    text_limit: usize,
    max_tokens: u32,
) {
    let mut parser = Parser::new(MAX_EVENT_BYTES);
    let mut acc = Accumulator::new(text_limit);
    let mut events: Vec<Event> = Vec::new();
    let mut failure: Option<String> = None;
    'read: while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                failure = Some(format!("stream cut short: {}", error_chain(&e)));
                break;
            }
        };
        let Some(data) = frame.data_ref() else {
            continue;
        };
        if let Err(e) = parser.feed(data, &mut events) {
            failure = Some(format!("invalid event stream: {e}"));
            break;
        }
        for event in events.drain(..) {
            match acc.apply(&event) {
                Ok(Step::Delta) => {
                    record.first_token_at.get_or_insert_with(Instant::now);
                }
                Ok(Step::Stop | Step::Nothing) => {}
                Err(e) => {
                    failure = Some(e.to_string());
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
    let failure = failure.or_else(|| {
        if !acc.stopped {
            Some("stream ended without message_stop".to_owned())
        } else if max_tokens > 0 && acc.usage.output_tokens == 0 {
            Some("stream with zero output tokens".to_owned())
        } else {
            None
        }
    });
    match failure {
        Some(e) => fail(record, Outcome::Protocol, e),
        None => record.outcome = Outcome::Success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graceful_rejection_needs_retry_after_and_envelope() {
        let g = [429];
        assert_eq!(classify_failure(429, true, true, &g), Outcome::Rejected);
        assert_eq!(classify_failure(429, false, true, &g), Outcome::ClientError);
        assert_eq!(classify_failure(429, true, false, &g), Outcome::ClientError);
        assert_eq!(classify_failure(503, true, true, &g), Outcome::ServerError);
        assert_eq!(
            classify_failure(503, true, true, &[429, 503]),
            Outcome::Rejected
        );
        assert_eq!(classify_failure(400, false, true, &g), Outcome::ClientError);
        assert_eq!(classify_failure(500, false, true, &g), Outcome::ServerError);
        assert_eq!(classify_failure(302, false, false, &g), Outcome::Protocol);
    }

    #[test]
    fn retry_after_is_whole_seconds_of_at_least_one() {
        assert_eq!(retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(retry_after("0"), None);
        assert_eq!(retry_after("1.5"), None);
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn post_json_reads_stream_and_max_tokens() {
        let r = Request::post_json(
            "/v1/messages",
            &serde_json::json!({"stream": true, "max_tokens": 7}),
        );
        assert_eq!(
            r.expect,
            Expect::Message {
                stream: true,
                max_tokens: 7
            }
        );
        assert_eq!(
            Request::post_json("/v1/messages/count_tokens", &serde_json::json!({})).expect,
            Expect::Any
        );
    }
}
