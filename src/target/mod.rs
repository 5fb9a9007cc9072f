//! The server under test: how to reach it ([`TargetSettings`]: URL, model, auth, headers,
//! timeouts, thresholds, from the environment and an optional TOML file), what it offers and how
//! to read it ([`Profile`]), and the two together as a [`Target`] that suite scenarios run
//! against. After a test, [`Target::delete_agents`] deletes the test's agents when the profile
//! says how ([`Agents`]), with a [`Cleanup`] summary.

mod cleanup;
mod handle;
mod profile;
mod settings;

pub use cleanup::{AGENT_ID, Agents, Cleanup, CleanupLimits, Deletion};
pub use handle::Target;
pub use profile::{Profile, Reading, Rejection, Reset, UsageConvention};
pub use settings::{Auth, TargetSettings, Thresholds};
