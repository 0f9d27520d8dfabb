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
