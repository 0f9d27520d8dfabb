//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use mqstore::{GetStatus, MessageStore, StoreConfig, StoredMessage};

/// A small-segment configuration, so tests cross segment boundaries often.
pub fn small_config(dir: &Path) -> StoreConfig {
    StoreConfig::new(dir)
        .commit_log_segment_size(64 * 1024)
        .consume_queue_units_per_segment(64)
}

/// Reads every message of a queue from its min offset, paging with `next_offset`.
pub fn read_queue(store: &MessageStore, topic: &str, queue_id: u32) -> Vec<StoredMessage> {
    assert!(store.wait_dispatched(Duration::from_secs(10)), "dispatch stalled");
    let mut out = Vec::new();
    let mut offset = store.min_offset(topic, queue_id);
    loop {
        let g = store.get(topic, queue_id, offset, 32).expect("get");
        match g.status {
            GetStatus::Found => {
                assert!(g.next_offset > offset, "next_offset must advance");
                out.extend(g.messages);
                offset = g.next_offset;
            }
            GetStatus::OffsetOverflowOne | GetStatus::NoMessageInQueue => return out,
            other => panic!("unexpected status {other:?} at offset {offset}"),
        }
    }
}

/// A deterministic body for message `i` of length `len`.
pub fn body(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i.wrapping_mul(131) as usize + j * 7) as u8).collect()
}

// ---------------------------------------------------------------------------------------------
// Crash and corruption helpers (tests/crash_process.rs, tests/recovery_corruption.rs).
// ---------------------------------------------------------------------------------------------

/// A small deterministic PRNG (splitmix64): no dependency, replayable from a printed seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let x = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&x[..chunk.len()]);
        }
    }
}

/// Mixes several numbers into one seed (splitmix64 finalizer over a running value).
pub fn mix_seed(parts: &[u64]) -> u64 {
    let mut r = Rng::new(0x5EED_0FC0_FFEE);
    let mut acc = 0u64;
    for &p in parts {
        r = Rng::new(r.next_u64() ^ p);
        acc = r.next_u64();
    }
    acc
}

/// FNV-1a, 64 bits: the body hash the crash child reports.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = 0xCBF2_9CE4_8422_2325u64;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// A seed from the environment variable `var` (decimal or 0x-hex), else from the clock.
pub fn seed_from_env(var: &str) -> u64 {
    if let Ok(s) = std::env::var(var) {
        let s = s.trim();
        let parsed = match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => s.parse(),
        };
        return parsed.unwrap_or_else(|_| panic!("{var}={s:?} is not a u64"));
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    mix_seed(&[nanos, std::process::id() as u64])
}

/// A count from the environment variable `var`, else `default`.
pub fn count_from_env(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}={s:?} is not a count")),
        Err(_) => default,
    }
}

/// The 20-digit files of a segment directory (commit log or one consume queue) as
/// `(start offset, path, length)`, sorted by start; other names are left out.
pub fn segment_files(dir: &Path) -> Vec<(u64, std::path::PathBuf, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.len() != 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let len = e.metadata().ok()?.len();
            Some((name.parse::<u64>().ok()?, e.path(), len))
        })
        .collect();
    out.sort();
    out
}

/// The commit-log segment files of the store in `store_dir`.
pub fn commit_log_files(store_dir: &Path) -> Vec<(u64, std::path::PathBuf, u64)> {
    segment_files(&store_dir.join("commitlog"))
}

/// Every consume-queue directory of the store in `store_dir`: `(topic, queue id, dir)`, sorted.
pub fn consume_queue_dirs(store_dir: &Path) -> Vec<(String, u32, std::path::PathBuf)> {
    let mut out = Vec::new();
    let Ok(topics) = std::fs::read_dir(store_dir.join("consumequeue")) else {
        return out;
    };
    for t in topics.filter_map(|e| e.ok()) {
        let topic = t.file_name().to_string_lossy().into_owned();
        let Ok(queues) = std::fs::read_dir(t.path()) else {
            continue;
        };
        for q in queues.filter_map(|e| e.ok()) {
            if let Ok(id) = q.file_name().to_string_lossy().parse::<u32>() {
                out.push((topic.clone(), id, q.path()));
            }
        }
    }
    out.sort();
    out
}

/// The 20-digit name of a segment starting at `start`.
pub fn segment_file_name(start: u64) -> String {
    format!("{start:020}")
}

fn open_rw(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// Overwrites bytes of `path` at `pos` (the file keeps its length unless written past it).
pub fn write_at(path: &Path, pos: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = open_rw(path);
    f.seek(SeekFrom::Start(pos)).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
}

/// Reads `len` bytes of `path` at `pos`.
pub fn read_at(path: &Path, pos: u64, len: usize) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = open_rw(path);
    f.seek(SeekFrom::Start(pos)).unwrap();
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).unwrap();
    buf
}

/// Flips bit `bit` (0..8) of the byte at `pos` of `path`.
pub fn flip_bit(path: &Path, pos: u64, bit: u8) {
    let b = read_at(path, pos, 1)[0];
    write_at(path, pos, &[b ^ (1 << bit)]);
}

/// Writes zeros over `from..to` of `path`.
pub fn zero_range(path: &Path, from: u64, to: u64) {
    if to > from {
        write_at(path, from, &vec![0u8; (to - from) as usize]);
    }
}

/// Writes random bytes over `from..to` of `path`.
pub fn garble_range(path: &Path, from: u64, to: u64, rng: &mut Rng) {
    if to > from {
        let mut buf = vec![0u8; (to - from) as usize];
        rng.fill(&mut buf);
        write_at(path, from, &buf);
    }
}

/// Cuts `path` at `from` and extends it back to its length: the tail reads as zeros (a hole).
pub fn punch_to_zeros(path: &Path, from: u64) {
    let f = open_rw(path);
    let len = f.metadata().unwrap().len();
    if from < len {
        f.set_len(from).unwrap();
        f.set_len(len).unwrap();
        f.sync_all().unwrap();
    }
}

/// Copies a directory tree (regular files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

static LIBRARY_PANICS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Installs (once) a panic hook that records panics of the library's own threads (named
/// `mqstore-*`), which would otherwise die unnoticed; the previous hook still runs.
pub fn watch_library_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("");
            if name.starts_with("mqstore") {
                LIBRARY_PANICS
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("thread {name}: {info}"));
            }
            previous(info);
        }));
    });
}

/// Panics of library threads recorded so far (by any test of this binary).
pub fn library_panics() -> Vec<String> {
    LIBRARY_PANICS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}
