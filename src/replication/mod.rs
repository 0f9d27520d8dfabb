//! Master/slave replication, in RocketMQ's model: the second axis of durability.
//!
//! - A [`Role`] is chosen in [`StoreConfig`](crate::StoreConfig) and changed at run time with
//!   [`MessageStore::set_role`](crate::MessageStore::set_role). An `AsyncMaster` never waits for
//!   a slave; a `SyncMaster` acknowledges a put only once enough slaves hold its bytes; a `Slave`
//!   refuses producer puts and applies the master's bytes, at the same commit-log offsets.
//! - A transport moves the bytes. The built-in one is TCP ([`TcpReplication`]); a broker brings
//!   its own by implementing [`ReplicationHook`], which is handed a [`MasterLink`] (read the log,
//!   report slaves' acknowledgements) or a [`SlaveLink`] (append at an offset with an epoch,
//!   truncate to an offset).
//! - Epochs ([`epoch`]) tell whose records are whose after a failover: on connect, a slave finds
//!   the last point where its log and the master's agree and cuts everything after it, durably,
//!   before it takes new bytes.
//!
//! What the store guarantees, whoever the transport is: a slave appends only whole, CRC-checked
//! records that continue its log exactly, never split across its segments; it builds its consume
//! queues from them as the master did and flushes them under its own flush policy; an
//! acknowledgement above what the master holds is refused.

mod ack;
pub mod epoch;
pub mod frame;
mod link;
mod tcp;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use ack::ReplicaStatus;
pub use link::{Appended, MasterLink, PendingHold, ReplicaAcks, ReplicationChunk, SlaveLink};
pub(crate) use link::{LinkCore, LogAccess};
pub use tcp::TcpReplication;

use crate::error::{Error, Result};

/// A store's part in replication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Serves slaves but never waits for them (RocketMQ's `ASYNC_MASTER`, the default): a put's
    /// status is its flush policy's alone.
    AsyncMaster,
    /// A put is acknowledged only once the configured number of in-sync slaves hold its bytes
    /// (RocketMQ's `SYNC_MASTER`). Fewer slaves in sync than needed: `SlaveNotAvailable` at once;
    /// not acknowledged within `timeout`: `FlushSlaveTimeout`.
    SyncMaster {
        /// How long a put waits for the slaves (RocketMQ's `slaveTimeout`, default 3 s).
        timeout: Duration,
    },
    /// Follows the master at `master`: producer puts are refused with
    /// [`Error::RoleIsSlave`], reads serve the replicated data.
    Slave {
        /// The master's replication address.
        master: SocketAddr,
    },
}

impl Role {
    /// `SyncMaster` with RocketMQ's default timeout of 3 s.
    pub fn sync_master() -> Self {
        Role::SyncMaster {
            timeout: Duration::from_secs(3),
        }
    }

    /// Whether the store takes producer puts in this role.
    pub fn is_master(&self) -> bool {
        !matches!(self, Role::Slave { .. })
    }

    /// A short name: `async-master`, `sync-master` or `slave`.
    pub fn name(&self) -> &'static str {
        match self {
            Role::AsyncMaster => "async-master",
            Role::SyncMaster { .. } => "sync-master",
            Role::Slave { .. } => "slave",
        }
    }
}

/// What became of a put's replication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicationOutcome {
    /// Enough slaves acknowledged the bytes.
    Replicated,
    /// The role does not wait for slaves.
    NotAwaited,
    /// The slaves did not acknowledge within the timeout (`FlushSlaveTimeout`).
    TimedOut,
    /// Fewer slaves than needed were connected and in sync (`SlaveNotAvailable`).
    NoSlave,
}

impl crate::flush::Outcome for ReplicationOutcome {
    const ABANDONED: Self = ReplicationOutcome::TimedOut;
}

/// A replication transport: the built-in [`TcpReplication`], or a broker's own.
///
/// The store calls `start_master` or `start_slave` when it takes that role (at open, and at
/// every [`set_role`](crate::MessageStore::set_role)), after `stop` of the previous role, and
/// `stop` when it closes. A transport does no waiting for puts: it reports each slave's
/// acknowledged offset through [`MasterLink::replica`], and the store wakes the puts covered.
///
/// An in-process transport, the smallest one there is: a slave store pulls its master's bytes
/// through the master's link on a thread of its own, as a broker would over its own connection.
///
/// ```
/// use std::io;
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::thread::JoinHandle;
/// use std::time::Duration;
/// use mqstore::replication::{MasterLink, ReplicationHook, Role, SlaveLink};
/// use mqstore::{Message, MessageStore, PutStatus, StoreConfig};
/// use parking_lot::Mutex;
///
/// #[derive(Default)]
/// struct InProcess {
///     master: Mutex<Option<MasterLink>>,
///     stop: Arc<AtomicBool>,
///     follower: Mutex<Option<JoinHandle<()>>>,
/// }
///
/// impl ReplicationHook for InProcess {
///     fn start_master(&self, link: MasterLink) -> io::Result<()> {
///         *self.master.lock() = Some(link);
///         Ok(())
///     }
///     fn start_slave(&self, slave: SlaveLink) -> io::Result<()> {
///         let master = self.master.lock().clone().ok_or_else(|| io::Error::other("no master yet"))?;
///         let stop = Arc::clone(&self.stop);
///         *self.follower.lock() = Some(std::thread::spawn(move || {
///             let mut acks = master.replica("in-process");
///             while !stop.load(Ordering::SeqCst) {
///                 let at = slave.max_offset();
///                 match master.read(at, 1 << 20) {
///                     Ok(Some(chunk)) => {
///                         let appended = slave
///                             .append(chunk.offset(), chunk.epoch(), chunk.epoch_start(), chunk.bytes())
///                             .expect("the master's bytes continue our log");
///                         acks.ack(appended.held).expect("we hold no more than the master");
///                     }
///                     Ok(None) => {
///                         master.wait_for_data(at, Duration::from_millis(10));
///                     }
///                     Err(e) => panic!("{e}"),
///                 }
///             }
///         }));
///         Ok(())
///     }
///     fn stop(&self) {
///         self.stop.store(true, Ordering::SeqCst);
///         if let Some(t) = self.follower.lock().take() {
///             t.join().unwrap();
///         }
///     }
/// }
///
/// # fn main() -> mqstore::Result<()> {
/// let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
/// let transport: Arc<dyn ReplicationHook> = Arc::new(InProcess::default());
/// let master = MessageStore::open(
///     StoreConfig::new(a.path())
///         .commit_log_segment_size(1 << 20)
///         .role(Role::sync_master())
///         .replication_hook(Arc::clone(&transport)),
/// )?;
/// let slave = MessageStore::open(
///     StoreConfig::new(b.path())
///         .commit_log_segment_size(1 << 20)
///         .role(Role::Slave { master: "127.0.0.1:1".parse().unwrap() }) // unused by this transport
///         .replication_hook(transport),
/// )?;
/// while master.in_sync_slaves() == 0 {
///     std::thread::sleep(Duration::from_millis(1)); // the follower thread is starting
/// }
/// // A sync master's put returns Ok only once the slave holds it.
/// let r = master.put(Message::new("orders", 0, b"replicated".to_vec()))?;
/// assert_eq!(r.status, PutStatus::Ok);
/// assert!(slave.max_commit_log_offset() >= r.commit_log_offset + r.wrote_bytes as u64);
/// slave.wait_dispatched(Duration::from_secs(5));
/// let g = slave.get("orders", 0, r.queue_offset, 1)?;
/// assert_eq!(g.messages[0].body(), b"replicated");
/// slave.close()?;
/// master.close()?;
/// # Ok(()) }
/// ```
pub trait ReplicationHook: Send + Sync + 'static {
    /// The store is a master now: serve slaves from `link`. Don't block; start threads here.
    fn start_master(&self, link: MasterLink) -> io::Result<()>;

    /// The store is a slave now: follow the master (its address is [`SlaveLink::master`]) and
    /// apply what it sends through `link`. Don't block; start threads here.
    fn start_slave(&self, link: SlaveLink) -> io::Result<()>;

    /// Told after every append on a master, outside the append lock, with the end offset of what
    /// was appended. The default does nothing: [`MasterLink::wait_for_data`] already wakes on
    /// appends.
    fn appended(&self, end_offset: u64) {
        let _ = end_offset;
    }

    /// Stops whatever the last `start_*` started, and waits for it: after `stop` returns the
    /// transport no longer uses the links it was given.
    fn stop(&self);
}

/// Settings of replication, with RocketMQ's defaults where it has them.
#[derive(Clone)]
#[must_use]
pub struct ReplicationConfig {
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) in_sync_slaves: usize,
    pub(crate) max_gap_not_in_sync: u64,
    pub(crate) transfer_batch: usize,
    pub(crate) max_frame_size: u32,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) heartbeat_timeout: Duration,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
    pub(crate) hook: Option<Arc<dyn ReplicationHook>>,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            listen: None,
            in_sync_slaves: 1,
            max_gap_not_in_sync: 256 << 20,
            transfer_batch: 256 << 10,
            max_frame_size: 16 << 20,
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(10),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            hook: None,
        }
    }
}

impl ReplicationConfig {
    /// Where a master's built-in TCP transport listens for slaves (RocketMQ's `haListenPort`;
    /// default: none, the master serves no slave). Port 0 picks a free port:
    /// [`MessageStore::replication_addr`](crate::MessageStore::replication_addr) tells which.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Slaves that must hold a put's bytes before a `SyncMaster` acknowledges it (default 1).
    pub fn in_sync_slaves(mut self, n: usize) -> Self {
        self.in_sync_slaves = n;
        self
    }

    /// A slave more than this many bytes behind the master does not count as in sync
    /// (RocketMQ's `haMaxGapNotInSync`, default 256 MiB).
    pub fn max_gap_not_in_sync(mut self, bytes: u64) -> Self {
        self.max_gap_not_in_sync = bytes;
        self
    }

    /// Most commit-log bytes the master sends in one frame (default 256 KiB; RocketMQ's
    /// `haTransferBatchSize` is 32 KiB). A frame always carries at least one whole record.
    pub fn transfer_batch(mut self, bytes: usize) -> Self {
        self.transfer_batch = bytes;
        self
    }

    /// Largest frame body either side accepts (default 16 MiB). Bounds every allocation made
    /// for bytes from the network; must hold the largest record.
    pub fn max_frame_size(mut self, bytes: u32) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// How often each side sends a heartbeat when it has nothing else to send (default 1 s;
    /// RocketMQ's `haSendHeartbeatInterval` is 5 s), and how long without hearing from the peer
    /// before a side drops the connection (default 10 s; RocketMQ's `haHousekeepingInterval`
    /// is 20 s).
    pub fn heartbeat(mut self, interval: Duration, timeout: Duration) -> Self {
        self.heartbeat_interval = interval;
        self.heartbeat_timeout = timeout;
        self
    }

    /// A slave's wait before reconnecting after a drop: from `min`, doubling up to `max`
    /// (default 100 ms to 5 s).
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max;
        self
    }

    pub(crate) fn validate(&self, max_message_size: usize) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidConfig(what));
        if self.in_sync_slaves == 0 {
            return bad("replication in_sync_slaves must be at least 1".into());
        }
        if self.transfer_batch == 0 {
            return bad("replication transfer_batch must be at least 1 byte".into());
        }
        // A frame carries at least one whole record: the largest body plus its headers and up
        // to 32 KiB of properties.
        let largest_record = max_message_size as u64 + (64 << 10);
        if (self.max_frame_size as u64) < largest_record {
            return bad(format!(
                "replication max_frame_size {} cannot hold a record of the largest message ({} bytes with headers)",
                self.max_frame_size, largest_record
            ));
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_timeout <= self.heartbeat_interval {
            return bad("replication heartbeat timeout must exceed a non-zero heartbeat interval".into());
        }
        if self.reconnect_min.is_zero() || self.reconnect_max < self.reconnect_min {
            return bad("replication reconnect backoff must be non-zero, min <= max".into());
        }
        Ok(())
    }
}

impl fmt::Debug for ReplicationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicationConfig")
            .field("listen", &self.listen)
            .field("in_sync_slaves", &self.in_sync_slaves)
            .field("max_gap_not_in_sync", &self.max_gap_not_in_sync)
            .field("transfer_batch", &self.transfer_batch)
            .field("max_frame_size", &self.max_frame_size)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("custom_hook", &self.hook.is_some())
            .finish()
    }
}
