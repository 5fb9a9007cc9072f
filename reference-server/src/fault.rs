//! Injectable faults: each breaks one promise of the contract so that a stress check can be
//! shown to catch it.
//!
//! A fault is named on the command line as `NAME[=VALUE]` (`--fault hang=50`) or built in code
//! ([`Fault::Hang`]). Faults are off unless asked for; the server checks them through
//! [`FaultSet`], plain fields read without locks, so they cost nothing when off.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Default of `leak=KB`: kibibytes leaked per request.
const LEAK_KIB: usize = 256;
/// Default of `degrade=MS`: extra milliseconds of latency per request already served.
const DEGRADE_STEP: Duration = Duration::from_millis(1);
/// Default of `hang=N`: messages requests answered before the server stops answering.
const HANG_AFTER: u64 = 20;
/// Default of `drop-connection=N`: every Nth messages request loses its connection.
const DROP_EVERY: u64 = 10;

/// One injectable fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// `leak[=KB]`: every messages request allocates and touches `bytes_per_request` bytes that
    /// are never freed, so resident memory grows without bound (default 256 KiB).
    Leak {
        /// Bytes leaked per request.
        bytes_per_request: usize,
    },
    /// `crash-on-exhaustion`: pool exhaustion answers 500 `api_error` instead of 429.
    CrashOnExhaustion,
    /// `no-retry-after`: 429/503/529 replies carry no `Retry-After` header.
    NoRetryAfter,
    /// `late-reject`: a request that should be rejected is accepted, runs a full generation,
    /// and only then fails (a stream gets 200 and then an `error` event).
    LateReject,
    /// `no-recovery`: blocks are never freed (completed requests keep their whole reservation
    /// and idle agents are never evicted) until the agent is deleted.
    NoRecovery,
    /// `cross-agent-bleed`: replies are generated from another agent's context, so another
    /// agent's canary appears in the text.
    CrossAgentBleed,
    /// `no-cache`: prefixes are never reused (`cache_read_input_tokens` is always 0).
    NoCache,
    /// `degrade[=MS]`: each request waits `step` × (requests served so far) before admission
    /// (default 1 ms).
    Degrade {
        /// Extra latency per request already served.
        step: Duration,
    },
    /// `hang[=N]`: after N messages requests, every request (any route) is never answered until
    /// shutdown (default 20).
    Hang {
        /// Messages requests answered normally before hanging.
        after_requests: u64,
    },
    /// `truncate-stream`: streams end after the last text delta, without `message_delta` and
    /// `message_stop`.
    TruncateStream,
    /// `drop-connection[=N]`: every Nth messages request has its connection closed without a
    /// response (default 10).
    DropConnection {
        /// Period, in messages requests.
        every: u64,
    },
    /// `blocking-health`: health probes wait until no inference is in flight.
    BlockingHealth,
}

/// A fault name or parameter that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fault {spec:?}: {reason}")]
pub struct ParseFaultError {
    /// The text as given.
    pub spec: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Fault {
    /// Every fault name, in the contract's order.
    pub const NAMES: [&'static str; 12] = [
        "leak",
        "crash-on-exhaustion",
        "no-retry-after",
        "late-reject",
        "no-recovery",
        "cross-agent-bleed",
        "no-cache",
        "degrade",
        "hang",
        "truncate-stream",
        "drop-connection",
        "blocking-health",
    ];

    /// The fault's name as used on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Leak { .. } => "leak",
            Self::CrashOnExhaustion => "crash-on-exhaustion",
            Self::NoRetryAfter => "no-retry-after",
            Self::LateReject => "late-reject",
            Self::NoRecovery => "no-recovery",
            Self::CrossAgentBleed => "cross-agent-bleed",
            Self::NoCache => "no-cache",
            Self::Degrade { .. } => "degrade",
            Self::Hang { .. } => "hang",
            Self::TruncateStream => "truncate-stream",
            Self::DropConnection { .. } => "drop-connection",
            Self::BlockingHealth => "blocking-health",
        }
    }
}

impl FromStr for Fault {
    type Err = ParseFaultError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| ParseFaultError {
            spec: spec.to_owned(),
            reason,
        };
        let (name, value) = match spec.trim().split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (spec.trim(), None),
        };
        let count = |default: u64| -> Result<u64, ParseFaultError> {
            match value {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| fail(format!("{v:?} is not a whole number >= 1"))),
            }
        };
        let no_value = |fault: Self| match value {
            None => Ok(fault),
            Some(v) => Err(fail(format!("{name} takes no value, got {v:?}"))),
        };
        match name {
            "leak" => {
                let kib = count(LEAK_KIB as u64)?;
                let kib = usize::try_from(kib).map_err(|e| fail(e.to_string()))?;
                Ok(Self::Leak {
                    bytes_per_request: kib.saturating_mul(1024),
                })
            }
            "crash-on-exhaustion" => no_value(Self::CrashOnExhaustion),
            "no-retry-after" => no_value(Self::NoRetryAfter),
            "late-reject" => no_value(Self::LateReject),
            "no-recovery" => no_value(Self::NoRecovery),
            "cross-agent-bleed" => no_value(Self::CrossAgentBleed),
            "no-cache" => no_value(Self::NoCache),
            "degrade" => {
                let step = match value {
                    None => DEGRADE_STEP,
                    Some(v) => v
                        .parse::<f64>()
                        .ok()
                        .filter(|ms| ms.is_finite() && *ms >= 0.0)
                        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
                        .ok_or_else(|| fail(format!("{v:?} is not a number of milliseconds")))?,
                };
                Ok(Self::Degrade { step })
            }
            "hang" => Ok(Self::Hang {
                after_requests: count(HANG_AFTER)?,
            }),
            "truncate-stream" => no_value(Self::TruncateStream),
            "drop-connection" => Ok(Self::DropConnection {
                every: count(DROP_EVERY)?,
            }),
            "blocking-health" => no_value(Self::BlockingHealth),
            other => Err(fail(format!(
                "unknown fault {other:?}; known: {}",
                Self::NAMES.join(", ")
            ))),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Leak { bytes_per_request } => write!(f, "leak={}", bytes_per_request / 1024),
            Self::Degrade { step } => write!(f, "degrade={}", step.as_secs_f64() * 1000.0),
            Self::Hang { after_requests } => write!(f, "hang={after_requests}"),
            Self::DropConnection { every } => write!(f, "drop-connection={every}"),
            other => f.write_str(other.name()),
        }
    }
}

/// The faults in force, as plain fields so that checking one is a field read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FaultSet {
    pub(crate) leak_bytes: Option<usize>,
    pub(crate) crash_on_exhaustion: bool,
    pub(crate) no_retry_after: bool,
    pub(crate) late_reject: bool,
    pub(crate) no_recovery: bool,
    pub(crate) cross_agent_bleed: bool,
    pub(crate) no_cache: bool,
    pub(crate) degrade_step: Option<Duration>,
    pub(crate) hang_after: Option<u64>,
    pub(crate) truncate_stream: bool,
    pub(crate) drop_every: Option<u64>,
    pub(crate) blocking_health: bool,
}

impl FaultSet {
    /// Turns one fault on (a later setting of the same fault replaces its parameter).
    pub(crate) fn insert(&mut self, fault: Fault) {
        match fault {
            Fault::Leak { bytes_per_request } => self.leak_bytes = Some(bytes_per_request),
            Fault::CrashOnExhaustion => self.crash_on_exhaustion = true,
            Fault::NoRetryAfter => self.no_retry_after = true,
            Fault::LateReject => self.late_reject = true,
            Fault::NoRecovery => self.no_recovery = true,
            Fault::CrossAgentBleed => self.cross_agent_bleed = true,
            Fault::NoCache => self.no_cache = true,
            Fault::Degrade { step } => self.degrade_step = Some(step),
            Fault::Hang { after_requests } => self.hang_after = Some(after_requests),
            Fault::TruncateStream => self.truncate_stream = true,
            Fault::DropConnection { every } => self.drop_every = Some(every),
            Fault::BlockingHealth => self.blocking_health = true,
        }
    }

    /// The faults in force, in the contract's order.
    pub(crate) fn list(&self) -> Vec<Fault> {
        let mut out = Vec::new();
        if let Some(bytes_per_request) = self.leak_bytes {
            out.push(Fault::Leak { bytes_per_request });
        }
        let flags = [
            (self.crash_on_exhaustion, Fault::CrashOnExhaustion),
            (self.no_retry_after, Fault::NoRetryAfter),
            (self.late_reject, Fault::LateReject),
            (self.no_recovery, Fault::NoRecovery),
            (self.cross_agent_bleed, Fault::CrossAgentBleed),
            (self.no_cache, Fault::NoCache),
        ];
        out.extend(flags.iter().filter(|(on, _)| *on).map(|(_, f)| *f));
        if let Some(step) = self.degrade_step {
            out.push(Fault::Degrade { step });
        }
        if let Some(after_requests) = self.hang_after {
            out.push(Fault::Hang { after_requests });
        }
        if self.truncate_stream {
            out.push(Fault::TruncateStream);
        }
        if let Some(every) = self.drop_every {
            out.push(Fault::DropConnection { every });
        }
        if self.blocking_health {
            out.push(Fault::BlockingHealth);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_and_round_trips() {
        for name in Fault::NAMES {
            let fault: Fault = name.parse().expect(name);
            assert_eq!(fault.name(), name);
            let again: Fault = fault.to_string().parse().expect("display parses");
            assert_eq!(again, fault);
        }
    }

    #[test]
    fn parameters_parse() {
        assert_eq!(
            "hang=5".parse::<Fault>().unwrap(),
            Fault::Hang { after_requests: 5 }
        );
        assert_eq!(
            "leak=10".parse::<Fault>().unwrap(),
            Fault::Leak {
                bytes_per_request: 10 * 1024
            }
        );
        assert_eq!(
            "degrade=2.5".parse::<Fault>().unwrap(),
            Fault::Degrade {
                step: Duration::from_micros(2500)
            }
        );
        assert_eq!(
            "drop-connection=3".parse::<Fault>().unwrap(),
            Fault::DropConnection { every: 3 }
        );
    }

    #[test]
    fn bad_specs_name_the_problem() {
        let e = "hang=0".parse::<Fault>().unwrap_err();
        assert!(e.to_string().contains("whole number"), "{e}");
        let e = "explode".parse::<Fault>().unwrap_err();
        assert!(e.to_string().contains("unknown fault"), "{e}");
        let e = "no-cache=1".parse::<Fault>().unwrap_err();
        assert!(e.to_string().contains("takes no value"), "{e}");
    }

    #[test]
    fn set_lists_what_was_inserted() {
        let mut set = FaultSet::default();
        assert!(set.list().is_empty());
        set.insert(Fault::NoCache);
        set.insert(Fault::Hang { after_requests: 3 });
        assert_eq!(
            set.list(),
            vec![Fault::NoCache, Fault::Hang { after_requests: 3 }]
        );
    }
}
