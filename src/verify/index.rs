//! The index files: each entry must point at a record of the log that holds a key with the
//! entry's hash, chains must only go back, slots must point at entries that exist.
//!
//! Below the checkpoint's index mark (or in a store RocketMQ shut down cleanly) recovery trusts
//! the files, so a bad entry there is damage: lookups through it miss their messages (never
//! return wrong ones: queries confirm every hit on the record). Past the mark, recovery checks
//! the entries against the log itself and cuts what fails: a note.

use std::path::{Path, PathBuf};

use super::{Findings, LogFiles, Sev};
use crate::checkpoint::Loaded;
use crate::error::{Error, Result};
use crate::index::file::{ENTRY_LEN, Header, IndexEntry, Layout, parse_name};
use crate::index::{INDEX_DIR, indexed_keys, key_hash, tag_hash};
use crate::segment::ReadOnlyMap;

/// What the index check counted.
#[derive(Default)]
pub(super) struct IndexCount {
    pub(super) files: usize,
    pub(super) entries: u64,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn check_index(
    dir: &Path,
    log: &LogFiles,
    log_end: u64,
    checkpoint: &Loaded,
    (clean, rocketmq): (bool, bool),
    configured: Option<(u32, u32)>,
    damaged_records: &[u64],
    f: &mut Findings,
) -> Result<IndexCount> {
    let mut count = IndexCount::default();
    let index_dir = dir.join(INDEX_DIR);
    let Ok(read) = std::fs::read_dir(&index_dir) else {
        return Ok(count);
    };
    let mut names: Vec<(u64, PathBuf, u64)> = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| Error::io(&index_dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = PathBuf::from(INDEX_DIR).join(&name);
        let len = entry.metadata().map_err(|e| Error::io(entry.path(), e))?.len();
        match parse_name(&name) {
            Some(n) => names.push((n, rel, len)),
            None => f.note(rel, 0, "not an index file name (yyyyMMddHHmmssSSS): ignored"),
        }
    }
    names.sort();
    let (mark, trust_all) = match checkpoint {
        Loaded::Exact(cp) => (cp.index, false),
        _ => (Default::default(), clean && rocketmq),
    };
    let log_start = log.segs.first().map_or(0, |s| s.start);
    for (name, rel, len) in names {
        count.files += 1;
        let (slots, entries) = configured.unwrap_or((crate::index::DEFAULT_SLOTS, crate::index::DEFAULT_ENTRIES));
        let preferred = Layout { slots, entries };
        let Some(file_layout) = Layout::infer(len, preferred) else {
            f.note(
                &rel,
                0,
                format!("{len} bytes fit no index layout: recovery removes the file and rebuilds"),
            );
            continue;
        };
        let layout = file_layout;
        let path = dir.join(&rel);
        let map = ReadOnlyMap::open(&path).map_err(|e| Error::io(&path, e))?;
        let data: &[u8] = &map;
        let header_count = Header::decode(data).index_count;
        let trusted = if trust_all || name < mark.file {
            header_count.clamp(1, layout.entries as i32)
        } else if name == mark.file {
            (mark.count.min(layout.entries as u64) as i32).max(1)
        } else {
            1
        };
        let sev = |n: i32| if n < trusted { Sev::Damage } else { Sev::Note };
        let mut last_phy = i64::MIN;
        let mut problems = 0u64;
        let mut first: Option<(i32, String)> = None;
        let mut of_damaged = 0u64;
        let mut n = 1i32;
        let mut hashes = Vec::new();
        let mut cached_phy = -1i64;
        let mut cached: std::result::Result<(), String> = Ok(());
        while (n as u32) < layout.entries {
            let at = layout.entry_pos(n as u32) as usize;
            let Some(e) = data.get(at..at + ENTRY_LEN as usize).map(IndexEntry::decode) else {
                break;
            };
            if e.is_zero() {
                break;
            }
            count.entries += 1;
            let (hash, phy, prev) = (e.key_hash, e.phy_offset, e.prev);
            let problem = if hash < 0 {
                Some(format!("negative key hash {hash}"))
            } else if !(0..n).contains(&prev) {
                Some(format!("link to entry {prev} does not go back"))
            } else if phy < last_phy {
                Some(format!("commit-log offset {phy} goes back (after {last_phy})"))
            } else if phy < log_start as i64 {
                None // retention removed the record: a stale entry
            } else if damaged_records.contains(&(phy as u64)) {
                of_damaged += 1;
                None
            } else if phy as u64 >= log_end {
                Some(format!("points at {phy}, past the end of the log ({log_end})"))
            } else {
                if phy != cached_phy {
                    cached_phy = phy;
                    hashes.clear();
                    cached = log.record_at(phy as u64).map(|v| {
                        hashes.extend(indexed_keys(v.properties).map(|k| key_hash(v.topic, k)));
                        if let Some(t) = v.tags() {
                            hashes.push(tag_hash(v.topic, t));
                        }
                    });
                }
                match &cached {
                    Err(e) => Some(format!("points at {phy}, where no record starts: {e}")),
                    Ok(()) if !hashes.contains(&hash) => {
                        Some(format!("the record at {phy} holds no key of hash {hash}"))
                    }
                    Ok(()) => None,
                }
            };
            if let Some(what) = problem {
                problems += 1;
                if first.is_none() {
                    first = Some((n, what));
                }
            }
            last_phy = last_phy.max(phy);
            n += 1;
        }
        if let Some((at, what)) = first {
            let more = if problems > 1 {
                format!(" (and {} more bad entries)", problems - 1)
            } else {
                String::new()
            };
            let action = if sev(at) == Sev::Damage {
                "lookups through it miss their messages"
            } else {
                "past the checkpoint: recovery cuts it and indexes again"
            };
            f.push(
                sev(at),
                &rel,
                layout.entry_pos(at as u32),
                format!("index entry {at}: {what}{more}; {action}"),
            );
        }
        if of_damaged > 0 {
            f.note(
                &rel,
                0,
                format!("{of_damaged} entries point at damaged records (reported in the log)"),
            );
        }
        // Slots point at entries that exist.
        let table = data
            .get(layout.slot_pos(0) as usize..layout.entry_pos(0) as usize)
            .unwrap_or(&[]);
        if let Some((s, v)) = table
            .chunks_exact(4)
            .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .enumerate()
            .find(|&(_, v)| !(0..n).contains(&v))
        {
            f.push(
                if trusted >= n { Sev::Damage } else { Sev::Note },
                &rel,
                layout.slot_pos(s as u32),
                format!("hash slot {s} points at entry {v}, past the last entry ({})", n - 1),
            );
        }
    }
    Ok(count)
}
