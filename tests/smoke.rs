//! Ungated, seconds: the whole pipeline end to end against the embedded reference server.
