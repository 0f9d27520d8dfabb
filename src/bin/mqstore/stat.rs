//! `mqstore stat DIR [--json]`: summarize a store directory without opening it. The reading is
//! `mqstore::inspect::stat`; this prints it.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::Args;

use crate::files;
use crate::{Failure, Outcome};

/// Arguments of `mqstore stat`.
#[derive(Debug, Args)]
pub struct StatArgs {
    /// The store directory (written by mqstore or by Apache RocketMQ). It is only read.
    pub dir: PathBuf,
    /// One JSON object on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// Runs `stat`: exit 0, or 1 when a part of the store could not be read or is inconsistent
/// (each such failure also on stderr).
pub fn run(args: StatArgs) -> Result<Outcome, Failure> {
    files::check_store_dir(&args.dir)?;
    let stat = mqstore::inspect::stat::stat_store(&args.dir);
    let mut out = io::stdout().lock();
    if args.json {
        writeln!(out, "{}", stat.to_json())?;
    } else {
        write!(out, "{stat}")?;
    }
    out.flush()?;
    drop(out);
    for f in &stat.failures {
        eprintln!("mqstore: {f}");
    }
    Ok(if stat.failures.is_empty() {
        Outcome::Success
    } else {
        Outcome::FoundFailures
    })
}
