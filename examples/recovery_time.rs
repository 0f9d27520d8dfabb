//! How long recovery takes: fills a store with 1 KiB messages, stops it as a crash would, and
//! times the opens — crash recovery from the checkpoint, crash recovery with the checkpoint
//! removed (every record CRC-checked from the first segment), a clean reopen, and clean reopens
//! after the derived files were deleted: the consume queues, then the index, rebuilt from the
//! whole log (the rebuild rate, in MB of commit log per second).
//!
//! `cargo run --release --example recovery_time -- [GiB, default 1] [DIR]`

use std::time::{Duration, Instant};

use mqstore::{Message, MessageStore, StoreConfig};

fn main() -> mqstore::Result<()> {
    let mut args = std::env::args().skip(1);
    let gib: f64 = args.next().map_or(1.0, |a| a.parse().expect("GiB"));
    let tmp = tempfile::tempdir_in(std::env::temp_dir()).expect("tempdir");
    let dir = args.next().map_or_else(|| tmp.path().to_path_buf(), Into::into);
    let config = || StoreConfig::new(&dir).commit_log_segment_size(256 << 20);

    let store = MessageStore::open(config())?;
    let n = (gib * (1u64 << 30) as f64 / 1130.0) as u64;
    let body = vec![0x5Au8; 1024];
    let t = Instant::now();
    for i in 0..n {
        store.put(Message::new("recovery", (i % 16) as u32, body.clone()).with_tags("TagA"))?;
    }
    assert!(store.wait_dispatched(Duration::from_secs(60)));
    let bytes = store.max_commit_log_offset();
    println!(
        "wrote {n} messages, {:.2} GiB, in {:.1} s",
        bytes as f64 / (1u64 << 30) as f64,
        t.elapsed().as_secs_f64()
    );
    // Let one checkpoint pass, as a running store would have written one within the last second.
    std::thread::sleep(Duration::from_millis(1100));
    store.halt();
    drop(store);

    let timed_open = |label: &str| -> mqstore::Result<MessageStore> {
        let t = Instant::now();
        let store = MessageStore::open(config())?;
        let secs = t.elapsed().as_secs_f64();
        let r = store.recovery_report();
        println!(
            "{label}: {:.3} s; start rule: {}; scanned {} records, {:.1} MiB ({:.0} MB/s); log end {}",
            secs,
            r.start_rule,
            r.records_checked,
            r.bytes_scanned as f64 / (1u64 << 20) as f64,
            r.bytes_scanned as f64 / secs / 1e6,
            r.log_end
        );
        Ok(store)
    };
    let store = timed_open("crash recovery, checkpoint")?;
    store.halt();
    drop(store);
    std::fs::remove_file(dir.join("checkpoint")).expect("remove checkpoint");
    let store = timed_open("crash recovery, no checkpoint (full CRC scan)")?;
    store.close()?;
    drop(store);
    let store = timed_open("clean reopen")?;
    assert_eq!(store.max_commit_log_offset(), bytes);
    store.close()?;
    drop(store);
    for (what, path) in [("consume queues", "consumequeue"), ("index", "index")] {
        std::fs::remove_dir_all(dir.join(path)).expect("remove a derived directory");
        let t = Instant::now();
        let store = MessageStore::open(config())?;
        let secs = t.elapsed().as_secs_f64();
        let r = store.recovery_report();
        println!(
            "{what} deleted, rebuilt at open: {secs:.3} s, {:.0} MB of commit log per second; queues rebuilt {}",
            bytes as f64 / secs / 1e6,
            r.queues_rebuilt.len()
        );
        assert_eq!(store.max_offset("recovery", 0), n.div_ceil(16));
        store.close()?;
    }
    Ok(())
}
