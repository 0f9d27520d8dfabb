//! A put's outcome where the flush policy and replication meet: the status they make together
//! (which also stops the store from taking writes after a failed flush), and [`PendingPut`], the
//! put whose outcome comes later.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use crate::flush::{FlushOutcome, Pending};
use crate::message::{PutResult, PutStatus};
use crate::replication::ReplicationOutcome;

/// The status a put reports for its flush outcome. A failed flush also stops the store from
/// accepting writes (`writeable`): after a failed fsync nothing pending can be trusted.
/// A put's status from its flush and replication outcomes, as RocketMQ combines them: either
/// failing makes the put's status, the replication's when both fail.
pub(crate) fn combined_status(
    flush: FlushOutcome,
    replication: Option<ReplicationOutcome>,
    writeable: &AtomicBool,
) -> PutStatus {
    let flushed = flush_status(flush, writeable);
    match replication {
        Some(ReplicationOutcome::TimedOut) => PutStatus::FlushSlaveTimeout,
        Some(ReplicationOutcome::NoSlave) => PutStatus::SlaveNotAvailable,
        _ => flushed,
    }
}

fn flush_status(outcome: FlushOutcome, writeable: &AtomicBool) -> PutStatus {
    match outcome {
        FlushOutcome::Durable | FlushOutcome::NotAwaited => PutStatus::Ok,
        FlushOutcome::TimedOut => PutStatus::FlushDiskTimeout,
        FlushOutcome::Failed => {
            writeable.store(false, Ordering::Release);
            PutStatus::FlushDiskTimeout
        }
    }
}

/// A message appended by [`MessageStore::put_async`](crate::MessageStore::put_async), whose
/// durability the flush policy confirms later.
///
/// Its place in the log is known at once. [`wait`](Self::wait) blocks for the final
/// [`PutResult`]; as a [`Future`] it resolves to the same, so an asynchronous broker can keep
/// many puts in flight on few threads and still acknowledge each only when its policy is met.
/// Dropping it forgoes the outcome, not the message: the message stays appended.
pub struct PendingPut {
    appended: PutResult,
    pending: Pending,
    /// The slaves' acknowledgement, under `SyncMaster`.
    replication: Option<Pending<ReplicationOutcome>>,
    writeable: Arc<AtomicBool>,
}

impl PendingPut {
    pub(crate) fn new(
        appended: PutResult,
        pending: Pending,
        replication: Option<Pending<ReplicationOutcome>>,
        writeable: Arc<AtomicBool>,
    ) -> Self {
        PendingPut {
            appended,
            pending,
            replication,
            writeable,
        }
    }

    /// Where the record starts in the commit log.
    pub fn commit_log_offset(&self) -> u64 {
        self.appended.commit_log_offset
    }

    /// The message's offset in its queue.
    pub fn queue_offset(&self) -> u64 {
        self.appended.queue_offset
    }

    /// Bytes of the record in the commit log.
    pub fn wrote_bytes(&self) -> u32 {
        self.appended.wrote_bytes
    }

    /// The store timestamp assigned (ms since the epoch).
    pub fn store_timestamp(&self) -> u64 {
        self.appended.store_timestamp
    }

    /// Whether the outcome is known, so that [`wait`](Self::wait) would not block.
    pub fn is_done(&self) -> bool {
        self.pending.outcome().is_some() && self.replication.as_ref().is_none_or(|r| r.outcome().is_some())
    }

    /// Blocks until the policy's outcome is known and returns the put's result, as
    /// [`put`](crate::MessageStore::put) would have. Under the built-in sync policy that is about
    /// its timeout at most; a sync that outlasts the timeout while covering this put ends first,
    /// and its outcome is the one reported.
    ///
    /// Under [`Role::SyncMaster`](crate::replication::Role::SyncMaster) it also waits for the
    /// slaves' acknowledgement (at most the role's timeout), and the status combines both.
    pub fn wait(self) -> PutResult {
        let flush = self.pending.wait();
        let replication = self.replication.as_ref().map(|r| r.wait());
        self.result(flush, replication)
    }

    fn result(&self, flush: FlushOutcome, replication: Option<ReplicationOutcome>) -> PutResult {
        PutResult {
            status: combined_status(flush, replication, &self.writeable),
            ..self.appended
        }
    }
}

impl Future for PendingPut {
    type Output = PutResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<PutResult> {
        let Poll::Ready(flush) = self.pending.poll(cx) else {
            return Poll::Pending;
        };
        let replication = match &self.replication {
            Some(r) => match r.poll(cx) {
                Poll::Ready(outcome) => Some(outcome),
                Poll::Pending => return Poll::Pending,
            },
            None => None,
        };
        Poll::Ready(self.result(flush, replication))
    }
}

impl std::fmt::Debug for PendingPut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingPut")
            .field("commit_log_offset", &self.appended.commit_log_offset)
            .field("queue_offset", &self.appended.queue_offset)
            .field("done", &self.is_done())
            .finish()
    }
}
