//! `mqstore`: the command-line program of the store.
//!
//! ```text
//! mqstore bench [--dir DIR] [--flush sync|async|buffered|all] [--producers N] [--messages N] [--size BYTES]
//!               [--queues Q] [--segment-size BYTES] [--json]
//! mqstore verify DIR [--json]
//! mqstore stat DIR [--json]
//! mqstore dump DIR (--topic T --queue Q [--offset O] [--count N] | --commit-log-offset X)
//! mqstore repair DIR [--dry-run] [--segment-size BYTES]
//! mqstore config (--default [--dir DIR] | --check FILE)
//! ```
//!
//! - `bench` measures append throughput and latency and sequential read throughput for each flush
//!   policy, side by side, on the disk that holds the benchmark directory.
//! - `verify` checks every record, consume-queue unit and the checkpoint of a closed store: exit
//!   0 consistent, 1 damage found (each one reported with file, offset and what), 2 usage error.
//! - `stat` and `dump` look inside a store directory (written by mqstore or by Apache RocketMQ)
//!   without modifying it: they read the files directly and never open the store.
//! - `repair` makes a store that `open` refuses (a stray file among the segments, a segment cut
//!   short, a hole) openable again: it moves files aside into `lost+found/`, pads or cuts
//!   segments, rebuilds the derived files, and prints what it did and what was lost.
//! - `config --default` writes the full default configuration file (every key, its default and
//!   a comment); `config --check FILE` reads one as `StoreConfig::from_toml_file` does and
//!   prints every setting it makes, or the error naming the key and the line.
//!
//! `-v` (before or after the command) shows the store's events on stderr, `-vv` and `-vvv` more;
//! `RUST_LOG` overrides it.
//!
//! Exit codes: 0 success; 1 the command ran and found a failure (a put that failed, a record
//! that does not decode or verify, a file that cannot be read); 2 usage error (bad flags, a
//! directory that is missing or unreadable).

#[path = "mqstore/bench.rs"]
mod bench;
#[path = "mqstore/config.rs"]
mod config;
#[path = "mqstore/dump.rs"]
mod dump;
#[path = "mqstore/files.rs"]
mod files;
#[path = "mqstore/repair.rs"]
mod repair;
#[path = "mqstore/stat.rs"]
mod stat;
#[path = "mqstore/verify.rs"]
mod verify;

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The persistence core of a message broker: benchmark and inspect stores.
#[derive(Debug, Parser)]
#[command(name = "mqstore", version, about, long_about = None)]
struct Cli {
    /// Show the store's events on stderr: -v its warnings and what it did (recovery, retention
    /// passes, segments), -vv debug, -vvv everything. RUST_LOG, when set, decides instead
    /// (e.g. RUST_LOG=mqstore=warn).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure append and read throughput and put latency for each flush policy.
    Bench(bench::BenchArgs),
    /// Check a closed store without changing it: exit 0 consistent, 1 damage found, 2 usage error.
    Verify(verify::VerifyArgs),
    /// Summarize a store directory: segments, queues, offsets, checkpoint, shutdown state.
    Stat(stat::StatArgs),
    /// Print records: a queue's messages, or the record at a commit-log offset.
    Dump(dump::DumpArgs),
    /// Make a store that open refuses openable again: files aside into lost+found/, segments
    /// padded or cut, derived files rebuilt; prints what was done and what was lost.
    Repair(repair::RepairArgs),
    /// Write the full default configuration file, or check one and print what it sets.
    Config(config::ConfigArgs),
}

/// Why a command failed, and with which exit code.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// A usage error (exit code 2): bad arguments, a missing or unreadable directory.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }

    /// A failure of the command itself (exit code 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
}

impl From<std::io::Error> for Failure {
    /// An error writing the output: a closed pipe (`mqstore dump ... | head`) ends the command
    /// quietly with success; anything else is a failure.
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Failure {
                code: 0,
                message: String::new(),
            }
        } else {
            Failure::failed(format!("cannot write the output: {e}"))
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a command that ran to its end reports: success, or that it found a failure (exit 1)
/// which it has already described.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything went well.
    Success,
    /// The command completed but found failures (already reported on stderr or stdout).
    FoundFailures,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Quiet unless asked, by -v or RUST_LOG: the store's events on stderr.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().ok().or_else(|| {
        let level = match cli.verbose {
            0 => return None,
            1 => "info",
            2 => "debug",
            _ => "trace",
        };
        Some(tracing_subscriber::EnvFilter::new(format!("mqstore={level}")))
    });
    if let Some(filter) = filter {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let result = match cli.command {
        Command::Bench(args) => bench::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Stat(args) => stat::run(args),
        Command::Dump(args) => dump::run(args),
        Command::Repair(args) => repair::run(args),
        Command::Config(args) => config::run(args),
    };
    // Output may go to a closed pipe (`| head`): do not panic over it.
    let _ = std::io::stdout().flush();
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::FoundFailures) => ExitCode::from(1),
        Err(failure) => {
            if !failure.message.is_empty() {
                eprintln!("mqstore: {failure}");
            }
            ExitCode::from(failure.code)
        }
    }
}
