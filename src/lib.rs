//! # mqstore
//!
//! The persistence core of a message broker, after Apache RocketMQ's store, byte-compatible
//! with its files:
//!
//! - a **commit log**: one append-only log of every topic's records, in fixed-size,
//!   preallocated, memory-mapped segments;
//! - **consume queues**: per (topic, queue id), 20-byte units that find queue offset N in O(1),
//!   built from the commit log by a background dispatcher;
//! - an **index** by key, unique id and time;
//! - **pluggable durability**: a [`FlushPolicy`] chosen at open, or your own [`flush::Flusher`];
//! - **replication** in RocketMQ's master/slave model ([`replication`]);
//! - **recovery** that checks every record past a safe point, and **retention** that keeps the
//!   store within a disk budget ([`RetentionConfig`]).
//!
//! ## A store's life: open, put, get, query, close
//!
//! [`StoreConfig`] says where and how (every setting has a default, and a TOML file can hold
//! them: [`StoreConfig::from_toml_file`]); [`MessageStore::open`] recovers whatever the
//! directory holds and starts the store's threads. [`MessageStore::put`] appends a [`Message`]
//! and answers a [`PutResult`] once the policy's durability is met (its [`PutStatus`] says
//! whether it was); [`MessageStore::put_async`] and [`MessageStore::put_batch`] are the
//! pipelined and the batched forms. [`MessageStore::get`] pages a queue from an offset and
//! answers a [`GetResult`] with [`StoredMessage`]s that borrow the store's memory (no copy), or a
//! [`GetStatus`] and the offset to go on from. Messages are found again by key
//! ([`MessageStore::query_by_key`]), by id ([`MessageStore::get_by_id`]) and by time
//! ([`MessageStore::offset_for_timestamp`]); consumer groups keep their progress with
//! [`MessageStore::commit_offset`]. [`MessageStore::close`] flushes everything and marks the
//! shutdown clean. Errors are one enum, [`Error`].
//!
//! ```
//! use mqstore::{FlushPolicy, GetStatus, Message, MessageStore, PutStatus, StoreConfig};
//! # fn main() -> mqstore::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let config = StoreConfig::new(dir.path())
//!     .flush_policy(FlushPolicy::sync())
//!     .commit_log_segment_size(1 << 20);
//! let store = MessageStore::open(config)?;
//!
//! // Put: durable on return under the sync policy.
//! let r = store.put(Message::new("orders", 0, b"order #42".to_vec()).with_tags("TagA").with_keys(["order-42"]))?;
//! assert_eq!(r.status, PutStatus::Ok);
//!
//! // Get: a page of queue 0 of "orders" from the offset the put was given.
//! let g = store.get("orders", 0, r.queue_offset, 32)?;
//! assert_eq!(g.status, GetStatus::Found);
//! assert_eq!(g.messages[0].body(), b"order #42");
//! assert_eq!(g.messages[0].keys(), vec!["order-42"]);
//!
//! // Query: by key, by the message id a producer was given, by time.
//! let found = store.query_by_key("orders", "order-42", 16)?;
//! assert_eq!(found[0].queue_offset(), r.queue_offset);
//! let by_id = store.get_by_id(&found[0].msg_id())?.expect("the id names the record");
//! assert_eq!(by_id.body(), b"order #42");
//! assert_eq!(store.offset_for_timestamp("orders", 0, r.store_timestamp)?, r.queue_offset);
//!
//! // A consumer group's progress survives a restart.
//! store.commit_offset("billing", "orders", 0, r.queue_offset + 1)?;
//! store.close()?;
//!
//! let store = MessageStore::open(StoreConfig::new(dir.path()))?;
//! assert_eq!(store.committed_offset("billing", "orders", 0)?, Some(r.queue_offset + 1));
//! assert_eq!(store.max_offset("orders", 0), r.queue_offset + 1);
//! store.close()?;
//! # Ok(()) }
//! ```
//!
//! ## Where to read on
//!
//! - [`StoreConfig`] and its parts ([`FlushPolicy`], [`RetentionConfig`],
//!   [`replication::ReplicationConfig`]) for every knob; [`StoreStats`] for what to watch.
//! - The repository's `docs/`: `architecture.md` (the parts and the data flow), `format.md`
//!   (the bytes), `durability.md` (what each policy loses to each failure), `operations.md`,
//!   `replication.md`, `performance.md`, `comparison.md`.
//! - What is stable and what is not: the README's "Stability" section.
//!
//! `unsafe` lives only in the `segment` module (`src/segment/`).
#![deny(unsafe_code)]
// Without `internals` the machinery's helpers that only tests, tools and fuzz targets use (the
// simulated disk, the whole-record encoder of the golden tests, re-exported file names...) are
// unreachable; the `internals` build, which every test and lint run of this crate makes, still
// reports what is really unused.
#![cfg_attr(not(feature = "internals"), allow(dead_code, unused_imports))]

/// A module of the machinery: public with the `internals` feature (for this crate's tests,
/// benches, fuzz targets and the `mqstore` program, as one documented door), private otherwise,
/// so that an embedder's API is only what the crate root and the public modules below name.
macro_rules! internal {
    ($($(#[$attr:meta])* mod $name:ident;)*) => {
        $(
            $(#[$attr])*
            #[cfg(feature = "internals")]
            pub mod $name;
            $(#[$attr])*
            #[cfg(not(feature = "internals"))]
            pub(crate) mod $name;
        )*
    };
}

// The API: six modules, and the crate root's re-exports below.
pub mod config;
pub mod flush;
pub mod inspect;
pub mod message;
pub mod replication;
pub mod stats;

// The machinery.
mod allocate;
mod clock;
mod files;
mod latency;
mod service;
mod unique_key;
internal! {
    mod checkpoint;
    mod codec;
    mod commit_log;
    mod consume_queue;
    mod consumer_offset;
    mod dispatch;
    mod error;
    mod index;
    mod layout;
    mod meta;
    mod recovery;
    mod repair;
    mod retention;
    #[allow(unsafe_code)]
    mod segment;
    mod store;
    mod verify;
}

pub use config::StoreConfig;
pub use consumer_offset::{CommitStatus, GroupOffset};
pub use error::{Error, Result};
pub use flush::FlushPolicy;
pub use index::IndexFileInfo;
pub use message::{GetResult, GetStatus, Message, PutResult, PutStatus, StoredMessage, TagFilter};
pub use recovery::{DamagedRange, RecoveryReport};
pub use retention::{DiskUsage, RetentionConfig, RetentionPass};
pub use stats::{LatencyHistogram, StoreStats};
pub use store::{MessageStore, PendingPut};
pub use unique_key::{UniqueKey, decode_offset_msg_id};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
