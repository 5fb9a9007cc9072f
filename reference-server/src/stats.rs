//! What the server counted, for tests to cross-check against what a harness recorded.
//!
//! [`Stats`] is a plain snapshot (`Clone`, `Debug`, serde); [`ReferenceServer::stats`]
//! returns it in-process and `GET /v1/agents/stats` serves it under `"server"`.
//!
//! [`ReferenceServer::stats`]: super::ReferenceServer::stats

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::agents::CacheFigures;
use super::pool::ratio;

/// A snapshot of the server's counters and gauges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Stats {
    /// `POST /v1/messages` requests received (including ones later rejected or dropped).
    pub messages_received: u64,
    /// Messages requests answered 200 with a whole reply (JSON or a complete stream).
    pub completed: u64,
    /// Of `completed`, how many were streams.
    pub completed_streams: u64,
    /// Final status of every answered messages request, by status code (200 included; a
    /// late-rejected stream counts under its error's status).
    pub responses_by_status: BTreeMap<u16, u64>,
    /// Requests refused for capacity (pool exhausted or queue full) or rate, by status.
    pub rejected_by_status: BTreeMap<u16, u64>,
    /// Of the rejections, how many were rate limits (`rate_limit_error`).
    pub rate_limited: u64,
    /// Messages requests refused as malformed or unauthorised (400, 401, 413).
    pub invalid_requests: u64,
    /// Messages requests that failed with a 5xx other than a capacity rejection.
    pub server_errors: u64,
    /// Requests accepted and failed only after a full generation (fault `late-reject`).
    pub late_rejected: u64,
    /// Requests abandoned by their client before the reply was complete.
    pub cancelled: u64,
    /// TCP connections accepted.
    pub connections_accepted: u64,
    /// Connections closed without a response (fault `drop-connection`).
    pub connections_dropped: u64,
    /// Streams ended without `message_stop` (fault `truncate-stream`).
    pub streams_truncated: u64,
    /// Bytes deliberately leaked (fault `leak`).
    pub leaked_bytes: u64,
    /// Sum of `input_tokens` over completed requests.
    pub input_tokens: u64,
    /// Sum of `output_tokens` over completed requests.
    pub output_tokens: u64,
    /// Sum of `cache_read_input_tokens` over completed requests.
    pub cache_read_tokens: u64,
    /// Sum of `cache_creation_input_tokens` over completed requests.
    pub cache_creation_tokens: u64,
    /// Messages requests admitted and not yet finished.
    pub in_flight: u64,
    /// Sequences in the running batch.
    pub running: usize,
    /// Sequences waiting for a batch slot.
    pub queued: usize,
    /// The block pool.
    pub pool: PoolStats,
    /// The agents.
    pub agents: AgentStats,
    /// Whether the server is shutting down.
    pub draining: bool,
}

/// Block pool figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PoolStats {
    /// Blocks in the pool.
    pub total_blocks: u64,
    /// Blocks in use (caches and reservations).
    pub used_blocks: u64,
    /// Blocks held by agents' caches.
    pub cached_blocks: u64,
    /// Blocks of idle agents' caches, which admission may evict to make room.
    pub evictable_blocks: u64,
    /// Most blocks ever in use at once.
    pub peak_used_blocks: u64,
    /// `used_blocks / total_blocks`, 0–1.
    pub utilization: f64,
    /// `peak_used_blocks / total_blocks`, 0–1.
    pub peak_utilization: f64,
}

/// Agent figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AgentStats {
    /// Agents known: holding a cache or with a request in flight.
    pub total_count: usize,
    /// Idle agents holding a cache.
    pub hot_count: usize,
    /// Caches evicted (LRU or hot-agent cap).
    pub evictions: u64,
}

impl PoolStats {
    pub(crate) fn from_figures(f: &CacheFigures) -> Self {
        Self {
            total_blocks: f.total_blocks,
            used_blocks: f.used_blocks,
            cached_blocks: f.cached_blocks,
            evictable_blocks: f.evictable_blocks,
            peak_used_blocks: f.peak_used_blocks,
            utilization: ratio(f.used_blocks, f.total_blocks),
            peak_utilization: ratio(f.peak_used_blocks, f.total_blocks),
        }
    }
}

impl AgentStats {
    pub(crate) fn from_figures(f: &CacheFigures) -> Self {
        Self {
            total_count: f.agents,
            hot_count: f.idle_cached_agents,
            evictions: f.evictions,
        }
    }
}

/// How a messages request ended, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Completed {
        stream: bool,
    },
    Rejected,
    RateLimited,
    Invalid,
    ServerError,
    LateRejected,
    /// A stream ended without `message_stop` (fault `truncate-stream`).
    Truncated,
}

/// Live counters. Every counter is independent and only read for reporting, so `Relaxed`
/// ordering suffices throughout.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) messages_received: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) completed_streams: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) invalid_requests: AtomicU64,
    pub(crate) server_errors: AtomicU64,
    pub(crate) late_rejected: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_dropped: AtomicU64,
    pub(crate) streams_truncated: AtomicU64,
    pub(crate) leaked_bytes: AtomicU64,
    pub(crate) input_tokens: AtomicU64,
    pub(crate) output_tokens: AtomicU64,
    pub(crate) cache_read_tokens: AtomicU64,
    pub(crate) cache_creation_tokens: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    by_status: Mutex<StatusCounts>,
}

#[derive(Debug, Default)]
struct StatusCounts {
    responses: BTreeMap<u16, u64>,
    rejected: BTreeMap<u16, u64>,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Reads a counter.
pub(crate) fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Counters {
    /// Counts the end of one messages request answered with `status`.
    pub(crate) fn record(&self, ending: Ending, status: u16) {
        let counter = match ending {
            Ending::Completed { stream } => {
                if stream {
                    bump(&self.completed_streams);
                }
                Some(&self.completed)
            }
            Ending::Rejected => None,
            Ending::RateLimited => Some(&self.rate_limited),
            Ending::Invalid => Some(&self.invalid_requests),
            Ending::ServerError => Some(&self.server_errors),
            Ending::LateRejected => Some(&self.late_rejected),
            Ending::Truncated => Some(&self.streams_truncated),
        };
        if let Some(c) = counter {
            bump(c);
        }
        let mut by = self.by_status.lock().unwrap_or_else(|e| e.into_inner());
        *by.responses.entry(status).or_default() += 1;
        if matches!(ending, Ending::Rejected | Ending::RateLimited) {
            *by.rejected.entry(status).or_default() += 1;
        }
    }

    /// Copies the counters into a snapshot (gauges are filled in by the caller).
    pub(crate) fn snapshot(&self) -> Stats {
        let by = self.by_status.lock().unwrap_or_else(|e| e.into_inner());
        Stats {
            messages_received: read(&self.messages_received),
            completed: read(&self.completed),
            completed_streams: read(&self.completed_streams),
            responses_by_status: by.responses.clone(),
            rejected_by_status: by.rejected.clone(),
            rate_limited: read(&self.rate_limited),
            invalid_requests: read(&self.invalid_requests),
            server_errors: read(&self.server_errors),
            late_rejected: read(&self.late_rejected),
            cancelled: read(&self.cancelled),
            connections_accepted: read(&self.connections_accepted),
            connections_dropped: read(&self.connections_dropped),
            streams_truncated: read(&self.streams_truncated),
            leaked_bytes: read(&self.leaked_bytes),
            input_tokens: read(&self.input_tokens),
            output_tokens: read(&self.output_tokens),
            cache_read_tokens: read(&self.cache_read_tokens),
            cache_creation_tokens: read(&self.cache_creation_tokens),
            in_flight: read(&self.in_flight),
            ..Stats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endings_are_counted_by_kind_and_status() {
        let c = Counters::default();
        c.record(Ending::Completed { stream: true }, 200);
        c.record(Ending::Rejected, 429);
        c.record(Ending::RateLimited, 429);
        c.record(Ending::Invalid, 400);
        let s = c.snapshot();
        assert_eq!(
            (s.completed, s.completed_streams, s.rate_limited),
            (1, 1, 1)
        );
        assert_eq!(s.rejected_by_status.get(&429), Some(&2));
        assert_eq!(s.responses_by_status.get(&400), Some(&1));
        let json = serde_json::to_string(&s).unwrap();
        let back: Stats = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
