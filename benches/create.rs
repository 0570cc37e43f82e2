//! Placeholder until the create benchmark lands.
fn main() {}
