//! Sends: one message (full or short field names), a batch, and a consumer's hand-back of a
//! message it failed to consume.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use mqstore::{Message, PutResult, PutStatus};

use super::{Failure, Fields, Handled, fields};
use crate::Shared;
use crate::codes::response;
use crate::handle::route::queues_of;
use crate::properties::{self, PropertyError, key};
use crate::remoting::Command;

/// SEND_MESSAGE_V2's one-letter field names, and the names they stand for.
const V2_NAMES: [(&str, &str); 14] = [
    ("a", "producerGroup"),
    ("b", "topic"),
    ("c", "defaultTopic"),
    ("d", "defaultTopicQueueNums"),
    ("e", "queueId"),
    ("f", "sysFlag"),
    ("g", "bornTimestamp"),
    ("h", "flag"),
    ("i", "properties"),
    ("j", "reconsumeTimes"),
    ("k", "unitMode"),
    ("l", "maxReconsumeTimes"),
    ("m", "batch"),
    ("n", "brokerName"),
];

/// The request's fields with V2's short names spelled out. Batches come with either naming
/// (the clients' "smart" V2 header is used for them too).
fn long_names(cmd: &Command) -> Cow<'_, BTreeMap<String, String>> {
    let short = cmd.code == crate::codes::request::SEND_MESSAGE_V2
        || (cmd.code == crate::codes::request::SEND_BATCH_MESSAGE && !cmd.ext.contains_key("topic"));
    if !short {
        return Cow::Borrowed(&cmd.ext);
    }
    let long = cmd
        .ext
        .iter()
        .map(|(k, v)| {
            let name = V2_NAMES
                .iter()
                .find(|(short, _)| short == k)
                .map_or(k.as_str(), |(_, long)| long);
            (name.to_string(), v.clone())
        })
        .collect();
    Cow::Owned(long)
}

impl From<PropertyError> for Failure {
    fn from(e: PropertyError) -> Failure {
        Failure::new(response::MESSAGE_ILLEGAL, e.to_string())
    }
}

/// Topic and queue of a send, checked against the route this broker gives.
fn destination(shared: &Shared, f: &Fields<'_>) -> Result<(String, u32), Failure> {
    let topic = f.str("topic")?.to_string();
    let queue = f.queue_id()?;
    let queues = queues_of(shared, &topic);
    if queue >= queues {
        return Err(Failure::new(
            response::MESSAGE_ILLEGAL,
            format!("queueId {queue} out of range: topic {topic} has {queues} queues"),
        ));
    }
    Ok((topic, queue))
}

fn message(topic: &str, queue: u32, body: Vec<u8>, f: &Fields<'_>, born_host: SocketAddr) -> Result<Message, Failure> {
    let mut msg = Message::new(topic, queue, body)
        .with_flag(f.opt_num("flag")?.unwrap_or(0))
        .with_sys_flag(f.opt_num("sysFlag")?.unwrap_or(0))
        .with_reconsume_times(f.opt_num("reconsumeTimes")?.unwrap_or(0))
        .with_born_host(born_host);
    if let Some(born) = f.opt_num::<i64>("bornTimestamp")? {
        msg = msg.with_born_timestamp(born.max(0) as u64);
    }
    Ok(properties::apply(msg, f.opt_str("properties").unwrap_or(""))?)
}

/// The response code of a put's durability status.
fn status_code(status: PutStatus) -> i32 {
    match status {
        PutStatus::Ok => response::SUCCESS,
        PutStatus::FlushDiskTimeout => response::FLUSH_DISK_TIMEOUT,
        PutStatus::FlushSlaveTimeout => response::FLUSH_SLAVE_TIMEOUT,
        PutStatus::SlaveNotAvailable => response::SLAVE_NOT_AVAILABLE,
    }
}

fn sent(cmd: &Command, queue: u32, results: &[PutResult]) -> Command {
    let status = results
        .iter()
        .map(|r| r.status)
        .find(|s| *s != PutStatus::Ok)
        .unwrap_or(PutStatus::Ok);
    let ids: Vec<String> = results.iter().map(PutResult::msg_id).collect();
    cmd.response(status_code(status))
        .with("msgId", ids.join(","))
        .with("queueId", queue)
        .with("queueOffset", results.first().map_or(0, |r| r.queue_offset))
}

pub(super) async fn send(shared: &Arc<Shared>, addr: SocketAddr, cmd: &mut Command) -> Handled {
    // The body moves into the message: a send copies it once, into the log.
    let body = std::mem::take(&mut cmd.body);
    let cmd: &Command = cmd;
    let long = long_names(cmd);
    let f = Fields(&long);
    if f.flag("batch") {
        return batch(shared, addr, cmd, &f, &body).await;
    }
    let (topic, queue) = destination(shared, &f)?;
    let msg = message(&topic, queue, body, &f, addr)?;
    let result = shared.store.put_async(msg)?.await;
    Ok(sent(cmd, queue, &[result]))
}

/// The messages of a batch body: each `total size, magic, body CRC, flag, body length, body,
/// properties length (i16), properties`, as RocketMQ's clients encode them.
fn batch_messages(
    body: &[u8],
    topic: &str,
    queue: u32,
    f: &Fields<'_>,
    born_host: SocketAddr,
) -> Result<Vec<Message>, Failure> {
    let bad = |why: String| Failure::new(response::MESSAGE_ILLEGAL, format!("batch body: {why}"));
    let born = f.opt_num::<i64>("bornTimestamp")?;
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let int = |b: &[u8], at: usize| -> Result<i32, Failure> {
            b.get(at..at + 4)
                .map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]))
                .ok_or_else(|| bad(format!("message {} truncated", out.len())))
        };
        let total = int(rest, 0)?;
        let total = usize::try_from(total)
            .ok()
            .filter(|t| (22..=rest.len()).contains(t))
            .ok_or_else(|| {
                bad(format!(
                    "message {} announces {total} bytes, {} left",
                    out.len(),
                    rest.len()
                ))
            })?;
        let (one, tail) = rest.split_at(total);
        rest = tail;
        let flag = int(one, 12)?;
        let body_len = usize::try_from(int(one, 16)?).map_err(|_| bad("negative body length".into()))?;
        let body_end = 20usize
            .checked_add(body_len)
            .filter(|e| e + 2 <= one.len())
            .ok_or_else(|| bad("body overruns its message".into()))?;
        let props_len = usize::from(u16::from_be_bytes([one[body_end], one[body_end + 1]]));
        let props = one
            .get(body_end + 2..body_end + 2 + props_len)
            .ok_or_else(|| bad("properties overrun their message".into()))?;
        let props = std::str::from_utf8(props).map_err(|_| bad("properties are not UTF-8".into()))?;
        let mut msg = Message::new(topic, queue, one[20..body_end].to_vec())
            .with_flag(flag)
            .with_born_host(born_host);
        if let Some(born) = born {
            msg = msg.with_born_timestamp(born.max(0) as u64);
        }
        out.push(properties::apply(msg, props)?);
    }
    if out.is_empty() {
        return Err(bad("no message".into()));
    }
    Ok(out)
}

pub(super) async fn send_batch(shared: &Arc<Shared>, addr: SocketAddr, cmd: &mut Command) -> Handled {
    let body = std::mem::take(&mut cmd.body);
    let cmd: &Command = cmd;
    let long = long_names(cmd);
    batch(shared, addr, cmd, &Fields(&long), &body).await
}

async fn batch(shared: &Arc<Shared>, addr: SocketAddr, cmd: &Command, f: &Fields<'_>, body: &[u8]) -> Handled {
    let (topic, queue) = destination(shared, f)?;
    let msgs = batch_messages(body, &topic, queue, f, addr)?;
    let store = Arc::clone(&shared.store);
    // put_batch waits for the flush policy on this thread: keep it off the runtime's workers.
    let results = tokio::task::spawn_blocking(move || store.put_batch(msgs))
        .await
        .map_err(|e| Failure::new(response::SYSTEM_ERROR, format!("batch put panicked: {e}")))??;
    Ok(sent(cmd, queue, &results))
}

/// A consumer failed to consume the message at commit-log `offset`: it goes to the group's
/// retry topic (consumed again by the group, which subscribes to it), or past
/// `maxReconsumeTimes` (or asked with a negative delay level) to its dead-letter topic, which
/// nobody consumes. The redelivery is immediate: scheduled redelivery by delay level needs the
/// schedule topic RocketMQ has and this broker has not.
pub(super) async fn send_back(shared: &Arc<Shared>, cmd: &Command) -> Handled {
    let f = fields(cmd);
    let offset: u64 = f.num("offset")?;
    let group = f.str("group")?;
    let delay_level: i32 = f.opt_num("delayLevel")?.unwrap_or(0);
    let max = f
        .opt_num("maxReconsumeTimes")?
        .unwrap_or(shared.config.max_reconsume_times);
    let Some(stored) = shared.store.read_at(offset)? else {
        return Err(Failure::new(
            response::SYSTEM_ERROR,
            format!("no message at commit-log offset {offset}"),
        ));
    };
    let times = stored.reconsume_times().saturating_add(1);
    let topic = if times > max || delay_level < 0 {
        format!("%DLQ%{group}")
    } else {
        format!("%RETRY%{group}")
    };
    let mut msg = Message::new(topic, 0, stored.body().to_vec())
        .with_flag(stored.flag())
        .with_sys_flag(stored.sys_flag() & mqstore::message::PRODUCER_SYS_FLAGS)
        .with_reconsume_times(times)
        .with_born_host(stored.born_host())
        .with_born_timestamp(stored.born_timestamp());
    msg = properties::apply(msg, stored.properties_raw())?;
    if stored.property(key::RETRY_TOPIC).is_none() {
        let origin = f.opt_str("originTopic").unwrap_or(stored.topic());
        msg = msg.with_property(key::RETRY_TOPIC, origin);
    }
    if stored.property(key::ORIGIN_MESSAGE_ID).is_none() {
        let origin = f.opt_str("originMsgId").map_or_else(|| stored.msg_id(), str::to_string);
        msg = msg.with_property(key::ORIGIN_MESSAGE_ID, origin);
    }
    let result = shared.store.put_async(msg)?.await;
    Ok(cmd.response(status_code(result.status)))
}
