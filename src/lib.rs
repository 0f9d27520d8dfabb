//! # mqstore
//!
//! The persistence core of a message broker, after Apache RocketMQ's store, byte-compatible
//! with its files:
//!
//! - a **commit log**: one append-only log of every topic's records, in fixed-size,
//!   preallocated, memory-mapped segments;
//! - **consume queues**: per (topic, queue id), 20-byte units that find queue offset N in O(1),
//!   built from the commit log by a background dispatcher;
//! - **pluggable durability**: a [`FlushPolicy`] chosen at open, or your own [`flush::Flusher`].
//!
//! ```
//! use mqstore::{FlushPolicy, GetStatus, Message, MessageStore, PutStatus, StoreConfig};
//! # fn main() -> mqstore::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let config = StoreConfig::new(dir.path())
//!     .flush_policy(FlushPolicy::sync())
//!     .commit_log_segment_size(1 << 20);
//! let store = MessageStore::open(config)?;
//! let r = store.put(Message::new("orders", 0, b"order #42".to_vec()).with_tags("TagA").with_keys(["order-42"]))?;
//! assert_eq!(r.status, PutStatus::Ok); // durable: the sync policy flushed it before returning
//! let g = store.get("orders", 0, r.queue_offset, 32)?;
//! assert_eq!(g.status, GetStatus::Found);
//! assert_eq!(g.messages[0].body(), b"order #42");
//! assert_eq!(g.messages[0].keys(), vec!["order-42"]);
//! store.close()?;
//! # Ok(()) }
//! ```
//!
//! `unsafe` lives only in the [`segment`] module.
#![deny(unsafe_code)]

mod allocate;
pub mod checkpoint;
mod clock;
pub mod codec;
pub mod commit_log;
pub mod config;
pub mod consume_queue;
pub mod consumer_offset;
pub mod dispatch;
pub mod error;
mod files;
pub mod flush;
pub mod index;
pub mod inspect;
mod latency;
pub mod layout;
pub mod message;
pub mod meta;
pub mod recovery;
pub mod repair;
pub mod replication;
pub mod retention;
#[allow(unsafe_code)]
pub mod segment;
mod service;
pub mod stats;
pub mod store;
mod unique_key;
pub mod verify;

pub use config::StoreConfig;
pub use consumer_offset::{CommitStatus, GroupOffset};
pub use error::{Error, Result};
pub use flush::FlushPolicy;
pub use message::{GetResult, GetStatus, Message, PutResult, PutStatus, StoredMessage, TagFilter};
pub use retention::{DiskUsage, RetentionConfig, RetentionPass};
pub use stats::{LatencyHistogram, StoreStats};
pub use store::{MessageStore, PendingPut};
pub use unique_key::{UniqueKey, decode_offset_msg_id};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
