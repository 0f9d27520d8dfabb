//! What a tool needs of a store directory without opening it as a store: the read-only
//! inspection of `mqstore stat` and `mqstore dump` and the checks of `mqstore verify`, and
//! `mqstore repair`, which mends what `open` refuses. `MessageStore::open` takes the directory
//! lock, writes the abort marker and may recover (cut) files, so none of these calls it; the
//! read-only ones read the files with plain `read` calls.

pub mod dump;
pub mod files;
pub mod render;
pub mod stat;

pub use render::{format_millis, table};

pub use crate::repair::{Lost, RepairAction, RepairOptions, RepairReport, repair_store};
pub use crate::verify::{Finding, VerifyOptions, VerifyReport, verify_store, verify_store_with};
