//! Byte classes: the masker's scanning loops and `classify` look each byte
//! up once in a table instead of running chains of comparisons.

/// Byte classes for the scanning loops: one table load per byte instead of a
/// chain of comparisons. The OR of the classes of an atom's bytes also lets
/// `classify` settle plain words without looking at them again.
pub(super) const C_SPACE: u16 = 1;
pub(super) const C_DELIM: u16 = 2;
pub(super) const C_APOS: u16 = 4;
pub(super) const C_COLON: u16 = 8;
pub(super) const C_DIGIT: u16 = 16;
/// `a-f`, `A-F`
pub(super) const C_HEXL: u16 = 32;
/// `g-z`, `G-Z`
pub(super) const C_ALPHA: u16 = 64;
pub(super) const C_UNDERSCORE: u16 = 128;
/// `.`, `!`, `?`: sentence punctuation `atom` may trim (with `:` and `'`).
pub(super) const C_PUNCT: u16 = 256;
/// Anything else (`/`, `-`, `@`, non-ASCII…).
pub(super) const C_OTHER: u16 = 512;
/// The classes of a word's bytes: letters and `_`.
pub(super) const C_WORD: u16 = C_HEXL | C_ALPHA | C_UNDERSCORE;

pub(super) static BYTE_CLASS: [u16; 256] = {
    let mut t = [C_OTHER; 256];
    // `u8::is_ascii_whitespace`
    t[b' ' as usize] = C_SPACE;
    t[b'\t' as usize] = C_SPACE;
    t[b'\n' as usize] = C_SPACE;
    t[0x0c] = C_SPACE;
    t[b'\r' as usize] = C_SPACE;
    let delims = b"=,;()[]{}\"|<>`";
    let mut k = 0;
    while k < delims.len() {
        t[delims[k] as usize] = C_DELIM;
        k += 1;
    }
    t[b'\'' as usize] = C_APOS;
    t[b':' as usize] = C_COLON;
    t[b'.' as usize] = C_PUNCT;
    t[b'!' as usize] = C_PUNCT;
    t[b'?' as usize] = C_PUNCT;
    t[b'_' as usize] = C_UNDERSCORE;
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_digit() {
            t[b] = C_DIGIT;
        } else if c.is_ascii_hexdigit() {
            t[b] = C_HEXL;
        } else if c.is_ascii_alphabetic() {
            t[b] = C_ALPHA;
        }
        b += 1;
    }
    t
};

/// The OR of the byte classes of `t`.
#[inline]
pub(super) fn class_union(t: &[u8]) -> u16 {
    t.iter().fold(0, |acc, &b| acc | BYTE_CLASS[b as usize])
}

#[inline]
pub(super) fn is_space(b: u8) -> bool {
    BYTE_CLASS[b as usize] & C_SPACE != 0
}

/// Bytes that end an atom inside a word: `= , ; ( ) [ ] { } " | < > \``.
#[inline]
pub(super) fn is_delim(b: u8) -> bool {
    BYTE_CLASS[b as usize] & C_DELIM != 0
}

#[inline]
pub(super) fn is_quote(b: u8) -> bool {
    matches!(b, b'"' | b'\'' | b'`')
}
