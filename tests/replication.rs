//! Master/slave replication over the built-in TCP transport, on 127.0.0.1: catch-up, reconnect,
//! sync-master acknowledgements, failover with truncation, and peers that speak garbage.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{body, read_queue};
use mqstore::replication::frame::{self, Frame};
use mqstore::replication::{ReplicationConfig, Role};
use mqstore::{Error, Message, MessageStore, PutStatus, StoreConfig};

const SEGMENT: u64 = 64 * 1024;

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Fast heartbeats and reconnects, so that drops are noticed within a test's patience.
fn repl() -> ReplicationConfig {
    ReplicationConfig::default()
        .listen(any_port())
        .heartbeat(Duration::from_millis(100), Duration::from_secs(5))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .transfer_batch(16 * 1024)
}

fn config(dir: &Path, role: Role) -> StoreConfig {
    StoreConfig::new(dir)
        .commit_log_segment_size(SEGMENT)
        .consume_queue_units_per_segment(64)
        .role(role)
        .replication(repl())
}

fn master(dir: &Path) -> MessageStore {
    MessageStore::open(config(dir, Role::AsyncMaster)).unwrap()
}

fn slave_of(dir: &Path, master: SocketAddr) -> MessageStore {
    MessageStore::open(config(dir, Role::Slave { master })).unwrap()
}

fn addr(store: &MessageStore) -> SocketAddr {
    store.replication_addr().expect("the master listens")
}

fn message(i: u64) -> Message {
    Message::new(
        format!("topic-{}", i % 3),
        (i % 4) as u32,
        body(i, 100 + (i as usize * 53) % 1500),
    )
    .with_tags(format!("tag{}", i % 5))
    .with_keys([format!("key-{i}")])
}

fn fill(store: &MessageStore, range: std::ops::Range<u64>) {
    for i in range {
        let r = store.put(message(i)).unwrap();
        assert_eq!(r.status, PutStatus::Ok);
    }
}

/// Waits until `cond` holds; panics with `what` after 20 s.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn caught_up(slave: &MessageStore, master: &MessageStore) {
    let end = master.max_commit_log_offset();
    eventually("the slave catches up", || slave.max_commit_log_offset() == end);
}

/// The commit-log bytes of a store below `end`, read from its segment files.
fn log_bytes(dir: &Path, end: u64) -> Vec<u8> {
    let mut names: Vec<_> = std::fs::read_dir(dir.join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        let start: u64 = n.parse().unwrap();
        if start >= end {
            break;
        }
        let bytes = std::fs::read(dir.join("commitlog").join(&n)).unwrap();
        let take = (end - start).min(bytes.len() as u64) as usize;
        out.extend_from_slice(&bytes[..take]);
    }
    out
}

/// Every queue of both stores holds the same messages at the same offsets.
fn same_queues(a: &MessageStore, b: &MessageStore) {
    assert!(a.wait_dispatched(Duration::from_secs(10)) && b.wait_dispatched(Duration::from_secs(10)));
    assert_eq!(a.queues(), b.queues());
    for (topic, q) in a.queues() {
        let (ma, mb) = (read_queue(a, &topic, q), read_queue(b, &topic, q));
        assert_eq!(ma.len(), mb.len(), "{topic}/{q}");
        for (x, y) in ma.iter().zip(&mb) {
            assert_eq!(x.queue_offset(), y.queue_offset());
            assert_eq!(x.commit_log_offset(), y.commit_log_offset());
            assert_eq!(x.body(), y.body());
            assert_eq!(x.tags(), y.tags());
            assert_eq!(x.keys(), y.keys());
            assert_eq!(x.store_timestamp(), y.store_timestamp());
        }
    }
}

fn verify_clean(dir: &Path) {
    let report = mqstore::verify::verify_store(dir).unwrap();
    assert!(report.consistent, "{}: {report:?}", dir.display());
}

#[test]
fn a_slave_catches_up_from_empty_and_mirrors_the_master() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = master(a.path());
    // Enough to cross several segments, so fillers are replicated too.
    fill(&m, 0..400);
    let s = slave_of(b.path(), addr(&m));
    caught_up(&s, &m);
    let connection = m.replicas();
    assert_eq!(connection.len(), 1);
    // And it follows what comes next, over the same connection (no drop and reconnect on the
    // way, across every segment end).
    fill(&m, 400..600);
    caught_up(&s, &m);
    eventually("the slave acknowledges everything", || {
        m.replicas().first().map(|r| r.acked_offset) == Some(m.max_commit_log_offset())
    });
    assert_eq!(m.replicas()[0].name, connection[0].name, "the slave reconnected");
    let end = m.max_commit_log_offset();
    assert!(end > 4 * SEGMENT, "the test must cross segments");
    assert_eq!(
        log_bytes(a.path(), end),
        log_bytes(b.path(), end),
        "byte-identical logs"
    );
    same_queues(&m, &s);
    assert_eq!(m.epochs(), s.epochs());
    assert_eq!(s.role(), Role::Slave { master: addr(&m) });
    s.close().unwrap();
    m.close().unwrap();
    verify_clean(a.path());
    verify_clean(b.path());
}

#[test]
fn a_slave_refuses_producer_puts_and_appends_nothing() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = master(a.path());
    fill(&m, 0..5);
    let s = slave_of(b.path(), addr(&m));
    caught_up(&s, &m);
    let before = s.max_commit_log_offset();
    match s.put(message(99)) {
        Err(Error::RoleIsSlave { master }) => assert_eq!(master, addr(&m)),
        other => panic!("expected RoleIsSlave, got {other:?}"),
    }
    assert!(matches!(s.put_async(message(99)), Err(Error::RoleIsSlave { .. })));
    assert!(matches!(s.put_batch(vec![message(99)]), Err(Error::RoleIsSlave { .. })));
    assert_eq!(s.max_commit_log_offset(), before);
    // Reads serve the replicated data, once dispatched.
    assert!(s.wait_dispatched(Duration::from_secs(10)));
    let first = s.get("topic-0", 0, 0, 1).unwrap();
    assert_eq!(first.messages[0].body(), body(0, 100).as_slice());
    assert_eq!(s.read_at(0).unwrap().unwrap().body(), body(0, 100).as_slice());
}

#[test]
fn a_slave_resumes_from_its_own_end_after_a_restart() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = master(a.path());
    fill(&m, 0..150);
    let s = slave_of(b.path(), addr(&m));
    caught_up(&s, &m);
    s.close().unwrap();
    drop(s);
    fill(&m, 150..300);
    let s = slave_of(b.path(), addr(&m));
    caught_up(&s, &m);
    let end = m.max_commit_log_offset();
    assert_eq!(log_bytes(a.path(), end), log_bytes(b.path(), end));
    same_queues(&m, &s);
}

#[test]
fn a_slave_reconnects_when_its_master_comes_back() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = master(a.path());
    let port = addr(&m);
    fill(&m, 0..50);
    let s = slave_of(b.path(), port);
    caught_up(&s, &m);
    m.close().unwrap();
    drop(m);
    // The same port again, so the slave's configured address stays right.
    let m = MessageStore::open(
        StoreConfig::new(a.path())
            .commit_log_segment_size(SEGMENT)
            .consume_queue_units_per_segment(64)
            .replication(repl().listen(port)),
    )
    .unwrap();
    fill(&m, 50..120);
    caught_up(&s, &m);
    same_queues(&m, &s);
    // The master's restart began an epoch, which the slave took over.
    assert_eq!(m.epochs(), s.epochs());
    assert!(m.epochs().len() >= 2);
}

#[test]
fn a_sync_master_acknowledges_only_what_the_slave_holds() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let role = Role::SyncMaster {
        timeout: Duration::from_millis(500),
    };
    let m = MessageStore::open(config(a.path(), role)).unwrap();
    // No slave: refused at once, but appended.
    let r = m.put(message(0)).unwrap();
    assert_eq!(r.status, PutStatus::SlaveNotAvailable);
    let s = slave_of(b.path(), addr(&m));
    eventually("the slave is in sync", || m.in_sync_slaves() == 1);
    for i in 1..200 {
        let r = m.put(message(i)).unwrap();
        assert_eq!(r.status, PutStatus::Ok, "put {i}");
        let end = r.commit_log_offset + r.wrote_bytes as u64;
        assert!(
            s.max_commit_log_offset() >= end,
            "put {i} acknowledged before the slave held it"
        );
    }
    // put_async and put_batch honour the role too.
    let pending: Vec<_> = (200..264).map(|i| m.put_async(message(i)).unwrap()).collect();
    for p in pending {
        let r = p.wait();
        assert_eq!(r.status, PutStatus::Ok);
        assert!(s.max_commit_log_offset() >= r.commit_log_offset + r.wrote_bytes as u64);
    }
    let rs = m.put_batch((264..270).map(message).collect()).unwrap();
    assert!(
        rs.iter().all(|r| r.status == PutStatus::Ok),
        "{:?}",
        rs.iter().map(|r| r.status).collect::<Vec<_>>()
    );

    // The slave goes away: puts fail their replication within the timeout, the store stays up.
    s.close().unwrap();
    drop(s);
    let r = m.put(message(300)).unwrap();
    assert!(
        matches!(r.status, PutStatus::SlaveNotAvailable | PutStatus::FlushSlaveTimeout),
        "{:?}",
        r.status
    );
    eventually("the master notices the slave is gone", || m.in_sync_slaves() == 0);
    assert_eq!(m.put(message(301)).unwrap().status, PutStatus::SlaveNotAvailable);

    // It comes back: Ok again.
    let s = slave_of(b.path(), addr(&m));
    eventually("the slave is back in sync", || m.in_sync_slaves() == 1);
    let r = m.put(message(302)).unwrap();
    assert_eq!(r.status, PutStatus::Ok);
    caught_up(&s, &m);
    same_queues(&m, &s);
}

#[test]
fn a_sync_master_times_out_when_the_slave_stops_acknowledging() {
    let a = tempfile::tempdir().unwrap();
    let role = Role::SyncMaster {
        timeout: Duration::from_millis(300),
    };
    let m = MessageStore::open(config(a.path(), role)).unwrap();
    // A slave that says hello and its end, then never acknowledges anything.
    let mut peer = TcpStream::connect(addr(&m)).unwrap();
    let mut buf = Vec::new();
    frame::encode(
        &Frame::Hello {
            segment_size: SEGMENT,
            max_offset: 0,
            last_epoch: 0,
        },
        &mut buf,
    );
    frame::encode(&Frame::Ack { offset: 0 }, &mut buf);
    peer.write_all(&buf).unwrap();
    eventually("the silent slave is registered", || m.in_sync_slaves() == 1);
    let r = m.put(message(0)).unwrap();
    assert_eq!(r.status, PutStatus::FlushSlaveTimeout);
    // Appended all the same.
    assert_eq!(m.get("topic-0", 0, 0, 1).unwrap().messages.len(), 1);
    // Silent past the heartbeat timeout: dropped, and then no longer waited for.
    eventually("the silent slave is dropped", || m.in_sync_slaves() == 0);
    assert_eq!(m.put(message(1)).unwrap().status, PutStatus::SlaveNotAvailable);
    let mut rest = Vec::new();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = peer.read_to_end(&mut rest);
    assert!(
        frame::decode(&rest, 1 << 20).unwrap().is_some(),
        "the master sends its welcome (and a refusal) before it closes"
    );
}

#[test]
fn a_sync_master_can_require_two_slaves() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let m = MessageStore::open(
        StoreConfig::new(a.path())
            .commit_log_segment_size(SEGMENT)
            .consume_queue_units_per_segment(64)
            .role(Role::SyncMaster {
                timeout: Duration::from_millis(500),
            })
            .replication(repl().in_sync_slaves(2)),
    )
    .unwrap();
    let s1 = slave_of(b.path(), addr(&m));
    eventually("one slave is in sync", || m.in_sync_slaves() == 1);
    assert_eq!(m.put(message(0)).unwrap().status, PutStatus::SlaveNotAvailable);
    let s2 = slave_of(c.path(), addr(&m));
    eventually("two slaves are in sync", || m.in_sync_slaves() == 2);
    for i in 1..50 {
        let r = m.put(message(i)).unwrap();
        assert_eq!(r.status, PutStatus::Ok);
        let end = r.commit_log_offset + r.wrote_bytes as u64;
        assert!(s1.max_commit_log_offset() >= end && s2.max_commit_log_offset() >= end);
    }
    caught_up(&s1, &m);
    caught_up(&s2, &m);
    same_queues(&m, &s1);
    same_queues(&m, &s2);
    // The master's stats name both slaves, each holding all of a sync master's acknowledged log.
    let stats = m.stats();
    assert_eq!(stats.replicas.len(), 2, "{:?}", stats.replicas);
    assert!(
        stats
            .replicas
            .iter()
            .all(|r| r.acked_offset == stats.max_commit_log_offset),
        "no lag after every put was acknowledged by both: {:?}",
        stats.replicas
    );
    assert!(s1.stats().replicas.is_empty(), "a slave has no slaves");
}

#[test]
fn failover_truncates_the_old_master_to_what_the_new_one_holds() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let old = master(a.path());
    fill(&old, 0..200);
    let s = slave_of(b.path(), addr(&old));
    caught_up(&s, &old);
    let common = old.max_commit_log_offset();
    // The slave falls away; the master takes records the slave never gets, then dies.
    s.close().unwrap();
    drop(s);
    fill(&old, 1000..1150);
    let lost_end = old.max_commit_log_offset();
    assert!(lost_end > common);
    old.halt();
    drop(old);

    // The slave is promoted and writes on.
    let new = slave_of(b.path(), "127.0.0.1:9".parse().unwrap());
    new.set_role(Role::AsyncMaster).unwrap();
    assert!(new.put(message(5000)).is_ok());
    fill(&new, 2000..2100);
    let new_epoch = new.epochs().last().copied().unwrap();
    assert_eq!(
        new_epoch.start_offset, common,
        "the new epoch starts where the slave's log ended"
    );

    // The old master comes back as the new one's slave: cut to the common point, then mirrors.
    let old = slave_of(a.path(), addr(&new));
    caught_up(&old, &new);
    let end = new.max_commit_log_offset();
    assert_eq!(log_bytes(a.path(), end), log_bytes(b.path(), end));
    same_queues(&new, &old);
    assert_eq!(new.epochs(), old.epochs());
    // None of the records only the old master had survive.
    for (topic, q) in old.queues() {
        for msg in read_queue(&old, &topic, q) {
            let k = msg.keys()[0].trim_start_matches("key-").parse::<u64>().unwrap();
            assert!(!(1000..1150).contains(&k), "record {k} the new master never had");
        }
    }
    // And they were not simply dropped: the cut segments are kept aside.
    assert!(a.path().join("lost+found").exists());
    old.close().unwrap();
    new.close().unwrap();
    verify_clean(a.path());
    verify_clean(b.path());
    // An operator sees the history with `mqstore stat`.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqstore"))
        .arg("stat")
        .arg(a.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let expect = format!("{} from {}", new_epoch.epoch, new_epoch.start_offset);
    assert!(
        text.lines().any(|l| l.starts_with("epochs") && l.contains(&expect)),
        "{text}"
    );
}

#[test]
fn a_slave_refuses_a_stale_master() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = master(a.path());
    fill(&m, 0..20);
    let s = slave_of(b.path(), addr(&m));
    caught_up(&s, &m);
    s.close().unwrap();
    drop(s);
    // The slave is promoted (a new epoch), writes, then is pointed back at the old master,
    // which never saw that epoch: it must refuse rather than cut its own newer records.
    let promoted = slave_of(b.path(), "127.0.0.1:9".parse().unwrap());
    promoted.set_role(Role::AsyncMaster).unwrap();
    fill(&promoted, 20..40);
    let end = promoted.max_commit_log_offset();
    promoted.set_role(Role::Slave { master: addr(&m) }).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        promoted.max_commit_log_offset(),
        end,
        "nothing of the newer epoch is cut"
    );
}

/// A listener that plays a master: accepts one slave at a time and answers with `script`.
fn fake_master(script: impl Fn(&mut TcpStream) + Send + 'static) -> (SocketAddr, std::thread::JoinHandle<usize>) {
    let listener = TcpListener::bind(any_port()).unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let handle = std::thread::spawn(move || {
        let mut served = 0;
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && served < 3 {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    // The slave's hello.
                    let mut hello = [0u8; frame::HEADER_LEN + 20];
                    if stream.read_exact(&mut hello).is_err() {
                        continue;
                    }
                    script(&mut stream);
                    served += 1;
                    // Give the slave time to read and refuse before the connection drops.
                    let mut sink = [0u8; 256];
                    let _ = stream.read(&mut sink);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        served
    });
    (addr, handle)
}

fn welcome(epochs: &[(u32, u64)], max_offset: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    frame::encode(
        &Frame::Welcome {
            segment_size: SEGMENT,
            max_offset,
            min_offset: 0,
            epochs: epochs
                .iter()
                .map(|&(epoch, start_offset)| mqstore::replication::epoch::EpochEntry { epoch, start_offset })
                .collect(),
        },
        &mut buf,
    );
    buf
}

/// A fake master's script: a welcome with the slave's own `epochs` (so it agrees with the
/// slave at `end`), then a `Data` frame at `offset` with `bytes`, in the last epoch or `epoch`.
fn data_after_welcome(
    epochs: &[(u32, u64)],
    end: u64,
    offset: u64,
    epoch: Option<(u32, u64)>,
    bytes: &'static [u8],
) -> Box<dyn Fn(&mut TcpStream) + Send> {
    let epochs = epochs.to_vec();
    let (epoch, epoch_start) = epoch.unwrap_or(*epochs.last().unwrap());
    Box::new(move |s: &mut TcpStream| {
        let mut w = welcome(&epochs, end + 1000);
        frame::encode(
            &Frame::Data {
                offset,
                epoch,
                epoch_start,
                bytes,
            },
            &mut w,
        );
        let _ = s.write_all(&w);
    })
}

#[test]
fn a_slave_refuses_garbage_from_a_fake_master_and_keeps_its_data() {
    // A slave with data of its own, from a real master.
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = master(a.path());
    fill(&m, 0..30);
    let s = slave_of(b.path(), addr(&m));
    caught_up(&s, &m);
    let end = s.max_commit_log_offset();
    let epochs: Vec<(u32, u64)> = s.epochs().iter().map(|e| (e.epoch, e.start_offset)).collect();
    s.close().unwrap();
    drop(s);
    m.close().unwrap();
    drop(m);

    type Script = Box<dyn Fn(&mut TcpStream) + Send>;
    let scripts: Vec<(&str, Script)> = vec![
        (
            "garbage",
            Box::new(|s: &mut TcpStream| {
                let _ = s.write_all(&[0xAB; 64]);
            }),
        ),
        ("an oversized frame", {
            Box::new(|s: &mut TcpStream| {
                let mut h = Vec::new();
                frame::encode(&Frame::Heartbeat { max_offset: 0 }, &mut h);
                h[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
                let _ = s.write_all(&h);
            })
        }),
        ("a bad CRC", {
            let e = epochs.clone();
            Box::new(move |s: &mut TcpStream| {
                let mut w = welcome(&e, end);
                let last = w.len() - 1;
                w[last] ^= 0xFF;
                let _ = s.write_all(&w);
            })
        }),
        (
            "data that does not continue the log",
            data_after_welcome(&epochs, end, end + 500, None, &[1, 2, 3, 4, 5, 6, 7, 8, 9]),
        ),
        (
            "bytes that are not records",
            data_after_welcome(&epochs, end, end, None, &[0x5A; 300]),
        ),
        (
            "an epoch going backwards",
            data_after_welcome(&epochs, end, end, Some((0, 0)), &[0x5A; 300]),
        ),
        ("a master with no epoch in common", {
            Box::new(move |s: &mut TcpStream| {
                let _ = s.write_all(&welcome(&[(77, 12345)], end + 1000));
            })
        }),
    ];
    for (what, script) in scripts {
        let (fake, served) = fake_master(script);
        let s = slave_of(b.path(), fake);
        let served = served.join().unwrap();
        assert!(served >= 1, "{what}: the slave never connected");
        assert_eq!(s.max_commit_log_offset(), end, "{what}: the slave's log changed");
        s.close().unwrap();
        drop(s);
        verify_clean(b.path());
    }
    // Still a good slave of the real master.
    let m = MessageStore::open(
        StoreConfig::new(a.path())
            .commit_log_segment_size(SEGMENT)
            .consume_queue_units_per_segment(64)
            .replication(repl()),
    )
    .unwrap();
    fill(&m, 30..40);
    let s = slave_of(b.path(), addr(&m));
    caught_up(&s, &m);
    same_queues(&m, &s);
}

#[test]
fn a_master_drops_fake_slaves_and_keeps_serving_real_ones() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = MessageStore::open(config(a.path(), Role::sync_master())).unwrap();
    let port = addr(&m);
    let hello = |max_offset: u64| {
        let mut buf = Vec::new();
        frame::encode(
            &Frame::Hello {
                segment_size: SEGMENT,
                max_offset,
                last_epoch: 1,
            },
            &mut buf,
        );
        buf
    };
    let mut bogus_ack = hello(0);
    frame::encode(&Frame::Ack { offset: 1 << 40 }, &mut bogus_ack);
    let mut bad_size = Vec::new();
    frame::encode(
        &Frame::Hello {
            segment_size: SEGMENT * 2,
            max_offset: 0,
            last_epoch: 0,
        },
        &mut bad_size,
    );
    let attempts: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", vec![0xCD; 100]),
        ("an oversized frame", {
            let mut h = hello(0);
            h[8..12].copy_from_slice(&(1u32 << 31).to_be_bytes());
            h
        }),
        ("an ack past the master's end", bogus_ack),
        ("another segment size", bad_size),
    ];
    for (what, bytes) in attempts {
        let mut peer = TcpStream::connect(port).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        peer.write_all(&bytes).unwrap();
        // The master closes the connection (after a refusal, maybe).
        let mut rest = Vec::new();
        let _ = peer.read_to_end(&mut rest);
        assert_eq!(m.in_sync_slaves(), 0, "{what}: a fake slave counts as in sync");
        assert_eq!(
            m.put(message(0)).unwrap().status,
            PutStatus::SlaveNotAvailable,
            "{what}"
        );
    }
    let s = slave_of(b.path(), port);
    eventually("the real slave is in sync", || m.in_sync_slaves() == 1);
    assert_eq!(m.put(message(1)).unwrap().status, PutStatus::Ok);
    caught_up(&s, &m);
    same_queues(&m, &s);
    s.close().unwrap();
    m.close().unwrap();
    verify_clean(a.path());
    verify_clean(b.path());
}

#[test]
fn a_sync_master_keeps_one_connection_under_many_puts_in_flight() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = MessageStore::open(config(a.path(), Role::sync_master())).unwrap();
    let s = slave_of(b.path(), addr(&m));
    eventually("the slave is in sync", || m.in_sync_slaves() == 1);
    let connection = m.replicas()[0].name.clone();
    std::thread::scope(|scope| {
        for t in 0..8u64 {
            let m = &m;
            scope.spawn(move || {
                let mut pending = std::collections::VecDeque::new();
                for i in 0..4000 {
                    pending.push_back(m.put_async(message(t * 10_000 + i)).unwrap());
                    if pending.len() >= 32 {
                        assert_eq!(pending.pop_front().unwrap().wait().status, PutStatus::Ok);
                    }
                }
                for p in pending {
                    assert_eq!(p.wait().status, PutStatus::Ok);
                }
            });
        }
    });
    // The sender never ran ahead of the log's end (which would have dropped the slave).
    assert_eq!(m.replicas()[0].name, connection, "the slave reconnected");
    caught_up(&s, &m);
    same_queues(&m, &s);
}
