//! An in-memory backend that simulates power loss, deterministically from a seed.
//!
//! Every segment file has two images: what the process sees (written through [`Storage`]) and
//! what the disk holds (updated only by [`Storage::flush`]). [`SimDisk::power_loss`] decides the
//! fate of every page whose two images differ — kept, dropped, or torn at a 512-byte sector
//! boundary — and makes the surviving image the file's content. A store opened again on the same
//! [`SimDisk`] then sees exactly what a real disk could hold after the crash. As SQLite's crash
//! VFS and FoundationDB's simulated files do, it makes "power loss" a unit test that replays
//! from its seed.

use std::cell::UnsafeCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Backend, Storage};

const PAGE: usize = 4096;
const SECTOR: usize = 512;

/// The live bytes of a simulated file, written without locks as a mapping is.
struct Live {
    bytes: Box<[UnsafeCell<u8>]>,
}

// SAFETY: access to the cells follows the `Storage` contract (disjoint writers, no write under a
// live read slice), exactly as for a shared memory mapping.
unsafe impl Sync for Live {}

impl Live {
    fn new(content: &[u8]) -> Self {
        Live {
            bytes: content.iter().map(|&b| UnsafeCell::new(b)).collect(),
        }
    }

    fn ptr(&self) -> *mut u8 {
        // `UnsafeCell<u8>` has the layout of `u8`; the slice is contiguous.
        UnsafeCell::raw_get(self.bytes.as_ptr())
    }

    /// Copies the live bytes out.
    ///
    /// # Safety
    /// No thread writes the file while this runs (the store was halted).
    unsafe fn snapshot(&self) -> Vec<u8> {
        // SAFETY: in bounds; the caller guarantees no concurrent writer.
        unsafe { std::slice::from_raw_parts(self.ptr(), self.bytes.len()) }.to_vec()
    }
}

struct SimFile {
    live: Arc<Live>,
    durable: Arc<Mutex<Vec<u8>>>,
}

#[derive(Default)]
struct Disk {
    files: BTreeMap<PathBuf, SimFile>,
    dirs: BTreeSet<PathBuf>,
}

/// A simulated disk shared by every store opened on it. Cloning shares it.
#[derive(Clone, Default)]
pub struct SimDisk {
    disk: Arc<Mutex<Disk>>,
}

/// What a simulated power loss did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PowerLoss {
    /// Pages that had unsynced changes.
    pub dirty_pages: u64,
    /// Of those, pages whose changes survived whole.
    pub kept: u64,
    /// Pages whose changes were lost.
    pub dropped: u64,
    /// Pages of which only some sectors survived.
    pub torn: u64,
}

/// The storage of one simulated file.
pub struct SimStorage {
    live: Arc<Live>,
    durable: Arc<Mutex<Vec<u8>>>,
}

impl Storage for SimStorage {
    fn len(&self) -> usize {
        self.live.bytes.len()
    }

    unsafe fn write(&self, pos: usize, data: &[u8]) {
        assert!(pos + data.len() <= self.len(), "simulated write past the end");
        // SAFETY: in bounds; the caller guarantees exclusive access to the destination range.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.live.ptr().add(pos), data.len()) }
    }

    fn as_mut_ptr(&self) -> *mut u8 {
        self.live.ptr()
    }

    unsafe fn read(&self, pos: usize, len: usize) -> &[u8] {
        assert!(pos + len <= self.len(), "simulated read past the end");
        // SAFETY: in bounds; the caller guarantees no write to the range while the slice lives;
        // the cells live as long as `self`.
        unsafe { std::slice::from_raw_parts(self.live.ptr().add(pos), len) }
    }

    fn flush(&self, pos: usize, len: usize) -> io::Result<()> {
        // SAFETY: the flushed range is published (no writer touches it) per `Segment::flush`.
        let src = unsafe { self.read(pos, len) };
        self.durable.lock()[pos..pos + len].copy_from_slice(src);
        Ok(())
    }

    fn warm_up(&self, _pos: usize, _len: usize) -> io::Result<()> {
        Ok(())
    }
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// A backend that opens files on this disk.
    pub fn backend(&self) -> SimBackend {
        SimBackend { disk: self.clone() }
    }

    /// Simulates a power loss: every page whose live image differs from its durable image keeps
    /// its new content, loses it, or keeps a random subset of its 512-byte sectors, as decided
    /// by `seed`. The result becomes both images. Call it only after the store using the disk
    /// was halted ([`MessageStore::halt`](crate::MessageStore::halt)): its mappings are then
    /// stale and must not be used again.
    pub fn power_loss(&self, seed: u64) -> PowerLoss {
        let mut rng = seed ^ 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            // splitmix64
            rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let mut report = PowerLoss::default();
        let mut disk = self.disk.lock();
        for file in disk.files.values_mut() {
            // SAFETY: the store was halted: no thread writes the live image any more.
            let live = unsafe { file.live.snapshot() };
            let mut durable = file.durable.lock();
            for start in (0..live.len()).step_by(PAGE) {
                let end = (start + PAGE).min(live.len());
                if live[start..end] == durable[start..end] {
                    continue;
                }
                report.dirty_pages += 1;
                match next() % 3 {
                    0 => {
                        durable[start..end].copy_from_slice(&live[start..end]);
                        report.kept += 1;
                    }
                    1 => report.dropped += 1,
                    _ => {
                        report.torn += 1;
                        for s in (start..end).step_by(SECTOR) {
                            let e = (s + SECTOR).min(end);
                            if next() % 2 == 0 {
                                durable[s..e].copy_from_slice(&live[s..e]);
                            }
                        }
                    }
                }
            }
            // Fresh images: handles the halted store still holds can no longer touch the disk.
            let survived = std::mem::take(&mut *durable);
            drop(durable);
            file.live = Arc::new(Live::new(&survived));
            file.durable = Arc::new(Mutex::new(survived));
        }
        report
    }

    /// The durable content of a file, if it exists (for tests that damage files).
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        self.disk.lock().files.get(path).map(|f| f.durable.lock().clone())
    }

    /// Replaces a file's content on both images (for tests that damage files). The store using
    /// it must be halted.
    pub fn write_file(&self, path: &Path, content: &[u8]) {
        let mut disk = self.disk.lock();
        let file = SimFile {
            live: Arc::new(Live::new(content)),
            durable: Arc::new(Mutex::new(content.to_vec())),
        };
        disk.files.insert(path.to_path_buf(), file);
    }
}

/// The [`Backend`] of a [`SimDisk`].
#[derive(Clone)]
pub struct SimBackend {
    disk: SimDisk,
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} not found", path.display()))
}

impl Backend for SimBackend {
    type Storage = SimStorage;

    fn create(&self, path: &Path, size: u64) -> io::Result<SimStorage> {
        let mut disk = self.disk.disk.lock();
        if disk.files.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        let zeros = vec![0u8; size as usize];
        let file = SimFile {
            live: Arc::new(Live::new(&zeros)),
            durable: Arc::new(Mutex::new(zeros)),
        };
        let storage = SimStorage {
            live: Arc::clone(&file.live),
            durable: Arc::clone(&file.durable),
        };
        disk.files.insert(path.to_path_buf(), file);
        Ok(storage)
    }

    fn open(&self, path: &Path) -> io::Result<SimStorage> {
        let disk = self.disk.disk.lock();
        let file = disk.files.get(path).ok_or_else(|| not_found(path))?;
        Ok(SimStorage {
            live: Arc::clone(&file.live),
            durable: Arc::clone(&file.durable),
        })
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<(String, u64)>> {
        let disk = self.disk.disk.lock();
        Ok(disk
            .files
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .filter_map(|(p, f)| Some((p.file_name()?.to_string_lossy().into_owned(), f.live.bytes.len() as u64)))
            .collect())
    }

    fn list_dirs(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = self.disk.disk.lock();
        Ok(disk
            .dirs
            .iter()
            .filter(|d| d.parent() == Some(dir))
            .filter_map(|d| Some(d.file_name()?.to_string_lossy().into_owned()))
            .collect())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.disk
            .disk
            .lock()
            .files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.disk.disk.lock();
        let file = disk.files.remove(from).ok_or_else(|| not_found(from))?;
        if let Some(parent) = to.parent() {
            disk.dirs.insert(parent.to_path_buf());
        }
        disk.files.insert(to.to_path_buf(), file);
        Ok(())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.disk.disk.lock();
        for d in dir.ancestors() {
            if d.as_os_str().is_empty() {
                break;
            }
            disk.dirs.insert(d.to_path_buf());
        }
        Ok(())
    }
}
