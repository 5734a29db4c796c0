//! UTF-8 checks of protobuf `string` fields.
//!
//! Why not just `std::str::from_utf8`: almost every string in telemetry is
//! short ASCII at an arbitrary offset of the request, where the standard
//! check walks byte by byte (its word-at-a-time path needs an aligned
//! start). `<[u8]>::is_ascii` reads unaligned words, so for ASCII the check
//! costs a few instructions per 8 bytes; anything else takes the full check.
//! Every string of a request is checked once by the validator and read
//! again by the views, so this is on the hot path twice.

/// The bytes as text, if they are UTF-8.
#[inline]
pub fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

/// Whether the bytes are UTF-8.
#[inline]
pub fn is_utf8(bytes: &[u8]) -> bool {
    bytes.is_ascii() || std::str::from_utf8(bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_standard_check() {
        let cases: &[&[u8]] = &[
            b"",
            b"plain ascii text of some length, longer than a word",
            "h\u{e9}llo w\u{f6}rld \u{2713}".as_bytes(),
            b"\xff",
            b"abc\xc3",
            b"abcdefgh\xe2\x82",
            b"\xed\xa0\x80",
            b"\x7f\x00\x01",
        ];
        for bytes in cases {
            let expected = std::str::from_utf8(bytes).ok();
            assert_eq!(utf8(bytes), expected, "{bytes:?}");
            assert_eq!(is_utf8(bytes), expected.is_some(), "{bytes:?}");
        }
        // Every offset and length of a mixed buffer, to cover unaligned
        // starts and ends.
        let mixed = "ab\u{e9}cdefghijk\u{2713}lmnopqrstuvwxyz0123456789".as_bytes();
        let mut broken = mixed.to_vec();
        broken[20] = 0xff;
        for buf in [mixed, &broken[..]] {
            for start in 0..buf.len() {
                for end in start..=buf.len() {
                    let bytes = &buf[start..end];
                    assert_eq!(utf8(bytes), std::str::from_utf8(bytes).ok());
                }
            }
        }
    }
}
