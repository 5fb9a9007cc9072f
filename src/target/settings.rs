//! [`TargetSettings`]: how to reach the server under test, from the environment and an optional
//! TOML file, parsed once and refused at start with the offending variable's name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::{Error, StressConfig};

/// How the API key is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Auth {
    /// `x-api-key: KEY` (Anthropic's header; the default).
    #[default]
    XApiKey,
    /// `Authorization: Bearer KEY` (vLLM, SGLang, llama.cpp, LiteLLM).
    Bearer,
}

impl std::str::FromStr for Auth {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-api-key" | "x_api_key" | "xapikey" => Ok(Self::XApiKey),
            "bearer" | "authorization" => Ok(Self::Bearer),
            other => Err(format!("{other:?} is neither x-api-key nor bearer")),
        }
    }
}

/// The seed's thresholds, each settable per target (in the TOML file's `[thresholds]` table);
/// the defaults are the seed's values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Error rate under exhaustion, graceful rejections not counted (seed: < 5%).
    pub exhaustion_error_rate: f64,
    /// Time for the pool to recover after load, seconds (seed: < 30 s).
    pub recovery_s: f64,
    /// Success latency p95 of agents under load, seconds (seed: < 2 s).
    pub p95_latency_s: f64,
    /// Multi-turn cache hit rate (seed: > 80%).
    pub cache_hit_rate: f64,
    /// Error rate of sustained load (seed: < 1%).
    pub sustained_error_rate: f64,
    /// Server memory growth over a sustained run (seed: < 5%).
    pub memory_growth: f64,
    /// Late over early p95 ratio that counts as degradation (with `degradation_alpha`).
    pub degradation_ratio: f64,
    /// Significance of the one-sided Mann–Whitney test for degradation.
    pub degradation_alpha: f64,
    /// Liveness probe latency p99 under load, seconds.
    pub health_p99_s: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            exhaustion_error_rate: 0.05,
            recovery_s: 30.0,
            p95_latency_s: 2.0,
            cache_hit_rate: 0.8,
            sustained_error_rate: 0.01,
            memory_growth: 0.05,
            degradation_ratio: 1.5,
            degradation_alpha: 0.01,
            health_p99_s: 0.5,
        }
    }
}

impl Thresholds {
    /// Checks that rates are in 0–1 and times are positive.
    fn validate(&self) -> crate::Result<()> {
        let rates = [
            (
                "thresholds.exhaustion_error_rate",
                self.exhaustion_error_rate,
            ),
            ("thresholds.cache_hit_rate", self.cache_hit_rate),
            ("thresholds.sustained_error_rate", self.sustained_error_rate),
            ("thresholds.degradation_alpha", self.degradation_alpha),
        ];
        for (field, x) in rates {
            if !(0.0..=1.0).contains(&x) {
                return Err(invalid(field, format!("{x} is not between 0 and 1")));
            }
        }
        let positive = [
            ("thresholds.recovery_s", self.recovery_s),
            ("thresholds.p95_latency_s", self.p95_latency_s),
            ("thresholds.memory_growth", self.memory_growth),
            ("thresholds.degradation_ratio", self.degradation_ratio),
            ("thresholds.health_p99_s", self.health_p99_s),
        ];
        for (field, x) in positive {
            if !(x.is_finite() && x > 0.0) {
                return Err(invalid(field, format!("{x} is not a number above zero")));
            }
        }
        Ok(())
    }
}

/// How to reach the server under test and what to expect of it.
///
/// Read by [`from_env`](Self::from_env): first the TOML file named by `SEMANTIC_TARGET_FILE`
/// (if set), then the environment, which wins:
///
/// | variable | TOML key | meaning |
/// |---|---|---|
/// | `SEMANTIC_BASE_URL` | `base_url` | `http://` or `https://` URL of the server |
/// | `SEMANTIC_MODEL` | `model` | model name put in requests (default `test-model`) |
/// | `SEMANTIC_API_KEY` | `api_key` | the API key, if the server wants one |
/// | `SEMANTIC_AUTH` | `auth` | `x-api-key` (default) or `bearer` |
/// | `SEMANTIC_HEADERS` | `[headers]` | extra headers, `Name: value` separated by `;` or newlines |
/// | `SEMANTIC_STRESS_TIMEOUT` | `timeout_s` | request timeout, seconds (default 30) |
/// | `SEMANTIC_CONNECT_TIMEOUT` | `connect_timeout_s` | connect timeout, seconds (default 5) |
/// | `SEMANTIC_CA_FILE` | `ca_file` | PEM bundle of CA certificates trusted for `https://`, on top of Mozilla's roots |
/// | `SEMANTIC_PROFILE` | `profile` | server profile: a built-in name, a TOML file, or `auto` |
/// | `SEMANTIC_SERVER_PID` | `server_pid` | server process, for memory sampling |
/// | `SEMANTIC_ADMIN_KEY` | `admin_key` | admin key for the profile's cache reset |
/// | — | `[thresholds]` | per-test [`Thresholds`] (the seed's values by default) |
///
/// # Example
/// ```
/// use semantic_stress::target::{Auth, TargetSettings};
///
/// let toml = r#"
/// base_url = "https://llm.example:8443"
/// model = "qwen2.5-0.5b"
/// auth = "bearer"
/// api_key = "sk-test"
/// [thresholds]
/// p95_latency_s = 5.0
/// "#;
/// let settings = TargetSettings::from_toml(toml)?;
/// assert_eq!(settings.auth, Some(Auth::Bearer));
/// let config = settings.apply(semantic_stress::StressConfig::default())?;
/// assert_eq!(config.model, "qwen2.5-0.5b");
/// # Ok::<(), semantic_stress::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSettings {
    /// Base URL of the server.
    pub base_url: Option<String>,
    /// Model name put in requests.
    pub model: Option<String>,
    /// The API key.
    pub api_key: Option<String>,
    /// How the API key is sent.
    pub auth: Option<Auth>,
    /// Extra headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request timeout, seconds.
    pub timeout_s: Option<f64>,
    /// Connect timeout, seconds.
    pub connect_timeout_s: Option<f64>,
    /// PEM bundle of extra CA certificates trusted for `https://` (a relative path is taken
    /// from the working directory).
    pub ca_file: Option<PathBuf>,
    /// Server profile: a built-in name, a path to a profile TOML file, or `auto`.
    pub profile: Option<String>,
    /// The server's process id.
    pub server_pid: Option<u32>,
    /// Admin key for the profile's cache reset.
    pub admin_key: Option<String>,
    /// Per-test thresholds.
    #[serde(default)]
    pub thresholds: Thresholds,
    /// The file these settings were read from, if any.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

impl TargetSettings {
    /// The file of `SEMANTIC_TARGET_FILE` (if set) overlaid with the environment.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the variable or TOML key whose value cannot be used;
    /// [`Error::Io`] when the file cannot be read.
    pub fn from_env() -> crate::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any lookup; empty values count as unset.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> crate::Result<Self> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let mut s = match get("SEMANTIC_TARGET_FILE") {
            Some(path) => Self::from_file(Path::new(path.trim()))?,
            None => Self::default(),
        };
        if let Some(v) = get("SEMANTIC_BASE_URL") {
            s.base_url = Some(v.trim().to_owned());
        }
        if let Some(v) = get("SEMANTIC_MODEL") {
            s.model = Some(v.trim().to_owned());
        }
        if let Some(v) = get("SEMANTIC_API_KEY") {
            s.api_key = Some(v.trim().to_owned());
        }
        if let Some(v) = get("SEMANTIC_AUTH") {
            s.auth = Some(v.parse().map_err(|e| invalid("SEMANTIC_AUTH", e))?);
        }
        if let Some(v) = get("SEMANTIC_HEADERS") {
            for line in v.split([';', '\n']).filter(|l| !l.trim().is_empty()) {
                let (name, value) = line.split_once(':').ok_or_else(|| {
                    invalid("SEMANTIC_HEADERS", format!("{line:?} is not `Name: value`"))
                })?;
                s.headers
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        if let Some(v) = get("SEMANTIC_STRESS_TIMEOUT") {
            s.timeout_s = Some(seconds(&v, "SEMANTIC_STRESS_TIMEOUT")?);
        }
        if let Some(v) = get("SEMANTIC_CONNECT_TIMEOUT") {
            s.connect_timeout_s = Some(seconds(&v, "SEMANTIC_CONNECT_TIMEOUT")?);
        }
        if let Some(v) = get("SEMANTIC_CA_FILE") {
            s.ca_file = Some(PathBuf::from(v.trim()));
        }
        if let Some(v) = get("SEMANTIC_PROFILE") {
            s.profile = Some(v.trim().to_owned());
        }
        if let Some(v) = get("SEMANTIC_SERVER_PID") {
            let pid = v
                .trim()
                .parse()
                .map_err(|e| invalid("SEMANTIC_SERVER_PID", format!("{v:?}: {e}")))?;
            s.server_pid = Some(pid);
        }
        if let Some(v) = get("SEMANTIC_ADMIN_KEY") {
            s.admin_key = Some(v.trim().to_owned());
        }
        s.validate()?;
        Ok(s)
    }

    /// Settings from a TOML file.
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be read; [`Error::InvalidConfig`] when it does not parse.
    pub fn from_file(path: &Path) -> crate::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut s = Self::from_toml(&text).map_err(|e| match e {
            Error::InvalidConfig { reason, .. } => invalid(
                "SEMANTIC_TARGET_FILE",
                format!("{}: {reason}", path.display()),
            ),
            other => other,
        })?;
        s.file = Some(path.to_owned());
        Ok(s)
    }

    /// Settings from TOML text.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when it does not parse or a value cannot be used.
    pub fn from_toml(text: &str) -> crate::Result<Self> {
        let s: Self =
            toml::from_str(text).map_err(|e| invalid("SEMANTIC_TARGET_FILE", e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// Checks every value once.
    fn validate(&self) -> crate::Result<()> {
        if let Some(url) = &self.base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                "SEMANTIC_BASE_URL",
                format!("{url:?} is neither http:// nor https://"),
            ));
        }
        if let Some(model) = &self.model
            && model.trim().is_empty()
        {
            return Err(invalid("SEMANTIC_MODEL", "is empty".to_owned()));
        }
        for (field, secs) in [
            ("SEMANTIC_STRESS_TIMEOUT", self.timeout_s),
            ("SEMANTIC_CONNECT_TIMEOUT", self.connect_timeout_s),
        ] {
            if let Some(x) = secs
                && !(x.is_finite() && x > 0.0 && x <= 3600.0)
            {
                return Err(invalid(field, format!("{x} s is not between 0 and 3600")));
            }
        }
        self.headers()?;
        self.thresholds.validate()
    }

    /// The extra headers, plus `Authorization: Bearer` when the key goes there.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a header name or value HTTP does not allow.
    pub fn headers(&self) -> crate::Result<Vec<(HeaderName, HeaderValue)>> {
        let mut out = Vec::new();
        for (name, value) in &self.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| invalid("SEMANTIC_HEADERS", format!("{name:?}: {e}")))?;
            let v = HeaderValue::from_str(value)
                .map_err(|e| invalid("SEMANTIC_HEADERS", format!("{name}: {e}")))?;
            out.push((n, v));
        }
        if self.auth == Some(Auth::Bearer)
            && let Some(key) = &self.api_key
        {
            let mut v = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|e| invalid("SEMANTIC_API_KEY", e.to_string()))?;
            v.set_sensitive(true);
            out.push((AUTHORIZATION, v));
        }
        Ok(out)
    }

    /// `config` with these settings applied (the ones that are set).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a header HTTP does not allow.
    pub fn apply(&self, mut config: StressConfig) -> crate::Result<StressConfig> {
        if let Some(url) = &self.base_url {
            config.base_url.clone_from(url);
        }
        if let Some(model) = &self.model {
            config.model.clone_from(model);
        }
        config.api_key = match self.auth.unwrap_or_default() {
            Auth::XApiKey => self.api_key.clone(),
            Auth::Bearer => None,
        };
        config.headers.extend(self.headers()?);
        if let Some(s) = self.timeout_s {
            config.timeout = Duration::from_secs_f64(s);
        }
        if let Some(s) = self.connect_timeout_s {
            config.connect_timeout = Duration::from_secs_f64(s);
        }
        if let Some(path) = &self.ca_file {
            config.ca_file = Some(path.clone());
        }
        Ok(config)
    }
}

/// Seconds as a number.
fn seconds(value: &str, field: &'static str) -> crate::Result<f64> {
    value
        .trim()
        .parse::<f64>()
        .map_err(|e| invalid(field, format!("{value:?}: {e}")))
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidConfig {
        field,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn env_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("target.toml");
        std::fs::write(
            &file,
            "base_url = \"http://127.0.0.1:1\"\nmodel = \"from-file\"\ntimeout_s = 90\n[headers]\nX-Team = \"a\"\n",
        )
        .unwrap();
        let s = TargetSettings::from_lookup(lookup(vec![
            ("SEMANTIC_TARGET_FILE", file.display().to_string()),
            ("SEMANTIC_MODEL", "from-env".to_owned()),
            ("SEMANTIC_AUTH", "bearer".to_owned()),
            ("SEMANTIC_API_KEY", "k".to_owned()),
            ("SEMANTIC_HEADERS", "X-Extra: 1; X-Team: b".to_owned()),
            ("SEMANTIC_CA_FILE", "/etc/ca/private.pem".to_owned()),
        ]))
        .unwrap();
        let c = s.apply(StressConfig::default()).unwrap();
        assert_eq!(c.ca_file.as_deref(), Some(Path::new("/etc/ca/private.pem")));
        assert_eq!(c.base_url, "http://127.0.0.1:1");
        assert_eq!(c.model, "from-env");
        assert_eq!(c.timeout, Duration::from_secs(90));
        assert_eq!(
            c.api_key, None,
            "a bearer key is not also sent as x-api-key"
        );
        let h: Vec<(String, String)> = c
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert!(h.contains(&("x-team".to_owned(), "b".to_owned())), "{h:?}");
        assert!(h.contains(&("x-extra".to_owned(), "1".to_owned())), "{h:?}");
        assert!(
            h.contains(&("authorization".to_owned(), "Bearer k".to_owned())),
            "{h:?}"
        );
    }

    #[test]
    fn bad_values_are_refused_with_their_name() {
        for (name, value) in [
            ("SEMANTIC_BASE_URL", "ftp://x"),
            ("SEMANTIC_AUTH", "basic"),
            ("SEMANTIC_HEADERS", "no colon"),
            ("SEMANTIC_STRESS_TIMEOUT", "0"),
            ("SEMANTIC_CONNECT_TIMEOUT", "soon"),
            ("SEMANTIC_SERVER_PID", "-3"),
            ("SEMANTIC_TARGET_FILE", "/nonexistent/target.toml"),
        ] {
            let err = TargetSettings::from_lookup(lookup(vec![(name, value.to_owned())]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(name) || err.contains("/nonexistent/target.toml"),
                "{name}: {err}"
            );
        }
        let err = TargetSettings::from_toml("[thresholds]\ncache_hit_rate = 80\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("thresholds.cache_hit_rate"), "{err}");
        let err = TargetSettings::from_toml("modle = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("modle"), "an unknown key is named: {err}");
    }

    #[test]
    fn the_ca_file_is_read_from_the_file_too() {
        let s =
            TargetSettings::from_toml("base_url = \"https://llm.example\"\nca_file = \"ca.pem\"\n")
                .unwrap();
        let c = s.apply(StressConfig::default()).unwrap();
        assert_eq!(c.ca_file.as_deref(), Some(Path::new("ca.pem")));
        assert_eq!(c.base_url, "https://llm.example");
    }

    #[test]
    fn thresholds_default_to_the_seed() {
        let t = TargetSettings::from_toml("").unwrap().thresholds;
        assert_eq!(t.p95_latency_s, 2.0);
        assert_eq!(t.cache_hit_rate, 0.8);
        assert_eq!(t.memory_growth, 0.05);
        assert_eq!(t.recovery_s, 30.0);
        assert_eq!(t.exhaustion_error_rate, 0.05);
        assert_eq!(t.sustained_error_rate, 0.01);
    }
}
