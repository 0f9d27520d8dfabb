//! Presentation helpers of `stat` and `dump`, and the store-directory check of every
//! inspection command; the reading itself is `mqstore::inspect`.

use std::fs;
use std::path::Path;

use mqstore::layout::{COMMIT_LOG_DIR, CONSUME_QUEUE_DIR, META_FILE};

use crate::Failure;

/// Checks that `dir` is a readable store directory: the usage error of every inspection command.
pub fn check_store_dir(dir: &Path) -> Result<(), Failure> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(Failure::usage(format!("{} is not a directory", dir.display()))),
        Err(e) => return Err(Failure::usage(format!("cannot read {}: {e}", dir.display()))),
    }
    fs::read_dir(dir).map_err(|e| Failure::usage(format!("cannot read {}: {e}", dir.display())))?;
    let markers = [COMMIT_LOG_DIR, CONSUME_QUEUE_DIR, META_FILE];
    if !markers.iter().any(|m| dir.join(m).exists()) {
        return Err(Failure::usage(format!(
            "{} does not look like a store directory (no {COMMIT_LOG_DIR}/, {CONSUME_QUEUE_DIR}/ or {META_FILE})",
            dir.display()
        )));
    }
    Ok(())
}
