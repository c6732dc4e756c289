//! The `floe` binary (work in progress).
fn main() {}
