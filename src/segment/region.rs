//! A fixed-size file written at any position (the index files' hash-slot table and entries), as
//! opposed to a [`Segment`](super::Segment), which is appended to.
//!
//! Every access goes through one reader-writer lock, which also guards a small value kept
//! beside the bytes (the file's header, as the writer knows it): a writer holds it exclusively,
//! readers share it. That is what makes the raw [`Storage`] calls sound. The writer of an index
//! file takes it once per message and readers are rare (queries by key), so the lock costs an
//! uncontended atomic operation on the dispatch path.

use std::io;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::Storage;

/// A fixed-size region of storage with a value `T` guarded by the same lock.
pub struct Region<S: Storage, T> {
    storage: S,
    state: RwLock<T>,
}

/// Exclusive access to a region's bytes and value.
pub struct RegionWrite<'a, S: Storage, T> {
    storage: &'a S,
    state: RwLockWriteGuard<'a, T>,
}

/// Shared access to a region's bytes and value.
pub struct RegionRead<'a, S: Storage, T> {
    storage: &'a S,
    state: RwLockReadGuard<'a, T>,
}

fn in_bounds(len: usize, pos: u64, n: usize) -> Option<usize> {
    let pos = usize::try_from(pos).ok()?;
    (pos.checked_add(n)? <= len).then_some(pos)
}

impl<S: Storage, T> Region<S, T> {
    /// Wraps `storage`, with `state` beside it.
    pub fn new(storage: S, state: T) -> Self {
        Region {
            storage,
            state: RwLock::new(state),
        }
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.storage.len() as u64
    }

    /// Whether the region has no bytes.
    pub fn is_empty(&self) -> bool {
        self.storage.is_empty()
    }

    /// Takes the lock exclusively.
    pub fn write(&self) -> RegionWrite<'_, S, T> {
        RegionWrite {
            storage: &self.storage,
            state: self.state.write(),
        }
    }

    /// Takes the lock shared.
    pub fn read(&self) -> RegionRead<'_, S, T> {
        RegionRead {
            storage: &self.storage,
            state: self.state.read(),
        }
    }
}

impl<S: Storage, T> RegionWrite<'_, S, T> {
    /// The guarded value.
    pub fn state(&mut self) -> &mut T {
        &mut self.state
    }

    /// Copies `data` to `pos`; `false` (and nothing written) if it does not fit.
    pub fn put(&mut self, pos: u64, data: &[u8]) -> bool {
        let Some(at) = in_bounds(self.storage.len(), pos, data.len()) else {
            return false;
        };
        // SAFETY: in bounds (checked above); the exclusive lock is held for as long as `self`
        // lives and every other access to the bytes takes that lock, so nothing reads or writes
        // them meanwhile, and no slice from `get` outlives the `&self` borrow it came from,
        // which `&mut self` here excludes.
        unsafe { self.storage.write(at, data) };
        true
    }

    /// Borrows `len` bytes at `pos`; `None` if out of bounds.
    pub fn get(&self, pos: u64, len: usize) -> Option<&[u8]> {
        let at = in_bounds(self.storage.len(), pos, len)?;
        // SAFETY: in bounds; writes need `&mut self`, which cannot coexist with the returned
        // borrow of `&self`, and the lock keeps every other thread out.
        Some(unsafe { self.storage.read(at, len) })
    }

    /// Makes `pos..pos + len` durable (clamped to the region).
    pub fn flush(&self, pos: u64, len: u64) -> io::Result<()> {
        flush_range(self.storage, pos, len)
    }
}

impl<S: Storage, T> RegionRead<'_, S, T> {
    /// The guarded value.
    pub fn state(&self) -> &T {
        &self.state
    }

    /// Borrows `len` bytes at `pos`; `None` if out of bounds.
    pub fn get(&self, pos: u64, len: usize) -> Option<&[u8]> {
        let at = in_bounds(self.storage.len(), pos, len)?;
        // SAFETY: in bounds; the shared lock is held while the borrow lives, and writers need
        // the lock exclusively.
        Some(unsafe { self.storage.read(at, len) })
    }

    /// Makes `pos..pos + len` durable (clamped to the region). Runs under the shared lock, so
    /// no write is in progress (a backend may read the bytes it flushes).
    pub fn flush(&self, pos: u64, len: u64) -> io::Result<()> {
        flush_range(self.storage, pos, len)
    }
}

fn flush_range<S: Storage>(storage: &S, pos: u64, len: u64) -> io::Result<()> {
    let size = storage.len() as u64;
    let pos = pos.min(size);
    let len = len.min(size - pos);
    if len == 0 {
        return Ok(());
    }
    storage.flush(pos as usize, len as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::Backend;
    use crate::segment::sim::SimDisk;

    #[test]
    fn bounds_are_checked_and_writes_read_back() {
        let disk = SimDisk::new();
        let backend = disk.backend();
        let path = std::path::Path::new("/r/file");
        backend.create_dir_all(path.parent().unwrap()).unwrap();
        let region = Region::new(backend.create(path, 64).unwrap(), 0u32);
        {
            let mut w = region.write();
            assert!(w.put(60, &[1, 2, 3, 4]));
            assert!(!w.put(61, &[1, 2, 3, 4]));
            assert!(!w.put(u64::MAX, &[1]));
            *w.state() = 7;
            assert_eq!(w.get(60, 4), Some(&[1u8, 2, 3, 4][..]));
            w.flush(0, u64::MAX).unwrap();
        }
        let r = region.read();
        assert_eq!(*r.state(), 7);
        assert_eq!(r.get(62, 2), Some(&[3u8, 4][..]));
        assert_eq!(r.get(63, 2), None);
        assert_eq!(r.get(u64::MAX - 1, 4), None);
    }
}
