//! The slave's side: connect, agree with the master on where the logs meet, take its bytes,
//! acknowledge them; reconnect with backoff after a drop.

use std::net::TcpStream;
use std::sync::{Arc, mpsc};

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use super::master::is_timeout;
use super::{Running, refuse, send};
use crate::error::Error;
use crate::replication::frame::{Frame, FrameReader, ProtocolError};
use crate::replication::{PendingHold, SlaveLink};

/// How a session ended.
enum End {
    /// The connection went away (or never came): retry soon.
    Dropped(String),
    /// This side refused what the master sent or is: retry after the longest backoff.
    Refused(String),
}

/// Follows the master until `running` stops.
pub(super) fn run(running: &Running, link: &SlaveLink) {
    let cfg = link.config().clone();
    let mut backoff = cfg.reconnect_min;
    while !running.stopped() {
        let started = Instant::now();
        let end = session(running, link);
        if running.stopped() {
            return;
        }
        let wait = match end {
            End::Dropped(reason) => {
                tracing::warn!(master = %link.master(), %reason, "replication: disconnected from the master");
                // A session that lasted resets the backoff.
                if started.elapsed() > cfg.heartbeat_timeout {
                    backoff = cfg.reconnect_min;
                }
                let w = backoff;
                backoff = (backoff * 2).min(cfg.reconnect_max);
                w
            }
            End::Refused(reason) => {
                tracing::error!(master = %link.master(), %reason, "replication: refusing to follow the master");
                cfg.reconnect_max
            }
        };
        sleep_unless_stopped(running, wait);
    }
}

fn sleep_unless_stopped(running: &Running, d: Duration) {
    let until = Instant::now() + d;
    while !running.stopped() {
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(20)));
    }
}

fn session(running: &Running, link: &SlaveLink) -> End {
    let cfg = link.config().clone();
    let stream = match TcpStream::connect_timeout(&link.master(), cfg.heartbeat_timeout) {
        Ok(s) => s,
        Err(e) => return End::Dropped(format!("connecting: {e}")),
    };
    let setup = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(cfg.heartbeat_interval)))
        .and_then(|()| stream.set_write_timeout(Some(cfg.heartbeat_timeout)));
    if let Err(e) = setup {
        return End::Dropped(e.to_string());
    }
    let conn = match running.track(&stream) {
        Ok(c) => c,
        Err(e) => return End::Dropped(e.to_string()),
    };
    let end = follow(running, link, stream, &cfg);
    running.untrack(conn);
    end
}

fn follow(running: &Running, link: &SlaveLink, stream: TcpStream, cfg: &crate::replication::ReplicationConfig) -> End {
    let mut out = match stream.try_clone() {
        Ok(s) => s,
        Err(e) => return End::Dropped(e.to_string()),
    };
    let mut reader = FrameReader::new(stream, cfg.max_frame_size);
    let mut buf = Vec::new();
    let hello = Frame::Hello {
        segment_size: link.segment_size(),
        max_offset: link.max_offset(),
        last_epoch: link.epochs().last().map_or(0, |e| e.epoch),
    };
    if let Err(e) = send(&mut out, &hello, &mut buf) {
        return End::Dropped(format!("sending hello: {e}"));
    }
    // Welcome: the master's history decides what of our log stays.
    let heard = Instant::now();
    let (segment_size, master_end, epochs) = loop {
        if running.stopped() {
            return End::Dropped("stopping".into());
        }
        match reader.read_frame() {
            Ok(Some(Frame::Welcome {
                segment_size,
                max_offset,
                epochs,
                ..
            })) => break (segment_size, max_offset, epochs),
            Ok(Some(Frame::Refuse { code, reason })) => {
                return End::Refused(format!("the master refused us ({code}): {reason}"));
            }
            Ok(Some(other)) => return protocol(&mut out, format!("expected welcome, got {}", other.name())),
            Ok(None) => return End::Dropped("master closed the connection".into()),
            Err(ProtocolError::Io(e)) if is_timeout(&e) => {
                if heard.elapsed() > cfg.heartbeat_timeout {
                    return End::Dropped("master silent past the heartbeat timeout".into());
                }
            }
            Err(e) => return protocol(&mut out, e.to_string()),
        }
    };
    if segment_size != link.segment_size() {
        let reason = format!("master segment size {segment_size}, ours {}", link.segment_size());
        refuse(&mut out, super::refuse::SEGMENT_SIZE, &reason);
        return End::Refused(reason);
    }
    let point = match link.consistent_point(&epochs, master_end) {
        Ok(p) => p,
        Err(e) => {
            let reason = e.to_string();
            refuse(&mut out, super::refuse::DIVERGED, &reason);
            return End::Refused(reason);
        }
    };
    if let Err(e) = link.truncate(point) {
        let reason = format!("truncating to {point}: {e}");
        refuse(&mut out, super::refuse::LOCAL, &reason);
        return End::Refused(reason);
    }
    let held = link.max_offset();
    if let Err(e) = send(&mut out, &Frame::Ack { offset: held }, &mut buf) {
        return End::Dropped(format!("sending ack: {e}"));
    }
    tracing::info!(master = %link.master(), from = held, master_end, "replication: following the master");
    // Appends are acknowledged by a second thread once the flush policy holds them, so that
    // this one reads on meanwhile and the appends of many frames share one sync.
    let out = Arc::new(Mutex::new(out));
    let (tx, rx) = mpsc::sync_channel::<PendingHold>(PIPELINE);
    let acker = {
        let (out, interval) = (Arc::clone(&out), cfg.heartbeat_interval);
        std::thread::Builder::new()
            .name("mqstore-repl-ack".into())
            .spawn(move || acknowledge(&rx, &out, held, interval))
    };
    let acker = match acker {
        Ok(t) => t,
        Err(e) => return End::Dropped(format!("starting the acknowledging thread: {e}")),
    };
    let end = receive(running, link, &mut reader, &out, &tx, cfg);
    drop(tx);
    let _ = out.lock().shutdown(std::net::Shutdown::Both);
    match acker.join() {
        Ok(Some(failure)) => End::Refused(failure),
        _ => end,
    }
}

/// Frames appended but not yet acknowledged, at most.
const PIPELINE: usize = 256;

/// Reads the master's frames and appends them until the session ends.
fn receive(
    running: &Running,
    link: &SlaveLink,
    reader: &mut FrameReader<TcpStream>,
    out: &Mutex<TcpStream>,
    acks: &mpsc::SyncSender<PendingHold>,
    cfg: &crate::replication::ReplicationConfig,
) -> End {
    let mut heard = Instant::now();
    loop {
        if running.stopped() {
            return End::Dropped("stopping".into());
        }
        let appended = match reader.read_frame() {
            Ok(Some(Frame::Data {
                offset,
                epoch,
                epoch_start,
                bytes,
            })) => {
                heard = Instant::now();
                link.append_async(offset, epoch, epoch_start, bytes)
            }
            Ok(Some(Frame::Heartbeat { .. })) => {
                heard = Instant::now();
                continue;
            }
            Ok(Some(Frame::Refuse { code, reason })) => {
                return End::Dropped(format!("the master closed ({code}): {reason}"));
            }
            Ok(Some(other)) => {
                return protocol(
                    &mut out.lock(),
                    format!("unexpected {} frame from the master", other.name()),
                );
            }
            Ok(None) => return End::Dropped("master closed the connection".into()),
            Err(ProtocolError::Io(e)) if is_timeout(&e) => {
                if heard.elapsed() > cfg.heartbeat_timeout {
                    return End::Dropped("master silent past the heartbeat timeout".into());
                }
                continue;
            }
            Err(ProtocolError::Io(e)) => return End::Dropped(e.to_string()),
            Err(e) => return protocol(&mut out.lock(), e.to_string()),
        };
        match appended {
            Ok(pending) => {
                if acks.send(pending).is_err() {
                    return End::Dropped("acknowledging failed".into());
                }
            }
            Err(
                e @ (Error::ReplicaData { .. } | Error::ReplicaOffsetMismatch { .. } | Error::EpochRegressed { .. }),
            ) => {
                // The master sent what does not continue our log: drop it; the next handshake
                // starts again from what we hold.
                let reason = e.to_string();
                refuse(&mut out.lock(), super::refuse::BAD_DATA, &reason);
                return End::Dropped(reason);
            }
            Err(e) => {
                let reason = e.to_string();
                refuse(&mut out.lock(), super::refuse::LOCAL, &reason);
                return End::Refused(reason);
            }
        }
    }
}

/// Acknowledges appends in order as the flush policy holds them (the latest of those already
/// held, in one frame), and heartbeats when idle. A local failure, if one ended it.
fn acknowledge(
    appends: &mpsc::Receiver<PendingHold>,
    out: &Mutex<TcpStream>,
    mut held: u64,
    interval: std::time::Duration,
) -> Option<String> {
    let mut buf = Vec::new();
    let mut next = None;
    loop {
        let pending = match next.take() {
            Some(p) => p,
            None => match appends.recv_timeout(interval) {
                Ok(p) => p,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if send(&mut out.lock(), &Frame::Heartbeat { max_offset: held }, &mut buf).is_err() {
                        return None;
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            },
        };
        match pending.wait() {
            Ok(h) => held = held.max(h),
            Err(e) => {
                let reason = e.to_string();
                refuse(&mut out.lock(), super::refuse::LOCAL, &reason);
                return Some(reason);
            }
        }
        // Those already held too: one acknowledgement for all of them.
        while let Ok(p) = appends.try_recv() {
            if !p.is_done() {
                next = Some(p);
                break;
            }
            match p.wait() {
                Ok(h) => held = held.max(h),
                Err(e) => {
                    let reason = e.to_string();
                    refuse(&mut out.lock(), super::refuse::LOCAL, &reason);
                    return Some(reason);
                }
            }
        }
        if send(&mut out.lock(), &Frame::Ack { offset: held }, &mut buf).is_err() {
            return None;
        }
    }
}

fn protocol(out: &mut TcpStream, reason: String) -> End {
    refuse(out, super::refuse::PROTOCOL, &reason);
    End::Dropped(reason)
}
