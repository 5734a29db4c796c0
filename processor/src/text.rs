//! Text helpers with an ASCII fast path.
//!
//! Why: the standard library's `trim` and `char::is_whitespace` decode
//! every character to apply Unicode's definitions, and they run on every
//! message and trace id. Almost all of these are ASCII, where the answer
//! can be read from the bytes; other text takes the standard path, so the
//! results are exactly those of `str::trim` and `char::is_whitespace`.

/// `str::trim`, without decoding characters when the text starts and ends
/// with visible ASCII (almost every message), which `trim` would keep.
#[inline]
pub fn trim(s: &str) -> &str {
    match s.as_bytes() {
        [a, .., z] if a.is_ascii_graphic() && z.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

/// Whether `s` contains a character for which `char::is_whitespace` holds.
pub fn has_whitespace(s: &str) -> bool {
    // Visible ASCII has none: checked 16 bytes at a time, without an early
    // exit inside a block so that the check compiles to vector compares.
    let visible_ascii = |block: &[u8]| {
        block
            .iter()
            .fold(true, |ok, &b| ok & (b > b' ') & (b < 0x7f))
    };
    let mut blocks = s.as_bytes().chunks_exact(16);
    if blocks.all(visible_ascii) && visible_ascii(blocks.remainder()) {
        return false;
    }
    if s.is_ascii() {
        // ASCII whitespace in Unicode's sense: tab, line feed, vertical tab,
        // form feed, carriage return and space (`u8::is_ascii_whitespace`
        // leaves out the vertical tab).
        s.bytes().any(|b| matches!(b, b'\t'..=b'\r' | b' '))
    } else {
        s.contains(char::is_whitespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_standard_library() {
        let samples = [
            "",
            " ",
            "a",
            " a ",
            "\u{b}x\u{b}",
            "x\u{c}",
            "projects/p/traces/0af7651916cd43dd8448eb211c80319c",
            "\u{a0}nbsp\u{a0}",
            "tab\there",
            "é",
            "\u{2003}em",
            "no-space",
            "\r\n",
            "0af7651916cd43dd8448eb211c80319c",
            "0af7651916cd43dd 8448eb211c80319c",
            "0af7651916cd43dd8448eb211c80319c\u{85}",
            "0af7651916cd43dd8448eb211c80319\x7f",
        ];
        for s in samples {
            assert_eq!(trim(s), s.trim(), "{s:?}");
            assert_eq!(has_whitespace(s), s.contains(char::is_whitespace), "{s:?}");
        }
        for b in 0u8..128 {
            let s = (b as char).to_string();
            assert_eq!(has_whitespace(&s), s.contains(char::is_whitespace), "{b}");
            assert_eq!(trim(&s), s.trim(), "{b}");
        }
    }
}
