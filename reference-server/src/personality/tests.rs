//! Each modelled behaviour of each personality, answered in-process.
