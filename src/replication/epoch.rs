//! The epoch history: which master wrote which part of the log (RocketMQ's
//! `epochFileCheckpoint`, same layout).
//!
//! Every time a store becomes master it starts an epoch at its end of log; a slave takes over
//! its master's epochs as their bytes arrive. Two logs agree up to the end of the last epoch
//! they both have with the same start (see [`consistent_point`]); past it, one of them holds
//! records the other's master never wrote.
//!
//! The file is plain text, in the store's directory, with a `.bak` copy:
//!
//! ```text
//! <number of entries>
//! <CRC32 of the entry lines, masked with 0x7FFFFFFF, decimal>
//! <epoch>-<start offset>        one line per entry, oldest first
//! ```
//!
//! Each copy is written aside, synced and renamed over the old one, the main file first: a
//! crash leaves at least one copy whole, holding the old or the new history.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::files::sync_dir;

/// File name.
pub const EPOCH_FILE: &str = "epochFileCheckpoint";
/// Its copy.
pub const EPOCH_FILE_BAK: &str = "epochFileCheckpoint.bak";

/// One epoch: its number and where it starts in the commit log. It ends where the next starts
/// (the last is open-ended).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EpochEntry {
    /// The epoch number; strictly increasing along the history.
    pub epoch: u32,
    /// First commit-log offset written in this epoch.
    pub start_offset: u64,
}

/// A store's epoch history, persisted in its directory.
#[derive(Debug)]
pub struct EpochHistory {
    dir: PathBuf,
    entries: Vec<EpochEntry>,
}

/// The CRC RocketMQ writes: CRC32 of the entry lines, masked positive.
fn lines_crc(lines: &str) -> u32 {
    crc32fast::hash(lines.as_bytes()) & 0x7FFF_FFFF
}

fn entry_lines(entries: &[EpochEntry]) -> String {
    let mut s = String::new();
    for e in entries {
        s.push_str(&format!("{}-{}\n", e.epoch, e.start_offset));
    }
    s
}

/// The file's text for `entries`.
pub fn render(entries: &[EpochEntry]) -> String {
    let lines = entry_lines(entries);
    format!("{}\n{}\n{}", entries.len(), lines_crc(&lines), lines)
}

/// Parses a file's text; the reason when it is not a valid history.
pub fn parse(text: &str) -> std::result::Result<Vec<EpochEntry>, String> {
    let mut parts = text.splitn(3, '\n');
    let count = parts.next().unwrap_or("");
    let crc = parts.next().ok_or("no CRC line")?;
    let lines = parts.next().ok_or("no newline after the CRC")?;
    let count: usize = count.trim().parse().map_err(|_| format!("bad entry count {count:?}"))?;
    let crc: u32 = crc.trim().parse().map_err(|_| format!("bad CRC {crc:?}"))?;
    if lines_crc(lines) != crc {
        return Err(format!("CRC {crc} does not match the entries ({})", lines_crc(lines)));
    }
    if !lines.is_empty() && !lines.ends_with('\n') {
        return Err("the last entry has no newline".into());
    }
    let mut entries = Vec::new();
    for line in lines.lines() {
        let (epoch, start) = line.split_once('-').ok_or_else(|| format!("bad entry {line:?}"))?;
        let epoch: u32 = epoch.parse().map_err(|_| format!("bad epoch in {line:?}"))?;
        let start_offset: u64 = start.parse().map_err(|_| format!("bad start offset in {line:?}"))?;
        entries.push(EpochEntry { epoch, start_offset });
    }
    if entries.len() != count {
        return Err(format!("{} entries, the header says {count}", entries.len()));
    }
    if entries
        .windows(2)
        .any(|w| w[1].epoch <= w[0].epoch || w[1].start_offset < w[0].start_offset)
    {
        return Err("entries are not in increasing order".into());
    }
    Ok(entries)
}

fn read(path: &Path) -> Result<Option<std::result::Result<Vec<EpochEntry>, String>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(match String::from_utf8(bytes) {
            Ok(text) => parse(&text),
            Err(_) => Err("not UTF-8 text".into()),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

impl EpochHistory {
    /// Loads the history of the store in `dir`: the main file, or its copy when the main file is
    /// missing or damaged; empty when neither exists. Both present and damaged is an error.
    pub fn load(dir: &Path) -> Result<Self> {
        let main = dir.join(EPOCH_FILE);
        let bak = dir.join(EPOCH_FILE_BAK);
        let entries = match (read(&main)?, read(&bak)?) {
            (Some(Ok(entries)), _) => entries,
            (main_state, Some(Ok(entries))) => {
                if let Some(Err(reason)) = main_state {
                    tracing::warn!(path = %main.display(), %reason, "epoch file damaged: using its copy");
                }
                entries
            }
            (None, None) => Vec::new(),
            (Some(Err(reason)), _) | (None, Some(Err(reason))) => {
                return Err(Error::layout(
                    main,
                    format!("epoch file and its copy are damaged: {reason}"),
                ));
            }
        };
        Ok(EpochHistory {
            dir: dir.to_path_buf(),
            entries,
        })
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest entry.
    pub fn last(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Appends an epoch and persists the history. Its number must exceed the last one's and its
    /// start may not precede it; an epoch starting where the last one does replaces it (the
    /// last one wrote nothing).
    pub fn append(&mut self, entry: EpochEntry) -> Result<()> {
        if let Some(last) = self.last() {
            if entry.epoch <= last.epoch || entry.start_offset < last.start_offset {
                return Err(Error::InvalidConfig(format!(
                    "epoch {} at {} cannot follow epoch {} at {}",
                    entry.epoch, entry.start_offset, last.epoch, last.start_offset
                )));
            }
            if entry.start_offset == last.start_offset {
                self.entries.pop();
            }
        }
        self.entries.push(entry);
        self.persist()
    }

    /// Drops every epoch that starts at or after `offset` (the log was cut there) and persists
    /// the history if it changed.
    pub fn truncate_from(&mut self, offset: u64) -> Result<()> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// The epoch whose range holds `offset`, and where the next one starts (`None` for the
    /// last, open-ended one).
    pub fn epoch_at(&self, offset: u64) -> Option<(EpochEntry, Option<u64>)> {
        let i = self.entries.iter().rposition(|e| e.start_offset <= offset)?;
        Some((self.entries[i], self.entries.get(i + 1).map(|e| e.start_offset)))
    }

    fn persist(&self) -> Result<()> {
        let text = render(&self.entries);
        for name in [EPOCH_FILE, EPOCH_FILE_BAK] {
            let path = self.dir.join(name);
            let aside = self.dir.join(format!("{name}.tmp"));
            let mut f = File::create(&aside).at(&aside)?;
            f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).at(&aside)?;
            fs::rename(&aside, &path).at(&path)?;
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// Where two logs agree: the highest epoch present in both histories with the same start; it
/// ends on each side where that side's next epoch starts, or at that side's end of log for its
/// last epoch, and the logs agree up to the smaller end. `None` when no epoch is shared (two
/// empty histories agree only if both logs are empty).
pub fn consistent_point(local: &[EpochEntry], local_end: u64, remote: &[EpochEntry], remote_end: u64) -> Option<u64> {
    if local.is_empty() && remote.is_empty() {
        return (local_end == 0 && remote_end == 0).then_some(0);
    }
    for (i, l) in local.iter().enumerate().rev() {
        if let Some(j) = remote.iter().position(|r| r == l) {
            let local_stop = local.get(i + 1).map_or(local_end, |e| e.start_offset).min(local_end);
            let remote_stop = remote.get(j + 1).map_or(remote_end, |e| e.start_offset).min(remote_end);
            return Some(local_stop.min(remote_stop));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn e(epoch: u32, start_offset: u64) -> EpochEntry {
        EpochEntry { epoch, start_offset }
    }

    #[test]
    fn the_file_has_rocketmqs_layout() {
        let lines = "1-0\n2-4096\n";
        let expected = format!("2\n{}\n{lines}", crc32fast::hash(lines.as_bytes()) & 0x7FFF_FFFF);
        assert_eq!(render(&[e(1, 0), e(2, 4096)]), expected);
        assert_eq!(parse(&expected).unwrap(), vec![e(1, 0), e(2, 4096)]);
        assert_eq!(parse(&render(&[])).unwrap(), vec![]);
    }

    #[test]
    fn history_round_trips_and_falls_back_to_its_copy() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = EpochHistory::load(dir.path()).unwrap();
        assert!(h.entries().is_empty());
        h.append(e(1, 0)).unwrap();
        h.append(e(3, 500)).unwrap();
        assert_eq!(EpochHistory::load(dir.path()).unwrap().entries(), &[e(1, 0), e(3, 500)]);
        // A damaged main file: the copy serves.
        fs::write(dir.path().join(EPOCH_FILE), "2\n123\n1-0\n3-501\n").unwrap();
        assert_eq!(EpochHistory::load(dir.path()).unwrap().entries(), &[e(1, 0), e(3, 500)]);
        fs::remove_file(dir.path().join(EPOCH_FILE)).unwrap();
        assert_eq!(EpochHistory::load(dir.path()).unwrap().entries(), &[e(1, 0), e(3, 500)]);
        // Both damaged: an error naming the file.
        fs::write(dir.path().join(EPOCH_FILE), "garbage").unwrap();
        fs::write(dir.path().join(EPOCH_FILE_BAK), "more garbage").unwrap();
        assert!(matches!(EpochHistory::load(dir.path()), Err(Error::Layout { .. })));
    }

    #[test]
    fn garbage_never_parses_and_never_panics() {
        let good = render(&[e(1, 0), e(2, 10)]);
        let crc = |s: &str| lines_crc(s);
        let cases = [
            String::new(),
            "\n".into(),
            "x\n0\n".into(),
            "1\n0\n".into(),
            "0\n1\n".into(),
            format!("1\n{}\n1-0", crc("1-0")),
            format!("1\n{}\n-1-0\n", crc("-1-0\n")),
            format!("1\n{}\n99999999999-0\n", crc("99999999999-0\n")),
            format!("1\n{}\n1-99999999999999999999999\n", crc("1-99999999999999999999999\n")),
            format!("2\n{}\n2-0\n1-5\n", crc("2-0\n1-5\n")),
            format!("2\n{}\n1-9\n2-5\n", crc("1-9\n2-5\n")),
            format!("3\n{}\n1-0\n2-10\n", crc("1-0\n2-10\n")),
            good.replace("2-10", "2-11"),
        ];
        for c in cases {
            assert!(parse(&c).is_err(), "{c:?}");
        }
    }

    #[test]
    fn append_and_truncate_keep_the_rules() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = EpochHistory::load(dir.path()).unwrap();
        h.append(e(2, 100)).unwrap();
        assert!(h.append(e(2, 200)).is_err(), "same epoch");
        assert!(h.append(e(3, 50)).is_err(), "start going back");
        // An epoch that wrote nothing is replaced.
        h.append(e(3, 100)).unwrap();
        assert_eq!(h.entries(), &[e(3, 100)]);
        h.append(e(5, 300)).unwrap();
        assert_eq!(h.epoch_at(99), None);
        assert_eq!(h.epoch_at(100), Some((e(3, 100), Some(300))));
        assert_eq!(h.epoch_at(1000), Some((e(5, 300), None)));
        h.truncate_from(300).unwrap();
        assert_eq!(h.entries(), &[e(3, 100)]);
        assert_eq!(EpochHistory::load(dir.path()).unwrap().entries(), &[e(3, 100)]);
    }

    #[test]
    fn consistent_points() {
        let ab = [e(1, 0), e(2, 700)];
        // Identical histories: the shorter log.
        assert_eq!(consistent_point(&ab, 900, &ab, 1200), Some(900));
        // The failover: our epoch 1 went on past where the new master's epoch 2 began.
        assert_eq!(consistent_point(&[e(1, 0)], 900, &ab, 1200), Some(700));
        // Behind in the same epoch: all of ours.
        assert_eq!(consistent_point(&[e(1, 0)], 300, &ab, 1200), Some(300));
        // Nothing shared.
        assert_eq!(consistent_point(&[e(4, 0)], 300, &ab, 1200), None);
        // The same number with another start is not the same epoch; a lower shared one counts.
        assert_eq!(consistent_point(&[e(1, 0), e(2, 650)], 900, &ab, 1200), Some(650));
        assert_eq!(consistent_point(&[e(2, 650)], 900, &ab, 1200), None);
        assert_eq!(consistent_point(&[], 0, &[], 0), Some(0));
        assert_eq!(consistent_point(&[], 10, &[], 0), None);
    }

    proptest! {
        #[test]
        fn the_point_never_passes_either_end(
            local in proptest::collection::vec((0u32..6, 0u64..1000), 0..5),
            remote in proptest::collection::vec((0u32..6, 0u64..1000), 0..5),
            local_end in 0u64..1200, remote_end in 0u64..1200,
        ) {
            let sorted = |v: Vec<(u32, u64)>| {
                let mut v: Vec<EpochEntry> = v.into_iter().map(|(a, b)| e(a, b)).collect();
                v.sort_by_key(|x| (x.epoch, x.start_offset));
                v.dedup_by_key(|x| x.epoch);
                v
            };
            let (l, r) = (sorted(local), sorted(remote));
            if let Some(p) = consistent_point(&l, local_end, &r, remote_end) {
                prop_assert!(p <= local_end && p <= remote_end);
            }
        }

        #[test]
        fn parse_never_panics(text in ".{0,80}") {
            let _ = parse(&text);
        }
    }
}
