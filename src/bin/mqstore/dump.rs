//! `mqstore dump DIR`: prints records, read from the files without opening the store.
//!
//! - `--commit-log-offset X`: every field of the record at X, and whether its CRCs verify.
//! - `--topic T --queue Q [--offset O] [--count N]`: one line per consume-queue unit and the
//!   record it points to.
//! - `--topic T --key K [--count N]`: the records the index files hold for the key, newest
//!   first, confirmed on each record's keys.
//! - `--consumer-offsets`: the committed offsets of `config/consumerOffset.json`.
//!
//! `--json` prints the same as one JSON object. The reading is `mqstore::inspect::dump`.

use std::fmt::Display;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use clap::{ArgGroup, Args};
use mqstore::inspect::dump::{self, DumpError};
use serde::Serialize;

use crate::files;
use crate::{Failure, Outcome};

/// Arguments of `mqstore dump`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("selector").required(true).args(["topic", "commit_log_offset", "consumer_offsets"])))]
pub struct DumpArgs {
    /// The store directory. It is only read.
    pub dir: PathBuf,
    /// Topic of the queue to dump (with --queue), or of the key to look up (with --key).
    #[arg(long, conflicts_with = "commit_log_offset")]
    pub topic: Option<String>,
    /// Queue id of the queue to dump (with --topic).
    #[arg(long, requires = "topic", conflicts_with = "key")]
    pub queue: Option<u32>,
    /// Look a key (or unique key) up in the index files (with --topic).
    #[arg(long, requires = "topic")]
    pub key: Option<String>,
    /// Print the committed consumer offsets.
    #[arg(long)]
    pub consumer_offsets: bool,
    /// First queue offset to dump [default: 0].
    #[arg(long, requires = "topic")]
    pub offset: Option<u64>,
    /// How many messages to dump [default: 10].
    #[arg(long, requires = "topic", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Dump every field of the record that starts at this commit-log offset.
    #[arg(long, value_name = "X")]
    pub commit_log_offset: Option<u64>,
    /// One JSON object on stdout instead of the text form.
    #[arg(long)]
    pub json: bool,
}

/// Runs `dump`: exit 0, or 1 when what it shows is damaged (a record whose CRCs fail, no
/// record where one is asked for, a unit that points at the wrong record).
pub fn run(args: DumpArgs) -> Result<Outcome, Failure> {
    files::check_store_dir(&args.dir)?;
    let dir = args.dir.as_path();
    let count = args.count.unwrap_or(10);
    match (args.commit_log_offset, args.topic, args.queue, args.key) {
        _ if args.consumer_offsets => print(dump::consumer_offsets(dir), true, args.json),
        (Some(offset), ..) => {
            let record = dump::record_at(dir, offset);
            let sound = record.as_ref().is_ok_and(dump::RecordDump::is_sound);
            print(record, sound, args.json)
        }
        (None, Some(topic), _, Some(key)) => {
            let found = dump::by_key(dir, &topic, &key, count);
            let sound = found.as_ref().is_ok_and(dump::KeyDump::is_sound);
            print(found, sound, args.json)
        }
        (None, Some(topic), Some(queue), None) => {
            let units = dump::queue(dir, &topic, queue, args.offset.unwrap_or(0), count);
            let sound = units.as_ref().is_ok_and(dump::QueueDump::is_sound);
            print(units, sound, args.json)
        }
        _ => Err(Failure::usage(
            "give --topic and --queue, --topic and --key, --commit-log-offset, or --consumer-offsets",
        )),
    }
}

/// Prints a dump as text or JSON; `sound` says whether it showed damage.
fn print<T: Display + Serialize>(dump: Result<T, DumpError>, sound: bool, json: bool) -> Result<Outcome, Failure> {
    let dump = dump.map_err(|e| Failure::failed(e.to_string()))?;
    let mut out = BufWriter::new(io::stdout().lock());
    if json {
        let text = serde_json::to_string(&dump).map_err(|e| Failure::failed(e.to_string()))?;
        writeln!(out, "{text}")?;
    } else {
        write!(out, "{dump}")?;
    }
    out.flush()?;
    Ok(if sound {
        Outcome::Success
    } else {
        Outcome::FoundFailures
    })
}
