//! `mqstore verify DIR [--json]`: check a closed store, read-only.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::{Failure, Outcome};

/// Arguments of `mqstore verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The store directory (written by mqstore or by Apache RocketMQ). It is only read.
    pub dir: PathBuf,
    /// One JSON object on stdout instead of the report.
    #[arg(long)]
    pub json: bool,
}

/// Runs the checker: exit 0 consistent, 1 damage found (each finding printed), 2 when the
/// directory cannot be checked (missing, not a store, in use by a running store).
pub fn run(args: VerifyArgs) -> Result<Outcome, Failure> {
    let report = mqstore::verify::verify_store(&args.dir)
        .map_err(|e| Failure::usage(format!("cannot verify {}: {e}", args.dir.display())))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", report.to_json())?;
    } else {
        write!(out, "{report}")?;
    }
    Ok(if report.consistent {
        Outcome::Success
    } else {
        Outcome::FoundFailures
    })
}
