//! A hiccup meter, after jHiccup: a thread that asks to sleep a millisecond, again and again,
//! and records how late it wakes. It does none of the store's work, so its lateness is how long
//! the machine (the scheduler, the hypervisor) kept a runnable thread from running during the
//! run. A put cannot be faster than that: the bench reports the meter's worst beside the worst
//! put, so that a tail set by the machine is told apart from one set by the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// How long the meter asks to sleep each time.
const TICK: Duration = Duration::from_millis(1);

/// A running meter; [`stop`](HiccupMeter::stop) it to read it.
pub struct HiccupMeter {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Histogram<u64>>,
}

impl HiccupMeter {
    /// Starts the meter's thread.
    pub fn start() -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("bench-hiccups".to_string())
            .spawn(move || {
                let mut late = super::new_histogram();
                while !stopping.load(Ordering::Relaxed) {
                    let asked = Instant::now();
                    std::thread::sleep(TICK);
                    let overslept = asked.elapsed().saturating_sub(TICK);
                    late.saturating_record(overslept.as_nanos().max(1) as u64);
                }
                late
            })?;
        Ok(HiccupMeter { stop, thread })
    }

    /// Stops the meter: how late, in nanoseconds, each of its wake-ups came.
    pub fn stop(self) -> Histogram<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_else(|_| super::new_histogram())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_wakes_about_once_a_millisecond_and_records_each_wake_up() {
        let meter = HiccupMeter::start().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let late = meter.stop();
        // At most one wake-up per millisecond asked for (fewer on a loaded machine, but some).
        assert!(
            late.len() >= 2 && late.len() <= 101,
            "{} wake-ups in 100 ms",
            late.len()
        );
    }
}
