//! The store's side of replication: its parts as a [`LogAccess`] for the links, the role and
//! its changes, and what a put waits for under `SyncMaster`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::MessageStore;
use crate::checkpoint::CheckpointFile;
use crate::codec::Verify;
use crate::commit_log::CommitLog;
use crate::consume_queue::QueueTable;
use crate::dispatch::DispatchShared;
use crate::dispatch::write_checkpoint;
use crate::error::{Error, Result};
use crate::flush::{Completion, FlushOutcome, FlushTarget, Flusher, Pending};
use crate::index::IndexService;
use crate::message::MessageSource;
use crate::replication::epoch::{EpochEntry, EpochHistory};
use crate::replication::{
    LinkCore, LogAccess, MasterLink, ReplicaStatus, ReplicationHook, ReplicationOutcome, Role, SlaveLink,
    TcpReplication,
};
use crate::segment::Backend;

/// How long a promotion waits for the dispatcher to take in every replicated record.
const PROMOTE_DISPATCH_WAIT: Duration = Duration::from_secs(60);

/// A store's replication: the shared core its links use, and the transport.
pub(crate) struct Replication {
    pub(crate) core: Arc<LinkCore>,
    hook: Arc<dyn ReplicationHook>,
    /// Serialises role changes.
    changing: Mutex<()>,
}

/// The parts of a store a link reads and changes.
pub(crate) struct StoreLog<B: Backend> {
    pub(crate) log: Arc<CommitLog<B>>,
    pub(crate) queues: Arc<QueueTable<B>>,
    pub(crate) index: Option<Arc<IndexService<B>>>,
    pub(crate) dispatch: Arc<DispatchShared>,
    pub(crate) flusher: Arc<dyn Flusher>,
    pub(crate) checkpoint: Arc<CheckpointFile>,
    pub(crate) writeable: Arc<AtomicBool>,
    pub(crate) verify: Verify,
    pub(crate) dir: PathBuf,
}

impl<B: Backend> LogAccess for StoreLog<B> {
    fn max_offset(&self) -> u64 {
        self.log.max_offset()
    }

    fn min_offset(&self) -> u64 {
        self.log.min_offset()
    }

    fn segment_size(&self) -> u64 {
        self.log.segment_size()
    }

    fn read_chunk(&self, offset: u64, max: usize, limit: u64) -> Result<Option<(MessageSource, usize, u64)>> {
        self.log.read_chunk(offset, max, limit)
    }

    fn append_replicated(&self, offset: u64, bytes: &[u8]) -> Result<u64> {
        if let Some(why) = self.log.refusal() {
            return Err(Error::NotWriteable(why));
        }
        if !self.writeable.load(Ordering::Acquire) {
            return Err(Error::NotWriteable("a commit-log flush failed"));
        }
        let end = self.log.append_replicated(offset, bytes, self.verify)?;
        self.dispatch.wake();
        Ok(end)
    }

    fn hold(&self, end: u64, done: Completion) {
        self.flusher.after_append_async(end, done);
    }

    fn held(&self, end: u64, outcome: FlushOutcome) -> Result<u64> {
        match outcome {
            FlushOutcome::Durable | FlushOutcome::NotAwaited => Ok(end),
            // Acknowledge only what the policy vouches for.
            FlushOutcome::TimedOut => Ok(self.log.flushed_offset().min(end)),
            FlushOutcome::Failed => {
                self.writeable.store(false, Ordering::Release);
                Err(Error::NotWriteable("a commit-log flush failed"))
            }
        }
    }

    fn truncate(&self, offset: u64) -> Result<()> {
        let _paused = self.dispatch.pause();
        let lost_found = crate::layout::lost_found_dir(&self.dir, "diverged");
        let moved = self.log.truncate_replicated(offset, &lost_found)?;
        for q in self.queues.all() {
            q.truncate_to_log(offset)?;
        }
        if let Some(index) = &self.index {
            index.truncate_from(offset)?;
        }
        self.dispatch.rewind(offset);
        // The next recovery must not take the cut records' durability for granted.
        write_checkpoint(
            &self.log,
            &self.queues,
            self.index.as_deref(),
            &self.dispatch,
            &self.checkpoint,
        )?;
        tracing::warn!(offset, moved = ?moved, "slave log truncated");
        Ok(())
    }
}

impl Replication {
    /// Sets up replication for a store opening in `role`, and starts the transport.
    pub(crate) fn start(
        access: Arc<dyn LogAccess>,
        config: &crate::config::StoreConfig,
        set_slave_of: &dyn Fn(Option<SocketAddr>),
    ) -> Result<Self> {
        let epochs = EpochHistory::load(&config.dir)?;
        let hook: Arc<dyn ReplicationHook> = match &config.replication.hook {
            Some(hook) => Arc::clone(hook),
            None => Arc::new(TcpReplication::new()),
        };
        let core = Arc::new(LinkCore::new(
            access,
            epochs,
            config.replication.clone(),
            config.dir.clone(),
            config.role,
        ));
        let replication = Replication {
            core,
            hook,
            changing: Mutex::new(()),
        };
        let term = replication.core.term();
        match config.role {
            Role::Slave { master } => {
                set_slave_of(Some(master));
                replication.start_slave(term, master)?;
            }
            _ => {
                replication.begin_epoch()?;
                replication.start_master(term)?;
            }
        }
        Ok(replication)
    }

    /// A master starts a new epoch at its end every time it becomes master (at open too), so
    /// that what it writes from now on can never be confused with what another master wrote
    /// from the same point.
    fn begin_epoch(&self) -> Result<()> {
        let end = self.core.log.max_offset();
        let mut epochs = self.core.epochs.lock();
        let entry = match epochs.last() {
            Some(last) => EpochEntry {
                epoch: last
                    .epoch
                    .checked_add(1)
                    .ok_or_else(|| Error::InvalidConfig("epoch overflow".into()))?,
                start_offset: end,
            },
            None => EpochEntry {
                epoch: 1,
                start_offset: self.core.log.min_offset().min(end),
            },
        };
        epochs.append(entry)?;
        tracing::info!(epoch = entry.epoch, start = entry.start_offset, "master epoch begins");
        Ok(())
    }

    fn start_master(&self, term: u64) -> Result<()> {
        self.core.acks.restart();
        self.hook
            .start_master(MasterLink::new(Arc::clone(&self.core), term))
            .map_err(|e| Error::io(&self.core.dir, e))
    }

    fn start_slave(&self, term: u64, master: SocketAddr) -> Result<()> {
        self.hook
            .start_slave(SlaveLink::new(Arc::clone(&self.core), term, master))
            .map_err(|e| Error::io(&self.core.dir, e))
    }

    /// Stops the transport and fails the puts still waiting for slaves.
    pub(crate) fn stop(&self) {
        self.hook.stop();
        self.core.acks.stop();
        self.core.set_bound(None);
    }

    /// Asks, for a put ending at `end`, for the slaves' acknowledgement, when the role waits
    /// for one.
    #[inline]
    pub(crate) fn after_append(&self, end: u64) -> Option<Pending<ReplicationOutcome>> {
        self.core.appended();
        self.hook.appended(end);
        let timeout = self.core.sync_timeout()?;
        let (done, pending) = Pending::pair();
        self.core.acks.wait(end, timeout, done);
        Some(pending)
    }
}

impl<B: Backend> MessageStore<B> {
    fn replication(&self) -> Result<&Replication> {
        self.replication.as_ref().ok_or_else(|| {
            Error::InvalidConfig(
                "replication is not configured: open the store with a role, a listen address or a replication hook"
                    .into(),
            )
        })
    }

    /// The store's replication role.
    pub fn role(&self) -> Role {
        self.replication
            .as_ref()
            .map_or(Role::AsyncMaster, |r| r.core.role.read().0)
    }

    /// Changes the replication role at run time: promote a slave whose master died
    /// (`AsyncMaster`/`SyncMaster`: it takes everything it replicated into its consume queues,
    /// starts a new epoch at its end, and takes puts), or demote a master so it follows another
    /// (`Slave`: puts are refused from now on; on connecting, the new master's epochs decide
    /// what of this log is kept). The transport is restarted for the new role.
    pub fn set_role(&self, role: Role) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let r = self.replication()?;
        let _changing = r.changing.lock();
        let old = r.core.role.read().0;
        r.hook.stop();
        match role {
            Role::Slave { master } => {
                // Under the append lock: no producer append gets in after this.
                self.log.set_slave_of(Some(master));
                r.core.acks.stop();
                r.core.set_bound(None);
                let term = r.core.set_role(role);
                tracing::info!(from = old.name(), %master, "now a slave");
                r.start_slave(term, master)
            }
            _ => {
                if !old.is_master() {
                    // Every replicated record must be in its queue before a put takes the next
                    // queue offset.
                    if !self.wait_dispatched(PROMOTE_DISPATCH_WAIT) {
                        return Err(Error::NotWriteable("replicated records are not all dispatched yet"));
                    }
                    r.begin_epoch()?;
                }
                let term = r.core.set_role(role);
                self.log.set_slave_of(None);
                tracing::info!(from = old.name(), to = role.name(), "now a master");
                r.start_master(term)
            }
        }
    }

    /// Where the built-in transport of a master listens (the port chosen, when configured with
    /// port 0). `None` for a slave, or a master not listening.
    pub fn replication_addr(&self) -> Option<SocketAddr> {
        self.replication.as_ref().and_then(|r| r.core.bound())
    }

    /// Connected slaves within the in-sync gap of this master's end.
    pub fn in_sync_slaves(&self) -> usize {
        self.replication
            .as_ref()
            .map_or(0, |r| r.core.acks.in_sync(self.log.max_offset()))
    }

    /// Every connected slave and what it holds.
    pub fn replicas(&self) -> Vec<ReplicaStatus> {
        self.replication
            .as_ref()
            .map_or_else(Vec::new, |r| r.core.acks.replicas())
    }

    /// The epoch history (empty for a store that takes no part in replication).
    pub fn epochs(&self) -> Vec<EpochEntry> {
        self.replication.as_ref().map_or_else(Vec::new, |r| r.core.epochs())
    }
}
