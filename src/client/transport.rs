//! Transport: where requests go and how they reach the wire.
//!
//! [`Endpoint`] turns a [`Request`] into an HTTP request for the base URL (`Host`, API key,
//! version and session headers). Two paths carry it:
//! - the shared hyper-util pool ([`pool`]), for single requests (control routes, probes);
//! - [`Conn`], one worker's own keep-alive connection, for load.
//!
//! A worker has at most one request in flight, so it needs exactly one connection, and owning
//! it skips what the shared pool costs per request: a pool lock on checkout, a spawned task
//! that hands the connection back after each response, and parsing an absolute URI. The
//! connection count is capped by construction (one per worker).
//!
//! `https://` endpoints go through TLS ([`tls`](super::tls)) on both paths: the pool through
//! hyper-rustls's connector, without ALPN (HTTP/1.1 is the only protocol it is built for); a
//! [`Conn`] through its own handshake, offering ALPN `http/1.1` only. On a [`Conn`], the
//! connect timeout bounds TCP connect and TLS handshake together, and a failed handshake is a
//! [`Failure::Tls`] of the request that opened the connection. Traps handled here:
//! - a connection idle for longer than [`IDLE_LIMIT`] is not reused: the server may be closing
//!   it (uvicorn closes idle keep-alive connections after 5 s by default, hyper's server after
//!   30 s), and a request written into a closing connection fails for a reason that is not the
//!   server's load;
//! - a connection is reused only after an exchange that wrote its whole request and read its
//!   whole response; any failure, timeout or cancellation drops it (a half-read response would
//!   poison the next request, and a request body still being written — a server that answered
//!   without reading it — would hold the next request unwritten until its timeout); a kept
//!   connection that does not take the next request within [`READY_LIMIT`] is replaced;
//! - each worker connection counts what crosses it ([`wire`](super::wire)), so every record
//!   says whether its connection was new or reused (idle how long, after how many requests),
//!   how many request bytes were written, whether all were, and how many response bytes came
//!   back ([`ConnectionUse`]);
//! - no local address is bound before connect (that exhausts loopback ports under churn);
//! - the pool's `retry_canceled_requests` would retry failures silently: it is off, every
//!   failure counts; its idle timeout is [`IDLE_LIMIT`] too (with a pool timer, without which
//!   it is not enforced).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONNECTION, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use http::{HeaderMap, Uri};
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::Request;
use super::classify::{Failure, error_chain};
use super::tls::Tls;
use super::wire::{Counted, Counts, Tracked, Wire};
use crate::{ConnectionUse, Error};

const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
const X_SESSION_ID: HeaderName = HeaderName::from_static("x-session-id");
const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");

/// Longest idle time after which a connection is replaced rather than reused: under the
/// shortest keep-alive timeout common among servers (uvicorn's 5 s; hyper's is 30 s). A
/// reconnect after a pause this long costs nothing measurable.
pub(crate) const IDLE_LIMIT: Duration = Duration::from_secs(4);

/// Longest wait for a kept connection to take the next request. A connection whose last
/// response was read whole is ready at once; one still writing the previous request's body
/// (a server that answered without reading it all) may never be, and is replaced instead.
const READY_LIMIT: Duration = Duration::from_millis(250);

/// The shared connection pool.
pub(crate) type Pool = HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// hyper's smallest read buffer bound (its builders panic below it).
const MIN_BUF_BYTES: usize = 8192;

/// A pool of at most `idle` idle connections, connecting (TCP) within `connect_timeout`,
/// for `http://` and `https://` alike (TLS with `tls`; the handshake is bounded by the
/// request timeout of each control request), reading response heads of at most
/// `max(head_bytes, 8 KiB)`.
pub(crate) fn pool(
    idle: usize,
    connect_timeout: Duration,
    tls: rustls::ClientConfig,
    head_bytes: usize,
) -> Pool {
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    // The TLS layer above sees `https://` URIs: the TCP connector must let them through.
    tcp.enforce_http(false);
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    HyperClient::builder(TokioExecutor::new())
        .http1_max_buf_size(head_bytes.max(MIN_BUF_BYTES))
        .pool_idle_timeout(IDLE_LIMIT)
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(idle.max(1))
        .retry_canceled_requests(false)
        .build(connector)
}

/// The server requests go to, and the headers every request carries.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// `http://host:port` or `https://host:port`.
    scheme_authority: String,
    /// `host:port` to connect to (port 80, or 443 for https, when the URL has none).
    pub(crate) connect_to: String,
    /// How connections are wrapped for an `https://` URL; `None` for `http://`.
    tls: Option<Tls>,
    /// The `Host` header of requests sent on a [`Conn`].
    host: HeaderValue,
    /// The base URL's path, without trailing `/`.
    pub(crate) prefix: String,
    api_key: Option<HeaderValue>,
    headers: Vec<(HeaderName, HeaderValue)>,
    policy: Policy,
}

/// How requests are sent, beyond their own headers.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// The header naming a request's agent.
    pub(crate) agent_header: HeaderName,
    /// Streamed requests ask `Connection: close` (a server that closes after each stream).
    pub(crate) close_after_stream: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            agent_header: X_SESSION_ID,
            close_after_stream: false,
        }
    }
}

impl Endpoint {
    /// The endpoint of `base_url` (`http[s]://HOST[:PORT][/prefix]`); an `https://` one
    /// verifies certificates with `tls`, for the URL's host.
    pub(crate) fn new(
        base_url: &str,
        api_key: Option<&str>,
        headers: Vec<(HeaderName, HeaderValue)>,
        policy: Policy,
        tls: &rustls::ClientConfig,
    ) -> crate::Result<Self> {
        let bad = |reason: String| Error::InvalidUrl {
            url: base_url.to_owned(),
            reason,
        };
        let uri: Uri = base_url.parse().map_err(|e| bad(format!("{e}")))?;
        let (scheme, default_port) = match uri.scheme_str() {
            Some("http") => ("http", 80),
            Some("https") => ("https", 443),
            Some(other) => {
                return Err(bad(format!(
                    "scheme {other} is not supported, use http or https"
                )));
            }
            None => return Err(bad("missing scheme, expected http://HOST:PORT".to_owned())),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| bad("missing host".to_owned()))?;
        let tls = match scheme {
            "https" => Some(Tls::new(tls, authority.host()).map_err(bad)?),
            _ => None,
        };
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| bad("invalid host".to_owned()))?;
        let api_key = match api_key {
            None => None,
            Some(key) => Some(
                HeaderValue::from_str(key).map_err(|_| Error::InvalidConfig {
                    field: "api_key",
                    reason: "not a valid header value".to_owned(),
                })?,
            ),
        };
        Ok(Self {
            scheme_authority: format!("{scheme}://{authority}"),
            connect_to: format!(
                "{}:{}",
                authority.host(),
                authority.port_u16().unwrap_or(default_port)
            ),
            tls,
            host,
            prefix: uri.path().trim_end_matches('/').to_owned(),
            api_key,
            headers,
            policy,
        })
    }

    /// A copy that shares no header buffer with `self`: a header value cloned per request
    /// bumps a reference count in its buffer, and threads that share the buffer then contend
    /// for one cache line on every request.
    pub(crate) fn detached(&self) -> Self {
        let value = |v: &HeaderValue| {
            let mut copy = HeaderValue::from_bytes(v.as_bytes()).unwrap_or_else(|_| v.clone());
            copy.set_sensitive(v.is_sensitive());
            copy
        };
        let name = |n: &HeaderName| {
            HeaderName::from_bytes(n.as_str().as_bytes()).unwrap_or_else(|_| n.clone())
        };
        Self {
            scheme_authority: self.scheme_authority.clone(),
            connect_to: self.connect_to.clone(),
            tls: self.tls.clone(),
            host: value(&self.host),
            prefix: self.prefix.clone(),
            api_key: self.api_key.as_ref().map(value),
            headers: self
                .headers
                .iter()
                .map(|(n, v)| (name(n), value(v)))
                .collect(),
            policy: Policy {
                agent_header: name(&self.policy.agent_header),
                close_after_stream: self.policy.close_after_stream,
            },
        }
    }

    /// The request for the shared pool: absolute URI, `Host` added by the pool.
    pub(crate) fn pooled(&self, request: &Request) -> Result<http::Request<Full<Bytes>>, Failure> {
        let uri = format!("{}{}{}", self.scheme_authority, self.prefix, request.path);
        let uri: Uri = uri
            .parse()
            .map_err(|e| Failure::Build(format!("invalid URI {uri:?}: {e}")))?;
        self.build(request, uri, false)
    }

    /// The request with `uri`; with `host`, the `Host` header is set here (origin-form URI).
    pub(crate) fn build(
        &self,
        request: &Request,
        uri: Uri,
        host: bool,
    ) -> Result<http::Request<Full<Bytes>>, Failure> {
        let mut built = http::Request::new(Full::new(request.body.clone().unwrap_or_default()));
        *built.method_mut() = request.method.clone();
        *built.uri_mut() = uri;
        let headers: &mut HeaderMap = built.headers_mut();
        if host {
            headers.insert(HOST, self.host.clone());
        }
        if request.body.is_some() {
            headers.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(key) = &self.api_key {
            headers.append(X_API_KEY, key.clone());
        }
        headers.append(ANTHROPIC_VERSION, HeaderValue::from_static("2023-06-01"));
        // Bodies are read as sent: a content coding the harness would have to undo is refused.
        headers.append(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        if let Some(session) = &request.session_id {
            let value = HeaderValue::from_str(session)
                .map_err(|e| Failure::Build(format!("session id {session:?}: {e}")))?;
            headers.append(self.policy.agent_header.clone(), value);
        }
        if self.policy.close_after_stream && request.streamed() {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        for (name, value) in self.headers.iter().chain(&request.headers) {
            headers.append(name.clone(), value.clone());
        }
        Ok(built)
    }
}

/// A worker's connection, opened on first use and reopened when it cannot be reused.
#[derive(Debug, Default)]
pub(crate) struct Conn {
    open: Option<Open>,
    /// The origin-form URI of the last path sent: a worker usually sends the same path again.
    last_uri: Option<(String, Uri)>,
    /// The connection of the request in flight (or last sent), and where its counts started.
    current: Option<Current>,
    /// The message id of the last reply read on this worker's connections.
    pub(super) last_id: Option<String>,
}

#[derive(Debug)]
struct Open {
    sender: SendRequest<Tracked>,
    wire: Arc<Wire>,
    idle_since: Instant,
    /// Requests this connection carried.
    requests: u32,
}

/// A sender checked out for one request, with its connection's counts.
#[derive(Debug)]
pub(super) struct Checkout {
    pub(super) sender: SendRequest<Tracked>,
    pub(super) wire: Arc<Wire>,
    requests: u32,
}

#[derive(Debug)]
struct Current {
    wire: Option<Arc<Wire>>,
    start: Counts,
    usage: ConnectionUse,
}

impl Conn {
    /// A worker's connection; nothing is opened until the first request.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The origin-form URI for `path_and_query` (with the base URL's `prefix`).
    pub(super) fn uri(&mut self, prefix: &str, path: &str) -> Result<Uri, Failure> {
        if let Some((last, uri)) = &self.last_uri
            && last == path
        {
            return Ok(uri.clone());
        }
        let uri: Uri = if prefix.is_empty() {
            path.parse()
        } else {
            format!("{prefix}{path}").parse()
        }
        .map_err(|e| Failure::Build(format!("invalid path {path:?}: {e}")))?;
        self.last_uri = Some((path.to_owned(), uri.clone()));
        Ok(uri)
    }

    /// A sender ready for one request: the open connection if it can be reused, else a new one
    /// to `endpoint`, connected (TCP and TLS) within `connect_timeout`, reading response heads
    /// of at most `head_bytes`. With `moved_from` (why a first try on a reused connection
    /// failed before a byte was written), always a new one.
    ///
    /// The sender is taken out: give it back with [`put_back`](Self::put_back) once its
    /// request was written whole and its response read whole.
    pub(super) async fn checkout(
        &mut self,
        endpoint: &Endpoint,
        connect_timeout: Duration,
        head_bytes: usize,
        moved_from: Option<String>,
    ) -> Result<Checkout, Failure> {
        let open = self.open.take();
        if moved_from.is_none()
            && let Some(mut open) = open
            && open.idle_since.elapsed() < IDLE_LIMIT
            && !open.sender.is_closed()
            && matches!(
                tokio::time::timeout(READY_LIMIT, open.sender.ready()).await,
                Ok(Ok(()))
            )
        {
            self.current = Some(Current {
                start: open.wire.start_request(),
                wire: Some(open.wire.clone()),
                usage: ConnectionUse {
                    reused: true,
                    idle_before: open.idle_since.elapsed(),
                    requests_before: open.requests,
                    connected: true,
                    ..ConnectionUse::default()
                },
            });
            return Ok(Checkout {
                sender: open.sender,
                wire: open.wire,
                requests: open.requests,
            });
        }
        self.current = Some(Current {
            wire: None,
            start: Counts::default(),
            usage: ConnectionUse {
                moved_from_reused: moved_from,
                ..ConnectionUse::default()
            },
        });
        let wire = Arc::new(Wire::default());
        // Boxed: the connect and TLS handshake state is large and only needed once per
        // connection; inline it would make every request's future that large.
        let sender = Box::pin(connect(endpoint, connect_timeout, head_bytes, wire.clone())).await?;
        if let Some(current) = &mut self.current {
            current.usage.connected = true;
            current.start = wire.start_request();
            current.wire = Some(wire.clone());
        }
        Ok(Checkout {
            sender,
            wire,
            requests: 0,
        })
    }

    /// How the request in flight (or last sent) used its connection, so far.
    pub(super) fn usage(&self) -> Option<ConnectionUse> {
        let current = self.current.as_ref()?;
        let mut usage = current.usage.clone();
        if let Some(wire) = &current.wire {
            let now = wire.counts();
            usage.request_bytes = now.written.saturating_sub(current.start.written);
            usage.response_bytes = now.read.saturating_sub(current.start.read);
            usage.request_written = wire.request_written();
        }
        Some(usage)
    }

    /// Keeps `checkout`'s connection for the next request.
    pub(super) fn put_back(&mut self, checkout: Checkout) {
        self.open = Some(Open {
            sender: checkout.sender,
            wire: checkout.wire,
            idle_since: Instant::now(),
            requests: checkout.requests.saturating_add(1),
        });
    }
}

/// A new connection to `endpoint`: TCP, then TLS for https, both within `connect_timeout`,
/// then the HTTP/1 handshake reading response heads of at most `head_bytes`; its bytes are
/// counted into `wire`.
async fn connect(
    endpoint: &Endpoint,
    connect_timeout: Duration,
    head_bytes: usize,
    wire: Arc<Wire>,
) -> Result<SendRequest<Tracked>, Failure> {
    let addr = endpoint.connect_to.as_str();
    let started = Instant::now();
    let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => {
            return Err(Failure::Connect {
                addr: addr.to_owned(),
                source,
            });
        }
        Err(_) => {
            return Err(Failure::ConnectTimeout {
                addr: addr.to_owned(),
                after: connect_timeout,
            });
        }
    };
    // Small requests must not wait for Nagle's algorithm; failure only costs latency.
    let _ = stream.set_nodelay(true);
    let Some(tls) = &endpoint.tls else {
        return handshake(Counted::new(stream, wire), head_bytes).await;
    };
    let left = connect_timeout.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, tls.connect(stream)).await {
        Ok(Ok(stream)) => handshake(Counted::new(stream, wire), head_bytes).await,
        Ok(Err(e)) => Err(Failure::Tls {
            addr: addr.to_owned(),
            reason: error_chain(&e),
        }),
        Err(_) => Err(Failure::Tls {
            addr: addr.to_owned(),
            reason: format!(
                "no handshake within the {:.1} s connect timeout",
                connect_timeout.as_secs_f64()
            ),
        }),
    }
}

/// The HTTP/1 handshake on an open connection (plain or TLS), reading response heads of at
/// most `head_bytes`.
async fn handshake<T>(io: T, head_bytes: usize) -> Result<SendRequest<Tracked>, Failure>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::Builder::new()
        .max_buf_size(head_bytes.max(MIN_BUF_BYTES))
        .max_header_size(head_bytes)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| Failure::Handshake(error_chain(&e)))?;
    // The connection task ends when the sender is dropped or the peer closes.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> crate::Result<Endpoint> {
        let tls = super::super::tls::config(None).expect("webpki roots");
        Endpoint::new(url, None, Vec::new(), Policy::default(), &tls)
    }

    #[test]
    fn https_is_accepted_with_its_default_port() {
        let e = endpoint("https://llm.example/v1").unwrap();
        assert_eq!(e.connect_to, "llm.example:443");
        assert_eq!(e.scheme_authority, "https://llm.example");
        assert_eq!(e.prefix, "/v1");
        assert!(e.tls.is_some());
        let e = endpoint("https://127.0.0.1:8443").unwrap();
        assert_eq!(e.connect_to, "127.0.0.1:8443");
        assert!(endpoint("https://[::1]:8443").unwrap().tls.is_some());
        let e = endpoint("http://llm.example").unwrap();
        assert_eq!(e.connect_to, "llm.example:80");
        assert!(e.tls.is_none());
    }

    #[test]
    fn other_schemes_are_refused() {
        for url in ["ftp://llm.example/", "llm.example:80", "ws://llm.example"] {
            let err = endpoint(url).unwrap_err();
            assert!(matches!(err, Error::InvalidUrl { .. }), "{url}: {err}");
        }
    }
}
