//! The reference server: a faithful, fault-injectable model of the semantic caching server.
