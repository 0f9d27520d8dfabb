//! Lookups that do not go through a consume queue: by key (the index), by message id (the
//! commit-log offset it names).

use super::MessageStore;
use crate::codec;
use crate::error::{Error, Result};
use crate::index::{self, IndexFileInfo, MAX_QUERY_RESULTS};
use crate::message::{StoredMessage, validate_topic};
use crate::segment::Backend;
use crate::unique_key::decode_offset_msg_id;

fn check_key(key: &str) -> Result<()> {
    let bad = |reason| Error::InvalidKey {
        key: key.chars().take(80).collect(),
        reason,
    };
    if key.is_empty() {
        return Err(bad("empty"));
    }
    if key.contains(codec::KEY_SEPARATOR) {
        return Err(bad("contains a space"));
    }
    Ok(())
}

impl<B: Backend> MessageStore<B> {
    /// Every message of `topic` with `key` among its keys (or as its `UNIQ_KEY`), newest first,
    /// at most `max` (and at most 64, RocketMQ's `maxMsgsNumBatch`). Hits are confirmed on each
    /// record's own keys: the index stores only hashes, which collide.
    ///
    /// Sees a message once it is dispatched, like [`get`](Self::get); a message whose put
    /// returned before the call is always seen.
    ///
    /// ```
    /// use mqstore::{Message, MessageStore, StoreConfig};
    /// # let dir = tempfile::tempdir()?;
    /// let store = MessageStore::open(StoreConfig::new(dir.path()).commit_log_segment_size(1 << 20))?;
    /// store.put(Message::new("orders", 0, b"first".to_vec()).with_keys(["order-42"]))?;
    /// store.put(Message::new("orders", 2, b"second".to_vec()).with_keys(["order-42", "vip"]))?;
    /// let found = store.query_by_key("orders", "order-42", 16)?;
    /// let bodies: Vec<&[u8]> = found.iter().map(|m| m.body()).collect();
    /// assert_eq!(bodies, [&b"second"[..], b"first"], "newest first");
    /// # store.close()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn query_by_key(&self, topic: &str, key: &str, max: usize) -> Result<Vec<StoredMessage>> {
        self.query_by_key_between(topic, key, 0, u64::MAX, max)
    }

    /// As [`query_by_key`](Self::query_by_key), only messages stored in `begin_ms..=end_ms`
    /// (RocketMQ's `queryMessage`).
    pub fn query_by_key_between(
        &self,
        topic: &str,
        key: &str,
        begin_ms: u64,
        end_ms: u64,
        max: usize,
    ) -> Result<Vec<StoredMessage>> {
        validate_topic(topic)?;
        check_key(key)?;
        let mut found = Vec::new();
        let max = max.min(MAX_QUERY_RESULTS);
        let Some(index) = &self.index else {
            return Ok(found);
        };
        if max == 0 || begin_ms > end_ms {
            return Ok(found);
        }
        // Read your writes: what was put before the call is indexed before the lookup.
        self.dispatcher
            .shared()
            .wait_for(self.log.max_offset(), super::READ_YOUR_WRITES_WAIT);
        let mut failure = None;
        index.query(topic, key, begin_ms, end_ms, max, |offset| {
            match self.read_at(offset) {
                Ok(Some(msg)) => {
                    let t = msg.store_timestamp();
                    let matches = msg.topic() == topic
                        && (begin_ms..=end_ms).contains(&t)
                        && index::has_key(msg.properties_raw(), key);
                    if matches {
                        found.push(msg);
                    }
                    matches
                }
                // Removed by retention, or past a cut: not a hit.
                Ok(None) => false,
                Err(e) => {
                    // A damaged record is reported, not skipped silently, unless others were
                    // found.
                    tracing::warn!(offset, error = %e, "index hit on a record that does not read");
                    failure.get_or_insert(e);
                    false
                }
            }
        });
        match failure {
            Some(e) if found.is_empty() => Err(e),
            _ => Ok(found),
        }
    }

    /// The message with RocketMQ's store-assigned id ([`PutResult::msg_id`](crate::PutResult::msg_id),
    /// [`StoredMessage::msg_id`]): read directly at the commit-log offset the id names. `None`
    /// if no record of this store starts there (removed by retention, not yet written, another
    /// store's id). A malformed id is [`Error::InvalidMessageId`].
    pub fn get_by_id(&self, msg_id: &str) -> Result<Option<StoredMessage>> {
        let (host, offset) = decode_offset_msg_id(msg_id)?;
        if offset < self.log.min_offset() || offset >= self.log.max_offset() {
            return Ok(None);
        }
        let Some(segment) = self.log.segment_at(offset) else {
            return Ok(None);
        };
        // An id of another store (or a made-up one) may point into the middle of a record:
        // that is "no such message", not damage.
        let starts_record = segment
            .read(offset - segment.start(), 8)
            .is_some_and(|b| matches!(codec::peek_header(&b), Some((_, codec::MAGIC_V1 | codec::MAGIC_V2))));
        if !starts_record {
            return Ok(None);
        }
        match self.read_at(offset)? {
            Some(msg) if msg.store_host() == host && msg.commit_log_offset() == offset => Ok(Some(msg)),
            _ => Ok(None),
        }
    }

    /// The index files, oldest first (empty when the store keeps no index), with every message
    /// put before the call indexed.
    pub fn index_files(&self) -> Vec<IndexFileInfo> {
        self.dispatcher
            .shared()
            .wait_for(self.log.max_offset(), super::READ_YOUR_WRITES_WAIT);
        self.index.as_ref().map_or_else(Vec::new, |i| i.info())
    }
}
