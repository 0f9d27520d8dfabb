//! Durability policies: when appended bytes are made durable, and whether a put waits for it.
//!
//! A [`FlushPolicy`] is chosen in [`StoreConfig`](crate::StoreConfig): one of the built-ins or a
//! user's own [`Flusher`]. The store calls the flusher after every append (outside the append
//! lock) with the end offset of what was appended; the flusher decides whether to wait.

mod group_commit;
mod interval;

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

pub use group_commit::GroupCommit;
pub use interval::IntervalFlush;

use crate::error::{Error, Result};

/// What a flusher can do with the commit log.
pub trait FlushTarget: Send + Sync {
    /// One past the last appended (and readable) byte.
    fn written_offset(&self) -> u64;

    /// One past the last byte known to be durable.
    fn flushed_offset(&self) -> u64;

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

    /// Called once when the store closes; stop background threads here. The store flushes
    /// everything itself afterwards.
    fn stop(&self);
}

/// Settings of [`FlushPolicy::sync`] (RocketMQ's SYNC_FLUSH with its GroupCommitService).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncFlush {
    /// How long a put waits for its flush before returning `FlushDiskTimeout` (default 5 s).
    pub timeout: Duration,
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

#[derive(Clone)]
enum Kind {
    Sync(SyncFlush),
    Async(AsyncFlush),
    Custom(Arc<dyn Flusher>),
}

/// How appended bytes are made durable. Built-ins follow RocketMQ's defaults.
#[derive(Clone)]
pub struct FlushPolicy(Kind);

impl FlushPolicy {
    /// Group commit: a put returns only once its bytes are durable; one flusher thread syncs for
    /// all waiting puts at once.
    pub fn sync() -> Self {
        FlushPolicy(Kind::Sync(SyncFlush {
            timeout: Duration::from_millis(5000),
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

    /// Sets the interval, least pages and thorough interval (async policy only).
    #[must_use]
    pub fn with_interval(mut self, interval: Duration, least_pages: u64, thorough_interval: Duration) -> Self {
        if let Kind::Async(a) = &mut self.0 {
            *a = AsyncFlush {
                interval,
                least_pages,
                thorough_interval,
            };
        }
        self
    }

    /// A short name: `sync`, `async` or `custom`.
    pub fn name(&self) -> &'static str {
        match self.0 {
            Kind::Sync(_) => "sync",
            Kind::Async(_) => "async",
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
            _ => Ok(()),
        }
    }

    /// Builds the flusher for one store.
    pub(crate) fn build(&self) -> Arc<dyn Flusher> {
        match &self.0 {
            Kind::Sync(s) => Arc::new(GroupCommit::new(s.timeout)),
            Kind::Async(a) => Arc::new(IntervalFlush::new(*a)),
            Kind::Custom(f) => Arc::clone(f),
        }
    }
}

impl fmt::Debug for FlushPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Sync(s) => f.debug_tuple("Sync").field(s).finish(),
            Kind::Async(a) => f.debug_tuple("Async").field(a).finish(),
            Kind::Custom(_) => f.write_str("Custom"),
        }
    }
}
