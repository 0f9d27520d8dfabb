//! The command-line program: `bench` output shapes, `stat` and `dump` on stores written by the
//! library (and by RocketMQ, from the fixtures), read-only inspection, and exit codes.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mqstore::{FlushPolicy, Message, MessageStore, PutStatus, StoreConfig};

fn mqstore(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mqstore"))
        .args(args)
        .output()
        .expect("run the mqstore binary")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Parses one flat JSON object of numbers, booleans and simple strings (what `bench --json`
/// writes), checking its shape on the way.
fn parse_flat_json(line: &str) -> BTreeMap<String, String> {
    let inner = line
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not a JSON object: {line}"));
    let mut fields = BTreeMap::new();
    for pair in inner.split(',') {
        let (key, value) = pair
            .split_once(':')
            .unwrap_or_else(|| panic!("bad pair {pair:?} in {line}"));
        let key = key
            .strip_prefix('"')
            .and_then(|k| k.strip_suffix('"'))
            .unwrap_or_else(|| panic!("unquoted key {key:?}"));
        let value = if let Some(s) = value.strip_prefix('"') {
            s.strip_suffix('"')
                .unwrap_or_else(|| panic!("bad string {value:?}"))
                .to_string()
        } else {
            assert!(
                value == "true" || value == "false" || value.parse::<f64>().is_ok_and(f64::is_finite),
                "{key}: {value:?} is not a JSON number or boolean"
            );
            value.to_string()
        };
        assert!(fields.insert(key.to_string(), value).is_none(), "duplicate key {key}");
    }
    fields
}

const REQUIRED: [&str; 11] = [
    "flush",
    "producers",
    "messages",
    "size",
    "append_msgs_per_s",
    "append_mib_per_s",
    "p50_us",
    "p99_us",
    "p999_us",
    "hiccup_max_us",
    "read_msgs_per_s",
];

fn bench_json(args: &[&str]) -> Vec<BTreeMap<String, String>> {
    let mut all = vec!["bench", "--json"];
    all.extend_from_slice(args);
    let out = mqstore(&all);
    assert!(out.status.success(), "bench {args:?} failed: {}", stderr(&out));
    let text = stdout(&out);
    text.lines()
        .map(|line| {
            let fields = parse_flat_json(line);
            for key in REQUIRED {
                assert!(fields.contains_key(key), "missing {key} in {line}");
            }
            for key in &REQUIRED[1..] {
                let v: f64 = fields[*key]
                    .parse()
                    .unwrap_or_else(|_| panic!("{key} is not a number in {line}"));
                assert!(v >= 0.0, "{key} is negative in {line}");
            }
            assert_eq!(fields["put_errors"], "0");
            assert_eq!(fields["put_not_ok"], "0");
            assert_eq!(fields["read_errors"], "0");
            assert_eq!(
                fields["read_messages"], fields["messages"],
                "the bench read back what it wrote"
            );
            fields
        })
        .collect()
}

#[test]
fn bench_async_prints_one_json_line() {
    let lines = bench_json(&[
        "--flush",
        "async",
        "--messages",
        "2000",
        "--producers",
        "2",
        "--segment-size",
        "1048576",
    ]);
    assert_eq!(lines.len(), 1);
    let r = &lines[0];
    assert_eq!(r["flush"], "async");
    assert_eq!(r["messages"], "2000");
    assert_eq!(r["producers"], "2");
    assert_eq!(r["size"], "1024");
    assert!(r["append_msgs_per_s"].parse::<f64>().unwrap() > 0.0);
    assert!(r["read_msgs_per_s"].parse::<f64>().unwrap() > 0.0);
    let (p50, p99, p999): (f64, f64, f64) = (
        r["p50_us"].parse().unwrap(),
        r["p99_us"].parse().unwrap(),
        r["p999_us"].parse().unwrap(),
    );
    assert!(p50 <= p99 && p99 <= p999, "quantiles out of order: {r:?}");
}

/// `--replicate`: each mode alone, then with a slave in the same process; every put of the sync
/// master was acknowledged `Ok` (so held by the slave), and the slave caught up.
#[test]
fn bench_replicate_runs_each_mode_alone_and_with_a_slave() {
    for replicate in ["sync", "async"] {
        let lines = bench_json(&[
            "--flush",
            "async",
            "--messages",
            "3000",
            "--producers",
            "2",
            "--in-flight",
            "8",
            "--segment-size",
            "1048576",
            "--replicate",
            replicate,
        ]);
        let shapes: Vec<(&str, &str)> = lines
            .iter()
            .map(|l| (l["flush"].as_str(), l["replicate"].as_str()))
            .collect();
        assert_eq!(shapes, [("async", "off"), ("async", replicate)]);
        let lag: f64 = lines[1]["replica_lag_s"].parse().unwrap();
        assert!(lag >= 0.0);
    }
}

/// `--steady`: each mode on a fresh store, then within a budget kept by retention, whose segments
/// are recycled ones; what is left reads back whole.
#[test]
fn bench_steady_runs_each_mode_fresh_then_within_a_budget() {
    let out = mqstore(&[
        "bench",
        "--json",
        "--flush",
        "async",
        "--messages",
        "2000",
        "--producers",
        "2",
        "--segment-size",
        "1048576",
        "--steady",
        "--budget-segments",
        "4",
    ]);
    assert!(out.status.success(), "bench --steady failed: {}", stderr(&out));
    let lines: Vec<BTreeMap<String, String>> = stdout(&out).lines().map(parse_flat_json).collect();
    let shapes: Vec<&str> = lines.iter().map(|l| l["steady"].as_str()).collect();
    assert_eq!(shapes, ["false", "true"]);
    let (fresh, steady) = (&lines[0], &lines[1]);
    assert_eq!(fresh["messages"], "2000");
    assert_eq!(fresh["read_messages"], "2000");
    assert_eq!(fresh["recycled_segments"], "0");
    // At least four budgets of 1 MiB segments are written.
    let messages: u64 = steady["messages"].parse().unwrap();
    assert!(messages * 1024 >= 4 * 4 * 1024 * 1024 * 8 / 10, "{messages}");
    assert!(steady["recycled_segments"].parse::<f64>().unwrap() > 0.0, "{steady:?}");
    assert!(steady["deleted_segments"].parse::<f64>().unwrap() > 0.0, "{steady:?}");
    let read: u64 = steady["read_messages"].parse().unwrap();
    assert!(
        read > 0 && read < messages,
        "retention kept a part: {read} of {messages}"
    );
    for key in ["put_errors", "put_not_ok", "read_errors"] {
        assert_eq!(steady[key], "0", "{key}: {steady:?}");
    }
}

/// The flags that shape how the bench puts and reads: each shows in the JSON, every message still
/// comes back exactly once (the read phase checks each body's sequence number against its queue
/// and the sum of all), and a bad value is a usage error.
#[test]
fn bench_put_and_read_shapes_keep_every_message() {
    // (flags, JSON fields they set): 103 messages over 2 producers make short shares and a
    // short last batch; one reader pages 4 queues 7 messages at a time.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);
    let cases: [Case<'_>; 3] = [
        (&["--flush", "sync", "--put-batch", "5"], &[("put_batch", "5")]),
        (&["--flush", "sync", "--in-flight", "8"], &[("in_flight", "8")]),
        (
            &[
                "--flush",
                "async",
                "--queues",
                "4",
                "--readers",
                "1",
                "--get-batch",
                "7",
            ],
            &[("readers", "1"), ("get_batch", "7")],
        ),
    ];
    for (flags, fields) in cases {
        let mut args = vec!["--messages", "103", "--producers", "2", "--segment-size", "1048576"];
        args.extend_from_slice(flags);
        let lines = bench_json(&args);
        assert_eq!(lines.len(), 1, "{flags:?}");
        assert_eq!(lines[0]["read_messages"], "103", "{flags:?}");
        for (key, value) in fields {
            assert_eq!(lines[0][*key], *value, "{flags:?}: {key}");
        }
    }
    for bad in [
        &["--readers", "0"][..],
        &["--get-batch", "0"],
        &["--put-batch", "0"],
        &["--in-flight", "0"],
        // A batch is one put, waited for whole: it cannot also be kept in flight.
        &["--in-flight", "4", "--put-batch", "4"],
    ] {
        let mut args = vec!["bench", "--flush", "sync", "--messages", "10"];
        args.extend_from_slice(bad);
        let out = mqstore(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{bad:?} must be a usage error: {}",
            stderr(&out)
        );
    }
}

#[test]
fn bench_sync_and_all() {
    let lines = bench_json(&[
        "--flush",
        "sync",
        "--messages",
        "300",
        "--producers",
        "16",
        "--segment-size",
        "1048576",
        "--size",
        "100",
    ]);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["flush"], "sync");
    assert_eq!(lines[0]["messages"], "300");
    assert_eq!(lines[0]["size"], "100");

    // `all` runs every mode, one line each.
    let lines = bench_json(&[
        "--messages",
        "200",
        "--producers",
        "3",
        "--queues",
        "3",
        "--segment-size",
        "65536",
        "--size",
        "10",
    ]);
    let modes: Vec<&str> = lines.iter().map(|l| l["flush"].as_str()).collect();
    assert_eq!(modes, ["sync", "async", "buffered"]);
}

#[test]
fn bench_human_table_and_dir() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("runs");
    let root_s = root.to_str().unwrap();
    let out = mqstore(&[
        "bench",
        "--dir",
        root_s,
        "--flush",
        "async",
        "--messages",
        "500",
        "--producers",
        "2",
        "--segment-size",
        "65536",
        "--size",
        "64",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("append msg/s") && text.contains("read msg/s"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("async ")), "{text}");
    // The store is kept, and bench refuses to reuse it.
    assert!(root.join("async").join("commitlog").is_dir());
    let again = mqstore(&["bench", "--dir", root_s, "--flush", "async", "--messages", "10"]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("not empty"));
    // The kept store is one stat can read.
    let stat = mqstore(&["stat", root.join("async").to_str().unwrap()]);
    assert!(stat.status.success());
    assert!(stdout(&stat).contains("last shutdown clean"));
}

/// A small store: orders/0 gets 5 messages, orders/1 gets 3, with tags and keys.
fn small_store(dir: &Path) -> Vec<(u32, u64, u64, String)> {
    let store = MessageStore::open(
        StoreConfig::new(dir)
            .flush_policy(FlushPolicy::sync())
            .commit_log_segment_size(64 << 10)
            .consume_queue_units_per_segment(4),
    )
    .unwrap();
    let mut put = Vec::new();
    for i in 0..8u32 {
        let queue = if i < 5 { 0 } else { 1 };
        let body = format!("hello order {i}");
        let r = store
            .put(
                Message::new("orders", queue, body.clone().into_bytes())
                    .with_tags(if i % 2 == 0 { "TagA" } else { "TagB" })
                    .with_keys([format!("order-{i}")])
                    .with_property("region", "eu"),
            )
            .unwrap();
        assert_eq!(r.status, PutStatus::Ok);
        put.push((queue, r.queue_offset, r.commit_log_offset, body));
    }
    store.close().unwrap();
    put
}

/// Every file under `dir` with its contents: what a read-only command must leave as it is.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.insert(path.clone(), Vec::new());
                stack.push(path);
            } else {
                out.insert(path.clone(), fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn stat_and_dump_read_a_store_without_changing_it() {
    let dir = tempfile::tempdir().unwrap();
    let put = small_store(dir.path());
    let before = snapshot(dir.path());
    let d = dir.path().to_str().unwrap();

    let out = mqstore(&["stat", d]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("written by   mqstore"), "{text}");
    assert!(text.contains("last shutdown clean"), "{text}");
    assert!(text.contains("1 topic(s), 2 queue(s)"), "{text}");
    let row = |queue: &str| {
        text.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|cols| cols.first() == Some(&"orders") && cols.get(1) == Some(&queue))
            .unwrap_or_else(|| panic!("no row for orders/{queue}: {text}"))
    };
    // topic, queue, min, max, messages, files (4 units per file: orders/0 spans 2 files).
    assert_eq!(row("0")[2..6], ["0", "5", "5", "2"]);
    assert_eq!(row("1")[2..6], ["0", "3", "3", "1"]);
    // The same summary as JSON, field by field.
    let out = mqstore(&["stat", d, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("stat --json is JSON");
    assert_eq!(json["clean_shutdown"], true);
    assert_eq!(json["meta"]["record_crc_required"], true);
    assert_eq!(json["commit_log"]["segments"].as_array().map(Vec::len), Some(1));
    let queues = json["consume_queues"].as_array().expect("queues");
    assert_eq!(queues.len(), 2);
    assert_eq!(
        (&queues[0]["topic"], &queues[0]["queue_id"]),
        (&"orders".into(), &0.into())
    );
    assert_eq!(queues[0]["range"]["max"], 5);
    assert_eq!(queues[0]["files"], 2);
    assert_eq!(queues[1]["range"]["max"], 3);
    assert_eq!(json["failures"].as_array().map(Vec::len), Some(0));
    let end: u64 = put.iter().map(|p| p.2).max().unwrap();
    assert!(text.contains("commit log   1 segment(s)"), "{text}");
    let log_end = text
        .lines()
        .find(|l| l.starts_with("commit log"))
        .and_then(|l| l.rsplit("end ").next())
        .and_then(|e| e.trim().parse::<u64>().ok())
        .unwrap();
    assert!(
        log_end > end,
        "log end {log_end} should lie past the last record at {end}"
    );

    let out = mqstore(&["dump", d, "--topic", "orders", "--queue", "0", "--count", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("orders/0: offsets 0..5"), "{text}");
    for (i, (_, _, offset, body)) in put.iter().take(3).enumerate() {
        let line = text
            .lines()
            .find(|l| l.contains(body.as_str()))
            .unwrap_or_else(|| panic!("body {body:?} missing: {text}"));
        assert!(line.contains(&format!("order-{i}")), "keys missing: {line}");
        assert!(
            line.contains(if i % 2 == 0 { "TagA" } else { "TagB" }),
            "tags missing: {line}"
        );
        assert!(line.contains(&offset.to_string()), "commit-log offset missing: {line}");
    }
    assert!(!text.contains("hello order 3"), "count 3 shows 3 messages: {text}");

    // From an offset in the second file.
    let out = mqstore(&["dump", d, "--topic", "orders", "--queue", "0", "--offset", "3"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("hello order 3") && text.contains("hello order 4"),
        "{text}"
    );
    assert!(!text.contains("hello order 2"), "{text}");

    let out = mqstore(&["dump", d, "--commit-log-offset", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "total size",
        "magic",
        "0xdaa320a7 (V1)",
        "topic                        orders",
        "queue offset                 0",
        "physical offset              0",
        "TAGS=TagA",
        "KEYS=order-0",
        "region=eu",
        "\"hello order 0\"",
        "record CRC (__CRC32#)        ok",
        "CRCs verify                  yes",
    ] {
        assert!(text.contains(needle), "{needle:?} missing: {text}");
    }
    let second = put[1].2.to_string();
    let out = mqstore(&["dump", d, "--commit-log-offset", &second]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("hello order 1"));

    // The same readings as JSON.
    let out = mqstore(&["dump", d, "--commit-log-offset", &second, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("dump --json is JSON");
    assert_eq!(json["kind"], "record");
    assert_eq!(json["offset"], put[1].2);
    assert_eq!(json["topic"], "orders");
    assert_eq!(json["queue_offset"], 1);
    assert_eq!(json["body"]["text"], "hello order 1");
    assert_eq!(json["record_crc_ok"], true);
    let out = mqstore(&[
        "dump", d, "--topic", "orders", "--queue", "0", "--offset", "1", "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("dump --json is JSON");
    assert_eq!((json["min"].as_u64(), json["max"].as_u64()), (Some(0), Some(5)));
    let units = json["units"].as_array().expect("units");
    let offsets: Vec<_> = units.iter().map(|u| u["offset"].as_u64()).collect();
    assert_eq!(offsets, [Some(1), Some(2), Some(3), Some(4)]);
    assert_eq!(units[0]["kind"], "message");
    assert_eq!(units[0]["commit_log_offset"], put[1].2);
    assert_eq!(units[0]["keys"][0], "order-1");
    assert_eq!(units[0]["tags"], "TagB");

    // Not the start of a record; past the end of the log; a queue that does not exist.
    let out = mqstore(&["dump", d, "--commit-log-offset", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("no valid record here"));
    let out = mqstore(&["dump", d, "--commit-log-offset", &(log_end + 100).to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let out = mqstore(&["dump", d, "--topic", "orders", "--queue", "7"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("has queues 0, 1"), "{}", stderr(&out));

    assert!(before == snapshot(dir.path()), "stat or dump changed the store");
}

#[test]
fn dump_reports_a_damaged_record() {
    let dir = tempfile::tempdir().unwrap();
    let put = small_store(dir.path());
    let segment = dir.path().join("commitlog").join("00000000000000000000");
    let mut bytes = fs::read(&segment).unwrap();
    // Flip a bit in the body of the second record ("hello order 1").
    let body_at = bytes[put[1].2 as usize..]
        .windows(13)
        .position(|w| w == b"hello order 1")
        .unwrap()
        + put[1].2 as usize;
    bytes[body_at] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();
    let d = dir.path().to_str().unwrap();

    let out = mqstore(&["dump", d, "--commit-log-offset", &put[1].2.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("MISMATCH") && text.contains("CRCs verify                  NO"),
        "{text}"
    );

    let out = mqstore(&["dump", d, "--topic", "orders", "--queue", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("CRC MISMATCH"));
    let out = mqstore(&["dump", d, "--topic", "orders", "--queue", "0", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("dump --json is JSON");
    let crc: Vec<_> = json["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["crc_ok"].as_bool())
        .collect();
    assert_eq!(crc[..2], [Some(true), Some(false)]);
}

#[test]
fn stat_reads_a_rocketmq_store_after_a_crash() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rocketmq-1.0.0-crash");
    let before = snapshot(&fixture);
    let out = mqstore(&["stat", fixture.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("written by   RocketMQ"), "{text}");
    assert!(text.contains("not clean (abort marker present)"), "{text}");
    assert!(text.contains("physicMsgTimestamp"), "{text}");
    assert!(text.contains("2 topic(s), 6 queue(s)"), "{text}");
    for (topic, queue, max) in [("orders", "0", "67"), ("orders", "3", "67"), ("audit-log", "1", "66")] {
        assert!(
            text.lines().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() > 3 && cols[0] == topic && cols[1] == queue && cols[3] == max
            }),
            "{topic}/{queue} should end at {max}: {text}"
        );
    }
    let out = mqstore(&[
        "dump",
        fixture.to_str().unwrap(),
        "--topic",
        "audit-log",
        "--queue",
        "1",
        "--offset",
        "60",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 2 + 6, "header lines and offsets 60..66");
    assert!(before == snapshot(&fixture), "stat or dump changed the fixture");
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for args in [
        &["bench", "--producers", "0"][..],
        &["bench", "--size", "0"],
        &["bench", "--messages", "0"],
        &["bench", "--flush", "fastest"],
        &["bench", "--size", "100000", "--segment-size", "65536"],
        &["dump", d],
        &["dump", d, "--topic", "t"],
        &["dump", d, "--topic", "t", "--queue", "0", "--commit-log-offset", "0"],
        &["stat"],
        &["stat", "/nonexistent/mqstore-store"],
        &["stat", d],
        &["dump", "/nonexistent/mqstore-store", "--commit-log-offset", "0"],
    ] {
        let out = mqstore(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty(), "{args:?} should say what is wrong");
        assert!(out.stdout.is_empty(), "{args:?} should print nothing on stdout");
    }
}

#[test]
fn verify_exit_codes_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    {
        let store = mqstore::MessageStore::open(
            mqstore::StoreConfig::new(&dir)
                .commit_log_segment_size(64 * 1024)
                .consume_queue_units_per_segment(64),
        )
        .unwrap();
        for i in 0..50u32 {
            store.put(mqstore::Message::new("v", i % 2, vec![b'x'; 300])).unwrap();
        }
        store.close().unwrap();
    }
    let d = dir.to_str().unwrap();
    let out = mqstore(&["verify", d]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("consistent"));
    let out = mqstore(&["verify", d, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(
        json.trim_start().starts_with('{') && json.contains("\"consistent\":true"),
        "{json}"
    );

    // Flip a bit in the body of the third record: damage, reported with its offset.
    let seg = dir.join("commitlog/00000000000000000000");
    let mut bytes = std::fs::read(&seg).unwrap();
    let third = {
        let first = u32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize;
        let second = u32::from_be_bytes(bytes[first..first + 4].try_into().unwrap()) as usize;
        first + second
    };
    bytes[third + 150] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
    let out = mqstore(&["verify", d]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("DAMAGE") && report.contains(&format!("@{third}")),
        "{report}"
    );
    let out = mqstore(&["verify", d, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"consistent\":false"));

    assert_eq!(mqstore(&["verify"]).status.code(), Some(2));
    assert_eq!(
        mqstore(&["verify", "/nonexistent/mqstore-store"]).status.code(),
        Some(2)
    );
}

#[test]
fn stat_and_verify_show_the_index_and_the_consumer_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(StoreConfig::new(dir.path()).index_size(11, 44)).unwrap();
    for i in 0..30 {
        store
            .put(Message::new("cli", 0, vec![1u8; 10]).with_keys([format!("k{i}")]))
            .unwrap();
    }
    store.commit_offset("readers", "cli", 0, 12).unwrap();
    store.close().unwrap();
    drop(store);
    let d = dir.path().to_str().unwrap();
    let out = mqstore(&["stat", d]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // 30 messages x 2 entries (the key, the unique key), 43 entries a file: two files.
    assert!(text.contains("index        2 file(s)"), "{text}");
    assert!(text.contains("entries 42 "), "{text}");
    assert!(text.contains("entries 18 "), "{text}");
    assert!(text.contains("readers"), "{text}");
    assert!(text.contains("index mark (mqstore)"), "{text}");
    let out = mqstore(&["verify", d, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let json = stdout(&out);
    assert!(json.contains("\"index_files\":2,\"index_entries\":60"), "{json}");
    let out = mqstore(&["dump", d, "--topic", "cli", "--key", "k7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.matches("commit-log offset ").count(), 1, "{text}");
    assert!(text.contains("k7"), "{text}");
    let out = mqstore(&["dump", d, "--topic", "cli", "--key", "nope"]);
    assert!(stdout(&out).contains("no message"), "{}", stdout(&out));
    let out = mqstore(&["dump", d, "--topic", "cli", "--key", "k7", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("dump --json is JSON");
    assert_eq!(json["records"].as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(json["records"][0]["queue_offset"], 7, "{json}");
    assert_eq!(json["records"][0]["body"]["hex"], "01".repeat(10), "{json}");
    let out = mqstore(&["dump", d, "--consumer-offsets"]);
    assert!(stdout(&out).contains("readers  cli/0  12"), "{}", stdout(&out));
    let out = mqstore(&["dump", d, "--consumer-offsets", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("dump --json is JSON");
    assert_eq!(
        json,
        serde_json::json!([{"group": "readers", "topic": "cli", "queue_id": 0, "offset": 12}])
    );
}

#[test]
fn repair_a_store_open_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let put = small_store(dir.path());
    let d = dir.path().to_str().unwrap();
    // A copy of the log cut short (a full disk): open refuses the short segment, verify says so.
    let segment = dir.path().join("commitlog/00000000000000000000");
    let last_end = put.iter().map(|p| p.2).max().unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(last_end + 10)
        .unwrap();
    fs::write(dir.path().join("commitlog/README"), b"stray").unwrap();
    assert!(MessageStore::open(StoreConfig::new(dir.path())).is_err());
    assert_eq!(mqstore(&["verify", d]).status.code(), Some(1));

    let before = snapshot(dir.path());
    let dry = mqstore(&["repair", d, "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    let plan = stdout(&dry);
    assert!(plan.contains("would move") && plan.contains("README"), "{plan}");
    assert!(plan.contains("would pad"), "{plan}");
    assert!(
        plan.contains(&format!("lost: commit-log offsets {last_end}..{}", last_end + 10)),
        "the last record, cut short, is what is lost:\n{plan}"
    );
    assert!(snapshot(dir.path()) == before, "a dry run changed the store");

    let done = mqstore(&["repair", d]);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    let text = stdout(&done);
    assert!(
        text.contains("moved") && text.contains("padded") && text.contains("opened:"),
        "{text}"
    );
    assert_eq!(mqstore(&["verify", d]).status.code(), Some(0));
    let store = MessageStore::open(StoreConfig::new(dir.path())).unwrap();
    for (queue, offset, commit_log_offset, body) in &put {
        let g = store.get("orders", *queue, *offset, 1).unwrap();
        if *commit_log_offset == last_end {
            assert!(g.messages.is_empty(), "the record cut short is gone");
        } else {
            assert_eq!(g.messages[0].body(), body.as_bytes());
        }
    }
    store.close().unwrap();
    // A running store is refused (exit 2), as is a missing directory.
    let store = MessageStore::open(StoreConfig::new(dir.path())).unwrap();
    assert_eq!(mqstore(&["repair", d]).status.code(), Some(2));
    store.close().unwrap();
    assert_eq!(
        mqstore(&["repair", "/nonexistent/mqstore-store"]).status.code(),
        Some(2)
    );
}

#[test]
fn config_default_file_checks_and_drives_a_bench() {
    let dir = tempfile::tempdir().unwrap();
    let out = mqstore(&["config", "--default", "--dir", "/srv/mq"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let default = stdout(&out);
    assert!(default.contains("dir = \"/srv/mq\""), "{default}");
    assert!(
        default.contains("[retention]") && default.contains("# disk_budget = "),
        "{default}"
    );
    // The default file reads back as the library's defaults.
    let from_file: StoreConfig = default.parse().expect("the default file parses");
    assert_eq!(
        from_file.to_toml().unwrap(),
        StoreConfig::new("/srv/mq").to_toml().unwrap()
    );

    // A file that changes a few keys: check prints every setting, the changed ones included.
    let file = dir.path().join("store.toml");
    fs::write(
        &file,
        "dir = \"/unused\"\n[consume_queue]\nunits_per_segment = 100\n[index]\nenabled = false\n",
    )
    .unwrap();
    let out = mqstore(&["config", "--check", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let checked = stdout(&out);
    assert!(checked.contains("units_per_segment = 100"), "{checked}");
    assert!(checked.contains("mode = \"async\""), "{checked}");

    // bench takes the file's settings under its own: 100 units a consume-queue file.
    let root = dir.path().join("runs");
    let out = mqstore(&[
        "bench",
        "--config",
        file.to_str().unwrap(),
        "--dir",
        root.to_str().unwrap(),
        "--flush",
        "async",
        "--messages",
        "300",
        "--producers",
        "1",
        "--queues",
        "1",
        "--segment-size",
        "65536",
        "--size",
        "16",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let queue_dir = fs::read_dir(root.join("async/consumequeue"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("0");
    let files: Vec<u64> = fs::read_dir(&queue_dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    assert!(files.len() >= 3 && files.iter().all(|&len| len == 2000), "{files:?}");
    assert!(
        !root.join("async/index").exists() || fs::read_dir(root.join("async/index")).unwrap().next().is_none(),
        "the index was off"
    );

    // A misspelt key: exit 1, the key and its line named; bench refuses the file as a usage error.
    fs::write(&file, "dir = \"/d\"\n\n[flush]\nmdoe = \"sync\"\n").unwrap();
    let out = mqstore(&["config", "--check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("line 4") && err.contains("mdoe"), "{err}");
    let out = mqstore(&["bench", "--config", file.to_str().unwrap(), "--messages", "10"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("mdoe"), "{}", stderr(&out));
}

/// `-v` shows the store's events on stderr (here, the end of recovery at open); without it the
/// program is quiet.
#[test]
fn verbose_shows_the_store_events() {
    let run = |verbose: bool| {
        let mut args = vec!["bench", "--flush", "async", "--messages", "100", "--producers", "1"];
        args.extend(["--segment-size", "1048576"]);
        if verbose {
            args.push("-v");
        }
        let out = Command::new(env!("CARGO_BIN_EXE_mqstore"))
            .args(&args)
            .env_remove("RUST_LOG")
            .output()
            .expect("run the mqstore binary");
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    let loud = run(true);
    assert!(loud.contains("store recovered after a clean shutdown"), "{loud}");
    let quiet = run(false);
    assert!(!quiet.contains("recovered"), "{quiet}");
}
