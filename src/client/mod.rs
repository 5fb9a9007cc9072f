//! Sends one request, returns one [`RequestResult`]: whatever happens, never an error.
//!
//! - [`request`]: what to send ([`Request`]) and what the reply must be ([`Expect`]);
//! - [`transport`]: where it goes and how it reaches the wire (the shared pool for single
//!   requests, a worker's own [`Conn`] for load);
//! - [`classify`]: what a status or a failure counts as ([`Outcome`] classes, [`Failure`]);
//! - [`body`]: reading bodies and event streams, bounded by [`ResponseLimits`] ([`limits`]).
//!
//! [`Client`] ties them together: one exchange, bounded by the request timeout, becomes one
//! record.

mod body;
mod classify;
mod limits;
mod request;
#[cfg(test)]
mod tests;
mod tls;
mod transport;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use hyper::body::Incoming;

use crate::anthropic::ErrorEnvelope;
use crate::{Error, Outcome, RequestResult};
use body::Reading;
use classify::Failure;
use transport::{Endpoint, Pool};
use wire::Tracked;

pub use limits::ResponseLimits;
pub use request::{Expect, Request};
pub(crate) use transport::{Conn, Policy};

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
    pub(crate) limits: ResponseLimits,
    /// A gap between two content deltas longer than this is a stall.
    pub(crate) stall_gap: Duration,
    /// PEM bundle of extra trusted CA certificates for `https://`.
    pub(crate) ca_file: Option<PathBuf>,
    /// Self-test mode: ask for the server's write stamps and measure against them.
    pub(crate) timing_truth: bool,
    /// Test-only delay added to the receive path of every stream frame (zero: none).
    pub(crate) receive_delay: Duration,
    /// How the requests are sent: the agent header, and whether streams close their
    /// connection.
    pub(crate) policy: transport::Policy,
}

/// A pooled HTTP/1.1 client that turns every request into one [`RequestResult`].
///
/// Cheap to clone: clones share the connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    pool: Pool,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    endpoint: Endpoint,
    config: ClientConfig,
}

impl Client {
    pub(crate) fn new(config: ClientConfig) -> crate::Result<Self> {
        // Read once here, for http:// too: a bad CA file is refused at start, not ignored.
        let tls = tls::config(config.ca_file.as_deref())?;
        let endpoint = Endpoint::new(
            &config.base_url,
            config.api_key.as_deref(),
            config.headers.clone(),
            config.policy.clone(),
            &tls,
        )?;
        Ok(Self {
            pool: transport::pool(
                config.connections,
                config.connect_timeout,
                tls,
                config.limits.head_bytes,
            ),
            shared: Arc::new(Shared { endpoint, config }),
        })
    }

    /// A client for another thread: same settings and pool, its own copy of the per-request
    /// headers (nothing a request touches is shared with `self`'s requests).
    pub(crate) fn for_thread(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            shared: Arc::new(Shared {
                endpoint: self.shared.endpoint.detached(),
                config: self.shared.config.clone(),
            }),
        }
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
        record.streamed = request.streamed();
        let timeout = self.shared.config.request_timeout;
        match conn {
            Some(conn) => {
                let exchange = self.exchange_on(conn, request, &mut record);
                if tokio::time::timeout(timeout, exchange).await.is_err() {
                    fail(&mut record, Failure::Timeout { after: timeout });
                }
                record.connection = conn.usage();
                say_which_side(&mut record);
            }
            None => {
                let exchange = self.exchange(request, &mut record);
                if tokio::time::timeout(timeout, exchange).await.is_err() {
                    fail(&mut record, Failure::Timeout { after: timeout });
                }
            }
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
        let fut = async {
            let limits = &self.shared.config.limits;
            let built = self.shared.endpoint.pooled(request)?;
            let response = self
                .pool
                .request(built)
                .await
                .map_err(|e| classify::no_response(&e, limits.head_bytes))?;
            let status = response.status();
            let body = body::read_body(response.into_body(), limits.body_bytes).await?;
            if !status.is_success() {
                return Err(Failure::Status {
                    status,
                    body: classify::truncated(&body, 300),
                });
            }
            Ok(body)
        };
        let timeout = self.shared.config.request_timeout;
        tokio::time::timeout(timeout, fut)
            .await
            .unwrap_or(Err(Failure::Timeout { after: timeout }))
            .map_err(|f| Error::Server {
                what: format!("{} {}", request.method, request.path),
                reason: f.to_string(),
            })
    }

    /// One exchange through the shared pool.
    async fn exchange(&self, request: &Request, record: &mut RequestResult) {
        let built = match self.shared.endpoint.pooled(request) {
            Ok(r) => r,
            Err(f) => return fail(record, f),
        };
        let response = match self.pool.request(built).await {
            Ok(r) => r,
            Err(e) => return fail(record, self.no_response(&e)),
        };
        self.receive(request, record, response).await;
    }

    fn no_response(&self, e: &(dyn std::error::Error + 'static)) -> Failure {
        classify::no_response(e, self.shared.config.limits.head_bytes)
    }

    /// [`exchange`](Self::exchange) on `conn`; the connection is kept for the next request
    /// only when this request was written whole and its response read whole.
    ///
    /// A request that fails on a reused connection before a byte of it was written (the
    /// server closed the idle connection just then) goes once more on a new connection; the
    /// record keeps why ([`ConnectionUse::moved_from_reused`](crate::ConnectionUse)). A
    /// request of which any byte was written is never sent again.
    async fn exchange_on(&self, conn: &mut Conn, request: &Request, record: &mut RequestResult) {
        let shared = &self.shared;
        let mut moved_from = None;
        loop {
            let built = conn
                .uri(&shared.endpoint.prefix, &request.path)
                .and_then(|uri| shared.endpoint.build(request, uri, true));
            let http_request = match built {
                Ok(r) => r,
                Err(f) => return fail(record, f),
            };
            let config = &shared.config;
            let mut checkout = match conn
                .checkout(
                    &shared.endpoint,
                    config.connect_timeout,
                    config.limits.head_bytes,
                    moved_from,
                )
                .await
            {
                Ok(c) => c,
                Err(f) => return fail(record, f),
            };
            let wire = checkout.wire.clone();
            let http_request = http_request.map(|body| Tracked::new(body, wire));
            if shared.config.timing_truth {
                // The connection is open: timing errors are measured from here.
                record.truth.get_or_insert_with(Box::default).sent_at = Some(Instant::now());
            }
            let response = match checkout.sender.send_request(http_request).await {
                Ok(r) => r,
                Err(e) => {
                    let failure = self.no_response(&e);
                    if conn.usage().is_some_and(|u| may_send_again(&u)) {
                        moved_from = Some(failure.to_string());
                        continue;
                    }
                    return fail(record, failure);
                }
            };
            if let Some(id) = self.receive(request, record, response).await
                && !id.is_empty()
            {
                // The reply to an earlier request: its connection is not kept.
                if conn.last_id.as_deref() == Some(id.as_str()) {
                    return fail(record, Failure::StaleReply { id });
                }
                conn.last_id = Some(id);
            }
            let read_whole = record.status != 0
                && !matches!(
                    record.outcome,
                    Outcome::Protocol | Outcome::Timeout | Outcome::Connect
                );
            let written_whole = conn.usage().is_some_and(|u| u.request_written);
            if read_whole && written_whole {
                conn.put_back(checkout);
            }
            return;
        }
    }

    /// Reads and classifies a response; returns the message id of a successful Messages
    /// reply.
    async fn receive(
        &self,
        request: &Request,
        record: &mut RequestResult,
        response: http::Response<Incoming>,
    ) -> Option<String> {
        record.first_byte_at = Some(Instant::now());
        record.status = response.status().as_u16();
        record.retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(classify::retry_after);
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let encoding = response
            .headers()
            .get(CONTENT_ENCODING)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .filter(|v| !v.trim().eq_ignore_ascii_case("identity"));
        let config = &self.shared.config;
        let text_limit = if request.keep_text {
            config.text_limit
        } else {
            0
        };
        let limits = config.limits;
        let body = response.into_body();
        if classify::is_success(record.status) {
            let reads_body = text_limit > 0 || matches!(request.expect, Expect::Message { .. });
            if let Some(encoding) = encoding.filter(|_| reads_body) {
                fail(record, Failure::Encoding(encoding));
                return None;
            }
            let read = match request.expect {
                Expect::Message { stream, max_tokens } => {
                    let reading = Reading {
                        text_limit,
                        max_tokens,
                        stall: config.stall_gap,
                        truth: config.timing_truth,
                        delay: config.receive_delay,
                        limits,
                    };
                    // Boxed: the readers' state is large, and inline it would make every
                    // request's future (and every move of it) that large.
                    if stream && is_sse {
                        Box::pin(body::read_stream(body, record, reading))
                            .await
                            .map(Some)
                    } else {
                        Box::pin(body::read_message(body, record, reading))
                            .await
                            .map(Some)
                    }
                }
                Expect::Any if text_limit == 0 => body::drain_body(body, limits.body_bytes)
                    .await
                    .map(|()| None),
                Expect::Any => body::read_body(body, limits.body_bytes).await.map(|bytes| {
                    record.text = Some(classify::truncated(&bytes, text_limit));
                    None
                }),
            };
            return match read {
                Ok(id) => {
                    record.outcome = Outcome::Success;
                    id
                }
                Err(f) => {
                    fail(record, f);
                    None
                }
            };
        }
        let bytes = match body::read_body(body, limits.body_bytes).await {
            Ok(b) => b,
            Err(f) => {
                fail(record, f);
                return None;
            }
        };
        let envelope = ErrorEnvelope::parse(&bytes);
        record.error_type = envelope.as_ref().map(|e| e.error.kind.clone());
        record.outcome = classify::classify_failure(
            record.status,
            record.retry_after.is_some(),
            envelope.is_some(),
            &self.shared.config.graceful_statuses,
        );
        record.error = Some(classify::describe_status(
            record.status,
            envelope.as_ref(),
            &bytes,
        ));
        None
    }
}

/// Whether a request that failed without a response may go once more on a new connection:
/// only from a reused connection, only once, and only when not a byte of it was written (nor
/// one of a response read), so that the server cannot have seen any of it.
fn may_send_again(usage: &crate::ConnectionUse) -> bool {
    usage.reused
        && usage.moved_from_reused.is_none()
        && usage.request_bytes == 0
        && usage.response_bytes == 0
}

/// Appends to a timeout's or connect failure's message which side lost the request: how
/// much of it was written, on which connection, and how much of a response came back.
fn say_which_side(record: &mut RequestResult) {
    if !matches!(record.outcome, Outcome::Timeout | Outcome::Connect) {
        return;
    }
    let (Some(usage), Some(error)) = (&record.connection, &mut record.error) else {
        return;
    };
    let timed_out = record.outcome == Outcome::Timeout;
    let verdict = usage.verdict(!timed_out);
    error.push_str(if timed_out && usage.connected {
        " to "
    } else {
        "; "
    });
    error.push_str(&verdict);
    if let Some(first) = &usage.moved_from_reused {
        error.push_str(&format!(
            " (first tried on a reused connection, which failed before a byte was written: \
             {first})"
        ));
    }
}

/// Records `failure` as the request's outcome.
fn fail(record: &mut RequestResult, failure: Failure) {
    record.outcome = failure.outcome();
    record.error = Some(failure.to_string());
}

#[cfg(test)]
mod loopback;
#[cfg(test)]
mod lost_tests;
