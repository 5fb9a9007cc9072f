//! Numbers only: records in, figures out.

mod record;

pub use record::{Outcome, RequestResult};
