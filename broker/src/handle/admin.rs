//! Offsets, lookups and the clients' membership.

use std::sync::Arc;

use super::{Failure, Handled, fields};
use crate::Shared;
use crate::clients::{Peer, QueueName};
use crate::codes::response;
use crate::remoting::Command;

/// Most messages a query by key returns (the store's own bound too).
const MAX_QUERY: usize = 64;

pub(super) fn query_consumer_offset(shared: &Arc<Shared>, cmd: &Command) -> Handled {
    let f = fields(cmd);
    let (group, topic, queue) = (f.str("consumerGroup")?, f.str("topic")?, f.queue_id()?);
    if let Some(offset) = shared.store.committed_offset(group, topic, queue)? {
        return Ok(cmd.response(response::SUCCESS).with("offset", offset));
    }
    // A group new to the queue starts at its first message while that is still at offset 0
    // (RocketMQ's answer), unless the client asks to be told it has no offset.
    let zero_if_none = f
        .opt_str("setZeroIfNotFound")
        .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
    if zero_if_none && shared.store.min_offset(topic, queue) == 0 && shared.store.max_offset(topic, queue) > 0 {
        return Ok(cmd.response(response::SUCCESS).with("offset", 0));
    }
    Ok(cmd
        .response(response::QUERY_NOT_FOUND)
        .with_remark("no offset committed by this group"))
}

pub(super) fn update_consumer_offset(shared: &Arc<Shared>, cmd: &Command) -> Handled {
    let f = fields(cmd);
    let offset: i64 = f.num("commitOffset")?;
    let offset = u64::try_from(offset).map_err(|_| Failure::field("commitOffset", "negative"))?;
    shared
        .store
        .commit_offset(f.str("consumerGroup")?, f.str("topic")?, f.queue_id()?, offset)?;
    Ok(cmd.response(response::SUCCESS))
}

pub(super) fn max_offset(shared: &Arc<Shared>, cmd: &Command) -> Handled {
    let f = fields(cmd);
    let offset = shared.store.max_offset(f.str("topic")?, f.queue_id()?);
    Ok(cmd.response(response::SUCCESS).with("offset", offset))
}

pub(super) fn min_offset(shared: &Arc<Shared>, cmd: &Command) -> Handled {
    let f = fields(cmd);
    let offset = shared.store.min_offset(f.str("topic")?, f.queue_id()?);
    Ok(cmd.response(response::SUCCESS).with("offset", offset))
}

pub(super) fn offset_by_timestamp(shared: &Arc<Shared>, cmd: &Command) -> Handled {
    let f = fields(cmd);
    let at: i64 = f.num("timestamp")?;
    let offset = shared
        .store
        .offset_for_timestamp(f.str("topic")?, f.queue_id()?, at.max(0) as u64)?;
    Ok(cmd.response(response::SUCCESS).with("offset", offset))
}

pub(super) fn earliest_store_time(shared: &Arc<Shared>, cmd: &Command) -> Handled {
    let f = fields(cmd);
    let (topic, queue) = (f.str("topic")?, f.queue_id()?);
    let first = shared
        .store
        .get(topic, queue, shared.store.min_offset(topic, queue), 1)?;
    match first.messages.first() {
        Some(m) => Ok(cmd.response(response::SUCCESS).with("timestamp", m.store_timestamp())),
        None => Ok(cmd
            .response(response::SYSTEM_ERROR)
            .with_remark("the queue holds no message")),
    }
}

pub(super) async fn query_message(shared: &Arc<Shared>, cmd: &Command) -> Handled {
    let f = fields(cmd);
    let topic = f.str("topic")?.to_string();
    let key = f.str("key")?.to_string();
    let max = f.opt_num::<i64>("maxNum")?.unwrap_or(32).clamp(1, MAX_QUERY as i64) as usize;
    let begin = f.opt_num::<i64>("beginTimestamp")?.unwrap_or(0).max(0) as u64;
    let end = f.opt_num::<i64>("endTimestamp")?.map_or(u64::MAX, |e| e.max(0) as u64);
    let store = Arc::clone(&shared.store);
    // The lookup reads index files and may wait for the dispatcher: off the workers.
    let found = tokio::task::spawn_blocking(move || store.query_by_key_between(&topic, &key, begin, end, max))
        .await
        .map_err(|e| Failure::new(response::SYSTEM_ERROR, format!("query panicked: {e}")))??;
    if found.is_empty() {
        return Ok(cmd
            .response(response::QUERY_NOT_FOUND)
            .with_remark("no message with this key in the time range"));
    }
    let mut body = Vec::new();
    for m in &found {
        body.extend_from_slice(m.record());
    }
    Ok(cmd
        .response(response::SUCCESS)
        .with(
            "indexLastUpdateTimestamp",
            found.iter().map(|m| m.store_timestamp()).max().unwrap_or(0),
        )
        .with("indexLastUpdatePhyoffset", shared.store.dispatched_offset())
        .with_body(body))
}

pub(super) fn view_message(shared: &Arc<Shared>, cmd: &Command) -> Handled {
    let offset: i64 = fields(cmd).num("offset")?;
    let offset = u64::try_from(offset).map_err(|_| Failure::field("offset", "negative"))?;
    match shared.store.read_at(offset)? {
        Some(m) => Ok(cmd.response(response::SUCCESS).with_body(m.record().to_vec())),
        None => Ok(cmd
            .response(response::SYSTEM_ERROR)
            .with_remark(format!("no message at commit-log offset {offset}"))),
    }
}

pub(super) fn heartbeat(shared: &Arc<Shared>, peer: &Peer, cmd: &Command) -> Handled {
    let mut clients = shared.clients.lock();
    let changed = clients
        .heartbeat(peer, &cmd.body)
        .map_err(|e| Failure::new(response::SYSTEM_ERROR, format!("heartbeat body: {e}")))?;
    clients.notify(&changed, &shared.opaque);
    Ok(cmd.response(response::SUCCESS))
}

pub(super) fn unregister(shared: &Arc<Shared>, cmd: &Command) -> Handled {
    let f = fields(cmd);
    let client = f.str("clientID")?;
    // A producer group leaving changes no consumer group.
    if let Some(group) = f.opt_str("consumerGroup") {
        let mut clients = shared.clients.lock();
        let changed = clients.unregister(client, group);
        clients.notify(&changed, &shared.opaque);
    }
    Ok(cmd.response(response::SUCCESS))
}

pub(super) fn consumer_list(shared: &Arc<Shared>, cmd: &Command) -> Handled {
    let group = fields(cmd).str("consumerGroup")?;
    let members = shared.clients.lock().members(group);
    if members.is_empty() {
        return Ok(cmd
            .response(response::SYSTEM_ERROR)
            .with_remark(format!("no consumer in group {group}")));
    }
    let body = serde_json::json!({ "consumerIdList": members });
    Ok(cmd.response(response::SUCCESS).with_body(body.to_string().into_bytes()))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LockBody {
    consumer_group: Option<String>,
    client_id: Option<String>,
    #[serde(default)]
    mq_set: Vec<QueueName>,
}

fn lock_body(cmd: &Command) -> Result<(String, String, Vec<QueueName>), Failure> {
    let body: LockBody = serde_json::from_slice(&cmd.body)
        .map_err(|e| Failure::new(response::SYSTEM_ERROR, format!("lock body: {e}")))?;
    match (body.consumer_group, body.client_id) {
        (Some(g), Some(c)) => Ok((g, c, body.mq_set)),
        _ => Err(Failure::new(
            response::SYSTEM_ERROR,
            "lock body: consumerGroup and clientId are required",
        )),
    }
}

pub(super) fn lock_queues(shared: &Arc<Shared>, cmd: &Command) -> Handled {
    let (group, client, queues) = lock_body(cmd)?;
    let held = shared.clients.lock().lock(&group, &client, queues);
    let body = serde_json::json!({ "lockOKMQSet": held });
    Ok(cmd.response(response::SUCCESS).with_body(body.to_string().into_bytes()))
}

pub(super) fn unlock_queues(shared: &Arc<Shared>, cmd: &Command) -> Handled {
    let (group, client, queues) = lock_body(cmd)?;
    shared.clients.lock().unlock(&group, &client, &queues);
    Ok(cmd.response(response::SUCCESS))
}
