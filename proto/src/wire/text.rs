//! UTF-8 checks of protobuf `string` fields.
//!
//! Why not just `std::str::from_utf8`: almost every string in telemetry is
//! short ASCII at an arbitrary offset of the request, where the standard
//! check walks byte by byte (its word-at-a-time path needs an aligned
//! start). [`is_ascii`] reads unaligned words, so for ASCII the check costs
//! a few instructions per 8 bytes; anything else takes the full check.
//! Every string of a request is checked once by the validator and read
//! again by the views, so this is on the hot path twice.

/// Whether every byte is ASCII.
///
/// The same answer as `<[u8]>::is_ascii`, cheaper on the short strings of
/// telemetry (keys of 10–30 bytes, values of 5–100): the standard check
/// aligns its word loop first, which costs more than the loop on such
/// strings. Here every 8 bytes are one unaligned load and one `or`, and
/// the last 8 are loaded again, overlapping, instead of a byte-by-byte
/// tail; strings under 8 bytes take two overlapping 4-byte loads, or a
/// byte loop under 4.
#[inline]
pub fn is_ascii(bytes: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let n = bytes.len();
    if n >= 8 {
        let word = |w: &[u8]| u64::from_le_bytes(w.try_into().expect("8 bytes"));
        let tail = word(&bytes[n - 8..]);
        bytes.chunks_exact(8).fold(tail, |acc, w| acc | word(w)) & HIGH == 0
    } else if n >= 4 {
        let word = |w: &[u8]| u32::from_le_bytes(w.try_into().expect("4 bytes"));
        (word(&bytes[..4]) | word(&bytes[n - 4..])) & 0x8080_8080 == 0
    } else {
        bytes.iter().fold(0, |acc, &b| acc | b) < 0x80
    }
}

/// The bytes as text, if they are UTF-8.
#[inline]
pub fn utf8(bytes: &[u8]) -> Option<&str> {
    if is_ascii(bytes) {
        // SAFETY: ASCII bytes are valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

/// Whether the bytes are UTF-8.
#[inline]
pub fn is_utf8(bytes: &[u8]) -> bool {
    is_ascii(bytes) || std::str::from_utf8(bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length up to 80, every position of a high byte, every offset
    /// into a buffer (the loads are unaligned).
    #[test]
    fn is_ascii_agrees_with_the_standard_check() {
        let buf: Vec<u8> = (0..100u8).map(|i| b'a' + i % 26).collect();
        for start in 0..8 {
            for n in 0..80 {
                let ascii = &buf[start..start + n];
                assert!(is_ascii(ascii), "{start} {n}");
                for at in 0..n {
                    for high in [0x80u8, 0xc3, 0xff] {
                        let mut b = ascii.to_vec();
                        b[at] = high;
                        assert!(!is_ascii(&b), "{start} {n} {at} {high:#x}");
                        assert_eq!(is_ascii(&b), b.is_ascii());
                    }
                }
            }
        }
    }

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
