//! Optional rate limits: a sliding 60 s window over all requests and per agent.
//!
//! Each window keeps the admission times of at most `limit` requests. A request is allowed
//! if fewer than `limit` fall in the last 60 s; otherwise it must wait until the oldest leaves
//! the window, which is its `Retry-After`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Length of the sliding window.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);
/// Per-agent windows are swept for empty entries every this many checks.
const SWEEP_EVERY: u64 = 1024;

/// A rate limit was hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limited {
    /// `"global"` or `"agent"`.
    pub(crate) scope: &'static str,
    /// Requests allowed per window.
    pub(crate) limit: u32,
    /// When a request would next be allowed.
    pub(crate) retry_after: Duration,
}

/// Timestamps of the requests in one window.
#[derive(Debug, Default)]
struct Window(VecDeque<Instant>);

impl Window {
    fn prune(&mut self, now: Instant) {
        while self
            .0
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            self.0.pop_front();
        }
    }

    /// Time until one more request fits, or `None` if it fits now.
    fn wait(&mut self, now: Instant, limit: u32) -> Option<Duration> {
        self.prune(now);
        if self.0.len() < limit as usize {
            return None;
        }
        let oldest = self.0.front()?;
        Some(WINDOW.saturating_sub(now.saturating_duration_since(*oldest)))
    }
}

/// Global and per-agent sliding windows.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    global_limit: Option<u32>,
    agent_limit: Option<u32>,
    global: Window,
    agents: HashMap<String, Window>,
    checks: u64,
}

impl RateLimiter {
    /// Limits per 60 s window (`None`: unlimited).
    pub(crate) fn new(global_limit: Option<u32>, agent_limit: Option<u32>) -> Self {
        Self {
            global_limit,
            agent_limit,
            ..Self::default()
        }
    }

    /// Whether any limit is set (when none is, callers skip the lock entirely).
    pub(crate) fn is_active(&self) -> bool {
        self.global_limit.is_some() || self.agent_limit.is_some()
    }

    /// Counts one request of `agent` at `now`, or says which limit it hits (counting nothing).
    /// A request of no known agent meets only the global limit.
    pub(crate) fn check(&mut self, agent: Option<&str>, now: Instant) -> Result<(), Limited> {
        self.checks += 1;
        if self.checks.is_multiple_of(SWEEP_EVERY) {
            self.agents.retain(|_, w| {
                w.prune(now);
                !w.0.is_empty()
            });
        }
        if let Some(limit) = self.global_limit
            && let Some(retry_after) = self.global.wait(now, limit)
        {
            return Err(Limited {
                scope: "global",
                limit,
                retry_after,
            });
        }
        if let Some(limit) = self.agent_limit
            && let Some(agent) = agent
        {
            let window = self.agents.entry(agent.to_owned()).or_default();
            if let Some(retry_after) = window.wait(now, limit) {
                return Err(Limited {
                    scope: "agent",
                    limit,
                    retry_after,
                });
            }
            window.0.push_back(now);
        }
        if self.global_limit.is_some() {
            self.global.0.push_back(now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_window_slides() {
        let mut rl = RateLimiter::new(Some(2), None);
        let t = Instant::now();
        assert!(rl.check(Some("a"), t).is_ok());
        assert!(rl.check(Some("b"), t + Duration::from_secs(10)).is_ok());
        let hit = rl
            .check(Some("c"), t + Duration::from_secs(20))
            .unwrap_err();
        assert_eq!(hit.scope, "global");
        assert_eq!(hit.retry_after, Duration::from_secs(40));
        assert!(rl.check(Some("c"), t + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn agent_windows_are_separate() {
        let mut rl = RateLimiter::new(None, Some(1));
        let t = Instant::now();
        assert!(rl.check(Some("a"), t).is_ok());
        assert!(rl.check(Some("b"), t).is_ok());
        assert_eq!(rl.check(Some("a"), t).unwrap_err().scope, "agent");
        assert!(!RateLimiter::new(None, None).is_active());
    }
}
