//! The one error type of the crate.
//!
//! Every failure a caller can act on has its own variant with structured fields, so that a broker
//! can map it to a response code without parsing messages. Errors that come from the operating
//! system keep their `source()`.

use std::io;
use std::path::PathBuf;

use crate::codec::{DecodeError, EncodeError};

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The topic name is not acceptable (it becomes a directory name on disk).
    #[error("invalid topic {topic:?}: {reason}")]
    InvalidTopic {
        /// The rejected name (lossy, for display).
        topic: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The queue id is not below the configured number of queues per topic.
    #[error("queue id {queue_id} out of range: at most {max} queues per topic")]
    QueueIdOutOfRange {
        /// The rejected queue id.
        queue_id: u32,
        /// The configured number of queues per topic.
        max: u32,
    },
    /// The message body is larger than the configured maximum.
    #[error("message body of {size} bytes exceeds the maximum of {max} bytes")]
    MessageTooLarge {
        /// Body length.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The encoded record cannot fit in one commit-log segment.
    #[error("record of {size} bytes cannot fit a commit-log segment of {segment_size} bytes")]
    RecordExceedsSegment {
        /// Encoded record length.
        size: usize,
        /// Commit-log segment size.
        segment_size: u64,
    },
    /// The encoded properties exceed RocketMQ's limit of 32767 bytes.
    #[error("properties of {size} bytes exceed the maximum of {max} bytes")]
    PropertiesTooLarge {
        /// Encoded properties length.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A property key or value, tag or key is not representable in RocketMQ's property encoding.
    #[error("invalid property {key:?}: {reason}")]
    InvalidProperty {
        /// The property's key.
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A message sets sysFlag bits a producer may not set (see
    /// [`PRODUCER_SYS_FLAGS`](crate::message::PRODUCER_SYS_FLAGS)).
    #[error("invalid sysFlag {sys_flag:#x}: a producer may set only the compression and multi-tag bits")]
    InvalidSysFlag {
        /// The sysFlag as given.
        sys_flag: i32,
    },
    /// A message id that is not RocketMQ's store-assigned id (hex of store host, port and
    /// commit-log offset).
    #[error("invalid message id {id:?}: {reason}")]
    InvalidMessageId {
        /// The id (at most its first 80 characters).
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A query key is empty or contains a space (keys are stored space-separated).
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key (at most its first 80 characters).
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The store was closed; nothing was appended.
    #[error("the store is closed")]
    Closed,
    /// The store is not writeable (for example after a failed flush or in the slave role).
    #[error("the store is not writeable: {0}")]
    NotWriteable(&'static str),
    /// The disk is full: the segment could not be allocated; nothing was appended.
    #[error("disk full while allocating {path}")]
    DiskFull {
        /// The file that could not be allocated.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Another process, or another handle in this process, holds the store directory.
    #[error("store directory {path} is locked by another process or handle")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// An I/O error on a file of the store.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A commit-log record failed validation.
    #[error("corrupt record at commit-log offset {offset}: {source}")]
    CorruptRecord {
        /// Commit-log offset of the record.
        offset: u64,
        /// What is wrong with it.
        #[source]
        source: DecodeError,
    },
    /// A consume-queue unit does not match the commit log.
    #[error("corrupt consume queue {topic}/{queue_id} at queue offset {queue_offset}: {reason}")]
    CorruptConsumeQueue {
        /// Topic.
        topic: String,
        /// Queue id.
        queue_id: u32,
        /// Queue offset of the unit.
        queue_offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The store is a slave: it takes no producer puts (nothing was appended).
    #[error("the store is a slave of {master}: it takes no producer puts")]
    RoleIsSlave {
        /// The master it follows.
        master: std::net::SocketAddr,
    },
    /// A replication link was used after the store changed its role.
    #[error("the store changed its replication role: this link is no longer valid")]
    RoleChanged,
    /// Replicated bytes do not start at the slave's end of log.
    #[error("replicated bytes at offset {got} do not continue the log, which ends at {expected}")]
    ReplicaOffsetMismatch {
        /// The slave's end of log.
        expected: u64,
        /// Where the bytes were said to start.
        got: u64,
    },
    /// Replicated bytes are not valid records for this log (framing, CRC, offsets, segment
    /// boundaries, epochs); nothing was appended.
    #[error("bad replicated data at commit-log offset {offset}: {reason}")]
    ReplicaData {
        /// Where the bad part starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Replicated bytes carry an epoch older than one the slave has already seen.
    #[error("replicated epoch {got} is older than the slave's last epoch {last}")]
    EpochRegressed {
        /// The epoch received.
        got: u32,
        /// The slave's last epoch.
        last: u32,
    },
    /// A slave's acknowledgement was refused.
    #[error("bad acknowledgement of offset {acked}: {reason}")]
    BadAck {
        /// The acknowledged offset.
        acked: u64,
        /// Why it was refused.
        reason: String,
    },
    /// A slave's log and its master's have no point in common it can safely follow from.
    #[error("the slave's log has diverged from the master's: {reason}")]
    Diverged {
        /// What was compared.
        reason: String,
    },
    /// The files of the store do not form a valid layout (stray names, wrong sizes, holes).
    #[error("bad store layout at {path}: {reason}")]
    Layout {
        /// The offending file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    // consumer offsets
    /// The consumer-group name is not acceptable.
    #[error("invalid consumer group {group:?}: {reason}")]
    InvalidGroup {
        /// The rejected name (lossy, for display).
        group: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Neither the consumer-offset file nor its backup could be read: the store does not open
    /// rather than forget every consumer's progress.
    #[error("corrupt consumer offsets {path}: {reason}")]
    CorruptOffsets {
        /// The offset file.
        path: PathBuf,
        /// What is wrong with the file and with its backup.
        reason: String,
    },
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds a layout error.
    pub(crate) fn layout(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Layout {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Attaches a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    /// Maps the error to [`Error::Io`] with `path`.
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

impl From<EncodeError> for Error {
    /// The codec's refusal as the store's error of the same name.
    fn from(e: EncodeError) -> Self {
        match e {
            EncodeError::InvalidTopic { topic, reason } => Error::InvalidTopic { topic, reason },
            EncodeError::QueueIdOutOfRange { queue_id, max } => Error::QueueIdOutOfRange { queue_id, max },
            EncodeError::InvalidProperty { key, reason } => Error::InvalidProperty { key, reason },
            EncodeError::PropertiesTooLarge { size, max } => Error::PropertiesTooLarge { size, max },
            EncodeError::MessageTooLarge { size, max } => Error::MessageTooLarge { size, max },
        }
    }
}
