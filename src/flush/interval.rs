//! Asynchronous flush on an interval (RocketMQ's FlushRealTimeService).

use std::io;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use super::{AsyncFlush, FlushOutcome, FlushTarget, Flusher};
use crate::service::Periodic;

/// Flushes in the background every interval when enough pages are dirty, and everything every
/// thorough interval. Puts never wait.
pub struct IntervalFlush {
    settings: AsyncFlush,
    service: Mutex<Option<Periodic>>,
}

impl IntervalFlush {
    /// A flusher with these settings.
    pub fn new(settings: AsyncFlush) -> Self {
        IntervalFlush {
            settings,
            service: Mutex::new(None),
        }
    }
}

impl Flusher for IntervalFlush {
    fn start(&self, target: Arc<dyn FlushTarget>) -> io::Result<()> {
        let mut service = self.service.lock();
        if service.is_some() {
            return Err(io::Error::other("interval flush already started"));
        }
        let settings = self.settings;
        let mut last_thorough = Instant::now();
        *service = Some(Periodic::spawn("mqstore-flush", settings.interval, move || {
            let least = if last_thorough.elapsed() >= settings.thorough_interval {
                last_thorough = Instant::now();
                0
            } else {
                settings.least_pages
            };
            if let Err(e) = target.flush(least) {
                tracing::error!(error = %e, "background commit-log flush failed");
            }
        })?);
        Ok(())
    }

    fn after_append(&self, _end_offset: u64) -> FlushOutcome {
        FlushOutcome::NotAwaited
    }

    fn stop(&self) {
        if let Some(service) = self.service.lock().take() {
            service.stop();
        }
    }

    fn awaits_durability(&self) -> bool {
        false
    }
}
