//! Finding records in the raw bytes of a commit-log segment.

use crate::codec::{self, Frame, Verify};

/// The first valid record strictly after `pos` in `data` (the bytes of a segment starting at
/// log offset `base`), as a log offset: a record magic at byte 4, the record's physical offset
/// at byte 28 equal to its own position, then a full decode at `verify`.
///
/// Both record magics share their first three bytes: a vectorised search for them passes over
/// zeros and garbage fast, and with the self-referencing offset few candidates get a decode.
pub fn next_valid_record(data: &[u8], base: u64, pos: usize, verify: Verify) -> Option<u64> {
    let first = pos.checked_add(1)?;
    let prefix = &codec::MAGIC_V1.to_be_bytes()[..3];
    let from_magic = first.checked_add(4)?;
    for hit in memchr::memmem::find_iter(data.get(from_magic..)?, prefix) {
        let at = from_magic + hit - 4;
        if at + codec::MIN_RECORD_LEN > data.len() {
            break;
        }
        let magic = u32::from_be_bytes([data[at + 4], data[at + 5], data[at + 6], data[at + 7]]);
        if magic != codec::MAGIC_V1 && magic != codec::MAGIC_V2 {
            continue;
        }
        let mut phys = [0u8; 8];
        phys.copy_from_slice(&data[at + 28..at + 36]);
        if u64::from_be_bytes(phys) == base + at as u64
            && matches!(codec::decode(&data[at..], verify), Ok(Frame::Record(_)))
        {
            return Some(base + at as u64);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_panics_on_short_or_random_bytes() {
        for len in [0usize, 1, 35, 90, 91, 92, 200] {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            for pos in 0..len.max(1) {
                let _ = next_valid_record(&data, 0, pos, Verify::Crc);
            }
        }
        assert_eq!(next_valid_record(&[0u8; 100], 0, usize::MAX, Verify::Crc), None);
    }
}
