//! The broker over its wire protocol, driven by hand-built frames: what RocketMQ's clients send,
//! and what bad clients send. (tests of the official client itself: `broker/e2e`.)

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mqstore::StoreConfig;
use mqstore_broker::codes::{pull_flag, request, response};
use mqstore_broker::remoting::{Command, FLAG_ONEWAY, Serialization};
use mqstore_broker::{Broker, BrokerConfig};

fn config(dir: &std::path::Path) -> BrokerConfig {
    let store = StoreConfig::new(dir).commit_log_segment_size(8 << 20);
    let mut c = BrokerConfig::new("127.0.0.1:0".parse().unwrap(), store);
    c.write_stall = Duration::from_millis(300);
    c.client_expiry = Duration::from_secs(60);
    c
}

fn start(dir: &std::path::Path) -> Broker {
    Broker::start(config(dir)).unwrap()
}

struct Client {
    stream: TcpStream,
    opaque: i32,
    /// Requests the broker sent this client (notifications), in arrival order.
    notified: Vec<Command>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client {
            stream,
            opaque: 100,
            notified: Vec::new(),
        }
    }

    fn read_frame(&mut self) -> std::io::Result<Command> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut frame)?;
        Ok(Command::decode(&frame).expect("the broker writes well-formed frames"))
    }

    fn write(&mut self, mut cmd: Command) -> i32 {
        self.opaque += 1;
        cmd.opaque = self.opaque;
        self.stream.write_all(&cmd.encode()).unwrap();
        self.opaque
    }

    fn call(&mut self, cmd: Command) -> Command {
        let opaque = self.write(cmd);
        loop {
            let got = self.read_frame().unwrap();
            if !got.is_response() {
                self.notified.push(got);
                continue;
            }
            assert_eq!(got.opaque, opaque, "responses answer the request that was sent");
            return got;
        }
    }
}

fn props(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}\u{1}{v}\u{2}")).collect()
}

fn send(topic: &str, queue: u32, body: &[u8], properties: &str) -> Command {
    Command::request(request::SEND_MESSAGE, 0)
        .with("producerGroup", "PG")
        .with("topic", topic)
        .with("defaultTopic", "TBW102")
        .with("defaultTopicQueueNums", 4)
        .with("queueId", queue)
        .with("sysFlag", 0)
        .with("bornTimestamp", 1_700_000_000_000u64)
        .with("flag", 0)
        .with("properties", properties)
        .with("reconsumeTimes", 0)
        .with("unitMode", false)
        .with_body(body.to_vec())
}

fn pull(group: &str, topic: &str, queue: u32, offset: u64, sys_flag: i32, suspend_ms: u64) -> Command {
    Command::request(request::PULL_MESSAGE, 0)
        .with("consumerGroup", group)
        .with("topic", topic)
        .with("queueId", queue)
        .with("queueOffset", offset)
        .with("maxMsgNums", 32)
        .with("sysFlag", sys_flag)
        .with("commitOffset", 0)
        .with("suspendTimeoutMillis", suspend_ms)
        .with("subVersion", 0)
}

fn int(cmd: &Command, key: &str) -> i64 {
    cmd.ext
        .get(key)
        .unwrap_or_else(|| panic!("{key} missing in {cmd:?}"))
        .parse()
        .unwrap()
}

/// One record of a pull or query body, read with RocketMQ's layout (IPv4 hosts), independent
/// of the store's own decoder.
#[derive(Debug)]
struct Record {
    queue_id: i32,
    queue_offset: i64,
    physical_offset: i64,
    sys_flag: i32,
    reconsume_times: i32,
    body: Vec<u8>,
    topic: String,
    properties: String,
}

fn records(mut buf: &[u8]) -> Vec<Record> {
    fn be(b: &[u8], at: usize, n: usize) -> i64 {
        b[at..at + n].iter().fold(0i64, |acc, x| (acc << 8) | i64::from(*x))
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let total = be(buf, 0, 4) as usize;
        let r = &buf[..total];
        assert_eq!(be(r, 4, 4) as u32, 0xdaa3_20a7, "magic of a v1 record");
        let sys_flag = be(r, 36, 4) as i32;
        assert_eq!(sys_flag & (0x10 | 0x20), 0, "IPv4 hosts in these tests");
        let body_len = be(r, 84, 4) as usize;
        let body = r[88..88 + body_len].to_vec();
        let topic_len = r[88 + body_len] as usize;
        let topic_at = 89 + body_len;
        let topic = String::from_utf8(r[topic_at..topic_at + topic_len].to_vec()).unwrap();
        let props_at = topic_at + topic_len;
        let props_len = be(r, props_at, 2) as usize;
        let properties = String::from_utf8(r[props_at + 2..props_at + 2 + props_len].to_vec()).unwrap();
        assert_eq!(props_at + 2 + props_len, total, "record fields fill the record");
        out.push(Record {
            queue_id: be(r, 12, 4) as i32,
            queue_offset: be(r, 20, 8),
            physical_offset: be(r, 28, 8),
            sys_flag,
            reconsume_times: be(r, 72, 4) as i32,
            body,
            topic,
            properties,
        });
        buf = &buf[total..];
    }
    out
}

fn property<'a>(r: &'a Record, key: &str) -> Option<&'a str> {
    r.properties
        .split('\u{2}')
        .filter_map(|p| p.split_once('\u{1}'))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_route_of_any_topic_names_this_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut c = Client::connect(broker.addr());
    let route = c.call(Command::request(request::GET_ROUTEINFO_BY_TOPIC, 0).with("topic", "Orders"));
    assert_eq!(route.code, response::SUCCESS);
    let body: serde_json::Value = serde_json::from_slice(&route.body).unwrap();
    assert_eq!(body["queueDatas"][0]["writeQueueNums"], 4);
    assert_eq!(body["queueDatas"][0]["perm"], 6);
    assert_eq!(body["brokerDatas"][0]["brokerAddrs"]["0"], broker.addr().to_string());
    let retry = c.call(Command::request(request::GET_ROUTEINFO_BY_TOPIC, 0).with("topic", "%RETRY%G"));
    let body: serde_json::Value = serde_json::from_slice(&retry.body).unwrap();
    assert_eq!(body["queueDatas"][0]["readQueueNums"], 1);
    let bad = c.call(Command::request(request::GET_ROUTEINFO_BY_TOPIC, 0).with("topic", "../etc"));
    assert_eq!(bad.code, response::TOPIC_NOT_EXIST);
    broker.stop().unwrap();
}

#[test]
fn sent_messages_are_pulled_back_whole_in_both_header_encodings() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut c = Client::connect(broker.addr());
    let p = props(&[
        ("TAGS", "TagA"),
        ("KEYS", "k1 k2"),
        ("UNIQ_KEY", "AC11000100002A9F0000000000000001"),
        ("WAIT", "true"),
    ]);
    let first = c.call(send("T", 2, b"hello", &p));
    assert_eq!(first.code, response::SUCCESS, "{first:?}");
    assert_eq!(int(&first, "queueId"), 2);
    assert_eq!(int(&first, "queueOffset"), 0);
    // The same message, V2's short field names, binary header.
    let mut v2 = Command::request(request::SEND_MESSAGE_V2, 0)
        .with("a", "PG")
        .with("b", "T")
        .with("e", 2)
        .with("f", 0)
        .with("g", 5)
        .with("h", 7)
        .with("i", props(&[("TAGS", "TagB")]))
        .with_body(b"world".to_vec());
    v2.serialization = Serialization::RocketMq;
    let second = c.call(v2);
    assert_eq!(
        second.serialization,
        Serialization::RocketMq,
        "answered in the request's encoding"
    );
    assert_eq!(second.code, response::SUCCESS, "{second:?}");
    assert_eq!(int(&second, "queueOffset"), 1);

    let got = c.call(pull("G", "T", 2, 0, 0, 0));
    assert_eq!(got.code, response::SUCCESS);
    assert_eq!(int(&got, "nextBeginOffset"), 2);
    assert_eq!(int(&got, "maxOffset"), 2);
    let recs = records(&got.body);
    assert_eq!(recs.len(), 2);
    assert_eq!(
        (recs[0].body.as_slice(), recs[1].body.as_slice()),
        (&b"hello"[..], &b"world"[..])
    );
    assert_eq!(
        (recs[0].queue_id, recs[0].queue_offset, recs[1].queue_offset),
        (2, 0, 1)
    );
    assert_eq!(recs[0].topic, "T");
    assert_eq!(property(&recs[0], "TAGS"), Some("TagA"));
    assert_eq!(property(&recs[0], "KEYS"), Some("k1 k2"));
    assert_eq!(property(&recs[0], "UNIQ_KEY"), Some("AC11000100002A9F0000000000000001"));
    assert_eq!(property(&recs[1], "TAGS"), Some("TagB"));
    // The offset message id of the response is this broker's address and the record's offset.
    let id = mqstore::decode_offset_msg_id(&first.ext["msgId"]).unwrap();
    assert_eq!(id, (broker.addr(), recs[0].physical_offset as u64));
    broker.stop().unwrap();
}

fn batch_body(msgs: &[(&[u8], &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (body, props) in msgs {
        let total = 4 + 4 + 4 + 4 + 4 + body.len() + 2 + props.len();
        out.extend_from_slice(&(total as i32).to_be_bytes());
        out.extend_from_slice(&0xAABB_CCDDu32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&(body.len() as i32).to_be_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(&(props.len() as u16).to_be_bytes());
        out.extend_from_slice(props.as_bytes());
    }
    out
}

#[test]
fn a_batch_is_stored_in_order_and_a_bad_batch_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut c = Client::connect(broker.addr());
    let (p1, p2, p3) = (
        props(&[("TAGS", "a")]),
        props(&[("TAGS", "b")]),
        props(&[("KEYS", "kk")]),
    );
    let body = batch_body(&[(b"one", &p1), (b"two", &p2), (b"three", &p3)]);
    let batch = Command {
        code: request::SEND_BATCH_MESSAGE,
        ..send("B", 1, &[], "").with("batch", true).with_body(body.clone())
    };
    let r = c.call(batch.clone());
    assert_eq!(r.code, response::SUCCESS, "{r:?}");
    assert_eq!(r.ext["msgId"].split(',').count(), 3);
    let got = records(&c.call(pull("G", "B", 1, 0, 0, 0)).body);
    let bodies: Vec<&[u8]> = got.iter().map(|r| r.body.as_slice()).collect();
    assert_eq!(bodies, [&b"one"[..], b"two", b"three"]);
    assert_eq!(property(&got[2], "KEYS"), Some("kk"));
    // RocketMQ's clients send batches with V2's one-letter field names too.
    let short = Command::request(request::SEND_BATCH_MESSAGE, 0)
        .with("a", "PG")
        .with("b", "B")
        .with("e", 1)
        .with("f", 0)
        .with("g", 1)
        .with("h", 0)
        .with("m", true)
        .with_body(batch_body(&[(b"four", &p1)]));
    let r = c.call(short);
    assert_eq!((r.code, int(&r, "queueOffset")), (response::SUCCESS, 3), "{r:?}");
    // A batch whose second message overruns the body: refused whole.
    let mut cut = body.clone();
    cut.truncate(body.len() - 3);
    let r = c.call(Command { body: cut, ..batch });
    assert_eq!(r.code, response::MESSAGE_ILLEGAL, "{r:?}");
    assert_eq!(broker.store().max_offset("B", 1), 4);
    broker.stop().unwrap();
}

#[test]
fn bad_messages_get_a_clear_error_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut c = Client::connect(broker.addr());
    let cases = [
        ("queue id past the topic's queues", send("T", 4, b"x", "")),
        ("a topic that is a path", send("../x", 0, b"x", "")),
        ("a delayed message", send("T", 0, b"x", &props(&[("DELAY", "3")]))),
        (
            "a transaction's half message",
            send("T", 0, b"x", "").with("sysFlag", 4),
        ),
        (
            "a body over the store's limit",
            send("T", 0, &vec![0u8; 4 << 20 | 1], ""),
        ),
        ("properties without separators", send("T", 0, b"x", "TAGS")),
    ];
    for (what, cmd) in cases {
        let r = c.call(cmd);
        assert_eq!(r.code, response::MESSAGE_ILLEGAL, "{what}: {r:?}");
        assert!(r.remark.as_deref().is_some_and(|m| !m.is_empty()), "{what} says why");
    }
    let r = c.call(send("T", 0, b"x", "").with("queueId", "-1"));
    assert_ne!(r.code, response::SUCCESS);
    assert_eq!(broker.store().max_commit_log_offset(), 0, "nothing was stored");
    broker.stop().unwrap();
}

#[test]
fn a_held_pull_answers_when_a_message_arrives_or_when_its_time_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let addr = broker.addr();
    let mut consumer = Client::connect(addr);
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let r = consumer.call(pull("G", "Held", 0, 0, pull_flag::SUSPEND, 15_000));
        (r, started.elapsed(), consumer)
    });
    // Let the pull reach the broker and be held, then send.
    std::thread::sleep(Duration::from_millis(300));
    let mut producer = Client::connect(addr);
    assert_eq!(producer.call(send("Held", 0, b"wake", "")).code, response::SUCCESS);
    let (r, waited, mut consumer) = waiter.join().unwrap();
    assert_eq!(r.code, response::SUCCESS, "{r:?}");
    assert_eq!(records(&r.body)[0].body, b"wake");
    assert!(
        waited < Duration::from_secs(15),
        "answered by the arrival, not by the timeout"
    );
    // Nothing arrives: held for its time, then not found, with the offset to ask for next.
    let started = Instant::now();
    let r = consumer.call(pull("G", "Held", 0, 1, pull_flag::SUSPEND, 400));
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "held until its time was up"
    );
    assert_eq!(r.code, response::PULL_NOT_FOUND);
    assert_eq!(int(&r, "nextBeginOffset"), 1);
    // A held pull whose client leaves ends with its connection, not at its deadline.
    let mut leaving = Client::connect(addr);
    leaving.write(pull("G", "Held", 0, 1, pull_flag::SUSPEND, 60_000));
    wait_for("the pull to be held", || broker.held_pulls() == 1);
    drop(leaving);
    wait_for("the held pull to end with its connection", || broker.held_pulls() == 0);
    // Without the suspend flag, answered at once.
    assert_eq!(
        consumer.call(pull("G", "Held", 0, 1, 0, 10_000)).code,
        response::PULL_NOT_FOUND
    );
    // Past the end: moved, with the offset to restart from.
    let r = consumer.call(pull("G", "Held", 0, 9, 0, 0));
    assert_eq!(r.code, response::PULL_OFFSET_MOVED);
    assert_eq!(int(&r, "maxOffset"), 1);
    broker.stop().unwrap();
}

#[test]
fn a_subscription_filters_by_tag() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut c = Client::connect(broker.addr());
    for (i, tag) in ["A", "B", "A", "C"].iter().enumerate() {
        let r = c.call(send("F", 0, format!("m{i}").as_bytes(), &props(&[("TAGS", tag)])));
        assert_eq!(r.code, response::SUCCESS);
    }
    let filtered = pull("G", "F", 0, 0, pull_flag::SUBSCRIPTION, 0).with("subscription", "A || C");
    let got = c.call(filtered);
    let bodies: Vec<Vec<u8>> = records(&got.body).into_iter().map(|r| r.body).collect();
    assert_eq!(bodies, [b"m0".to_vec(), b"m2".to_vec(), b"m3".to_vec()]);
    let sql = pull("G", "F", 0, 0, pull_flag::SUBSCRIPTION, 0)
        .with("subscription", "a > 1")
        .with("expressionType", "SQL92");
    assert_eq!(c.call(sql).code, response::SUBSCRIPTION_PARSE_FAILED);
    broker.stop().unwrap();
}

fn offset_of(c: &mut Client, group: &str) -> Command {
    c.call(
        Command::request(request::QUERY_CONSUMER_OFFSET, 0)
            .with("consumerGroup", group)
            .with("topic", "O")
            .with("queueId", 0),
    )
}

#[test]
fn consumer_offsets_are_committed_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut c = Client::connect(broker.addr());
    for i in 0..5 {
        assert_eq!(
            c.call(send("O", 0, format!("{i}").as_bytes(), "")).code,
            response::SUCCESS
        );
    }
    // A group new to the queue starts at its first message.
    let fresh = offset_of(&mut c, "G");
    assert_eq!((fresh.code, int(&fresh, "offset")), (response::SUCCESS, 0));
    let update = Command::request(request::UPDATE_CONSUMER_OFFSET, 0)
        .with("consumerGroup", "G")
        .with("topic", "O")
        .with("queueId", 0)
        .with("commitOffset", 3);
    assert_eq!(c.call(update).code, response::SUCCESS);
    // A pull carries a commit too.
    let with_commit = pull("G2", "O", 0, 4, pull_flag::COMMIT_OFFSET, 0).with("commitOffset", 4);
    assert_eq!(c.call(with_commit).code, response::SUCCESS);
    drop(c);
    broker.stop().unwrap();

    let broker = start(dir.path());
    let mut c = Client::connect(broker.addr());
    let r = offset_of(&mut c, "G");
    assert_eq!((r.code, int(&r, "offset")), (response::SUCCESS, 3));
    assert_eq!(int(&offset_of(&mut c, "G2"), "offset"), 4);
    let r = c.call(
        Command::request(request::GET_MAX_OFFSET, 0)
            .with("topic", "O")
            .with("queueId", 0),
    );
    assert_eq!(int(&r, "offset"), 5);
    let r = c.call(
        Command::request(request::GET_MIN_OFFSET, 0)
            .with("topic", "O")
            .with("queueId", 0),
    );
    assert_eq!(int(&r, "offset"), 0);
    let r = c.call(
        Command::request(request::SEARCH_OFFSET_BY_TIMESTAMP, 0)
            .with("topic", "O")
            .with("queueId", 0)
            .with("timestamp", 0),
    );
    assert_eq!((r.code, int(&r, "offset")), (response::SUCCESS, 0));
    let r = c.call(
        Command::request(request::GET_EARLIEST_MSG_STORETIME, 0)
            .with("topic", "O")
            .with("queueId", 0),
    );
    assert!(int(&r, "timestamp") > 0);
    broker.stop().unwrap();
}

#[test]
fn messages_are_found_by_key_and_by_offset_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut c = Client::connect(broker.addr());
    let sent = c.call(send("Q", 1, b"keyed", &props(&[("KEYS", "order-42")])));
    assert_eq!(
        c.call(send("Q", 1, b"other", &props(&[("KEYS", "order-43")]))).code,
        response::SUCCESS
    );
    let query = Command::request(request::QUERY_MESSAGE, 0)
        .with("topic", "Q")
        .with("key", "order-42")
        .with("maxNum", 32)
        .with("beginTimestamp", 0)
        .with("endTimestamp", u64::MAX / 2);
    let r = c.call(query.clone());
    assert_eq!(r.code, response::SUCCESS, "{r:?}");
    let found = records(&r.body);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].body, b"keyed");
    assert_eq!(c.call(query.with("key", "nope")).code, response::QUERY_NOT_FOUND);
    let (_, offset) = mqstore::decode_offset_msg_id(&sent.ext["msgId"]).unwrap();
    let r = c.call(Command::request(request::VIEW_MESSAGE_BY_ID, 0).with("offset", offset));
    assert_eq!(records(&r.body)[0].body, b"keyed");
    let r = c.call(Command::request(request::VIEW_MESSAGE_BY_ID, 0).with("offset", offset + 1));
    assert_eq!(r.code, response::SYSTEM_ERROR);
    broker.stop().unwrap();
}

fn heartbeat(client: &str, group: &str) -> Command {
    let body = serde_json::json!({
        "clientID": client,
        "producerDataSet": [{"groupName": "PG"}],
        "consumerDataSet": [{
            "groupName": group, "consumeType": "CONSUME_PASSIVELY", "messageModel": "CLUSTERING",
            "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET", "unitMode": false,
            "subscriptionDataSet": [{"classFilterMode": false, "topic": "H", "subString": "X",
                "tagsSet": ["X"], "codeSet": [88], "subVersion": 1, "expressionType": "TAG"}]
        }],
        "heartbeatFingerprint": 0
    });
    Command::request(request::HEART_BEAT, 0).with_body(body.to_string().into_bytes())
}

fn members(c: &mut Client, group: &str) -> Vec<String> {
    let r = c.call(Command::request(request::GET_CONSUMER_LIST_BY_GROUP, 0).with("consumerGroup", group));
    if r.code != response::SUCCESS {
        return Vec::new();
    }
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    body["consumerIdList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn heartbeats_make_a_group_whose_members_are_told_of_changes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut one = Client::connect(broker.addr());
    let mut two = Client::connect(broker.addr());
    assert_eq!(one.call(heartbeat("c1", "G")).code, response::SUCCESS);
    assert_eq!(two.call(heartbeat("c2", "G")).code, response::SUCCESS);
    assert_eq!(members(&mut one, "G"), ["c1", "c2"]);
    // c1 was told c2 joined: the notification arrives before the answer to its next request.
    let changed = one
        .notified
        .iter()
        .find(|n| n.code == request::NOTIFY_CONSUMER_IDS_CHANGED);
    let changed = changed.expect("told of the change");
    assert!(changed.flag & FLAG_ONEWAY != 0);
    assert_eq!(changed.ext["consumerGroup"], "G");
    // The group's subscription filters pulls that carry none.
    for tag in ["X", "Y"] {
        assert_eq!(
            one.call(send("H", 0, tag.as_bytes(), &props(&[("TAGS", tag)]))).code,
            response::SUCCESS
        );
    }
    let got = records(&one.call(pull("G", "H", 0, 0, 0, 0)).body);
    assert_eq!(got.iter().map(|r| r.body.clone()).collect::<Vec<_>>(), [b"X".to_vec()]);
    // c2 leaves by closing its connection; c1 unregisters.
    drop(two);
    wait_for("c2 to leave the group", || members(&mut one, "G") == ["c1"]);
    let bye = Command::request(request::UNREGISTER_CLIENT, 0)
        .with("clientID", "c1")
        .with("consumerGroup", "G");
    assert_eq!(one.call(bye).code, response::SUCCESS);
    assert!(members(&mut one, "G").is_empty());
    assert_eq!(one.call(heartbeat("c1", "G")).code, response::SUCCESS);
    let bad = Command::request(request::HEART_BEAT, 0).with_body(b"{".to_vec());
    assert_eq!(one.call(bad).code, response::SYSTEM_ERROR);
    broker.stop().unwrap();
}

#[test]
fn a_message_handed_back_is_redelivered_through_the_retry_topic_then_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut c = Client::connect(broker.addr());
    assert_eq!(
        c.call(send("R", 0, b"fails", &props(&[("TAGS", "t")]))).code,
        response::SUCCESS
    );
    let original = records(&c.call(pull("G", "R", 0, 0, 0, 0)).body).remove(0);
    let back = |offset: i64| {
        Command::request(request::CONSUMER_SEND_MSG_BACK, 0)
            .with("offset", offset)
            .with("group", "G")
            .with("delayLevel", 0)
            .with("originTopic", "R")
            .with("maxReconsumeTimes", 2)
    };
    assert_eq!(c.call(back(original.physical_offset)).code, response::SUCCESS);
    let retry = records(&c.call(pull("G", "%RETRY%G", 0, 0, 0, 0)).body).remove(0);
    assert_eq!((retry.body.as_slice(), retry.reconsume_times), (&b"fails"[..], 1));
    assert_eq!(retry.topic, "%RETRY%G");
    assert_eq!(property(&retry, "RETRY_TOPIC"), Some("R"));
    assert_eq!(property(&retry, "TAGS"), Some("t"));
    assert!(property(&retry, "ORIGIN_MESSAGE_ID").is_some());
    // Fails again, and again: past maxReconsumeTimes it goes to the dead-letter topic.
    assert_eq!(c.call(back(retry.physical_offset)).code, response::SUCCESS);
    let again = records(&c.call(pull("G", "%RETRY%G", 0, 1, 0, 0)).body).remove(0);
    assert_eq!(again.reconsume_times, 2);
    assert_eq!(c.call(back(again.physical_offset)).code, response::SUCCESS);
    let dead = records(&c.call(pull("X", "%DLQ%G", 0, 0, 0, 0)).body).remove(0);
    assert_eq!(
        (dead.body.as_slice(), dead.reconsume_times, dead.sys_flag),
        (&b"fails"[..], 3, 0)
    );
    assert_eq!(c.call(back(12_345_678)).code, response::SYSTEM_ERROR);
    broker.stop().unwrap();
}

#[test]
fn an_unknown_request_code_is_answered_not_supported() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut c = Client::connect(broker.addr());
    let r = c.call(Command::request(9999, 0));
    assert_eq!(r.code, response::REQUEST_CODE_NOT_SUPPORTED);
    assert!(r.remark.unwrap().contains("9999"));
    // A one-way request gets no answer; the next call's answer is its own.
    let mut oneway = Command::request(9999, 0);
    oneway.flag |= FLAG_ONEWAY;
    c.write(oneway);
    assert_eq!(
        c.call(Command::request(request::GET_ROUTEINFO_BY_TOPIC, 0).with("topic", "T"))
            .code,
        0
    );
    // A field of the wrong type is an error response, not a dropped connection.
    let r = c.call(pull("G", "T", 0, 0, 0, 0).with("queueOffset", "zero"));
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert!(r.remark.unwrap().contains("queueOffset"));
    broker.stop().unwrap();
}

/// Whether the broker has closed this connection (EOF or reset on read).
fn closed_by_broker(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return true,
            Ok(_) => continue,
        }
    }
}

#[test]
fn bad_clients_lose_their_own_connection_and_the_broker_serves_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let addr = broker.addr();
    let mut good = Client::connect(addr);
    assert_eq!(good.call(send("T", 0, b"before", "")).code, response::SUCCESS);

    // A frame announcing more than max_frame: closed before its body is read.
    let mut huge = TcpStream::connect(addr).unwrap();
    huge.write_all(&(1u32 << 30).to_be_bytes()).unwrap();
    assert!(closed_by_broker(&mut huge));
    // A header that is not JSON.
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage
        .write_all(&[0, 0, 0, 9, 0, 0, 0, 5, b'{', b'n', b'o', b'p', b'e'])
        .unwrap();
    assert!(closed_by_broker(&mut garbage));
    // A header length past the frame; an unknown serialization type.
    let mut lying = TcpStream::connect(addr).unwrap();
    lying.write_all(&[0, 0, 0, 6, 0, 0, 0, 200, 1, 2]).unwrap();
    assert!(closed_by_broker(&mut lying));
    let mut alien = TcpStream::connect(addr).unwrap();
    alien.write_all(&[0, 0, 0, 4, 7, 0, 0, 0]).unwrap();
    assert!(closed_by_broker(&mut alien));
    // A client that leaves mid-frame.
    let mut half = TcpStream::connect(addr).unwrap();
    let frame = send("T", 0, b"never whole", "").encode();
    half.write_all(&frame[..frame.len() / 2]).unwrap();
    drop(half);

    // A client that sends and never reads its responses: disconnected once its responses back
    // up past the write-stall limit, its requests in flight bounded meanwhile.
    let mut deaf = TcpStream::connect(addr).unwrap();
    let big = vec![7u8; 256 << 10];
    assert_eq!(good.call(send("Big", 0, &big, "")).code, response::SUCCESS);
    deaf.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = pull("G", "Big", 0, 0, 0, 0).encode();
    let mut sent = 0;
    // Each request's answer is 256 KiB: the broker takes only so many before it waits.
    while sent < 20_000 && deaf.write_all(&request).is_ok() {
        sent += 1;
    }
    wait_for("the deaf client's connection to be closed", || {
        broker.connections() == 1
    });
    assert!(
        sent < 20_000,
        "the broker stopped reading the deaf client's requests ({sent} taken)"
    );

    assert_eq!(good.call(send("T", 0, b"after", "")).code, response::SUCCESS);
    let got = records(&good.call(pull("G", "T", 0, 0, 0, 0)).body);
    assert_eq!(
        got.iter().map(|r| r.body.clone()).collect::<Vec<_>>(),
        [b"before".to_vec(), b"after".to_vec()]
    );
    broker.stop().unwrap();
}

#[test]
fn a_slave_store_refuses_sends_with_service_not_available() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.store = cfg.store.role(mqstore::replication::Role::Slave {
        master: "127.0.0.1:1".parse().unwrap(),
    });
    let broker = Broker::start(cfg).unwrap();
    let mut c = Client::connect(broker.addr());
    let r = c.call(send("T", 0, b"x", ""));
    assert_eq!(r.code, response::SERVICE_NOT_AVAILABLE, "{r:?}");
    broker.stop().unwrap();
}
