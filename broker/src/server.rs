//! The listening socket and each connection: frames in, one task per request, responses out
//! through one writer per connection.
//!
//! Bounds, so that one bad client costs only its own connection: a frame longer than
//! `max_frame` closes the connection before its body is read; requests in flight on one
//! connection hold at most `IN_FLIGHT_BYTES` of frames and response allowances (the reader waits when it is
//! reached, so a client that floods is slowed by TCP, not buffered); a client that does not
//! read its responses for `write_stall` is disconnected.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{debug, warn};

use crate::Shared;
use crate::clients::Peer;
use crate::handle;
use crate::remoting::Command;

/// Bytes the requests one connection has in flight may hold: each counts its frame and the
/// largest response it can make (a pull answers at most `MAX_PULL_BYTES` past its first
/// message), so a client that never reads its responses holds a bounded amount of memory.
const IN_FLIGHT_BYTES: usize = 64 << 20;
/// What a request's response is counted as in `IN_FLIGHT_BYTES`.
const RESPONSE_ALLOWANCE: usize = crate::handle::MAX_PULL_BYTES;
/// Responses queued per connection before handlers wait for the writer.
const QUEUED_RESPONSES: usize = 1024;

/// Accepts connections until `stop` turns true.
pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve(Arc::clone(&shared), stream, peer, stop.clone()));
                }
                Err(e) => {
                    // Out of descriptors and the like: wait a little instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stop.changed() => return,
        }
    }
}

/// Why a connection's reader stopped.
enum Ended {
    /// The client closed between frames.
    Clean,
    /// Logged with its reason.
    Dropped(String),
    /// The broker is stopping, or the writer gave up.
    Stopped,
}

async fn serve(shared: Arc<Shared>, stream: TcpStream, addr: SocketAddr, mut stop: watch::Receiver<bool>) {
    let id = shared.next_connection.fetch_add(1, Ordering::Relaxed);
    debug!(%addr, connection = id, "connected");
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Vec<u8>>(QUEUED_RESPONSES);
    let writer = tokio::spawn(write_loop(wr, rx, addr, shared.config.write_stall));
    shared.connections.fetch_add(1, Ordering::AcqRel);
    let peer = Peer { connection: id, tx };
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_BYTES));
    let max_frame = shared.config.max_frame;
    let ended = loop {
        let mut len = [0u8; 4];
        let first = tokio::select! {
            r = rd.read(&mut len[..1]) => r,
            _ = peer.tx.closed() => break Ended::Stopped,
            _ = stop.changed() => break Ended::Stopped,
        };
        match first {
            Ok(0) => break Ended::Clean,
            Ok(_) => {}
            Err(e) => break Ended::Dropped(format!("read failed: {e}")),
        }
        if let Err(e) = rd.read_exact(&mut len[1..]).await {
            break Ended::Dropped(format!("disconnected mid-frame: {e}"));
        }
        let n = u32::from_be_bytes(len) as usize;
        if !(4..=max_frame).contains(&n) {
            break Ended::Dropped(format!("frame of {n} bytes outside 4..={max_frame} (max_frame)"));
        }
        let cost = (n + RESPONSE_ALLOWANCE).min(IN_FLIGHT_BYTES) as u32;
        let Ok(permit) = Arc::clone(&in_flight).acquire_many_owned(cost).await else {
            break Ended::Stopped;
        };
        let mut frame = vec![0u8; n];
        if let Err(e) = rd.read_exact(&mut frame).await {
            break Ended::Dropped(format!("disconnected mid-frame: {e}"));
        }
        let cmd = match Command::decode(&frame) {
            Ok(cmd) => cmd,
            Err(e) => {
                // Without a header there is no opaque to answer to: the stream cannot be
                // trusted past this frame, so the connection ends.
                break Ended::Dropped(format!("unreadable frame: {e}"));
            }
        };
        drop(frame);
        if cmd.is_response() {
            // Answers to the broker's own one-way notifications: nothing waits for them.
            continue;
        }
        let shared = Arc::clone(&shared);
        let peer = peer.clone();
        tokio::spawn(async move {
            let oneway = cmd.is_oneway();
            let response = handle::handle(&shared, &peer, addr, cmd).await;
            if !oneway {
                let _ = peer.tx.send(response.encode()).await;
            }
            drop(permit);
        });
    };
    match &ended {
        Ended::Clean => debug!(%addr, connection = id, "closed by the client"),
        Ended::Dropped(reason) => warn!(%addr, connection = id, %reason, "closing connection"),
        Ended::Stopped => debug!(%addr, connection = id, "closing connection"),
    }
    {
        let mut clients = shared.clients.lock();
        let changed = clients.connection_closed(id);
        clients.notify(&changed, &shared.opaque);
    }
    drop(peer);
    writer.abort();
    shared.connections.fetch_sub(1, Ordering::AcqRel);
}

/// Writes responses in the order handlers finish them, coalescing what is queued into one
/// write.
async fn write_loop(
    wr: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::Receiver<Vec<u8>>,
    addr: SocketAddr,
    stall: Duration,
) {
    let mut out = BufWriter::with_capacity(64 << 10, wr);
    while let Some(frame) = rx.recv().await {
        let write = async {
            out.write_all(&frame).await?;
            while let Ok(more) = rx.try_recv() {
                out.write_all(&more).await?;
            }
            out.flush().await
        };
        match tokio::time::timeout(stall, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!(%addr, error = %e, "write failed");
                return;
            }
            Err(_) => {
                warn!(%addr, ?stall, "closing connection: the client does not read its responses");
                return;
            }
        }
    }
    debug!(%addr, "writer done");
}
