//! Where a run's workers run: on the runtime that awaits the run, or on threads of the
//! harness's own, one single-threaded runtime each ([`Runtime`]).
//!
//! On a work-stealing runtime a worker's task, its connection's task and the task that
//! records may each run on a different core: every response then wakes a task across cores,
//! and every record touches counters the other cores touch too. With
//! [`Runtime::PerThread`] the run takes the shape wrk has (`wrk -t N`: one event loop per
//! thread, each with its own connections and its own statistics, merged when the run ends):
//!
//! - the workers are partitioned, worker `i` on thread `i mod n`, and never move;
//! - each thread runs a `current_thread` tokio runtime: a worker, its connection and its
//!   timers wake each other on the same thread, with no atomics shared with another core;
//! - each thread has its own scheduler (slot indices `shard, shard + n, …`, so a
//!   count-bounded run still sends exactly its count and an open-loop one keeps the whole
//!   schedule's due times, each thread taking every `n`-th arrival), its own counts, its own
//!   sink and its own copy of the per-request headers;
//! - the sinks are merged once, after every thread has finished: every request is recorded
//!   exactly once, and a merged histogram holds exactly the values of its parts.
//!
//! In an open loop a due slot waits for a free worker of its own thread (as in wrk2, where each
//! thread paces its own share of the rate), not for any free worker of the run.

use std::future::Future;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use super::agent::{Agent, RunShared, Sink, Tally};
use super::engine::{GeneratorStats, Part, PartRun, Scheduler, Slot, run_part};
use super::load::Load;
use super::{StressHarness, run_tag};
use crate::Client;

/// Where a run's workers run (set with [`StressConfig::runtime`](crate::StressConfig::runtime)).
///
/// Honoured by [`run`](crate::StressHarness::run), [`run_agents`](crate::StressHarness::run_agents),
/// [`run_streaming`](crate::StressHarness::run_streaming) and the operations built on `run`
/// (`run_concurrent_requests`, `run_bursty`, `run_ramp_up`); `run_sustained` and
/// `run_agent_workloads` always run on the caller's runtime.
///
/// ```
/// use semantic_stress::{Runtime, StressConfig};
///
/// let config = StressConfig::new("http://127.0.0.1:8000")
///     .workers(500)
///     .runtime(Runtime::per_core());
/// assert!(matches!(config.runtime, Runtime::PerThread(n) if n >= 1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Runtime {
    /// The tokio runtime that awaits the run (the default): with a multi-thread runtime,
    /// workers may move between its threads.
    #[default]
    Caller,
    /// `n` threads of the run's own, each with a single-threaded tokio runtime and its share
    /// of the workers (worker `i` on thread `i mod n`; at most one thread per worker), each
    /// recording into its own aggregates, merged when the run ends. The caller's runtime only
    /// waits.
    PerThread(usize),
}

impl Runtime {
    /// One thread per core available to the process (its CPU affinity counts).
    pub fn per_core() -> Self {
        Self::PerThread(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// Threads of a run of `workers` workers; `None` on the caller's runtime.
    fn threads(self, workers: usize) -> Option<usize> {
        match self {
            Self::Caller => None,
            Self::PerThread(n) => Some(n.clamp(1, workers.max(1))),
        }
    }
}

/// What a driven run leaves: the generator's figures, the requests sent, and each thread's
/// sink (one on the caller's runtime).
pub(crate) struct Driven<S> {
    pub(crate) generator: GeneratorStats,
    pub(crate) sent: u64,
    pub(crate) sinks: Vec<Arc<S>>,
}

/// One thread's share of a run, ready to start.
struct Shard<F> {
    part: Part,
    load: Load,
    agents: Vec<Agent>,
    step: Arc<F>,
}

impl StressHarness {
    /// Runs `step` on one agent per worker of `load` until it stops, where
    /// [`StressConfig::runtime`](crate::StressConfig::runtime) says; `sink(cells)` makes a
    /// sink for `cells` recording threads (one per thread of the run's own, or one per core
    /// on the caller's runtime). Requests still in flight at `deadline + grace` are cancelled
    /// and recorded.
    ///
    /// # Errors
    ///
    /// [`Error::Runtime`](crate::Error::Runtime) when a thread or its runtime cannot be
    /// started; no request has been sent then.
    pub(super) async fn drive<S, F, Fut>(
        &self,
        load: Load,
        sessions: bool,
        deadline: Instant,
        sink: impl Fn(usize) -> S,
        step: F,
    ) -> crate::Result<Driven<S>>
    where
        S: Sink + 'static,
        F: Fn(Agent, Slot) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Agent> + Send + 'static,
    {
        let hard_deadline = deadline + self.config.grace;
        let tag = run_tag(self.config.seed);
        let step = Arc::new(step);
        let Some(n) = self.config.runtime.threads(load.workers) else {
            let cells = std::thread::available_parallelism().map_or(1, usize::from);
            let sink = Arc::new(sink(cells));
            let run = self.run_shared(self.client.clone(), deadline, sink.clone());
            let agents = agents_of((0..load.workers).collect(), sessions, &tag, &run);
            let start = Instant::now();
            let scheduler = Scheduler::new(load, start, Part::WHOLE, cells);
            let part = run_part(scheduler, agents, hard_deadline, step).await;
            return Ok(Driven {
                generator: PartRun::finish(vec![part], start),
                sent: run.tally.sent(),
                sinks: vec![sink],
            });
        };
        let mut shards = Vec::with_capacity(n);
        let mut keep = Vec::with_capacity(n);
        for shard in 0..n {
            let sink = Arc::new(sink(1));
            let run = self.run_shared(self.client.for_thread(), deadline, sink.clone());
            let workers = (shard..load.workers).step_by(n).collect();
            shards.push(Shard {
                part: Part {
                    shard: shard as u64,
                    of: n as u64,
                },
                load: load.clone(),
                agents: agents_of(workers, sessions, &tag, &run),
                step: Arc::clone(&step),
            });
            keep.push((run, sink));
        }
        let mut started = Vec::with_capacity(n);
        for shard in shards {
            // Dropping the senders on an error stops the threads already started before
            // they send anything.
            started.push(spawn(shard, hard_deadline)?);
        }
        // One start for every thread: open-loop due times are offsets from it.
        let start = Instant::now();
        let mut parts = Vec::with_capacity(n);
        for (go, _) in &started {
            // A thread that is gone already cannot have sent anything; it is counted below.
            let _ = go.send(start);
        }
        for (shard, (_, done)) in started.into_iter().enumerate() {
            let workers = (shard..load.workers).step_by(n).count();
            // A thread that panicked loses its figures, not its records.
            parts.push(done.await.unwrap_or_else(|_| PartRun::lost(workers)));
        }
        let sent = keep.iter().map(|(run, _)| run.tally.sent()).sum();
        Ok(Driven {
            generator: PartRun::finish(parts, start),
            sent,
            sinks: keep.into_iter().map(|(_, sink)| sink).collect(),
        })
    }

    /// What the agents of one runtime share.
    pub(super) fn run_shared(
        &self,
        client: Client,
        deadline: Instant,
        sink: Arc<dyn Sink>,
    ) -> Arc<RunShared> {
        Arc::new(RunShared {
            client,
            sink,
            tally: Arc::new(Tally::default()),
            model: self.config.model.clone(),
            stream: self.config.stream,
            deadline,
        })
    }
}

/// The agents of `workers` (their indices in the run), sharing `run`.
pub(super) fn agents_of(
    workers: Vec<usize>,
    sessions: bool,
    tag: &str,
    run: &Arc<RunShared>,
) -> Vec<Agent> {
    workers
        .into_iter()
        .map(|i| {
            let id = if sessions {
                format!("agent-{tag}-{i}")
            } else {
                format!("worker-{i}")
            };
            Agent::new(i, id, sessions, Arc::clone(run))
        })
        .collect()
}

/// Starts `shard`'s thread and runtime; the thread waits for the run's start on the returned
/// sender (and exits without sending anything if the sender is dropped first), then reports
/// its part on the returned receiver.
fn spawn<F, Fut>(
    shard: Shard<F>,
    hard_deadline: Instant,
) -> crate::Result<(
    mpsc::Sender<Instant>,
    tokio::sync::oneshot::Receiver<PartRun>,
)>
where
    F: Fn(Agent, Slot) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Agent> + Send + 'static,
{
    let Shard {
        part,
        load,
        agents,
        step,
    } = shard;
    let failed = |what: &str, e: std::io::Error| crate::Error::Runtime {
        reason: format!("{what} {}: {e}", part.shard),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed("runtime of thread", e))?;
    let (go, wait) = mpsc::channel::<Instant>();
    let (report, done) = tokio::sync::oneshot::channel();
    let name = format!("stress-{}", part.shard);
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let Ok(start) = wait.recv() else {
                return;
            };
            let outcome = runtime.block_on(async move {
                let scheduler = Scheduler::new(load, start, part, 1);
                run_part(scheduler, agents, hard_deadline, step).await
            });
            // The caller stops waiting only when the whole run is dropped.
            let _ = report.send(outcome);
        })
        .map_err(|e| failed("thread", e))?;
    Ok((go, done))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Mutex;
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    use super::*;
    use crate::{Arrivals, Request, Stop, StressConfig};

    /// A loopback server answering every request at once, on a thread of its own.
    fn server() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        let service = service_fn(|_req| async {
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(
                                Bytes::from_static(b"ok"),
                            )))
                        });
                        let io = TokioIo::new(stream);
                        let _ = http1::Builder::new().serve_connection(io, service).await;
                    });
                }
            });
        });
        format!("http://{addr}")
    }

    fn harness(url: String, threads: usize) -> StressHarness {
        let config = StressConfig::new(url)
            .timeout(Duration::from_secs(10))
            .runtime(Runtime::PerThread(threads));
        StressHarness::new(config).unwrap()
    }

    /// Runs `load` on `threads` threads; returns the records and the slot indices handed out.
    async fn indices_of(load: Load, threads: usize) -> (crate::RunResults, Vec<u64>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let run = harness(server(), threads)
            .run(load, move |slot| {
                log.lock().unwrap().push(slot.index);
                Request::get("/")
            })
            .await
            .unwrap();
        let mut seen = seen.lock().unwrap().clone();
        seen.sort_unstable();
        (run, seen)
    }

    #[tokio::test]
    async fn a_count_bounded_run_on_threads_sends_its_count_once_each() {
        let (run, seen) = indices_of(Load::closed(7, Stop::requests(1001)), 3).await;
        assert_eq!(seen, (0..1001).collect::<Vec<_>>());
        assert_eq!((run.sent, run.results.len()), (1001, 1001));
        assert_eq!(run.generator.slots, 1001);
        assert!(run.results.iter().all(|r| r.status == 200));
        assert!(
            run.results
                .windows(2)
                .all(|w| w[0].finished_at <= w[1].finished_at),
            "records in completion order"
        );
    }

    #[tokio::test]
    async fn an_open_loop_on_threads_keeps_the_whole_schedule() {
        let arrivals = Arrivals::Constant { per_second: 2000.0 };
        let (run, seen) = indices_of(Load::open(4, arrivals, Stop::requests(300)), 2).await;
        assert_eq!(seen, (0..300).collect::<Vec<_>>());
        assert_eq!((run.sent, run.results.len()), (300, 300));
        // Every record is timed from its slot of the one schedule: 0.5 ms apart.
        let mut due: Vec<_> = run.results.iter().map(|r| r.scheduled_at).collect();
        due.sort_unstable();
        let gaps: Vec<_> = due.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.iter().all(|g| g.as_micros().abs_diff(500) <= 1),
            "{gaps:?}"
        );
    }

    #[tokio::test]
    async fn a_streamed_run_on_threads_records_every_request() {
        let run = harness(server(), 2)
            .run_streaming(
                Load::closed(5, Stop::after(Duration::from_millis(300))),
                |_| Request::get("/"),
            )
            .await
            .unwrap();
        assert!(run.sent > 0);
        assert_eq!(run.load.total, run.sent);
        assert_eq!(run.load.errors, 0);
        assert_eq!(run.generator.slots, run.sent);
    }

    #[test]
    fn no_thread_is_asked_for_nothing() {
        let err = StressHarness::new(
            StressConfig::new("http://127.0.0.1:9").runtime(Runtime::PerThread(0)),
        )
        .unwrap_err();
        assert!(err.to_string().contains("runtime"), "{err}");
        assert_eq!(Runtime::PerThread(8).threads(3), Some(3));
        assert_eq!(Runtime::Caller.threads(3), None);
    }
}
