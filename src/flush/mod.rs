//! Durability policies: when appended bytes are made durable, and whether a put waits for it.
//!
//! A [`FlushPolicy`] is chosen in [`StoreConfig`](crate::StoreConfig): one of the built-ins or a
//! user's own [`Flusher`]. The store calls the flusher after every append (outside the append
//! lock) with the end offset of what was appended; the flusher decides whether to wait.

mod buffered;
mod completion;
mod group_commit;
mod interval;

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

pub use buffered::WriteBufferFlush;
pub(crate) use completion::Pending;
pub use completion::{Completion, Outcome};
pub use group_commit::GroupCommit;
pub use interval::IntervalFlush;

use crate::error::{Error, Result};

/// What a flusher can do with the commit log.
pub trait FlushTarget: Send + Sync {
    /// One past the last appended (and readable) byte.
    fn written_offset(&self) -> u64;

    /// One past the last byte known to be durable.
    fn flushed_offset(&self) -> u64;

    /// Copies appended bytes still in write buffers into the files (the buffered policy's
    /// commit step); returns the offset below which everything is in the files. Without write
    /// buffers, everything appended already is.
    fn commit(&self) -> u64;

    /// Flushes appended bytes when at least `least_pages` 4 KiB pages are dirty in the oldest
    /// unflushed segment, or that segment is full (`0`: flush everything appended). Returns the
    /// durable offset after the call: every byte below it is on stable storage.
    fn flush(&self, least_pages: u64) -> io::Result<u64>;
}

/// What became of an append's durability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushOutcome {
    /// The bytes are durable.
    Durable,
    /// The policy does not wait: the bytes will be flushed in the background.
    NotAwaited,
    /// The policy waits, and durability was not confirmed in time.
    TimedOut,
    /// A flush failed; the bytes may not be durable, and the store stops accepting writes.
    Failed,
}

/// A durability policy's engine. Implement it to plug in your own policy with
/// [`FlushPolicy::custom`].
///
/// ```
/// use std::io;
/// use std::sync::Arc;
/// use mqstore::flush::{FlushOutcome, FlushTarget, Flusher};
/// use parking_lot::Mutex;
///
/// /// Flushes inline on every append: simple and slow, but every put is durable on return.
/// #[derive(Default)]
/// struct FlushEveryPut(Mutex<Option<Arc<dyn FlushTarget>>>);
///
/// impl Flusher for FlushEveryPut {
///     fn start(&self, target: Arc<dyn FlushTarget>) -> io::Result<()> {
///         *self.0.lock() = Some(target);
///         Ok(())
///     }
///     fn after_append(&self, end_offset: u64) -> FlushOutcome {
///         let Some(target) = self.0.lock().clone() else { return FlushOutcome::Failed };
///         match target.flush(0) {
///             Ok(durable) if durable >= end_offset => FlushOutcome::Durable,
///             _ => FlushOutcome::Failed,
///         }
///     }
///     fn stop(&self) {}
/// }
/// let policy = mqstore::FlushPolicy::custom(FlushEveryPut::default());
/// # let _ = policy;
/// ```
pub trait Flusher: Send + Sync + 'static {
    /// Called once when the store opens, before any append; start background threads here.
    fn start(&self, target: Arc<dyn FlushTarget>) -> io::Result<()>;

    /// Called after every append (or batch), outside the append lock, with the end offset of the
    /// appended bytes. Blocks as long as the policy wants the put to wait.
    fn after_append(&self, end_offset: u64) -> FlushOutcome;

    /// [`after_append`](Self::after_append) for a put that does not wait
    /// ([`MessageStore::put_async`](crate::MessageStore::put_async)): report the outcome through
    /// `done`, at once or later from any thread, and return without blocking.
    ///
    /// The default calls `after_append` and completes `done` with its outcome, so it blocks as
    /// long as `after_append` does: a policy that waits should override it, as
    /// [`GroupCommit`] does.
    fn after_append_async(&self, end_offset: u64, done: Completion) {
        done.complete(self.after_append(end_offset));
    }

    /// Called once when the store closes; stop background threads here. The store flushes
    /// everything itself afterwards.
    fn stop(&self);

    /// Whether [`after_append`](Self::after_append) waits for the bytes to be flushed. The
    /// store then calls it only once the log is published up to `end_offset` (appends fill
    /// their records in parallel, and only what is published is flushed). A policy that never
    /// waits returns `false`, and its puts return as soon as their own records are written.
    /// Asked once, when the store opens.
    fn awaits_durability(&self) -> bool {
        true
    }
}

/// Settings of [`FlushPolicy::sync`] (RocketMQ's SYNC_FLUSH with its GroupCommitService).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncFlush {
    /// How long a put waits for its flush before returning `FlushDiskTimeout` (default 5 s).
    pub timeout: Duration,
    /// Write buffers to append through, each the size of a commit-log segment (default 2: the
    /// active segment's and the next one's; 0 appends straight into the file mapping). The sync
    /// leader writes the buffered bytes to the file (`pwrite`) before syncing. Without them, an
    /// append faults on every page a previous sync left write-protected and takes the mapping's
    /// locks against the sync; with them, appends are plain memory copies, and 64 producers get
    /// about 15-20% more through on the project's machines. The buffers are faulted in as they
    /// are first written, not up front, and then stay resident: twice the segment size in all.
    pub write_buffers: usize,
}

/// The write-buffer pool a policy asks for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolSpec {
    pub buffers: usize,
    pub lock_memory: bool,
    /// Fault every page in when the pool is created.
    pub prefault: bool,
}

/// Settings of [`FlushPolicy::asynchronous`] (RocketMQ's ASYNC_FLUSH).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsyncFlush {
    /// Time between flushes (default 500 ms).
    pub interval: Duration,
    /// Flush only when at least this many 4 KiB pages are dirty (default 4).
    pub least_pages: u64,
    /// Flush everything at least this often (default 10 s).
    pub thorough_interval: Duration,
}

/// Settings of [`FlushPolicy::buffered`] (RocketMQ's transient store pool).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferedFlush {
    /// Write buffers, each the size of a commit-log segment (default 3: the active segment's,
    /// the next one's, and one for a full segment still being committed). RocketMQ's default
    /// of 5 one-GiB buffers pins 5 GiB; three suffice because a buffer returns to the pool as
    /// soon as its segment is committed.
    pub buffers: usize,
    /// Lock the buffers in memory with mlock (default off: it needs RLIMIT_MEMLOCK).
    pub lock_memory: bool,
    /// Time between commits of buffered bytes into the files (default 200 ms).
    pub commit_interval: Duration,
    /// How the files are then flushed (RocketMQ's async defaults).
    pub flush: AsyncFlush,
}

/// The settings of a built-in policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum BuiltIn {
    Sync(SyncFlush),
    Async(AsyncFlush),
    Buffered(BufferedFlush),
}

#[derive(Clone)]
enum Kind {
    Sync(SyncFlush),
    Async(AsyncFlush),
    Buffered(BufferedFlush),
    Custom(Arc<dyn Flusher>),
}

/// How appended bytes are made durable. Built-ins follow RocketMQ's defaults.
#[derive(Clone)]
pub struct FlushPolicy(Kind);

impl FlushPolicy {
    /// Group commit: a put returns only once its bytes are durable. The first waiting put leads
    /// a sync of everything appended so far; puts arriving meanwhile share the next one.
    pub fn sync() -> Self {
        FlushPolicy(Kind::Sync(SyncFlush {
            timeout: Duration::from_millis(5000),
            write_buffers: 2,
        }))
    }

    /// Background flush every 500 ms when at least 4 pages are dirty, and of everything every
    /// 10 s. A process crash loses nothing (the page cache survives it); a power loss may lose
    /// the last unflushed seconds.
    pub fn asynchronous() -> Self {
        FlushPolicy(Kind::Async(AsyncFlush {
            interval: Duration::from_millis(500),
            least_pages: 4,
            thorough_interval: Duration::from_secs(10),
        }))
    }

    /// Appends go to a pool of preallocated, pre-faulted write buffers; a background thread
    /// commits them into the files every 200 ms, and another flushes the files as
    /// [`asynchronous`](FlushPolicy::asynchronous) does. The append path never page-faults.
    /// Reads see appended data whether it is still in a buffer or already in the file. A process
    /// crash loses what was not yet committed (up to the commit interval); a power loss, what
    /// was not yet flushed.
    pub fn buffered() -> Self {
        FlushPolicy(Kind::Buffered(BufferedFlush {
            buffers: 3,
            lock_memory: false,
            commit_interval: Duration::from_millis(200),
            flush: AsyncFlush {
                interval: Duration::from_millis(500),
                least_pages: 4,
                thorough_interval: Duration::from_secs(10),
            },
        }))
    }

    /// Sets the number of write buffers and whether to lock them in memory (buffered policy;
    /// for the sync policy, the buffers appends go through, 0 for none, see
    /// [`SyncFlush::write_buffers`]).
    #[must_use]
    pub fn with_buffers(mut self, buffers: usize, lock_memory: bool) -> Self {
        match &mut self.0 {
            Kind::Buffered(b) => {
                b.buffers = buffers;
                b.lock_memory = lock_memory;
            }
            Kind::Sync(s) => s.write_buffers = buffers,
            _ => {}
        }
        self
    }

    /// Sets the commit interval (buffered policy only).
    #[must_use]
    pub fn with_commit_interval(mut self, interval: Duration) -> Self {
        if let Kind::Buffered(b) = &mut self.0 {
            b.commit_interval = interval;
        }
        self
    }

    /// A user-provided policy.
    pub fn custom(flusher: impl Flusher) -> Self {
        FlushPolicy(Kind::Custom(Arc::new(flusher)))
    }

    /// Sets the sync timeout (sync policy only; ignored otherwise).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        if let Kind::Sync(s) = &mut self.0 {
            s.timeout = timeout;
        }
        self
    }

    /// Sets the flush interval, least pages and thorough interval (async and buffered
    /// policies).
    #[must_use]
    pub fn with_interval(mut self, interval: Duration, least_pages: u64, thorough_interval: Duration) -> Self {
        let settings = AsyncFlush {
            interval,
            least_pages,
            thorough_interval,
        };
        match &mut self.0 {
            Kind::Async(a) => *a = settings,
            Kind::Buffered(b) => b.flush = settings,
            _ => {}
        }
        self
    }

    /// The built-in policy's settings; `None` for a custom one (a configuration file cannot
    /// name it).
    pub(crate) fn settings(&self) -> Option<BuiltIn> {
        match &self.0 {
            Kind::Sync(s) => Some(BuiltIn::Sync(*s)),
            Kind::Async(a) => Some(BuiltIn::Async(*a)),
            Kind::Buffered(b) => Some(BuiltIn::Buffered(*b)),
            Kind::Custom(_) => None,
        }
    }

    /// The built-in policy with these settings.
    pub(crate) fn from_settings(settings: BuiltIn) -> Self {
        FlushPolicy(match settings {
            BuiltIn::Sync(s) => Kind::Sync(s),
            BuiltIn::Async(a) => Kind::Async(a),
            BuiltIn::Buffered(b) => Kind::Buffered(b),
        })
    }

    /// The write-buffer pool the policy needs.
    pub(crate) fn write_buffers(&self) -> Option<PoolSpec> {
        match &self.0 {
            Kind::Buffered(b) => Some(PoolSpec {
                buffers: b.buffers,
                lock_memory: b.lock_memory,
                prefault: true,
            }),
            // Sync writes each buffer out at every sync and reuses it for a whole segment: a
            // fault per page on its first pass only is not worth pinning the memory up front.
            Kind::Sync(s) if s.write_buffers > 0 => Some(PoolSpec {
                buffers: s.write_buffers,
                lock_memory: false,
                prefault: false,
            }),
            _ => None,
        }
    }

    /// A short name: `sync`, `async`, `buffered` or `custom`.
    pub fn name(&self) -> &'static str {
        match self.0 {
            Kind::Sync(_) => "sync",
            Kind::Async(_) => "async",
            Kind::Buffered(_) => "buffered",
            Kind::Custom(_) => "custom",
        }
    }

    /// Whether puts wait for their bytes to be durable.
    pub fn is_sync(&self) -> bool {
        matches!(self.0, Kind::Sync(_))
    }

    pub(crate) fn validate(&self) -> Result<()> {
        match &self.0 {
            Kind::Sync(s) if s.timeout.is_zero() => Err(Error::InvalidConfig("sync flush timeout is zero".into())),
            Kind::Async(a) if a.interval.is_zero() => Err(Error::InvalidConfig("async flush interval is zero".into())),
            Kind::Buffered(b) if b.buffers == 0 || b.commit_interval.is_zero() || b.flush.interval.is_zero() => Err(
                Error::InvalidConfig("buffered flush needs at least one buffer and non-zero intervals".into()),
            ),
            _ => Ok(()),
        }
    }

    /// Builds the flusher for one store.
    pub(crate) fn build(&self) -> Arc<dyn Flusher> {
        match &self.0 {
            Kind::Sync(s) => Arc::new(GroupCommit::new(s.timeout)),
            Kind::Async(a) => Arc::new(IntervalFlush::new(*a)),
            Kind::Buffered(b) => Arc::new(WriteBufferFlush::new(*b)),
            Kind::Custom(f) => Arc::clone(f),
        }
    }
}

impl fmt::Debug for FlushPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Sync(s) => f.debug_tuple("Sync").field(s).finish(),
            Kind::Async(a) => f.debug_tuple("Async").field(a).finish(),
            Kind::Buffered(b) => f.debug_tuple("Buffered").field(b).finish(),
            Kind::Custom(_) => f.write_str("Custom"),
        }
    }
}
