//! The harness's own errors: set-up and infrastructure only.
//!
//! A request that fails is data, not an error: it becomes a [`RequestResult`](crate::RequestResult)
//! with an [`Outcome`](crate::Outcome) class. Only what stops the harness from running at all
//! comes back as [`Error`].

use std::path::PathBuf;

/// What stopped the harness (or the reference server) from running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is out of range or unparsable.
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig {
        /// The setting (field or environment variable).
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// The base URL cannot be used.
    #[error("invalid base url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// Binding a listening socket failed.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The server answered a control request (health, stats, admin) unexpectedly.
    #[error("{what}: {reason}")]
    Server {
        /// The request (e.g. `GET /health`).
        what: String,
        /// What came back instead.
        reason: String,
    },
    /// A thread of the harness's own (or its runtime) could not be started.
    #[error("cannot start the run's threads: {reason}")]
    Runtime {
        /// What could not be started, and the operating system's error.
        reason: String,
    },
    /// Process memory could not be sampled.
    #[error("cannot sample memory of pid {pid}: {reason}")]
    Memory {
        /// The process.
        pid: u32,
        /// Why.
        reason: String,
    },
}

/// `Result` with the harness's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
