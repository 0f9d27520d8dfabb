//! Crash safety across real process deaths.
//!
//! A child process (this test binary again, running the ignored test `crash_child`) opens the
//! store with small segments, puts from 4 threads to 2 topics x 3 queues, and after every put
//! that returned `PutStatus::Ok` writes `ACK topic queue queue_offset commit_log_offset
//! wrote_bytes body_hash` to stdout before its next put. The parent SIGKILLs it at a random
//! moment, optionally simulates a power loss on the files (sync policy only: every byte past the
//! last acknowledged one may be garbage), reopens and checks: every acknowledged put is there and
//! intact, every queue reads densely from min to max without error, new puts continue each
//! queue's offsets densely. Rounds run on one directory, so damage and recoveries accumulate.
//! Sometimes the check is left to the next child, which checks right after its own open and is
//! then killed without ever closing.
//!
//! `MQSTORE_CRASH_ROUNDS` (default 6) scales a run, `MQSTORE_CRASH_SEED` replays one (every run
//! prints its seed), `MQSTORE_CRASH_CHECKPOINT` (`zero,garble,empty`) narrows the checkpoint
//! damage of the power-loss variant, `MQSTORE_CRASH_KEEP=1` keeps the directory of a failed run.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::{
    Rng, commit_log_files, consume_queue_dirs, count_from_env, fnv1a64, garble_range, library_panics, mix_seed,
    punch_to_zeros, seed_from_env, segment_files, watch_library_panics, zero_range,
};
use mqstore::{
    DiskUsage, FlushPolicy, GetStatus, Message, MessageStore, PutResult, PutStatus, RetentionConfig, StoreConfig,
};

const TOPICS: [&str; 2] = ["crash-a", "crash-b"];
const QUEUES: u32 = 3;
const WRITERS: u64 = 4;
/// Bodies are 0..MAX_BODY bytes long.
const MAX_BODY: u64 = 3000;
const SEGMENT: u64 = 64 * 1024;
const CQ_UNITS: u64 = 64;
const UNIT: u64 = 20;
const PAGE: u64 = 4096;

const ENV_DIR: &str = "MQSTORE_CRASH_CHILD_DIR";
const ENV_POLICY: &str = "MQSTORE_CRASH_CHILD_POLICY";
const ENV_SEED: &str = "MQSTORE_CRASH_CHILD_SEED";
const ENV_EXPECT: &str = "MQSTORE_CRASH_CHILD_EXPECT";

/// Open, recovery and (in a checking round) the check of everything acknowledged so far.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// From SIGKILL to a reaped child and a closed pipe.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// A child that is never killed (the parent died) ends itself.
const CHILD_LIFETIME: Duration = Duration::from_secs(120);
/// How long a check waits for the dispatcher.
const DISPATCH_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    Sync,
    /// Sync appending straight into the file mapping (no write buffers).
    SyncMapped,
    /// Sync, each writer keeping puts in flight with `put_async` and acknowledging each once
    /// its wait says `Ok`.
    SyncPipelined,
    Async,
    /// Sync, with retention keeping the log within a budget of a few segments: segments are
    /// deleted and recycled while the writers run, and kills land in the middle of passes.
    SyncRetention,
}

impl Policy {
    fn name(self) -> &'static str {
        match self {
            Policy::Sync => "sync",
            Policy::SyncMapped => "sync-mapped",
            Policy::SyncPipelined => "sync-pipelined",
            Policy::Async => "async",
            Policy::SyncRetention => "sync-retention",
        }
    }

    fn from_name(s: &str) -> Policy {
        match s {
            "sync" => Policy::Sync,
            "sync-mapped" => Policy::SyncMapped,
            "sync-pipelined" => Policy::SyncPipelined,
            "async" => Policy::Async,
            "sync-retention" => Policy::SyncRetention,
            other => panic!("unknown policy {other:?}"),
        }
    }

    fn flush(self) -> FlushPolicy {
        match self {
            Policy::Sync | Policy::SyncPipelined | Policy::SyncRetention => FlushPolicy::sync(),
            Policy::SyncMapped => FlushPolicy::sync().with_buffers(0, false),
            Policy::Async => FlushPolicy::asynchronous(),
        }
    }
}

fn config(dir: &Path, policy: Policy) -> StoreConfig {
    let retention = match policy {
        Policy::SyncRetention => RetentionConfig::default()
            .delete_when([])
            .interval(Duration::from_millis(5), Duration::ZERO)
            .disk_usage(DiskUsage::Budget(8 * SEGMENT))
            .disk_space_clean_forcibly_ratio(0.5),
        _ => RetentionConfig::default(),
    };
    StoreConfig::new(dir)
        .commit_log_segment_size(SEGMENT)
        .consume_queue_units_per_segment(CQ_UNITS)
        .flush_policy(policy.flush())
        // Small index files, so that kills land around roll-overs too.
        .index_size(97, 1000)
        .retention(retention)
}

/// The body of the message with key `key`: its length (0..MAX_BODY) and bytes follow from the
/// key alone, so any message read back can be checked, acknowledged or not.
fn body_for(key: u64) -> Vec<u8> {
    let mut r = Rng::new(key);
    let len = r.below(MAX_BODY) as usize;
    let mut b = vec![0u8; len];
    r.fill(&mut b);
    b
}

fn message_for(topic: usize, queue: u32, key: u64) -> Message {
    Message::new(TOPICS[topic], queue, body_for(key))
        .with_tags(format!("tag{}", key % 3))
        .with_property("k", key.to_string())
        .with_keys([format!("k{key}")])
}

/// One acknowledged put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ack {
    topic: usize,
    queue: u32,
    queue_offset: u64,
    commit_log_offset: u64,
    wrote_bytes: u32,
    body_hash: u64,
}

impl Ack {
    fn new(topic: usize, queue: u32, r: &PutResult, key: u64) -> Ack {
        Ack {
            topic,
            queue,
            queue_offset: r.queue_offset,
            commit_log_offset: r.commit_log_offset,
            wrote_bytes: r.wrote_bytes,
            body_hash: fnv1a64(&body_for(key)),
        }
    }

    fn end(&self) -> u64 {
        self.commit_log_offset + self.wrote_bytes as u64
    }

    fn line(&self) -> String {
        format!(
            "ACK {} {} {} {} {} {:016x}",
            TOPICS[self.topic], self.queue, self.queue_offset, self.commit_log_offset, self.wrote_bytes, self.body_hash
        )
    }

    fn parse(line: &str) -> Result<Ack, String> {
        let bad = || format!("malformed acknowledgement line {line:?}");
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 7 || f[0] != "ACK" {
            return Err(bad());
        }
        Ok(Ack {
            topic: TOPICS.iter().position(|t| *t == f[1]).ok_or_else(bad)?,
            queue: f[2].parse().map_err(|_| bad())?,
            queue_offset: f[3].parse().map_err(|_| bad())?,
            commit_log_offset: f[4].parse().map_err(|_| bad())?,
            wrote_bytes: f[5].parse().map_err(|_| bad())?,
            body_hash: u64::from_str_radix(f[6], 16).map_err(|_| bad())?,
        })
    }
}

/// Everything acknowledged so far, by queue and by commit-log offset.
#[derive(Default)]
struct Expected {
    by_queue: BTreeMap<(usize, u32), BTreeMap<u64, Ack>>,
    by_offset: BTreeMap<u64, Ack>,
}

impl Expected {
    /// Adds an acknowledgement; an acknowledged queue offset or commit-log range that another
    /// acknowledged put already had is a broken promise (data lost, then offsets reused).
    fn add(&mut self, a: Ack) -> Result<(), String> {
        let q = self.by_queue.entry((a.topic, a.queue)).or_default();
        if let Some(old) = q.get(&a.queue_offset) {
            if *old == a {
                return Ok(());
            }
            return Err(format!(
                "queue offset reused: {} was acknowledged twice, first as {old:?}, now as {a:?}",
                a.queue_offset
            ));
        }
        if let Some((_, prev)) = self.by_offset.range(..=a.commit_log_offset).next_back()
            && prev.end() > a.commit_log_offset
        {
            return Err(format!(
                "commit-log range reused: acknowledged {a:?} overlaps the earlier acknowledged {prev:?}"
            ));
        }
        if let Some((_, next)) = self.by_offset.range(a.commit_log_offset..).next()
            && next.commit_log_offset < a.end()
        {
            return Err(format!(
                "commit-log range reused: acknowledged {a:?} overlaps the earlier acknowledged {next:?}"
            ));
        }
        q.insert(a.queue_offset, a);
        self.by_offset.insert(a.commit_log_offset, a);
        Ok(())
    }

    fn len(&self) -> usize {
        self.by_offset.len()
    }

    /// The highest acknowledged end offset: A in the power-loss model.
    fn acked_end(&self) -> u64 {
        self.by_offset.values().next_back().map_or(0, Ack::end)
    }

    fn save(&self, path: &Path) -> Result<(), String> {
        let mut text = String::new();
        for a in self.by_offset.values() {
            text.push_str(&a.line());
            text.push('\n');
        }
        std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
    }

    fn load(path: &Path) -> Result<Expected, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let mut exp = Expected::default();
        for line in text.lines().filter(|l| !l.is_empty()) {
            exp.add(Ack::parse(line)?)?;
        }
        Ok(exp)
    }
}

#[derive(Default)]
struct Verified {
    /// Acknowledged puts found intact.
    acks: u64,
    /// Messages read (acknowledged or not).
    messages: u64,
}

/// Checks a reopened store against everything acknowledged: all there and intact, every queue
/// dense from min to max but where records never acknowledged were lost with a page a power
/// loss dropped, no error, no wrong data (unacknowledged survivors must be intact too).
fn verify(store: &MessageStore, exp: &Expected) -> Result<Verified, String> {
    if !store.wait_dispatched(DISPATCH_TIMEOUT) {
        return Err(format!(
            "dispatch did not catch up within {DISPATCH_TIMEOUT:?}: dispatched {} of {}",
            store.dispatched_offset(),
            store.max_commit_log_offset()
        ));
    }
    let log_end = store.max_commit_log_offset();
    // Records below it were deleted by retention: acknowledged or not, they are gone.
    let log_min = store.min_commit_log_offset();
    for (topic, queue) in store.queues() {
        if !TOPICS.contains(&topic.as_str()) || queue >= QUEUES {
            return Err(format!("the store has a queue nobody wrote to: {topic}/{queue}"));
        }
    }
    let mut stats = Verified::default();
    let mut seen_offsets = HashSet::new();
    for (t, topic) in TOPICS.iter().enumerate() {
        for q in 0..QUEUES {
            let ctx = |what: String| format!("{topic}/{q}: {what}");
            let min = store.min_offset(topic, q);
            let max = store.max_offset(topic, q);
            if max > 0 && min != 0 && log_min == 0 {
                return Err(ctx(format!("min offset {min} (max {max}): nothing was ever removed")));
            }
            // (commit-log offset, size, body hash) by queue offset. A page a power loss lost
            // between pages that did reach the disk may leave a hole, but only where no put was
            // ever acknowledged.
            let acked_here = exp.by_queue.get(&(t, q));
            // Retention may be running: what it took meanwhile may be skipped too.
            let gap_allowed = |from: u64, to: u64| {
                let live_min = store.min_commit_log_offset();
                (from..to).all(|x| acked_here.is_none_or(|a| a.get(&x).is_none_or(|a| a.commit_log_offset < live_min)))
            };
            let mut found: std::collections::BTreeMap<u64, (u64, u32, u64)> = std::collections::BTreeMap::new();
            let mut offset = min;
            while offset < max {
                let g = store.get(topic, q, offset, 64).map_err(|e| {
                    ctx(format!(
                        "get at queue offset {offset} (min {min}, max {max}) failed: {e} ({e:?})"
                    ))
                })?;
                let skipped = matches!(
                    g.status,
                    GetStatus::NoMatchedMessage | GetStatus::OffsetTooSmall | GetStatus::MessageWasRemoving
                );
                if skipped && g.next_offset > offset && gap_allowed(offset, g.next_offset) {
                    offset = g.next_offset;
                    continue;
                }
                if g.status != GetStatus::Found || g.messages.is_empty() {
                    return Err(ctx(format!(
                        "get at queue offset {offset} (min {min}, max {max}) returned {:?} with {} messages, next {}",
                        g.status,
                        g.messages.len(),
                        g.next_offset
                    )));
                }
                for m in &g.messages {
                    if m.queue_offset() != offset {
                        if !(m.queue_offset() > offset && gap_allowed(offset, m.queue_offset())) {
                            return Err(ctx(format!(
                                "not dense: expected queue offset {offset}, read {} ({m:?})",
                                m.queue_offset()
                            )));
                        }
                        offset = m.queue_offset();
                    }
                    if m.topic() != *topic || m.queue_id() != q {
                        return Err(ctx(format!(
                            "queue offset {offset} holds a message of {}/{}",
                            m.topic(),
                            m.queue_id()
                        )));
                    }
                    let key: u64 = m.property("k").and_then(|k| k.parse().ok()).ok_or_else(|| {
                        ctx(format!(
                            "queue offset {offset}: message without its key property: {m:?}"
                        ))
                    })?;
                    if m.body() != body_for(key).as_slice() {
                        return Err(ctx(format!("queue offset {offset}: wrong body for key {key} ({m:?})")));
                    }
                    if let Some((_, &(prev, _, _))) = found.last_key_value()
                        && m.commit_log_offset() <= prev
                    {
                        return Err(ctx(format!(
                            "queue offset {offset} at commit-log offset {} is not after the previous one at {prev}",
                            m.commit_log_offset()
                        )));
                    }
                    if !seen_offsets.insert(m.commit_log_offset()) {
                        return Err(ctx(format!(
                            "queue offset {offset}: commit-log offset {} is returned twice",
                            m.commit_log_offset()
                        )));
                    }
                    if m.commit_log_offset() + m.size() as u64 > log_end {
                        return Err(ctx(format!(
                            "queue offset {offset} ends at {}, past the end of the log {log_end}",
                            m.commit_log_offset() + m.size() as u64
                        )));
                    }
                    found.insert(offset, (m.commit_log_offset(), m.size(), fnv1a64(m.body())));
                    offset += 1;
                }
                if g.next_offset != offset {
                    return Err(ctx(format!(
                        "get returned next offset {} after reading up to {offset}",
                        g.next_offset
                    )));
                }
            }
            let past = store
                .get(topic, q, max, 1)
                .map_err(|e| ctx(format!("get one past the end ({max}) failed: {e}")))?;
            let want = if max == 0 {
                GetStatus::NoMessageInQueue
            } else {
                GetStatus::OffsetOverflowOne
            };
            if past.status != want {
                return Err(ctx(format!(
                    "get one past the end ({max}) returned {:?}, expected {want:?}",
                    past.status
                )));
            }
            stats.messages += found.len() as u64;
            let Some(acked) = exp.by_queue.get(&(t, q)) else {
                continue;
            };
            for (&qo, a) in acked {
                if a.commit_log_offset < store.min_commit_log_offset() {
                    continue;
                }
                if qo < min || qo >= max {
                    return Err(ctx(format!(
                        "acknowledged put is missing: {a:?}; the queue holds {min}..{max}"
                    )));
                }
                let Some(&(clo, size, hash)) = found.get(&qo) else {
                    return Err(ctx(format!("acknowledged put is missing: {a:?}")));
                };
                if (clo, size, hash) != (a.commit_log_offset, a.wrote_bytes, a.body_hash) {
                    return Err(ctx(format!(
                        "acknowledged {a:?} reads back as commit-log offset {clo}, {size} bytes, body hash {hash:016x}"
                    )));
                }
                stats.acks += 1;
            }
        }
    }
    if exp.acked_end() > log_end {
        return Err(format!(
            "the commit log ends at {log_end}, below the highest acknowledged end {}",
            exp.acked_end()
        ));
    }
    // Every acknowledged record also reads by its commit-log offset.
    for a in exp.by_offset.values().filter(|a| a.commit_log_offset >= log_min) {
        let read = store.read_at(a.commit_log_offset);
        if a.commit_log_offset < store.min_commit_log_offset() {
            continue;
        }
        match read {
            Ok(Some(m))
                if m.topic() == TOPICS[a.topic]
                    && m.queue_id() == a.queue
                    && m.queue_offset() == a.queue_offset
                    && m.size() == a.wrote_bytes
                    && fnv1a64(m.body()) == a.body_hash =>
            {
                // And by its key, through the index: exactly this record.
                let key = format!("k{}", m.property("k").unwrap_or_default());
                let found = store
                    .query_by_key(TOPICS[a.topic], &key, 4)
                    .map_err(|e| format!("query_by_key({key}) of acknowledged {a:?}: {e}"))?;
                let offsets: Vec<u64> = found.iter().map(|m| m.commit_log_offset()).collect();
                // Unless retention took the record between the read and the lookup.
                if offsets != [a.commit_log_offset] && a.commit_log_offset >= store.min_commit_log_offset() {
                    return Err(format!("query_by_key({key}) of acknowledged {a:?} found {offsets:?}"));
                }
            }
            other => {
                return Err(format!(
                    "read_at({}) of acknowledged {a:?} returned {other:?}",
                    a.commit_log_offset
                ));
            }
        }
    }
    Ok(stats)
}

// ------------------------------------------------------------------------------------------
// The child.
// ------------------------------------------------------------------------------------------

/// Writes one line to stdout, whole, and flushes it. If the parent is gone nobody will ever
/// read an acknowledgement again: the child ends.
fn emit(line: &str) {
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    let mut out = std::io::stdout().lock();
    if out.write_all(buf.as_bytes()).and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

fn fail_child(code: i32, what: String) -> ! {
    emit(&format!("FAILED {}", what.replace('\n', " | ")));
    std::process::exit(code);
}

/// Child mode: run by the parent with `MQSTORE_CRASH_CHILD_DIR` (and policy, seed, optionally a
/// file of acknowledgements to check first) set; does nothing when run by hand.
#[test]
#[ignore = "child process of the crash tests: the parent runs it with MQSTORE_CRASH_CHILD_DIR set"]
fn crash_child() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let policy = Policy::from_name(&var(ENV_POLICY));
    let seed: u64 = var(ENV_SEED).parse().expect("seed");
    let expect = std::env::var(ENV_EXPECT)
        .ok()
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    child_main(Path::new(&dir), policy, seed, expect.as_deref());
}

fn child_main(dir: &Path, policy: Policy, seed: u64, expect: Option<&Path>) -> ! {
    // Ends whatever line the test harness started, so every line of ours starts a line.
    emit("");
    std::panic::set_hook(Box::new(|info| {
        let name = std::thread::current().name().unwrap_or("?").to_string();
        fail_child(101, format!("panic in thread {name}: {info}"));
    }));
    std::thread::spawn(|| {
        std::thread::sleep(CHILD_LIFETIME);
        std::process::exit(0);
    });
    let store = match MessageStore::open(config(dir, policy)) {
        Ok(s) => Arc::new(s),
        Err(e) => fail_child(2, format!("open: {e} ({e:?})")),
    };
    emit("OPENED");
    if let Some(path) = expect {
        let exp = Expected::load(path).unwrap_or_else(|e| fail_child(3, e));
        match verify(&store, &exp) {
            Ok(v) => emit(&format!("CHECKED {} {}", v.acks, v.messages)),
            Err(e) => fail_child(
                3,
                format!("check after reopen: {e}; recovery: {:?}", store.recovery_report()),
            ),
        }
    }
    // New puts continue every queue densely: one per queue before the writers start.
    let mut rng = Rng::new(mix_seed(&[seed, 0xDE45E]));
    for (t, topic) in TOPICS.iter().enumerate() {
        for q in 0..QUEUES {
            let before = store.max_offset(topic, q);
            let key = rng.next_u64();
            match store.put(message_for(t, q, key)) {
                Ok(r) if r.queue_offset != before => fail_child(
                    4,
                    format!(
                        "{}/{q}: max offset was {before} but the next put got queue offset {}",
                        topic, r.queue_offset
                    ),
                ),
                Ok(r) if r.status == PutStatus::Ok => emit(&Ack::new(t, q, &r, key).line()),
                Ok(r) => emit(&format!("UNCONFIRMED {:?}", r.status)),
                Err(e) => fail_child(4, format!("put: {e} ({e:?})")),
            }
        }
    }
    emit("READY");
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            let seed = mix_seed(&[seed, w, 0x3217E5]);
            std::thread::spawn(move || writer(&store, policy, seed))
        })
        .collect();
    for w in writers {
        let _ = w.join();
    }
    std::process::exit(0);
}

/// Puts each pipelined writer keeps in flight.
const IN_FLIGHT: usize = 16;

fn writer(store: &MessageStore, policy: Policy, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut in_flight = std::collections::VecDeque::with_capacity(IN_FLIGHT);
    loop {
        if policy == Policy::SyncPipelined {
            let key = rng.next_u64();
            let t = rng.below(TOPICS.len() as u64) as usize;
            let q = rng.below(QUEUES as u64) as u32;
            match store.put_async(message_for(t, q, key)) {
                Ok(pending) => in_flight.push_back((t, q, key, pending)),
                Err(e) => fail_child(6, format!("put_async: {e} ({e:?})")),
            }
            if in_flight.len() == IN_FLIGHT {
                let (t, q, key, pending) = in_flight.pop_front().expect("a put in flight");
                // Acknowledged only once its wait confirms it, as a broker would.
                match pending.wait() {
                    r if r.status == PutStatus::Ok => emit(&Ack::new(t, q, &r, key).line()),
                    r => emit(&format!("UNCONFIRMED {:?}", r.status)),
                }
            }
            continue;
        }
        let key = rng.next_u64();
        let t = rng.below(TOPICS.len() as u64) as usize;
        let q = rng.below(QUEUES as u64) as u32;
        match store.put(message_for(t, q, key)) {
            // The acknowledgement is out (flushed to the pipe) before the next put starts.
            Ok(r) if r.status == PutStatus::Ok => emit(&Ack::new(t, q, &r, key).line()),
            Ok(r) => emit(&format!("UNCONFIRMED {:?}", r.status)),
            Err(e) => fail_child(6, format!("put: {e} ({e:?})")),
        }
    }
}

// ------------------------------------------------------------------------------------------
// The parent.
// ------------------------------------------------------------------------------------------

struct Variant {
    name: &'static str,
    policy: Policy,
    power_loss: bool,
    salt: u64,
    /// Kill delay after the child is ready, in ms.
    delay_ms: (u64, u64),
}

#[derive(Default, Debug)]
struct Faults {
    rounds: u64,
    kills: u64,
    early_kills: u64,
    child_checks: u64,
    parent_checks: u64,
    acks: u64,
    acks_checked: u64,
    unconfirmed: u64,
    log_garbled: u64,
    log_zeroed: u64,
    log_punched: u64,
    log_torn_pages: u64,
    log_bytes_damaged: u64,
    empty_last_segments: u64,
    clean_power_losses: u64,
    cq_tails_zeroed: u64,
    cq_tails_garbled: u64,
    checkpoint_zeroed: u64,
    checkpoint_garbled: u64,
    checkpoint_emptied: u64,
}

struct Run<'v> {
    v: &'v Variant,
    base_seed: u64,
    rounds: u64,
    work: PathBuf,
    dir: PathBuf,
    rng: Rng,
    exp: Expected,
    faults: Faults,
    history: Vec<String>,
    /// The next child checks the store first (the parent did not).
    pending_check: bool,
}

fn reap(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Receives lines until `marker`; fails on a FAILED line, a closed pipe or the timeout.
fn wait_for(rx: &Receiver<String>, marker: &str, timeout: Duration, lines: &mut Vec<String>) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let done = line == marker;
                let failed = line.starts_with("FAILED");
                lines.push(line);
                if failed {
                    return Err(format!("child reported: {}", lines.last().unwrap()));
                }
                if done {
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Timeout) => return Err(format!("child did not say {marker} within {timeout:?}")),
            Err(RecvTimeoutError::Disconnected) => return Err(format!("child closed its output before {marker}")),
        }
    }
}

/// Receives the remaining lines until the pipe closes; false on timeout.
fn drain(rx: &Receiver<String>, lines: &mut Vec<String>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => lines.push(line),
            Err(RecvTimeoutError::Timeout) => return false,
            Err(RecvTimeoutError::Disconnected) => return true,
        }
    }
}

/// The kinds of checkpoint damage a power loss picks from: `MQSTORE_CRASH_CHECKPOINT`, a comma
/// list of `zero` (0), `garble` (1) and `empty` (2); all by default. Narrowing it tells a
/// recovery bug that depends on the checkpoint's bytes from one that does not.
fn checkpoint_damage_kinds() -> Vec<u64> {
    let Ok(list) = std::env::var("MQSTORE_CRASH_CHECKPOINT") else {
        return vec![0, 1, 2];
    };
    let kinds: Vec<u64> = list
        .split(',')
        .map(|k| match k.trim() {
            "zero" => 0,
            "garble" => 1,
            "empty" => 2,
            other => panic!("MQSTORE_CRASH_CHECKPOINT: unknown damage {other:?} (zero, garble, empty)"),
        })
        .collect();
    assert!(!kinds.is_empty(), "MQSTORE_CRASH_CHECKPOINT is empty");
    kinds
}

fn tail_of_file(path: &Path, max: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(max);
    let start = (start..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

impl<'v> Run<'v> {
    fn new(v: &'v Variant, work: &Path) -> Self {
        let base_seed = seed_from_env("MQSTORE_CRASH_SEED");
        let rounds = count_from_env("MQSTORE_CRASH_ROUNDS", 6).max(1);
        Run {
            v,
            base_seed,
            rounds,
            work: work.to_path_buf(),
            dir: work.join("store"),
            rng: Rng::new(mix_seed(&[base_seed, v.salt])),
            exp: Expected::default(),
            faults: Faults::default(),
            history: Vec::new(),
            pending_check: false,
        }
    }

    fn note(&mut self, s: String) {
        self.history.push(s);
    }

    fn run(&mut self) -> Result<(), String> {
        for round in 0..self.rounds {
            self.faults.rounds += 1;
            self.child_round(round)?;
            if self.v.power_loss {
                self.power_loss(round);
            }
            let last = round + 1 == self.rounds;
            if last || self.rng.chance(1, 2) {
                self.parent_check(&format!("round {round}"))?;
                self.pending_check = false;
            } else {
                self.note(format!("round {round}: check left to the next child"));
                self.pending_check = true;
            }
        }
        // A last clean reopen after all of it.
        self.parent_check("the final clean reopen")?;
        Ok(())
    }

    fn child_round(&mut self, round: u64) -> Result<(), String> {
        let checker = self.pending_check;
        let expect = if checker {
            let p = self.work.join(format!("expected-{round}.txt"));
            self.exp.save(&p)?;
            Some(p)
        } else {
            None
        };
        let stderr_path = self.work.join(format!("child-{round}.stderr"));
        let stderr = std::fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
        let child_seed = mix_seed(&[self.base_seed, self.v.salt, round]);
        let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
            .args([
                "--exact",
                "crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
                "--quiet",
            ])
            .env(ENV_DIR, &self.dir)
            .env(ENV_POLICY, self.v.policy.name())
            .env(ENV_SEED, child_seed.to_string())
            .env(ENV_EXPECT, expect.as_deref().map(Path::as_os_str).unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("spawn child: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    // A line cut by the kill (no newline) was never a complete acknowledgement.
                    Ok(_) if line.ends_with('\n') => {
                        if tx.send(line.trim_end_matches('\n').to_string()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                }
            }
        });

        let mut lines = Vec::new();
        let early = !checker && self.rng.chance(1, 8);
        let delay = if early {
            self.rng.range(0, 80)
        } else {
            self.rng.range(self.v.delay_ms.0, self.v.delay_ms.1)
        };
        let outcome = if early {
            std::thread::sleep(Duration::from_millis(delay));
            Ok(())
        } else {
            wait_for(&rx, "READY", READY_TIMEOUT, &mut lines).map(|()| std::thread::sleep(Duration::from_millis(delay)))
        };
        let exited_by_itself = child.try_wait().ok().flatten();
        let _ = child.kill();
        let status = reap(&mut child, EXIT_TIMEOUT);
        let closed = drain(&rx, &mut lines, EXIT_TIMEOUT);
        if closed {
            let _ = reader.join();
        }
        let stderr_tail = || tail_of_file(&stderr_path, 6000);
        let failed: Vec<&String> = lines.iter().filter(|l| l.starts_with("FAILED")).collect();
        if !failed.is_empty() {
            return Err(format!(
                "round {round}: child failed: {failed:?}\nchild stderr (tail):\n{}",
                stderr_tail()
            ));
        }
        outcome.map_err(|e| format!("round {round}: {e}\nchild stderr (tail):\n{}", stderr_tail()))?;
        if let Some(s) = exited_by_itself {
            return Err(format!(
                "round {round}: child exited by itself ({s}) before the kill\nchild stderr (tail):\n{}",
                stderr_tail()
            ));
        }
        if status.is_none() {
            return Err(format!(
                "round {round}: child still alive {EXIT_TIMEOUT:?} after SIGKILL"
            ));
        }
        if !closed {
            return Err(format!(
                "round {round}: child's stdout still open {EXIT_TIMEOUT:?} after SIGKILL"
            ));
        }

        let mut acks = 0u64;
        let mut checked = None;
        for line in &lines {
            if line.starts_with("ACK ") {
                let a = Ack::parse(line)?;
                self.exp
                    .add(a)
                    .map_err(|e| format!("round {round}: {e}\nchild stderr (tail):\n{}", stderr_tail()))?;
                acks += 1;
            } else if line.starts_with("UNCONFIRMED") {
                self.faults.unconfirmed += 1;
            } else if let Some(rest) = line.strip_prefix("CHECKED ") {
                checked = Some(rest.to_string());
            }
        }
        if checker {
            let Some(c) = checked else {
                return Err(format!("round {round}: checking child never said CHECKED"));
            };
            let n: u64 = c.split(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
            self.faults.child_checks += 1;
            self.faults.acks_checked += n;
        }
        self.faults.kills += 1;
        self.faults.early_kills += early as u64;
        self.faults.acks += acks;
        self.note(format!(
            "round {round}: child {}{}killed {} ms after {}, {acks} new acks ({} in all, acked end {})",
            if checker { "checked the store, " } else { "" },
            if early { "EARLY-" } else { "" },
            delay,
            if early { "spawn" } else { "READY" },
            self.exp.len(),
            self.exp.acked_end()
        ));
        Ok(())
    }

    /// Power loss on the real files after the kill: every byte past the last acknowledged one
    /// (whole pages only) may be garbage, zeros or gone; consume-queue tails likewise (they are
    /// rebuilt from the log); the checkpoint page is damaged too, since it may claim a durable
    /// point past the acknowledged end that this model does not honour. A store the child never
    /// marked open (killed before the abort marker) was closed cleanly: only its checkpoint page
    /// (rewritten in place by every open, before the marker) may be torn.
    fn power_loss(&mut self, round: u64) {
        if !self.dir.join("abort").exists() {
            // Killed before its open set the abort marker: the store was closed cleanly and the
            // child has not written anything that was not synced, except maybe the checkpoint
            // (rewritten in place by every open). Only that page can be torn.
            let cp_note = self.damage_checkpoint();
            self.faults.clean_power_losses += 1;
            self.note(format!(
                "round {round}: power loss on a clean store (no abort marker): {cp_note}"
            ));
            return;
        }
        let acked_end = self.exp.acked_end();
        let cut = acked_end.div_ceil(PAGE) * PAGE;
        let mode = self.rng.below(4);
        let files = commit_log_files(&self.dir);
        let last_start = files.last().map(|f| f.0);
        let mut damaged = 0u64;
        let mut emptied = None;
        for (start, path, len) in &files {
            if start + len <= cut {
                continue;
            }
            let from = cut.saturating_sub(*start);
            if from == 0 && Some(*start) == last_start && self.rng.chance(1, 4) {
                // Created, never synced: a zero-length file.
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .expect("open segment");
                f.set_len(0).expect("truncate");
                self.faults.empty_last_segments += 1;
                emptied = Some(*start);
                continue;
            }
            match mode {
                0 => garble_range(path, from, *len, &mut self.rng),
                1 => zero_range(path, from, *len),
                2 => punch_to_zeros(path, from),
                _ => {
                    // Torn page by page: each unsynced page kept, zeroed or garbage.
                    let mut p = from;
                    while p < *len {
                        let end = (p + PAGE).min(*len);
                        match self.rng.below(3) {
                            0 => {}
                            1 => zero_range(path, p, end),
                            _ => garble_range(path, p, end, &mut self.rng),
                        }
                        p = end;
                    }
                }
            }
            damaged += len - from;
        }
        let mode_name = ["garbled", "zeroed", "punched to zeros", "torn page by page"][mode as usize];
        match mode {
            0 => self.faults.log_garbled += 1,
            1 => self.faults.log_zeroed += 1,
            2 => self.faults.log_punched += 1,
            _ => self.faults.log_torn_pages += 1,
        }
        self.faults.log_bytes_damaged += damaged;

        let mut cq_notes = Vec::new();
        for (topic, queue, qdir) in consume_queue_dirs(&self.dir) {
            if !self.rng.chance(1, 2) {
                continue;
            }
            let files = segment_files(&qdir);
            let Some((last_start, _, last_len)) = files.last() else {
                continue;
            };
            let units = (last_start + last_len) / UNIT;
            let from_unit = units - self.rng.below(units.min(2 * CQ_UNITS) + 1);
            let from = from_unit * UNIT;
            let garble = self.rng.chance(1, 3);
            for (start, path, len) in &files {
                if start + len <= from {
                    continue;
                }
                let f = from.saturating_sub(*start);
                if garble {
                    garble_range(path, f, *len, &mut self.rng);
                } else {
                    zero_range(path, f, *len);
                }
            }
            if garble {
                self.faults.cq_tails_garbled += 1;
            } else {
                self.faults.cq_tails_zeroed += 1;
            }
            cq_notes.push(format!(
                "{topic}/{queue} {} from unit {from_unit} of {units}",
                if garble { "garbled" } else { "zeroed" }
            ));
        }

        let cp_note = self.damage_checkpoint();
        self.note(format!(
            "round {round}: power loss: acked end {acked_end}, log {mode_name} from {cut} ({damaged} bytes){}; \
             consume queues: [{}]; {cp_note}",
            emptied.map_or(String::new(), |s| format!(", last segment {s} left zero-length")),
            cq_notes.join(", ")
        ));
    }

    /// Damages the last page of the checkpoint file, if there is one; says what it did.
    fn damage_checkpoint(&mut self) -> &'static str {
        let cp = self.dir.join("checkpoint");
        let mut cp_note = "no checkpoint file";
        if let Ok(meta) = std::fs::metadata(&cp)
            && meta.len() > 0
        {
            let len = meta.len();
            let last_page = (len - 1) / PAGE * PAGE;
            let kinds = checkpoint_damage_kinds();
            match kinds[self.rng.below(kinds.len() as u64) as usize] {
                0 => {
                    zero_range(&cp, last_page, len);
                    self.faults.checkpoint_zeroed += 1;
                    cp_note = "checkpoint's last page zeroed";
                }
                1 => {
                    garble_range(&cp, last_page, len, &mut self.rng);
                    self.faults.checkpoint_garbled += 1;
                    cp_note = "checkpoint's last page garbled";
                }
                _ => {
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&cp)
                        .expect("open checkpoint");
                    f.set_len(0).expect("truncate checkpoint");
                    self.faults.checkpoint_emptied += 1;
                    cp_note = "checkpoint emptied";
                }
            }
        }
        cp_note
    }

    fn parent_check(&mut self, what: &str) -> Result<(), String> {
        let store = MessageStore::open(config(&self.dir, Policy::Sync))
            .map_err(|e| format!("open after {what} failed: {e} ({e:?})"))?;
        let report = format!("{:?}", store.recovery_report());
        let v = verify(&store, &self.exp).map_err(|e| format!("check after {what}: {e}\nrecovery report: {report}"))?;
        self.faults.parent_checks += 1;
        self.faults.acks_checked += v.acks;
        // New puts continue every queue densely.
        for (t, topic) in TOPICS.iter().enumerate() {
            for q in 0..QUEUES {
                let before = store.max_offset(topic, q);
                let key = self.rng.next_u64();
                let r = store
                    .put(message_for(t, q, key))
                    .map_err(|e| format!("after {what}: put to {}/{q} failed: {e} ({e:?})", topic))?;
                if r.queue_offset != before {
                    return Err(format!(
                        "after {what}: {}/{q} had max offset {before}, the next put got {}\nrecovery report: {report}",
                        topic, r.queue_offset
                    ));
                }
                let g = store
                    .get(topic, q, r.queue_offset, 1)
                    .map_err(|e| format!("after {what}: reading back the new put failed: {e}"))?;
                if g.status != GetStatus::Found || g.messages[0].body() != body_for(key).as_slice() {
                    return Err(format!(
                        "after {what}: the new put to {}/{q} does not read back: {g:?}",
                        topic
                    ));
                }
                if r.status == PutStatus::Ok {
                    self.exp.add(Ack::new(t, q, &r, key))?;
                }
            }
        }
        let panics = library_panics();
        if !panics.is_empty() {
            return Err(format!("library threads panicked: {panics:?}"));
        }
        store.close().map_err(|e| format!("close after {what} failed: {e}"))?;
        self.note(format!(
            "{what}: parent checked {} acks / {} messages and closed ({report})",
            v.acks, v.messages
        ));
        Ok(())
    }

    fn summary(&self) -> String {
        let f = &self.faults;
        let mut s = format!(
            "crash[{}] MQSTORE_CRASH_SEED={} rounds={} acks={} acks_checked={} kills={} (early {}) checks: parent {} child {} unconfirmed={}",
            self.v.name,
            self.base_seed,
            f.rounds,
            f.acks,
            f.acks_checked,
            f.kills,
            f.early_kills,
            f.parent_checks,
            f.child_checks,
            f.unconfirmed
        );
        if self.v.power_loss {
            let _ = write!(
                s,
                " power-loss faults: log garbled {} zeroed {} punched {} torn-pages {} ({} bytes), empty last segments {}, \
                 cq tails zeroed {} garbled {}, checkpoint zeroed {} garbled {} emptied {}, on a clean store {}",
                f.log_garbled,
                f.log_zeroed,
                f.log_punched,
                f.log_torn_pages,
                f.log_bytes_damaged,
                f.empty_last_segments,
                f.cq_tails_zeroed,
                f.cq_tails_garbled,
                f.checkpoint_zeroed,
                f.checkpoint_garbled,
                f.checkpoint_emptied,
                f.clean_power_losses
            );
        }
        s
    }
}

fn crash_test(v: &Variant) {
    watch_library_panics();
    let work = tempfile::tempdir().expect("tempdir");
    let mut run = Run::new(v, work.path());
    eprintln!(
        "crash[{}]: MQSTORE_CRASH_SEED={} MQSTORE_CRASH_ROUNDS={} (set them to replay)",
        v.name, run.base_seed, run.rounds
    );
    let result = run.run();
    let summary = run.summary();
    println!("{summary}");
    eprintln!("{summary}");
    if let Err(e) = result {
        let kept = if std::env::var_os("MQSTORE_CRASH_KEEP").is_some() {
            let path = work.keep();
            format!("store kept at {}", path.join("store").display())
        } else {
            "set MQSTORE_CRASH_KEEP=1 to keep the store directory".to_string()
        };
        panic!(
            "{}: {e}\n\nhistory:\n  {}\n\n{summary}\n{kept}",
            v.name,
            run.history.join("\n  ")
        );
    }
}

#[test]
fn sigkill_under_sync_policy_loses_no_acknowledged_put() {
    crash_test(&Variant {
        name: "sync",
        policy: Policy::Sync,
        power_loss: false,
        salt: 1,
        delay_ms: (30, 400),
    });
}

#[test]
fn sigkill_under_sync_policy_without_write_buffers_loses_no_acknowledged_put() {
    crash_test(&Variant {
        name: "sync-mapped",
        policy: Policy::SyncMapped,
        power_loss: false,
        salt: 4,
        delay_ms: (30, 400),
    });
}

#[test]
fn sigkill_under_async_policy_loses_no_acknowledged_put() {
    crash_test(&Variant {
        name: "async",
        policy: Policy::Async,
        power_loss: false,
        salt: 2,
        delay_ms: (10, 150),
    });
}

#[test]
fn power_loss_after_sigkill_loses_no_acknowledged_pipelined_sync_put() {
    crash_test(&Variant {
        name: "sync-pipelined+power-loss",
        policy: Policy::SyncPipelined,
        power_loss: true,
        salt: 5,
        delay_ms: (30, 400),
    });
}

#[test]
fn power_loss_after_sigkill_loses_no_acknowledged_sync_put() {
    crash_test(&Variant {
        name: "sync+power-loss",
        policy: Policy::Sync,
        power_loss: true,
        salt: 3,
        delay_ms: (30, 400),
    });
}

#[test]
fn sigkill_during_retention_and_recycling_loses_no_acknowledged_put_left_in_the_log() {
    crash_test(&Variant {
        name: "sync-retention",
        policy: Policy::SyncRetention,
        power_loss: false,
        salt: 6,
        delay_ms: (30, 400),
    });
}
