//! Deleting a test's agents after it ran: the profile's [`Agents`] table says how
//! ([`Deletion`]), [`CleanupLimits`] bound it, and [`Cleanup`] says what happened.
//!
//! A server that keeps every agent's cache until told otherwise (agent-memory frees an idle
//! agent's pool blocks only on `DELETE /v1/agents/{id}`, `direct_agent_adapter.py:336-400`)
//! would otherwise carry one test's agents into the next.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::profile::Reset;
use crate::metrics::serde_duration::millis;
use crate::{Client, Request};

/// The placeholder of a [`Deletion`]'s path that takes the agent's id.
pub const AGENT_ID: &str = "{id}";

/// What the server offers for agents (the profile's `[agents]` table).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agents {
    /// How to delete one agent; `None` when the server has no way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<Deletion>,
}

/// A request that deletes one agent: `{id}` in the path is the agent's id (its `X-Session-ID`,
/// percent-encoded), headers as the cache reset's (`${NAME}` is the environment variable
/// `NAME`; a header whose variable is unset skips the deletion). The target's credentials
/// (API key, extra headers) are added as to any request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deletion {
    /// HTTP method.
    pub method: String,
    /// Route, with `{id}` where the agent's id goes (`/v1/agents/sess_{id}`).
    pub path: String,
    /// Headers; `${NAME}` in a value is the environment variable `NAME`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl Deletion {
    /// The request template (path still holding `{id}`), or `None` when a header names an
    /// unset variable (`lookup` gives values).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for a path without `{id}`, or a
    /// method or header HTTP does not allow.
    pub fn template(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> crate::Result<Option<Request>> {
        if !self.path.contains(AGENT_ID) {
            return Err(crate::Error::InvalidConfig {
                field: "SEMANTIC_PROFILE",
                reason: format!("agents.delete.path {:?} has no {AGENT_ID}", self.path),
            });
        }
        let reset = Reset {
            method: self.method.clone(),
            path: self.path.clone(),
            headers: self.headers.clone(),
        };
        reset.request(lookup)
    }

    /// The request that deletes agent `id`, from a [`template`](Self::template).
    pub fn for_agent(template: &Request, id: &str) -> Request {
        let mut request = template.clone();
        request.path = template.path.replace(AGENT_ID, &encode(id));
        request
    }
}

/// `id` with every byte but RFC 3986's unreserved ones percent-encoded.
fn encode(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Bounds of a clean-up: a total time budget and a cap on deletions in flight.
///
/// When the budget runs out, deletions not yet sent are not sent (counted as
/// [`not_sent`](Cleanup::not_sent): the agents stay, for the profile's cache reset to clear)
/// and deletions in flight are abandoned (counted as [`failed`](Cleanup::failed)). A 429 stops
/// the clean-up the same way: a server whose rate limiter refuses one deletion would refuse
/// the rest (agent-memory's limiter counts every route, `rate_limiter.py:174-185`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupLimits {
    /// Time for the whole clean-up.
    pub budget: Duration,
    /// Deletions in flight at once.
    pub concurrency: usize,
}

impl Default for CleanupLimits {
    /// 10 s, 8 at once.
    fn default() -> Self {
        Self {
            budget: Duration::from_secs(10),
            concurrency: 8,
        }
    }
}

/// What deleting a test's agents did. Every deletion sent is counted exactly once, in
/// `deleted`, `already_gone` or `failed`; these requests are not in the test's metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cleanup {
    /// Agents the test used, to delete.
    pub agents: u64,
    /// Deletions answered 2xx.
    pub deleted: u64,
    /// Deletions answered 404: the agent was already gone (or never kept).
    pub already_gone: u64,
    /// Deletions answered otherwise, not answered, or abandoned when the budget ran out.
    pub failed: u64,
    /// Deletions never sent: the budget ran out, or a 429 stopped the clean-up, first.
    pub not_sent: u64,
    /// The first failure's reason.
    pub first_failure: Option<String>,
    /// Time the clean-up took.
    #[serde(rename = "took_ms", with = "millis")]
    pub took: Duration,
    /// Its time budget.
    #[serde(rename = "budget_ms", with = "millis")]
    pub budget: Duration,
    /// Deletions in flight at once, at most.
    pub concurrency: u64,
    /// Why no deletion was sent (the profile declares none, or names an unset variable);
    /// `None` when deletions were sent (or there was no agent).
    pub skipped: Option<String>,
}

impl Cleanup {
    /// Nothing sent for `agents` agents, for `reason`.
    pub fn skipped(agents: usize, limits: CleanupLimits, reason: impl Into<String>) -> Self {
        Self {
            agents: agents as u64,
            budget: limits.budget,
            concurrency: limits.concurrency as u64,
            skipped: Some(reason.into()),
            ..Self::default()
        }
    }

    /// Whether every agent is accounted for: deleted or already gone.
    pub fn complete(&self) -> bool {
        self.skipped.is_none() && self.deleted + self.already_gone == self.agents
    }

    fn fail(&mut self, reason: String) {
        self.failed += 1;
        self.first_failure.get_or_insert(reason);
    }
}

impl std::fmt::Display for Cleanup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(why) = &self.skipped {
            return write!(f, "cleanup: {} agents not deleted: {why}", self.agents);
        }
        write!(
            f,
            "cleanup: {} agents: {} deleted, {} already gone, {} failed, {} not sent, in {:.2} s (budget {:.1} s, {} at once)",
            self.agents,
            self.deleted,
            self.already_gone,
            self.failed,
            self.not_sent,
            self.took.as_secs_f64(),
            self.budget.as_secs_f64(),
            self.concurrency
        )?;
        if let Some(why) = &self.first_failure {
            write!(f, "; first failure: {why}")?;
        }
        if self.deleted == 0 && self.already_gone > 0 && self.already_gone == self.agents {
            // Not one deletion found its agent: a server without this route answers 404 too.
            write!(
                f,
                "; every deletion answered 404: the agents were gone, or the server has no such route (is the profile the server's?)"
            )?;
        }
        Ok(())
    }
}

/// Sends `template` (a [`Deletion::template`]) for every id in `ids` through `client`, at most
/// `limits.concurrency` at once, within `limits.budget`.
pub(crate) async fn delete_all(
    client: &Client,
    template: &Request,
    ids: Vec<String>,
    limits: CleanupLimits,
) -> Cleanup {
    let started = Instant::now();
    let deadline = started + limits.budget;
    let mut summary = Cleanup {
        agents: ids.len() as u64,
        budget: limits.budget,
        concurrency: limits.concurrency as u64,
        ..Cleanup::default()
    };
    let queue = Arc::new(Mutex::new(ids));
    let limited = Arc::new(AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..limits.concurrency.max(1) {
        let (client, template) = (client.clone(), template.clone());
        let (queue, limited) = (Arc::clone(&queue), Arc::clone(&limited));
        workers.spawn(async move {
            let mut tally = Cleanup::default();
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                // Only a stop signal: nothing else is published through it.
                if left.is_zero() || limited.load(Ordering::Relaxed) {
                    break;
                }
                let Some(id) = queue.lock().unwrap_or_else(PoisonError::into_inner).pop() else {
                    break;
                };
                let request = Deletion::for_agent(&template, &id);
                let what = format!("{} {}", request.method, request.path);
                match tokio::time::timeout(left, client.send(&request, Instant::now())).await {
                    Ok(r) if (200..300).contains(&r.status) => tally.deleted += 1,
                    Ok(r) if r.status == 404 => tally.already_gone += 1,
                    Ok(r) if r.status == 429 => {
                        limited.store(true, Ordering::Relaxed);
                        tally.fail(format!(
                            "{what}: {} (rate limited: the rest are not sent)",
                            r.error.unwrap_or_else(|| "status 429".to_owned())
                        ));
                    }
                    Ok(r) => tally.fail(format!(
                        "{what}: {}",
                        r.error.unwrap_or_else(|| format!("status {}", r.status))
                    )),
                    Err(_) => tally.fail(format!(
                        "{what}: no answer within the cleanup budget of {:?}",
                        limits.budget
                    )),
                }
            }
            tally
        });
    }
    while let Some(done) = workers.join_next().await {
        // A worker only counts; it cannot panic on server output.
        let Ok(t) = done else { continue };
        summary.deleted += t.deleted;
        summary.already_gone += t.already_gone;
        summary.failed += t.failed;
        if summary.first_failure.is_none() {
            summary.first_failure = t.first_failure;
        }
    }
    summary.not_sent = queue.lock().unwrap_or_else(PoisonError::into_inner).len() as u64;
    summary.took = started.elapsed();
    summary
}

#[cfg(test)]
#[path = "cleanup_tests.rs"]
mod tests;
