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
//! connection count is capped by construction (one per worker). Traps handled here:
//! - a connection idle for longer than [`IDLE_LIMIT`] is not reused: the server may be closing
//!   it (uvicorn closes idle keep-alive connections after 5 s by default, hyper's server after
//!   30 s), and a request written into a closing connection fails for a reason that is not the
//!   server's load;
//! - a connection is reused only after an exchange that read its whole response; any failure,
//!   timeout or cancellation drops it (a half-read response would poison the next request);
//! - no local address is bound before connect (that exhausts loopback ports under churn);
//! - the pool's `retry_canceled_requests` would retry failures silently: it is off, every
//!   failure counts; its idle timeout is [`IDLE_LIMIT`] too (with a pool timer, without which
//!   it is not enforced).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use http::{HeaderMap, Uri};
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::Request;
use super::classify::{Failure, error_chain};
use crate::Error;

const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
const X_SESSION_ID: HeaderName = HeaderName::from_static("x-session-id");
const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");

/// Longest idle time after which a connection is replaced rather than reused: under the
/// shortest keep-alive timeout common among servers (uvicorn's 5 s; hyper's is 30 s). A
/// reconnect after a pause this long costs nothing measurable.
pub(crate) const IDLE_LIMIT: Duration = Duration::from_secs(4);

/// The shared connection pool.
pub(crate) type Pool = HyperClient<HttpConnector, Full<Bytes>>;

/// hyper's smallest read buffer bound (its builders panic below it).
const MIN_BUF_BYTES: usize = 8192;

/// A pool of at most `idle` idle connections, connecting within `connect_timeout`, reading
/// response heads of at most `max(head_bytes, 8 KiB)`.
pub(crate) fn pool(idle: usize, connect_timeout: Duration, head_bytes: usize) -> Pool {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
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
    /// `http://host:port`.
    scheme_authority: String,
    /// `host:port` to connect to (port 80 when the URL has none).
    pub(crate) connect_to: String,
    /// The `Host` header of requests sent on a [`Conn`].
    host: HeaderValue,
    /// The base URL's path, without trailing `/`.
    pub(crate) prefix: String,
    api_key: Option<HeaderValue>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Endpoint {
    /// The endpoint of `base_url` (`http://HOST[:PORT][/prefix]`).
    pub(crate) fn new(
        base_url: &str,
        api_key: Option<&str>,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> crate::Result<Self> {
        let bad = |reason: String| Error::InvalidUrl {
            url: base_url.to_owned(),
            reason,
        };
        let uri: Uri = base_url.parse().map_err(|e| bad(format!("{e}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => return Err(bad(format!("scheme {other} is not supported, use http"))),
            None => return Err(bad("missing scheme, expected http://HOST:PORT".to_owned())),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| bad("missing host".to_owned()))?;
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
            scheme_authority: format!("http://{authority}"),
            connect_to: format!(
                "{}:{}",
                authority.host(),
                authority.port_u16().unwrap_or(80)
            ),
            host,
            prefix: uri.path().trim_end_matches('/').to_owned(),
            api_key,
            headers,
        })
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
            headers.append(X_SESSION_ID, value);
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
    /// The message id of the last reply read on this worker's connections.
    pub(super) last_id: Option<String>,
}

#[derive(Debug)]
struct Open {
    sender: SendRequest<Full<Bytes>>,
    idle_since: Instant,
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
    /// to `addr` (`host:port`), connected within `connect_timeout`, reading response heads of
    /// at most `head_bytes`.
    ///
    /// The sender is taken out: give it back with [`put_back`](Self::put_back) once its
    /// response has been read whole.
    pub(super) async fn checkout(
        &mut self,
        addr: &str,
        connect_timeout: Duration,
        head_bytes: usize,
    ) -> Result<SendRequest<Full<Bytes>>, Failure> {
        if let Some(mut open) = self.open.take()
            && open.idle_since.elapsed() < IDLE_LIMIT
            && !open.sender.is_closed()
            && open.sender.ready().await.is_ok()
        {
            return Ok(open.sender);
        }
        connect(addr, connect_timeout, head_bytes).await
    }

    /// Keeps `sender` for the next request.
    pub(super) fn put_back(&mut self, sender: SendRequest<Full<Bytes>>) {
        self.open = Some(Open {
            sender,
            idle_since: Instant::now(),
        });
    }
}

async fn connect(
    addr: &str,
    connect_timeout: Duration,
    head_bytes: usize,
) -> Result<SendRequest<Full<Bytes>>, Failure> {
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
    let (sender, connection) = http1::Builder::new()
        .max_buf_size(head_bytes.max(MIN_BUF_BYTES))
        .max_header_size(head_bytes)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Failure::Handshake(error_chain(&e)))?;
    // The connection task ends when the sender is dropped or the peer closes.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}
