//! A directory of segment files (the commit log's, or one consume queue's): what it holds and
//! what keeps it from being a queue of segments the store can open.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::segment::parse_segment_name;

/// One entry of a directory.
#[derive(Clone, Debug)]
pub struct DirEntry {
    /// The name (lossily decoded if it is not UTF-8).
    pub name: String,
    /// Whether the name is UTF-8.
    pub utf8: bool,
    /// The full path.
    pub path: PathBuf,
    /// A directory (following symlinks).
    pub is_dir: bool,
    /// A regular file (following symlinks).
    pub is_file: bool,
    /// Its length in bytes.
    pub len: u64,
}

/// The entries of `dir`, sorted by name; `None` if it does not exist (or is not a directory).
pub fn read_dir_sorted(dir: &Path) -> Result<Option<Vec<DirEntry>>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
            return Ok(None);
        }
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let md = match fs::metadata(&path) {
            Ok(md) => md,
            // A dangling symlink: listed, never read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::symlink_metadata(&path) {
                Ok(md) => md,
                Err(_) => continue,
            },
            Err(e) => return Err(Error::io(&path, e)),
        };
        let os_name = entry.file_name();
        out.push(DirEntry {
            utf8: os_name.to_str().is_some(),
            name: os_name.to_string_lossy().into_owned(),
            path,
            is_dir: md.is_dir(),
            is_file: md.is_file(),
            len: md.len(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Some(out))
}

/// A file named as a segment: its start offset and length.
#[derive(Clone, Debug)]
pub struct SegmentFile {
    /// Start offset, from the name.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// The file name.
    pub name: String,
    /// The full path.
    pub path: PathBuf,
}

/// An entry among segment files that is not a segment.
#[derive(Clone, Debug)]
pub enum Extra {
    /// A hidden name (`.x`): the store ignores it (and removes its own `.NAME.creating`).
    Hidden(DirEntry),
    /// A directory: the store ignores it.
    Directory(DirEntry),
    /// A file whose name is not a 20-digit start offset (or one past the largest log offset):
    /// `open` refuses the directory.
    Stray(DirEntry),
    /// A zero-length last segment (a creation a crash interrupted): `open` removes it.
    EmptyLast(SegmentFile),
}

/// Something that keeps the segment files from making one contiguous queue: `open` refuses
/// the directory for each (a consume queue is then rebuilt, the commit log needs `repair`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// `files[file]` is not `size` bytes long.
    WrongSize {
        /// Index into [`SegmentListing::files`].
        file: usize,
    },
    /// `files[file]` starts at an offset that is not a multiple of the segment size.
    Misaligned {
        /// Index into [`SegmentListing::files`].
        file: usize,
    },
    /// No file holds `from..to`, between two files that exist.
    Hole {
        /// First missing offset.
        from: u64,
        /// Start of the next file.
        to: u64,
    },
    /// `files[file]` starts before the previous file ends.
    Overlap {
        /// Index into [`SegmentListing::files`].
        file: usize,
        /// Where the previous file ends.
        previous_end: u64,
    },
}

/// What a directory of segment files holds.
#[derive(Clone, Debug, Default)]
pub struct SegmentListing {
    /// Files named as segments, by start offset (a zero-length last one left out, see
    /// [`Extra::EmptyLast`]).
    pub files: Vec<SegmentFile>,
    /// The segment size they should all have: the one given, else the length most files have.
    pub size: u64,
    /// Entries that are not segments.
    pub extras: Vec<Extra>,
    /// What keeps the files from being one queue of segments, in file order.
    pub problems: Vec<Problem>,
}

impl SegmentListing {
    /// Whether `open` would load these files as they are.
    pub fn is_openable(&self) -> bool {
        self.problems.is_empty() && !self.extras.iter().any(|e| matches!(e, Extra::Stray(_)))
    }
}

/// Lists and checks the segment files of `dir` (absent: empty). `size`: the segment size the
/// store records (`mqstore.meta`); without it, the length most files have.
pub fn list_segments(dir: &Path, size: Option<u64>) -> Result<SegmentListing> {
    let mut out = SegmentListing::default();
    for entry in read_dir_sorted(dir)?.unwrap_or_default() {
        if entry.name.starts_with('.') && entry.utf8 {
            out.extras.push(Extra::Hidden(entry));
            continue;
        }
        if entry.is_dir {
            out.extras.push(Extra::Directory(entry));
            continue;
        }
        let start = if entry.utf8 && entry.is_file {
            parse_segment_name(&entry.name).filter(|&s| s <= i64::MAX as u64)
        } else {
            None
        };
        match start {
            Some(start) => out.files.push(SegmentFile {
                start,
                len: entry.len,
                name: entry.name,
                path: entry.path,
            }),
            None => out.extras.push(Extra::Stray(entry)),
        }
    }
    out.files.sort_by_key(|f| f.start);
    if let Some(last) = out.files.pop_if(|f| f.len == 0) {
        out.extras.push(Extra::EmptyLast(last));
    }
    out.size = size.unwrap_or_else(|| most_common_len(&out.files));
    let mut expected: Option<u64> = None;
    for (i, file) in out.files.iter().enumerate() {
        if file.len != out.size {
            out.problems.push(Problem::WrongSize { file: i });
        }
        if out.size > 0 && !file.start.is_multiple_of(out.size) {
            out.problems.push(Problem::Misaligned { file: i });
        }
        match expected {
            Some(exp) if file.start > exp => out.problems.push(Problem::Hole {
                from: exp,
                to: file.start,
            }),
            Some(exp) if file.start < exp => out.problems.push(Problem::Overlap {
                file: i,
                previous_end: exp,
            }),
            _ => {}
        }
        expected = Some(file.start.saturating_add(out.size));
    }
    Ok(out)
}

/// The length most files have (the largest among ties: files are cut short, never grown); 0
/// without files.
pub fn most_common_len(files: &[SegmentFile]) -> u64 {
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for file in files.iter().filter(|f| f.len > 0) {
        *counts.entry(file.len).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)))
        .map_or(0, |(len, _)| len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::segment_name;

    fn make(dir: &Path, files: &[(&str, usize)]) {
        for (name, len) in files {
            fs::write(dir.join(name), vec![0u8; *len]).unwrap();
        }
    }

    #[test]
    fn a_sound_directory_is_openable() {
        let dir = tempfile::tempdir().unwrap();
        make(
            dir.path(),
            &[
                (&segment_name(0), 100),
                (&segment_name(100), 100),
                (&segment_name(200), 0),
            ],
        );
        let l = list_segments(dir.path(), None).unwrap();
        assert_eq!(l.size, 100);
        assert_eq!(l.files.len(), 2);
        assert!(matches!(l.extras.as_slice(), [Extra::EmptyLast(f)] if f.start == 200));
        assert!(l.is_openable());
    }

    #[test]
    fn each_problem_is_named() {
        let dir = tempfile::tempdir().unwrap();
        make(
            dir.path(),
            &[
                (&segment_name(0), 100),
                (&segment_name(100), 60),
                (&segment_name(300), 100),
                (&segment_name(350), 100),
                ("notes.txt", 5),
                (".hidden", 1),
            ],
        );
        fs::create_dir(dir.path().join("sub")).unwrap();
        let l = list_segments(dir.path(), Some(100)).unwrap();
        assert_eq!(
            l.problems,
            vec![
                Problem::WrongSize { file: 1 },
                Problem::Hole { from: 200, to: 300 },
                Problem::Misaligned { file: 3 },
                Problem::Overlap {
                    file: 3,
                    previous_end: 400
                },
            ]
        );
        let kinds: Vec<&str> = l
            .extras
            .iter()
            .map(|e| match e {
                Extra::Hidden(_) => "hidden",
                Extra::Directory(_) => "dir",
                Extra::Stray(_) => "stray",
                Extra::EmptyLast(_) => "empty",
            })
            .collect();
        assert_eq!(kinds, ["hidden", "stray", "dir"]);
        assert!(!l.is_openable());
    }
}
