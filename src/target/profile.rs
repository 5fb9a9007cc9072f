//! [`Profile`]: what a server offers and how to read it — liveness route, pool figures, memory,
//! what counts as a capacity rejection, usage convention, prefix sharing, cancellation, cache
//! reset. A profile is a TOML file a user can copy and edit; five ship built in (`profiles/`).

use std::collections::BTreeMap;
use std::path::Path;

use http::{HeaderName, HeaderValue, Method};
use serde::{Deserialize, Serialize};

use super::Agents;
use crate::{Client, Error, Request, ServerMetricNames};

/// Built-in profiles, by name: the TOML files under `profiles/`.
const BUILT_IN: &[(&str, &str)] = &[
    ("semantic", include_str!("../../profiles/semantic.toml")),
    (
        "agent-memory",
        include_str!("../../profiles/agent-memory.toml"),
    ),
    ("llama.cpp", include_str!("../../profiles/llama.cpp.toml")),
    ("vllm", include_str!("../../profiles/vllm.toml")),
    ("sglang", include_str!("../../profiles/sglang.toml")),
    ("litellm", include_str!("../../profiles/litellm.toml")),
];

/// Where a figure comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reading {
    /// A number in the JSON reply of `GET path`, at `pointer` (RFC 6901), times `scale`.
    Json {
        /// The route.
        path: String,
        /// JSON pointer to the number.
        pointer: String,
        /// Factor to the figure's unit (0.01 turns a percentage into a ratio).
        #[serde(default = "one")]
        scale: f64,
    },
    /// A Prometheus metric (summed over its label sets) on `path`, times `scale`.
    Prometheus {
        /// The route of the exposition.
        #[serde(default = "metrics_path")]
        path: String,
        /// The metric's name as exposed.
        metric: String,
        /// Factor to the figure's unit.
        #[serde(default = "one")]
        scale: f64,
    },
    /// The server process's resident memory, by pid (memory only).
    Pid,
}

fn one() -> f64 {
    1.0
}

fn metrics_path() -> String {
    "/metrics".to_owned()
}

impl Reading {
    /// The route to `GET`, if the figure comes from the server.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Json { path, .. } | Self::Prometheus { path, .. } => Some(path),
            Self::Pid => None,
        }
    }

    /// The figure in a reply's `body`, or `None` when the body does not carry it.
    pub fn extract(&self, body: &str) -> Option<f64> {
        let value = match self {
            Self::Json { pointer, scale, .. } => {
                let v: serde_json::Value = serde_json::from_str(body).ok()?;
                v.pointer(pointer)?.as_f64()? * scale
            }
            Self::Prometheus { metric, scale, .. } => prometheus_sum(body, metric)? * scale,
            Self::Pid => return None,
        };
        value.is_finite().then_some(value)
    }

    /// Reads the figure from the server.
    ///
    /// # Errors
    /// [`Error::Server`] when the route does not answer 2xx or its reply lacks the figure.
    pub async fn read(&self, client: &Client) -> crate::Result<f64> {
        let Some(path) = self.path() else {
            return Err(Error::Server {
                what: "pid reading".to_owned(),
                reason: "read by pid, not from the server".to_owned(),
            });
        };
        let body = client.control_text(&Request::get(path)).await?;
        self.extract(&body).ok_or_else(|| Error::Server {
            what: format!("GET {path}"),
            reason: format!("the reply has no {}", self.describe()),
        })
    }

    /// What is read, for messages (`GET /health at /pool/utilization`).
    pub fn describe(&self) -> String {
        match self {
            Self::Json { path, pointer, .. } => format!("GET {path} at {pointer}"),
            Self::Prometheus { path, metric, .. } => format!("{metric} on GET {path}"),
            Self::Pid => "the process's resident memory by pid".to_owned(),
        }
    }
}

/// The sum of `metric`'s samples (over all label sets) in a Prometheus text exposition.
fn prometheus_sum(text: &str, metric: &str) -> Option<f64> {
    let mut sum = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        let rest = match rest.strip_prefix('{') {
            Some(r) => r.rsplit_once('}')?.1,
            None if rest.starts_with(char::is_whitespace) => rest,
            None => continue,
        };
        let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
        *sum.get_or_insert(0.0) += value;
    }
    sum
}

/// How a server reports prompt caching in `usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UsageConvention {
    /// Anthropic's: `cache_read_input_tokens` counts the cached tokens, `input_tokens` the rest.
    Anthropic,
    /// `input_tokens` is the whole prompt; `cache_read_input_tokens` (if any) the cached part.
    Inclusive,
    /// `cache_read_input_tokens` is the whole prompt when the agent had any cache, else 0.
    HitFlag,
    /// No cache fields: cache hits cannot be seen in replies.
    None,
}

impl UsageConvention {
    /// Whether replies show cache hits at all.
    pub fn reports_cache(self) -> bool {
        self != Self::None
    }
}

/// What counts as a capacity rejection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    /// Whether the server refuses work when it is full (a server that only queues does not).
    pub capacity: bool,
    /// Statuses that are rejections (judged against the contract: 429 with `Retry-After` and
    /// the Anthropic error envelope).
    #[serde(default = "default_statuses")]
    pub statuses: Vec<u16>,
}

fn default_statuses() -> Vec<u16> {
    vec![429]
}

/// A request that resets the server's caches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reset {
    /// HTTP method.
    pub method: String,
    /// Route.
    pub path: String,
    /// Headers; `${NAME}` in a value is the environment variable `NAME`, and a header whose
    /// variable is unset makes the reset skipped.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl Reset {
    /// The request, or `None` when a header names an unset variable (`lookup` gives values).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a method or header HTTP does not allow.
    pub fn request(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> crate::Result<Option<Request>> {
        let method =
            Method::from_bytes(self.method.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let mut request = Request::bare(method, self.path.clone());
        for (name, template) in &self.headers {
            let Some(value) = expand(template, &lookup) else {
                return Ok(None);
            };
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(e.to_string()))?;
            let value = HeaderValue::from_str(&value).map_err(|e| invalid(e.to_string()))?;
            request = request.header(name, value);
        }
        Ok(Some(request))
    }
}

/// `template` with every `${NAME}` replaced by `lookup(NAME)`; `None` if one is unset.
fn expand(template: &str, lookup: &impl Fn(&str) -> Option<String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}')? + start;
        out.push_str(&lookup(&rest[start + 2..end]).filter(|v| !v.is_empty())?);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn invalid(reason: String) -> Error {
    Error::InvalidConfig {
        field: "SEMANTIC_PROFILE",
        reason,
    }
}

/// What a server offers and how to read it.
///
/// # Example
/// ```
/// use semantic_stress::target::Profile;
///
/// let vllm = Profile::named("vllm")?;
/// assert!(!vllm.rejection.capacity, "vLLM queues; it never rejects for capacity");
/// assert!(vllm.shared_prefix);
/// # Ok::<(), semantic_stress::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The profile's name.
    pub name: String,
    /// One line on the server it describes.
    pub description: String,
    /// `GET` route that must answer 2xx quickly under load; `None` when there is none.
    pub liveness: Option<String>,
    /// The header that tells agents apart.
    pub agent_header: String,
    /// How replies report prompt caching.
    pub usage: UsageConvention,
    /// Whether two agents sending an identical prefix may both reuse it (safe: no content
    /// crosses agents), so a cross-agent cache hit on an identical prefix is no leak.
    pub shared_prefix: bool,
    /// Whether the server stops a request's work when its client disconnects.
    pub cancels_on_disconnect: bool,
    /// Whether the server closes the connection after each streamed reply, whatever keep-alive
    /// it advertised (llama-server). Streamed requests then ask `Connection: close`, so that
    /// none is written to a connection the server is closing and lost unanswered.
    #[serde(default)]
    pub closes_after_stream: bool,
    /// Pool (KV cache) utilization as a 0–1 ratio; `None` when the server does not say.
    pub pool: Option<Reading>,
    /// Resident memory of the server in bytes; `None` when it cannot be read.
    pub memory: Option<Reading>,
    /// Requests waiting for a slot; `None` when the server does not say.
    pub queue: Option<Reading>,
    /// What counts as a capacity rejection.
    pub rejection: Rejection,
    /// How to reset the server's caches after a test; `None` when there is no way.
    pub reset: Option<Reset>,
    /// What the server offers for agents: how to delete one after a test (`[agents]`).
    #[serde(default)]
    pub agents: Agents,
    /// The names of the server's own serving metrics on `GET /metrics` (KV usage, prefix-cache
    /// hits and queries, requests running and waiting, preemptions); `None`: none are read.
    #[serde(default)]
    pub server_metrics: Option<ServerMetricNames>,
}

impl Profile {
    /// The names of the built-in profiles.
    pub fn built_in_names() -> impl Iterator<Item = &'static str> {
        BUILT_IN.iter().map(|(name, _)| *name)
    }

    /// A built-in profile (`semantic`, `agent-memory`, `llama.cpp`, `vllm`, `sglang`).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the built-in profiles when `name` is none of them.
    pub fn named(name: &str) -> crate::Result<Self> {
        let (_, text) = BUILT_IN.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            invalid(format!(
                "{name:?} is no built-in profile ({}), no profile file, nor `auto`",
                Self::built_in_names().collect::<Vec<_>>().join(", ")
            ))
        })?;
        Self::from_toml(text)
    }

    /// The profile of `SEMANTIC_PROFILE`'s value: a built-in name or a TOML file's path.
    ///
    /// # Errors
    /// As [`named`](Self::named) and [`from_file`](Self::from_file).
    pub fn resolve(name_or_path: &str) -> crate::Result<Self> {
        if name_or_path.ends_with(".toml") || Path::new(name_or_path).is_file() {
            Self::from_file(Path::new(name_or_path))
        } else {
            Self::named(name_or_path)
        }
    }

    /// A profile from a TOML file.
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be read; [`Error::InvalidConfig`] when it does not parse.
    pub fn from_file(path: &Path) -> crate::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            Error::InvalidConfig { reason, .. } => invalid(format!("{}: {reason}", path.display())),
            other => other,
        })
    }

    /// A profile from TOML text.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when it does not parse.
    pub fn from_toml(text: &str) -> crate::Result<Self> {
        let profile: Self = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if let Some(delete) = &profile.agents.delete {
            delete.template(|_| Some("x".to_owned()))?;
        }
        Ok(profile)
    }

    /// The profile as TOML (to copy and edit).
    pub fn to_toml(&self) -> String {
        // Plain data with string keys always serializes.
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Probes a few routes and picks the built-in profile that fits, with the reason.
    ///
    /// Bounded by the client's timeout per probe (seven probes at most). Falls back to
    /// `semantic` (the contract) when nothing else fits.
    pub async fn detect(client: &Client) -> (Self, String) {
        let get =
            |path: &'static str| async move { client.control_text(&Request::get(path)).await.ok() };
        let pick = |name: &str, why: String| {
            // Built-in names always resolve.
            (Self::named(name).unwrap_or_else(|_| Self::fallback()), why)
        };
        let contract_pool = Reading::Json {
            path: "/health".to_owned(),
            pointer: "/pool/utilization".to_owned(),
            scale: 1.0,
        };
        if let Some(body) = get("/health").await
            && contract_pool.extract(&body).is_some()
        {
            return pick(
                "semantic",
                "GET /health reports pool.utilization".to_owned(),
            );
        }
        if let Some(body) = get("/v1/agents/stats").await
            && body.contains("pool_utilization_pct")
        {
            return pick(
                "agent-memory",
                "GET /v1/agents/stats reports pool_utilization_pct".to_owned(),
            );
        }
        if get("/slots").await.is_some() {
            return pick("llama.cpp", "GET /slots answers (llama-server)".to_owned());
        }
        if let Some(body) = get("/metrics").await {
            if body.contains("vllm:") {
                return pick("vllm", "GET /metrics exposes vllm: metrics".to_owned());
            }
            if body.contains("sglang:") {
                return pick("sglang", "GET /metrics exposes sglang: metrics".to_owned());
            }
        }
        if get("/get_server_info").await.is_some() {
            return pick("sglang", "GET /get_server_info answers (SGLang)".to_owned());
        }
        if let Some(body) = get("/health/liveliness").await
            && body.contains("I'm alive")
        {
            return pick(
                "litellm",
                "GET /health/liveliness answers \"I'm alive!\" (LiteLLM proxy)".to_owned(),
            );
        }
        pick(
            "semantic",
            "no known server's routes answered; assuming the semantic caching server's contract"
                .to_owned(),
        )
    }

    /// The contract's profile, built from the embedded file.
    fn fallback() -> Self {
        Self {
            name: "semantic".to_owned(),
            description: String::new(),
            liveness: Some("/health/live".to_owned()),
            agent_header: "X-Session-ID".to_owned(),
            usage: UsageConvention::Inclusive,
            shared_prefix: false,
            cancels_on_disconnect: true,
            closes_after_stream: false,
            pool: None,
            memory: None,
            queue: None,
            rejection: Rejection {
                capacity: true,
                statuses: default_statuses(),
            },
            reset: None,
            agents: Agents::default(),
            server_metrics: None,
        }
    }
}

impl Default for Profile {
    /// The `semantic` profile: the contract.
    fn default() -> Self {
        Self::named("semantic").unwrap_or_else(|_| Self::fallback())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_parses_and_round_trips() {
        for name in Profile::built_in_names() {
            let p = Profile::named(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.name, name);
            assert_eq!(Profile::from_toml(&p.to_toml()).unwrap(), p, "{name}");
        }
        assert!(
            Profile::named("tgi")
                .unwrap_err()
                .to_string()
                .contains("vllm")
        );
    }

    #[test]
    fn readings_extract_json_and_prometheus_figures() {
        let pct = Reading::Json {
            path: "/v1/agents/stats".to_owned(),
            pointer: "/pool_utilization_pct".to_owned(),
            scale: 0.01,
        };
        assert_eq!(
            pct.extract(r#"{"pool_utilization_pct": 42.5}"#),
            Some(0.425)
        );
        assert_eq!(pct.extract(r#"{"other": 1}"#), None);
        assert_eq!(pct.extract("not json"), None);
        let kv = Reading::Prometheus {
            path: metrics_path(),
            metric: "vllm:kv_cache_usage_perc".to_owned(),
            scale: 1.0,
        };
        let text = "# HELP vllm:kv_cache_usage_perc KV\nvllm:kv_cache_usage_perc{engine=\"0\",model_name=\"m\"} 0.25\nvllm:kv_cache_usage_perc{engine=\"1\",model_name=\"m\"} 0.5\nvllm:kv_cache_usage_perc_other 9\n";
        assert_eq!(kv.extract(text), Some(0.75));
        assert_eq!(kv.extract("nothing 1\n"), None);
    }

    #[test]
    fn reset_headers_expand_variables_or_skip() {
        let reset = Reset {
            method: "DELETE".to_owned(),
            path: "/admin/caches".to_owned(),
            headers: [("X-Admin-Key".to_owned(), "${ADMIN}".to_owned())].into(),
        };
        let r = reset
            .request(|n| (n == "ADMIN").then(|| "k".to_owned()))
            .unwrap()
            .unwrap();
        assert_eq!(r.method, Method::DELETE);
        assert_eq!(r.headers[0].1, "k");
        assert!(
            reset.request(|_| None).unwrap().is_none(),
            "no key: no reset"
        );
    }
}
