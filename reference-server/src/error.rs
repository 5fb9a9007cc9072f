//! The reference server's own errors: what stops it from starting.

/// What stopped the reference server from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is out of range or unparsable.
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig {
        /// The setting (flag, field or environment variable).
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// Binding the listening socket failed.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// `Result` with the reference server's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
