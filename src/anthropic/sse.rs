//! Server-sent events of a streamed Messages reply: an incremental parser for the harness and an
//! encoder for the reference server.
