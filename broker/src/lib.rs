//! `mqstore-broker`: a RocketMQ broker and name server in one process, on an mqstore
//! [`MessageStore`](mqstore::MessageStore). RocketMQ's own clients produce to it and consume
//! from it over RocketMQ's remoting protocol.
//!
//! [`Broker::start`] binds, opens the store and serves until [`Broker::stop`]; the
//! `mqstore-broker` program does the same from a `broker.toml` and stops on Ctrl-C or SIGTERM.

#![deny(missing_docs)]

pub mod clients;
pub mod codes;
pub mod config;
mod handle;
pub mod properties;
pub mod remoting;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use mqstore::MessageStore;
use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::info;

pub use config::{BrokerConfig, ConfigError};

/// What every connection's requests share.
pub(crate) struct Shared {
    config: BrokerConfig,
    /// The address routes name and messages' store host carry.
    addr: SocketAddr,
    store: Arc<MessageStore>,
    /// The store's dispatched commit-log offset, changed each time new messages reach the
    /// consume queues: held pulls wait on it.
    arrivals: watch::Receiver<u64>,
    clients: Mutex<clients::Clients>,
    /// Opaque numbers of the broker's own requests.
    opaque: AtomicI32,
    next_connection: AtomicU64,
    /// Connections open now.
    connections: std::sync::atomic::AtomicUsize,
    /// Pulls held waiting for messages now.
    held_pulls: std::sync::atomic::AtomicUsize,
}

/// Why the broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listening address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The runtime cannot be built.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The configuration is refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store does not open.
    #[error("cannot open the store: {0}")]
    Store(#[from] mqstore::Error),
}

/// A running broker.
pub struct Broker {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    stop: watch::Sender<bool>,
    watching: Arc<AtomicBool>,
    watcher: Option<JoinHandle<()>>,
}

impl Broker {
    /// Binds `config.listen`, opens the store (its store host set to the address routes name,
    /// so that message ids point back here) and starts serving.
    pub fn start(config: BrokerConfig) -> Result<Broker, StartError> {
        config.validate()?;
        let listener = std::net::TcpListener::bind(config.listen).map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let bound = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let addr = config.advertised.unwrap_or(bound);
        let store = Arc::new(MessageStore::open(config.store.clone().store_host(addr))?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("mqstore-broker")
            .build()
            .map_err(StartError::Runtime)?;
        let (arrived, arrivals) = watch::channel(store.dispatched_offset());
        let watching = Arc::new(AtomicBool::new(true));
        let watcher = {
            let store = Arc::clone(&store);
            let watching = Arc::clone(&watching);
            std::thread::Builder::new()
                .name("mqstore-broker-arrivals".into())
                .spawn(move || watch_arrivals(&store, &arrived, &watching))
                .map_err(StartError::Runtime)?
        };
        let shared = Arc::new(Shared {
            config,
            addr,
            store,
            arrivals,
            clients: Mutex::new(clients::Clients::default()),
            opaque: AtomicI32::new(1),
            next_connection: AtomicU64::new(1),
            connections: std::sync::atomic::AtomicUsize::new(0),
            held_pulls: std::sync::atomic::AtomicUsize::new(0),
        });
        let (stop, stopping) = watch::channel(false);
        listener.set_nonblocking(true).map_err(StartError::Runtime)?;
        {
            let _entered = runtime.enter();
            let listener = tokio::net::TcpListener::from_std(listener).map_err(StartError::Runtime)?;
            runtime.spawn(server::accept_loop(Arc::clone(&shared), listener, stopping.clone()));
            runtime.spawn(expire_clients(Arc::clone(&shared), stopping));
        }
        info!(%addr, dir = %shared.config.store.dir().display(), "mqstore-broker serving");
        Ok(Broker {
            shared,
            runtime: Some(runtime),
            stop,
            watching,
            watcher: Some(watcher),
        })
    }

    /// The address clients reach the broker (and its name server) at.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Client connections open now.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Acquire)
    }

    /// Pulls held now, waiting for a message or their timeout.
    pub fn held_pulls(&self) -> usize {
        self.shared.held_pulls.load(Ordering::Acquire)
    }

    /// The store it serves.
    pub fn store(&self) -> &Arc<MessageStore> {
        &self.shared.store
    }

    /// Stops accepting, ends every connection (held pulls answer first), and closes the store.
    pub fn stop(mut self) -> Result<(), mqstore::Error> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), mqstore::Error> {
        let Some(runtime) = self.runtime.take() else {
            return Ok(());
        };
        let _ = self.stop.send(true);
        self.watching.store(false, Ordering::Release);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
        // Held pulls see the watch close and answer; requests in flight get a moment.
        runtime.shutdown_timeout(Duration::from_secs(2));
        self.shared.store.close()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Publishes the store's dispatched offset each time it moves.
fn watch_arrivals(store: &MessageStore, arrived: &watch::Sender<u64>, watching: &AtomicBool) {
    let mut seen = store.dispatched_offset();
    while watching.load(Ordering::Acquire) {
        let now = store.wait_dispatched_past(seen, Duration::from_millis(200));
        if now != seen {
            seen = now;
            arrived.send_replace(now);
        }
    }
}

/// Drops clients that stopped sending heartbeats.
async fn expire_clients(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let every = (shared.config.client_expiry / 4).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let mut clients = shared.clients.lock();
        let changed = clients.expire(shared.config.client_expiry);
        clients.notify(&changed, &shared.opaque);
    }
}
