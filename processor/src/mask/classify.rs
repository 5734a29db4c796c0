//! Classification of one atom (a whitespace- and delimiter-free token):
//! which placeholder it becomes, if any, from its shape alone.

use super::bytes::*;
use super::words::*;
use super::Placeholder;
use crate::secrets;

/// Classifies a whitespace- and delimiter-free atom: `Some(placeholder)` when
/// it is a value, `None` when it is a word to keep.
pub fn classify(t: &[u8]) -> Option<Placeholder> {
    classify_with(t, class_union(t))
}

/// [`classify`] given `flags`, the OR of the byte classes of `t`. The fast
/// paths (plain words, numbers: most atoms) are inlined into the masker.
#[inline(always)]
pub(super) fn classify_with(t: &[u8], flags: u16) -> Option<Placeholder> {
    if t.is_empty() {
        return None;
    }
    // Fast path: a short word of letters and underscores (most atoms) is a
    // value only when it is long hex or a boolean; the secret shapes need at
    // least 16 bytes (API keys) or a `.`/`@`/digit.
    if flags & !(C_HEXL | C_ALPHA | C_UNDERSCORE) == 0 {
        if t.len() >= 8 && flags == C_HEXL {
            return Some(Placeholder::Hex);
        }
        if t.len() < 16 {
            return is_bool_word(t).then_some(Placeholder::Any);
        }
        // Long words: what the general path below would decide for a word
        // without digits, dots, slashes or `@` (no boolean is this long, a
        // JWT has dots).
        return (secrets::looks_like_api_key(t) || secrets::looks_random(t))
            .then_some(Placeholder::Str);
    }
    // Only digits: a number (no known digit word, UUID, secret prefix or
    // hex prefix is made of digits alone).
    if flags == C_DIGIT {
        return Some(Placeholder::Num);
    }
    classify_general(t)
}

/// [`classify_with`] for the atoms its fast paths do not settle: counts the
/// byte classes and tries the value shapes one by one.
#[inline(never)]
fn classify_general(t: &[u8]) -> Option<Placeholder> {
    let [digits, alpha, hexalpha, colons, dots, slashes, backslashes, dashes, at, other] =
        count_classes(t);
    if at == 1 && secrets::looks_like_email(t) {
        return Some(Placeholder::Email);
    }
    if digits == 0 {
        if slashes + backslashes > 0 {
            return is_path(t, slashes, backslashes, dots).then_some(Placeholder::Path);
        }
        if alpha == hexalpha && alpha >= 8 && t.len() == alpha {
            return Some(Placeholder::Hex);
        }
        if is_bool_word(t) {
            return Some(Placeholder::Any);
        }
        if dots > 0 && is_file_name(t) {
            return Some(Placeholder::Path);
        }
        if dots > 0 && is_host_name(t) {
            return Some(Placeholder::Any);
        }
        // `is_secret_shaped` minus the email test, done above (an email
        // has exactly one `@`).
        if secrets::looks_like_jwt(t) || secrets::looks_like_api_key(t) || secrets::looks_random(t)
        {
            return Some(Placeholder::Str);
        }
        return None;
    }
    // Contains digits from here on.
    if is_known_digit_word(t) || (dots > 0 && is_qualified_class_name(t)) {
        return None;
    }
    if t.len() == 36 && is_uuid(t) {
        return Some(Placeholder::Uuid);
    }
    if secrets::looks_like_jwt(t) || secrets::looks_like_api_key(t) {
        return Some(Placeholder::Str);
    }
    if slashes + backslashes > 0
        && t.iter().any(|b| b.is_ascii_alphabetic())
        && is_path(t, slashes, backslashes, dots)
    {
        return Some(Placeholder::Path);
    }
    if let Some(p) = numeric(t, digits, colons, dots, dashes, slashes, other) {
        return Some(p);
    }
    // Only digits and hex letters (a `0x` prefix has a non-hex letter, so
    // it never gets here).
    if alpha == hexalpha
        && other == 0
        && colons == 0
        && dots == 0
        && slashes == 0
        && t.len() >= 6
        && digits + hexalpha == t.len()
    {
        return Some(Placeholder::Hex);
    }
    if colons >= 2 && is_ipv6(t) {
        return Some(Placeholder::Ip);
    }
    if dots > 0 && is_file_name(t) {
        return Some(Placeholder::Path);
    }
    Some(Placeholder::Id)
}

/// A class named by its module path where a module's name holds digits:
/// `psycopg2.OperationalError`, `urllib3.exceptions.MaxRetryError`. Each
/// dot-separated part is a word of letters and underscores or a known
/// digit word, and the last starts with a capital (a class, not a file
/// such as `psycopg2.py`). Why: masked, the exception's class left the
/// template (`<id>: could not connect`), and errors of different classes
/// shared a signature.
fn is_qualified_class_name(t: &[u8]) -> bool {
    let mut parts = t.split(|&b| b == b'.');
    let last_is_class = t
        .rsplit(|&b| b == b'.')
        .next()
        .is_some_and(|last| last.first().is_some_and(u8::is_ascii_uppercase));
    last_is_class
        && parts.all(|part| {
            !part.is_empty()
                && (part.iter().all(|&b| b.is_ascii_alphabetic() || b == b'_')
                    || is_known_digit_word(part))
        })
}

/// The counter fields of a byte for [`count_classes`]: a bit set of field
/// numbers (digits 0, letters 1, hex letters 2, `:` 3, `.` 4, `/` 5, `\\` 6,
/// `-` 7, `@` 8, other 9; `_` counts nowhere).
const fn count_fields(c: u8) -> u32 {
    let field = match c {
        b'0'..=b'9' => 0,
        b'a'..=b'z' | b'A'..=b'Z' => 1,
        b':' => 3,
        b'.' => 4,
        b'/' => 5,
        b'\\' => 6,
        b'-' => 7,
        b'@' => 8,
        b'_' => return 0,
        _ => 9,
    };
    let hex = if c.is_ascii_hexdigit() && !c.is_ascii_digit() {
        1 << 2
    } else {
        0
    };
    (1 << field) | hex
}

/// Per-byte increments of the packed counters of [`count_classes`]: ten
/// 12-bit fields, so that counting is one table load and one add per byte
/// instead of a chain of comparisons.
static COUNT_INC: [u128; 256] = {
    let mut t = [0u128; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = packed_increment(b as u8, 12);
        b += 1;
    }
    t
};

/// The increment of byte `c` with one `width`-bit field per class of
/// [`count_fields`], for the two packed count tables.
const fn packed_increment(c: u8, width: u32) -> u128 {
    let fields = count_fields(c);
    let mut increment = 0u128;
    let mut f = 0;
    while f < 10 {
        if fields & (1 << f) != 0 {
            increment |= 1u128 << (width * f);
        }
        f += 1;
    }
    increment
}

/// [`COUNT_INC`] with 6-bit fields in one 64-bit word, for atoms shorter
/// than 64 bytes (nearly all): cheaper to add up and to unpack.
static COUNT_INC_SHORT: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        // Ten 6-bit fields fit in 60 bits: the cast keeps every bit.
        t[b] = packed_increment(b as u8, 6) as u64;
        b += 1;
    }
    t
};

/// Counts of digits, letters, hex letters, colons, dots, slashes,
/// backslashes, dashes, `@` and other bytes (`_` is none of them).
pub(super) fn count_classes(t: &[u8]) -> [usize; 10] {
    if t.len() < 64 {
        // A 6-bit field holds up to 63.
        let packed = t
            .iter()
            .fold(0u64, |acc, &b| acc + COUNT_INC_SHORT[b as usize]);
        return std::array::from_fn(|k| ((packed >> (6 * k)) & 63) as usize);
    }
    let mut counts = [0usize; 10];
    // A 12-bit field holds up to 4095 per chunk.
    for chunk in t.chunks(4095) {
        let packed = chunk
            .iter()
            .fold(0u128, |acc, &b| acc + COUNT_INC[b as usize]);
        for (k, c) in counts.iter_mut().enumerate() {
            *c += ((packed >> (12 * k)) & 0xfff) as usize;
        }
    }
    counts
}

/// Numbers, IPs, timestamps and durations: tokens made of digits and a few
/// separators.
pub(super) fn numeric(
    t: &[u8],
    digits: usize,
    colons: usize,
    dots: usize,
    dashes: usize,
    slashes: usize,
    other: usize,
) -> Option<Placeholder> {
    let body = match t[0] {
        b'-' | b'+' => &t[1..],
        _ => t,
    };
    if body.is_empty() || !body[0].is_ascii_digit() {
        if body.starts_with(b".") && body.len() > 1 && body[1..].iter().all(u8::is_ascii_digit) {
            return Some(Placeholder::Num);
        }
        return None;
    }
    // 0x1f
    if body.len() > 2 && body[0] == b'0' && (body[1] == b'x' || body[1] == b'X') {
        return body[2..]
            .iter()
            .all(u8::is_ascii_hexdigit)
            .then_some(Placeholder::Hex);
    }
    // A leading sign is neither a digit nor a dot.
    let all_digits_dots = digits + dots == body.len();
    if all_digits_dots {
        if dots == 3 && is_ipv4(body) {
            return Some(Placeholder::Ip);
        }
        return Some(Placeholder::Num);
    }
    // IPv4 with port or CIDR.
    if let Some(p) = body.iter().position(|&b| b == b':' || b == b'/') {
        if is_ipv4(&body[..p]) && body[p + 1..].iter().all(u8::is_ascii_digit) && p + 1 < body.len()
        {
            return Some(Placeholder::Ip);
        }
    }
    // Timestamps: digits with - : . , / T Z + separators.
    if other <= 1
        && body.iter().all(|&b| {
            b.is_ascii_digit() || matches!(b, b'-' | b':' | b'.' | b',' | b'/' | b'T' | b'Z' | b'+')
        })
        && (colons >= 1 || dashes >= 2 || slashes >= 2)
    {
        return Some(Placeholder::Ts);
    }
    // 12ms, 1.5s, 30sec, 10KB, 99%
    let num_end = body
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b'.'))
        .unwrap_or(body.len());
    let unit = &body[num_end..];
    if !unit.is_empty() && (is_time_unit(unit) || matches!(unit, b"m" | b"d")) {
        return Some(Placeholder::Duration);
    }
    if !unit.is_empty() && is_unit(unit)
        || unit == b"%"
        || unit == b"k"
        || unit == b"K"
        || unit == b"M"
        || unit == b"G"
    {
        return Some(Placeholder::Num);
    }
    None
}

pub(super) fn is_ipv4(t: &[u8]) -> bool {
    let mut parts = 0;
    for p in t.split(|&b| b == b'.') {
        if p.is_empty() || p.len() > 3 || !p.iter().all(u8::is_ascii_digit) {
            return false;
        }
        parts += 1;
    }
    parts == 4
}

pub(super) fn is_ipv6(t: &[u8]) -> bool {
    let t = t.strip_prefix(b"[").unwrap_or(t);
    t.iter()
        .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.' | b'%' | b']'))
        && t.iter().filter(|&&b| b == b':').count() >= 2
        && t.split(|&b| b == b':')
            .all(|g| g.len() <= 4 || g.contains(&b'.') || g.contains(&b']'))
}

pub(super) fn is_uuid(t: &[u8]) -> bool {
    t.iter().enumerate().all(|(k, &b)| match k {
        8 | 13 | 18 | 23 => b == b'-',
        _ => b.is_ascii_hexdigit(),
    })
}

/// Paths: absolute, relative with `./`, home `~/`, Windows `C:\`, or with at
/// least two separators or a separator and a dot (`com.app/.MainActivity`).
/// `I/O`, `and/or`, `TCP/IP` stay words.
pub(super) fn is_path(t: &[u8], slashes: usize, backslashes: usize, dots: usize) -> bool {
    matches!(t[0], b'/' | b'~' | b'\\')
        || t.starts_with(b"./")
        || t.starts_with(b"../")
        || (t.len() > 2 && t[1] == b':' && (t[2] == b'\\' || t[2] == b'/'))
        || slashes + backslashes >= 2
        || dots > 0
}

/// A file name with a well-known extension (`chrome.exe`, `app.py`).
pub(super) fn is_file_name(t: &[u8]) -> bool {
    static EXT: WordSet = WordSet::new(&[
        b"exe",
        b"dll",
        b"so",
        b"dylib",
        b"sys",
        b"py",
        b"pyc",
        b"js",
        b"mjs",
        b"ts",
        b"java",
        b"class",
        b"jar",
        b"go",
        b"rs",
        b"rb",
        b"php",
        b"c",
        b"h",
        b"cc",
        b"cpp",
        b"log",
        b"txt",
        b"json",
        b"yaml",
        b"yml",
        b"xml",
        b"html",
        b"htm",
        b"css",
        b"csv",
        b"conf",
        b"cfg",
        b"ini",
        b"toml",
        b"sh",
        b"bat",
        b"png",
        b"jpg",
        b"jpeg",
        b"gif",
        b"svg",
        b"pdf",
        b"zip",
        b"gz",
        b"tar",
        b"tgz",
        b"sql",
        b"db",
        b"sqlite",
        b"pid",
        b"lock",
        b"tmp",
        b"bak",
        b"out",
        b"err",
        b"dat",
        b"bin",
        b"img",
        b"iso",
        b"plist",
        b"app",
        b"xpc",
        b"framework",
        b"bundle",
        b"kext",
        b"dmg",
        b"pkg",
        b"deb",
        b"rpm",
        b"rts",
        b"pem",
        b"crt",
        b"key",
    ]);
    let Some(d) = t.iter().rposition(|&b| b == b'.') else {
        return false;
    };
    d > 0 && EXT.contains_ignore_case(&t[d + 1..])
}

/// Host names: dot-separated lower-case labels ending in a top-level domain
/// (`csnsu.nsuok.edu`, `api.example.com`). Module paths
/// (`netra_backend.app.agents`) and Java classes (`java.lang.Error`) do not
/// match: underscores and upper-case class names are not host-like.
pub(super) fn is_host_name(t: &[u8]) -> bool {
    static GTLD: WordSet = WordSet::new(&[
        b"com",
        b"net",
        b"org",
        b"edu",
        b"gov",
        b"mil",
        b"io",
        b"info",
        b"biz",
        b"local",
        b"internal",
        b"lan",
        b"cloud",
        b"dev",
        b"ai",
        b"app",
    ]);
    if t.iter()
        .any(|&b| !(b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
        || t.starts_with(b".")
    {
        return false;
    }
    let labels = t.split(|&b| b == b'.').count();
    let last = t.rsplit(|&b| b == b'.').next().unwrap_or_default();
    if last.is_empty() || !last.iter().all(u8::is_ascii_lowercase) {
        return false;
    }
    GTLD.contains(last) || (labels >= 3 && last.len() == 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counts by comparisons, one byte at a time.
    fn naive_counts(t: &[u8]) -> [usize; 10] {
        let mut c = [0usize; 10];
        for &b in t {
            match b {
                b'0'..=b'9' => c[0] += 1,
                b'a'..=b'z' | b'A'..=b'Z' => {
                    c[1] += 1;
                    if b.is_ascii_hexdigit() {
                        c[2] += 1;
                    }
                }
                b':' => c[3] += 1,
                b'.' => c[4] += 1,
                b'/' => c[5] += 1,
                b'\\' => c[6] += 1,
                b'-' => c[7] += 1,
                b'@' => c[8] += 1,
                b'_' => {}
                _ => c[9] += 1,
            }
        }
        c
    }

    #[test]
    fn packed_counts_match_naive_counts() {
        let all: Vec<u8> = (0..=255u8).collect();
        let mut inputs: Vec<Vec<u8>> = vec![
            b"blk_-1608999687919862906".to_vec(),
            b"C:\\x/y.z@a:b-c_d".to_vec(),
            "é日本".as_bytes().to_vec(),
            all.clone(),
        ];
        for n in [1, 62, 63, 64, 65, 4095, 4096, 9000] {
            inputs.push(all.iter().cycle().take(n).copied().collect());
            inputs.push(vec![b'7'; n]);
        }
        for t in &inputs {
            assert_eq!(
                count_classes(t),
                naive_counts(t),
                "{:?}",
                &t[..t.len().min(20)]
            );
        }
    }
}
