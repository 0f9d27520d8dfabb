//! Message ids: the client-style unique id a message gets in `UNIQ_KEY` when the producer set
//! none, and RocketMQ's store-assigned id (`offsetMsgId`), which names the store host and the
//! commit-log offset.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::codec;
use crate::error::{Error, Result};

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The two hex digits of every byte: one load and one store per byte rather than two of each,
/// on a path every put without a key of its own takes.
static HEX_PAIRS: [[u8; 2]; 256] = {
    let mut pairs = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        pairs[b] = [HEX[b >> 4], HEX[b & 15]];
        b += 1;
    }
    pairs
};

/// A 16-byte unique id, shown as 32 uppercase hex digits (the shape of RocketMQ's client ids):
/// the store host's IPv4 address (or the last 4 bytes of its IPv6 one), the process id, 4 bytes
/// drawn when the store opened, and a 6-byte counter.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UniqueKey([u8; 16]);

impl UniqueKey {
    /// The 32 hex digits, without allocating.
    pub fn hex(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (pair, &b) in out.chunks_exact_mut(2).zip(&self.0) {
            pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
        }
        out
    }

    /// The raw bytes.
    pub fn bytes(&self) -> [u8; 16] {
        self.0
    }
}

impl fmt::Display for UniqueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.hex();
        // The digits are ASCII.
        f.write_str(std::str::from_utf8(&hex).unwrap_or_default())
    }
}

impl fmt::Debug for UniqueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UniqueKey({self})")
    }
}

/// Hands out unique keys for one open store.
pub(crate) struct UniqueKeys {
    prefix: [u8; 10],
    counter: AtomicU64,
    /// Tells this store's numbers from another's in a thread's block (see [`BLOCK`]).
    id: u64,
}

/// Numbers a thread takes from a store's counter at a time, so that a put takes one with a plain
/// increment: an atomic add is a locked instruction, which waits for the stores of the put before
/// it. The keys stay unique; they are no longer numbered in the order of the puts across threads
/// (nothing relies on that: a client's ids are not either).
const BLOCK: u64 = 64;

/// Ids of [`UniqueKeys`], never reused within the process (a store opened where a closed one
/// lived must not take over its blocks).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's block: the store it belongs to, the next number and the end.
    static KEY_BLOCK: std::cell::Cell<(u64, u64, u64)> = const { std::cell::Cell::new((0, 0, 0)) };
}

impl UniqueKeys {
    pub(crate) fn new(host: SocketAddr) -> Self {
        let ip = match host.ip() {
            IpAddr::V4(v4) => v4.octets(),
            IpAddr::V6(v6) => {
                let o = v6.octets();
                [o[12], o[13], o[14], o[15]]
            }
        };
        let pid = std::process::id() as u16;
        // Distinguishes two opens of the same store by the same process id (a restart that
        // reused it): the open's time, mixed.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let salt = (nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32;
        let mut prefix = [0u8; 10];
        prefix[..4].copy_from_slice(&ip);
        prefix[4..6].copy_from_slice(&pid.to_be_bytes());
        prefix[6..10].copy_from_slice(&salt.to_be_bytes());
        UniqueKeys {
            prefix,
            counter: AtomicU64::new(0),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    pub(crate) fn next(&self) -> UniqueKey {
        let n = KEY_BLOCK.with(|block| {
            let (id, next, end) = block.get();
            if id == self.id && next < end {
                block.set((id, next + 1, end));
                return next;
            }
            let start = self.counter.fetch_add(BLOCK, Ordering::Relaxed);
            block.set((self.id, start + 1, start + BLOCK));
            start
        });
        let mut b = [0u8; 16];
        b[..10].copy_from_slice(&self.prefix);
        b[10..].copy_from_slice(&n.to_be_bytes()[2..]);
        UniqueKey(b)
    }
}

/// Decodes RocketMQ's store-assigned message id (see [`PutResult::msg_id`](crate::PutResult::msg_id)) into the store
/// host and the commit-log offset, with a typed error for anything else.
pub fn decode_offset_msg_id(id: &str) -> Result<(SocketAddr, u64)> {
    codec::parse_offset_msg_id(id).ok_or_else(|| Error::InvalidMessageId {
        id: id.chars().take(80).collect(),
        reason: if id.len() == 32 || id.len() == 56 {
            "not hex, a port out of range, or a negative commit-log offset"
        } else {
            "expected 32 hex digits (IPv4 store host) or 56 (IPv6)"
        },
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::codec::offset_msg_id;

    #[test]
    fn offset_ids_round_trip() {
        let v4: SocketAddr = "127.0.0.1:10911".parse().unwrap();
        let id = offset_msg_id(v4, 0x15B);
        assert_eq!(id, "7F00000100002A9F000000000000015B");
        assert_eq!(decode_offset_msg_id(&id).unwrap(), (v4, 0x15B));
        assert_eq!(decode_offset_msg_id(&id.to_lowercase()).unwrap(), (v4, 0x15B));
        let v6: SocketAddr = "[2001:db8::7]:65535".parse().unwrap();
        let id6 = offset_msg_id(v6, u32::MAX as u64 * 3);
        assert_eq!(id6.len(), 56);
        assert_eq!(decode_offset_msg_id(&id6).unwrap(), (v6, u32::MAX as u64 * 3));
    }

    #[test]
    fn bad_ids_are_typed_errors() {
        for bad in [
            "",
            "7F00000100002A9F000000000000015",
            "7F00000100002A9F000000000000015BX",
            "7F00000100002A9F00000000000001ZZ",
            "7F000001FFFFFFFF000000000000015B",
            "7F00000100002A9F800000000000015B",
            "ééééééééééééééééé",
        ] {
            assert!(
                matches!(decode_offset_msg_id(bad), Err(Error::InvalidMessageId { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unique_keys_differ_and_show_as_hex() {
        let keys = UniqueKeys::new("10.1.2.3:1".parse().unwrap());
        let (a, b) = (keys.next(), keys.next());
        assert_ne!(a, b);
        let s = a.to_string();
        assert_eq!(s.len(), 32);
        assert!(s.starts_with("0A010203"));
        assert!(s.bytes().all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)));
        assert_eq!(s.as_bytes(), &a.hex());
        let every_digit = UniqueKey(std::array::from_fn(|i| (i * 17) as u8));
        assert_eq!(every_digit.to_string(), "00112233445566778899AABBCCDDEEFF");
    }

    /// Threads take numbers a block at a time, and a thread that puts into two stores keeps a
    /// block for neither: every key of a store is unique, whoever took it.
    #[test]
    fn keys_stay_unique_across_threads_and_stores() {
        let host = "10.1.2.3:1".parse().unwrap();
        let (a, b) = (Arc::new(UniqueKeys::new(host)), Arc::new(UniqueKeys::new(host)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (a, b) = (Arc::clone(&a), Arc::clone(&b));
                std::thread::spawn(move || {
                    // Alternating stores, and more keys than a block holds.
                    (0..3 * BLOCK)
                        .flat_map(|_| [(0, a.next()), (1, b.next())])
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        for t in threads {
            for (store, key) in t.join().unwrap() {
                assert!(seen.insert((store, key)), "{key} handed out twice by store {store}");
            }
        }
        assert_eq!(seen.len() as u64, 2 * 4 * 3 * BLOCK);
        // A store opened after another was closed never takes over a block of the other's
        // (this thread holds one of `a`'s when `a` goes).
        assert!(seen.insert((0, a.next())));
        drop((a, b));
        let c = UniqueKeys::new(host);
        let first = c.next();
        assert_eq!(first.bytes()[10..], [0u8; 6], "a new store's first key is its number 0");
    }
}
