//! `mqstore dump DIR`: prints records, read from the files without opening the store.
//!
//! - `--commit-log-offset X`: every field of the record at X, and whether its CRCs verify.
//! - `--topic T --queue Q [--offset O] [--count N]`: one line per consume-queue unit and the
//!   record it points to.
//! - `--topic T --key K [--count N]`: the records the index files hold for the key, newest
//!   first, confirmed on each record's keys.
//! - `--consumer-offsets`: the committed offsets of `config/consumerOffset.json`.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use clap::{ArgGroup, Args};
use mqstore::codec::{self, DecodeError, Frame, MAGIC_V1, MAGIC_V2, RecordView, Verify};
use mqstore::consume_queue::CqUnit;

use crate::files::{self, CrcCheck, QueueFiles, SegmentDir, body_preview, body_text, format_millis, hex_dump};
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
}

/// Longest body preview in the one-line-per-message form, in characters.
const LINE_PREVIEW: usize = 48;
/// Longest text body printed by the full form, in characters.
const FULL_TEXT: usize = 16 << 10;
/// Bytes of a binary body shown in hex by the full form.
const FULL_HEX: usize = 64;

/// Runs `dump`.
pub fn run(args: DumpArgs) -> Result<Outcome, Failure> {
    files::check_store_dir(&args.dir)?;
    let log = SegmentDir::list(&files::commit_log_dir(&args.dir))
        .map_err(|e| Failure::failed(format!("cannot list the commit log of {}: {e}", args.dir.display())))?;
    let mut out = BufWriter::new(io::stdout().lock());
    if args.consumer_offsets {
        let outcome = dump_consumer_offsets(&mut out, &args.dir)?;
        out.flush()?;
        return Ok(outcome);
    }
    if let (Some(topic), Some(key)) = (&args.topic, &args.key) {
        let outcome = dump_key(&mut out, &args.dir, &log, topic, key, args.count.unwrap_or(10))?;
        out.flush()?;
        return Ok(outcome);
    }
    let outcome = match (args.commit_log_offset, args.topic, args.queue) {
        (Some(offset), _, _) => dump_record(&mut out, &log, offset)?,
        (None, Some(topic), Some(queue)) => {
            let queue_files = QueueFiles::open(&args.dir, &topic, queue)
                .map_err(|e| Failure::failed(format!("cannot read the consume queue {topic}/{queue}: {e}")))?
                .ok_or_else(|| {
                    Failure::failed(format!(
                        "no consume queue {topic}/{queue} in {}{}",
                        args.dir.display(),
                        known_queues(&args.dir, &topic)
                    ))
                })?;
            dump_queue(
                &mut out,
                &log,
                &queue_files,
                args.offset.unwrap_or(0),
                args.count.unwrap_or(10),
            )?
        }
        _ => {
            return Err(Failure::usage(
                "give --topic and --queue, --topic and --key, --commit-log-offset, or --consumer-offsets",
            ));
        }
    };
    out.flush()?;
    Ok(outcome)
}

/// A hint listing the queues a store does have for `topic` (or its topics).
fn known_queues(dir: &std::path::Path, topic: &str) -> String {
    let Ok(all) = QueueFiles::list_all(dir) else {
        return String::new();
    };
    let of_topic: Vec<String> = all
        .iter()
        .filter(|q| q.topic == topic)
        .map(|q| q.queue_id.to_string())
        .collect();
    if !of_topic.is_empty() {
        return format!(" (topic {topic} has queues {})", of_topic.join(", "));
    }
    let mut topics: Vec<&str> = all.iter().map(|q| q.topic.as_str()).collect();
    topics.dedup();
    if topics.is_empty() {
        " (the store has no consume queues)".to_string()
    } else {
        format!(" (topics: {})", topics.join(", "))
    }
}

/// Escapes control characters, keeping everything else as is.
fn escape_controls(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_debug().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Prints the full form of the frame at `offset`.
fn dump_record(out: &mut impl Write, log: &SegmentDir, offset: u64) -> Result<Outcome, Failure> {
    let bytes = files::read_frame_bytes(log, offset).map_err(Failure::failed)?;
    let seg = log.find(offset).expect("read_frame_bytes found the segment");
    let seg_name = seg
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    writeln!(
        out,
        "commit-log offset {offset} (segment {seg_name}, position {})",
        offset - seg.start
    )?;
    let view = match codec::decode(&bytes, Verify::Framing) {
        Ok(Frame::Record(view)) => view,
        Ok(Frame::Blank { len }) => {
            writeln!(
                out,
                "  end-of-segment filler: the last {len} bytes of the segment hold no record; the log continues at {}",
                seg.end()
            )?;
            return Ok(Outcome::Success);
        }
        Err(e) => {
            let why = if !bytes.is_empty() && bytes.iter().take(8).all(|&b| b == 0) {
                "zero bytes: past the end of the log, or not the start of a record".to_string()
            } else {
                describe(&e)
            };
            writeln!(out, "  no valid record here: {why}")?;
            writeln!(out, "  first bytes:")?;
            write!(out, "{}", hex_dump(&bytes[..bytes.len().min(64)], "    "))?;
            return Ok(Outcome::FoundFailures);
        }
    };
    let crc = CrcCheck::of(&bytes, &view);
    print_fields(out, &view, offset, &crc)?;
    Ok(if crc.ok() {
        Outcome::Success
    } else {
        Outcome::FoundFailures
    })
}

fn describe(e: &DecodeError) -> String {
    match e {
        DecodeError::BadMagic { .. } => format!("{e} (not the start of a record?)"),
        _ => e.to_string(),
    }
}

fn print_fields(out: &mut impl Write, v: &RecordView<'_>, offset: u64, crc: &CrcCheck) -> io::Result<()> {
    let field = |out: &mut dyn Write, name: &str, value: &dyn std::fmt::Display| writeln!(out, "  {name:<29}{value}");
    let magic = match v.magic {
        MAGIC_V1 => "V1",
        MAGIC_V2 => "V2",
        _ => "?",
    };
    let ok = |b: bool| if b { "ok" } else { "MISMATCH" };
    field(out, "total size", &v.total_size)?;
    field(out, "magic", &format!("{:#010x} ({magic})", v.magic))?;
    field(out, "body CRC", &format!("{:#010x} ({})", v.body_crc, ok(crc.body_ok)))?;
    field(out, "queue id", &v.queue_id)?;
    field(out, "flag", &v.flag)?;
    field(out, "queue offset", &v.queue_offset)?;
    let phys_note = if v.physical_offset == offset {
        ""
    } else {
        " (DIFFERS from its position)"
    };
    field(out, "physical offset", &format!("{}{phys_note}", v.physical_offset))?;
    field(out, "sys flag", &format!("{:#x}", v.sys_flag))?;
    field(
        out,
        "born timestamp",
        &format!("{} ({})", v.born_timestamp, format_millis(v.born_timestamp)),
    )?;
    field(out, "born host", &v.born_host)?;
    field(
        out,
        "store timestamp",
        &format!("{} ({})", v.store_timestamp, format_millis(v.store_timestamp)),
    )?;
    field(out, "store host", &v.store_host)?;
    field(out, "reconsume times", &v.reconsume_times)?;
    field(out, "prepared transaction offset", &v.prepared_transaction_offset)?;
    field(out, "topic", &escape_controls(v.topic))?;
    field(out, "msg id", &v.offset_msg_id())?;
    let props: Vec<(&str, &str)> = codec::properties(v.properties).collect();
    field(
        out,
        "properties",
        &format!("{} ({} bytes)", props.len(), v.properties.len()),
    )?;
    for (k, val) in props {
        writeln!(out, "    {}={}", escape_controls(k), escape_controls(val))?;
    }
    field(out, "tags code", &v.tags_code())?;
    field(out, "body length", &v.body.len())?;
    match body_text(v.body) {
        Some(text) => {
            let shown: String = text.chars().take(FULL_TEXT).collect();
            let cut = if shown.len() < text.len() {
                format!(" … ({} bytes in all)", text.len())
            } else {
                String::new()
            };
            field(out, "body (text)", &format!("\"{}\"{cut}", shown.escape_debug()))?;
        }
        None => {
            let n = v.body.len().min(FULL_HEX);
            let more = if n < v.body.len() {
                format!(", first {n} bytes")
            } else {
                String::new()
            };
            field(out, "body (binary)", &format!("hex{more}:"))?;
            write!(out, "{}", hex_dump(&v.body[..n], "    "))?;
        }
    }
    let record_crc = match crc.record_ok {
        None => "absent (body CRC only, as RocketMQ writes by default)",
        Some(true) => "ok",
        Some(false) => "MISMATCH",
    };
    field(out, "record CRC (__CRC32#)", &record_crc)?;
    field(
        out,
        "CRCs verify",
        &if crc.ok() { "yes" } else { "NO: the record is damaged" },
    )?;
    Ok(())
}

/// Prints one line per unit from `from`, and the record each points to.
fn dump_queue(
    out: &mut impl Write,
    log: &SegmentDir,
    q: &QueueFiles,
    from: u64,
    count: u64,
) -> Result<Outcome, Failure> {
    let name = format!("{}/{}", q.topic, q.queue_id);
    let summary = q
        .summary()
        .map_err(|e| Failure::failed(format!("cannot read the consume queue {name}: {e}")))?;
    let units = q
        .units(from, count)
        .map_err(|e| Failure::failed(format!("cannot read the consume queue {name}: {e}")))?;
    writeln!(
        out,
        "{name}: offsets {}..{} ({} message(s))",
        summary.min,
        summary.max,
        summary.max - summary.min
    )?;
    if units.is_empty() {
        writeln!(out, "no unit at offset {from}")?;
        return Ok(Outcome::Success);
    }
    let mut rows = vec![[
        "offset".to_string(),
        "commit-log offset".to_string(),
        "size".to_string(),
        "tags".to_string(),
        "keys".to_string(),
        "stored".to_string(),
        "body".to_string(),
    ]];
    let mut problems = 0;
    for (offset, unit) in units {
        let (row, problem) = unit_row(log, q, offset, &unit);
        problems += usize::from(problem);
        rows.push(row);
    }
    write!(
        out,
        "{}",
        mqstore::inspect::table(&rows, "", &[true, true, true, false, false, false, false])
    )?;
    Ok(if problems == 0 {
        Outcome::Success
    } else {
        Outcome::FoundFailures
    })
}

/// One line of the short form; `true` when the unit or its record is not right.
fn unit_row(log: &SegmentDir, q: &QueueFiles, offset: u64, unit: &CqUnit) -> ([String; 7], bool) {
    let head = |rest: [String; 4]| {
        let [tags, keys, stored, body] = rest;
        [
            offset.to_string(),
            unit.commit_log_offset.to_string(),
            unit.size.to_string(),
            tags,
            keys,
            stored,
            body,
        ]
    };
    if unit.is_blank() {
        return (
            head(["-".into(), "-".into(), "-".into(), "(filler unit: no message)".into()]),
            false,
        );
    }
    let bad = |why: String| (head(["-".into(), "-".into(), "-".into(), format!("!! {why}")]), true);
    let bytes = match files::read_frame_bytes(log, unit.commit_log_offset) {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    let view = match codec::decode(&bytes, Verify::Framing) {
        Ok(Frame::Record(v)) => v,
        Ok(Frame::Blank { .. }) => return bad("the unit points at an end-of-segment filler".into()),
        Err(e) => return bad(format!("no valid record there: {}", describe(&e))),
    };
    if view.topic != q.topic
        || view.queue_id != q.queue_id
        || view.queue_offset != offset
        || view.total_size != unit.size
    {
        return bad(format!(
            "the unit points at a record of {}/{} offset {} ({} bytes)",
            view.topic, view.queue_id, view.queue_offset, view.total_size
        ));
    }
    let crc = CrcCheck::of(&bytes, &view);
    let tags = view.tags().map_or("-".to_string(), escape_controls);
    let keys: Vec<&str> = view.keys().collect();
    let keys = if keys.is_empty() {
        "-".to_string()
    } else {
        escape_controls(&keys.join(" "))
    };
    let mut body = body_preview(view.body, LINE_PREVIEW);
    if !crc.ok() {
        body = format!("!! CRC MISMATCH  {body}");
    }
    (head([tags, keys, format_millis(view.store_timestamp), body]), !crc.ok())
}

/// The records the index files hold for `topic#key`, newest first, each confirmed on its keys.
fn dump_key(
    out: &mut impl Write,
    dir: &std::path::Path,
    log: &SegmentDir,
    topic: &str,
    key: &str,
    count: u64,
) -> Result<Outcome, Failure> {
    use mqstore::index::file::{Layout, chain_in};
    let index_dir = dir.join(mqstore::index::INDEX_DIR);
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(&index_dir) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
        Err(_) => {
            writeln!(out, "no index files in {}", index_dir.display())?;
            return Ok(Outcome::Success);
        }
    };
    paths.sort();
    let configured = mqstore::meta::Meta::read(dir)
        .ok()
        .flatten()
        .and_then(|m| m.index_layout)
        .unwrap_or((mqstore::index::DEFAULT_SLOTS, mqstore::index::DEFAULT_ENTRIES));
    let preferred = Layout {
        slots: configured.0,
        entries: configured.1,
    };
    let hash = mqstore::index::key_hash(topic, key);
    let mut shown = 0u64;
    let mut seen = std::collections::HashSet::new();
    for path in paths.iter().rev() {
        let Ok(map) = mqstore::segment::ReadOnlyMap::open(path) else {
            continue;
        };
        let Some(layout) = Layout::infer(map.len() as u64, preferred) else {
            continue;
        };
        for offset in chain_in(&map, layout, hash) {
            if shown >= count || !seen.insert(offset) {
                continue;
            }
            let Ok(bytes) = files::read_frame_bytes(log, offset) else {
                continue;
            };
            let matches = matches!(codec::decode(&bytes, Verify::Framing),
                Ok(Frame::Record(v)) if v.topic == topic && mqstore::index::has_key(v.properties, key));
            if matches {
                shown += 1;
                dump_record(out, log, offset)?;
            }
        }
    }
    if shown == 0 {
        writeln!(out, "no message of topic {topic} with key {key:?} in the index files")?;
    }
    Ok(Outcome::Success)
}

/// The committed consumer offsets, one line per (group, topic, queue).
fn dump_consumer_offsets(out: &mut impl Write, dir: &std::path::Path) -> Result<Outcome, Failure> {
    let table = mqstore::consumer_offset::ConsumerOffsets::load(dir).map_err(|e| Failure::failed(e.to_string()))?;
    let groups = table.groups();
    if groups.is_empty() {
        writeln!(out, "no committed consumer offsets")?;
    }
    for g in groups {
        for (topic, queue, offset) in table.group(&g) {
            writeln!(out, "{g}  {topic}/{queue}  {offset}")?;
        }
    }
    Ok(Outcome::Success)
}
