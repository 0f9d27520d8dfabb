//! Who is connected: clients by id, the consumer groups they are in and what each group
//! subscribes to. Heartbeats fill it; a closed connection, an unregister or a missed heartbeat
//! empties it; every change of a group's members is told to the group's other members, so they
//! rebalance their queues at once rather than at their next periodic check.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::mpsc;

use crate::codes::request;
use crate::remoting::{Command, FLAG_ONEWAY};

/// Where to send a client a request of the broker's own.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The connection's id.
    pub connection: u64,
    /// Frames to write to it.
    pub tx: mpsc::Sender<Vec<u8>>,
}

/// One subscription of a group to a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// The expression (`*`, `TagA || TagB`).
    pub expression: String,
    /// `TAG` or `SQL92`.
    pub kind: String,
}

struct Member {
    peer: Peer,
    last_seen: Instant,
    subscriptions: BTreeMap<String, Subscription>,
}

/// A queue, as clients name it in lock requests.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueName {
    /// The topic.
    pub topic: String,
    /// The broker.
    pub broker_name: String,
    /// The queue id.
    pub queue_id: i32,
}

/// How long a queue lock lasts without renewal (RocketMQ's `rebalanceLockMaxLiveTime`;
/// orderly consumers renew every 20 s).
const LOCK_LIFETIME: Duration = Duration::from_secs(60);

/// The clients table.
#[derive(Default)]
pub struct Clients {
    /// group -> client id -> member.
    groups: HashMap<String, BTreeMap<String, Member>>,
    /// (group, queue) -> the client holding it and when it last locked it: an orderly
    /// consumer consumes only queues it holds, so no two consume one queue at once.
    locks: HashMap<(String, QueueName), (String, Instant)>,
}

#[derive(Deserialize)]
struct HeartbeatBody {
    #[serde(rename = "clientID")]
    client_id: String,
    #[serde(rename = "consumerDataSet", default)]
    consumers: Vec<ConsumerData>,
}

#[derive(Deserialize)]
struct ConsumerData {
    #[serde(rename = "groupName")]
    group: String,
    #[serde(rename = "subscriptionDataSet", default)]
    subscriptions: Vec<SubscriptionData>,
}

#[derive(Deserialize)]
struct SubscriptionData {
    topic: String,
    #[serde(rename = "subString", default)]
    expression: String,
    #[serde(rename = "expressionType", default)]
    kind: Option<String>,
}

/// Groups whose members changed, to be told.
pub type Changed = Vec<String>;

impl Clients {
    /// Takes a heartbeat body from `peer`; the groups whose members changed.
    pub fn heartbeat(&mut self, peer: &Peer, body: &[u8]) -> Result<Changed, serde_json::Error> {
        let hb: HeartbeatBody = serde_json::from_slice(body)?;
        let now = Instant::now();
        let mut changed = Vec::new();
        for consumer in hb.consumers {
            let members = self.groups.entry(consumer.group.clone()).or_default();
            let subscriptions = consumer
                .subscriptions
                .into_iter()
                .map(|s| {
                    let kind = s.kind.filter(|k| !k.is_empty()).unwrap_or_else(|| "TAG".into());
                    (
                        s.topic,
                        Subscription {
                            expression: s.expression,
                            kind,
                        },
                    )
                })
                .collect();
            let fresh = Member {
                peer: peer.clone(),
                last_seen: now,
                subscriptions,
            };
            match members.insert(hb.client_id.clone(), fresh) {
                Some(old) if old.peer.connection == peer.connection => {}
                _ => changed.push(consumer.group),
            }
        }
        Ok(changed)
    }

    /// Removes `client` from `group`; the groups that changed.
    pub fn unregister(&mut self, client: &str, group: &str) -> Changed {
        self.remove_where(|g, id, _| id == client && g == group)
    }

    /// Removes every client of a closed connection.
    pub fn connection_closed(&mut self, connection: u64) -> Changed {
        self.remove_where(|_, _, m| m.peer.connection == connection)
    }

    /// Removes clients not heard from for `expiry`.
    pub fn expire(&mut self, expiry: Duration) -> Changed {
        let now = Instant::now();
        self.remove_where(|_, _, m| now.duration_since(m.last_seen) > expiry)
    }

    fn remove_where(&mut self, gone: impl Fn(&str, &str, &Member) -> bool) -> Changed {
        let mut changed = Vec::new();
        let mut left = BTreeSet::new();
        for (group, members) in &mut self.groups {
            let before = members.len();
            members.retain(|id, m| {
                let leaves = gone(group, id, m);
                if leaves {
                    left.insert((group.clone(), id.clone()));
                }
                !leaves
            });
            if members.len() != before {
                changed.push(group.clone());
            }
        }
        self.groups.retain(|_, members| !members.is_empty());
        // A member that left holds no queue: the others may take its queues at once.
        self.locks
            .retain(|(group, _), (holder, _)| !left.contains(&(group.clone(), holder.clone())));
        changed
    }

    /// Locks `queues` of `group` for `client`: the ones now held by it (free, already its own,
    /// or whose holder's lock lapsed).
    pub fn lock(&mut self, group: &str, client: &str, queues: Vec<QueueName>) -> Vec<QueueName> {
        let now = Instant::now();
        let mut held = Vec::new();
        for q in queues {
            let slot = self
                .locks
                .entry((group.to_string(), q.clone()))
                .or_insert_with(|| (client.to_string(), now));
            if slot.0 == client || now.duration_since(slot.1) > LOCK_LIFETIME {
                *slot = (client.to_string(), now);
                held.push(q);
            }
        }
        held
    }

    /// Releases the locks `client` holds on `queues` of `group`.
    pub fn unlock(&mut self, group: &str, client: &str, queues: &[QueueName]) {
        for q in queues {
            let key = (group.to_string(), q.clone());
            if self.locks.get(&key).is_some_and(|(holder, _)| holder == client) {
                self.locks.remove(&key);
            }
        }
    }

    /// The client ids of `group`, sorted (every member sorts the same list to share queues).
    pub fn members(&self, group: &str) -> Vec<String> {
        self.groups
            .get(group)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// What `group` subscribes to on `topic`, as its members last said.
    pub fn subscription(&self, group: &str, topic: &str) -> Option<Subscription> {
        self.groups
            .get(group)?
            .values()
            .filter_map(|m| m.subscriptions.get(topic))
            .next()
            .cloned()
    }

    /// Tells every member of each changed group that the group changed (RocketMQ's
    /// NOTIFY_CONSUMER_IDS_CHANGED, one way). A member whose connection is backed up is
    /// skipped: it rebalances on its own within its rebalance interval.
    pub fn notify(&self, changed: &[String], opaque: &std::sync::atomic::AtomicI32) {
        for group in changed {
            let Some(members) = self.groups.get(group) else {
                continue;
            };
            let mut told = BTreeSet::new();
            for m in members.values() {
                if !told.insert(m.peer.connection) {
                    continue;
                }
                let mut cmd = Command::request(
                    request::NOTIFY_CONSUMER_IDS_CHANGED,
                    opaque.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                )
                .with("consumerGroup", group);
                cmd.flag |= FLAG_ONEWAY;
                let _ = m.peer.tx.try_send(cmd.encode());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(connection: u64) -> (Peer, mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = mpsc::channel(8);
        (Peer { connection, tx }, rx)
    }

    fn heartbeat(client: &str, group: &str, topic: &str, expr: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "clientID": client,
            "producerDataSet": [],
            "consumerDataSet": [{
                "groupName": group, "consumeType": "CONSUME_PASSIVELY", "messageModel": "CLUSTERING",
                "consumeFromWhere": "CONSUME_FROM_FIRST_OFFSET", "unitMode": false,
                "subscriptionDataSet": [{"classFilterMode": false, "topic": topic, "subString": expr,
                    "tagsSet": [], "codeSet": [], "subVersion": 1, "expressionType": "TAG"}]
            }]
        }))
        .unwrap()
    }

    #[test]
    fn members_join_leave_and_are_told() {
        let mut c = Clients::default();
        let (p1, mut rx1) = peer(1);
        let (p2, _rx2) = peer(2);
        assert_eq!(
            c.heartbeat(&p1, &heartbeat("c1", "G", "T", "A || B")).unwrap(),
            vec!["G"]
        );
        assert!(
            c.heartbeat(&p1, &heartbeat("c1", "G", "T", "A || B"))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            c.heartbeat(&p2, &heartbeat("c2", "G", "T", "A || B")).unwrap(),
            vec!["G"]
        );
        assert_eq!(c.members("G"), vec!["c1", "c2"]);
        assert_eq!(c.subscription("G", "T").unwrap().expression, "A || B");
        let opaque = std::sync::atomic::AtomicI32::new(0);
        c.notify(&["G".to_string()], &opaque);
        let frame = rx1.try_recv().unwrap();
        let cmd = Command::decode(&frame[4..]).unwrap();
        assert_eq!(cmd.code, request::NOTIFY_CONSUMER_IDS_CHANGED);
        assert!(cmd.is_oneway());
        assert_eq!(c.connection_closed(2), vec!["G"]);
        assert_eq!(c.members("G"), vec!["c1"]);
        assert_eq!(c.unregister("c1", "G"), vec!["G"]);
        assert!(c.members("G").is_empty());
        assert!(c.heartbeat(&p1, b"not json").is_err());
    }

    #[test]
    fn a_queue_is_locked_by_one_client_until_it_unlocks_or_leaves() {
        let mut c = Clients::default();
        let (p1, _rx1) = peer(1);
        c.heartbeat(&p1, &heartbeat("c1", "G", "T", "*")).unwrap();
        let q = |id| QueueName {
            topic: "T".into(),
            broker_name: "b".into(),
            queue_id: id,
        };
        assert_eq!(c.lock("G", "c1", vec![q(0), q(1)]), vec![q(0), q(1)]);
        assert_eq!(c.lock("G", "c2", vec![q(1), q(2)]), vec![q(2)]);
        assert_eq!(c.lock("OTHER", "c2", vec![q(1)]), vec![q(1)], "locks are per group");
        c.unlock("G", "c2", &[q(1)]);
        assert!(c.lock("G", "c2", vec![q(1)]).is_empty(), "only the holder unlocks");
        c.unlock("G", "c1", &[q(1)]);
        assert_eq!(c.lock("G", "c2", vec![q(1)]), vec![q(1)]);
        c.connection_closed(1);
        assert_eq!(
            c.lock("G", "c2", vec![q(0)]),
            vec![q(0)],
            "c1 left: its queues are free"
        );
    }
}
