//! Text forms shared by the inspection reports: times, aligned tables, previews of bodies
//! that may be text or binary.

/// Formats ms since the epoch as an ISO-8601 UTC time, e.g. `2024-05-01T12:34:56.789Z`.
pub fn format_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (year, month, day) = crate::index::file::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

/// Rows as aligned columns (right-aligned where `right`), one line each, prefixed by `indent`.
pub fn table<const N: usize>(rows: &[[String; N]], indent: &str, right: &[bool; N]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::from(indent);
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i] - cell.chars().count();
            if right[i] {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if i + 1 < N {
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
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

/// Escapes control characters, keeping everything else as is (topics, keys and properties are
/// printed as they are, but must not move the terminal's cursor).
pub fn escape_controls(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_debug().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
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
