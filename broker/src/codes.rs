//! RocketMQ's request and response codes, as its clients send and expect them.

/// Request codes this broker serves (and the one it sends).
pub mod request {
    /// Send one message (full header field names).
    pub const SEND_MESSAGE: i32 = 10;
    /// Pull messages of one queue, long-polled.
    pub const PULL_MESSAGE: i32 = 11;
    /// Messages of a topic by key (or unique key) in a time range.
    pub const QUERY_MESSAGE: i32 = 12;
    /// A group's committed offset in one queue.
    pub const QUERY_CONSUMER_OFFSET: i32 = 14;
    /// Commit a group's offset in one queue.
    pub const UPDATE_CONSUMER_OFFSET: i32 = 15;
    /// The first queue offset stored at or after a time.
    pub const SEARCH_OFFSET_BY_TIMESTAMP: i32 = 29;
    /// A queue's max offset.
    pub const GET_MAX_OFFSET: i32 = 30;
    /// A queue's min offset.
    pub const GET_MIN_OFFSET: i32 = 31;
    /// Store time of a queue's first message.
    pub const GET_EARLIEST_MSG_STORETIME: i32 = 32;
    /// One message by its commit-log offset (the offset message id).
    pub const VIEW_MESSAGE_BY_ID: i32 = 33;
    /// A client announces itself, its producer and consumer groups and subscriptions.
    pub const HEART_BEAT: i32 = 34;
    /// A client leaves its groups.
    pub const UNREGISTER_CLIENT: i32 = 35;
    /// A consumer hands back a message it failed to consume, for redelivery.
    pub const CONSUMER_SEND_MSG_BACK: i32 = 36;
    /// Broker to client: the members of a consumer group changed (rebalance now).
    pub const NOTIFY_CONSUMER_IDS_CHANGED: i32 = 40;
    /// The client ids of a consumer group.
    pub const GET_CONSUMER_LIST_BY_GROUP: i32 = 38;
    /// Orderly consumers lock the queues they consume.
    pub const LOCK_BATCH_MQ: i32 = 41;
    /// Orderly consumers release queue locks.
    pub const UNLOCK_BATCH_MQ: i32 = 42;
    /// Name server: the route of a topic.
    pub const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
    /// Name server: the brokers of the cluster.
    pub const GET_BROKER_CLUSTER_INFO: i32 = 106;
    /// Send one message (short header field names).
    pub const SEND_MESSAGE_V2: i32 = 310;
    /// Send a batch of messages to one queue.
    pub const SEND_BATCH_MESSAGE: i32 = 320;
}

/// Response codes.
pub mod response {
    /// Done.
    pub const SUCCESS: i32 = 0;
    /// Failed for a reason the remark gives.
    pub const SYSTEM_ERROR: i32 = 1;
    /// The request code is not served here.
    pub const REQUEST_CODE_NOT_SUPPORTED: i32 = 3;
    /// Stored, but not flushed within the policy's timeout.
    pub const FLUSH_DISK_TIMEOUT: i32 = 10;
    /// Stored, but no slave was in sync to replicate to.
    pub const SLAVE_NOT_AVAILABLE: i32 = 11;
    /// Stored, but the slave did not acknowledge in time.
    pub const FLUSH_SLAVE_TIMEOUT: i32 = 12;
    /// The message is not acceptable (size, topic, properties).
    pub const MESSAGE_ILLEGAL: i32 = 13;
    /// The store does not take writes now (slave, disk full, closing).
    pub const SERVICE_NOT_AVAILABLE: i32 = 14;
    /// No such topic.
    pub const TOPIC_NOT_EXIST: i32 = 17;
    /// No message at the offset yet.
    pub const PULL_NOT_FOUND: i32 = 19;
    /// Messages were there but none matched: pull again from the next offset.
    pub const PULL_RETRY_IMMEDIATELY: i32 = 20;
    /// The offset is outside the queue: start again from the offset given.
    pub const PULL_OFFSET_MOVED: i32 = 21;
    /// Nothing found.
    pub const QUERY_NOT_FOUND: i32 = 22;
    /// The subscription expression cannot be parsed (or is not a tag expression).
    pub const SUBSCRIPTION_PARSE_FAILED: i32 = 23;
}

/// Pull request sysFlag bits.
pub mod pull_flag {
    /// The request carries the group's offset to commit.
    pub const COMMIT_OFFSET: i32 = 1;
    /// The broker may hold the request until a message arrives.
    pub const SUSPEND: i32 = 1 << 1;
    /// The request carries its subscription expression.
    pub const SUBSCRIPTION: i32 = 1 << 2;
}
