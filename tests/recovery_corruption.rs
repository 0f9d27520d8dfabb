//! The corruption catalogue: a small store is built with the library, its files are damaged with
//! `std::fs`, and it is reopened. Each case must end in a consistent store or a clear typed `Err`
//! from `open`: never a panic, never wrong data.
//!
//! A crash is simulated by creating the `abort` marker by hand after a clean close. Where a case
//! needs a realistic crash (a torn tail is a write the crash interrupted, so no checkpoint can
//! have recorded it as durable), the checkpoint from an earlier close is put back: checkpoints
//! always lag the log in a crash.
//!
//! Each test collects every failed expectation before failing, so one run shows all of them.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    Rng, body, commit_log_files, consume_queue_dirs, copy_tree, flip_bit, garble_range, library_panics,
    segment_file_name, segment_files, watch_library_panics, write_at, zero_range,
};
use mqstore::{Error, GetStatus, Message, MessageStore, PutStatus, StoreConfig, StoredMessage};

/// 16 KiB commit-log segments (about 25 records each) and 16-unit consume-queue files, so a few
/// hundred records make "middle" segments and files.
const SEGMENT: u64 = 16 * 1024;
const CQ_UNITS: u64 = 16;
const UNIT: u64 = 20;
const PAGE: u64 = 4096;
const TOPICS: [&str; 2] = ["orders", "audit"];
const QUEUES: u32 = 2;

fn config(dir: &Path) -> StoreConfig {
    StoreConfig::new(dir)
        .commit_log_segment_size(SEGMENT)
        .consume_queue_units_per_segment(CQ_UNITS)
}

/// One record put, and where it landed.
#[derive(Clone, Debug)]
struct Rec {
    topic: &'static str,
    queue: u32,
    queue_offset: u64,
    commit_log_offset: u64,
    size: u32,
    key: String,
    body: Vec<u8>,
}

impl Rec {
    fn end(&self) -> u64 {
        self.commit_log_offset + self.size as u64
    }
}

/// What the store should hold: records in log order.
#[derive(Clone, Debug, Default)]
struct Model {
    recs: Vec<Rec>,
}

impl Model {
    fn count(&self, topic: &str, queue: u32) -> u64 {
        self.recs
            .iter()
            .filter(|r| r.topic == topic && r.queue == queue)
            .count() as u64
    }

    fn find(&self, topic: &str, queue: u32, queue_offset: u64) -> Option<&Rec> {
        self.recs
            .iter()
            .find(|r| r.topic == topic && r.queue == queue && r.queue_offset == queue_offset)
    }

    fn end(&self) -> u64 {
        self.recs.last().map_or(0, Rec::end)
    }

    /// Puts `n` messages, round robin over the queues, checking that offsets are dense.
    fn put(&mut self, store: &MessageStore, n: usize) {
        for _ in 0..n {
            let i = self.recs.len();
            let topic = TOPICS[i % TOPICS.len()];
            let queue = ((i / TOPICS.len()) % QUEUES as usize) as u32;
            self.put_one(store, topic, queue, 100 + (i * 211) % 700);
        }
    }

    fn put_one(&mut self, store: &MessageStore, topic: &'static str, queue: u32, len: usize) -> Rec {
        let i = self.recs.len() as u64;
        let key = format!("{topic}-{queue}-{i}");
        let b = body(i + 1000, len);
        let r = store
            .put(
                Message::new(topic, queue, b.clone())
                    .with_tags(format!("tag{}", i % 3))
                    .with_keys([key.clone()]),
            )
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
        assert_eq!(r.status, PutStatus::Ok, "put {key}");
        assert_eq!(
            r.queue_offset,
            self.count(topic, queue),
            "dense queue offsets while building"
        );
        let rec = Rec {
            topic,
            queue,
            queue_offset: r.queue_offset,
            commit_log_offset: r.commit_log_offset,
            size: r.wrote_bytes,
            key,
            body: b,
        };
        self.recs.push(rec.clone());
        rec
    }
}

/// A store directory and what it holds.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    model: Model,
}

impl Fixture {
    /// A store holding `n` records, closed cleanly.
    fn build(n: usize) -> Fixture {
        watch_library_panics();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let mut fx = Fixture {
            _tmp: tmp,
            dir,
            model: Model::default(),
        };
        fx.append(n);
        fx
    }

    /// Reopens, puts `n` more records, closes cleanly.
    fn append(&mut self, n: usize) {
        let store = MessageStore::open(config(&self.dir)).expect("open while building");
        self.model.put(&store, n);
        store.close().expect("close while building");
    }

    /// A copy of this fixture in a fresh directory (to damage several copies of one store).
    fn copy(&self) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        copy_tree(&self.dir, &dir);
        Fixture {
            _tmp: tmp,
            dir,
            model: self.model.clone(),
        }
    }

    fn segments(&self) -> Vec<(u64, PathBuf, u64)> {
        commit_log_files(&self.dir)
    }

    /// The segment file holding commit-log offset `offset`, and the offset's position in it.
    fn locate(&self, offset: u64) -> (PathBuf, u64) {
        let (start, path, _) = self
            .segments()
            .into_iter()
            .rfind(|(s, _, _)| *s <= offset)
            .expect("a segment holds the offset");
        (path, offset - start)
    }

    fn mark_crashed(&self) {
        std::fs::write(self.dir.join("abort"), b"").unwrap();
    }

    fn checkpoint_path(&self) -> PathBuf {
        self.dir.join("checkpoint")
    }

    fn read_checkpoint(&self) -> Option<Vec<u8>> {
        std::fs::read(self.checkpoint_path()).ok()
    }

    /// Replaces the checkpoint file by `bytes` (or removes it for `None`).
    fn write_checkpoint(&self, bytes: Option<&[u8]>) {
        match bytes {
            Some(b) => std::fs::write(self.checkpoint_path(), b).unwrap(),
            None => {
                let _ = std::fs::remove_file(self.checkpoint_path());
            }
        }
    }

    fn open(&self) -> mqstore::Result<MessageStore> {
        MessageStore::open(config(&self.dir))
    }
}

/// Collects failed expectations and fails once, listing them all.
struct Checks {
    name: &'static str,
    failures: Vec<String>,
    /// Context shown with the failures (recovery reports).
    notes: Vec<String>,
}

impl Checks {
    fn new(name: &'static str) -> Self {
        Checks {
            name,
            failures: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn fail(&mut self, what: String) {
        self.failures.push(what);
    }

    fn note(&mut self, what: String) {
        self.notes.push(what);
    }

    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.fail(what());
        }
    }

    fn finish(mut self) {
        let panics = library_panics();
        if !panics.is_empty() {
            self.fail(format!("library threads panicked (in this test binary): {panics:?}"));
        }
        if !self.failures.is_empty() {
            // The first ones and the last one tell the story.
            const SHOWN: usize = 12;
            let n = self.failures.len();
            let mut shown: Vec<String> = self.failures.iter().take(SHOWN).cloned().collect();
            if n > SHOWN + 1 {
                shown.push(format!("... {} more ...", n - SHOWN - 1));
            }
            if n > SHOWN {
                shown.push(self.failures[n - 1].clone());
            }
            let notes = if self.notes.is_empty() {
                String::new()
            } else {
                format!("\n  where:\n  * {}", self.notes.join("\n  * "))
            };
            panic!(
                "{}: {n} failed expectation(s):\n  - {}{notes}",
                self.name,
                shown.join("\n  - ")
            );
        }
    }
}

fn describe(m: &StoredMessage) -> String {
    format!(
        "{}/{} offset {} at {} ({} bytes)",
        m.topic(),
        m.queue_id(),
        m.queue_offset(),
        m.commit_log_offset(),
        m.size()
    )
}

/// Whether a message read back is exactly the record put.
fn same(m: &StoredMessage, r: &Rec) -> Result<(), String> {
    let ok = m.topic() == r.topic
        && m.queue_id() == r.queue
        && m.queue_offset() == r.queue_offset
        && m.commit_log_offset() == r.commit_log_offset
        && m.size() == r.size
        && m.body() == r.body.as_slice()
        && m.keys() == vec![r.key.as_str()];
    if ok {
        Ok(())
    } else {
        Err(format!("{} came back as {}", r.key, describe(m)))
    }
}

/// Reads one queue offset and checks it is exactly `r`.
fn check_rec(store: &MessageStore, r: &Rec, c: &mut Checks, ctx: &str) {
    match store.get(r.topic, r.queue, r.queue_offset, 1) {
        Ok(g) if g.status == GetStatus::Found && g.messages.len() == 1 => {
            let m = &g.messages[0];
            if m.queue_offset() != r.queue_offset {
                c.fail(format!(
                    "{ctx}: {} ({}/{} offset {}) is gone: get skipped to {} (blank units in its place?)",
                    r.key,
                    r.topic,
                    r.queue,
                    r.queue_offset,
                    describe(m)
                ));
            } else if let Err(e) = same(m, r) {
                c.fail(format!("{ctx}: wrong data: {e}"));
            }
        }
        Ok(g) => c.fail(format!(
            "{ctx}: {} ({}/{} offset {}) reads as {:?} (min {}, max {}, next {})",
            r.key, r.topic, r.queue, r.queue_offset, g.status, g.min_offset, g.max_offset, g.next_offset
        )),
        Err(e) => c.fail(format!(
            "{ctx}: {} ({}/{} offset {}, commit-log offset {}) reads as Err({e})",
            r.key, r.topic, r.queue, r.queue_offset, r.commit_log_offset
        )),
    }
}

/// The store holds exactly `model`: every record intact at its offset (except those at the
/// commit-log offsets in `skip`), every queue's max offset equal to the model's count, min 0,
/// and one past the end reads as OffsetOverflowOne.
fn check_model(store: &MessageStore, model: &Model, skip: &[u64], c: &mut Checks, ctx: &str) {
    if !store.wait_dispatched(Duration::from_secs(10)) {
        c.fail(format!("{ctx}: dispatch did not catch up within 10 s"));
    }
    for topic in TOPICS {
        for q in 0..QUEUES {
            let want = model.count(topic, q);
            let (min, max) = (store.min_offset(topic, q), store.max_offset(topic, q));
            c.check(max == want, || {
                format!("{ctx}: {topic}/{q} max offset {max}, expected {want}")
            });
            c.check(min == 0, || format!("{ctx}: {topic}/{q} min offset {min}, expected 0"));
            if want > 0 {
                match store.get(topic, q, want, 1) {
                    Ok(g) if g.status == GetStatus::OffsetOverflowOne => {}
                    other => c.fail(format!(
                        "{ctx}: {topic}/{q} one past the end ({want}) reads as {:?}",
                        other.map(|g| (g.status, g.messages.iter().map(describe).collect::<Vec<_>>()))
                    )),
                }
            }
        }
    }
    for (topic, q) in store.queues() {
        c.check(TOPICS.contains(&topic.as_str()) && q < QUEUES, || {
            format!("{ctx}: a queue nobody wrote to: {topic}/{q}")
        });
    }
    for r in &model.recs {
        if !skip.contains(&r.commit_log_offset) {
            check_rec(store, r, c, ctx);
        }
    }
}

/// For a store that lost data (and said nothing wrong with `open`): whatever a get returns as
/// found must be exactly what was put at that queue offset; errors and "not found" statuses are
/// acceptable, wrong data is not.
fn check_never_wrong(store: &MessageStore, model: &Model, c: &mut Checks, ctx: &str) {
    let _ = store.wait_dispatched(Duration::from_secs(10));
    for topic in TOPICS {
        for q in 0..QUEUES {
            let (min, max) = (store.min_offset(topic, q), store.max_offset(topic, q));
            for offset in min..max {
                if let Ok(g) = store.get(topic, q, offset, 1)
                    && g.status == GetStatus::Found
                {
                    for m in &g.messages {
                        match model.find(topic, q, m.queue_offset()) {
                            Some(r) => {
                                if let Err(e) = same(m, r) {
                                    c.fail(format!("{ctx}: wrong data at {topic}/{q} offset {offset}: {e}"));
                                }
                            }
                            None => c.fail(format!(
                                "{ctx}: {topic}/{q} offset {offset} returned a message nobody put: {}",
                                describe(m)
                            )),
                        }
                    }
                }
            }
        }
    }
}

/// New puts continue every queue densely (queue offset == max offset before the put) and read
/// back; they join the model.
fn check_new_puts(store: &MessageStore, model: &mut Model, c: &mut Checks, ctx: &str) {
    for topic in TOPICS {
        for q in 0..QUEUES {
            let before = store.max_offset(topic, q);
            let i = model.recs.len() as u64;
            let key = format!("{topic}-{q}-{i}");
            let b = body(i + 1000, 150);
            match store.put(
                Message::new(topic, q, b.clone())
                    .with_tags("new")
                    .with_keys([key.clone()]),
            ) {
                Ok(r) => {
                    c.check(r.queue_offset == before, || {
                        format!(
                            "{ctx}: {topic}/{q} had max offset {before}, the next put got queue offset {}",
                            r.queue_offset
                        )
                    });
                    let rec = Rec {
                        topic,
                        queue: q,
                        queue_offset: r.queue_offset,
                        commit_log_offset: r.commit_log_offset,
                        size: r.wrote_bytes,
                        key,
                        body: b,
                    };
                    check_rec(store, &rec, c, &format!("{ctx} (new put)"));
                    model.recs.push(rec);
                }
                Err(e) => c.fail(format!("{ctx}: put to {topic}/{q} after reopen failed: {e} ({e:?})")),
            }
        }
    }
}

fn must_open(fx: &Fixture, c: &mut Checks, ctx: &str) -> Option<MessageStore> {
    match fx.open() {
        Ok(s) => Some(s),
        Err(e) => {
            c.fail(format!("{ctx}: open failed: {e} ({e:?})"));
            None
        }
    }
}

// ------------------------------------------------------------------------------------------
// Torn tail and zeroed tail page.
// ------------------------------------------------------------------------------------------

/// A crashed store whose last record is then torn by `tear(file, position, record)`. The
/// checkpoint is the one from before the last batch, as after a crash.
fn torn_tail_case(name: &'static str, tear: impl Fn(&Path, u64, &Rec)) {
    let mut fx = Fixture::build(60);
    let stale_checkpoint = fx.read_checkpoint();
    let durable_before = fx.model.end();
    fx.append(12);
    fx.write_checkpoint(stale_checkpoint.as_deref());
    fx.mark_crashed();
    let torn = fx.model.recs.pop().expect("a last record");
    assert!(torn.commit_log_offset >= durable_before, "test setup");
    let (path, pos) = fx.locate(torn.commit_log_offset);
    tear(&path, pos, &torn);

    let mut c = Checks::new(name);
    let Some(store) = must_open(&fx, &mut c, "reopen after the tear") else {
        return c.finish();
    };
    let report = store.recovery_report().clone();
    c.note(format!("recovery report after the tear: {report:?}"));
    c.check(store.max_commit_log_offset() == torn.commit_log_offset, || {
        format!(
            "max_commit_log_offset() is {}, expected the end of the last valid record {} (report {report:?})",
            store.max_commit_log_offset(),
            torn.commit_log_offset
        )
    });
    check_model(&store, &fx.model, &[], &mut c, "after the torn tail");
    c.check(store.max_offset(torn.topic, torn.queue) == torn.queue_offset, || {
        format!(
            "the torn record's unit survived: {}/{} max offset {}, expected {}",
            torn.topic,
            torn.queue,
            store.max_offset(torn.topic, torn.queue),
            torn.queue_offset
        )
    });
    // Nothing (Ok(None)) or an error; never a message.
    if let Ok(Some(m)) = store.read_at(torn.commit_log_offset) {
        c.fail(format!("read_at(torn offset) returned a message: {}", describe(&m)));
    }
    c.check(report.damaged.is_empty(), || {
        format!(
            "a torn tail is not damage in the middle, yet report.damaged = {:?}",
            report.damaged
        )
    });
    c.check(report.torn_tail_at == Some(torn.commit_log_offset), || {
        format!(
            "report.torn_tail_at = {:?}, expected Some({})",
            report.torn_tail_at, torn.commit_log_offset
        )
    });
    // The next put goes right where the torn record was, with its queue offset.
    match store.put(
        Message::new(torn.topic, torn.queue, body(7, 40))
            .with_tags("after")
            .with_keys(["after-tear"]),
    ) {
        Ok(r) => {
            c.check(r.commit_log_offset == torn.commit_log_offset, || {
                format!(
                    "the first put after the tear landed at {}, expected {}",
                    r.commit_log_offset, torn.commit_log_offset
                )
            });
            c.check(r.queue_offset == torn.queue_offset, || {
                format!(
                    "the first put after the tear got queue offset {}, expected {}",
                    r.queue_offset, torn.queue_offset
                )
            });
            fx.model.recs.push(Rec {
                topic: torn.topic,
                queue: torn.queue,
                queue_offset: r.queue_offset,
                commit_log_offset: r.commit_log_offset,
                size: r.wrote_bytes,
                key: "after-tear".into(),
                body: body(7, 40),
            });
        }
        Err(e) => c.fail(format!("put after the tear failed: {e}")),
    }
    check_new_puts(&store, &mut fx.model, &mut c, "after the tear");
    if let Err(e) = store.close() {
        c.fail(format!("close: {e}"));
    }
    drop(store);
    // The garbage never comes back: not after a clean reopen, not after another crash.
    for crashed in [false, true] {
        if crashed {
            fx.mark_crashed();
        }
        let ctx = if crashed {
            "crash reopen after the tear"
        } else {
            "clean reopen after the tear"
        };
        if let Some(store) = must_open(&fx, &mut c, ctx) {
            check_model(&store, &fx.model, &[], &mut c, ctx);
            c.check(store.max_commit_log_offset() == fx.model.end(), || {
                format!(
                    "{ctx}: log ends at {}, expected {}",
                    store.max_commit_log_offset(),
                    fx.model.end()
                )
            });
            let _ = store.close();
        }
    }
    c.finish();
}

#[test]
fn torn_tail_record_with_garbled_second_half_is_cut() {
    torn_tail_case("torn tail (garbled second half)", |path, pos, r| {
        let half = r.size as u64 / 2;
        garble_range(path, pos + half, pos + r.size as u64, &mut Rng::new(42));
    });
}

#[test]
fn torn_tail_record_half_written_is_cut() {
    torn_tail_case("torn tail (second half never written)", |path, pos, r| {
        let half = r.size as u64 / 2;
        zero_range(path, pos + half, pos + r.size as u64);
    });
}

#[test]
fn zeroed_tail_page_cuts_the_log_at_the_last_whole_record() {
    let mut fx = Fixture::build(60);
    let stale_checkpoint = fx.read_checkpoint();
    let durable_before = fx.model.end();
    fx.append(30);
    fx.write_checkpoint(stale_checkpoint.as_deref());
    fx.mark_crashed();
    let end = fx.model.end();
    let page_start = (end - 1) / PAGE * PAGE;
    let (path, pos) = fx.locate(page_start);
    zero_range(&path, pos, (pos + PAGE).min(SEGMENT));
    let survivors = Model {
        recs: fx
            .model
            .recs
            .iter()
            .filter(|r| r.end() <= page_start)
            .cloned()
            .collect(),
    };
    let cut_at = fx
        .model
        .recs
        .iter()
        .find(|r| r.end() > page_start)
        .map(|r| r.commit_log_offset)
        .unwrap();
    assert!(
        cut_at >= durable_before,
        "test setup: the zeroed page lies below the stale checkpoint"
    );
    fx.model = survivors;

    let mut c = Checks::new("zeroed tail page");
    let Some(store) = must_open(&fx, &mut c, "reopen after zeroing the tail page") else {
        return c.finish();
    };
    c.note(format!(
        "recovery report after zeroing the tail page: {:?}",
        store.recovery_report()
    ));
    c.check(store.max_commit_log_offset() == cut_at, || {
        format!(
            "max_commit_log_offset() is {}, expected {cut_at}, the end of the last whole record before the zeroed page at {page_start} ({:?})",
            store.max_commit_log_offset(),
            store.recovery_report()
        )
    });
    check_model(&store, &fx.model, &[], &mut c, "after the zeroed page");
    check_new_puts(&store, &mut fx.model, &mut c, "after the zeroed page");
    let first_new = &fx.model.recs[fx.model.recs.len() - (TOPICS.len() * QUEUES as usize)];
    c.check(first_new.commit_log_offset == cut_at, || {
        format!(
            "the first put after the cut landed at {}, expected {cut_at}",
            first_new.commit_log_offset
        )
    });
    let _ = store.close();
    drop(store);
    fx.mark_crashed();
    if let Some(store) = must_open(&fx, &mut c, "crash reopen after the zeroed page") {
        check_model(&store, &fx.model, &[], &mut c, "crash reopen after the zeroed page");
    }
    c.finish();
}

// ------------------------------------------------------------------------------------------
// Damage in the middle of the log.
// ------------------------------------------------------------------------------------------

/// Where to flip a bit of a record: (position in the record, bit).
type Flip = fn(&Rec) -> (u64, u8);

/// TOTALSIZE (bytes 0..4): the record's length changes by 16.
fn flip_total_size(_: &Rec) -> (u64, u8) {
    (3, 4)
}

/// QUEUEOFFSET (bytes 20..28): framing still holds, only the CRC can tell.
fn flip_queue_offset(_: &Rec) -> (u64, u8) {
    (27, 0)
}

/// A byte in the middle of the body (which starts at byte 88 with IPv4 hosts; bodies here are at
/// least 100 bytes, so the middle is in the body either way).
fn flip_body(r: &Rec) -> (u64, u8) {
    (88 + r.body.len() as u64 / 2, 5)
}

/// A record in the middle of segment `segment_index` (neither its first nor its last).
fn middle_record_of(fx: &Fixture, segment_index: usize) -> Rec {
    let segs = fx.segments();
    let (start, _, _) = segs[segment_index];
    let in_seg: Vec<&Rec> = fx
        .model
        .recs
        .iter()
        .filter(|r| r.commit_log_offset >= start && r.end() <= start + SEGMENT)
        .collect();
    assert!(
        in_seg.len() >= 3,
        "test setup: segment {segment_index} holds {} records",
        in_seg.len()
    );
    in_seg[in_seg.len() / 2].clone()
}

fn middle_damage_case(name: &'static str, flip: Flip, crashed: bool, in_last_segment: bool) {
    middle_damage_on(Fixture::build(240), name, flip, crashed, in_last_segment);
}

fn middle_damage_on(mut fx: Fixture, name: &'static str, flip: Flip, crashed: bool, in_last_segment: bool) {
    let segs = fx.segments();
    assert!(segs.len() >= 4, "test setup: only {} segments", segs.len());
    let index = if in_last_segment { segs.len() - 1 } else { 1 };
    let target = middle_record_of(&fx, index);
    let (pos_in_rec, bit) = flip(&target);
    let (path, pos) = fx.locate(target.commit_log_offset);
    flip_bit(&path, pos + pos_in_rec, bit);
    if crashed {
        fx.mark_crashed();
    }
    let end = fx.model.end();

    let mut c = Checks::new(name);
    let Some(store) = must_open(&fx, &mut c, "reopen after the bit flip") else {
        return c.finish();
    };
    let report = store.recovery_report().clone();
    c.note(format!("recovery report after the bit flip: {report:?}"));
    // Nothing valid is dropped: the log as long as before, every other record intact.
    c.check(store.max_commit_log_offset() == end, || {
        format!(
            "the log now ends at {}, it ended at {end}: valid records after the damage were dropped",
            store.max_commit_log_offset()
        )
    });
    check_model(
        &store,
        &fx.model,
        &[target.commit_log_offset],
        &mut c,
        "after the bit flip",
    );
    // The damaged record is never data. Its unit either survives and reads as CorruptRecord,
    // or — when crash recovery rebuilt the queue from the log — it became a blank unit and
    // reads pass over it to the next message.
    let rebuilt = !report.clean_shutdown && target.commit_log_offset >= report.dispatched_from;
    match store.get(target.topic, target.queue, target.queue_offset, 1) {
        Err(Error::CorruptRecord { offset, .. }) if offset == target.commit_log_offset => {}
        Ok(g) if rebuilt && g.messages.iter().all(|m| m.queue_offset() > target.queue_offset) => {}
        Err(e) => c.fail(format!(
            "get at the damaged record ({}/{} offset {}) returned Err({e:?}), expected CorruptRecord at {}",
            target.topic, target.queue, target.queue_offset, target.commit_log_offset
        )),
        Ok(g) => c.fail(format!(
            "get at the damaged record ({}/{} offset {}, commit-log offset {}) returned Ok({:?}, {:?}), expected Err(CorruptRecord){}",
            target.topic,
            target.queue,
            target.queue_offset,
            target.commit_log_offset,
            g.status,
            g.messages.iter().map(describe).collect::<Vec<_>>(),
            if rebuilt { " or a skip past it" } else { "" }
        )),
    }
    // Recovery reports it, as one range from its start to the next record, when it lies in the
    // range recovery checks (from the checkpoint's segment on: recovery is linear in what came
    // after the checkpoint, it does not re-read the whole log); `verify` reports it wherever.
    let want = (target.commit_log_offset, target.end());
    let scanned = target.commit_log_offset >= report.scanned_from;
    c.check(
        !scanned || report.damaged.iter().any(|d| (d.start, d.end) == want),
        || {
            format!(
                "recovery_report().damaged = {:?}, expected a range {}..{} for the damaged record (start rule {:?}, scanned from {})",
                report.damaged, want.0, want.1, report.start_rule, report.scanned_from
            )
        },
    );
    c.check(report.damaged.len() <= 1, || {
        format!("more damage reported than done: {:?}", report.damaged)
    });
    check_new_puts(&store, &mut fx.model, &mut c, "after the bit flip");
    let _ = store.close();
    drop(store);
    match mqstore::verify::verify_store(&fx.dir) {
        Ok(v) => c.check(
            !v.consistent && v.damage.iter().any(|f| f.offset == target.commit_log_offset),
            || {
                format!(
                    "verify does not report the damaged record at {}: {v}",
                    target.commit_log_offset
                )
            },
        ),
        Err(e) => c.check(false, || format!("verify failed: {e}")),
    }
    // And after a clean reopen, everything still reads the same.
    if let Some(store) = must_open(&fx, &mut c, "clean reopen after the bit flip") {
        check_model(
            &store,
            &fx.model,
            &[target.commit_log_offset],
            &mut c,
            "clean reopen after the bit flip",
        );
        c.check(
            match store.get(target.topic, target.queue, target.queue_offset, 1) {
                Err(Error::CorruptRecord { .. }) => true,
                Ok(g) => rebuilt && g.messages.iter().all(|m| m.queue_offset() > target.queue_offset),
                Err(_) => false,
            },
            || "clean reopen: the damaged record reads as data".to_string(),
        );
        let _ = store.close();
    }
    c.finish();
}

/// A crash whose last checkpoint is old (checkpoints lag the log): the flipped bit lies past the
/// checkpoint's durable point, yet whole valid segments follow it, so it cannot be the torn tail
/// of an interrupted write. Dropping everything after it would lose acknowledged, durable data.
#[test]
fn middle_record_body_bit_flip_past_a_stale_checkpoint_keeps_later_records_after_crash() {
    let mut fx = Fixture::build(8);
    let stale_checkpoint = fx.read_checkpoint();
    fx.append(232);
    fx.write_checkpoint(stale_checkpoint.as_deref());
    middle_damage_on(
        fx,
        "body bit flip, middle segment, crash with a stale checkpoint",
        flip_body,
        true,
        false,
    );
}

#[test]
fn middle_record_total_size_bit_flip_keeps_later_records_clean_close() {
    middle_damage_case(
        "TOTALSIZE bit flip, middle segment, clean close",
        flip_total_size,
        false,
        false,
    );
}

#[test]
fn middle_record_total_size_bit_flip_keeps_later_records_after_crash() {
    middle_damage_case(
        "TOTALSIZE bit flip, middle segment, crash",
        flip_total_size,
        true,
        false,
    );
}

#[test]
fn middle_record_queue_offset_bit_flip_keeps_later_records_clean_close() {
    middle_damage_case(
        "QUEUEOFFSET bit flip, middle segment, clean close",
        flip_queue_offset,
        false,
        false,
    );
}

#[test]
fn middle_record_queue_offset_bit_flip_keeps_later_records_after_crash() {
    middle_damage_case(
        "QUEUEOFFSET bit flip, middle segment, crash",
        flip_queue_offset,
        true,
        false,
    );
}

#[test]
fn middle_record_body_bit_flip_keeps_later_records_clean_close() {
    middle_damage_case("body bit flip, middle segment, clean close", flip_body, false, false);
}

#[test]
fn middle_record_body_bit_flip_keeps_later_records_after_crash() {
    middle_damage_case("body bit flip, middle segment, crash", flip_body, true, false);
}

/// Not a "segment before the last" case: damage below the durable point inside the segment a
/// crash recovery scans, which separates "the damage is not detected" from "the damage is
/// detected but mishandled".
#[test]
fn last_segment_body_bit_flip_below_the_durable_point_keeps_later_records_after_crash() {
    middle_damage_case("body bit flip, last segment, crash", flip_body, true, true);
}

// ------------------------------------------------------------------------------------------
// Files truncated, missing, extra, empty.
// ------------------------------------------------------------------------------------------

/// `open` either fails with a clear `Error::Layout` naming `file`, or opens a store that never
/// returns wrong data and takes new puts densely.
fn layout_error_or_consistent(fx: &mut Fixture, c: &mut Checks, file: &Path, must_name_file: bool, ctx: &str) {
    match fx.open() {
        Err(Error::Layout { path, reason }) => {
            let named = path.file_name() == file.file_name()
                || reason.contains(&file.file_name().unwrap().to_string_lossy().to_string());
            c.check(named || !must_name_file, || {
                format!(
                    "{ctx}: Layout error does not name {}: {} ({reason})",
                    file.display(),
                    path.display()
                )
            });
            eprintln!("{ctx}: open refused as expected: {}: {reason}", path.display());
        }
        Err(e) => c.fail(format!("{ctx}: open failed with {e:?}, expected a clear Error::Layout")),
        Ok(store) => {
            eprintln!("{ctx}: open accepted the store: {:?}", store.recovery_report());
            check_never_wrong(&store, &fx.model, c, ctx);
            check_new_puts(&store, &mut fx.model, c, ctx);
            let _ = store.close();
        }
    }
}

#[test]
fn truncated_middle_segment_is_a_clear_error_or_a_consistent_store() {
    let mut fx = Fixture::build(200);
    let segs = fx.segments();
    assert!(segs.len() >= 4, "test setup");
    let (_, path, len) = segs[1].clone();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let mut c = Checks::new("truncated middle segment");
    layout_error_or_consistent(&mut fx, &mut c, &path, true, "middle segment cut to half its length");
    c.finish();
}

#[test]
fn truncated_last_segment_is_a_clear_error_or_a_consistent_store() {
    let mut fx = Fixture::build(200);
    let (_, path, len) = fx.segments().last().cloned().unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    fx.mark_crashed();
    let mut c = Checks::new("truncated last segment");
    layout_error_or_consistent(&mut fx, &mut c, &path, true, "last segment cut to half its length");
    c.finish();
}

#[test]
fn missing_middle_segment_is_a_clear_error_or_a_consistent_store() {
    let mut fx = Fixture::build(200);
    let segs = fx.segments();
    assert!(segs.len() >= 4, "test setup");
    let (start, path, _) = segs[2].clone();
    std::fs::remove_file(&path).unwrap();
    let mut c = Checks::new("missing middle segment");
    match fx.open() {
        Err(e @ Error::Layout { .. }) => {
            let text = e.to_string();
            c.check(
                text.contains(&start.to_string()) || text.contains(&segment_file_name(start)),
                || format!("the Layout error does not say which segment is missing ({start}): {text}"),
            );
        }
        Err(e) => c.fail(format!("open failed with {e:?}, expected a clear Error::Layout")),
        Ok(store) => {
            eprintln!("open accepted the store: {:?}", store.recovery_report());
            check_never_wrong(&store, &fx.model, &mut c, "missing middle segment");
            check_new_puts(&store, &mut fx.model, &mut c, "missing middle segment");
        }
    }
    c.finish();
}

#[test]
fn extra_garbage_file_in_the_commit_log_directory_is_a_clear_error() {
    let base = Fixture::build(120);
    let mut c = Checks::new("extra garbage file in commitlog/");
    let segment = base.segments()[0].2;
    for (name, len) in [("notes.txt", 100u64), ("00000000000000000100", segment)] {
        let mut fx = base.copy();
        let path = fx.dir.join("commitlog").join(name);
        let mut garbage = vec![0u8; len as usize];
        Rng::new(len).fill(&mut garbage);
        std::fs::write(&path, &garbage).unwrap();
        let ctx = format!("extra file commitlog/{name}");
        match fx.open() {
            Err(Error::Layout { path: p, reason }) => {
                c.check(p.file_name() == path.file_name(), || {
                    format!(
                        "{ctx}: the Layout error names {} ({reason}), not the stray file",
                        p.display()
                    )
                });
            }
            Err(e) => c.fail(format!("{ctx}: open failed with {e:?}, expected a clear Error::Layout")),
            Ok(store) => {
                // Accepted: then nothing may have changed.
                check_model(&store, &fx.model, &[], &mut c, &ctx);
                check_new_puts(&store, &mut fx.model, &mut c, &ctx);
                c.check(path.exists(), || format!("{ctx}: the stray file was deleted"));
            }
        }
    }
    c.finish();
}

fn zero_length_last_segment_case(name: &'static str, crashed: bool) {
    let mut fx = Fixture::build(150);
    let (start, _, len) = fx.segments().last().cloned().unwrap();
    let empty = fx.dir.join("commitlog").join(segment_file_name(start + len));
    std::fs::write(&empty, b"").unwrap();
    if crashed {
        fx.mark_crashed();
    }
    let mut c = Checks::new(name);
    let Some(store) = must_open(&fx, &mut c, "reopen with a zero-length last segment") else {
        return c.finish();
    };
    c.check(std::fs::metadata(&empty).map_or(true, |m| m.len() == SEGMENT), || {
        "the zero-length last segment is still there, still empty".to_string()
    });
    check_model(&store, &fx.model, &[], &mut c, "with a zero-length last segment");
    c.check(store.max_commit_log_offset() == fx.model.end(), || {
        format!(
            "log ends at {}, expected {}",
            store.max_commit_log_offset(),
            fx.model.end()
        )
    });
    check_new_puts(&store, &mut fx.model, &mut c, "with a zero-length last segment");
    // Enough more to roll over into (and past) the segment that was empty.
    fx.model.put(&store, 60);
    check_model(&store, &fx.model, &[], &mut c, "after rolling over");
    let _ = store.close();
    drop(store);
    if let Some(store) = must_open(&fx, &mut c, "clean reopen") {
        check_model(&store, &fx.model, &[], &mut c, "clean reopen");
    }
    c.finish();
}

#[test]
fn zero_length_last_segment_is_removed_clean_close() {
    zero_length_last_segment_case("zero-length last segment, clean close", false);
}

#[test]
fn zero_length_last_segment_is_removed_after_crash() {
    zero_length_last_segment_case("zero-length last segment, crash", true);
}

// ------------------------------------------------------------------------------------------
// Checkpoint.
// ------------------------------------------------------------------------------------------

/// After a crash, consume-queue units may be lost anywhere the checkpoint does not vouch for:
/// each queue keeps its first two units; the rest of its first file is zeroed and its later
/// files are gone. Everything must come back from the log.
fn lose_consume_queue_tails(fx: &Fixture) {
    for (_, _, qdir) in consume_queue_dirs(&fx.dir) {
        let files = segment_files(&qdir);
        for (i, (_, path, len)) in files.iter().enumerate() {
            if i == 0 {
                zero_range(path, 2 * UNIT, *len);
            } else {
                std::fs::remove_file(path).unwrap();
            }
        }
    }
}

/// Reopens a copy of `base` with its checkpoint replaced by `page` (removed for `None`); with
/// `crashed`, the abort marker is set and consume-queue tails are lost. Nothing may be lost.
fn corrupt_checkpoint_case(base: &Fixture, page: Option<&[u8]>, crashed: bool, c: &mut Checks, ctx: &str) {
    let mut fx = base.copy();
    fx.write_checkpoint(page);
    if crashed {
        fx.mark_crashed();
        lose_consume_queue_tails(&fx);
    }
    let Some(store) = must_open(&fx, c, ctx) else {
        return;
    };
    let report = format!("{:?}", store.recovery_report());
    let before = c.failures.len();
    check_model(&store, &fx.model, &[], c, ctx);
    c.check(store.max_commit_log_offset() == fx.model.end(), || {
        format!(
            "{ctx}: log ends at {}, expected {}",
            store.max_commit_log_offset(),
            fx.model.end()
        )
    });
    check_new_puts(&store, &mut fx.model, c, ctx);
    // One line per failing case (several cases share a test).
    let case: Vec<String> = c.failures.drain(before..).collect();
    if let Some(first) = case.first() {
        c.fail(format!(
            "{ctx}: {} failed expectation(s), the first: {first}",
            case.len()
        ));
        c.note(format!("{ctx}: {report}"));
    }
    let _ = store.close();
}

fn checkpoint_base() -> Fixture {
    let fx = Fixture::build(200);
    assert!(fx.segments().len() >= 4, "test setup");
    fx
}

#[test]
fn corrupt_checkpoint_of_random_bytes_after_a_crash_loses_nothing() {
    let base = checkpoint_base();
    let mut c = Checks::new("checkpoint of random bytes, crash");
    // 16 pages: in about a quarter of them both header timestamps RocketMQ's rule reads are
    // positive (and absurdly large), in the rest at least one is negative.
    for seed in 0..16u64 {
        let mut page = vec![0u8; PAGE as usize];
        Rng::new(seed).fill(&mut page);
        corrupt_checkpoint_case(
            &base,
            Some(&page),
            true,
            &mut c,
            &format!("random checkpoint page (seed {seed})"),
        );
    }
    c.finish();
}

/// Random bytes whose RocketMQ header fields (the first five i64) happen to be large positive
/// timestamps: the header carries no checksum, so it proves nothing either.
#[test]
fn corrupt_checkpoint_with_far_future_timestamps_after_a_crash_loses_nothing() {
    let base = checkpoint_base();
    let mut c = Checks::new("checkpoint with far-future header timestamps, crash");
    let mut page = vec![0u8; PAGE as usize];
    Rng::new(99).fill(&mut page);
    for field in 0..5 {
        page[field * 8..field * 8 + 8].copy_from_slice(&(4_000_000_000_000i64 + field as i64).to_be_bytes());
    }
    corrupt_checkpoint_case(&base, Some(&page), true, &mut c, "far-future header timestamps");
    c.finish();
}

#[test]
fn corrupt_checkpoint_zeroed_after_a_crash_loses_nothing() {
    let base = checkpoint_base();
    let mut c = Checks::new("zeroed checkpoint, crash");
    corrupt_checkpoint_case(
        &base,
        Some(&[0u8; PAGE as usize]),
        true,
        &mut c,
        "zeroed checkpoint page",
    );
    c.finish();
}

#[test]
fn corrupt_checkpoint_short_or_missing_after_a_crash_loses_nothing() {
    let base = checkpoint_base();
    let mut c = Checks::new("short or missing checkpoint, crash");
    corrupt_checkpoint_case(&base, Some(&[0xAB; 7]), true, &mut c, "checkpoint of 7 bytes");
    corrupt_checkpoint_case(&base, Some(&[]), true, &mut c, "empty checkpoint");
    corrupt_checkpoint_case(&base, None, true, &mut c, "no checkpoint file");
    c.finish();
}

#[test]
fn corrupt_checkpoint_after_a_clean_close_loses_nothing() {
    let base = checkpoint_base();
    let mut c = Checks::new("corrupt checkpoint, clean close");
    let mut random = vec![0u8; PAGE as usize];
    Rng::new(7).fill(&mut random);
    let mut future = random.clone();
    future[..8].copy_from_slice(&4_000_000_000_000i64.to_be_bytes());
    future[8..16].copy_from_slice(&4_000_000_000_000i64.to_be_bytes());
    // One half of a real checkpoint garbled: a torn checkpoint write.
    let mut torn = base.read_checkpoint().unwrap_or_else(|| vec![0u8; PAGE as usize]);
    let half = torn.len() / 2;
    Rng::new(8).fill(&mut torn[half..]);
    for (what, page) in [
        ("random", Some(random.as_slice())),
        ("far-future timestamps", Some(future.as_slice())),
        ("torn", Some(torn.as_slice())),
        ("zeroed", Some(&[0u8; PAGE as usize][..])),
        ("7 bytes", Some(&[0xAB; 7][..])),
        ("missing", None),
    ] {
        corrupt_checkpoint_case(&base, page, false, &mut c, &format!("{what} checkpoint, clean close"));
    }
    c.finish();
}

// ------------------------------------------------------------------------------------------
// Consume queues.
// ------------------------------------------------------------------------------------------

/// Writes a unit for queue offset `queue_offset` of `topic/queue` that points past the end of
/// the log, creating the queue file if needed.
fn write_unit_past_the_end(fx: &Fixture, topic: &str, queue: u32, queue_offset: u64) {
    let qdir = fx.dir.join("consumequeue").join(topic).join(queue.to_string());
    let file_bytes = CQ_UNITS * UNIT;
    let byte = queue_offset * UNIT;
    let start = byte - byte % file_bytes;
    let path = qdir.join(segment_file_name(start));
    if !path.exists() {
        std::fs::write(&path, vec![0u8; file_bytes as usize]).unwrap();
    }
    let mut unit = Vec::with_capacity(UNIT as usize);
    unit.extend_from_slice(&(fx.model.end() as i64 + 4096).to_be_bytes());
    unit.extend_from_slice(&300i32.to_be_bytes());
    unit.extend_from_slice(&0i64.to_be_bytes());
    write_at(&path, byte - start, &unit);
}

fn unit_past_the_end_case(name: &'static str, crashed: bool, at_file_start: bool) {
    // 4 queues, round robin: 4 * 20 records leave each queue mid-file (20 % 16 = 4); 4 * 32
    // fill each queue's files exactly (the next unit starts a new file).
    let per_queue = if at_file_start { 2 * CQ_UNITS } else { CQ_UNITS + 4 };
    let mut fx = Fixture::build((per_queue * TOPICS.len() as u64 * QUEUES as u64) as usize);
    let (topic, queue) = (TOPICS[0], 0);
    let count = fx.model.count(topic, queue);
    assert_eq!(count.is_multiple_of(CQ_UNITS), at_file_start, "test setup");
    write_unit_past_the_end(&fx, topic, queue, count);
    if crashed {
        fx.mark_crashed();
    }
    let mut c = Checks::new(name);
    let Some(store) = must_open(&fx, &mut c, "reopen with a unit past the log") else {
        return c.finish();
    };
    check_model(&store, &fx.model, &[], &mut c, "with a unit past the log");
    match store.get(topic, queue, count, 1) {
        Ok(g) if g.status == GetStatus::OffsetOverflowOne => {}
        Ok(g) => c.fail(format!(
            "get at the bogus unit's offset {count} returned {:?} {:?}",
            g.status,
            g.messages.iter().map(describe).collect::<Vec<_>>()
        )),
        Err(e) => c.fail(format!(
            "get at the bogus unit's offset {count} returned Err({e:?}): the unit should be gone"
        )),
    }
    check_new_puts(&store, &mut fx.model, &mut c, "after dropping the unit");
    let _ = store.close();
    drop(store);
    fx.mark_crashed();
    if let Some(store) = must_open(&fx, &mut c, "crash reopen") {
        check_model(&store, &fx.model, &[], &mut c, "crash reopen");
    }
    c.finish();
}

#[test]
fn consume_queue_unit_past_the_log_end_is_dropped_clean_close() {
    unit_past_the_end_case("CQ unit past the log end, clean close", false, false);
}

#[test]
fn consume_queue_unit_past_the_log_end_is_dropped_after_crash() {
    unit_past_the_end_case("CQ unit past the log end, crash", true, false);
}

#[test]
fn consume_queue_unit_past_the_log_end_in_a_new_file_is_dropped_clean_close() {
    unit_past_the_end_case("CQ unit past the log end in a new file, clean close", false, true);
}

#[test]
fn consume_queue_unit_past_the_log_end_in_a_new_file_is_dropped_after_crash() {
    unit_past_the_end_case("CQ unit past the log end in a new file, crash", true, true);
}

/// A power loss can leave a queue's newest file present but all zeros (created, never synced)
/// and the previous file's tail zeros too: a lost suffix of units across a file boundary. With
/// no checkpoint to vouch for any unit, recovery must rebuild them from the log.
#[test]
fn consume_queue_tail_lost_across_files_is_rebuilt_from_the_log() {
    let mut fx = Fixture::build(200);
    fx.write_checkpoint(None);
    fx.mark_crashed();
    let mut damaged = BTreeMap::new();
    for (topic, queue, qdir) in consume_queue_dirs(&fx.dir) {
        let files = segment_files(&qdir);
        if files.len() < 2 {
            continue;
        }
        let (prev_start, _, prev_len) = files[files.len() - 2].clone();
        let from = prev_start + prev_len / 2;
        for (start, path, len) in &files {
            if start + len > from {
                zero_range(path, from.saturating_sub(*start), *len);
            }
        }
        damaged.insert((topic, queue), from / UNIT);
    }
    assert!(!damaged.is_empty(), "test setup: no queue has two files");
    let mut c = Checks::new("consume-queue tail lost across files");
    if let Some(store) = must_open(&fx, &mut c, "reopen") {
        check_model(
            &store,
            &fx.model,
            &[],
            &mut c,
            &format!("queues zeroed from units {damaged:?}"),
        );
        check_new_puts(&store, &mut fx.model, &mut c, "after the rebuild");
        if !c.failures.is_empty() {
            c.note(format!("recovery report {:?}", store.recovery_report()));
        }
    }
    c.finish();
}

/// The queue whose unit the cases below damage.
const DAMAGED_QUEUE: (&str, u32) = (TOPICS[0], 0);

/// Damages unit 1 of the first file of [`DAMAGED_QUEUE`], then opens the store twice: both
/// sessions must read every record of the model, the one behind the damaged unit too.
fn damaged_unit_read_by_two_sessions(fx: &Fixture, name: &'static str) {
    let (topic, queue) = DAMAGED_QUEUE;
    let damaged = 1;
    assert!(
        fx.model.count(topic, queue) > damaged + 1,
        "test setup: valid units follow the damaged one"
    );
    let qdir = fx.dir.join("consumequeue").join(topic).join(queue.to_string());
    let (_, first_file, _) = segment_files(&qdir)[0].clone();
    write_at(&first_file, damaged * UNIT, &[0xFF; 8]);
    let mut c = Checks::new(name);
    for session in ["first open", "second open"] {
        let Some(store) = must_open(fx, &mut c, session) else {
            break;
        };
        let before = c.failures.len();
        check_model(&store, &fx.model, &[], &mut c, session);
        if c.failures.len() > before {
            c.note(format!("{session}: recovery report {:?}", store.recovery_report()));
        }
        store.close().unwrap();
    }
    c.finish();
}

/// Holes are looked for in a queue's last file only. A damaged unit in an earlier file is out of
/// sight at load, but when recovery cuts the log (here: a cleanly closed store that lost its
/// checkpoint and its last segments) and with it the queue's later file, that file becomes the
/// last: the same open must repair the unit from the log, as the next one would. (Fuzz finding
/// `clean-no-checkpoint-damaged-first-unit-second-session-differs`.)
#[test]
fn damaged_unit_in_a_file_the_log_cut_makes_last_is_rebuilt_in_the_same_session() {
    let mut fx = Fixture::build(100);
    let (topic, queue) = DAMAGED_QUEUE;
    let qdir = fx.dir.join("consumequeue").join(topic).join(queue.to_string());
    assert!(
        segment_files(&qdir).len() >= 2,
        "test setup: {topic}/{queue} has one file"
    );
    // Lose the segments from the one holding the last unit of the queue's first file on: the
    // queue keeps fewer units than its first file holds, so its second file goes.
    let last_of_first_file = fx.model.find(topic, queue, CQ_UNITS - 1).unwrap().clone();
    let (cut, _, _) = fx
        .segments()
        .into_iter()
        .rfind(|(start, _, _)| *start <= last_of_first_file.commit_log_offset)
        .unwrap();
    assert!(cut > 0, "test setup: the log has one segment before the cut");
    for (start, path, _) in fx.segments() {
        if start >= cut {
            std::fs::remove_file(path).unwrap();
        }
    }
    fx.model.recs.retain(|r| r.end() <= cut);
    fx.write_checkpoint(None);
    damaged_unit_read_by_two_sessions(&fx, "damaged unit in a file the log cut makes last");
}

/// As above, after a crash: the units rebuilt from a stale checkpoint's segment on include the
/// queue's whole second file, so dropping them makes the first file, and its damaged unit, the
/// last.
#[test]
fn damaged_unit_in_a_file_the_crash_rebuild_makes_last_is_rebuilt_in_the_same_session() {
    let (topic, queue) = DAMAGED_QUEUE;
    let mut fx = Fixture::build(40);
    let stale = fx.read_checkpoint().expect("a checkpoint");
    fx.append(60);
    let qdir = fx.dir.join("consumequeue").join(topic).join(queue.to_string());
    assert!(
        segment_files(&qdir).len() >= 2,
        "test setup: {topic}/{queue} has one file"
    );
    fx.write_checkpoint(Some(&stale));
    fx.mark_crashed();
    damaged_unit_read_by_two_sessions(&fx, "damaged unit in a file the crash rebuild makes last");
}

/// A queue with no record in the log holds units copied from another queue (fuzz finding
/// `cq-file-of-another-queue-max-offset-differs-next-session`), one of them with a size that puts
/// its record's end past the log. Recovery checks only a queue's last unit against the log end,
/// and here that one is valid; but after a crash the rebuild drops it (its record lies past the
/// stale checkpoint's segment start), nothing is dispatched into the queue again, and the damaged
/// unit becomes the last. The next open would drop it: this one must already, or the two
/// sessions disagree on the queue's max offset.
#[test]
fn unit_past_the_log_end_that_the_crash_rebuild_makes_last_is_dropped_in_the_same_session() {
    let mut fx = Fixture::build(40);
    let stale = fx.read_checkpoint().expect("a checkpoint");
    let stale_end = fx.model.end();
    fx.append(60);
    fx.write_checkpoint(Some(&stale));
    fx.mark_crashed();
    assert!(
        stale_end >= SEGMENT,
        "test setup: the rebuild starts past the first segment"
    );
    let [a, b] = [&fx.model.recs[0], &fx.model.recs[1]];
    let past_stale = fx.model.recs.iter().find(|r| r.commit_log_offset >= stale_end).unwrap();
    let unit = |r: &Rec, size: u32| {
        mqstore::consume_queue::CqUnit {
            commit_log_offset: r.commit_log_offset,
            size,
            tags_code: 0,
        }
        .encode()
    };
    let past_log_end = (fx.model.end() - b.commit_log_offset + 1) as u32;
    let mut file = [
        unit(a, a.size),
        unit(b, past_log_end),
        unit(past_stale, past_stale.size),
    ]
    .concat();
    file.resize((CQ_UNITS * UNIT) as usize, 0);
    let (topic, queue) = ("other", 0);
    let qdir = fx.dir.join("consumequeue").join(topic).join(queue.to_string());
    std::fs::create_dir_all(&qdir).unwrap();
    std::fs::write(qdir.join(segment_file_name(0)), file).unwrap();

    let mut c = Checks::new("unit past the log end that the crash rebuild makes last");
    for session in ["crash open", "next open"] {
        let Some(store) = must_open(&fx, &mut c, session) else {
            break;
        };
        let report = store.recovery_report();
        if session == "crash open" {
            assert!(
                (b.commit_log_offset + 1..=past_stale.commit_log_offset).contains(&report.dispatched_from),
                "test setup: the rebuild starts between the damaged unit's record and the last unit's: \
                 {report:?}"
            );
        }
        // Not check_model: it counts the extra queue as a failure.
        c.check(store.wait_dispatched(Duration::from_secs(10)), || {
            format!("{session}: dispatch did not catch up within 10 s")
        });
        for r in &fx.model.recs {
            check_rec(&store, r, &mut c, session);
        }
        let max = store.max_offset(topic, queue);
        c.check(max == 1, || {
            format!("{session}: {topic}/{queue} has max offset {max}, not 1 (only the first unit is sound)")
        });
        if let Ok(g) = store.get(topic, queue, 0, 4) {
            c.check(g.messages.is_empty(), || {
                format!(
                    "{session}: {topic}/{queue} served messages of another queue: {:?}",
                    g.messages.iter().map(describe).collect::<Vec<_>>()
                )
            });
        }
        store.close().unwrap();
    }
    c.finish();
}

// ------------------------------------------------------------------------------------------
// Abort marker on a clean store.
// ------------------------------------------------------------------------------------------

#[test]
fn abort_marker_on_a_cleanly_closed_store_loses_and_duplicates_nothing() {
    let mut fx = Fixture::build(150);
    fx.mark_crashed();
    let mut c = Checks::new("abort marker on a clean store");
    if let Some(store) = must_open(&fx, &mut c, "reopen with a stale abort marker") {
        c.check(!store.recovery_report().clean_shutdown, || {
            "the abort marker was present, yet the report says clean shutdown".to_string()
        });
        check_model(&store, &fx.model, &[], &mut c, "crash recovery of a clean store");
        c.check(store.max_commit_log_offset() == fx.model.end(), || {
            format!(
                "log ends at {}, expected {}",
                store.max_commit_log_offset(),
                fx.model.end()
            )
        });
        check_new_puts(&store, &mut fx.model, &mut c, "crash recovery of a clean store");
        let _ = store.close();
    }
    for crashed in [true, false] {
        if crashed {
            fx.mark_crashed();
        }
        if let Some(store) = must_open(&fx, &mut c, "reopen again") {
            check_model(
                &store,
                &fx.model,
                &[],
                &mut c,
                &format!("reopen again (abort marker: {crashed})"),
            );
            let _ = store.close();
        }
    }
    c.finish();
}
