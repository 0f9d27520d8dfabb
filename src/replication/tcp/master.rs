//! The master's side: accept slaves, answer their hello, stream the log, take their acks.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Running, refuse, send, write_parts};
use crate::replication::MasterLink;
use crate::replication::frame::{self, Frame, FrameReader, ProtocolError};

/// How often the accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// Binds `addr` and serves slaves on a thread until `running` stops.
pub(super) fn listen(running: Arc<Running>, link: MasterLink, addr: SocketAddr) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    link.set_listen_addr(bound);
    tracing::info!(%bound, "replication: listening for slaves");
    let r = Arc::clone(&running);
    running.spawn("mqstore-repl-accept", move || accept_loop(&r, &link, &listener))
}

fn accept_loop(running: &Arc<Running>, link: &MasterLink, listener: &TcpListener) {
    while !running.stopped() {
        match listener.accept() {
            Ok((stream, peer)) => {
                let (r, l) = (Arc::clone(running), link.clone());
                let spawned = running.spawn("mqstore-repl-conn", move || {
                    if let Err(reason) = serve(&r, &l, stream, peer) {
                        tracing::warn!(%peer, %reason, "replication: slave connection closed");
                    }
                });
                if let Err(e) = spawned {
                    tracing::error!(%peer, error = %e, "replication: cannot serve a slave");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(e) => {
                tracing::warn!(error = %e, "replication: accept failed");
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
}

/// One slave, from its hello to the end of the connection. The reason it ended.
fn serve(running: &Arc<Running>, link: &MasterLink, stream: TcpStream, peer: SocketAddr) -> Result<(), String> {
    let cfg = link.config().clone();
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(cfg.heartbeat_interval))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(cfg.heartbeat_timeout))
        .map_err(|e| e.to_string())?;
    let conn = running.track(&stream).map_err(|e| e.to_string())?;
    let result = session(running, link, stream, peer, &cfg);
    running.untrack(conn);
    result
}

fn session(
    running: &Arc<Running>,
    link: &MasterLink,
    stream: TcpStream,
    peer: SocketAddr,
    cfg: &crate::replication::ReplicationConfig,
) -> Result<(), String> {
    let mut out = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = FrameReader::new(stream, cfg.max_frame_size);
    let deadline = Instant::now() + cfg.heartbeat_timeout;
    let mut buf = Vec::new();

    // Hello.
    let (segment_size, slave_end) = match next_frame(&mut reader, running, deadline) {
        Ok(Frame::Hello {
            segment_size,
            max_offset,
            ..
        }) => (segment_size, max_offset),
        Ok(other) => {
            return fail(
                &mut out,
                super::refuse::PROTOCOL,
                format!("expected hello, got {}", other.name()),
            );
        }
        Err(e) => return fail(&mut out, super::refuse::PROTOCOL, e),
    };
    if segment_size != link.segment_size() {
        return fail(
            &mut out,
            super::refuse::SEGMENT_SIZE,
            format!("slave segment size {segment_size}, master {}", link.segment_size()),
        );
    }
    let welcome = Frame::Welcome {
        segment_size: link.segment_size(),
        max_offset: link.max_offset(),
        min_offset: link.min_offset(),
        epochs: link.epochs(),
    };
    send(&mut out, &welcome, &mut buf).map_err(|e| e.to_string())?;
    // The slave truncates to where the logs agree, then says where it stands.
    let start = match next_frame(&mut reader, running, Instant::now() + cfg.heartbeat_timeout) {
        Ok(Frame::Ack { offset }) => offset,
        Ok(Frame::Refuse { code, reason }) => return Err(format!("slave refused to follow ({code}): {reason}")),
        Ok(other) => {
            return fail(
                &mut out,
                super::refuse::PROTOCOL,
                format!("expected ack, got {}", other.name()),
            );
        }
        Err(e) => return fail(&mut out, super::refuse::PROTOCOL, e),
    };
    let mut acks = link.replica(peer.to_string());
    if let Err(e) = acks.ack(start) {
        // Disconnected before the peer learns it is refused.
        drop(acks);
        return fail(&mut out, super::refuse::PROTOCOL, e.to_string());
    }
    tracing::info!(%peer, from = start, slave_end_before = slave_end, "replication: streaming to a slave");

    let dead = Arc::new(AtomicBool::new(false));
    let writer = {
        let (link, running, dead) = (link.clone(), Arc::clone(running), Arc::clone(&dead));
        let mut out = out.try_clone().map_err(|e| e.to_string())?;
        let cfg = cfg.clone();
        std::thread::Builder::new()
            .name("mqstore-repl-send".into())
            .spawn(move || {
                let r = stream_log(&link, &running, &dead, &mut out, start, &cfg);
                dead.store(true, Ordering::Release);
                let _ = out.shutdown(std::net::Shutdown::Both);
                r
            })
            .map_err(|e| e.to_string())?
    };
    let read = read_acks(&mut reader, running, &dead, &mut acks, cfg.heartbeat_timeout);
    dead.store(true, Ordering::Release);
    if let Err((code, reason)) = &read {
        refuse(&mut out, *code, reason);
    }
    let _ = out.shutdown(std::net::Shutdown::Both);
    let sent = writer.join().unwrap_or_else(|_| Err("sender thread panicked".into()));
    read.map_err(|(_, reason)| reason)?;
    sent
}

fn fail(out: &mut TcpStream, code: u16, reason: impl ToString) -> Result<(), String> {
    let reason = reason.to_string();
    refuse(out, code, &reason);
    Err(reason)
}

/// The next frame, waiting through read timeouts until `deadline`. Frames borrow the reader's
/// buffer, so this hands back owned data only for the small handshake frames.
fn next_frame(
    reader: &mut FrameReader<TcpStream>,
    running: &Running,
    deadline: Instant,
) -> Result<Frame<'static>, String> {
    loop {
        if running.stopped() {
            return Err("the store is stopping".into());
        }
        match reader.read_frame() {
            Ok(Some(f)) => return owned(f),
            Ok(None) => return Err("slave closed the connection".into()),
            Err(ProtocolError::Io(e)) if is_timeout(&e) => {
                if Instant::now() >= deadline {
                    return Err("slave silent past the heartbeat timeout".into());
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The handshake frames as owned values (`Data` and `Refuse` reasons are not kept).
fn owned(f: Frame<'_>) -> Result<Frame<'static>, String> {
    Ok(match f {
        Frame::Hello {
            segment_size,
            max_offset,
            last_epoch,
        } => Frame::Hello {
            segment_size,
            max_offset,
            last_epoch,
        },
        Frame::Ack { offset } => Frame::Ack { offset },
        Frame::Heartbeat { max_offset } => Frame::Heartbeat { max_offset },
        Frame::Refuse { code, reason } => return Err(format!("peer refused ({code}): {reason}")),
        other => return Err(format!("unexpected {} frame", other.name())),
    })
}

pub(super) fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// Takes the slave's acknowledgements until the connection ends: `Err((code, reason))` when the
/// slave broke the protocol.
fn read_acks(
    reader: &mut FrameReader<TcpStream>,
    running: &Running,
    dead: &AtomicBool,
    acks: &mut crate::replication::ReplicaAcks,
    timeout: Duration,
) -> Result<(), (u16, String)> {
    let mut heard = Instant::now();
    loop {
        if running.stopped() || dead.load(Ordering::Acquire) {
            return Ok(());
        }
        match reader.read_frame() {
            Ok(Some(Frame::Ack { offset } | Frame::Heartbeat { max_offset: offset })) => {
                heard = Instant::now();
                acks.ack(offset).map_err(|e| (super::refuse::PROTOCOL, e.to_string()))?;
            }
            Ok(Some(Frame::Refuse { code, reason })) => {
                return Err((super::refuse::PROTOCOL, format!("slave refused ({code}): {reason}")));
            }
            Ok(Some(other)) => {
                return Err((
                    super::refuse::PROTOCOL,
                    format!("unexpected {} frame from a slave", other.name()),
                ));
            }
            Ok(None) => return Ok(()),
            Err(ProtocolError::Io(e)) if is_timeout(&e) => {
                if heard.elapsed() > timeout {
                    return Err((
                        super::refuse::PROTOCOL,
                        "slave silent past the heartbeat timeout".into(),
                    ));
                }
            }
            Err(ProtocolError::Io(e)) => {
                if dead.load(Ordering::Acquire) {
                    return Ok(());
                }
                return Err((super::refuse::LOCAL, e.to_string()));
            }
            Err(e) => return Err((super::refuse::PROTOCOL, e.to_string())),
        }
    }
}

/// Streams the log from `from` until the connection dies or the store stops.
fn stream_log(
    link: &MasterLink,
    running: &Running,
    dead: &AtomicBool,
    out: &mut TcpStream,
    from: u64,
    cfg: &crate::replication::ReplicationConfig,
) -> Result<(), String> {
    let mut at = from;
    let mut sent = Instant::now();
    let mut buf = Vec::new();
    let batch = cfg.transfer_batch.min(cfg.max_frame_size as usize - 64);
    while !running.stopped() && !dead.load(Ordering::Acquire) {
        match link.read(at, batch) {
            Ok(Some(chunk)) => {
                let bytes = chunk.bytes();
                let header = frame::data_header(chunk.offset(), chunk.epoch(), chunk.epoch_start(), bytes);
                write_parts(out, &[&header, bytes]).map_err(|e| format!("sending: {e}"))?;
                at = chunk.next_offset();
                sent = Instant::now();
            }
            Ok(None) => {
                if sent.elapsed() >= cfg.heartbeat_interval {
                    send(
                        out,
                        &Frame::Heartbeat {
                            max_offset: link.max_offset(),
                        },
                        &mut buf,
                    )
                    .map_err(|e| format!("sending a heartbeat: {e}"))?;
                    sent = Instant::now();
                }
                link.wait_for_data(at, cfg.heartbeat_interval.min(Duration::from_millis(100)));
            }
            Err(e) => {
                let reason = e.to_string();
                refuse(out, super::refuse::BAD_DATA, &reason);
                return Err(reason);
            }
        }
    }
    Ok(())
}
