//! The append path allocates nothing per message: the encoded record's buffer is reused by the
//! producer thread's next put. Counted with a global allocator that tallies the allocations of
//! the current thread; segment roll-overs may allocate a little, amortised over many puts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use mqstore::{FlushPolicy, Message, MessageStore, StoreConfig};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a plain thread-local cell.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(|c| c.get())
}

fn allocations_per_put(policy: FlushPolicy) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(
        StoreConfig::new(dir.path())
            .flush_policy(policy)
            .commit_log_segment_size(1 << 20),
    )
    .unwrap();
    const N: u64 = 2000;
    // Messages are built before counting: their topic, body and keys are the caller's.
    let make = |i: u64| {
        Message::new("alloc", (i % 4) as u32, vec![7u8; 1000])
            .with_tags("TagA")
            .with_keys(["order-1", "order-2"])
            .with_property("trace", "abc")
    };
    // Warm up: queues, thread-locals, the first segments.
    for i in 0..200 {
        store.put(make(i)).unwrap();
    }
    let msgs: Vec<Message> = (0..N).map(make).collect();
    let before = allocations();
    for m in msgs {
        store.put(m).unwrap();
    }
    let per_put = (allocations() - before) as f64 / N as f64;
    store.close().unwrap();
    per_put
}

#[test]
fn no_allocation_per_put_async() {
    // 1 MiB segments: a couple of roll-overs in the counted puts, each allowed a few allocations.
    let per_put = allocations_per_put(FlushPolicy::asynchronous());
    assert!(per_put < 0.01, "{per_put} allocations per put");
}

#[test]
fn no_allocation_per_put_sync() {
    let per_put = allocations_per_put(FlushPolicy::sync());
    assert!(per_put < 0.01, "{per_put} allocations per put");
}

/// A producer that refills one message and appends it with `put_ref` allocates nothing per put,
/// its own side included; every record holds the refill it was appended with.
#[test]
fn a_refilled_message_appended_by_reference_allocates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(
        StoreConfig::new(dir.path())
            .flush_policy(FlushPolicy::asynchronous())
            .commit_log_segment_size(1 << 20),
    )
    .unwrap();
    const N: u64 = 2000;
    let mut msg = Message::new("alloc", 0, Vec::with_capacity(64))
        .with_tags("TagA")
        .with_keys(["order-1"]);
    let mut put = |i: u64| {
        let body = msg.body_mut();
        body.clear();
        body.extend_from_slice(&i.to_le_bytes());
        body.extend_from_slice(b" refilled");
        msg.set_queue_id((i % 4) as u32);
        store.put_ref(&msg).unwrap()
    };
    for i in 0..200 {
        put(i);
    }
    let before = allocations();
    for i in 200..200 + N {
        put(i);
    }
    let per_put = (allocations() - before) as f64 / N as f64;
    assert!(per_put < 0.01, "{per_put} allocations per put");
    store.wait_dispatched(std::time::Duration::from_secs(10));
    for q in 0..4u32 {
        let got = store.get("alloc", q, 0, 1000).unwrap();
        assert_eq!(got.messages.len() as u64, (200 + N) / 4, "queue {q}");
        for (k, m) in got.messages.iter().enumerate() {
            let i = q as u64 + 4 * k as u64;
            assert_eq!(&m.body()[..8], i.to_le_bytes(), "queue {q} offset {k}");
            assert_eq!(&m.body()[8..], b" refilled");
            assert_eq!(m.tags(), Some("TagA"));
        }
    }
    store.close().unwrap();
}
