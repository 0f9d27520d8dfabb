//! Pull with long polling: a pull that finds nothing new is held until the store dispatches
//! new messages (woken by the dispatcher, through `Shared::arrivals`) or its time is up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mqstore::{GetResult, GetStatus, TagFilter};
use tokio::time::Instant;

use super::{Failure, Handled, fields};
use crate::Shared;
use crate::clients::Peer;
use crate::codes::{pull_flag, response};
use crate::remoting::Command;

/// Most messages one pull returns, whatever it asks.
const MAX_PULL_MESSAGES: u32 = 1024;
/// Most record bytes one pull returns past its first message (RocketMQ's
/// `maxTransferBytesOnMessageInMemory`): the rest waits for the next pull.
pub(crate) const MAX_PULL_BYTES: usize = 256 << 10;

fn filter_of(expression: &str, kind: &str) -> Result<TagFilter, Failure> {
    if !kind.is_empty() && !kind.eq_ignore_ascii_case("TAG") {
        return Err(Failure::new(
            response::SUBSCRIPTION_PARSE_FAILED,
            format!("expression type {kind} is not supported: mqstore-broker filters by tag only"),
        ));
    }
    Ok(TagFilter::parse(expression))
}

/// RocketMQ's response code for a get's status, and whether a held pull should wait on it.
fn code_of(got: &GetResult, asked: u64) -> (i32, bool) {
    match got.status {
        GetStatus::Found => (response::SUCCESS, false),
        GetStatus::NoMatchedMessage | GetStatus::MessageWasRemoving => (response::PULL_RETRY_IMMEDIATELY, false),
        GetStatus::OffsetOverflowOne | GetStatus::OffsetFoundNull => (response::PULL_NOT_FOUND, true),
        GetStatus::NoMessageInQueue | GetStatus::NoMatchedLogicQueue if asked == 0 => (response::PULL_NOT_FOUND, true),
        GetStatus::NoMessageInQueue
        | GetStatus::NoMatchedLogicQueue
        | GetStatus::OffsetTooSmall
        | GetStatus::OffsetOverflowBadly => (response::PULL_OFFSET_MOVED, false),
    }
}

pub(super) async fn pull(shared: &Arc<Shared>, peer: &Peer, cmd: &Command) -> Handled {
    let f = fields(cmd);
    let group = f.str("consumerGroup")?;
    let topic = f.str("topic")?;
    let queue = f.queue_id()?;
    let offset: i64 = f.num("queueOffset")?;
    let offset = u64::try_from(offset).map_err(|_| Failure::field("queueOffset", "negative"))?;
    let max = f.num::<i64>("maxMsgNums")?.clamp(1, i64::from(MAX_PULL_MESSAGES)) as u32;
    let sys_flag: i32 = f.opt_num("sysFlag")?.unwrap_or(0);
    let filter = if sys_flag & pull_flag::SUBSCRIPTION != 0 {
        filter_of(
            f.opt_str("subscription").unwrap_or("*"),
            f.opt_str("expressionType").unwrap_or(""),
        )?
    } else {
        match shared.clients.lock().subscription(group, topic) {
            Some(sub) => filter_of(&sub.expression, &sub.kind)?,
            None => TagFilter::all(),
        }
    };
    if sys_flag & pull_flag::COMMIT_OFFSET != 0
        && let Some(commit) = f.opt_num::<i64>("commitOffset")?
        && let Ok(commit) = u64::try_from(commit)
    {
        shared.store.commit_offset(group, topic, queue, commit)?;
    }
    let hold = if sys_flag & pull_flag::SUSPEND != 0 {
        let asked = Duration::from_millis(f.opt_num("suspendTimeoutMillis")?.unwrap_or(0));
        asked.min(shared.config.long_poll_max)
    } else {
        Duration::ZERO
    };
    let deadline = Instant::now() + hold;
    let mut arrivals = shared.arrivals.clone();
    let mut held: Option<Held<'_>> = None;
    loop {
        // Marked seen before the read: a dispatch after it wakes the wait below.
        arrivals.borrow_and_update();
        let got = shared.store.get_filtered(topic, queue, offset, max, &filter)?;
        let (code, wait) = code_of(&got, offset);
        if !wait || Instant::now() >= deadline {
            return Ok(pulled(cmd, code, got));
        }
        held.get_or_insert_with(|| Held::new(&shared.held_pulls));
        tokio::select! {
            woken = tokio::time::timeout_at(deadline, arrivals.changed()) => {
                if woken.is_ok_and(|r| r.is_ok()) {
                    continue;
                }
            }
            // Nobody to answer: the task ends now rather than at its deadline.
            () = peer.tx.closed() => {
                return Err(Failure::new(response::SYSTEM_ERROR, "the connection closed"));
            }
        }
        // Timed out (or the broker is stopping): one last look, then answer.
        let got = shared.store.get_filtered(topic, queue, offset, max, &filter)?;
        let (code, _) = code_of(&got, offset);
        return Ok(pulled(cmd, code, got));
    }
}

/// Counts a pull while it is held.
struct Held<'a>(&'a AtomicUsize);

impl<'a> Held<'a> {
    fn new(count: &'a AtomicUsize) -> Held<'a> {
        count.fetch_add(1, Ordering::AcqRel);
        Held(count)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn pulled(cmd: &Command, code: i32, got: GetResult) -> Command {
    // Sized once: the records are copied into the frame's body, and only that once.
    let room: usize = got.messages.iter().map(|m| m.record().len()).sum();
    let mut body = Vec::with_capacity(room.min(MAX_PULL_BYTES + got.messages.first().map_or(0, |m| m.record().len())));
    let mut next = got.next_offset;
    for m in &got.messages {
        if !body.is_empty() && body.len() + m.record().len() > MAX_PULL_BYTES {
            next = m.queue_offset();
            break;
        }
        body.extend_from_slice(m.record());
    }
    cmd.response(code)
        .with("suggestWhichBrokerId", 0)
        .with("nextBeginOffset", next)
        .with("minOffset", got.min_offset)
        .with("maxOffset", got.max_offset)
        .with_body(body)
}
