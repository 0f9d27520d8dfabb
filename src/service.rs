//! A background thread that runs a task on an interval until stopped.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// A named thread calling a task every interval; stopping wakes it at once.
pub(crate) struct Periodic {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Periodic {
    /// Starts `tick` every `interval` on a thread called `name`.
    pub(crate) fn spawn(name: &str, interval: Duration, mut tick: impl FnMut() + Send + 'static) -> io::Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let s = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || {
            loop {
                {
                    let mut stopped = s.0.lock();
                    if !*stopped {
                        s.1.wait_for(&mut stopped, interval);
                    }
                    if *stopped {
                        return;
                    }
                }
                tick();
            }
        })?;
        Ok(Periodic {
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Stops the thread and waits for it; later calls do nothing.
    pub(crate) fn stop(&self) {
        {
            let mut stopped = self.stop.0.lock();
            *stopped = true;
            self.stop.1.notify_all();
        }
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}
