//! Background samplers on one abstraction: a [`Periodic`] task reads a [`Source`] every
//! interval into a bounded [`Series`](series::Series), until stopped or dropped.
//!
//! | sampler | source | retention | floor |
//! |---|---|---|---|
//! | [`Probe`] (health, pool figures) | one request through the client | first `max_samples`, the rest counted | 1 ms |
//! | [`MemorySampler`] (RSS by pid) | `/proc` on the blocking pool | decimation, 4096 | 1 ms |
//! | server memory from `GET /metrics` | [`Scrape`](scrape::Scrape) + [`prometheus_rss_bytes`] | decimation, 4096 | 100 ms |
//! | the server's own counters ([`ServerScraper`](crate::ServerScraper)) | `GET /metrics`, by [`ServerMetricNames`](crate::ServerMetricNames) | decimation, 4096 | 100 ms |
//! | progress of a sustained run | the run's counters, handed to the callback | the latest only | 100 ms |
//!
//! Every sampler stops the same way: a cancellation token, cancelled by `stop` (which waits
//! for the read in flight) or by a drop guard. Every series is bounded by its [`Retention`].
//! The schedule is stated on [`Periodic`].
//!
//! A new sampler is a [`Source`] and a [`Plan`]. One whose read is an HTTP scrape of the server
//! under test is a [`Scrape`](scrape::Scrape) with a parse function, started with the scrape
//! floor of 100 ms (see [`scrape`]).
//!
//! Data flows one way: samplers produce plain data ([`MemorySample`](crate::metrics::MemorySample),
//! [`RequestResult`](crate::RequestResult)) defined in [`metrics`](crate::metrics), which
//! judges it and knows nothing of sampling.

mod memory;
mod periodic;
mod probe;
mod scrape;
mod series;
mod server_memory;

pub(crate) use memory::process_running;
pub use memory::{MemorySampler, process_rss_bytes};
pub(crate) use periodic::{First, Periodic, Plan, Source, Tick};
pub use probe::{Probe, Probed, pool_utilization};
pub use scrape::prometheus_rss_bytes;
pub(crate) use series::Retention;
pub(crate) use server_memory::ServerMemory;
