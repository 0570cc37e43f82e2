//! Placeholder until the wire benchmark lands.
fn main() {}
