//! `mqstore repair DIR [--dry-run]`: make a store that `open` refuses openable again.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use mqstore::Error;
use mqstore::repair::{RepairOptions, repair_store};

use crate::{Failure, Outcome};

/// Arguments of `mqstore repair`.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// The store directory. No store may have it open.
    pub dir: PathBuf,
    /// Say what would be done and what would be lost, without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// The commit log's segment size, for a store written by RocketMQ (no mqstore.meta) whose
    /// files do not tell (a single segment file, cut short). Default: what mqstore.meta
    /// records, else the length most segment files have.
    #[arg(long, value_name = "BYTES")]
    pub segment_size: Option<u64>,
}

/// Runs the repair and prints what it did: exit 0 when the store opens afterwards (or a dry
/// run), 1 when it still does not, 2 when it cannot be repaired here (missing, in use).
pub fn run(args: RepairArgs) -> Result<Outcome, Failure> {
    let options = RepairOptions {
        dry_run: args.dry_run,
        commit_log_segment_size: args.segment_size,
    };
    let report = repair_store(&args.dir, &options).map_err(|e| {
        let message = format!("cannot repair {}: {e}", args.dir.display());
        match e {
            Error::Locked { .. } | Error::Io { .. } => Failure::usage(message),
            _ => Failure::failed(message),
        }
    })?;
    let mut out = std::io::stdout().lock();
    write!(out, "{report}")?;
    Ok(Outcome::Success)
}
