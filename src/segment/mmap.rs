//! The default backend: preallocated files mapped shared and writable with mmap.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

use fs4::FileExt;
use memmap2::{Advice, MmapOptions, MmapRaw, UncheckedAdvice};

use super::{Backend, Storage};

/// The page size [`Storage::release_pages`] rounds its range inwards to (the one the flush
/// counts dirty pages in, [`PAGE_SIZE`](super::file::PAGE_SIZE)). Where pages are larger
/// the kernel refuses a start it finds unaligned or rounds the length up: either way at worst a
/// page stays mapped, or a page still being written is unmapped and mapped back by its next
/// write, bytes intact.
const RELEASE_PAGE: usize = super::file::PAGE_SIZE as usize;
/// Ranges smaller than this stay mapped: a system call and a shoot-down of their own would
/// cost more than the few per-page ones they save.
const RELEASE_AT_LEAST: usize = 64 * 1024;

/// Segment files on the local file system, memory-mapped.
#[derive(Clone, Copy, Debug, Default)]
pub struct MmapBackend;

/// A mapped segment file. The mapping lives as long as this value; the file is never truncated
/// while mapped (the store only ever preallocates, and removes whole files).
pub struct MmapStorage {
    map: MmapRaw,
    // Kept open so the mapping's file stays the one we allocated, for the mapping's lifetime.
    _file: File,
}

impl MmapStorage {
    fn map(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        if len == 0 || len > isize::MAX as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("cannot map a segment of {len} bytes"),
            ));
        }
        let map = MmapOptions::new().len(len as usize).map_raw(&file)?;
        Ok(MmapStorage { map, _file: file })
    }
}

impl Storage for MmapStorage {
    fn len(&self) -> usize {
        self.map.len()
    }

    unsafe fn write(&self, pos: usize, data: &[u8]) {
        debug_assert!(pos + data.len() <= self.map.len());
        // SAFETY: the caller guarantees `pos + data.len() <= len` and exclusive access to the
        // destination range; `data` is a Rust slice, which cannot overlap a range nobody else
        // may access (it is not a slice of this mapping's destination range).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.map.as_mut_ptr().add(pos), data.len()) }
    }

    unsafe fn write_through(&self, pos: usize, data: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        debug_assert!(pos + data.len() <= self.map.len());
        // The page cache is shared with the mapping, so readers of the mapping see these bytes;
        // a write that covers whole pages spares the kernel zeroing them first.
        self._file.write_all_at(data, pos as u64)
    }

    fn as_mut_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    unsafe fn read(&self, pos: usize, len: usize) -> &[u8] {
        debug_assert!(pos + len <= self.map.len());
        // SAFETY: the caller guarantees the range is in bounds and not written while the slice
        // lives. The mapping lives as long as `self`, which the returned borrow cannot outlive,
        // and the file is never truncated under it (the store never shrinks segment files).
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(pos), len) }
    }

    fn flush(&self, pos: usize, len: usize) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        fail::fail_point!("segment-flush", |_| Err(io::Error::from_raw_os_error(5)));
        self.map.flush_range(pos, len)
    }

    fn release_pages(&self, pos: usize, len: usize) {
        let from = pos.next_multiple_of(RELEASE_PAGE);
        let to = (pos + len) / RELEASE_PAGE * RELEASE_PAGE;
        if to < from + RELEASE_AT_LEAST {
            return;
        }
        // SAFETY: the mapping is shared and backed by a file that is never truncated while
        // mapped: MADV_DONTNEED only removes this process's page-table entries, the bytes stay
        // in the file's page cache (a dirty page stays dirty), and the next access to any of the
        // addresses maps the same bytes back. No byte a borrowed slice covers changes, and the
        // addresses stay valid for the mapping's lifetime.
        let _ = unsafe { self.map.unchecked_advise_range(UncheckedAdvice::DontNeed, from, to - from) };
    }

    unsafe fn write_zeros(&self, stop: &dyn Fn() -> bool) -> io::Result<bool> {
        use std::os::unix::fs::FileExt;
        use std::os::unix::io::AsRawFd;
        // Through the page cache, which leaves the pages resident for the writer. This runs in
        // the background while a sync-per-put store writes its active segment, so each chunk is
        // written back and waited for before the next: the device sees one chunk at a time, not
        // a gigabyte of dirty pages flushed in front of the puts' syncs.
        const CHUNK: usize = 1 << 20;
        let _idle = IdleIo::enter();
        let size = self.map.len() as u64;
        let zeros = vec![0u8; CHUNK.min(size as usize)];
        let mut pos = 0u64;
        while pos < size {
            if stop() {
                return Ok(false);
            }
            let n = (size - pos).min(zeros.len() as u64) as usize;
            self._file.write_all_at(&zeros[..n], pos)?;
            let flags =
                libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
            // SAFETY: a system call on a descriptor this value keeps open; it reads and writes no
            // memory of this process.
            if unsafe { libc::sync_file_range(self._file.as_raw_fd(), pos as i64, n as i64, flags) } != 0 {
                return Err(io::Error::last_os_error());
            }
            pos += n as u64;
        }
        // Commits the extents' change in this background call rather than in a put's sync.
        self._file.sync_data()?;
        Ok(true)
    }

    fn warm_up(&self, pos: usize, len: usize) -> io::Result<()> {
        // Fault every page in writable, as RocketMQ's warm-up does by writing a zero to each page,
        // but without touching a byte: the kernel allocates and zeroes the page-cache pages of the
        // preallocated extents and maps them writable and dirty, so the writer's copies then take
        // no fault at all (read-only pre-faulting still left a permission fault per page: 25%
        // fewer appends per second). Writing no byte is what makes it safe while the writer
        // appends. The price: the pages are dirty zeros, which the kernel may write back early.
        let len = len.min(self.map.len().saturating_sub(pos));
        if len == 0 {
            return Ok(());
        }
        match self.map.advise_range(Advice::PopulateWrite, pos, len) {
            Ok(()) => Ok(()),
            // Kernels before 5.14: settle for read-ahead.
            Err(_) => self.map.advise_range(Advice::WillNeed, pos, len),
        }
    }
}

/// The calling thread's I/O priority lowered to the idle class while this value lives, so that
/// background work such as writing zeros ahead of need yields the device to the store's own
/// writes and syncs (honoured by the bfq and mq-deadline schedulers; a no-op under `none`).
/// Only the zero-fill runs under it: creating a file and syncing it stay at normal priority,
/// so a writer that catches up with the allocation thread never waits behind idle-class I/O
/// for more than one chunk.
struct IdleIo {
    previous: libc::c_long,
}

const IOPRIO_WHO_PROCESS: libc::c_long = 1;

fn ioprio_set(value: libc::c_long) -> libc::c_long {
    // SAFETY: a system call with integer arguments only; `who` 0 is the calling thread.
    unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0 as libc::c_long, value) }
}

impl IdleIo {
    fn enter() -> Option<IdleIo> {
        const IOPRIO_CLASS_IDLE: libc::c_long = 3;
        const IOPRIO_CLASS_SHIFT: u32 = 13;
        // SAFETY: a system call with integer arguments only; `who` 0 is the calling thread.
        let previous = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0 as libc::c_long) };
        if previous < 0 || ioprio_set(IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT) != 0 {
            tracing::debug!(error = %io::Error::last_os_error(), "could not lower the I/O priority");
            return None;
        }
        Some(IdleIo { previous })
    }
}

impl Drop for IdleIo {
    fn drop(&mut self) {
        if ioprio_set(self.previous) != 0 {
            tracing::warn!(error = %io::Error::last_os_error(), "could not restore the I/O priority");
        }
    }
}

/// Lowers the calling thread's CPU priority to the lowest there is (nice 19), for good (an
/// unprivileged thread may not raise it again). For warm-up, which only saves the writer work it
/// would otherwise do itself: at nice 10 it still took whole scheduler ticks from a producer on a
/// machine with two cores (puts of 100 µs and more, tens of milliseconds a run;
/// docs/performance.md). Not the idle scheduling class, which measured no better: a warm-up
/// preempted inside `madvise` holds the process's mmap lock, which the store's other threads need
/// to map files, and at nice 19 it gets back to the CPU five times sooner than an idle-class
/// thread on a saturated machine.
pub fn lowest_thread_priority() {
    set_thread_nice(19);
}

/// Lowers the calling thread's CPU priority (nice 10), for the store's housekeeping threads
/// (segment preparation and retention): on a machine with few cores they then take the CPU from
/// a producer for a smaller share of the time, instead of for whole scheduler slices. The
/// dispatcher and the flushers keep the normal priority: readers and durability wait on them.
pub fn lower_thread_priority() {
    set_thread_nice(10);
}

fn set_thread_nice(nice: libc::c_int) {
    // SAFETY: a system call with integer arguments only; on Linux, `PRIO_PROCESS` with `who` 0
    // sets the nice value of the calling thread alone.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), nice, "could not lower the thread's priority");
    }
}

/// The entries of `dir`, sorted by name, with their metadata; a missing directory is empty.
fn entries(dir: &Path) -> io::Result<Vec<(String, fs::Metadata)>> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in read {
        let entry = entry?;
        out.push((entry.file_name().to_string_lossy().into_owned(), entry.metadata()?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// File systems (by device) found without `fallocate`: they are not asked again.
static NO_FALLOCATE: parking_lot::Mutex<Vec<u64>> = parking_lot::Mutex::new(Vec::new());

/// Gives `file` `size` bytes of allocated blocks. Really allocated: writing through a mapping
/// of a sparse file on a full disk raises SIGBUS instead of an error we could return. Where the
/// file system has no `fallocate` (some FUSE and network file systems), the blocks are claimed
/// by writing zeros through the file instead, which returns a full disk as an error: slower
/// (the segment's bytes are written once more), but it keeps the store taking puts there.
fn allocate_blocks(file: &File, size: u64) -> io::Result<()> {
    use std::os::unix::fs::{FileExt as _, MetadataExt};
    let device = file.metadata()?.dev();
    if !NO_FALLOCATE.lock().contains(&device) {
        let allocated = fallocate(file, size);
        match allocated {
            Ok(()) => {
                if file.metadata()?.len() != size {
                    file.set_len(size)?;
                }
                return Ok(());
            }
            Err(e) if is_unsupported(&e) => {
                let mut known = NO_FALLOCATE.lock();
                if !known.contains(&device) {
                    known.push(device);
                    tracing::warn!(
                        device,
                        error = %e,
                        "the file system has no fallocate: segment files are allocated by writing zeros"
                    );
                }
            }
            Err(e) => return Err(e),
        }
    }
    const CHUNK: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK.min(size as usize)];
    let mut pos = 0u64;
    while pos < size {
        let n = (size - pos).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], pos)?;
        pos += n as u64;
    }
    file.set_len(size)
}

fn fallocate(file: &File, size: u64) -> io::Result<()> {
    fail::fail_point!("segment-fallocate", |_| Err(io::Error::from_raw_os_error(
        libc::EOPNOTSUPP
    )));
    file.allocate(size)
}

/// Whether an error says the operation is not supported (rather than that it failed).
fn is_unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
        || matches!(e.raw_os_error(), Some(code) if code == libc::EOPNOTSUPP || code == libc::ENOSYS)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fail::fail_point!("dir-sync", |_| Err(io::Error::from_raw_os_error(5)));
    File::open(dir)?.sync_all()
}

impl Backend for MmapBackend {
    type Storage = MmapStorage;

    fn create(&self, path: &Path, size: u64) -> io::Result<MmapStorage> {
        if path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        // Built under a hidden name and linked into place only once whole: nobody listing the
        // directory, and no recovery after a crash, ever sees a segment file that is still
        // empty or short. A leftover from a crash is removed when the queue is next opened.
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.creating"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let created = (|| {
            fail::fail_point!("segment-allocate", |_| Err(io::Error::from_raw_os_error(28)));
            allocate_blocks(&file, size)?;
            file.sync_all()?;
            // A hard link fails if `path` appeared meanwhile, where a rename would replace it.
            fs::hard_link(&tmp, path)?;
            fs::remove_file(&tmp)?;
            if let Some(dir) = path.parent() {
                sync_dir(dir)?;
            }
            MmapStorage::map(file)
        })();
        if let Err(e) = &created {
            let _ = fs::remove_file(&tmp);
            if e.kind() != io::ErrorKind::AlreadyExists {
                let _ = fs::remove_file(path);
            }
        }
        created
    }

    fn open(&self, path: &Path) -> io::Result<MmapStorage> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        MmapStorage::map(file)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<(String, u64)>> {
        Ok(entries(dir)?
            .into_iter()
            .filter(|(_, meta)| meta.is_file())
            .map(|(name, meta)| (name, meta.len()))
            .collect())
    }

    fn list_dirs(&self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(entries(dir)?
            .into_iter()
            .filter(|(_, meta)| meta.is_dir())
            .map(|(name, _)| name)
            .collect())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)?;
        for dir in [to.parent(), from.parent()].into_iter().flatten() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        let existing = dir.ancestors().skip(1).find(|a| a.is_dir()).map(Path::to_path_buf);
        fs::create_dir_all(dir)?;
        // Make every new entry durable: each new directory, and the parent that gained one.
        for d in dir.ancestors() {
            if d.as_os_str().is_empty() {
                break;
            }
            sync_dir(d)?;
            if Some(d) == existing.as_deref() {
                break;
            }
        }
        Ok(())
    }
}

/// A read-only mapping of a whole file, for tools that inspect a closed store (`verify`).
pub struct ReadOnlyMap {
    map: Option<memmap2::Mmap>,
}

impl ReadOnlyMap {
    /// Maps `path` read-only. The caller must hold the store's directory lock, so that no
    /// mqstore process writes or truncates the file while it is mapped.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(ReadOnlyMap { map: None });
        }
        // SAFETY: the mapping is read-only and private to this process; the caller holds the
        // store's lock, so no mqstore writer modifies or shrinks the file meanwhile (the store
        // never shrinks segment files in any case).
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(ReadOnlyMap { map: Some(map) })
    }
}

impl std::ops::Deref for ReadOnlyMap {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::segment::{MmapBackend, SegmentQueue, SizeRule, segment_name};

    const SIZE: u64 = 4 << 20;

    /// Resident kilobytes of the mapping of this process that holds `addr` (`None` where
    /// `/proc` has no `smaps`).
    fn resident_kib(addr: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut lines = smaps.lines().skip_while(|l| {
            let range = l.split_whitespace().next().and_then(|r| r.split_once('-'));
            !range.is_some_and(|(from, to)| {
                let (from, to) = (usize::from_str_radix(from, 16), usize::from_str_radix(to, 16));
                matches!((from, to), (Ok(from), Ok(to)) if from <= addr && addr < to)
            })
        });
        lines.next()?;
        let rss = lines.find(|l| l.starts_with("Rss:"))?;
        rss.split_whitespace().nth(1)?.parse().ok()
    }

    /// The calling thread's scheduling policy and nice value, from `/proc` (field 41 of `stat`
    /// is the policy, 19 the nice value; the command name before them may hold spaces).
    fn policy_and_nice() -> (u32, i32) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        (fields[38].parse().unwrap(), fields[16].parse().unwrap())
    }

    #[test]
    fn the_lowest_priority_is_the_calling_threads_alone() {
        let before = policy_and_nice();
        std::thread::spawn(|| {
            super::lowest_thread_priority();
            assert_eq!(policy_and_nice(), (libc::SCHED_OTHER as u32, 19));
        })
        .join()
        .unwrap();
        assert_eq!(policy_and_nice(), before);
    }

    #[test]
    fn a_flush_unmaps_the_whole_published_pages_and_keeps_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let q = SegmentQueue::open(Arc::new(MmapBackend), dir.path(), SizeRule::Exactly(SIZE)).unwrap();
        let seg = q.create(0, true).unwrap();
        let mut w = seg.claim_writer().unwrap();
        // 1 MiB and a half page published: the half page stays mapped, the writer goes on in it.
        let pattern = |i: u64| (i % 251) as u8;
        let first: Vec<u8> = (0..(1 << 20) + 2048).map(pattern).collect();
        w.write(&first);
        w.publish();
        let held = seg.read(0, first.len()).unwrap();
        let addr = held.as_ptr() as usize;
        let before = resident_kib(addr);

        assert_eq!(seg.flush(0).unwrap(), first.len() as u64);

        if let (Some(before), Some(after)) = (before, resident_kib(addr)) {
            // The warmed 4 MiB were resident; the first MiB is released, the rest is not.
            assert!(after + 1000 <= before, "resident {before} KiB before the flush, {after} after");
        }
        // A slice borrowed before the flush reads the same bytes (mapped back on access).
        assert!(held.iter().enumerate().all(|(i, &b)| b == pattern(i as u64)));
        drop(held);
        let more: Vec<u8> = (first.len() as u64..3 << 20).map(pattern).collect();
        w.write(&more);
        w.publish();
        assert_eq!(seg.flush(0).unwrap(), 3 << 20);
        let all = seg.read(0, 3 << 20).unwrap();
        assert!(all.iter().enumerate().all(|(i, &b)| b == pattern(i as u64)));
        let disk = std::fs::read(dir.path().join(segment_name(0))).unwrap();
        assert!(disk[..3 << 20].iter().enumerate().all(|(i, &b)| b == pattern(i as u64)));
    }
}
