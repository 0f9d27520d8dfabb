//! Write buffers: RocketMQ's transient store pool. Appends to a buffered segment go to a
//! preallocated, pre-faulted (optionally locked) anonymous buffer instead of the file mapping; a
//! commit step copies them into the file later. The hot path then never faults on page-cache
//! pages nor contends with writeback.

use std::ops::Deref;
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};
use parking_lot::Mutex;

/// One buffer, the size of a segment.
pub struct WriteBuffer {
    map: MmapRaw,
}

impl WriteBuffer {
    fn new(size: usize, lock: bool, prefault: bool) -> std::io::Result<Self> {
        let mut options = MmapOptions::new();
        options.len(size);
        if prefault {
            options.populate();
        }
        let map = options.map_anon()?;
        if lock && let Err(e) = map.lock() {
            tracing::warn!(error = %e, "could not lock a write buffer in memory (RLIMIT_MEMLOCK?)");
        }
        Ok(WriteBuffer {
            map: MmapRaw::from(map),
        })
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the buffer is empty (never).
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Copies `data` to `pos`.
    ///
    /// # Safety
    /// In bounds, and no other thread reads or writes the range meanwhile or while a slice from
    /// [`read`](Self::read) over it is alive.
    pub(crate) unsafe fn write(&self, pos: usize, data: &[u8]) {
        assert!(pos + data.len() <= self.len(), "write buffer overrun");
        // SAFETY: in bounds by the assert; exclusivity is the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.map.as_mut_ptr().add(pos), data.len()) }
    }

    /// The address of the buffer's first byte (see [`Storage::as_mut_ptr`](super::Storage::as_mut_ptr)).
    pub(crate) fn as_mut_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// Borrows bytes.
    ///
    /// # Safety
    /// In bounds, and nothing writes the range while the slice lives.
    pub(crate) unsafe fn read(&self, pos: usize, len: usize) -> &[u8] {
        assert!(pos + len <= self.len(), "write buffer overread");
        // SAFETY: in bounds; the mapping lives as long as `self`; no writer per the contract.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(pos), len) }
    }
}

/// Published bytes of a buffered segment, read from its write buffer. Holding it keeps the
/// buffer out of the pool, so the bytes stay valid.
#[derive(Clone)]
pub struct BufferSlice {
    pub(crate) buffer: Arc<WriteBuffer>,
    pub(crate) pos: usize,
    pub(crate) len: usize,
}

impl Deref for BufferSlice {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: built only by `Segment::read` over published bytes of the buffer, which are
        // never written again while any `Arc` to the buffer other than the pool's exists (the
        // pool hands a buffer out only when it holds the only reference).
        unsafe { self.buffer.read(self.pos, self.len) }
    }
}

/// The pool of write buffers.
pub struct BufferPool {
    free: Mutex<Vec<Arc<WriteBuffer>>>,
    size: usize,
}

impl BufferPool {
    /// Allocates `count` buffers of `size` bytes, faulted in now if `prefault` (else as they are
    /// first written), and locked in memory if `lock`.
    pub fn new(count: usize, size: usize, lock: bool, prefault: bool) -> std::io::Result<Self> {
        let free = (0..count)
            .map(|_| WriteBuffer::new(size, lock, prefault).map(Arc::new))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(BufferPool {
            free: Mutex::new(free),
            size,
        })
    }

    /// Size of each buffer.
    pub fn buffer_size(&self) -> usize {
        self.size
    }

    /// Takes a buffer nobody else references, if there is one. `None` means every buffer is in
    /// use (by segments not yet committed, or by readers still holding slices of them).
    pub fn take(&self) -> Option<Arc<WriteBuffer>> {
        let mut free = self.free.lock();
        let idx = free.iter().position(|b| Arc::strong_count(b) == 1)?;
        Some(free.swap_remove(idx))
    }

    /// Returns a buffer.
    pub fn give_back(&self, buffer: Arc<WriteBuffer>) {
        self.free.lock().push(buffer);
    }

    /// Buffers available right now.
    pub fn available(&self) -> usize {
        self.free.lock().iter().filter(|b| Arc::strong_count(b) == 1).count()
    }
}
