//! Requests by code: the name server's and the broker's.

mod admin;
mod pull;
mod route;
mod send;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tracing::debug;

use crate::Shared;
use crate::clients::Peer;
use crate::codes::{request, response};
use crate::remoting::Command;

pub(crate) use pull::MAX_PULL_BYTES;

/// The response to `cmd` (dropped by the caller for a one-way request).
pub(crate) async fn handle(shared: &Arc<Shared>, peer: &Peer, addr: SocketAddr, mut cmd: Command) -> Command {
    let result = match cmd.code {
        request::GET_ROUTEINFO_BY_TOPIC => route::topic_route(shared, &cmd),
        request::GET_BROKER_CLUSTER_INFO => route::cluster_info(shared, &cmd),
        request::SEND_MESSAGE | request::SEND_MESSAGE_V2 => send::send(shared, addr, &mut cmd).await,
        request::SEND_BATCH_MESSAGE => send::send_batch(shared, addr, &mut cmd).await,
        request::CONSUMER_SEND_MSG_BACK => send::send_back(shared, &cmd).await,
        request::PULL_MESSAGE => pull::pull(shared, peer, &cmd).await,
        request::QUERY_CONSUMER_OFFSET => admin::query_consumer_offset(shared, &cmd),
        request::UPDATE_CONSUMER_OFFSET => admin::update_consumer_offset(shared, &cmd),
        request::GET_MAX_OFFSET => admin::max_offset(shared, &cmd),
        request::GET_MIN_OFFSET => admin::min_offset(shared, &cmd),
        request::SEARCH_OFFSET_BY_TIMESTAMP => admin::offset_by_timestamp(shared, &cmd),
        request::GET_EARLIEST_MSG_STORETIME => admin::earliest_store_time(shared, &cmd),
        request::QUERY_MESSAGE => admin::query_message(shared, &cmd).await,
        request::VIEW_MESSAGE_BY_ID => admin::view_message(shared, &cmd),
        request::HEART_BEAT => admin::heartbeat(shared, peer, &cmd),
        request::UNREGISTER_CLIENT => admin::unregister(shared, &cmd),
        request::GET_CONSUMER_LIST_BY_GROUP => admin::consumer_list(shared, &cmd),
        request::LOCK_BATCH_MQ => admin::lock_queues(shared, &cmd),
        request::UNLOCK_BATCH_MQ => admin::unlock_queues(shared, &cmd),
        code => {
            debug!(code, "request code not supported");
            Err(Failure::new(
                response::REQUEST_CODE_NOT_SUPPORTED,
                format!("request code {code} is not supported by mqstore-broker"),
            ))
        }
    };
    result.unwrap_or_else(|f| {
        debug!(request = cmd.code, response = f.code, remark = %f.remark, "request failed");
        cmd.response(f.code).with_remark(f.remark)
    })
}

/// A request that failed: the response code and why.
#[derive(Debug)]
pub(crate) struct Failure {
    code: i32,
    remark: String,
}

impl Failure {
    pub(crate) fn new(code: i32, remark: impl Into<String>) -> Failure {
        Failure {
            code,
            remark: remark.into(),
        }
    }

    /// A required field missing or not of its type.
    fn field(key: &str, why: &str) -> Failure {
        Failure::new(response::SYSTEM_ERROR, format!("header field {key}: {why}"))
    }
}

impl From<mqstore::Error> for Failure {
    fn from(e: mqstore::Error) -> Failure {
        use mqstore::Error as E;
        let code = match &e {
            E::InvalidTopic { .. }
            | E::QueueIdOutOfRange { .. }
            | E::MessageTooLarge { .. }
            | E::RecordExceedsSegment { .. }
            | E::PropertiesTooLarge { .. }
            | E::InvalidProperty { .. }
            | E::InvalidSysFlag { .. }
            | E::InvalidKey { .. }
            | E::InvalidGroup { .. } => response::MESSAGE_ILLEGAL,
            E::Closed | E::NotWriteable(_) | E::DiskFull { .. } | E::RoleIsSlave { .. } | E::RoleChanged => {
                response::SERVICE_NOT_AVAILABLE
            }
            _ => response::SYSTEM_ERROR,
        };
        Failure::new(code, e.to_string())
    }
}

type Handled = Result<Command, Failure>;

/// Typed access to a request's named fields.
pub(crate) struct Fields<'a>(&'a BTreeMap<String, String>);

impl<'a> Fields<'a> {
    fn str(&self, key: &str) -> Result<&'a str, Failure> {
        self.0
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| Failure::field(key, "missing"))
    }

    fn opt_str(&self, key: &str) -> Option<&'a str> {
        self.0.get(key).map(String::as_str).filter(|s| !s.is_empty())
    }

    fn num<T: std::str::FromStr>(&self, key: &str) -> Result<T, Failure> {
        self.str(key)?
            .trim()
            .parse()
            .map_err(|_| Failure::field(key, "not a number in range"))
    }

    fn opt_num<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, Failure> {
        match self.opt_str(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Failure::field(key, "not a number in range")),
        }
    }

    fn flag(&self, key: &str) -> bool {
        self.opt_str(key).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// A queue id: non-negative and within the store's limit (checked again by the store).
    fn queue_id(&self) -> Result<u32, Failure> {
        let q: i64 = self.num("queueId")?;
        u32::try_from(q).map_err(|_| Failure::new(response::SYSTEM_ERROR, format!("queueId {q} is negative")))
    }
}

fn fields(cmd: &Command) -> Fields<'_> {
    Fields(&cmd.ext)
}
