//! Asynchronous flush through write buffers (RocketMQ's transient store pool with its
//! CommitRealTimeService and FlushRealTimeService).

use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{BufferedFlush, FlushOutcome, FlushTarget, Flusher, IntervalFlush};
use crate::service::Periodic;

/// Commits write buffers into the files every commit interval, and flushes the files as
/// [`IntervalFlush`] does. Puts never wait.
pub struct WriteBufferFlush {
    commit_interval: std::time::Duration,
    committer: Mutex<Option<Periodic>>,
    flusher: IntervalFlush,
}

impl WriteBufferFlush {
    /// A flusher with these settings.
    pub fn new(settings: BufferedFlush) -> Self {
        WriteBufferFlush {
            commit_interval: settings.commit_interval,
            committer: Mutex::new(None),
            flusher: IntervalFlush::new(settings.flush),
        }
    }
}

impl Flusher for WriteBufferFlush {
    fn start(&self, target: Arc<dyn FlushTarget>) -> io::Result<()> {
        let mut committer = self.committer.lock();
        if committer.is_some() {
            return Err(io::Error::other("buffered flush already started"));
        }
        let t = Arc::clone(&target);
        *committer = Some(Periodic::spawn("mqstore-commit", self.commit_interval, move || {
            t.commit();
        })?);
        self.flusher.start(target)
    }

    fn after_append(&self, _end_offset: u64) -> FlushOutcome {
        FlushOutcome::NotAwaited
    }

    fn stop(&self) {
        if let Some(c) = self.committer.lock().take() {
            c.stop();
        }
        self.flusher.stop();
    }

    fn awaits_durability(&self) -> bool {
        false
    }
}
