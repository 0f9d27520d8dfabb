//! `repair`: makes a store that `open` refuses openable again, losing as little as can be lost,
//! and deleting nothing.
//!
//! `open` refuses a commit log whose files do not make one contiguous run of equal segments: a
//! stray file among them, a segment whose start is not a multiple of the segment size, a file
//! shorter (a copy cut short, a full disk) or longer than a segment, a hole where a segment is
//! missing; and a consume-queue directory that cannot be a topic or a queue id. Refusing is
//! right: guessing at open would hide the damage. An operator then runs `mqstore repair`:
//!
//! - files that cannot be segments are moved into `lost+found/{ms}-repair/`;
//! - a file too long is copied there, then cut to the segment size;
//! - a file too short is copied there, then padded with zeros; its records end where its last
//!   whole record ends (a segment that is not the last gets an end-of-segment filler there);
//! - a missing segment is replaced by one that holds only a filler, so that the records after
//!   the hole keep their offsets;
//! - the checkpoint is set aside and the store marked as not shut down, so the next open checks
//!   every record of the log and rebuilds the consume queues and the index from it;
//! - then the store is opened (recovery runs) and closed.
//!
//! The report says what was done and which log offsets were lost. `dry_run` reports the same
//! plan without touching a file.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::codec::{self, Frame, Verify};
use crate::config::StoreConfig;
use crate::error::{Error, IoContext, Result};
use crate::layout::scan::next_valid_record;
use crate::layout::segments::{Extra, Problem, SegmentFile, list_segments, read_dir_sorted};
use crate::layout::{ABORT_FILE, CHECKPOINT_FILE, COMMIT_LOG_DIR, CONSUME_QUEUE_DIR, lock_existing, lost_found_dir};
use crate::message::validate_topic;
use crate::meta::Meta;
use crate::recovery::RecoveryReport;
use crate::retention::RetentionConfig;
use crate::segment::segment_name;
use crate::store::MessageStore;

/// How to repair.
#[derive(Clone, Debug, Default)]
pub struct RepairOptions {
    /// Say what would be done, change nothing.
    pub dry_run: bool,
    /// The commit log's segment size, for a store without `mqstore.meta` (written by RocketMQ)
    /// whose files do not tell (a single file, cut short). Default: what `mqstore.meta`
    /// records, else the length most segment files have.
    pub commit_log_segment_size: Option<u64>,
}

/// One thing `repair` did (or, in a dry run, would do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepairAction {
    /// A file or directory moved into `lost+found/`.
    MovedAside {
        /// Where it was.
        from: PathBuf,
        /// Where it is now.
        to: PathBuf,
        /// Why.
        why: String,
    },
    /// A segment file copied into `lost+found/`, then cut to the segment size.
    Cut {
        /// The segment file.
        file: PathBuf,
        /// Its length before.
        len: u64,
        /// The segment size.
        size: u64,
        /// The copy of the whole file.
        copy: PathBuf,
    },
    /// A segment file copied into `lost+found/`, then padded to the segment size, its records
    /// ending at `records_end` (relative to the file).
    Padded {
        /// The segment file.
        file: PathBuf,
        /// Its length before.
        len: u64,
        /// The segment size.
        size: u64,
        /// Where its last whole record ends.
        records_end: u64,
        /// Whether an end-of-segment filler was written there (a segment that is not the last).
        filler: bool,
        /// The copy of the file as it was.
        copy: PathBuf,
    },
    /// A missing segment replaced by one holding only an end-of-segment filler.
    FilledHole {
        /// The new segment file.
        file: PathBuf,
    },
    /// The store marked as not shut down cleanly (the abort marker written), so that the next
    /// open checks every record from the first segment on.
    MarkedForFullRecovery,
}

/// Log offsets whose records are gone from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lost {
    /// First offset.
    pub from: u64,
    /// One past the last.
    pub to: u64,
    /// What happened to them.
    pub why: String,
}

/// What `repair` did.
#[derive(Debug)]
pub struct RepairReport {
    /// Whether this was a dry run (nothing was changed).
    pub dry_run: bool,
    /// The commit log's segment size the repair worked with.
    pub segment_size: u64,
    /// What was done, in order.
    pub actions: Vec<RepairAction>,
    /// Log offsets lost, in order.
    pub lost: Vec<Lost>,
    /// What the open after the repair found and did (`None` in a dry run).
    pub recovery: Option<RecoveryReport>,
}

impl RepairReport {
    /// Whether the store needed nothing.
    pub fn nothing_to_do(&self) -> bool {
        self.actions.is_empty()
    }
}

/// Repairs the store in `dir`: what `mqstore repair` does (the README's command-line section). Fails with
/// `Error::Locked` while a store has it open, and with the open's error if the store still
/// does not open after the repair (what was done is then in the files and `lost+found/`).
pub fn repair_store(dir: &Path, options: &RepairOptions) -> Result<RepairReport> {
    if !dir.is_dir() {
        return Err(Error::io(
            dir,
            io::Error::new(io::ErrorKind::NotFound, "not a directory"),
        ));
    }
    let lock = lock_existing(dir)?;
    let meta = Meta::read(dir)?;
    let log_dir = dir.join(COMMIT_LOG_DIR);
    let size = meta
        .as_ref()
        .map(|m| m.commit_log_segment_size)
        .or(options.commit_log_segment_size);
    let listing = list_segments(&log_dir, size)?;
    let mut plan = Plan {
        dry_run: options.dry_run,
        aside: lost_found_dir(dir, "repair"),
        actions: Vec::new(),
        lost: Vec::new(),
    };
    let size = listing.size;
    // As the store will check them: the whole-record CRC where mqstore created the store.
    let verify = match &meta {
        Some(m) if m.record_crc_required => Verify::RequireRecordCrc,
        _ => Verify::Crc,
    };

    for extra in &listing.extras {
        if let Extra::Stray(entry) = extra {
            plan.move_aside(
                &entry.path,
                Path::new(COMMIT_LOG_DIR).join(&entry.name),
                "not a segment file name",
            )?;
        }
    }
    // Files that cannot sit where their names put them leave first; what stays is aligned.
    let mut files: Vec<SegmentFile> = Vec::new();
    for (i, file) in listing.files.iter().enumerate() {
        if listing.problems.contains(&Problem::Misaligned { file: i }) {
            plan.move_aside(
                &file.path,
                Path::new(COMMIT_LOG_DIR).join(&file.name),
                &format!(
                    "start offset {} is not a multiple of the segment size {size}",
                    file.start
                ),
            )?;
            plan.lost(
                file.start,
                file.start + file.len,
                "a segment file at a start no segment can have",
            );
        } else {
            files.push(file.clone());
        }
    }
    let mut expected: Option<u64> = None;
    for (i, file) in files.iter().enumerate() {
        if let Some(exp) = expected {
            let mut start = exp;
            while start < file.start {
                plan.fill_hole(&log_dir.join(segment_name(start)), size)?;
                start += size;
            }
            if exp < file.start {
                plan.lost(exp, file.start, "segment files missing");
            }
        }
        expected = Some(file.start + size);
        let last = i + 1 == files.len();
        if file.len > size {
            plan.cut(file, size)?;
            plan.lost(
                file.start + size,
                file.start + file.len,
                "bytes past the segment's end (kept in the copy)",
            );
        } else if file.len < size {
            let records_end = records_end(&file.path, file.start, file.len, verify)?;
            plan.pad(file, size, records_end, !last)?;
            if records_end < file.len {
                plan.lost(
                    file.start + records_end,
                    file.start + file.len,
                    "a record cut short with its segment file",
                );
            }
            if !last {
                plan.lost(
                    file.start + file.len,
                    file.start + size,
                    "the rest of a segment file cut short",
                );
            }
        }
    }
    // A stray file moved aside changed nothing the log holds; anything else did.
    let log_changed = plan
        .actions
        .iter()
        .any(|a| !matches!(a, RepairAction::MovedAside { .. }))
        || !plan.lost.is_empty();
    repair_queue_dirs(dir, &mut plan)?;
    if log_changed {
        // The checkpoint may vouch for bytes that are gone: the next open starts from the
        // first segment, checking every record, and rebuilds the derived files from them.
        let checkpoint = dir.join(CHECKPOINT_FILE);
        if checkpoint.exists() {
            plan.move_aside(
                &checkpoint,
                PathBuf::from(CHECKPOINT_FILE),
                "it may vouch for bytes that are gone",
            )?;
        }
        if !plan.dry_run {
            let abort = dir.join(ABORT_FILE);
            File::create(&abort).at(&abort)?;
            sync_parent(&abort)?;
        }
        plan.actions.push(RepairAction::MarkedForFullRecovery);
    }
    drop(lock);
    let recovery = if plan.dry_run {
        None
    } else {
        let mut config = StoreConfig::new(dir).retention(RetentionConfig::default().enabled(false));
        if size > 0 {
            config = config.commit_log_segment_size(size);
        }
        let store = MessageStore::open(config)?;
        let report = store.recovery_report().clone();
        store.close()?;
        Some(report)
    };
    Ok(RepairReport {
        dry_run: plan.dry_run,
        segment_size: size,
        actions: plan.actions,
        lost: plan.lost,
        recovery,
    })
}

/// Consume-queue directories `open` refuses (a topic name no put can have, a queue directory
/// that is not a number) go aside: the queues are derived data, rebuilt from the log.
fn repair_queue_dirs(dir: &Path, plan: &mut Plan) -> Result<()> {
    let root = dir.join(CONSUME_QUEUE_DIR);
    for topic in read_dir_sorted(&root)?.unwrap_or_default() {
        if !topic.is_dir {
            continue;
        }
        let rel = Path::new(CONSUME_QUEUE_DIR).join(&topic.name);
        if !topic.utf8 || validate_topic(&topic.name).is_err() {
            plan.move_aside(&topic.path, rel, "not a topic name")?;
            continue;
        }
        for queue in read_dir_sorted(&topic.path)?.unwrap_or_default() {
            let numeric = queue.utf8 && !queue.name.is_empty() && queue.name.bytes().all(|b| b.is_ascii_digit());
            if queue.is_dir && !(numeric && queue.name.parse::<u32>().is_ok()) {
                plan.move_aside(&queue.path, rel.join(&queue.name), "not a queue id")?;
            }
        }
    }
    Ok(())
}

/// Where the records of a segment file cut short end: after its last whole record (passing
/// over damage inside it, which recovery reports), or at a filler.
fn records_end(path: &Path, start: u64, len: u64, verify: Verify) -> Result<u64> {
    let data = fs::read(path).at(path)?;
    let data = &data[..(len as usize).min(data.len())];
    let mut pos = 0usize;
    let mut end = 0usize;
    while pos < data.len() {
        match codec::decode(&data[pos..], verify) {
            Ok(Frame::Record(view)) if view.physical_offset == start + pos as u64 => {
                pos += view.total_size as usize;
                end = pos;
            }
            Ok(Frame::Blank { .. }) => {
                end = pos;
                break;
            }
            _ => match next_valid_record(data, start, pos, verify) {
                Some(next) => pos = (next - start) as usize,
                None => break,
            },
        }
    }
    Ok(end as u64)
}

/// The repair's actions, carried out unless this is a dry run.
struct Plan {
    dry_run: bool,
    aside: PathBuf,
    actions: Vec<RepairAction>,
    lost: Vec<Lost>,
}

impl Plan {
    fn lost(&mut self, from: u64, to: u64, why: &str) {
        if from < to {
            self.lost.push(Lost {
                from,
                to,
                why: why.to_string(),
            });
        }
    }

    fn aside_path(&self, rel: &Path) -> Result<PathBuf> {
        let to = self.aside.join(rel);
        if !self.dry_run
            && let Some(parent) = to.parent()
        {
            fs::create_dir_all(parent).at(parent)?;
        }
        Ok(to)
    }

    fn move_aside(&mut self, from: &Path, rel: PathBuf, why: &str) -> Result<()> {
        let to = self.aside_path(&rel)?;
        if !self.dry_run {
            fs::rename(from, &to).at(from)?;
            sync_parent(from)?;
            sync_parent(&to)?;
        }
        self.actions.push(RepairAction::MovedAside {
            from: from.to_path_buf(),
            to,
            why: why.to_string(),
        });
        Ok(())
    }

    fn copy_aside(&self, file: &SegmentFile) -> Result<PathBuf> {
        let copy = self.aside_path(&Path::new(COMMIT_LOG_DIR).join(&file.name))?;
        if !self.dry_run {
            fs::copy(&file.path, &copy).at(&file.path)?;
            File::open(&copy).and_then(|f| f.sync_all()).at(&copy)?;
            sync_parent(&copy)?;
        }
        Ok(copy)
    }

    fn cut(&mut self, file: &SegmentFile, size: u64) -> Result<()> {
        let copy = self.copy_aside(file)?;
        if !self.dry_run {
            let f = OpenOptions::new().write(true).open(&file.path).at(&file.path)?;
            f.set_len(size).at(&file.path)?;
            f.sync_all().at(&file.path)?;
        }
        self.actions.push(RepairAction::Cut {
            file: file.path.clone(),
            len: file.len,
            size,
            copy,
        });
        Ok(())
    }

    fn pad(&mut self, file: &SegmentFile, size: u64, records_end: u64, filler: bool) -> Result<()> {
        let copy = self.copy_aside(file)?;
        let filler = filler && size - records_end >= codec::BLANK_LEN as u64;
        if !self.dry_run {
            let f = OpenOptions::new().write(true).open(&file.path).at(&file.path)?;
            // Zeros over what follows the last whole record (a torn record's bytes are in the
            // copy), then the full length: the log ends there, or its filler says so.
            f.set_len(records_end).at(&file.path)?;
            f.set_len(size).at(&file.path)?;
            if filler {
                let blank = codec::encode_blank((size - records_end) as u32);
                f.write_all_at(&blank, records_end).at(&file.path)?;
            }
            f.sync_all().at(&file.path)?;
        }
        self.actions.push(RepairAction::Padded {
            file: file.path.clone(),
            len: file.len,
            size,
            records_end,
            filler,
            copy,
        });
        Ok(())
    }

    fn fill_hole(&mut self, path: &Path, size: u64) -> Result<()> {
        if !self.dry_run {
            let mut f = OpenOptions::new().write(true).create_new(true).open(path).at(path)?;
            f.write_all(&codec::encode_blank(size as u32)).at(path)?;
            f.set_len(size).at(path)?;
            f.sync_all().at(path)?;
            sync_parent(path)?;
        }
        self.actions.push(RepairAction::FilledHole {
            file: path.to_path_buf(),
        });
        Ok(())
    }
}

fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir).and_then(|d| d.sync_all()).at(dir),
        None => Ok(()),
    }
}

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (moved, cut, padded, filled) = if self.dry_run {
            ("would move", "would cut", "would pad", "would fill")
        } else {
            ("moved", "cut", "padded", "filled")
        };
        if self.actions.is_empty() {
            writeln!(f, "nothing to repair: the store's files are as open expects them")?;
        }
        for action in &self.actions {
            match action {
                RepairAction::MovedAside { from, to, why } => {
                    writeln!(f, "{moved} {} to {} ({why})", from.display(), to.display())?
                }
                RepairAction::Cut { file, len, size, copy } => writeln!(
                    f,
                    "{cut} {} from {len} to {size} bytes (the whole file copied to {})",
                    file.display(),
                    copy.display()
                )?,
                RepairAction::Padded {
                    file,
                    len,
                    size,
                    records_end,
                    filler,
                    copy,
                } => writeln!(
                    f,
                    "{padded} {} from {len} to {size} bytes, its records ending at {records_end}{} (the file as it was copied to {})",
                    file.display(),
                    if *filler { " with an end-of-segment filler" } else { "" },
                    copy.display()
                )?,
                RepairAction::FilledHole { file } => writeln!(
                    f,
                    "{filled} the hole with {}, an empty segment (an end-of-segment filler)",
                    file.display()
                )?,
                RepairAction::MarkedForFullRecovery => writeln!(
                    f,
                    "{} the store for a full recovery: every record checked, consume queues and index rebuilt",
                    if self.dry_run { "would mark" } else { "marked" }
                )?,
            }
        }
        if self.lost.is_empty() {
            writeln!(f, "lost: nothing")?;
        }
        for lost in &self.lost {
            writeln!(
                f,
                "lost: commit-log offsets {}..{} ({} bytes): {}",
                lost.from,
                lost.to,
                lost.to - lost.from,
                lost.why
            )?;
        }
        if let Some(r) = &self.recovery {
            writeln!(
                f,
                "opened: {} records checked from offset {}, log end {}, {} damaged range(s) skipped, {} queue(s) rebuilt, {} unit(s) repaired",
                r.records_checked,
                r.scanned_from,
                r.log_end,
                r.damaged.len(),
                r.queues_rebuilt.len(),
                r.units_repaired
            )?;
            for d in &r.damaged {
                writeln!(f, "lost: commit-log offsets {}..{}: damaged records", d.start, d.end)?;
            }
        }
        Ok(())
    }
}
