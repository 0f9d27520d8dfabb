//! One index file, in RocketMQ's IndexFile layout: a 40-byte header, a table of hash slots
//! (each the number of the newest entry of its bucket), then 20-byte entries chained newest to
//! oldest through their `prev` field. Entry 0 is never used, so 0 means "none".
//!
//! All integers are big-endian. The header is written back when the file is flushed; the
//! writer keeps the live one beside the bytes, under the same lock.

use std::io;
use std::path::{Path, PathBuf};

use crate::segment::{Region, RegionWrite, Storage};

/// Header bytes.
pub const HEADER_LEN: u64 = 40;
/// Bytes of one hash slot.
pub const SLOT_LEN: u64 = 4;
/// Bytes of one entry.
pub const ENTRY_LEN: u64 = 20;

/// The header's fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Store time of the first entry's record (ms).
    pub begin_timestamp: i64,
    /// Store time of the last entry's record (ms).
    pub end_timestamp: i64,
    /// Commit-log offset of the first entry's record.
    pub begin_phy_offset: i64,
    /// Commit-log offset of the last entry's record.
    pub end_phy_offset: i64,
    /// Slots in use.
    pub hash_slot_count: i32,
    /// Number of the next entry (starts at 1).
    pub index_count: i32,
}

impl Header {
    /// Reads a header from the first 40 bytes of `b` (missing bytes read as zero).
    pub fn decode(b: &[u8]) -> Header {
        let i64_at = |at: usize| {
            b.get(at..at + 8)
                .map_or(0, |s| i64::from_be_bytes(s.try_into().unwrap_or([0; 8])))
        };
        let i32_at = |at: usize| {
            b.get(at..at + 4)
                .map_or(0, |s| i32::from_be_bytes(s.try_into().unwrap_or([0; 4])))
        };
        Header {
            begin_timestamp: i64_at(0),
            end_timestamp: i64_at(8),
            begin_phy_offset: i64_at(16),
            end_phy_offset: i64_at(24),
            hash_slot_count: i32_at(32),
            index_count: i32_at(36),
        }
    }

    fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut b = [0u8; HEADER_LEN as usize];
        b[0..8].copy_from_slice(&self.begin_timestamp.to_be_bytes());
        b[8..16].copy_from_slice(&self.end_timestamp.to_be_bytes());
        b[16..24].copy_from_slice(&self.begin_phy_offset.to_be_bytes());
        b[24..32].copy_from_slice(&self.end_phy_offset.to_be_bytes());
        b[32..36].copy_from_slice(&self.hash_slot_count.to_be_bytes());
        b[36..40].copy_from_slice(&self.index_count.to_be_bytes());
        b
    }
}

/// One entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexEntry {
    /// `abs(javaHash("topic#key"))`.
    pub key_hash: i32,
    /// Commit-log offset of the record.
    pub phy_offset: i64,
    /// Seconds from the header's begin timestamp.
    pub time_diff: i32,
    /// The previous entry of the bucket (0: none).
    pub prev: i32,
}

impl IndexEntry {
    /// Reads an entry from the first 20 bytes of `b`.
    ///
    /// # Panics
    /// If `b` is shorter than 20 bytes.
    pub fn decode(b: &[u8]) -> IndexEntry {
        let mut a4 = [0u8; 4];
        let mut a8 = [0u8; 8];
        a4.copy_from_slice(&b[0..4]);
        let key_hash = i32::from_be_bytes(a4);
        a8.copy_from_slice(&b[4..12]);
        let phy_offset = i64::from_be_bytes(a8);
        a4.copy_from_slice(&b[12..16]);
        let time_diff = i32::from_be_bytes(a4);
        a4.copy_from_slice(&b[16..20]);
        let prev = i32::from_be_bytes(a4);
        IndexEntry {
            key_hash,
            phy_offset,
            time_diff,
            prev,
        }
    }

    fn encode(&self) -> [u8; ENTRY_LEN as usize] {
        let mut b = [0u8; ENTRY_LEN as usize];
        b[0..4].copy_from_slice(&self.key_hash.to_be_bytes());
        b[4..12].copy_from_slice(&self.phy_offset.to_be_bytes());
        b[12..16].copy_from_slice(&self.time_diff.to_be_bytes());
        b[16..20].copy_from_slice(&self.prev.to_be_bytes());
        b
    }

    /// Whether the entry was never written (the file is zero-filled).
    pub fn is_zero(&self) -> bool {
        *self == IndexEntry::default()
    }
}

/// The shape of an index file: slots and entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Hash slots (RocketMQ's `maxHashSlotNum`).
    pub slots: u32,
    /// Entries, entry 0 included (RocketMQ's `maxIndexNum`).
    pub entries: u32,
}

impl Layout {
    /// Bytes of a file of this shape.
    pub fn file_size(&self) -> u64 {
        HEADER_LEN + self.slots as u64 * SLOT_LEN + self.entries as u64 * ENTRY_LEN
    }

    /// The shape of a file of `len` bytes: `preferred` if it fits, else the shape with four
    /// entries per slot (RocketMQ's defaults and most deployments keep that ratio).
    pub fn infer(len: u64, preferred: Layout) -> Option<Layout> {
        if preferred.file_size() == len {
            return Some(preferred);
        }
        if len > HEADER_LEN && (len - HEADER_LEN).is_multiple_of(SLOT_LEN + 4 * ENTRY_LEN) {
            let slots = u32::try_from((len - HEADER_LEN) / (SLOT_LEN + 4 * ENTRY_LEN)).ok()?;
            let entries = slots.checked_mul(4)?;
            if slots > 0 && entries < i32::MAX as u32 {
                return Some(Layout { slots, entries });
            }
        }
        None
    }

    /// Byte position of slot `slot`.
    pub fn slot_pos(&self, slot: u32) -> u64 {
        HEADER_LEN + slot as u64 * SLOT_LEN
    }

    /// Byte position of entry `n`.
    pub fn entry_pos(&self, n: u32) -> u64 {
        HEADER_LEN + self.slots as u64 * SLOT_LEN + n as u64 * ENTRY_LEN
    }

    /// The slot a key hash lands in.
    pub fn slot_of(&self, hash: i32) -> u32 {
        (hash.unsigned_abs()) % self.slots
    }
}

/// What the writer keeps beside the bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Live {
    /// The header as it is now.
    pub header: Header,
    /// Entries below this number are durable.
    pub flushed_count: i32,
}

/// One open index file.
pub struct IndexFile<S: Storage> {
    name: u64,
    path: PathBuf,
    layout: Layout,
    region: Region<S, Live>,
}

/// Formats a creation time in milliseconds since the epoch as RocketMQ's file name,
/// `yyyyMMddHHmmssSSS` (UTC here; RocketMQ uses the broker's local time zone).
pub fn file_name_for(ms: u64) -> u64 {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let date = y as u64 * 10_000 + m as u64 * 100 + d as u64;
    ((date * 100 + hh) * 100 + mm) * 100_000 + ss * 1000 + ms % 1000
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Eras of 400 years (146,097 days) start on March 1st, which puts the leap day last.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Formats a file name number as its 17 digits.
pub fn format_name(name: u64) -> String {
    format!("{name:017}")
}

/// Parses a 17-digit index file name.
pub fn parse_name(name: &str) -> Option<u64> {
    crate::files::parse_digits(name, 17)
}

/// Walks `hash`'s chain in the bytes of a whole index file of shape `layout` (for tools that
/// read files without opening the store): the commit-log offsets of its entries with that hash,
/// newest first. Stops at the first link that does not go back.
pub fn chain_in(bytes: &[u8], layout: Layout, hash: i32) -> Vec<u64> {
    let count = bytes.get(36..40).map_or(0, read_i32);
    let mut out = Vec::new();
    let slot_at = layout.slot_pos(layout.slot_of(hash)) as usize;
    let mut n = bytes.get(slot_at..slot_at + 4).map_or(0, read_i32);
    while n > 0 && n < count {
        let at = layout.entry_pos(n as u32) as usize;
        let Some(e) = bytes.get(at..at + ENTRY_LEN as usize).map(IndexEntry::decode) else {
            break;
        };
        if e.key_hash == hash && e.phy_offset >= 0 {
            out.push(e.phy_offset as u64);
        }
        if e.prev >= n {
            break;
        }
        n = e.prev;
    }
    out
}

fn read_i32(w: &[u8]) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&w[..4]);
    i32::from_be_bytes(a)
}

impl<S: Storage> IndexFile<S> {
    /// A freshly created (zeroed) file.
    pub fn create(storage: S, name: u64, path: PathBuf, layout: Layout) -> Self {
        let live = Live {
            header: Header {
                index_count: 1,
                ..Header::default()
            },
            flushed_count: 1,
        };
        IndexFile {
            name,
            path,
            layout,
            region: Region::new(storage, live),
        }
    }

    /// An existing file, with the header it holds (not trusted: recovery checks it).
    pub fn open(storage: S, name: u64, path: PathBuf, layout: Layout) -> Self {
        let region = Region::new(storage, Live::default());
        {
            let mut w = region.write();
            let header = w.get(0, HEADER_LEN as usize).map(Header::decode).unwrap_or_default();
            let count = header.index_count.clamp(1, layout.entries as i32);
            *w.state() = Live {
                header: Header {
                    index_count: count,
                    ..header
                },
                flushed_count: count,
            };
        }
        IndexFile {
            name,
            path,
            layout,
            region,
        }
    }

    /// The file's name as a number.
    pub fn name(&self) -> u64 {
        self.name
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its shape.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The live header.
    pub fn header(&self) -> Header {
        self.region.read().state().header
    }

    /// Whether no entry fits any more.
    pub fn is_full(&self) -> bool {
        self.header().index_count as u64 >= self.layout.entries as u64
    }

    /// Entries one message may add at most to an empty file.
    pub fn max_per_message(&self) -> usize {
        self.layout.entries.saturating_sub(1) as usize
    }

    /// Adds one entry per hash for the record at `phy_offset` stored at `timestamp` (ms), all
    /// or none: `false` if they do not all fit.
    pub fn add(&self, phy_offset: u64, timestamp: i64, hashes: &[i32]) -> bool {
        let mut w = self.region.write();
        let header = w.state().header;
        if header.index_count as u64 + hashes.len() as u64 > self.layout.entries as u64 {
            return false;
        }
        let mut header = header;
        if header.index_count <= 1 {
            header.begin_timestamp = timestamp;
            header.begin_phy_offset = phy_offset as i64;
        }
        let diff = ((timestamp - header.begin_timestamp) / 1000).clamp(0, i32::MAX as i64) as i32;
        for &hash in hashes {
            let n = header.index_count;
            let slot = self.layout.slot_of(hash);
            let slot_pos = self.layout.slot_pos(slot);
            let old = w.get(slot_pos, 4).map_or(0, read_i32);
            let prev = if old > 0 && old < n { old } else { 0 };
            let entry = IndexEntry {
                key_hash: hash,
                phy_offset: phy_offset as i64,
                time_diff: diff,
                prev,
            };
            w.put(self.layout.entry_pos(n as u32), &entry.encode());
            w.put(slot_pos, &n.to_be_bytes());
            if prev == 0 {
                header.hash_slot_count += 1;
            }
            header.index_count = n + 1;
        }
        header.end_phy_offset = phy_offset as i64;
        header.end_timestamp = timestamp;
        w.state().header = header;
        true
    }

    /// Whether this file may hold entries stored in `begin..=end` (ms).
    pub fn overlaps(&self, begin: u64, end: u64) -> bool {
        let h = self.header();
        if h.index_count <= 1 {
            return false;
        }
        let (b, e) = (h.begin_timestamp.max(0) as u64, h.end_timestamp.max(0) as u64 + 1000);
        b <= end && begin <= e
    }

    /// Walks the chain of `hash`'s bucket from `resume` (or from its slot), pushing the offsets
    /// of entries with that hash whose time may lie in `begin..=end` (entries keep seconds: the
    /// caller confirms on the record). Stops after `limit` offsets: returns where to resume,
    /// `None` at the end of the chain.
    pub fn candidates(
        &self,
        hash: i32,
        begin: u64,
        end: u64,
        resume: Option<i32>,
        limit: usize,
        out: &mut Vec<u64>,
    ) -> Option<i32> {
        let r = self.region.read();
        let header = r.state().header;
        let count = header.index_count;
        let mut n = match resume {
            Some(n) => n,
            None => r
                .get(self.layout.slot_pos(self.layout.slot_of(hash)), 4)
                .map_or(0, read_i32),
        };
        let mut found = 0;
        while n > 0 && n < count {
            let bytes = r.get(self.layout.entry_pos(n as u32), ENTRY_LEN as usize)?;
            let e = IndexEntry::decode(bytes);
            if e.key_hash == hash && e.phy_offset >= 0 {
                let t = header.begin_timestamp.max(0) as u64 + e.time_diff.max(0) as u64 * 1000;
                if t <= end && t + 1000 > begin {
                    out.push(e.phy_offset as u64);
                    found += 1;
                }
            }
            // Chains only go back; anything else is damage, and would loop.
            if e.prev >= n {
                return None;
            }
            n = e.prev;
            if found >= limit {
                return (n > 0).then_some(n);
            }
        }
        None
    }

    /// The first of entries `1..count` whose record starts at or past commit-log `offset`
    /// (`count` when none does): entries are in commit-log order.
    pub fn first_entry_from(&self, offset: u64, count: i32) -> i32 {
        let (mut lo, mut hi) = (1i32, count.max(1));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entry(mid as u32) {
                Some(e) if (e.phy_offset as u64) < offset => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo
    }

    /// Entry `n` (any number below the file's capacity).
    pub fn entry(&self, n: u32) -> Option<IndexEntry> {
        if n >= self.layout.entries {
            return None;
        }
        let r = self.region.read();
        r.get(self.layout.entry_pos(n), ENTRY_LEN as usize)
            .map(IndexEntry::decode)
    }

    /// The slot a hash lands in.
    pub fn slot_of(&self, hash: i32) -> u32 {
        self.layout.slot_of(hash)
    }

    /// Writes the header back and makes everything written so far durable; returns the number
    /// of entries now durable (the next entry's number).
    pub fn flush(&self) -> io::Result<i32> {
        // The header goes in under the write lock, the flush runs under the read lock.
        let (count, from) = {
            let mut w = self.region.write();
            let live = *w.state();
            w.put(0, &live.header.encode());
            (live.header.index_count, live.flushed_count)
        };
        {
            let r = self.region.read();
            if count > from {
                // Slots change anywhere in the table; entries only from where the last flush
                // ended.
                r.flush(0, HEADER_LEN + self.layout.slots as u64 * SLOT_LEN)?;
                let start = self.layout.entry_pos(from.max(0) as u32);
                let end = self.layout.entry_pos(count.max(0) as u32);
                r.flush(start, end - start)?;
            } else {
                r.flush(0, HEADER_LEN)?;
            }
        }
        let mut w = self.region.write();
        let live = w.state();
        live.flushed_count = live.flushed_count.max(count);
        Ok(count)
    }

    /// Cuts the file to `keep` entries (`1..=capacity`): zeroes the entries from `keep` up to
    /// `zero_to`, points every slot at the newest kept entry of its bucket (rebuilt from the
    /// kept entries, whose `prev` links are rewritten to match), recomputes the header from
    /// `begin`/`end` (timestamps and offsets of the first and last kept records), and makes it
    /// all durable.
    pub fn cut(&self, keep: i32, zero_to: i32, begin: (i64, i64), end: (i64, i64)) -> io::Result<()> {
        let keep = keep.clamp(1, self.layout.entries as i32);
        let zero_to = zero_to.clamp(keep, self.layout.entries as i32);
        let mut w = self.region.write();
        let zeros = [0u8; ENTRY_LEN as usize];
        for n in keep..zero_to {
            w.put(self.layout.entry_pos(n as u32), &zeros);
        }
        let slot_count = rebuild_slots(&mut w, self.layout, keep);
        let header = Header {
            begin_timestamp: if keep > 1 { begin.0 } else { 0 },
            begin_phy_offset: if keep > 1 { begin.1 } else { 0 },
            end_timestamp: if keep > 1 { end.0 } else { 0 },
            end_phy_offset: if keep > 1 { end.1 } else { 0 },
            hash_slot_count: slot_count,
            index_count: keep,
        };
        w.put(0, &header.encode());
        *w.state() = Live {
            header,
            flushed_count: keep,
        };
        w.flush(0, self.layout.file_size())
    }

    /// Whether every slot points below `count` and, for each `(slot, newest)` given, at that
    /// entry: the cheap check that a rebuild is not needed.
    pub fn slots_consistent(&self, count: i32, newest: &[(u32, i32)]) -> bool {
        let r = self.region.read();
        let Some(table) = r.get(HEADER_LEN, (self.layout.slots as u64 * SLOT_LEN) as usize) else {
            return false;
        };
        if !table.chunks_exact(4).all(|s| {
            let v = read_i32(s);
            (0..count).contains(&v)
        }) {
            return false;
        }
        newest.iter().all(|&(slot, n)| {
            let at = (slot as u64 * SLOT_LEN) as usize;
            table.get(at..at + 4).is_some_and(|s| read_i32(s) == n)
        })
    }
}

/// Points every slot at the newest of the first `keep` entries of its bucket and relinks their
/// `prev` fields to match; returns the slots in use.
fn rebuild_slots<S: Storage>(w: &mut RegionWrite<'_, S, Live>, layout: Layout, keep: i32) -> i32 {
    let zero = [0u8; 4096];
    let table_len = layout.slots as u64 * SLOT_LEN;
    let mut pos = 0;
    while pos < table_len {
        let n = (table_len - pos).min(zero.len() as u64) as usize;
        w.put(HEADER_LEN + pos, &zero[..n]);
        pos += n as u64;
    }
    let mut used = 0;
    for n in 1..keep {
        let at = layout.entry_pos(n as u32);
        let Some(bytes) = w.get(at, ENTRY_LEN as usize) else {
            break;
        };
        let mut e = IndexEntry::decode(bytes);
        let slot_pos = layout.slot_pos(layout.slot_of(e.key_hash));
        let old = w.get(slot_pos, 4).map_or(0, read_i32);
        if old == 0 {
            used += 1;
        }
        if e.prev != old {
            e.prev = old;
            w.put(at, &e.encode());
        }
        w.put(slot_pos, &n.to_be_bytes());
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::Backend;
    use crate::segment::sim::SimDisk;

    fn file(layout: Layout) -> IndexFile<crate::segment::sim::SimStorage> {
        let disk = SimDisk::new();
        let backend = disk.backend();
        let path = PathBuf::from("/i/00000000000000001");
        backend.create_dir_all(path.parent().unwrap()).unwrap();
        let storage = backend.create(&path, layout.file_size()).unwrap();
        IndexFile::create(storage, 1, path, layout)
    }

    #[test]
    fn names_are_rocketmq_timestamps() {
        // 2024-02-29 13:45:07.089 UTC
        assert_eq!(file_name_for(1_709_214_307_089), 20240229134507089);
        assert_eq!(file_name_for(0), 19700101000000000);
        // 2100-03-01 (2100 is not a leap year)
        assert_eq!(file_name_for(4_107_542_400_000), 21000301000000000);
        assert_eq!(format_name(19700101000000000), "19700101000000000");
        assert_eq!(parse_name("20240229134507089"), Some(20240229134507089));
        assert_eq!(parse_name("2024022913450708"), None);
        assert_eq!(parse_name("2024022913450708x"), None);
    }

    #[test]
    fn layout_inference() {
        let rocketmq = Layout {
            slots: 512,
            entries: 2048,
        };
        assert_eq!(rocketmq.file_size(), 43048);
        assert_eq!(Layout::infer(43048, Layout { slots: 7, entries: 9 }), Some(rocketmq));
        let odd = Layout { slots: 7, entries: 9 };
        assert_eq!(Layout::infer(odd.file_size(), odd), Some(odd));
        assert_eq!(Layout::infer(41, odd), None);
        assert_eq!(Layout::infer(0, odd), None);
    }

    #[test]
    fn chains_collide_and_stay_newest_first() {
        // Two slots: every third hash collides with another.
        let f = file(Layout { slots: 2, entries: 16 });
        assert!(f.add(100, 5_000, &[4, 6]));
        assert!(f.add(200, 6_500, &[4]));
        assert!(f.add(300, 9_000, &[7, 4]));
        let mut out = Vec::new();
        assert_eq!(f.candidates(4, 0, u64::MAX, None, 10, &mut out), None);
        assert_eq!(out, vec![300, 200, 100]);
        out.clear();
        f.candidates(6, 0, u64::MAX, None, 10, &mut out);
        assert_eq!(out, vec![100]);
        // Time filter (seconds resolution) and resumption.
        out.clear();
        f.candidates(4, 6_000, 7_000, None, 10, &mut out);
        assert_eq!(out, vec![200]);
        out.clear();
        let resume = f.candidates(4, 0, u64::MAX, None, 1, &mut out);
        assert_eq!(out, vec![300]);
        f.candidates(4, 0, u64::MAX, resume, 10, &mut out);
        assert_eq!(out, vec![300, 200, 100]);
        let h = f.header();
        assert_eq!((h.index_count, h.hash_slot_count), (6, 2));
        assert_eq!((h.begin_phy_offset, h.end_phy_offset), (100, 300));
        // Full: all or nothing.
        assert!(!f.add(400, 9_000, &[1; 11]));
        assert!(f.add(400, 9_000, &[1; 10]));
        assert!(f.is_full());
    }

    #[test]
    fn cut_relinks_the_kept_entries() {
        let f = file(Layout { slots: 3, entries: 32 });
        for i in 0..10u64 {
            assert!(f.add(i * 10, 1000 * i as i64, &[(i % 4) as i32]));
        }
        f.cut(6, 32, (0, 0), (5000, 50)).unwrap();
        let mut out = Vec::new();
        f.candidates(1, 0, u64::MAX, None, 100, &mut out);
        assert_eq!(out, vec![10]);
        out.clear();
        f.candidates(0, 0, u64::MAX, None, 100, &mut out);
        assert_eq!(out, vec![40, 0]);
        assert!(f.entry(6).unwrap().is_zero());
        assert!(f.slots_consistent(6, &[]));
        assert!(!f.slots_consistent(5, &[]));
        // Writing goes on after the cut.
        assert!(f.add(60, 6000, &[0]));
        out.clear();
        f.candidates(0, 0, u64::MAX, None, 100, &mut out);
        assert_eq!(out, vec![60, 40, 0]);
    }

    #[test]
    fn damaged_links_never_loop() {
        let f = file(Layout { slots: 1, entries: 8 });
        assert!(f.add(1, 0, &[5, 5, 5]));
        {
            let mut w = f.region.write();
            // Entry 2 points at itself.
            let e = IndexEntry {
                key_hash: 5,
                phy_offset: 1,
                time_diff: 0,
                prev: 3,
            };
            w.put(f.layout.entry_pos(2), &e.encode());
        }
        let mut out = Vec::new();
        assert_eq!(f.candidates(5, 0, u64::MAX, None, 100, &mut out), None);
        assert_eq!(out, vec![1, 1]);
    }
}
