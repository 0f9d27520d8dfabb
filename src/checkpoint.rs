//! The `checkpoint` file: RocketMQ's 4 KiB page (five big-endian i64 at its start), plus two
//! CRC-protected slots of mqstore's own in the page's unused bytes.
//!
//! RocketMQ's fields are timestamps; ours are exact commit-log offsets: everything below
//! `log_flushed` is durable in the log, everything below `dispatched` has its consume-queue unit
//! durable. The slots alternate by sequence number and each carries a CRC, so a torn or garbled
//! write is detected and the other (older, so still safe) slot is used; with neither valid,
//! recovery falls back to RocketMQ's timestamps or to the first segment — slower, never wrong.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::error::{IoContext, Result};
use crate::files::open_or_create;
use crate::index::IndexMark;

/// File name.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// Size of the page.
pub const CHECKPOINT_SIZE: usize = 4096;
/// Where mqstore's two slots start in the checkpoint page (docs/format.md); RocketMQ uses the
/// first 40 bytes, the Rust port 8 bytes more at 40.
pub const SLOT_AT: [usize; 2] = [1024, 2048];
/// "MQCK".
const SLOT_MAGIC: u32 = 0x4D51_434B;
/// Version 1 had no index mark; version 2 adds it.
const SLOT_VERSION: u32 = 2;
/// magic, version, seq, log_flushed, dispatched, physic ts, logics ts, crc.
const SLOT_V1_LEN: usize = 4 + 4 + 8 + 8 + 8 + 8 + 8 + 4;
/// Version 2: version 1's fields, then the index file, its durable count and the covered
/// offset, then the crc.
const SLOT_LEN: usize = SLOT_V1_LEN + 3 * 8;

/// The checkpoint's fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// RocketMQ's physicMsgTimestamp: store time of the last flushed commit-log record (ms).
    pub physic_msg_timestamp: i64,
    /// RocketMQ's logicsMsgTimestamp: store time of the last record whose unit is durable.
    pub logics_msg_timestamp: i64,
    /// RocketMQ's indexMsgTimestamp.
    pub index_msg_timestamp: i64,
    /// RocketMQ's masterFlushedOffset.
    pub master_flushed_offset: i64,
    /// RocketMQ's confirmPhyOffset.
    pub confirm_phy_offset: i64,
    /// mqstore: sequence number of the slot.
    pub seq: u64,
    /// mqstore: every commit-log byte below is durable.
    pub log_flushed: u64,
    /// mqstore: every record below has its consume-queue unit durable.
    pub dispatched: u64,
    /// mqstore: how far the index is durable (all zero in a version-1 slot: nothing trusted).
    pub index: IndexMark,
}

/// What a checkpoint page holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loaded {
    /// A valid mqstore slot (RocketMQ's fields alongside).
    Exact(Checkpoint),
    /// Only RocketMQ's timestamps (a store RocketMQ wrote, or both slots damaged).
    Timestamps(Checkpoint),
    /// No checkpoint.
    Missing,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    be_i64(b, at) as u64
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

impl Checkpoint {
    /// Reads a page (any bytes: never panics). Pages shorter than 40 bytes count as missing.
    pub fn decode(page: &[u8]) -> Loaded {
        if page.len() < 40 {
            return Loaded::Missing;
        }
        let mut cp = Checkpoint {
            physic_msg_timestamp: be_i64(page, 0),
            logics_msg_timestamp: be_i64(page, 8),
            index_msg_timestamp: be_i64(page, 16),
            master_flushed_offset: be_i64(page, 24),
            confirm_phy_offset: be_i64(page, 32),
            ..Default::default()
        };
        let best = SLOT_AT
            .iter()
            .filter_map(|&at| decode_slot(page.get(at..at + SLOT_LEN)?))
            .max_by_key(|s| s.seq);
        match best {
            Some(slot) => {
                cp.seq = slot.seq;
                cp.log_flushed = slot.log_flushed;
                cp.dispatched = slot.dispatched;
                cp.index = slot.index;
                // Prefer the slot's copy of the timestamps: the header is not CRC-protected.
                cp.physic_msg_timestamp = slot.physic_msg_timestamp;
                cp.logics_msg_timestamp = slot.logics_msg_timestamp;
                Loaded::Exact(cp)
            }
            None => Loaded::Timestamps(cp),
        }
    }

    /// Writes RocketMQ's fields and this checkpoint's slot (chosen by `seq`) into `page`.
    pub fn encode_into(&self, page: &mut [u8; CHECKPOINT_SIZE]) {
        page[0..8].copy_from_slice(&self.physic_msg_timestamp.to_be_bytes());
        page[8..16].copy_from_slice(&self.logics_msg_timestamp.to_be_bytes());
        page[16..24].copy_from_slice(&self.index_msg_timestamp.to_be_bytes());
        page[24..32].copy_from_slice(&self.master_flushed_offset.to_be_bytes());
        page[32..40].copy_from_slice(&self.confirm_phy_offset.to_be_bytes());
        let at = SLOT_AT[(self.seq % 2) as usize];
        let slot = &mut page[at..at + SLOT_LEN];
        slot[0..4].copy_from_slice(&SLOT_MAGIC.to_be_bytes());
        slot[4..8].copy_from_slice(&SLOT_VERSION.to_be_bytes());
        slot[8..16].copy_from_slice(&self.seq.to_be_bytes());
        slot[16..24].copy_from_slice(&self.log_flushed.to_be_bytes());
        slot[24..32].copy_from_slice(&self.dispatched.to_be_bytes());
        slot[32..40].copy_from_slice(&self.physic_msg_timestamp.to_be_bytes());
        slot[40..48].copy_from_slice(&self.logics_msg_timestamp.to_be_bytes());
        slot[48..56].copy_from_slice(&self.index.file.to_be_bytes());
        slot[56..64].copy_from_slice(&self.index.count.to_be_bytes());
        slot[64..72].copy_from_slice(&self.index.covered.to_be_bytes());
        let crc = crc32fast::hash(&slot[..72]);
        slot[72..76].copy_from_slice(&crc.to_be_bytes());
    }

    /// RocketMQ's recovery start time: `min(physic, logics) - 3 s`.
    pub fn min_timestamp(&self) -> i64 {
        (self.physic_msg_timestamp.min(self.logics_msg_timestamp) - 3000).max(0)
    }
}

fn decode_slot(b: &[u8]) -> Option<Checkpoint> {
    if b.len() < SLOT_LEN || be_u32(b, 0) != SLOT_MAGIC {
        return None;
    }
    let index = match be_u32(b, 4) {
        1 if crc32fast::hash(&b[..48]) == be_u32(b, 48) => IndexMark::default(),
        SLOT_VERSION if crc32fast::hash(&b[..72]) == be_u32(b, 72) => IndexMark {
            file: be_u64(b, 48),
            count: be_u64(b, 56),
            covered: be_u64(b, 64),
        },
        _ => return None,
    };
    Some(Checkpoint {
        index,
        seq: be_u64(b, 8),
        log_flushed: be_u64(b, 16),
        dispatched: be_u64(b, 24),
        physic_msg_timestamp: be_i64(b, 32),
        logics_msg_timestamp: be_i64(b, 40),
        ..Default::default()
    })
}

/// The open checkpoint file.
pub struct CheckpointFile {
    path: PathBuf,
    state: Mutex<(File, Box<[u8; CHECKPOINT_SIZE]>, Checkpoint)>,
}

impl CheckpointFile {
    /// Opens (creating if missing) `dir/checkpoint` and reads what it holds.
    pub fn open(dir: &Path) -> Result<(Self, Loaded)> {
        let path = dir.join(CHECKPOINT_FILE);
        let mut file = open_or_create(&path)?;
        let mut bytes = Vec::with_capacity(CHECKPOINT_SIZE);
        (&mut file)
            .take(CHECKPOINT_SIZE as u64)
            .read_to_end(&mut bytes)
            .at(&path)?;
        let loaded = Checkpoint::decode(&bytes);
        let mut page = Box::new([0u8; CHECKPOINT_SIZE]);
        let n = bytes.len().min(CHECKPOINT_SIZE);
        page[..n].copy_from_slice(&bytes[..n]);
        let last = match loaded {
            Loaded::Exact(cp) | Loaded::Timestamps(cp) => cp,
            Loaded::Missing => Checkpoint::default(),
        };
        Ok((
            CheckpointFile {
                path,
                state: Mutex::new((file, page, last)),
            },
            loaded,
        ))
    }

    /// Durably records a new checkpoint (the next slot; the previous stays intact, so a torn
    /// write loses at most this one).
    pub fn write(&self, mut cp: Checkpoint) -> Result<Checkpoint> {
        let mut state = self.state.lock();
        let (file, page, last) = &mut *state;
        cp.seq = last.seq + 1;
        cp.index_msg_timestamp = last.index_msg_timestamp;
        cp.master_flushed_offset = last.master_flushed_offset;
        cp.confirm_phy_offset = last.confirm_phy_offset;
        cp.encode_into(page);
        fail::fail_point!("checkpoint-write", |_| Err(crate::error::Error::io(
            &self.path,
            std::io::Error::from_raw_os_error(5)
        )));
        file.seek(SeekFrom::Start(0)).at(&self.path)?;
        file.write_all(&page[..]).at(&self.path)?;
        file.sync_data().at(&self.path)?;
        *last = cp;
        Ok(cp)
    }

    /// The last checkpoint written or read.
    pub fn last(&self) -> Checkpoint {
        self.state.lock().2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64) -> Checkpoint {
        Checkpoint {
            physic_msg_timestamp: 1_700_000_000_000,
            logics_msg_timestamp: 1_700_000_000_500,
            seq,
            log_flushed: 123_456,
            dispatched: 120_000,
            index: IndexMark {
                file: 20240229134507089,
                count: 77,
                covered: 119_000,
            },
            ..Default::default()
        }
    }

    #[test]
    fn round_trip_and_rocketmq_header() {
        let mut page = [0u8; CHECKPOINT_SIZE];
        sample(7).encode_into(&mut page);
        assert_eq!(Checkpoint::decode(&page), Loaded::Exact(sample(7)));
        assert_eq!(i64::from_be_bytes(page[0..8].try_into().unwrap()), 1_700_000_000_000);
        assert_eq!(i64::from_be_bytes(page[8..16].try_into().unwrap()), 1_700_000_000_500);
    }

    #[test]
    fn newest_valid_slot_wins_and_a_torn_one_falls_back() {
        let mut page = [0u8; CHECKPOINT_SIZE];
        sample(1).encode_into(&mut page);
        let mut newer = sample(2);
        newer.log_flushed = 999_999;
        newer.encode_into(&mut page);
        assert_eq!(Checkpoint::decode(&page), Loaded::Exact(newer));
        // Tear the newer slot: the older one is used.
        page[SLOT_AT[0] + 20] ^= 0x40;
        assert_eq!(Checkpoint::decode(&page), Loaded::Exact(sample(1)));
        // Both damaged: only RocketMQ's timestamps remain.
        page[SLOT_AT[1] + 9] ^= 0x01;
        assert!(matches!(Checkpoint::decode(&page), Loaded::Timestamps(_)));
    }

    #[test]
    fn a_version_1_slot_reads_with_no_index_mark() {
        let mut page = [0u8; CHECKPOINT_SIZE];
        let slot = &mut page[SLOT_AT[1]..SLOT_AT[1] + SLOT_LEN];
        slot[0..4].copy_from_slice(&SLOT_MAGIC.to_be_bytes());
        slot[4..8].copy_from_slice(&1u32.to_be_bytes());
        slot[8..16].copy_from_slice(&5u64.to_be_bytes());
        slot[16..24].copy_from_slice(&300u64.to_be_bytes());
        slot[24..32].copy_from_slice(&200u64.to_be_bytes());
        let crc = crc32fast::hash(&slot[..48]);
        slot[48..52].copy_from_slice(&crc.to_be_bytes());
        let Loaded::Exact(cp) = Checkpoint::decode(&page) else {
            panic!("a version-1 slot is valid");
        };
        assert_eq!((cp.seq, cp.log_flushed, cp.dispatched), (5, 300, 200));
        assert_eq!(cp.index, IndexMark::default());
    }

    #[test]
    fn any_short_or_random_page_decodes_without_panic() {
        assert_eq!(Checkpoint::decode(&[]), Loaded::Missing);
        assert_eq!(Checkpoint::decode(&[1u8; 39]), Loaded::Missing);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for len in [40usize, 100, 1100, 2100, 4096, 5000] {
            let page: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            assert!(matches!(Checkpoint::decode(&page), Loaded::Timestamps(_)));
        }
    }

    #[test]
    fn file_write_then_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (f, loaded) = CheckpointFile::open(dir.path()).unwrap();
        assert_eq!(loaded, Loaded::Missing);
        f.write(sample(0)).unwrap();
        let written = f.write(sample(0)).unwrap();
        assert_eq!(written.seq, 2);
        drop(f);
        let (_, loaded) = CheckpointFile::open(dir.path()).unwrap();
        assert_eq!(loaded, Loaded::Exact(Checkpoint { seq: 2, ..sample(2) }));
    }
}
