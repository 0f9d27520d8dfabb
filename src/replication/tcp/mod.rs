//! The built-in transport: plain TCP, std threads.
//!
//! Threads rather than an async runtime: a store has a handful of slaves at most, each
//! connection wants one thread streaming and one reading acknowledgements, and blocking sockets
//! keep the crate free of a runtime its embedder may not use. A slave is one thread.
//!
//! The protocol ([`frame`](super::frame)): the slave says `Hello` (its segment size, end and
//! last epoch); the master answers `Welcome` (its segment size, ends and epoch history); the
//! slave finds where the logs agree, truncates to it, and acknowledges its end; the master then
//! streams `Data` from there, and the slave acknowledges what it holds after every frame. Both
//! sides send `Heartbeat`s when idle and drop a peer they have not heard from within the
//! timeout; either side explains a deliberate close with `Refuse`.

mod master;
mod slave;

use std::io::{self, IoSlice, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use parking_lot::Mutex;

use super::frame::{self, Frame};
use super::{MasterLink, ReplicationHook, SlaveLink};

/// Why a side closed the connection, sent in a `Refuse` frame.
pub(crate) mod refuse {
    /// The peer broke the protocol (bad frame, unexpected kind, bad acknowledgement).
    pub(crate) const PROTOCOL: u16 = 1;
    /// The two stores' commit-log segment sizes differ.
    pub(crate) const SEGMENT_SIZE: u16 = 2;
    /// The logs have no point in common the slave can follow from.
    pub(crate) const DIVERGED: u16 = 3;
    /// Data that does not continue the slave's log, or is not valid.
    pub(crate) const BAD_DATA: u16 = 4;
    /// A local failure (I/O, the store closing).
    pub(crate) const LOCAL: u16 = 5;
}

/// What the running threads share with `stop`.
#[derive(Default)]
pub(crate) struct Running {
    pub(crate) stop: AtomicBool,
    /// Live connections, shut down at `stop` so that blocked threads return.
    conns: Mutex<Vec<(u64, TcpStream)>>,
    next_conn: std::sync::atomic::AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Running {
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Registers a connection for `stop` to shut down; returns its key.
    pub(crate) fn track(&self, stream: &TcpStream) -> io::Result<u64> {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let clone = stream.try_clone()?;
        let mut conns = self.conns.lock();
        if self.stopped() {
            let _ = clone.shutdown(Shutdown::Both);
        }
        conns.push((id, clone));
        Ok(id)
    }

    pub(crate) fn untrack(&self, id: u64) {
        self.conns.lock().retain(|(i, _)| *i != id);
    }

    pub(crate) fn spawn(self: &Arc<Self>, name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let handle = std::thread::Builder::new().name(name.into()).spawn(f)?;
        let mut threads = self.threads.lock();
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
        Ok(())
    }
}

/// The built-in TCP transport. A master serves slaves on
/// [`ReplicationConfig::listen`](super::ReplicationConfig::listen); a slave connects to its
/// master, reconnecting with backoff after a drop.
#[derive(Default)]
pub struct TcpReplication {
    running: Mutex<Option<Arc<Running>>>,
}

impl TcpReplication {
    /// A transport that has not started.
    pub fn new() -> Self {
        Self::default()
    }

    fn begin(&self) -> Arc<Running> {
        let mut running = self.running.lock();
        let r = Arc::new(Running::default());
        *running = Some(Arc::clone(&r));
        r
    }
}

impl ReplicationHook for TcpReplication {
    fn start_master(&self, link: MasterLink) -> io::Result<()> {
        self.stop();
        let Some(addr) = link.config().listen else {
            return Ok(());
        };
        let running = self.begin();
        master::listen(running, link, addr)
    }

    fn start_slave(&self, link: SlaveLink) -> io::Result<()> {
        self.stop();
        let running = self.begin();
        let r = Arc::clone(&running);
        running.spawn("mqstore-repl-slave", move || slave::run(&r, &link))
    }

    fn stop(&self) {
        let Some(running) = self.running.lock().take() else {
            return;
        };
        running.stop.store(true, Ordering::Release);
        for (_, conn) in running.conns.lock().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
        // Threads may start others (the accept loop, connections) until they see `stop`.
        loop {
            let threads: Vec<_> = running.threads.lock().drain(..).collect();
            if threads.is_empty() {
                break;
            }
            for t in threads {
                let _ = t.join();
            }
        }
    }
}

impl Drop for TcpReplication {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes all of `parts` with as few system calls as the socket takes.
pub(crate) fn write_parts(stream: &mut TcpStream, parts: &[&[u8]]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| IoSlice::new(p))
        .collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        let n = stream.write_vectored(slices)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "connection closed while writing",
            ));
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// Encodes and writes one frame.
pub(crate) fn send(stream: &mut TcpStream, f: &Frame<'_>, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    frame::encode(f, buf);
    stream.write_all(buf)
}

/// Tells the peer why we close, then closes; errors are moot at that point.
pub(crate) fn refuse(stream: &mut TcpStream, code: u16, reason: &str) {
    let reason: String = reason.chars().take(256).collect();
    let mut buf = Vec::new();
    let _ = send(stream, &Frame::Refuse { code, reason: &reason }, &mut buf);
    let _ = stream.shutdown(Shutdown::Both);
}
