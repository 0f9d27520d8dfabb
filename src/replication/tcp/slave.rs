//! The slave's side: connect, agree with the master on where the logs meet, take its bytes,
//! acknowledge them; reconnect with backoff after a drop.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::master::is_timeout;
use super::{Running, refuse, send};
use crate::error::Error;
use crate::replication::SlaveLink;
use crate::replication::frame::{Frame, FrameReader, ProtocolError};

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
    let mut heard = Instant::now();
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
    let mut held = link.max_offset();
    if let Err(e) = send(&mut out, &Frame::Ack { offset: held }, &mut buf) {
        return End::Dropped(format!("sending ack: {e}"));
    }
    tracing::info!(master = %link.master(), from = held, master_end, "replication: following the master");
    heard = Instant::now();
    let mut sent = Instant::now();
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
                link.append(offset, epoch, epoch_start, bytes)
            }
            Ok(Some(Frame::Heartbeat { .. })) => {
                heard = Instant::now();
                continue;
            }
            Ok(Some(Frame::Refuse { code, reason })) => {
                return End::Dropped(format!("the master closed ({code}): {reason}"));
            }
            Ok(Some(other)) => return protocol(&mut out, format!("unexpected {} frame from the master", other.name())),
            Ok(None) => return End::Dropped("master closed the connection".into()),
            Err(ProtocolError::Io(e)) if is_timeout(&e) => {
                if heard.elapsed() > cfg.heartbeat_timeout {
                    return End::Dropped("master silent past the heartbeat timeout".into());
                }
                if sent.elapsed() >= cfg.heartbeat_interval {
                    if let Err(e) = send(&mut out, &Frame::Heartbeat { max_offset: held }, &mut buf) {
                        return End::Dropped(format!("sending a heartbeat: {e}"));
                    }
                    sent = Instant::now();
                }
                continue;
            }
            Err(ProtocolError::Io(e)) => return End::Dropped(e.to_string()),
            Err(e) => return protocol(&mut out, e.to_string()),
        };
        match appended {
            Ok(a) => {
                held = a.held;
                if let Err(e) = send(&mut out, &Frame::Ack { offset: held }, &mut buf) {
                    return End::Dropped(format!("sending ack: {e}"));
                }
                sent = Instant::now();
            }
            Err(
                e @ (Error::ReplicaData { .. } | Error::ReplicaOffsetMismatch { .. } | Error::EpochRegressed { .. }),
            ) => {
                // The master sent what does not continue our log: drop it; the next handshake
                // starts again from what we hold.
                let reason = e.to_string();
                refuse(&mut out, super::refuse::BAD_DATA, &reason);
                return End::Dropped(reason);
            }
            Err(e) => {
                let reason = e.to_string();
                refuse(&mut out, super::refuse::LOCAL, &reason);
                return End::Refused(reason);
            }
        }
    }
}

fn protocol(out: &mut TcpStream, reason: String) -> End {
    refuse(out, super::refuse::PROTOCOL, &reason);
    End::Dropped(reason)
}
