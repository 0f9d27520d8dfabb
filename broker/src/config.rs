//! `broker.toml`: the broker's own keys at the top, the store's under `[store]` (the keys of
//! `mqstore config --default`, read by [`mqstore::StoreConfig`]).
//!
//! ```toml
//! listen = "127.0.0.1:10911"
//! queues_per_topic = 4
//!
//! [store]
//! dir = "/var/lib/mqstore-broker"
//! [store.flush]
//! mode = "async"
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// Why a configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key of the broker's own part is unknown or its value is bad (the message names the key
    /// and the line).
    #[error("broker configuration: {0}")]
    Broker(String),
    /// The `[store]` table is missing or refused by the store.
    #[error("store configuration ([store]): {0}")]
    Store(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<String>,
    advertised: Option<String>,
    broker_name: Option<String>,
    cluster: Option<String>,
    queues_per_topic: Option<u32>,
    max_frame: Option<String>,
    long_poll_max: Option<String>,
    client_expiry: Option<String>,
    write_stall: Option<String>,
    max_reconsume_times: Option<i32>,
    store: Option<toml::Table>,
}

/// Everything the broker needs to run.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Where it listens, as name server and broker at once (port 0: any free port).
    pub listen: SocketAddr,
    /// The address routes name (default: the listening address).
    pub advertised: Option<SocketAddr>,
    /// The broker's name in routes.
    pub broker_name: String,
    /// The cluster's name in routes.
    pub cluster: String,
    /// Read and write queues of every topic, created on first use (at most the store's
    /// `max_queues_per_topic`).
    pub queues_per_topic: u32,
    /// Largest frame accepted from a client; a longer one closes its connection.
    pub max_frame: usize,
    /// Longest a pull is held waiting for a message, whatever the client asks.
    pub long_poll_max: Duration,
    /// A client not heard from (heartbeat) for this long leaves its groups.
    pub client_expiry: Duration,
    /// A client that takes none of its responses for this long is disconnected.
    pub write_stall: Duration,
    /// Redeliveries of a message handed back before it goes to the group's dead-letter topic
    /// (when the client does not say).
    pub max_reconsume_times: i32,
    /// The store.
    pub store: mqstore::StoreConfig,
}

impl BrokerConfig {
    /// A broker on `listen` over a store in `dir`, with the defaults.
    pub fn new(listen: SocketAddr, store: mqstore::StoreConfig) -> BrokerConfig {
        BrokerConfig {
            listen,
            advertised: None,
            broker_name: "broker-a".into(),
            cluster: "DefaultCluster".into(),
            queues_per_topic: 4,
            max_frame: 16 << 20,
            long_poll_max: Duration::from_secs(30),
            client_expiry: Duration::from_secs(120),
            write_stall: Duration::from_secs(15),
            max_reconsume_times: 16,
            store,
        }
    }

    /// Reads `broker.toml`.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<BrokerConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        text.parse()
    }
}

impl FromStr for BrokerConfig {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<BrokerConfig, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| ConfigError::Broker(e.to_string()))?;
        let store = file
            .store
            .ok_or_else(|| ConfigError::Store("missing: the store needs at least `dir`".into()))?;
        let store_text = toml::to_string(&store).map_err(|e| ConfigError::Store(e.to_string()))?;
        let store: mqstore::StoreConfig = store_text
            .parse()
            .map_err(|e: mqstore::Error| ConfigError::Store(e.to_string()))?;
        let addr = |key: &str, v: &str| -> Result<SocketAddr, ConfigError> {
            v.parse()
                .map_err(|_| ConfigError::Broker(format!("{key} = {v:?} is not an address (host:port)")))
        };
        let duration = |key: &str, v: &str| -> Result<Duration, ConfigError> {
            humantime::parse_duration(v).map_err(|e| ConfigError::Broker(format!("{key} = {v:?}: {e}")))
        };
        let listen = addr("listen", file.listen.as_deref().unwrap_or("127.0.0.1:10911"))?;
        let mut config = BrokerConfig::new(listen, store);
        if let Some(v) = &file.advertised {
            config.advertised = Some(addr("advertised", v)?);
        }
        if let Some(v) = file.broker_name {
            config.broker_name = v;
        }
        if let Some(v) = file.cluster {
            config.cluster = v;
        }
        if let Some(v) = file.queues_per_topic {
            config.queues_per_topic = v;
        }
        if let Some(v) = &file.max_frame {
            config.max_frame = parse_size::parse_size(v)
                .ok()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| ConfigError::Broker(format!("max_frame = {v:?} is not a size (\"16MiB\")")))?;
        }
        if let Some(v) = &file.long_poll_max {
            config.long_poll_max = duration("long_poll_max", v)?;
        }
        if let Some(v) = &file.client_expiry {
            config.client_expiry = duration("client_expiry", v)?;
        }
        if let Some(v) = &file.write_stall {
            config.write_stall = duration("write_stall", v)?;
        }
        if let Some(v) = file.max_reconsume_times {
            config.max_reconsume_times = v;
        }
        config.validate()?;
        Ok(config)
    }
}

impl BrokerConfig {
    /// Checks the values against each other and the store's.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let max = self.store.queue_limit();
        if self.queues_per_topic == 0 || self.queues_per_topic > max {
            return Err(ConfigError::Broker(format!(
                "queues_per_topic = {} must be within 1..={max} (the store's max_queues_per_topic)",
                self.queues_per_topic
            )));
        }
        if self.max_frame < 1024 || self.max_frame > (1 << 30) {
            return Err(ConfigError::Broker(format!(
                "max_frame = {} must be within 1KiB..=1GiB",
                self.max_frame
            )));
        }
        if self.broker_name.is_empty() || self.cluster.is_empty() {
            return Err(ConfigError::Broker("broker_name and cluster must not be empty".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_both_parts_parses() {
        let c: BrokerConfig = r#"
listen = "127.0.0.1:0"
queues_per_topic = 8
max_frame = "4MiB"
long_poll_max = "5s"
[store]
dir = "/tmp/x"
[store.flush]
mode = "sync"
"#
        .parse()
        .unwrap();
        assert_eq!(c.queues_per_topic, 8);
        assert_eq!(c.max_frame, 4 << 20);
        assert_eq!(c.long_poll_max, Duration::from_secs(5));
        assert_eq!(c.store.dir(), Path::new("/tmp/x"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = "lisen = \"x\"\n[store]\ndir = \"/tmp/x\"\n"
            .parse::<BrokerConfig>()
            .unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
        let e = "queues_per_topic = 0\n[store]\ndir = \"/tmp/x\"\n"
            .parse::<BrokerConfig>()
            .unwrap_err();
        assert!(e.to_string().contains("queues_per_topic"), "{e}");
        let e = "listen = \"nowhere\"\n[store]\ndir = \"/tmp/x\"\n"
            .parse::<BrokerConfig>()
            .unwrap_err();
        assert!(e.to_string().contains("listen"), "{e}");
        let e = "[store]\ndir = \"/tmp/x\"\nsegment = 3\n"
            .parse::<BrokerConfig>()
            .unwrap_err();
        assert!(matches!(e, ConfigError::Store(_)), "{e}");
        assert!(matches!(
            "listen = \"127.0.0.1:1\"\n".parse::<BrokerConfig>(),
            Err(ConfigError::Store(_))
        ));
    }
}
