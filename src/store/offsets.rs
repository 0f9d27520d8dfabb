//! Consumer-group offsets through the store: names and queue ids are checked as for puts, and
//! each offset is compared with its queue's readable range (see
//! [`consumer_offset`](crate::consumer_offset)).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::MessageStore;
use crate::consumer_offset::{CommitStatus, ConsumerOffsets, GroupOffset};
use crate::error::{Error, Result};
use crate::message::validate_group;
use crate::segment::Backend;
use crate::service::Periodic;

/// Starts the thread that writes the offsets every `interval` when they changed.
pub(super) fn spawn_flusher(offsets: &Arc<ConsumerOffsets>, interval: Duration) -> io::Result<Periodic> {
    let offsets = Arc::clone(offsets);
    Periodic::spawn("mqstore-offsets", interval, move || match offsets.flush() {
        Ok(_) | Err(Error::Closed) => {}
        // The table stays dirty: the next tick (or close) tries again.
        Err(e) => tracing::error!(error = %e, "flushing consumer offsets failed"),
    })
}

impl<B: Backend> MessageStore<B> {
    /// Records that `group` has consumed `topic`/`queue_id` up to `offset` (the next offset it
    /// will read). The offset is recorded whatever its status, as RocketMQ does; the status says
    /// whether it lies outside the queue's `[min_offset, max_offset]`. Durable at the next
    /// periodic flush ([`StoreConfig::consumer_offset_flush_interval`](crate::StoreConfig::consumer_offset_flush_interval)),
    /// [`flush_offsets`](Self::flush_offsets) or [`close`](Self::close).
    ///
    /// Fails, recording nothing, on an invalid group or topic, a queue id out of range, or a
    /// closed store.
    ///
    /// ```
    /// use mqstore::{Message, MessageStore, StoreConfig};
    /// # let dir = tempfile::tempdir()?;
    /// # let config = || StoreConfig::new(dir.path()).commit_log_segment_size(1 << 20);
    /// let store = MessageStore::open(config())?;
    /// store.put(Message::new("orders", 0, b"x".to_vec()))?;
    /// store.commit_offset("billing", "orders", 0, 1)?;
    /// store.close()?;
    /// let store = MessageStore::open(config())?;
    /// assert_eq!(store.committed_offset("billing", "orders", 0)?, Some(1));
    /// assert_eq!(store.committed_offset("audit", "orders", 0)?, None);
    /// # store.close()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit_offset(&self, group: &str, topic: &str, queue_id: u32, offset: u64) -> Result<CommitStatus> {
        self.check_offset_key(group, topic, queue_id)?;
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let status = self.offset_status(topic, queue_id, offset);
        self.offsets.commit(group, topic, queue_id, offset)?;
        Ok(status)
    }

    /// The offset `group` committed for `topic`/`queue_id`, if any. Never adjusted to the
    /// queue's range: [`committed_offset_status`](Self::committed_offset_status) tells where it
    /// stands.
    pub fn committed_offset(&self, group: &str, topic: &str, queue_id: u32) -> Result<Option<u64>> {
        self.check_offset_key(group, topic, queue_id)?;
        Ok(self.offsets.get(group, topic, queue_id))
    }

    /// The offset `group` committed for `topic`/`queue_id`, if any, with where it stands against
    /// the queue now (below its minimum after retention removed old messages, for example).
    pub fn committed_offset_status(&self, group: &str, topic: &str, queue_id: u32) -> Result<Option<GroupOffset>> {
        self.check_offset_key(group, topic, queue_id)?;
        Ok(self.offsets.get(group, topic, queue_id).map(|offset| GroupOffset {
            topic: topic.to_string(),
            queue_id,
            offset,
            status: self.offset_status(topic, queue_id, offset),
        }))
    }

    /// Every offset `group` committed, sorted by topic and queue id, each with its status.
    pub fn group_offsets(&self, group: &str) -> Result<Vec<GroupOffset>> {
        validate_group(group)?;
        Ok(self
            .offsets
            .group(group)
            .into_iter()
            .map(|(topic, queue_id, offset)| {
                let status = self.offset_status(&topic, queue_id, offset);
                GroupOffset {
                    topic,
                    queue_id,
                    offset,
                    status,
                }
            })
            .collect())
    }

    /// Every consumer group with a committed offset, sorted.
    pub fn consumer_groups(&self) -> Vec<String> {
        self.offsets.groups()
    }

    /// Writes the committed offsets now if they changed since the last flush. Fails with
    /// [`Error::Closed`] once the store is closed (`close` has flushed them) or halted.
    pub fn flush_offsets(&self) -> Result<()> {
        self.offsets.flush().map(drop)
    }

    fn check_offset_key(&self, group: &str, topic: &str, queue_id: u32) -> Result<()> {
        validate_group(group)?;
        self.check_queue(topic, queue_id)
    }

    fn offset_status(&self, topic: &str, queue_id: u32, offset: u64) -> CommitStatus {
        // The maximum waits for puts already returned to be dispatched, so a consumer that
        // read a message just put is not told it is ahead of the queue.
        CommitStatus::of(
            offset,
            self.min_offset(topic, queue_id),
            self.max_offset(topic, queue_id),
        )
    }
}
