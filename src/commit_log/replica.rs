//! The commit log's side of replication: what a master reads to send, how a slave appends what
//! it receives and cuts what diverged.
//!
//! A slave's log is byte-identical to its master's: the same records at the same offsets, the
//! same fillers at the same segment ends. So a slave never decides a roll-over: it checks that
//! every record fits where the master put it, and seals a segment where the master's filler says.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::CommitLog;
use crate::codec::{self, BLANK_LEN, Frame, Verify};
use crate::error::{Error, IoContext, Result};
use crate::message::MessageSource;
use crate::segment::{Backend, Bytes, SegmentRead};

/// What replicated bytes hold, checked before anything is written.
struct Checked {
    /// Record lengths in order; a filler ends the list.
    records: Vec<u32>,
    /// The bytes end with an end-of-segment filler.
    sealed: bool,
    last_store_timestamp: u64,
}

impl<B: Backend> CommitLog<B> {
    /// Makes the log a slave's (`Some(master)`: producer appends are refused) or a master's.
    /// Taken under the append lock, so no producer append races the change.
    pub(crate) fn set_slave_of(&self, master: Option<std::net::SocketAddr>) {
        self.state.lock().slave_of = master;
    }

    /// Whole records from `offset` in the segment holding it, at most `max` bytes (at least
    /// one record), not past `limit`, ending after an end-of-segment filler (its header only).
    /// `None` when nothing is published at `offset` yet. Also returns where the next chunk
    /// starts: the next segment after a filler.
    pub(crate) fn read_chunk(
        &self,
        offset: u64,
        max: usize,
        limit: u64,
    ) -> Result<Option<(MessageSource, usize, u64)>> {
        let end = self.max_offset();
        if offset >= end {
            if offset == end {
                return Ok(None);
            }
            return Err(Error::ReplicaData {
                offset,
                reason: format!("past the end of the master's log ({end})"),
            });
        }
        let bad = |reason: String| Error::ReplicaData { offset, reason };
        let segment = self
            .segments
            .find(offset)
            .ok_or_else(|| bad(format!("below the master's oldest segment ({})", self.min_offset())))?;
        let pos = offset - segment.start();
        let Some(bytes) = segment.read_from(pos) else {
            return Ok(None);
        };
        // The segment publishes before the log's end moves: never send past the end, or the
        // slave would acknowledge bytes the master does not yet count as appended.
        let available = bytes.len().min((end - offset) as usize);
        let mut len = 0usize;
        let mut sealed = false;
        while (offset + len as u64) < limit && len < available {
            match codec::decode(&bytes[len..available], Verify::Framing) {
                Ok(Frame::Record(view)) => {
                    if view.physical_offset != offset + len as u64 {
                        if len == 0 {
                            return Err(bad(format!(
                                "not where a record starts (the record here says {})",
                                view.physical_offset
                            )));
                        }
                        break;
                    }
                    if len > 0 && len + view.total_size as usize > max {
                        break;
                    }
                    len += view.total_size as usize;
                }
                Ok(Frame::Blank { .. }) => {
                    len += BLANK_LEN;
                    sealed = true;
                    break;
                }
                Err(e) if len == 0 => return Err(bad(format!("not where a record starts: {e}"))),
                // Damage further on: send what is before it.
                Err(_) => break,
            }
        }
        if len == 0 {
            return Ok(None);
        }
        let source = match bytes {
            Bytes::Mapped(_) => MessageSource::Mapped(Arc::clone(&segment) as Arc<dyn SegmentRead>, pos),
            Bytes::Buffered(slice) => MessageSource::Buffered(slice),
        };
        let next = if sealed { segment.end() } else { offset + len as u64 };
        Ok(Some((source, len, next)))
    }

    /// Checks replicated bytes meant for `offset` without the lock: every record whole, valid as
    /// `verify` says, carrying its own offset, and fitting its segment as a master places it; a
    /// filler only last, declaring exactly the rest of its segment.
    fn check_replicated(&self, offset: u64, bytes: &[u8], verify: Verify) -> Result<Checked> {
        let segment_size = self.segment_size();
        let mut checked = Checked {
            records: Vec::new(),
            sealed: false,
            last_store_timestamp: 0,
        };
        let mut pos = 0usize;
        while pos < bytes.len() {
            let at = offset + pos as u64;
            let bad = |reason: String| Error::ReplicaData { offset: at, reason };
            let in_segment = at % segment_size;
            match codec::decode(&bytes[pos..], verify) {
                Ok(Frame::Record(view)) => {
                    if view.physical_offset != at {
                        return Err(bad(format!("record says it is at {}", view.physical_offset)));
                    }
                    if in_segment + view.total_size as u64 + BLANK_LEN as u64 > segment_size {
                        return Err(bad(format!(
                            "a record of {} bytes does not fit segment of {segment_size} bytes at {in_segment}",
                            view.total_size
                        )));
                    }
                    checked.last_store_timestamp = checked.last_store_timestamp.max(view.store_timestamp.max(0) as u64);
                    checked.records.push(view.total_size);
                    pos += view.total_size as usize;
                }
                Ok(Frame::Blank { len }) => {
                    if len as u64 != segment_size - in_segment {
                        return Err(bad(format!(
                            "end-of-segment filler declares {len} bytes, the segment has {} left",
                            segment_size - in_segment
                        )));
                    }
                    if pos + BLANK_LEN != bytes.len() {
                        return Err(bad("bytes follow an end-of-segment filler".into()));
                    }
                    checked.sealed = true;
                    pos += BLANK_LEN;
                }
                Err(e) => return Err(bad(e.to_string())),
            }
        }
        Ok(checked)
    }

    /// Appends a master's bytes at `offset` (see [`check_replicated`](Self::check_replicated)):
    /// all of them or, if any is invalid or they do not continue the log, none. Returns the new
    /// end of the log.
    pub(crate) fn append_replicated(&self, offset: u64, bytes: &[u8], verify: Verify) -> Result<u64> {
        if bytes.is_empty() {
            return Err(Error::ReplicaData {
                offset,
                reason: "no bytes".into(),
            });
        }
        // The CRCs, the costly part, are checked before taking the lock.
        let checked = self.check_replicated(offset, bytes, verify)?;
        let mut state = self.state.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if state.slave_of.is_none() {
            return Err(Error::ReplicaData {
                offset,
                reason: "the store is a master: it takes no replicated bytes".into(),
            });
        }
        // Appends made before the store became a slave finish first.
        self.drain(&state);
        let expected = self.written.load(Ordering::Acquire);
        if offset != expected {
            return Err(Error::ReplicaOffsetMismatch { expected, got: offset });
        }
        let mut pos = 0usize;
        for &len in &checked.records {
            self.ensure_room(&mut state, len as u64)?;
            let writer = state.writer.as_mut().expect("ensure_room sets the writer");
            if writer.position() != offset + pos as u64 {
                // The checks above make this unreachable; refuse rather than misplace a record.
                return Err(Error::ReplicaData {
                    offset: offset + pos as u64,
                    reason: format!("the log's writer is at {}", writer.position()),
                });
            }
            writer.write(&bytes[pos..pos + len as usize]);
            // Published record by record: a roll-over's filler is published in order after them.
            writer.publish();
            self.written.store(writer.position(), Ordering::Release);
            self.sequence.reset(writer.position());
            pos += len as usize;
        }
        if checked.sealed {
            let at = offset + pos as u64;
            match state.writer.as_mut() {
                Some(w) if w.position() == at => self.seal_segment(w),
                // A filler first in the bytes: the segment was resumed, not yet written to.
                _ => {
                    self.ensure_room(&mut state, 0)?;
                    let w = state.writer.as_mut().expect("ensure_room sets the writer");
                    if w.position() != at {
                        return Err(Error::ReplicaData {
                            offset: at,
                            reason: format!("filler for {at}, but the log's writer is at {}", w.position()),
                        });
                    }
                    self.seal_segment(w);
                }
            }
        }
        let timestamp = state.last_store_timestamp.max(checked.last_store_timestamp);
        state.last_store_timestamp = timestamp;
        self.last_timestamp.store(timestamp, Ordering::Release);
        Ok(self.written.load(Ordering::Acquire))
    }

    /// Cuts the log at `offset` while it is live (a slave truncated after a failover): the
    /// segment holding it keeps only what is below (zeroed past, or replaced by a copy if
    /// readers hold it), whole segments past it are moved into `lost_found`. Returns where they
    /// went.
    pub(crate) fn truncate_replicated(&self, offset: u64, lost_found: &Path) -> Result<Vec<PathBuf>> {
        let mut state = self.state.lock();
        self.drain(&state);
        let end = self.written.load(Ordering::Acquire);
        if offset >= end {
            return Ok(Vec::new());
        }
        state.writer = None;
        let removed = self.segments.truncate_live(offset)?;
        self.written.store(offset, Ordering::Release);
        self.sequence.reset(offset);
        self.committed.fetch_min(offset, Ordering::AcqRel);
        self.flushed.fetch_min(offset, Ordering::AcqRel);
        let backend = self.segments.backend();
        let mut moved = Vec::with_capacity(removed.len());
        if !removed.is_empty() {
            backend.create_dir_all(lost_found).at(lost_found)?;
        }
        for path in removed {
            let to = lost_found.join(path.file_name().unwrap_or_default());
            backend.rename(&path, &to).at(&path)?;
            moved.push(to);
        }
        drop(state);
        self.prepare_ahead();
        Ok(moved)
    }
}
