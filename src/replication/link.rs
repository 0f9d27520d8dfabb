//! What a transport is handed: a [`MasterLink`] to read the log and report acknowledgements, or
//! a [`SlaveLink`] to apply the master's bytes. Both are cheap to clone and `Send + Sync`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use super::ack::{AckTracker, ReplicaStatus};
use super::epoch::{self, EpochEntry, EpochHistory};
use super::{ReplicationConfig, Role};
use crate::error::{Error, Result};
use crate::flush::{Completion, FlushOutcome, Pending};
use crate::message::MessageSource;

/// The store's side of the links: the parts of the store replication reads and changes,
/// without its backend type.
pub(crate) trait LogAccess: Send + Sync + 'static {
    /// One past the last appended byte.
    fn max_offset(&self) -> u64;
    /// Smallest offset held.
    fn min_offset(&self) -> u64;
    /// Commit-log segment size.
    fn segment_size(&self) -> u64;
    /// Whole records from `offset`, in the segment holding it, at most `max` bytes (but at least
    /// one record) and not past `limit`: their bytes, how many, and where the next chunk
    /// starts. `None` when nothing is appended at `offset` yet.
    fn read_chunk(&self, offset: u64, max: usize, limit: u64) -> Result<Option<(MessageSource, usize, u64)>>;
    /// Validates and appends replicated bytes at `offset` and has them dispatched: the new end.
    fn append_replicated(&self, offset: u64, bytes: &[u8]) -> Result<u64>;
    /// Asks the flush policy to make everything below `end` held as it promises; `done` tells
    /// when (or at once, for a policy that does not wait).
    fn hold(&self, end: u64, done: Completion);
    /// What a hold's `outcome` means: the offset below which bytes are held.
    fn held(&self, end: u64, outcome: FlushOutcome) -> Result<u64>;
    /// Cuts the log, the consume queues and the dispatch point at `offset`, durably.
    fn truncate(&self, offset: u64) -> Result<()>;
}

/// Wakes transports waiting for new appends.
#[derive(Default)]
struct DataSignal {
    lock: Mutex<()>,
    cv: Condvar,
    sleepers: AtomicUsize,
}

/// Polls in a row (1 ms apart) before a waiting master transport asks appends to wake it, as the
/// dispatcher does: while data flows, producers pay no wake-up per put.
const BUSY_POLLS: u32 = 50;

/// State shared by the store and every link it handed out.
pub(crate) struct LinkCore {
    pub(crate) log: Arc<dyn LogAccess>,
    pub(crate) epochs: Mutex<EpochHistory>,
    pub(crate) acks: AckTracker,
    pub(crate) config: ReplicationConfig,
    pub(crate) dir: PathBuf,
    /// The current role; the number of role changes so far guards stale links.
    pub(crate) role: RwLock<(Role, u64)>,
    signal: DataSignal,
    /// `SyncMaster`'s timeout in nanoseconds (0: the role does not wait for slaves). Also
    /// tells a waiting transport to be woken by every append rather than poll.
    sync_timeout_ns: AtomicU64,
    bound: Mutex<Option<SocketAddr>>,
    bytes_in: AtomicU64,
}

impl LinkCore {
    pub(crate) fn new(
        log: Arc<dyn LogAccess>,
        epochs: EpochHistory,
        config: ReplicationConfig,
        dir: PathBuf,
        role: Role,
    ) -> Self {
        LinkCore {
            log,
            epochs: Mutex::new(epochs),
            acks: AckTracker::new(config.in_sync_slaves, config.max_gap_not_in_sync),
            config,
            dir,
            sync_timeout_ns: AtomicU64::new(timeout_ns(role)),
            role: RwLock::new((role, 0)),
            signal: DataSignal::default(),
            bound: Mutex::new(None),
            bytes_in: AtomicU64::new(0),
        }
    }

    /// Called by the store after every append of a master.
    #[inline]
    pub(crate) fn appended(&self) {
        if self.signal.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = self.signal.lock.lock();
            self.signal.cv.notify_all();
        }
    }

    /// Records a role change; links of earlier roles stop working.
    pub(crate) fn set_role(&self, role: Role) -> u64 {
        let mut r = self.role.write();
        r.0 = role;
        r.1 += 1;
        self.sync_timeout_ns.store(timeout_ns(role), Ordering::SeqCst);
        r.1
    }

    /// How long a put waits for slaves, if the role waits.
    #[inline]
    pub(crate) fn sync_timeout(&self) -> Option<Duration> {
        match self.sync_timeout_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    pub(crate) fn term(&self) -> u64 {
        self.role.read().1
    }

    /// The address the built-in master transport listens on.
    pub(crate) fn set_bound(&self, addr: Option<SocketAddr>) {
        *self.bound.lock() = addr;
    }

    pub(crate) fn bound(&self) -> Option<SocketAddr> {
        *self.bound.lock()
    }

    fn check_term(&self, term: u64) -> Result<()> {
        if self.term() != term {
            return Err(Error::RoleChanged);
        }
        Ok(())
    }

    pub(crate) fn epochs(&self) -> Vec<EpochEntry> {
        self.epochs.lock().entries().to_vec()
    }
}

fn timeout_ns(role: Role) -> u64 {
    match role {
        Role::SyncMaster { timeout } => timeout.as_nanos().clamp(1, u64::MAX as u128) as u64,
        _ => 0,
    }
}

/// A master's link: what a transport reads to serve slaves, and where it reports what each
/// slave holds.
#[derive(Clone)]
pub struct MasterLink {
    core: Arc<LinkCore>,
    term: u64,
}

/// Commit-log bytes to send to a slave: whole records of one segment and one epoch.
pub struct ReplicationChunk {
    source: MessageSource,
    offset: u64,
    len: usize,
    next: u64,
    epoch: EpochEntry,
}

impl ReplicationChunk {
    /// Where the bytes start in the commit log.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The bytes: whole records, possibly ending with an end-of-segment filler (its 8-byte
    /// header only; the slave fills the rest of the segment itself).
    pub fn bytes(&self) -> &[u8] {
        let bytes = match &self.source {
            MessageSource::Mapped(segment, pos) => segment.read_bytes(*pos, self.len),
            MessageSource::Buffered(slice) => slice.get(..self.len),
        };
        // Published bytes never shrink while the segment is held, so the read cannot fail.
        bytes.unwrap_or(&[])
    }

    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.len as u64
    }

    /// Where the next chunk starts: [`end`](Self::end), or the next segment's start when the
    /// bytes end with an end-of-segment filler.
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    /// The epoch the bytes were written in.
    pub fn epoch(&self) -> u32 {
        self.epoch.epoch
    }

    /// Where that epoch starts in the log.
    pub fn epoch_start(&self) -> u64 {
        self.epoch.start_offset
    }
}

impl MasterLink {
    pub(crate) fn new(core: Arc<LinkCore>, term: u64) -> Self {
        MasterLink { core, term }
    }

    /// One past the last appended byte.
    pub fn max_offset(&self) -> u64 {
        self.core.log.max_offset()
    }

    /// Smallest commit-log offset held.
    pub fn min_offset(&self) -> u64 {
        self.core.log.min_offset()
    }

    /// Commit-log segment size (a slave must use the same).
    pub fn segment_size(&self) -> u64 {
        self.core.log.segment_size()
    }

    /// The master's epoch history, oldest first.
    pub fn epochs(&self) -> Vec<EpochEntry> {
        self.core.epochs()
    }

    /// The replication settings the store was opened with.
    pub fn config(&self) -> &ReplicationConfig {
        &self.core.config
    }

    /// Reads what to send a slave that holds everything below `offset`: whole records from
    /// there, at most `max_bytes` (but always one whole record), never across a segment or an
    /// epoch boundary. `Ok(None)` when nothing is appended past `offset` yet. An `offset` that is
    /// not where a record starts (the slave's log is not a prefix of this one) or that is
    /// outside the log is an error.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Option<ReplicationChunk>> {
        self.core.check_term(self.term)?;
        let (epoch, limit) = {
            let epochs = self.core.epochs.lock();
            match epochs.epoch_at(offset) {
                Some((entry, next)) => (entry, next.unwrap_or(u64::MAX)),
                None => {
                    return Err(Error::ReplicaData {
                        offset,
                        reason: "no epoch covers this offset".into(),
                    });
                }
            }
        };
        Ok(self
            .core
            .log
            .read_chunk(offset, max_bytes, limit)?
            .map(|(source, len, next)| ReplicationChunk {
                source,
                offset,
                len,
                next,
                epoch,
            }))
    }

    /// Waits until something is appended at or past `offset`, or `timeout` passes; whether it
    /// was.
    pub fn wait_for_data(&self, offset: u64, timeout: Duration) -> bool {
        let core = &self.core;
        let deadline = Instant::now() + timeout;
        let mut polls = 0u32;
        loop {
            if core.log.max_offset() > offset {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || core.term() != self.term {
                return false;
            }
            let mut guard = core.signal.lock.lock();
            if core.sync_timeout().is_some() || polls >= BUSY_POLLS {
                core.signal.sleepers.fetch_add(1, Ordering::SeqCst);
                if core.log.max_offset() <= offset {
                    // Bounded: a wake-up raced with the registration is retried soon.
                    let until = deadline.min(now + Duration::from_millis(50));
                    core.signal.cv.wait_until(&mut guard, until);
                }
                core.signal.sleepers.fetch_sub(1, Ordering::SeqCst);
            } else {
                polls += 1;
                core.signal
                    .cv
                    .wait_until(&mut guard, deadline.min(now + Duration::from_millis(1)));
            }
        }
    }

    /// Registers a connected slave called `name` (for logs and stats) that holds nothing yet;
    /// report what it holds with [`ReplicaAcks::ack`]. Dropping the handle disconnects it.
    pub fn replica(&self, name: impl Into<String>) -> ReplicaAcks {
        let name = name.into();
        let id = self.core.acks.connect(name.clone(), 0);
        tracing::info!(replica = %name, "slave connected");
        ReplicaAcks {
            core: Arc::clone(&self.core),
            id,
            name,
            acked: 0,
        }
    }

    /// Every connected slave and what it holds.
    pub fn replicas(&self) -> Vec<ReplicaStatus> {
        self.core.acks.replicas()
    }

    /// Tells the store which address the transport listens on (see
    /// [`MessageStore::replication_addr`](crate::MessageStore::replication_addr)).
    pub fn set_listen_addr(&self, addr: SocketAddr) {
        self.core.set_bound(Some(addr));
    }
}

/// One slave's acknowledgements, as a transport reports them.
pub struct ReplicaAcks {
    core: Arc<LinkCore>,
    id: u64,
    name: String,
    acked: u64,
}

impl ReplicaAcks {
    /// The slave holds everything below `offset`. An offset past the master's end (a slave that
    /// claims what was never sent: RocketMQ's #3015) or below an earlier one is refused with
    /// [`Error::BadAck`]; the transport should drop that slave.
    pub fn ack(&mut self, offset: u64) -> Result<()> {
        let max = self.core.log.max_offset();
        if offset > max {
            return Err(Error::BadAck {
                acked: offset,
                reason: format!("past the master's end {max}"),
            });
        }
        if offset < self.acked {
            return Err(Error::BadAck {
                acked: offset,
                reason: format!("below the earlier acknowledgement {}", self.acked),
            });
        }
        self.acked = offset;
        self.core.acks.ack(self.id, offset);
        Ok(())
    }

    /// The last acknowledged offset.
    pub fn acked(&self) -> u64 {
        self.acked
    }
}

impl Drop for ReplicaAcks {
    fn drop(&mut self) {
        tracing::info!(replica = %self.name, acked = self.acked, "slave disconnected");
        self.core.acks.disconnect(self.id);
    }
}

/// Bytes a slave appended, on their way to being held as its flush policy promises.
pub struct PendingHold {
    core: Arc<LinkCore>,
    end: u64,
    pending: Pending,
}

impl PendingHold {
    /// One past the bytes appended: where the next bytes must start.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Whether [`wait`](Self::wait) would return at once.
    pub fn is_done(&self) -> bool {
        self.pending.outcome().is_some()
    }

    /// Waits until the flush policy has its outcome: the offset below which the slave holds
    /// its bytes (acknowledge it). An error if the flush failed (the store then refuses writes).
    pub fn wait(self) -> Result<u64> {
        let outcome = self.pending.wait();
        self.core.log.held(self.end, outcome)
    }
}

/// What [`SlaveLink::append`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// One past the last byte appended: where the next bytes must start.
    pub end: u64,
    /// Everything below is held as the slave's flush policy promises (durable under
    /// `FlushPolicy::sync`, in the page cache otherwise): acknowledge this to the master.
    pub held: u64,
}

/// A slave's link: applies the master's bytes. Shaped so that a consensus library can drive it
/// too: append at an offset with an epoch, truncate to an offset.
#[derive(Clone)]
pub struct SlaveLink {
    core: Arc<LinkCore>,
    term: u64,
    master: SocketAddr,
}

impl SlaveLink {
    pub(crate) fn new(core: Arc<LinkCore>, term: u64, master: SocketAddr) -> Self {
        SlaveLink { core, term, master }
    }

    /// The master to follow, as configured.
    pub fn master(&self) -> SocketAddr {
        self.master
    }

    /// One past the last byte of the slave's log: where the master's next bytes must start.
    pub fn max_offset(&self) -> u64 {
        self.core.log.max_offset()
    }

    /// Commit-log segment size (the master's must be the same).
    pub fn segment_size(&self) -> u64 {
        self.core.log.segment_size()
    }

    /// The slave's epoch history, oldest first.
    pub fn epochs(&self) -> Vec<EpochEntry> {
        self.core.epochs()
    }

    /// The replication settings the store was opened with.
    pub fn config(&self) -> &ReplicationConfig {
        &self.core.config
    }

    /// Appends the master's `bytes`, written in `epoch` (which started at `epoch_start`), at
    /// `offset`. They must continue this log exactly (`offset` is [`max_offset`](Self::max_offset))
    /// and be whole records, each checked (framing, CRC, its own offset) and none crossing a
    /// segment boundary; an epoch may not go backwards, nor change its start. Nothing is appended
    /// unless all of it is valid. The records are then dispatched to consume queues and flushed
    /// as the slave's flush policy says.
    ///
    /// Returns at once, with the bytes appended; the returned [`PendingHold`] says when they are
    /// held as the slave's flush policy promises (what to acknowledge). Appends made meanwhile
    /// share that policy's syncs: a transport that keeps reading while earlier appends are
    /// synced acknowledges far more per sync than one that waits for each.
    pub fn append_async(&self, offset: u64, epoch: u32, epoch_start: u64, bytes: &[u8]) -> Result<PendingHold> {
        self.core.check_term(self.term)?;
        let expected = self.core.log.max_offset();
        if offset != expected {
            return Err(Error::ReplicaOffsetMismatch { expected, got: offset });
        }
        {
            let mut epochs = self.core.epochs.lock();
            match epochs.last() {
                Some(last) if epoch < last.epoch => {
                    return Err(Error::EpochRegressed {
                        got: epoch,
                        last: last.epoch,
                    });
                }
                Some(last) if epoch == last.epoch => {
                    if epoch_start != last.start_offset {
                        return Err(Error::ReplicaData {
                            offset,
                            reason: format!(
                                "epoch {epoch} said to start at {epoch_start}, but it starts at {}",
                                last.start_offset
                            ),
                        });
                    }
                }
                last => {
                    // A new epoch: it starts at or before these bytes and after the previous one.
                    if epoch_start > offset || last.is_some_and(|l| epoch_start < l.start_offset) {
                        return Err(Error::ReplicaData {
                            offset,
                            reason: format!("epoch {epoch} cannot start at {epoch_start}"),
                        });
                    }
                    // Recorded before the bytes: a crash in between leaves an epoch without
                    // data, which the next handshake treats as any other.
                    epochs.append(EpochEntry {
                        epoch,
                        start_offset: epoch_start,
                    })?;
                }
            }
        }
        let end = self.core.log.append_replicated(offset, bytes)?;
        self.core.bytes_in.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let (done, pending) = Pending::pair();
        self.core.log.hold(end, done);
        Ok(PendingHold {
            core: Arc::clone(&self.core),
            end,
            pending,
        })
    }

    /// [`append_async`](Self::append_async), then waits until the slave's flush policy holds
    /// the bytes.
    pub fn append(&self, offset: u64, epoch: u32, epoch_start: u64, bytes: &[u8]) -> Result<Appended> {
        let pending = self.append_async(offset, epoch, epoch_start, bytes)?;
        let end = pending.end();
        Ok(Appended {
            end,
            held: pending.wait()?,
        })
    }

    /// Cuts the log at `offset`, durably: every record at or past it is gone from the commit
    /// log (whole segments past it are moved to `lost+found/`), the consume queues and the epoch
    /// history. Readers holding messages of the cut part keep valid (old) bytes.
    pub fn truncate(&self, offset: u64) -> Result<()> {
        self.core.check_term(self.term)?;
        let end = self.core.log.max_offset();
        if offset > end {
            return Err(Error::ReplicaOffsetMismatch {
                expected: end,
                got: offset,
            });
        }
        if offset < end {
            tracing::warn!(
                from = offset,
                to = end,
                "truncating the slave's log to the consistent point"
            );
            self.core.log.truncate(offset)?;
        }
        self.core.epochs.lock().truncate_from(offset)?;
        Ok(())
    }

    /// Where this log and a master's agree, from the master's epoch history and end: the offset
    /// to [`truncate`](Self::truncate) to before appending. An empty slave agrees with any master
    /// at its start. [`Error::Diverged`] when they share no epoch, or when this slave has seen a
    /// later epoch than the master (the master is stale: following it would cut records a newer
    /// master wrote).
    pub fn consistent_point(&self, master_epochs: &[EpochEntry], master_end: u64) -> Result<u64> {
        let local_end = self.core.log.max_offset();
        let local = self.core.epochs();
        if local_end == 0 {
            return Ok(0);
        }
        if let (Some(l), Some(m)) = (local.last(), master_epochs.last())
            && l.epoch > m.epoch
        {
            return Err(Error::Diverged {
                reason: format!(
                    "this slave has seen epoch {} but the master is at epoch {}: the master is stale",
                    l.epoch, m.epoch
                ),
            });
        }
        epoch::consistent_point(&local, local_end, master_epochs, master_end).ok_or_else(|| Error::Diverged {
            reason: format!(
                "no epoch in common (ours: {local:?}, ending at {local_end}; the master's: {master_epochs:?})"
            ),
        })
    }

    /// Commit-log bytes appended through this store's links so far.
    pub fn bytes_received(&self) -> u64 {
        self.core.bytes_in.load(Ordering::Relaxed)
    }
}
