//! [`Overrides`]: the seed's environment variables that resize a suite's tests.

use std::time::Duration;

/// Sizes a user may override from the environment, each parsed strictly once (a bad value is
/// an error naming its variable). `None` means "the test's own default".
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Overrides {
    /// `SEMANTIC_STRESS_TEST_WORKERS`: concurrent workers or agents.
    pub workers: Option<usize>,
    /// `SEMANTIC_STRESS_TEST_RATE_LIMIT`: paced load, requests per second.
    pub rate: Option<f64>,
    /// `SEMANTIC_STRESS_TEST_DURATION`: sustained-run length (seconds in the variable).
    pub duration: Option<Duration>,
    /// `SEMANTIC_STRESS_REALISTIC_SECONDS`: span of the realistic-conversation test.
    pub realistic_span: Option<Duration>,
}

impl Overrides {
    /// Reads the variables from the process environment.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) naming the variable whose value
    /// is not a positive number.
    pub fn from_env() -> crate::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any lookup; empty values count as unset.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> crate::Result<Self> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        Ok(Self {
            workers: get("SEMANTIC_STRESS_TEST_WORKERS")
                .map(|v| positive(&v, "SEMANTIC_STRESS_TEST_WORKERS"))
                .transpose()?
                .map(|n| n as usize),
            rate: get("SEMANTIC_STRESS_TEST_RATE_LIMIT")
                .map(|v| positive(&v, "SEMANTIC_STRESS_TEST_RATE_LIMIT"))
                .transpose()?,
            duration: get("SEMANTIC_STRESS_TEST_DURATION")
                .map(|v| seconds(&v, "SEMANTIC_STRESS_TEST_DURATION"))
                .transpose()?,
            realistic_span: get("SEMANTIC_STRESS_REALISTIC_SECONDS")
                .map(|v| seconds(&v, "SEMANTIC_STRESS_REALISTIC_SECONDS"))
                .transpose()?,
        })
    }

    /// The workers override, or `default`.
    pub fn workers_or(&self, default: usize) -> usize {
        self.workers.unwrap_or(default)
    }

    /// The rate override, or `default`.
    pub fn rate_or(&self, default: f64) -> f64 {
        self.rate.unwrap_or(default)
    }

    /// The duration override, or `default`.
    pub fn duration_or(&self, default: Duration) -> Duration {
        self.duration.unwrap_or(default)
    }

    /// The realistic span override, or `default`.
    pub fn realistic_span_or(&self, default: Duration) -> Duration {
        self.realistic_span.unwrap_or(default)
    }
}

/// A finite number above zero.
fn positive(value: &str, field: &'static str) -> crate::Result<f64> {
    match value.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(crate::Error::InvalidConfig {
            field,
            reason: format!("{value:?} is not a number above zero"),
        }),
    }
}

/// Seconds above zero, at most a year (a typo must not schedule a century of load).
fn seconds(value: &str, field: &'static str) -> crate::Result<Duration> {
    let secs = positive(value, field)?;
    if secs > 365.0 * 86_400.0 {
        return Err(crate::Error::InvalidConfig {
            field,
            reason: format!("{value:?} seconds is more than a year"),
        });
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn unset_and_empty_mean_defaults() {
        let o = Overrides::from_lookup(lookup(&[("SEMANTIC_STRESS_TEST_WORKERS", " ")])).unwrap();
        assert_eq!(o, Overrides::default());
        assert_eq!(o.workers_or(150), 150);
        assert_eq!(
            o.duration_or(Duration::from_secs(3600)),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn values_parse() {
        let o = Overrides::from_lookup(lookup(&[
            ("SEMANTIC_STRESS_TEST_WORKERS", "12"),
            ("SEMANTIC_STRESS_TEST_RATE_LIMIT", "2.5"),
            ("SEMANTIC_STRESS_TEST_DURATION", "30"),
            ("SEMANTIC_STRESS_REALISTIC_SECONDS", "7.5"),
        ]))
        .unwrap();
        assert_eq!(o.workers_or(1), 12);
        assert_eq!(o.rate_or(1.0), 2.5);
        assert_eq!(o.duration_or(Duration::ZERO), Duration::from_secs(30));
        assert_eq!(
            o.realistic_span_or(Duration::ZERO),
            Duration::from_millis(7500)
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("SEMANTIC_STRESS_TEST_WORKERS", "many"),
            ("SEMANTIC_STRESS_TEST_RATE_LIMIT", "-1"),
            ("SEMANTIC_STRESS_TEST_DURATION", "1e12"),
            ("SEMANTIC_STRESS_REALISTIC_SECONDS", "NaN"),
        ] {
            let get = move |n: &str| (n == name).then(|| value.to_owned());
            let err = Overrides::from_lookup(get).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(value), "{err}");
        }
    }
}
