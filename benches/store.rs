//! Criterion benchmarks of the store: append per flush policy and message size, batch append,
//! sync appends kept in flight with `put_async`, sequential read through the consume queue,
//! lookups by key and by message id, the record codec, and the copy+CRC ceiling on a segment with
//! and without a reader behind the writer.
//!
//! `cargo bench --bench store` (a few minutes). Figures compare only within one run on one
//! machine; see docs/performance.md for the machine's ceilings and the peers.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mqstore::codec::{self, EncodedRecord, RecordPlan, RecordSpec, Verify};
use mqstore::{FlushPolicy, Message, MessageStore, StoreConfig};

const SEGMENT: u64 = 256 << 20;

fn open(dir: &std::path::Path, policy: FlushPolicy) -> MessageStore {
    MessageStore::open(
        StoreConfig::new(dir)
            .flush_policy(policy)
            .commit_log_segment_size(SEGMENT)
            .warm_up_segments(true),
    )
    .expect("open")
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (name, policy) in [
        ("async", FlushPolicy::asynchronous()),
        ("buffered", FlushPolicy::buffered()),
        ("sync", FlushPolicy::sync()),
    ] {
        for size in [128usize, 1024, 16 * 1024] {
            let dir = tempfile::tempdir().unwrap();
            let store = open(dir.path(), policy.clone());
            let body = vec![0xA5u8; size];
            group.throughput(Throughput::Elements(1));
            group.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                let mut i = 0u32;
                b.iter_custom(|iters| {
                    let t = Instant::now();
                    for _ in 0..iters {
                        i = i.wrapping_add(1);
                        store.put(Message::new("bench", i % 8, body.clone())).unwrap();
                    }
                    t.elapsed()
                });
            });
            store.close().unwrap();
        }
    }
    group.finish();
}

/// Sync appends from one thread keeping `in_flight` puts pending: what group commit gives a
/// broker that does not block a thread per put.
fn pipelined_sync_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_in_flight");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), FlushPolicy::sync());
    let body = vec![0xA5u8; 1024];
    for in_flight in [1usize, 16, 64] {
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("sync_1KiB", in_flight), &in_flight, |b, &in_flight| {
            let mut i = 0u32;
            b.iter_custom(|iters| {
                let mut pending = std::collections::VecDeque::with_capacity(in_flight);
                let t = Instant::now();
                for _ in 0..iters {
                    i = i.wrapping_add(1);
                    pending.push_back(store.put_async(Message::new("bench", i % 8, body.clone())).unwrap());
                    if pending.len() == in_flight {
                        pending.pop_front().unwrap().wait();
                    }
                }
                pending.into_iter().for_each(|p| {
                    p.wait();
                });
                t.elapsed()
            });
        });
    }
    store.close().unwrap();
    group.finish();
}

fn batch_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("put_batch_32x1KiB");
    group.sample_size(10).measurement_time(Duration::from_secs(3));
    for (name, policy) in [("async", FlushPolicy::asynchronous()), ("sync", FlushPolicy::sync())] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), policy);
        group.throughput(Throughput::Elements(32));
        group.bench_function(name, |b| {
            b.iter(|| {
                let batch = (0..32).map(|q| Message::new("bench", q % 8, vec![1u8; 1024])).collect();
                store.put_batch(batch).unwrap()
            })
        });
        store.close().unwrap();
    }
    group.finish();
}

fn sequential_read(c: &mut Criterion) {
    const N: u64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), FlushPolicy::asynchronous());
    for _ in 0..N {
        store.put(Message::new("read", 0, vec![7u8; 1024])).unwrap();
    }
    assert!(store.wait_dispatched(Duration::from_secs(30)));
    let mut group = c.benchmark_group("read");
    group.sample_size(10).measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(N));
    group.bench_function("get_32_at_a_time_1KiB", |b| {
        b.iter(|| {
            let mut offset = 0;
            let mut bytes = 0usize;
            while offset < N {
                let g = store.get("read", 0, offset, 32).unwrap();
                bytes += g.messages.iter().map(|m| m.body().len()).sum::<usize>();
                offset = g.next_offset;
            }
            assert_eq!(bytes, N as usize * 1024);
        })
    });
    group.finish();
    store.close().unwrap();
}

/// Lookups off the consume queue: by key through the index (each key held by one message of
/// 200,000, with the store's own unique key on every message), by store-assigned message id.
fn lookups(c: &mut Criterion) {
    const N: u64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), FlushPolicy::asynchronous());
    let mut ids = Vec::with_capacity(N as usize);
    for i in 0..N {
        let r = store
            .put(Message::new("lookup", (i % 8) as u32, vec![7u8; 1024]).with_keys([format!("order-{i}")]))
            .unwrap();
        ids.push(r.msg_id());
    }
    assert!(store.wait_dispatched(Duration::from_secs(30)));
    let mut group = c.benchmark_group("lookup");
    group.sample_size(10).measurement_time(Duration::from_secs(3));
    const PER_ITER: u64 = 1000;
    group.throughput(Throughput::Elements(PER_ITER));
    let mut next = 0u64;
    group.bench_function("query_by_key_1_of_200k", |b| {
        b.iter(|| {
            for _ in 0..PER_ITER {
                next = (next + 7919) % N;
                let found = store.query_by_key("lookup", &format!("order-{next}"), 4).unwrap();
                assert_eq!(found.len(), 1);
            }
        })
    });
    group.bench_function("get_by_id", |b| {
        b.iter(|| {
            for _ in 0..PER_ITER {
                next = (next + 7919) % N;
                let m = store.get_by_id(&ids[next as usize]).unwrap();
                assert!(m.is_some());
            }
        })
    });
    group.finish();
    store.close().unwrap();
}

fn codec_bench(c: &mut Criterion) {
    let body = vec![0x5Au8; 1024];
    let mut props = Vec::new();
    codec::encode_properties([("TAGS", "TagA"), ("KEYS", "order-42")], &mut props).unwrap();
    let spec = RecordSpec {
        topic: "orders",
        queue_id: 3,
        flag: 0,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: "10.0.0.7:45678".parse().unwrap(),
        store_host: "127.0.0.1:10911".parse().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body: &body,
        properties: &props,
    };
    let mut group = c.benchmark_group("codec_1KiB");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode_and_seal", |b| {
        b.iter(|| {
            let mut r = EncodedRecord::encode(&spec).unwrap();
            r.seal(1, 2, 3);
            r
        })
    });
    // What an append does with a record: measured, then written in place (into 64 MiB of memory
    // already touched, round-robin, as into a warmed segment).
    let plan = RecordPlan::new(spec).unwrap();
    let mut segment = vec![1u8; 64 << 20];
    let mut at = 0usize;
    group.bench_function("plan_and_write_in_place", |b| {
        b.iter(|| {
            let plan = RecordPlan::new(spec).unwrap();
            if at + plan.len() > segment.len() {
                at = 0;
            }
            let crc = plan.write(&mut segment[at..at + plan.len()], 1, at as u64, 3);
            at += plan.len();
            crc
        })
    });
    // The machine's ceiling for the same work (`shared/limits` copycrc): a 91-byte header and the
    // body copied, a CRC of the body and one of the record, into the same memory. What the
    // store's own encoding costs beyond it is the difference between the two.
    let rec_len = plan.len();
    let mut at = 0usize;
    group.bench_function("ceiling_copy_and_two_crcs", |b| {
        b.iter(|| {
            if at + rec_len > segment.len() {
                at = 0;
            }
            let body_crc = crc32fast::hash(&body) & 0x7FFF_FFFF;
            let r = &mut segment[at..at + rec_len];
            r[0..4].copy_from_slice(&(rec_len as u32).to_be_bytes());
            r[8..12].copy_from_slice(&body_crc.to_be_bytes());
            r[28..36].copy_from_slice(&(at as u64).to_be_bytes());
            r[91..91 + body.len()].copy_from_slice(&body);
            let whole = crc32fast::hash(&r[..91 + body.len()]);
            r[rec_len - 4..].copy_from_slice(&whole.to_be_bytes());
            at += rec_len;
            whole
        })
    });
    let mut sealed = EncodedRecord::encode(&spec).unwrap();
    sealed.seal(1, 2, 3);
    let bytes = sealed.into_vec();
    group.bench_function("decode_verify_crc", |b| {
        b.iter(|| {
            matches!(
                codec::decode(&bytes, Verify::RequireRecordCrc),
                Ok(codec::Frame::Record(_))
            )
        })
    });
    group.finish();
}

/// The copy+CRC ceiling into a real warmed segment (the store's mmap backend, reserved and
/// published as the commit log does): alone; with a second thread that reads every record
/// behind the writer and looks at the published end without pause; and with one that reads as
/// the dispatcher does (everything published, then a 1 ms poll). On 2026-12-07 the second cost
/// the writer half of the ceiling or more (most likely each publish taking the end's cache line
/// back from the reader's core), the third nothing measurable (docs/performance.md, "What
/// bounds one producer: a second look").
fn ceiling_with_a_reader(c: &mut Criterion) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use mqstore::segment::{MmapBackend, SegmentQueue, SizeRule};

    const SIZE: u64 = 256 << 20;
    let body: Vec<u8> = (0..1024u32).map(|i| b'a' + (i % 26) as u8).collect();
    let rec_len = 91 + body.len() + 20;
    let per_segment = (SIZE as usize / rec_len) as u64;
    let mut group = c.benchmark_group("ceiling_1KiB");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    for (name, reader, poll) in [
        ("copy_crc_alone", false, false),
        ("copy_crc_with_a_reader_behind", true, false),
        ("copy_crc_with_a_reader_polling_1ms", true, true),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(per_segment);
                    left -= n;
                    let dir = tempfile::tempdir().unwrap();
                    let queue = SegmentQueue::open(Arc::new(MmapBackend), dir.path(), SizeRule::Exactly(SIZE)).unwrap();
                    let segment = queue.create(0, true).unwrap();
                    let done = AtomicBool::new(false);
                    std::thread::scope(|s| {
                        if reader {
                            s.spawn(|| {
                                let (mut at, mut sum) = (0u64, 0u32);
                                while !done.load(Ordering::Acquire) || at < segment.readable() {
                                    // As the dispatcher reads: one look at the published end per
                                    // pass, then every record up to it.
                                    let upto = segment.readable();
                                    if upto > at {
                                        let published = segment.read(at, (upto - at) as usize).unwrap();
                                        for record in published.chunks_exact(rec_len) {
                                            sum ^= crc32fast::hash(record);
                                            at += rec_len as u64;
                                        }
                                    }
                                    if poll {
                                        std::thread::sleep(Duration::from_millis(1));
                                    } else {
                                        std::hint::spin_loop();
                                    }
                                }
                                std::hint::black_box(sum);
                            });
                        }
                        let mut writer = segment.claim_writer().unwrap();
                        let started = Instant::now();
                        for i in 0..n {
                            let mut reservation = writer.reserve(rec_len as u64);
                            let at = reservation.start();
                            let r = reservation.bytes_mut();
                            let body_crc = crc32fast::hash(&body) & 0x7FFF_FFFF;
                            r[0..4].copy_from_slice(&(rec_len as u32).to_be_bytes());
                            r[8..12].copy_from_slice(&body_crc.to_be_bytes());
                            r[20..28].copy_from_slice(&i.to_be_bytes());
                            r[28..36].copy_from_slice(&at.to_be_bytes());
                            r[91..91 + body.len()].copy_from_slice(&body);
                            let whole = crc32fast::hash(&r[..91 + body.len()]);
                            r[rec_len - 4..].copy_from_slice(&whole.to_be_bytes());
                            assert!(reservation.publish().is_ok());
                        }
                        timed += started.elapsed();
                        done.store(true, Ordering::Release);
                    });
                }
                timed
            })
        });
    }
    // The store's whole put against the loops above, in the same run and on the same terms: one
    // producer refilling one message (as the loops reuse one body), async flush, a fresh store
    // whose first segment (of the same size) is warmed before the clock starts, at most a
    // segment's worth of records timed in each, so that the disk's sustained write speed (the
    // loops never reach it) does not enter.
    group.bench_function("store_put_ref_async", |b| {
        let mut msg = Message::new("bench", 0, body.clone());
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                // The store's records carry a topic and properties the loops' do not: a tenth
                // less keeps them within the first segment.
                let n = left.min(per_segment * 9 / 10);
                left -= n;
                let dir = tempfile::tempdir().unwrap();
                let store = open(dir.path(), FlushPolicy::asynchronous());
                store.wait_segments_prepared(Duration::from_secs(60));
                let started = Instant::now();
                for i in 0..n {
                    msg.body_mut()[..8].copy_from_slice(&i.to_be_bytes());
                    msg.set_queue_id((i % 4) as u32);
                    store.put_ref(&msg).unwrap();
                }
                timed += started.elapsed();
                store.close().unwrap();
            }
            timed
        });
    });
    group.finish();
}

criterion_group!(
    benches,
    ceiling_with_a_reader,
    append,
    batch_append,
    pipelined_sync_append,
    sequential_read,
    lookups,
    codec_bench
);
criterion_main!(benches);
