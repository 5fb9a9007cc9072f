//! The reference server as a program.

fn main() {}
