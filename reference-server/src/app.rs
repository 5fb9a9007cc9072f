//! The service: shared state and the router, built apart from any socket.
//!
//! [`App`] answers one `http::Request` with one `http::Response`; tests can call
//! [`App::handle`] directly, and [`super::ReferenceServer`] feeds it from hyper connections.
//! Every response gets an `X-Request-ID` (the request's own, else a generated one).

use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Method, Request, Response};
use tokio_util::sync::CancellationToken;

use super::agents::{CachePolicy, Caches};
use super::config::ServerConfig;
use super::engine::Engine;
use super::metrics::HttpMetrics;
use super::personality::{self, Personality};
use super::ratelimit::RateLimiter;
use super::response::{ApiError, Body};
use super::stats::{AgentStats, Counters, PoolStats, Stats};
use super::{messages, routes};
use crate::Error;

/// The connection is closed without a response (fault `drop-connection`, or a hung request
/// released by shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connection dropped without a response")]
pub struct Dropped;

/// How a handler failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Answer with the error envelope.
    Api(ApiError),
    /// Close the connection without answering.
    Drop,
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

/// The reference server's service: everything but the sockets. Cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    pub(crate) inner: Arc<Inner>,
}

/// State shared by all requests.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: ServerConfig,
    caches: Mutex<Caches>,
    pub(crate) engine: Engine,
    /// What the personality keeps beside the shared state.
    pub(crate) persona: personality::State,
    pub(crate) limiter: Option<Mutex<RateLimiter>>,
    pub(crate) counters: Counters,
    pub(crate) http: HttpMetrics,
    /// Memory leaked on purpose (fault `leak`).
    leak: Mutex<Vec<Box<[u8]>>>,
    draining: AtomicBool,
    /// Cancelled when draining starts: hung requests give up.
    pub(crate) shutdown: CancellationToken,
    /// Cancelled when the engine must stop.
    engine_stop: CancellationToken,
    next_id: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.engine_stop.cancel();
    }
}

impl App {
    /// Builds the service and starts its batch engine on the current tokio runtime.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if a setting is out of range, or if called outside a tokio
    /// runtime while compute is simulated (the engine needs one).
    pub fn new(config: ServerConfig) -> Result<Self, Error> {
        config.validate()?;
        let geometry = config.geometry();
        // The ratio is in (0, 1], so the product is within the pool and non-negative.
        let admit_limit =
            (geometry.total_blocks as f64 * config.pool.admit_max_utilization).floor() as u64;
        let policy = CachePolicy {
            geometry,
            admit_limit,
            max_hot_agents: config.pool.max_hot_agents,
            no_cache: config.faults.no_cache,
            no_recovery: config.faults.no_recovery,
        };
        let engine = Engine::new(config.engine, personality::paged_kv(&config));
        let engine_stop = CancellationToken::new();
        if !config.is_instant() {
            let runtime =
                tokio::runtime::Handle::try_current().map_err(|e| Error::InvalidConfig {
                    field: "runtime",
                    reason: format!("the batch engine needs a tokio runtime: {e}"),
                })?;
            runtime.spawn(engine.clone().run(engine_stop.clone()));
        }
        let limiter = RateLimiter::new(
            config.admission.global_rate_limit,
            config.admission.agent_rate_limit,
        );
        Ok(Self {
            inner: Arc::new(Inner {
                caches: Mutex::new(Caches::new(policy)),
                engine,
                persona: personality::State::new(&config),
                limiter: limiter.is_active().then(|| Mutex::new(limiter)),
                counters: Counters::default(),
                http: HttpMetrics::default(),
                leak: Mutex::new(Vec::new()),
                draining: AtomicBool::new(false),
                shutdown: CancellationToken::new(),
                engine_stop,
                next_id: AtomicU64::new(1),
                config,
            }),
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Answers one request.
    ///
    /// # Errors
    /// [`Dropped`] when the connection must close without a response.
    pub async fn handle<B>(&self, req: Request<B>) -> Result<Response<Body>, Dropped>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let started = Instant::now();
        let request_id = self.request_id(&req);
        if let Some(after) = self.inner.config.faults.hang_after
            && super::stats::read(&self.inner.counters.messages_received) >= after
        {
            self.inner.shutdown.cancelled().await;
            return Err(Dropped);
        }
        let method = method_label(req.method());
        let stamps = super::stamp::wanted(req.headers());
        let (route, result) = self.route(req).await;
        let mut resp = match result {
            Ok(resp) => resp,
            Err(Failure::Api(e)) => e.into_response(self.inner.config.faults.no_retry_after),
            Err(Failure::Drop) => return Err(Dropped),
        };
        resp.headers_mut().insert("x-request-id", request_id);
        let status = resp.status().as_u16();
        self.inner
            .http
            .observe(method, route, status, started.elapsed());
        Ok(super::stamp::wrap(self, started, stamps, resp))
    }

    async fn route<B>(&self, req: Request<B>) -> (&'static str, Result<Response<Body>, Failure>)
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        if self.inner.config.personality.kind != Personality::Semantic {
            return personality::route(self, req).await;
        }
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        let is_health = path == "/health" || path.starts_with("/health/");
        if !is_health && let Err(e) = self.authenticate(&req) {
            return ("unauthenticated", Err(e.into()));
        }
        let only = |allowed: Method, allow: &'static str| {
            if method == allowed {
                Ok(())
            } else {
                Err(Failure::Api(ApiError::method_not_allowed(
                    &method, &path, allow,
                )))
            }
        };
        match path.as_str() {
            "/v1/messages" => (
                "/v1/messages",
                match only(Method::POST, "POST") {
                    Ok(()) => messages::messages(self, req).await,
                    Err(e) => Err(e),
                },
            ),
            "/v1/messages/count_tokens" => (
                "/v1/messages/count_tokens",
                match only(Method::POST, "POST") {
                    Ok(()) => messages::count_tokens(self, req).await,
                    Err(e) => Err(e),
                },
            ),
            "/" | "/health" | "/health/live" | "/health/ready" | "/health/startup"
            | "/v1/models" | "/v1/agents/stats" | "/metrics" => {
                let route = routes::label(&path);
                match only(Method::GET, "GET") {
                    Ok(()) => (route, routes::get(self, route).await),
                    Err(e) => (route, Err(e)),
                }
            }
            "/admin/caches" => (
                "/admin/caches",
                match only(Method::DELETE, "DELETE") {
                    Ok(()) => routes::clear_caches(self, &req).map_err(Failure::from),
                    Err(e) => Err(e),
                },
            ),
            p if p.starts_with("/v1/agents/") => (
                "/v1/agents/{id}",
                match only(Method::DELETE, "DELETE") {
                    Ok(()) => {
                        routes::delete_agent(self, &p["/v1/agents/".len()..]).map_err(Failure::from)
                    }
                    Err(e) => Err(e),
                },
            ),
            _ => (
                "unmatched",
                Err(ApiError::not_found(format!(
                    "no route for {method} {path}; see GET / for the endpoints"
                ))
                .into()),
            ),
        }
    }

    fn authenticate<B>(&self, req: &Request<B>) -> Result<(), ApiError> {
        let keys = &self.inner.config.http.api_keys;
        if keys.is_empty() {
            return Ok(());
        }
        let given = req
            .headers()
            .get("x-api-key")
            .or_else(|| req.headers().get("anthropic-api-key"));
        match given.map(HeaderValue::as_bytes) {
            None => Err(ApiError::unauthenticated("missing x-api-key header")),
            Some(k) if keys.iter().any(|key| key.as_bytes() == k) => Ok(()),
            Some(_) => Err(ApiError::unauthenticated("invalid x-api-key")),
        }
    }

    fn request_id<B>(&self, req: &Request<B>) -> HeaderValue {
        if let Some(v) = req.headers().get("x-request-id")
            && (1..=256).contains(&v.len())
            && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
        {
            return v.clone();
        }
        let n = self.next_id();
        HeaderValue::from_str(&format!("req_{n:016x}")).unwrap_or(HeaderValue::from_static("req_0"))
    }

    /// A fresh id number (request and message ids).
    pub(crate) fn next_id(&self) -> u64 {
        // Uniqueness only: no ordering with other memory is needed.
        let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        super::tokenizer::fnv1a(&n.to_le_bytes()) ^ n
    }

    /// The agent caches (short critical sections only; never held across an await).
    pub(crate) fn caches(&self) -> MutexGuard<'_, Caches> {
        // Cache operations keep their counts consistent before any point that could panic.
        self.inner.caches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leaks `bytes` bytes, touching every page so that resident memory grows (fault `leak`).
    pub(crate) fn leak(&self, bytes: usize) {
        let block = vec![0xa5_u8; bytes].into_boxed_slice();
        self.inner
            .leak
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(block);
        let n = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.inner
            .counters
            .leaked_bytes
            .fetch_add(n, Ordering::Relaxed);
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        // A flag read for reporting; no data is published through it.
        self.inner.draining.load(Ordering::Relaxed)
    }

    /// Starts draining: `/health/ready` answers 503 and hung requests are released.
    pub fn begin_drain(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
        self.inner.shutdown.cancel();
    }

    /// Stops the batch engine (after the drain): sequences still running are abandoned.
    pub(crate) fn stop_engine(&self) {
        self.inner.engine_stop.cancel();
    }

    /// Waits until no messages request is in flight (fault `blocking-health`), or shutdown.
    pub(crate) async fn wait_inference_idle(&self) {
        let poll = Duration::from_millis(5);
        while super::stats::read(&self.inner.counters.in_flight) > 0 && !self.is_draining() {
            tokio::time::sleep(poll).await;
        }
    }

    /// A snapshot of every counter and gauge.
    pub fn stats(&self) -> Stats {
        let figures = match &self.inner.persona {
            personality::State::AgentMemory(store) => {
                let f = store.lock().unwrap_or_else(|e| e.into_inner()).figures();
                super::agents::CacheFigures {
                    total_blocks: f.total_blocks,
                    used_blocks: f.used_blocks,
                    peak_used_blocks: f.peak_used_blocks,
                    cached_blocks: f.used_blocks - f.leaked_blocks,
                    evictable_blocks: 0,
                    agents: f.cached_agents,
                    idle_cached_agents: f.cached_agents,
                    evictions: 0,
                }
            }
            _ => self.caches().figures(),
        };
        let (running, queued) = self.inner.engine.load();
        Stats {
            running,
            queued,
            pool: PoolStats::from_figures(&figures),
            agents: AgentStats::from_figures(&figures),
            draining: self.is_draining(),
            ..self.inner.counters.snapshot()
        }
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::HEAD => "HEAD",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests;
