//! The reference-server binary, started as a user would start it.
