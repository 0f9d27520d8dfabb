//! The index by key: RocketMQ's IndexFiles, built by the dispatcher from each record's keys
//! (`KEYS`, split on spaces) and its unique id (`UNIQ_KEY`), each as `topic#key`.
//!
//! Files live in `index/`, named by creation time; a new one is created when the last is full.
//! A message's entries never straddle two files, and a full file is made durable before the
//! next is created, so every file but the last is whole on disk.
//!
//! **Durability.** Index files are flushed with each checkpoint, which records how far the
//! index is durable (the last file and its entry count, an [`IndexMark`]). Recovery trusts the
//! entries below the mark; entries past it are kept only if each one checks out against the
//! commit log (its record exists, holds a key with the entry's hash, and the bucket chains are
//! consistent). What does not check out is cut, and the records from there are indexed again.
//! A torn or damaged index file therefore costs a rebuild of its tail, never a wrong answer:
//! queries also confirm every hit on the record's own keys, since only hashes are stored.

pub mod file;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::codec::{self, RecordView};
use crate::error::{IoContext, Result};
use crate::segment::Backend;
use file::{IndexFile, Layout, file_name_for, format_name, parse_name};

/// Name of the index directory.
pub const INDEX_DIR: &str = "index";
/// RocketMQ's `maxHashSlotNum`.
pub const DEFAULT_SLOTS: u32 = 5_000_000;
/// RocketMQ's `maxIndexNum`.
pub const DEFAULT_ENTRIES: u32 = 20_000_000;
/// RocketMQ's `maxMsgsNumBatch`: most messages one query returns.
pub const MAX_QUERY_RESULTS: usize = 64;

/// How far the index is durable, recorded in the checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexMark {
    /// Name (creation time, as a number) of the last file; 0 if there was none.
    pub file: u64,
    /// Entries of that file durable (the next entry's number).
    pub count: u64,
    /// Every record below this commit-log offset was indexed.
    pub covered: u64,
}

/// `abs(javaHash("topic#key"))` with `i32::MIN` mapped to 0, computed without building the
/// string.
pub fn key_hash(topic: &str, key: &str) -> i32 {
    let h = topic
        .encode_utf16()
        .chain(std::iter::once(u16::from(b'#')))
        .chain(key.encode_utf16())
        .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)));
    if h == i32::MIN { 0 } else { h.abs() }
}

/// The keys of a record's properties that the index holds: `UNIQ_KEY`, then each non-empty
/// token of `KEYS`.
pub fn indexed_keys(properties: &str) -> impl Iterator<Item = &str> {
    let mut uniq = None;
    let mut keys = None;
    for (k, v) in codec::properties(properties) {
        if k == codec::PROPERTY_UNIQ_KEY {
            uniq = Some(v);
        } else if k == codec::PROPERTY_KEYS {
            keys = Some(v);
        }
    }
    uniq.into_iter()
        .chain(keys.into_iter().flat_map(|k| k.split(codec::KEY_SEPARATOR)))
        .filter(|k| !k.is_empty())
}

/// Whether the record holds `key` among its indexed keys.
pub fn has_key(properties: &str, key: &str) -> bool {
    indexed_keys(properties).any(|k| k == key)
}

/// The hash of RocketMQ 5's tag entry, `topic#T#tag` (the Rust port writes them too): not
/// written here, but accepted when checking a file another store wrote.
pub fn tag_hash(topic: &str, tag: &str) -> i32 {
    key_hash(topic, &format!("T#{tag}"))
}

fn hashes_into(topic: &str, properties: &str, out: &mut Vec<i32>) {
    out.clear();
    out.extend(indexed_keys(properties).map(|k| key_hash(topic, k)));
}

/// What index recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexRecovery {
    /// Index files found.
    pub files: usize,
    /// Entries checked against the commit log (those past the durable mark).
    pub entries_checked: u64,
    /// Entries cut (they did not check out, or followed one that did not).
    pub entries_cut: u64,
    /// Files removed (past a cut, or unreadable).
    pub files_removed: Vec<PathBuf>,
    /// Whether any file's hash slots had to be rebuilt.
    pub slots_rebuilt: bool,
    /// Every record below this offset is indexed; the dispatcher indexes from here.
    pub covered: u64,
}

/// One index file, for tools and dashboards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexFileInfo {
    /// Its path.
    pub path: PathBuf,
    /// Hash slots and entries it has room for.
    pub slots: u32,
    /// Entries it has room for (entry 0 included, never used).
    pub capacity: u32,
    /// Its header as the writer knows it.
    pub header: file::Header,
}

/// The set of index files and the writer's position.
pub struct IndexService<B: Backend> {
    backend: Arc<B>,
    dir: PathBuf,
    layout: Layout,
    files: RwLock<Vec<Arc<IndexFile<B::Storage>>>>,
    covered: AtomicU64,
    /// The writer's scratch for one record's hashes.
    scratch: Mutex<Vec<i32>>,
    /// Whether a file could not be created (logged once; records are then not indexed).
    failing: AtomicBool,
    /// Names of files removed at open (unknown shape): recovery rebuilds from there.
    removed_at_open: Vec<u64>,
}

impl<B: Backend> IndexService<B> {
    /// Opens the files in `dir` (created when the first entry is written). Files of an unknown
    /// shape and leftovers of an interrupted creation are removed: the index is derived data,
    /// and recovery rebuilds what they held.
    pub fn open(backend: Arc<B>, dir: PathBuf, layout: Layout) -> Result<Self> {
        let mut files = Vec::new();
        let mut removed_at_open = Vec::new();
        let mut listed = backend.list(&dir).at(&dir)?;
        listed.sort();
        for (name, len) in listed {
            let path = dir.join(&name);
            let Some(n) = parse_name(&name) else {
                if name.starts_with('.') && name.ends_with(".creating") {
                    backend.remove(&path).at(&path)?;
                }
                continue;
            };
            let Some(file_layout) = Layout::infer(len, layout) else {
                tracing::warn!(path = %path.display(), len, "index file of an unknown shape removed; it is rebuilt");
                backend.remove(&path).at(&path)?;
                removed_at_open.push(n);
                continue;
            };
            let storage = backend.open(&path).at(&path)?;
            files.push(Arc::new(IndexFile::open(storage, n, path, file_layout)));
        }
        Ok(IndexService {
            backend,
            dir,
            layout,
            files: RwLock::new(files),
            covered: AtomicU64::new(0),
            scratch: Mutex::new(Vec::new()),
            failing: AtomicBool::new(false),
            removed_at_open,
        })
    }

    /// Every record below this commit-log offset is indexed.
    pub fn covered(&self) -> u64 {
        self.covered.load(Ordering::Acquire)
    }

    /// The files, oldest first.
    pub fn files(&self) -> Vec<Arc<IndexFile<B::Storage>>> {
        self.files.read().clone()
    }

    /// Describes the files, oldest first.
    pub fn info(&self) -> Vec<IndexFileInfo> {
        self.files()
            .iter()
            .map(|f| IndexFileInfo {
                path: f.path().to_path_buf(),
                slots: f.layout().slots,
                capacity: f.layout().entries,
                header: f.header(),
            })
            .collect()
    }

    /// Indexes a record (from the dispatcher, in commit-log order). Records below
    /// [`covered`](Self::covered) are skipped, which makes replay idempotent.
    pub fn index_record(&self, view: &RecordView<'_>) {
        let offset = view.physical_offset;
        if offset < self.covered() {
            return;
        }
        let end = offset + view.total_size as u64;
        let tx = view.sys_flag & codec::TRANSACTION_TYPE_MASK;
        if tx != codec::TRANSACTION_ROLLBACK_TYPE {
            let mut hashes = self.scratch.lock();
            hashes_into(view.topic, view.properties, &mut hashes);
            if !hashes.is_empty() {
                self.add(offset, view.store_timestamp, &mut hashes);
            }
        }
        self.covered.store(end, Ordering::Release);
    }

    fn add(&self, offset: u64, timestamp: i64, hashes: &mut Vec<i32>) {
        for _attempt in 0..3 {
            let last = self.files.read().last().cloned();
            if let Some(f) = &last {
                hashes.truncate(f.max_per_message());
                if f.add(offset, timestamp, hashes) {
                    return;
                }
            }
            match self.roll(last.as_deref()) {
                Ok(()) => self.failing.store(false, Ordering::Release),
                Err(e) => {
                    if !self.failing.swap(true, Ordering::AcqRel) {
                        tracing::error!(error = %e, offset, "cannot create an index file: records are not indexed");
                    }
                    return;
                }
            }
        }
    }

    /// Makes the full last file durable and starts a new one.
    fn roll(&self, full: Option<&IndexFile<B::Storage>>) -> Result<()> {
        if let Some(f) = full {
            f.flush().at(f.path())?;
        }
        self.backend.create_dir_all(&self.dir).at(&self.dir)?;
        let now = file_name_for(crate::clock::now_millis());
        let name = full.map_or(now, |f| now.max(f.name() + 1));
        let path = self.dir.join(format_name(name));
        let storage = self.backend.create(&path, self.layout.file_size()).at(&path)?;
        tracing::debug!(path = %path.display(), "index file created");
        self.files
            .write()
            .push(Arc::new(IndexFile::create(storage, name, path, self.layout)));
        Ok(())
    }

    /// Retention: removes, oldest first, the files whose every entry points below `log_min`
    /// (their records left the log), never the last one. Queries that hold a file keep reading
    /// it until they drop it. Returns the files removed.
    pub fn delete_below(&self, log_min: u64) -> Result<usize> {
        let mut removed = 0;
        loop {
            let doomed = {
                let mut files = self.files.write();
                let below = files.len() > 1
                    && files
                        .first()
                        .is_some_and(|f| (f.header().end_phy_offset.max(0) as u64) < log_min);
                if !below {
                    break;
                }
                files.remove(0)
            };
            self.backend.remove(doomed.path()).at(doomed.path())?;
            tracing::info!(path = %doomed.path().display(), "index file retired");
            removed += 1;
        }
        Ok(removed)
    }

    /// Where the index stands now (what a flush would make durable).
    pub fn mark(&self) -> IndexMark {
        let covered = self.covered();
        let files = self.files.read();
        match files.last() {
            Some(f) => IndexMark {
                file: f.name(),
                count: f.header().index_count.max(1) as u64,
                covered,
            },
            None => IndexMark {
                file: 0,
                count: 0,
                covered,
            },
        }
    }

    /// Makes every entry written so far durable; returns the mark that is now safe to record.
    pub fn flush(&self) -> Result<IndexMark> {
        // Read before flushing: the mark may claim less than is durable, never more.
        let covered = self.covered();
        let Some(last) = self.files.read().last().cloned() else {
            return Ok(IndexMark {
                file: 0,
                count: 0,
                covered,
            });
        };
        let count = last.flush().at(last.path())?;
        Ok(IndexMark {
            file: last.name(),
            count: count.max(1) as u64,
            covered,
        })
    }

    /// As [`flush`](Self::flush), with a mark that counts only entries of records below
    /// `limit` (the log's durable end): recovery trusts the entries a mark counts without
    /// reading their records, and a power loss may take records past `limit` (under an
    /// asynchronous flush, the index runs ahead of the log's durable end). Entries past the
    /// mark are checked against the log at recovery.
    pub fn flush_below(&self, limit: u64) -> Result<IndexMark> {
        let mark = self.flush()?;
        if mark.covered <= limit {
            return Ok(mark);
        }
        let files = self.files();
        for (i, f) in files.iter().enumerate().rev() {
            let count = if f.name() == mark.file {
                mark.count as i32
            } else {
                f.header().index_count
            };
            let lo = f.first_entry_from(limit, count);
            // Nothing of this file below the limit: the mark lies in an earlier one.
            if lo <= 1 && i > 0 {
                continue;
            }
            return Ok(IndexMark {
                file: f.name(),
                count: lo as u64,
                covered: limit,
            });
        }
        Ok(IndexMark {
            file: 0,
            count: 0,
            covered: limit,
        })
    }

    /// Commit-log offsets of records that may hold `key` in `topic`, stored in `begin..=end`
    /// (ms), newest first. `confirm` reads each candidate and says whether it matches (`true`),
    /// so that exactly `max` confirmed results are gathered where they exist.
    pub fn query(
        &self,
        topic: &str,
        key: &str,
        begin: u64,
        end: u64,
        max: usize,
        mut confirm: impl FnMut(u64) -> bool,
    ) {
        let hash = key_hash(topic, key);
        let files = self.files();
        let mut seen = std::collections::HashSet::new();
        let mut found = 0usize;
        let mut batch = Vec::new();
        for f in files.iter().rev() {
            if found >= max {
                return;
            }
            if !f.overlaps(begin, end) {
                continue;
            }
            let mut resume = None;
            loop {
                batch.clear();
                let want = (max - found).max(16);
                let next = f.candidates(hash, begin, end, resume, want, &mut batch);
                for &offset in &batch {
                    if seen.insert(offset) && confirm(offset) {
                        found += 1;
                        if found >= max {
                            return;
                        }
                    }
                }
                match next {
                    Some(n) => resume = Some(n),
                    None => break,
                }
            }
        }
    }

    /// Removes every entry of records at or past `offset` (the log was cut there): files
    /// starting past it go, the one holding it is cut. For a slave truncated to a master's
    /// history; the dispatcher must be paused.
    pub fn truncate_from(&self, offset: u64) -> Result<()> {
        let mut files = self.files.write();
        while let Some(last) = files.last() {
            let h = last.header();
            if h.index_count > 1 && (h.begin_phy_offset as u64) >= offset {
                let path = last.path().to_path_buf();
                files.pop();
                self.backend.remove(&path).at(&path)?;
                continue;
            }
            if h.index_count > 1 && (h.end_phy_offset as u64) >= offset {
                let lo = last.first_entry_from(offset, h.index_count);
                let end = last
                    .entry((lo - 1).max(1) as u32)
                    .map_or((0, 0), |e| (h.end_timestamp, e.phy_offset));
                last.cut(lo, h.index_count, (h.begin_timestamp, h.begin_phy_offset), end)
                    .at(last.path())?;
            }
            break;
        }
        self.covered.fetch_min(offset, Ordering::AcqRel);
        Ok(())
    }

    /// Recovery: checks the entries past `mark` against the log, cuts what does not check out,
    /// and sets where indexing resumes. `trust_headers`: a store RocketMQ shut down cleanly,
    /// whose files' headers are believed. `record` reads the record at a commit-log offset and
    /// gives its store timestamp and the hashes of its indexed keys (`None`: no valid record
    /// there).
    pub fn recover(
        &self,
        mark: IndexMark,
        trust_headers: bool,
        mut record: impl FnMut(u64, &mut Vec<i32>) -> Option<i64>,
    ) -> Result<IndexRecovery> {
        let files = self.files();
        let mut report = IndexRecovery {
            files: files.len(),
            ..Default::default()
        };
        let mut hashes = Vec::new();
        let mut cached: Option<(i64, Option<i64>)> = None;
        let mut check = |phy: i64, hash: i32, hashes: &mut Vec<i32>| -> bool {
            if cached.is_none_or(|(p, _)| p != phy) {
                let ts = if phy >= 0 { record(phy as u64, hashes) } else { None };
                cached = Some((phy, ts));
            }
            cached.is_some_and(|(_, ts)| ts.is_some()) && hashes.contains(&hash)
        };
        let mut last_phy = -1i64;
        // (file index, entries kept, whether the file needs a cut)
        let mut kept: Vec<(usize, i32, bool)> = Vec::new();
        let mut damaged = false;
        // A file removed at open leaves a hole in the index: keep only the files before it.
        let hole = self.removed_at_open.iter().min().copied();
        for (i, f) in files.iter().enumerate() {
            if hole.is_some_and(|h| f.name() > h) {
                damaged = true;
                break;
            }
            let cap = f.layout().entries as i32;
            let header = f.header();
            let trusted = if trust_headers || f.name() < mark.file {
                header.index_count
            } else if f.name() == mark.file {
                (mark.count.min(cap as u64) as i32).max(1)
            } else {
                1
            };
            if trusted > 1
                && let Some(e) = f.entry((trusted - 1) as u32)
            {
                last_phy = last_phy.max(e.phy_offset);
            }
            let mut newest: HashMap<u32, i32> = HashMap::new();
            let mut n = trusted;
            while n < cap {
                let Some(e) = f.entry(n as u32) else { break };
                if e.is_zero() {
                    break;
                }
                report.entries_checked += 1;
                let slot = f.slot_of(e.key_hash);
                let linked = match newest.get(&slot) {
                    Some(&p) => e.prev == p,
                    None => {
                        e.prev >= 0
                            && e.prev < trusted
                            && (e.prev == 0 || f.entry(e.prev as u32).is_some_and(|p| f.slot_of(p.key_hash) == slot))
                    }
                };
                let ok = e.key_hash >= 0
                    && e.phy_offset >= last_phy
                    && linked
                    && check(e.phy_offset, e.key_hash, &mut hashes);
                if !ok {
                    damaged = true;
                    break;
                }
                newest.insert(slot, n);
                last_phy = e.phy_offset;
                n += 1;
            }
            let stale_after = n < cap && f.entry(n as u32).is_some_and(|e| !e.is_zero());
            let newest: Vec<(u32, i32)> = newest.into_iter().collect();
            let needs_cut = stale_after || n != header.index_count || !f.slots_consistent(n, &newest);
            kept.push((i, n, needs_cut));
            if damaged {
                break;
            }
        }
        // Past the mark, the last message's entries may be partial: drop them and index it again.
        let mut covered = mark.covered;
        if let Some(&mut (i, ref mut n, ref mut needs_cut)) = kept.last_mut() {
            let f = &files[i];
            let at_mark = !damaged && f.name() == mark.file && *n as u64 == mark.count.max(1);
            if at_mark && !trust_headers && *n > 1 {
                // The mark's covered offset was read before its count: the entries counted may
                // reach past it. A message's entries are added whole, so the last entry's record
                // is fully indexed; starting past it keeps replay from adding them twice.
                if let Some(last) = f.entry((*n - 1) as u32) {
                    covered = covered.max(last.phy_offset.max(0) as u64 + 1);
                }
            }
            if !at_mark || trust_headers {
                covered = 0;
                if *n > 1
                    && let Some(last) = f.entry((*n - 1) as u32)
                {
                    let phy = last.phy_offset;
                    if trust_headers && !damaged {
                        covered = phy as u64 + 1;
                    } else {
                        while *n > 1 && f.entry((*n - 1) as u32).is_some_and(|e| e.phy_offset == phy) {
                            *n -= 1;
                            *needs_cut = true;
                        }
                        covered = phy.max(0) as u64;
                    }
                } else if i > 0 {
                    covered = files[i - 1].header().end_phy_offset.max(0) as u64 + 1;
                }
            }
        }
        if damaged {
            tracing::warn!(
                file = %kept.last().map_or(String::new(), |k| files[k.0].path().display().to_string()),
                "index entries past the durable mark did not check out against the log: cut and rebuilt"
            );
        }
        let keep_files = kept.len();
        for &(i, n, needs_cut) in &kept {
            if !needs_cut {
                continue;
            }
            let f = &files[i];
            let mut zero_to = n;
            while zero_to < f.layout().entries as i32 && f.entry(zero_to as u32).is_some_and(|e| !e.is_zero()) {
                zero_to += 1;
            }
            report.entries_cut += (zero_to - n).max(0) as u64;
            let mut stamp = |n: i32| -> (i64, i64) {
                match f.entry(n as u32) {
                    Some(e) if n > 0 => {
                        let ts = if e.phy_offset >= 0 {
                            record(e.phy_offset as u64, &mut hashes)
                        } else {
                            None
                        };
                        (ts.unwrap_or(0), e.phy_offset)
                    }
                    _ => (0, 0),
                }
            };
            let begin = if n > 1 { stamp(1) } else { (0, 0) };
            let end = if n > 1 { stamp(n - 1) } else { (0, 0) };
            f.cut(n, zero_to, begin, end).at(f.path())?;
            report.slots_rebuilt = true;
        }
        if keep_files < files.len() {
            let mut list = self.files.write();
            for f in &files[keep_files..] {
                let path = f.path().to_path_buf();
                list.retain(|x| x.path() != path);
                self.backend.remove(&path).at(&path)?;
                report.files_removed.push(path);
            }
        }
        if kept.is_empty() {
            // No file kept: nothing was indexed yet, or the files were deleted or unusable
            // (rebuild them all).
            covered = if mark.file == 0 && self.removed_at_open.is_empty() {
                mark.covered
            } else {
                0
            };
        }
        report.covered = covered;
        self.covered.store(covered, Ordering::Release);
        Ok(report)
    }
}
