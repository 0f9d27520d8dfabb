//! The mqstore command-line program (being written).
fn main() {}
