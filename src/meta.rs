//! `mqstore.meta`: a small text file that tells later versions what wrote the store and with
//! which sizes. Its absence means a store written by RocketMQ.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::files::sync_dir;

/// File name of the metadata file.
pub const META_FILE: &str = "mqstore.meta";
/// Format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// What the metadata file records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Format version.
    pub version: u32,
    /// Commit-log segment size.
    pub commit_log_segment_size: u64,
    /// Consume-queue segment size in bytes.
    pub consume_queue_segment_size: u64,
    /// Whether every record must carry the whole-record CRC property (false for a store that
    /// RocketMQ started, whose old records have only the body CRC).
    pub record_crc_required: bool,
    /// Hash slots and entries of the store's index files (absent in stores written before the
    /// index: the configured shape then applies).
    pub index_layout: Option<(u32, u32)>,
}

impl Meta {
    /// Reads `dir/mqstore.meta`; `None` if absent.
    pub fn read(dir: &Path) -> Result<Option<Meta>> {
        let path = dir.join(META_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let mut version = None;
        let mut cl = None;
        let mut cq = None;
        let mut crc = None;
        let mut slots = None;
        let mut entries = None;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(Error::layout(&path, format!("unparsable line {line:?}")));
            };
            let (k, v) = (k.trim(), v.trim().trim_matches('"'));
            let bad = || Error::layout(&path, format!("bad value for {k}: {v:?}"));
            match k {
                "version" => version = Some(v.parse::<u32>().map_err(|_| bad())?),
                "commit_log_segment_size" => cl = Some(v.parse::<u64>().map_err(|_| bad())?),
                "consume_queue_segment_size" => cq = Some(v.parse::<u64>().map_err(|_| bad())?),
                "record_crc" => {
                    crc = Some(match v {
                        "required" => true,
                        "optional" => false,
                        _ => return Err(bad()),
                    })
                }
                "index_slots" => slots = Some(v.parse::<u32>().map_err(|_| bad())?),
                "index_entries" => entries = Some(v.parse::<u32>().map_err(|_| bad())?),
                _ => {} // unknown keys: written by a later minor version, ignored
            }
        }
        let missing = |what: &str| Error::layout(&path, format!("missing {what}"));
        let meta = Meta {
            version: version.ok_or_else(|| missing("version"))?,
            commit_log_segment_size: cl.ok_or_else(|| missing("commit_log_segment_size"))?,
            consume_queue_segment_size: cq.ok_or_else(|| missing("consume_queue_segment_size"))?,
            record_crc_required: crc.ok_or_else(|| missing("record_crc"))?,
            index_layout: match (slots, entries) {
                (Some(s), Some(e)) if s > 0 && e >= 2 && e < i32::MAX as u32 => Some((s, e)),
                (None, None) => None,
                _ => return Err(Error::layout(&path, "index_slots and index_entries are invalid")),
            },
        };
        if meta.version > FORMAT_VERSION {
            return Err(Error::layout(
                &path,
                format!(
                    "store format version {} is newer than this build's {FORMAT_VERSION}",
                    meta.version
                ),
            ));
        }
        if meta.commit_log_segment_size == 0
            || meta.consume_queue_segment_size == 0
            || !meta.consume_queue_segment_size.is_multiple_of(20)
        {
            return Err(Error::layout(&path, "segment sizes are invalid"));
        }
        Ok(Some(meta))
    }

    /// Writes the file atomically (temporary file, sync, rename, directory sync).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(META_FILE);
        let tmp = dir.join(format!("{META_FILE}.tmp"));
        let text = format!(
            "# mqstore store metadata: do not edit\nversion = {}\ncommit_log_segment_size = {}\nconsume_queue_segment_size = {}\nrecord_crc = \"{}\"\n",
            self.version,
            self.commit_log_segment_size,
            self.consume_queue_segment_size,
            if self.record_crc_required {
                "required"
            } else {
                "optional"
            }
        );
        let text = match self.index_layout {
            Some((slots, entries)) => format!("{text}index_slots = {slots}\nindex_entries = {entries}\n"),
            None => text,
        };
        let mut f = fs::File::create(&tmp).at(&tmp)?;
        f.write_all(text.as_bytes()).at(&tmp)?;
        f.sync_all().at(&tmp)?;
        fs::rename(&tmp, &path).at(&path)?;
        sync_dir(dir)?;
        Ok(())
    }
}
