//! The store's own small files (lock, checkpoint, metadata) live in its directory outside the
//! segment backend: these are the file-system steps they share.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

/// Opens `path` for reading and writing, creating it empty if missing, keeping what it holds.
pub(crate) fn open_or_create(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at(path)
}

/// Makes `dir`'s entries (files created, renamed or removed in it) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Parses a file name of exactly `len` ASCII digits (segment and index file names).
pub(crate) fn parse_digits(name: &str, len: usize) -> Option<u64> {
    if name.len() != len || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// A small file replaced whole and atomically, keeping its previous version as a backup:
/// `name` (current), `name.bak` (previous), `name.tmp` (being written). At every instant the
/// main file, or (between the two renames) the backup, holds a complete version.
pub(crate) struct BackedUpFile {
    dir: PathBuf,
    main: PathBuf,
    tmp: PathBuf,
    bak: PathBuf,
}

impl BackedUpFile {
    /// The file `name` in `dir`.
    pub(crate) fn new(dir: &Path, name: &str) -> Self {
        BackedUpFile {
            dir: dir.to_path_buf(),
            main: dir.join(name),
            tmp: dir.join(format!("{name}.tmp")),
            bak: dir.join(format!("{name}.bak")),
        }
    }

    /// The main file.
    pub(crate) fn main(&self) -> &Path {
        &self.main
    }

    /// The backup.
    pub(crate) fn backup(&self) -> &Path {
        &self.bak
    }

    /// Replaces the file with `bytes`, durably. `main_valid`: whether the main file holds a
    /// good version, which then becomes the backup (a corrupt main file must not replace a
    /// good backup); updated as the renames happen. The directory must exist.
    pub(crate) fn replace(&self, bytes: &[u8], main_valid: &mut bool) -> Result<()> {
        {
            let mut file = File::create(&self.tmp).at(&self.tmp)?;
            file.write_all(bytes).at(&self.tmp)?;
            file.sync_all().at(&self.tmp)?;
        }
        if *main_valid {
            fs::rename(&self.main, &self.bak).at(&self.main)?;
            // Until the next rename, only the backup holds a version.
            *main_valid = false;
        }
        fs::rename(&self.tmp, &self.main).at(&self.tmp)?;
        *main_valid = true;
        sync_dir(&self.dir)
    }
}
