//! Allocation ahead of need (RocketMQ's AllocateMappedFileService): while the commit log
//! writes one segment, a background thread creates and maps the next, so that a roll-over under
//! the append lock only installs a ready segment. Warm-up (faulting the pages in) runs on a
//! thread of its own, at the lowest priority, *after* the segment is handed over: ahead of the
//! writer instead of making it wait, 4 MiB at a time and no further ahead than writeback allows
//! (see [`WARM_AHEAD_MIN`]). Preparing the next segment never waits for it.
//!
//! Segments retention took out of the log wait in a small recycle bin (`recycled/`, beside
//! `commitlog/`): the next segment is then the oldest one's file renamed, with its blocks already
//! allocated and written and its pages most likely still cached, instead of a new file whose
//! every page must be provisioned again (see `docs/format.md` on what a recycled file holds).
//!
//! With zero-fill on, the thread also writes each new segment's zeros to disk before
//! handing it over, at idle I/O priority. That is an optimisation only (the file already reads
//! as zeros): when the writer needs the segment before its zeros are all written, the fill stops
//! at the next chunk and the writer takes the segment as it is.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, IoContext, Result};
use crate::segment::{Backend, Segment, SegmentQueue, segment_name};

struct State<S: crate::segment::Storage> {
    /// Start offset of the segment wanted next.
    wanted: Option<u64>,
    /// Start offset being prepared right now.
    busy: Option<u64>,
    /// The writer waits for the segment being prepared: stop zero-filling it.
    hurry: bool,
    /// Prepared segments handed to the warm-up thread, oldest first.
    to_warm: VecDeque<Arc<Segment<S>>>,
    /// The warm-up thread has pages to warm now (not merely waiting for the writer to come closer).
    warming: bool,
    /// A prepared segment (or why preparing it failed).
    ready: Option<(u64, Result<Arc<Segment<S>>>)>,
    stop: bool,
}

struct Shared<B: Backend> {
    state: Mutex<State<B::Storage>>,
    cv: Condvar,
    segments: Arc<SegmentQueue<B>>,
    warm_up: bool,
    zero_fill: bool,
    bin: RecycleBin<B::Storage>,
    /// Bytes of the file system a new file must leave available.
    reserved_space: u64,
    /// Segment files created since open.
    created: AtomicU64,
    /// How far ahead of the writer warm-up may run, in bytes; 0: [`warm_window`], looked at
    /// again for every segment. Tests set it.
    warm_ahead: AtomicU64,
}

impl<B: Backend> Shared<B> {
    /// A new segment file, unless it would eat into the reserve (see [`check_reserve`]).
    fn create(&self, start: u64) -> Result<Segment<B::Storage>> {
        let size = self.segments.segment_size();
        check_reserve(self.segments.dir(), self.reserved_space, size, start)?;
        let segment = self.segments.prepare(start, false)?;
        self.created.fetch_add(1, Ordering::Relaxed);
        Ok(segment)
    }
}

/// Bytes available to the store on the file system holding `dir`.
fn available_space(dir: &Path) -> std::io::Result<u64> {
    // The reserve used up, for the commit log only (tests/failpoints.rs).
    fail::fail_point!("commit-log-reserve", |_| Ok(0));
    fs4::available_space(dir)
}

/// Fails with [`Error::DiskFull`] when the file system holding `dir` has less than `reserved`
/// bytes available beyond the `extra` about to be taken: the consume queues and the index need
/// room to follow the log, and a log that took the last bytes would leave the dispatcher unable
/// to create their files (and retention, which waits for the dispatcher, unable to free any).
pub(crate) fn check_reserve(dir: &Path, reserved: u64, extra: u64, start: u64) -> Result<()> {
    if reserved == 0 {
        return Ok(());
    }
    match available_space(dir) {
        Ok(available) if available < reserved.saturating_add(extra) => Err(Error::DiskFull {
            path: dir.join(segment_name(start)),
            source: std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!("{available} bytes available, {reserved} kept for consume-queue and index files"),
            ),
        }),
        // A directory not created yet, or a file system that cannot say: no check.
        _ => Ok(()),
    }
}

/// Retired segments kept for reuse, in their own directory under their old names.
struct RecycleBin<S: crate::segment::Storage> {
    dir: PathBuf,
    capacity: usize,
    segments: Mutex<Vec<Segment<S>>>,
    /// Segments on their way in (being renamed).
    incoming: AtomicUsize,
    /// Segments handed out again, since open.
    reused: AtomicU64,
}

/// Prepares the next segment of a queue in the background.
pub struct Preallocator<B: Backend> {
    shared: Arc<Shared<B>>,
    /// The allocation thread, and the warm-up thread with warm-up on.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl<B: Backend> Preallocator<B> {
    /// Starts the allocation thread for `segments`; `warm_up` and `zero_fill` as the store's
    /// configuration says. `bin_dir`: where up to `recycle` retired segments wait for reuse;
    /// files left there by an earlier run are taken back (if they have the segment size) or
    /// removed.
    pub fn start(
        segments: Arc<SegmentQueue<B>>,
        warm_up: bool,
        zero_fill: bool,
        bin_dir: &Path,
        recycle: usize,
        reserved_space: u64,
    ) -> Result<Self> {
        let bin = RecycleBin::open(&segments, bin_dir, recycle)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                wanted: None,
                busy: None,
                hurry: false,
                to_warm: VecDeque::new(),
                warming: false,
                ready: None,
                stop: false,
            }),
            cv: Condvar::new(),
            segments,
            warm_up,
            zero_fill,
            bin,
            reserved_space,
            created: AtomicU64::new(0),
            warm_ahead: AtomicU64::new(0),
        });
        let pre = Preallocator {
            shared: Arc::clone(&shared),
            threads: Mutex::new(Vec::new()),
        };
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("mqstore-allocate".into())
            .spawn(move || {
                crate::segment::lower_thread_priority();
                run(&s)
            })
            .at(bin_dir)?;
        pre.threads.lock().push(thread);
        if warm_up {
            let s = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name("mqstore-warm-up".into())
                .spawn(move || {
                    crate::segment::lowest_thread_priority();
                    warm(&s)
                });
            match spawned {
                Ok(thread) => pre.threads.lock().push(thread),
                Err(e) => {
                    pre.stop(true);
                    return Err(e).at(bin_dir);
                }
            }
        }
        Ok(pre)
    }

    /// Asks for the segment starting at `start` to be prepared.
    pub fn request(&self, start: u64) {
        let mut state = self.shared.state.lock();
        if state.busy == Some(start) || state.ready.as_ref().is_some_and(|r| r.0 == start) {
            return;
        }
        state.wanted = Some(start);
        self.shared.cv.notify_all();
    }

    /// Takes the prepared segment starting at `start`, waiting if it is being prepared. `None`
    /// when nothing was prepared for it: the caller creates it itself.
    pub fn take(&self, start: u64) -> Option<Result<Arc<Segment<B::Storage>>>> {
        let mut state = self.shared.state.lock();
        if state.wanted == Some(start) {
            state.wanted = None;
        }
        while state.busy == Some(start) {
            state.hurry = true;
            self.shared.cv.wait(&mut state);
        }
        match state.ready.take() {
            Some((s, segment)) if s == start => Some(segment),
            Some((_, stale)) => {
                discard(&self.shared.segments, stale);
                None
            }
            None => None,
        }
    }

    /// Keeps a retired segment for reuse, renaming its file into the bin. Gives it back when the
    /// bin is full or recycling is off: the caller removes its file.
    pub fn recycle(&self, segment: Segment<B::Storage>) -> Result<Option<Segment<B::Storage>>> {
        let bin = &self.shared.bin;
        {
            let held = bin.segments.lock();
            if held.len() + bin.incoming.load(Ordering::Acquire) >= bin.capacity {
                return Ok(Some(segment));
            }
            bin.incoming.fetch_add(1, Ordering::AcqRel);
        }
        // The rename syncs the directory, which waits behind writeback: not under the bin's
        // lock, which the allocation thread (and a writer with nothing prepared) takes.
        let kept = (|| {
            let backend = self.shared.segments.backend();
            backend.create_dir_all(&bin.dir).at(&bin.dir)?;
            let to = bin.dir.join(segment_name(segment.start()));
            let from = segment.path().to_path_buf();
            backend.rename(&from, &to).at(&from)?;
            match segment.recycle(0, to.clone()) {
                Some(segment) => Ok(Some(segment)),
                None => backend.remove(&to).at(&to).map(|()| None),
            }
        })();
        let mut held = bin.segments.lock();
        bin.incoming.fetch_sub(1, Ordering::AcqRel);
        if let Some(segment) = kept? {
            held.push(segment);
        }
        Ok(None)
    }

    /// Segment files created since open.
    pub fn created(&self) -> u64 {
        self.shared.created.load(Ordering::Relaxed)
    }

    /// Segments in the bin now, and segments reused since open.
    pub fn recycled(&self) -> (usize, u64) {
        let bin = &self.shared.bin;
        (bin.segments.lock().len(), bin.reused.load(Ordering::Relaxed))
    }

    /// Makes the segment at `start` now, on the caller's thread: from the bin if it holds one,
    /// else a new file (no warm-up: the writer is waiting).
    pub fn prepare_now(&self, start: u64) -> Result<Arc<Segment<B::Storage>>> {
        if let Some(segment) = self.shared.bin.take(&self.shared.segments, start)? {
            return Ok(Arc::new(segment));
        }
        Ok(Arc::new(self.shared.create(start)?))
    }

    /// Waits until the thread has nothing in progress: every requested segment created (and
    /// warmed, if warm-up is on). `false` on timeout.
    pub fn wait_idle(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut state = self.shared.state.lock();
        while !state.stop
            && ((state.wanted.is_some() && state.ready.is_none()) || state.busy.is_some() || state.warming)
        {
            if self.shared.cv.wait_until(&mut state, deadline).timed_out() {
                return false;
            }
        }
        true
    }

    /// Stops the thread; with `discard`, removes a prepared, never-used segment file (a crash
    /// simulation leaves it, as a real crash would).
    pub fn stop(&self, discard_unused: bool) {
        {
            let mut state = self.shared.state.lock();
            state.stop = true;
            state.hurry = true;
            state.wanted = None;
            self.shared.cv.notify_all();
        }
        for t in std::mem::take(&mut *self.threads.lock()) {
            let _ = t.join();
        }
        if let Some((_, unused)) = self.shared.state.lock().ready.take()
            && discard_unused
        {
            discard(&self.shared.segments, unused);
        }
    }
}

/// Removes the file of a prepared segment that will not be used, so it does not linger past the
/// end of the log.
fn discard<B: Backend>(segments: &SegmentQueue<B>, segment: Result<Arc<Segment<B::Storage>>>) {
    if let Ok(segment) = segment {
        let path = segment.path().to_path_buf();
        drop(segment);
        if let Err(e) = segments.backend().remove(&path) {
            tracing::warn!(path = %path.display(), error = %e, "could not remove an unused preallocated segment");
        }
    }
}

/// Warm-up works through a segment this much at a time: between two chunks it looks at the
/// writer again, and at whether the store is stopping. Small, because each chunk's `madvise`
/// holds the process's mmap lock (for reading), which mapping a file elsewhere waits for.
const WARM_CHUNK: u64 = 4 << 20;

/// Warm-up stays ahead of the writer by at most half of what the kernel lets the page cache hold
/// dirty before its background writeback starts (see [`warm_window`]), and never less than this.
/// Warmed pages are dirty zeros: two whole warmed 1 GiB segments crossed that threshold, and
/// writeback then cleaned pages the writer had not reached yet, so that the writer took a
/// write-protect fault on them after all (about one put in 80 in the bench) and the disk wrote
/// zeros that were rewritten moments later. At a few GB/s the writer takes tens of milliseconds
/// to cross even this smallest window.
const WARM_AHEAD_MIN: u64 = 64 << 20;

/// How far ahead of the writer warm-up may run (see [`WARM_AHEAD_MIN`]). As far as writeback
/// allows, rather than just far enough: where first touching a page is slow (on a virtual
/// machine whose host backs guest memory only when it is first used, 3 s per GiB against 0.2 s
/// here), the writer must not catch up with the warm-up.
fn warm_window() -> u64 {
    writeback_threshold().map_or(WARM_AHEAD_MIN, |t| (t / 2).max(WARM_AHEAD_MIN))
}

/// Dirty page-cache bytes above which Linux starts writing back in the background:
/// `dirty_background_bytes`, or `dirty_background_ratio` percent of the available memory.
#[cfg(target_os = "linux")]
fn writeback_threshold() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let bytes: u64 = read("/proc/sys/vm/dirty_background_bytes")?.trim().parse().ok()?;
    if bytes > 0 {
        return Some(bytes);
    }
    let ratio: u64 = read("/proc/sys/vm/dirty_background_ratio")?.trim().parse().ok()?;
    let meminfo = read("/proc/meminfo")?;
    let available_kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(available_kib.saturating_mul(1024) / 100 * ratio)
}

#[cfg(not(target_os = "linux"))]
fn writeback_threshold() -> Option<u64> {
    None
}

/// How often a paced warm-up looks at the writer's position while the writer moves; it backs off
/// to [`WARM_POLL_IDLE`] while the writer stands still, so an idle store's thread sleeps.
const WARM_POLL: std::time::Duration = std::time::Duration::from_millis(1);
const WARM_POLL_IDLE: std::time::Duration = std::time::Duration::from_millis(16);

fn run<B: Backend>(shared: &Shared<B>) {
    let wanted = |state: &State<B::Storage>| state.wanted.is_some() && state.ready.is_none();
    let mut state = shared.state.lock();
    loop {
        while !state.stop && !wanted(&state) {
            shared.cv.wait(&mut state);
        }
        if state.stop {
            return;
        }
        let Some(start) = state.wanted.take() else {
            continue;
        };
        state.busy = Some(start);
        state.hurry = false;
        drop(state);
        let prepared = prepare(shared, start);
        state = shared.state.lock();
        state.busy = None;
        if shared.warm_up
            && let Ok(segment) = &prepared
        {
            state.to_warm.push_back(Arc::clone(segment));
            state.warming = true;
        }
        state.ready = Some((start, prepared));
        shared.cv.notify_all();
    }
}

/// The warm-up thread: warms the segments handed over, oldest first, a chunk at a time, staying
/// within the window ahead of the writer. It runs at the lowest priority (see
/// [`lowest_thread_priority`](crate::segment::lowest_thread_priority)): it only ever saves the
/// writer faults it would otherwise take itself, so it must not take the CPU from a producer.
fn warm<B: Backend>(shared: &Shared<B>) {
    // The segment being warmed, and how far.
    let mut current: Option<(Arc<Segment<B::Storage>>, u64)> = None;
    // The last segment warmed to its end: the writer is still in it until it is full.
    let mut behind: Option<Arc<Segment<B::Storage>>> = None;
    // While warm-up waits for the writer: where the writer was last seen, and the next look's delay.
    let mut paced: Option<(u64, std::time::Duration)> = None;
    let window_now = || match shared.warm_ahead.load(Ordering::Relaxed) {
        0 => warm_window(),
        fixed => fixed,
    };
    let mut window = window_now();
    let mut state = shared.state.lock();
    loop {
        if state.stop {
            return;
        }
        if current.is_none() {
            match state.to_warm.pop_front() {
                Some(segment) => {
                    // Memory comes and goes: the window follows it, a segment at a time.
                    window = window_now();
                    current = Some((segment, 0));
                }
                None => {
                    if state.warming {
                        state.warming = false;
                        shared.cv.notify_all();
                    }
                    shared.cv.wait(&mut state);
                    continue;
                }
            }
        }
        let Some((segment, at)) = current.as_mut() else {
            continue;
        };
        // The writer's offset: in the segment warmed last while that one has room, else here.
        let writer_at = match &behind {
            Some(last) if !last.is_full() => last.start() + last.readable(),
            _ => segment.start() + segment.readable(),
        };
        if !segment.is_full() && segment.start() + *at >= writer_at.saturating_add(window) {
            // Far enough ahead: nothing is in progress until the writer comes closer.
            let delay = match paced {
                Some((seen, delay)) if seen == writer_at => (delay * 2).min(WARM_POLL_IDLE),
                _ => WARM_POLL,
            };
            paced = Some((writer_at, delay));
            if state.warming {
                state.warming = false;
                shared.cv.notify_all();
            }
            // Woken early by a stop (or spuriously): the loop looks again either way.
            let _ = shared.cv.wait_for(&mut state, delay);
            continue;
        }
        paced = None;
        state.warming = true;
        drop(state);
        // A full segment is behind the writer: warming the rest of it would be wasted.
        let done = if segment.is_full() {
            true
        } else {
            // Tests count and slow the chunks here (tests below).
            fail::fail_point!("allocate-warm-chunk");
            let len = WARM_CHUNK.min(segment.size() - *at);
            if let Err(e) = segment.warm_up_range(*at, len) {
                tracing::warn!(start = segment.start(), error = %e, "warming up a segment failed");
                *at = segment.size();
            } else {
                *at += len;
            }
            *at >= segment.size()
        };
        if done {
            behind = current.take().map(|(segment, _)| segment);
        }
        state = shared.state.lock();
    }
}

/// The segment at `start`: the oldest one of the bin renamed, or a new file (zero-filled if
/// asked, until the writer hurries it).
fn prepare<B: Backend>(shared: &Shared<B>, start: u64) -> Result<Arc<Segment<B::Storage>>> {
    let recycled = shared.bin.take(&shared.segments, start);
    let fresh = matches!(recycled, Ok(None));
    let prepared = match recycled {
        Ok(Some(segment)) => Ok(segment),
        Ok(None) => shared.create(start),
        Err(e) => Err(e),
    };
    let prepared = prepared.map(|mut segment| {
        // A recycled file's blocks are written already: nothing for zero-fill to do.
        if shared.zero_fill && fresh {
            let hurry = || shared.state.lock().hurry;
            match segment.write_zeros(&hurry) {
                Ok(true) => {}
                Ok(false) => tracing::debug!(start, "zero-fill cut short: the writer needs the segment"),
                Err(e) => tracing::warn!(start, error = %e, "zero-filling a segment failed; it is used as it is"),
            }
        }
        Arc::new(segment)
    });
    if let Err(e) = &prepared {
        tracing::warn!(start, error = %e, "preallocating the next segment failed; the roll-over will retry");
    }
    prepared
}

impl<S: crate::segment::Storage> RecycleBin<S> {
    fn open<B: Backend<Storage = S>>(segments: &SegmentQueue<B>, dir: &Path, capacity: usize) -> Result<Self> {
        let backend = segments.backend();
        let mut held = Vec::new();
        for (name, len) in backend.list(dir).at(dir)? {
            let path = dir.join(&name);
            if held.len() < capacity && len == segments.segment_size() && !name.starts_with('.') {
                let storage = backend.open(&path).at(&path)?;
                held.push(Segment::new(storage, 0, path, 0));
            } else {
                backend.remove(&path).at(&path)?;
            }
        }
        Ok(RecycleBin {
            dir: dir.to_path_buf(),
            capacity,
            segments: Mutex::new(held),
            incoming: AtomicUsize::new(0),
            reused: AtomicU64::new(0),
        })
    }

    /// A segment from the bin, renamed to be the one at `start` of `segments`; `None` when the
    /// bin is empty.
    fn take<B: Backend<Storage = S>>(&self, segments: &SegmentQueue<B>, start: u64) -> Result<Option<Segment<S>>> {
        let Some(segment) = self.segments.lock().pop() else {
            return Ok(None);
        };
        let from = segment.path().to_path_buf();
        let to = segments.dir().join(segment_name(start));
        let backend = segments.backend();
        backend.create_dir_all(segments.dir()).at(segments.dir())?;
        backend.rename(&from, &to).at(&from)?;
        self.reused.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(start, "segment recycled");
        Ok(segment.recycle(start, to))
    }
}

#[cfg(all(test, feature = "failpoints"))]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    use super::*;
    use crate::segment::{MmapBackend, SizeRule};

    const SIZE: u64 = 4 * WARM_CHUNK;

    /// A writer that reaches the end of its segment while that segment is still warming must
    /// find the next one prepared, not create it on its own thread under the append lock.
    #[test]
    fn a_segment_wanted_while_another_warms_is_prepared_without_waiting_for_the_warm_up() {
        let scenario = fail::FailScenario::setup();
        let chunks = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&chunks);
        fail::cfg_callback("allocate-warm-chunk", move || {
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let segments = Arc::new(
            SegmentQueue::open(Arc::new(MmapBackend), &dir.path().join("log"), SizeRule::Exactly(SIZE)).unwrap(),
        );
        let pre = Preallocator::start(segments, true, false, &dir.path().join("bin"), 0, 0).unwrap();
        // How many warm-up chunks had begun when the segment at `start` was ready to take.
        let ready = |start: u64| loop {
            let state = pre.shared.state.lock();
            if state.ready.as_ref().is_some_and(|r| r.0 == start) {
                break chunks.load(Ordering::SeqCst);
            }
            drop(state);
            std::thread::sleep(Duration::from_millis(5));
        };
        pre.request(0);
        ready(0);
        let first = pre.take(0).expect("prepared by the thread").unwrap();
        // The thread now warms the first segment, a chunk at a time; the writer wants the next.
        pre.request(SIZE);
        let ready_after = ready(SIZE);
        assert!(
            ready_after < SIZE / WARM_CHUNK,
            "the next segment came after {ready_after} chunks of the first one's warm-up"
        );
        let next = pre.take(SIZE).expect("prepared by the thread").unwrap();
        assert_eq!((first.start(), next.start()), (0, SIZE));
        assert!(pre.wait_idle(Duration::from_secs(30)), "the warm-ups end");
        pre.stop(true);
        scenario.teardown();
    }

    /// Warm-up keeps to a window ahead of the writer: it stops there while the writer stands
    /// still (and counts as idle), and follows the writer as it moves.
    #[test]
    fn warm_up_stays_a_window_ahead_of_the_writer() {
        let scenario = fail::FailScenario::setup();
        let chunks = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&chunks);
        fail::cfg_callback("allocate-warm-chunk", move || {
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let window = 4 * WARM_CHUNK;
        let size = 6 * WARM_CHUNK;
        let dir = tempfile::tempdir().unwrap();
        let segments = Arc::new(
            SegmentQueue::open(Arc::new(MmapBackend), &dir.path().join("log"), SizeRule::Exactly(size)).unwrap(),
        );
        let pre = Preallocator::start(segments, true, false, &dir.path().join("bin"), 0, 0).unwrap();
        pre.shared.warm_ahead.store(window, Ordering::Relaxed);
        pre.request(0);
        assert!(pre.wait_idle(Duration::from_secs(30)));
        let first = pre.take(0).expect("prepared by the thread").unwrap();
        // Counts the chunks warmed once the thread has settled: `wait_idle` returns as soon
        // as it waits for the writer, but it only notices a moved writer at its next look.
        let settled = |expected: u64| {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while chunks.load(Ordering::SeqCst) < expected && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            assert!(pre.wait_idle(Duration::from_secs(30)));
            // Long enough for several looks at a writer that stands still.
            std::thread::sleep(WARM_POLL_IDLE * 4);
            chunks.load(Ordering::SeqCst)
        };
        assert_eq!(settled(4), 4, "a writer at 0 has one window warmed ahead of it");
        let mut writer = first.claim_writer().unwrap();
        writer.write(&vec![1u8; (3 * WARM_CHUNK) as usize]);
        writer.publish();
        assert_eq!(settled(6), 6, "the window moved with the writer, to the segment's end");
        // The window reaches into the next segment, counted from the writer in this one.
        pre.request(size);
        assert!(pre.wait_idle(Duration::from_secs(30)));
        let next = pre.take(size).expect("prepared by the thread").unwrap();
        assert_eq!(settled(7), 7, "one chunk of the next segment is within the window");
        writer.write(&vec![1u8; (2 * WARM_CHUNK) as usize]);
        writer.publish();
        assert_eq!(settled(9), 9, "and two more once the writer moved two chunks on");
        assert_eq!(next.start(), size);
        pre.stop(true);
        scenario.teardown();
    }
}
