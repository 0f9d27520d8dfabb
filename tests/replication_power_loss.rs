//! A slave that flushes before it acknowledges loses power, again and again, on the in-memory
//! backend that keeps, drops or tears every unsynced page: every put its sync master
//! acknowledged `Ok` is still on it after recovery, and it resumes following the master.
//!
//! The slave's flush policy syncs only every 50 ms (a custom `Flusher`), so that the bytes of
//! the last puts are still unsynced for a while: a slave that acknowledged before its policy
//! held them would lose acknowledged puts here.

mod common;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqstore::flush::{Completion, FlushOutcome, FlushTarget, Flusher};
use parking_lot::Mutex;

use common::{body, fnv1a64};
use mqstore::replication::{ReplicationConfig, Role};
use mqstore::segment::sim::{SimBackend, SimDisk};
use mqstore::{FlushPolicy, Message, MessageStore, PutStatus, StoreConfig};

const SEGMENT: u64 = 32 * 1024;

fn repl() -> ReplicationConfig {
    ReplicationConfig::default()
        .heartbeat(Duration::from_millis(100), Duration::from_millis(1000))
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(100))
}

/// Syncs everything every 50 ms on its own thread, and only then reports the appends it covered
/// durable.
#[derive(Default)]
struct SlowSync {
    state: Arc<Mutex<SlowState>>,
}

#[derive(Default)]
struct SlowState {
    target: Option<Arc<dyn FlushTarget>>,
    waiting: Vec<(u64, Completion)>,
    stop: bool,
}

impl Flusher for SlowSync {
    fn start(&self, target: Arc<dyn FlushTarget>) -> io::Result<()> {
        let mut st = self.state.lock();
        st.target = Some(target);
        st.stop = false;
        let state = Arc::clone(&self.state);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(50));
                let (target, waiting) = {
                    let mut st = state.lock();
                    if st.stop {
                        return;
                    }
                    (st.target.clone(), std::mem::take(&mut st.waiting))
                };
                let Some(target) = target else { continue };
                let durable = target.flush(0).unwrap_or(0);
                let mut later = Vec::new();
                for (end, done) in waiting {
                    if end <= durable {
                        done.complete(FlushOutcome::Durable);
                    } else {
                        later.push((end, done));
                    }
                }
                state.lock().waiting.extend(later);
            }
        });
        Ok(())
    }

    fn after_append(&self, end_offset: u64) -> FlushOutcome {
        let target = self.state.lock().target.clone();
        match target.map(|t| t.flush(0)) {
            Some(Ok(durable)) if durable >= end_offset => FlushOutcome::Durable,
            _ => FlushOutcome::Failed,
        }
    }

    fn after_append_async(&self, end_offset: u64, done: Completion) {
        self.state.lock().waiting.push((end_offset, done));
    }

    fn stop(&self) {
        self.state.lock().stop = true;
    }
}

fn slave(dir: &Path, master: SocketAddr, disk: &SimDisk) -> MessageStore<SimBackend> {
    let config = StoreConfig::new(dir)
        .flush_policy(FlushPolicy::custom(SlowSync::default()))
        .commit_log_segment_size(SEGMENT)
        .consume_queue_units_per_segment(32)
        .index_size(64, 256)
        .checkpoint_interval(Duration::from_secs(3600))
        .role(Role::Slave { master })
        .replication(repl());
    MessageStore::open_with_backend(config, disk.backend()).expect("the slave opens after a power loss")
}

fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_sync_flushing_slave_keeps_every_acknowledged_put_through_power_losses() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master = MessageStore::open(
        StoreConfig::new(a.path())
            .commit_log_segment_size(SEGMENT)
            .consume_queue_units_per_segment(32)
            .role(Role::SyncMaster {
                timeout: Duration::from_secs(2),
            })
            .replication(repl().listen("127.0.0.1:0".parse().unwrap())),
    )
    .unwrap();
    let addr = master.replication_addr().unwrap();
    let disk = SimDisk::new();
    let mut acked: Vec<(u64, u64)> = Vec::new();
    let mut i = 0u64;
    for round in 0..8u64 {
        let s = slave(b.path(), addr, &disk);
        eventually("the slave is in sync", || master.in_sync_slaves() == 1);
        // Everything acknowledged so far survived the last power loss.
        eventually("the slave catches up", || {
            s.max_commit_log_offset() == master.max_commit_log_offset()
        });
        for &(offset, hash) in &acked {
            let m = s
                .read_at(offset)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: acknowledged put at {offset} lost"));
            assert_eq!(
                fnv1a64(m.body()),
                hash,
                "round {round}: acknowledged put at {offset} differs"
            );
        }
        // Puts in flight together, so they share the slave's slow syncs.
        let mut pending = Vec::new();
        for _ in 0..40 {
            let b = body(i, (i as usize * 211) % 2500);
            let p = master.put_async(Message::new("pl", (i % 3) as u32, b.clone())).unwrap();
            pending.push((i, p, fnv1a64(&b)));
            i += 1;
        }
        for (n, p, hash) in pending {
            let r = p.wait();
            assert_eq!(r.status, PutStatus::Ok, "round {round}, put {n}");
            acked.push((r.commit_log_offset, hash));
        }
        // A few more the slave may or may not get before the lights go out.
        for _ in 0..5 {
            drop(master.put_async(Message::new("pl", 0, body(i, 700))).unwrap());
            i += 1;
        }
        s.halt();
        drop(s);
        // So that the next round's check for a slave in sync sees the new one.
        eventually("the master notices the slave is gone", || master.in_sync_slaves() == 0);
        let lost = disk.power_loss(round.wrapping_mul(0x9E37_79B9) + 1);
        println!("round {round}: {lost:?}");
    }
    master.close().unwrap();
}
