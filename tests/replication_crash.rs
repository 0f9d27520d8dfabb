//! A slave killed with SIGKILL, again and again, while it catches up and while a sync master
//! acknowledges puts through it: after every restart it recovers and resumes from its own end,
//! and in the end it holds every put the master acknowledged, byte for byte.
//!
//! The slave is a child process (this test binary again, running the ignored test
//! `slave_child`); the master runs in the test itself. `MQSTORE_CRASH_SEED` replays a run.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Rng, body, fnv1a64, seed_from_env};
use mqstore::replication::{ReplicationConfig, Role};
use mqstore::{Message, MessageStore, PutStatus, StoreConfig};

const SEGMENT: u64 = 256 * 1024;
const ENV_DIR: &str = "MQSTORE_REPL_CHILD_DIR";
const ENV_MASTER: &str = "MQSTORE_REPL_CHILD_MASTER";

fn repl() -> ReplicationConfig {
    ReplicationConfig::default()
        .heartbeat(Duration::from_millis(100), Duration::from_millis(1000))
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(100))
        .transfer_batch(8 * 1024)
}

fn slave_config(dir: &Path, master: SocketAddr) -> StoreConfig {
    StoreConfig::new(dir)
        .commit_log_segment_size(SEGMENT)
        .consume_queue_units_per_segment(256)
        .role(Role::Slave { master })
        .replication(repl())
}

/// Child mode: follow the master until killed.
#[test]
#[ignore = "child process of the replication crash test: the parent runs it with MQSTORE_REPL_CHILD_DIR set"]
fn slave_child() {
    let (Some(dir), Some(master)) = (std::env::var_os(ENV_DIR), std::env::var(ENV_MASTER).ok()) else {
        return;
    };
    let store = MessageStore::open(slave_config(Path::new(&dir), master.parse().unwrap())).unwrap();
    println!("READY {}", store.max_commit_log_offset());
    // The transport works on its own threads; a parent that died leaves this to end itself.
    std::thread::sleep(Duration::from_secs(120));
    std::process::exit(3);
}

fn spawn_slave(dir: &Path, master: SocketAddr) -> (Child, u64) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "slave_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(ENV_DIR, dir)
        .env(ENV_MASTER, master.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let ready = child.stdout.take().and_then(|stdout| {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            // The harness's own "test slave_child ... " may start the line.
            if let Some(end) = line.trim().split("READY ").nth(1) {
                return end.parse().ok();
            }
        }
    });
    match ready {
        Some(end) => (child, end),
        None => {
            let _ = child.kill();
            let status = child.wait();
            panic!("the slave child died before it was ready: {status:?}");
        }
    }
}

fn kill(mut child: Child) {
    // SIGKILL: no close, no flush, no checkpoint.
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A put the master acknowledged with `Ok`: where, how long, and its body's hash.
#[derive(Clone, Copy, Debug)]
struct Acked {
    offset: u64,
    len: u32,
    hash: u64,
}

#[test]
fn a_slave_killed_while_catching_up_holds_every_acknowledged_put_after_restart() {
    let seed = seed_from_env("MQSTORE_CRASH_SEED");
    println!("MQSTORE_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master = MessageStore::open(
        StoreConfig::new(a.path())
            .commit_log_segment_size(SEGMENT)
            .consume_queue_units_per_segment(256)
            .role(Role::SyncMaster {
                timeout: Duration::from_millis(500),
            })
            .replication(repl().listen("127.0.0.1:0".parse().unwrap())),
    )
    .unwrap();
    let addr = master.replication_addr().unwrap();
    let put = |i: u64| {
        master.put(Message::new(
            format!("t{}", i % 3),
            (i % 4) as u32,
            body(i, 200 + (i as usize * 97) % 3000),
        ))
    };

    // A backlog for the slave to catch up on: several megabytes, many segments.
    for i in 0..3000 {
        assert_eq!(put(i).unwrap().status, PutStatus::SlaveNotAvailable);
    }
    let mut acked: Vec<Acked> = Vec::new();
    let mut next = 3000u64;
    for round in 0..6 {
        let (child, start) = spawn_slave(b.path(), addr);
        println!("round {round}: the slave recovered to {start}");
        // Puts while the slave catches up; those acknowledged Ok are what it must keep.
        let stop = AtomicBool::new(false);
        let kill_after = Duration::from_millis(rng.below(400) + 20);
        let round_acked = std::thread::scope(|s| {
            let writer = s.spawn(|| {
                let mut mine = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let i = next + mine.len() as u64;
                    mine.push((i, put(i).unwrap()));
                }
                mine
            });
            std::thread::sleep(kill_after);
            kill(child);
            stop.store(true, Ordering::SeqCst);
            writer.join().unwrap()
        });
        next += round_acked.len() as u64;
        for (i, r) in round_acked {
            if r.status == PutStatus::Ok {
                let b = body(i, 200 + (i as usize * 97) % 3000);
                acked.push(Acked {
                    offset: r.commit_log_offset,
                    len: r.wrote_bytes,
                    hash: fnv1a64(&b),
                });
            }
        }
    }
    // A last slave catches up completely, and is killed too.
    let (child, _) = spawn_slave(b.path(), addr);
    let end = master.max_commit_log_offset();
    let deadline = Instant::now() + Duration::from_secs(60);
    while master.replicas().first().map(|r| r.acked_offset) != Some(end) {
        assert!(Instant::now() < deadline, "the last slave did not catch up");
        std::thread::sleep(Duration::from_millis(10));
    }
    kill(child);

    // Opened where it cannot reach a master: only its own recovery runs.
    let slave = MessageStore::open(slave_config(b.path(), "127.0.0.1:9".parse().unwrap())).unwrap();
    assert!(!slave.recovery_report().clean_shutdown);
    assert_eq!(slave.max_commit_log_offset(), end);
    for a in &acked {
        let m = slave
            .read_at(a.offset)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged put at {} is gone", a.offset));
        assert_eq!(m.record().len() as u32, a.len);
        assert_eq!(fnv1a64(m.body()), a.hash, "acknowledged put at {} differs", a.offset);
    }
    assert!(!acked.is_empty(), "no put was acknowledged: the test proved nothing");
    println!("{} acknowledged puts checked on the slave", acked.len());
    // Byte for byte, the whole log.
    let (master_log, slave_log) = (common::commit_log_files(a.path()), common::commit_log_files(b.path()));
    let starts =
        |files: &[(u64, std::path::PathBuf, u64)]| files.iter().map(|f| f.0).filter(|&s| s < end).collect::<Vec<_>>();
    assert_eq!(starts(&master_log), starts(&slave_log));
    for ((start, pa, _), (_, pb, _)) in master_log.iter().zip(&slave_log).filter(|(f, _)| f.0 < end) {
        let (da, db) = (std::fs::read(pa).unwrap(), std::fs::read(pb).unwrap());
        let take = (end - start).min(da.len() as u64) as usize;
        assert!(da[..take] == db[..take], "segment {start} differs");
    }
    slave.close().unwrap();
    master.close().unwrap();
    let report = mqstore::verify::verify_store(b.path()).unwrap();
    assert!(report.consistent, "{report:?}");
}
