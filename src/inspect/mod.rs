//! Read-only inspection of a store directory, for tools (`mqstore stat`, `mqstore dump`):
//! `MessageStore::open` takes the directory lock, writes the abort marker and may recover (cut)
//! files, so these never call it; they read the files with plain `read` calls.

pub mod dump;
pub mod files;
pub mod render;
pub mod stat;

pub use render::{format_millis, table};
