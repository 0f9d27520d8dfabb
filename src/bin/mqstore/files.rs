//! Presentation helpers of `stat` and `dump`, and the store-directory check of every
//! inspection command; the reading itself is `mqstore::inspect`.

use std::fs;
use std::path::Path;

pub use mqstore::inspect::files::*;
pub use mqstore::inspect::format_millis;
use mqstore::layout::{COMMIT_LOG_DIR, CONSUME_QUEUE_DIR, META_FILE};

use crate::Failure;

/// Checks that `dir` is a readable store directory: the usage error of every inspection command.
pub fn check_store_dir(dir: &Path) -> Result<(), Failure> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(Failure::usage(format!("{} is not a directory", dir.display()))),
        Err(e) => return Err(Failure::usage(format!("cannot read {}: {e}", dir.display()))),
    }
    fs::read_dir(dir).map_err(|e| Failure::usage(format!("cannot read {}: {e}", dir.display())))?;
    let markers = [COMMIT_LOG_DIR, CONSUME_QUEUE_DIR, META_FILE];
    if !markers.iter().any(|m| dir.join(m).exists()) {
        return Err(Failure::usage(format!(
            "{} does not look like a store directory (no {COMMIT_LOG_DIR}/, {CONSUME_QUEUE_DIR}/ or {META_FILE})",
            dir.display()
        )));
    }
    Ok(())
}

/// A short, one-line preview of a body: text (control characters escaped) when it is UTF-8,
/// else hex; at most `max` characters of text or `max / 2` bytes of hex, with `…` when cut.
pub fn body_preview(body: &[u8], max: usize) -> String {
    match body_text(body) {
        Some(text) => {
            let mut out: String = text.chars().take(max).flat_map(char::escape_debug).collect();
            if text.chars().nth(max).is_some() {
                out.push('…');
            }
            format!("\"{out}\"")
        }
        None => {
            let n = body.len().min(max / 2);
            let mut out = format!("0x{}", hex(&body[..n]));
            if n < body.len() {
                out.push('…');
            }
            out
        }
    }
}

/// The body as text: when it is UTF-8 without control characters other than tab, CR and LF.
pub fn body_text(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    let binary = text.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'));
    (!binary).then_some(text)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A hex dump (16 bytes a line, offsets and ASCII) of `bytes`, each line indented by `indent`.
pub fn hex_dump(bytes: &[u8], indent: &str) -> String {
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let hexes: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String = chunk
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!("{indent}{:08x}  {:<47}  {ascii}\n", i * 16, hexes.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch_millis() {
        assert_eq!(format_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(format_millis(1_714_566_896_789), "2024-05-01T12:34:56.789Z");
        assert_eq!(format_millis(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn previews_text_and_binary() {
        assert_eq!(body_preview(b"hello", 10), "\"hello\"");
        assert_eq!(body_preview(b"hello world", 5), "\"hello…\"");
        assert_eq!(body_preview(b"a\nb", 10), "\"a\\nb\"");
        assert_eq!(body_preview(&[0xff, 0x00, 0x01], 4), "0xff00…");
        assert_eq!(body_preview(&[0x00, 0x01], 8), "0x0001");
    }
}
