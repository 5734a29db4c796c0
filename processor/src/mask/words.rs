//! The word lists of the masker (months, units, stop words…) and the
//! [`WordSet`] that holds them with a cheap rejection test.

/// A small static set of words with a cheap rejection test: most words a
/// masker meets are in none of its lists, so membership first looks up the
/// pair (length, first byte) and the pair (length, last byte) in two bitmaps;
/// only a word that passes both (almost always a member) is compared with
/// the entries.
pub(crate) struct WordSet {
    words: &'static [&'static [u8]],
    /// Bit `b & 63` of `first[n]` set when some word of length `n` starts
    /// with byte `b` (words are shorter than 64 bytes).
    first: [u64; 64],
    /// Bit `b & 63` of `last[n]` set when some word of length `n` ends with
    /// byte `b`.
    last: [u64; 64],
}

impl WordSet {
    pub(crate) const fn new(words: &'static [&'static [u8]]) -> WordSet {
        let mut first = [0u64; 64];
        let mut last = [0u64; 64];
        let mut k = 0;
        while k < words.len() {
            let w = words[k];
            let n = w.len();
            assert!(n > 0 && n < 64);
            first[n] |= 1 << (w[0] & 63);
            last[n] |= 1 << (w[n - 1] & 63);
            k += 1;
        }
        WordSet { words, first, last }
    }

    /// False when no word has `t`'s length, first byte `a` and last byte `z`
    /// (taken modulo 64); true when one may.
    #[inline]
    fn may_contain(&self, n: usize, a: u8, z: u8) -> bool {
        n < 64 && (self.first[n] >> (a & 63)) & (self.last[n] >> (z & 63)) & 1 != 0
    }

    /// Exact (case-sensitive) membership.
    #[inline]
    pub(crate) fn contains(&self, t: &[u8]) -> bool {
        let n = t.len();
        n > 0 && self.may_contain(n, t[0], t[n - 1]) && self.words.contains(&t)
    }

    /// Membership ignoring ASCII case; the set must hold lower-case words.
    #[inline]
    pub(crate) fn contains_ignore_case(&self, t: &[u8]) -> bool {
        let n = t.len();
        n > 0
            && self.may_contain(n, t[0].to_ascii_lowercase(), t[n - 1].to_ascii_lowercase())
            && self.words.iter().any(|w| w.eq_ignore_ascii_case(t))
    }
}

/// Month names and abbreviations.
const MONTHS: &[&[u8]] = &[
    b"Jan",
    b"Feb",
    b"Mar",
    b"Apr",
    b"May",
    b"Jun",
    b"Jul",
    b"Aug",
    b"Sep",
    b"Sept",
    b"Oct",
    b"Nov",
    b"Dec",
    b"January",
    b"February",
    b"March",
    b"April",
    b"June",
    b"July",
    b"August",
    b"September",
    b"October",
    b"November",
    b"December",
];

pub(super) fn is_month(t: &[u8]) -> bool {
    static M: WordSet = WordSet::new(MONTHS);
    M.contains(t)
}

/// Month and weekday names: part of a timestamp when next to a number.
#[inline]
pub(super) fn is_date_word(t: &[u8]) -> bool {
    // Every plain word is asked: the names are 3 to 9 bytes and capitalised,
    // which settles most words before any lookup.
    (3..=9).contains(&t.len()) && t[0].is_ascii_uppercase() && is_date_name(t)
}

/// [`is_date_word`] without its prefilter.
fn is_date_name(t: &[u8]) -> bool {
    static D: WordSet = WordSet::new(DATE_NAMES);
    is_month(t) || D.contains(t)
}

/// Weekday and time zone names (with [`MONTHS`], the date words).
const DATE_NAMES: &[&[u8]] = &[
    b"Mon",
    b"Tue",
    b"Wed",
    b"Thu",
    b"Fri",
    b"Sat",
    b"Sun",
    b"Monday",
    b"Tuesday",
    b"Wednesday",
    b"Thursday",
    b"Friday",
    b"Saturday",
    b"Sunday",
    b"UTC",
    b"GMT",
    b"PDT",
    b"PST",
    b"EDT",
    b"EST",
    b"CET",
    b"CEST",
];

/// Words that follow `user` without being a user name.
pub(super) fn is_stopword(t: &[u8]) -> bool {
    static W: WordSet = WordSet::new(&[
        b"a",
        b"an",
        b"the",
        b"is",
        b"was",
        b"has",
        b"had",
        b"have",
        b"not",
        b"and",
        b"or",
        b"for",
        b"from",
        b"to",
        b"in",
        b"on",
        b"of",
        b"with",
        b"by",
        b"at",
        b"as",
        b"id",
        b"ID",
        b"name",
        b"session",
        b"sessions",
        b"data",
        b"context",
        b"request",
        b"requests",
        b"account",
        b"does",
        b"did",
        b"can",
        b"cannot",
        b"must",
        b"should",
        b"will",
        b"may",
        b"already",
        b"unknown",
        b"logged",
        b"authentication",
        b"auth",
        b"chat",
        b"message",
        b"messages",
        b"that",
        b"this",
        b"which",
        b"who",
        b"if",
        b"when",
        b"are",
        b"were",
        b"be",
        b"been",
        b"profile",
        b"input",
        b"agent",
        b"thread",
        b"threads",
        b"execution",
        b"limit",
        b"quota",
    ]);
    W.contains(t)
}

/// Units that belong to the number before them.
pub(super) fn is_unit(t: &[u8]) -> bool {
    static U: WordSet = WordSet::new(&[
        b"B", b"KB", b"kB", b"MB", b"GB", b"TB", b"KiB", b"MiB", b"GiB", b"bytes", b"byte", b"%",
        b"percent",
    ]);
    U.contains(t) || is_time_unit(t)
}

pub(super) fn is_time_unit(t: &[u8]) -> bool {
    static U: WordSet = WordSet::new(&[
        b"ns",
        b"us",
        b"ms",
        b"s",
        b"sec",
        b"secs",
        b"second",
        b"seconds",
        b"min",
        b"mins",
        b"minute",
        b"minutes",
        b"h",
        b"hr",
        b"hrs",
        b"hour",
        b"hours",
        b"day",
        b"days",
        b"millis",
        b"milliseconds",
    ]);
    U.contains(t)
}

/// Identifiers that contain digits but name things rather than values.
pub(super) fn is_known_digit_word(t: &[u8]) -> bool {
    static K: WordSet = WordSet::new(&[
        b"ssh2",
        b"utf8",
        b"utf-8",
        b"UTF-8",
        b"utf16",
        b"x86_64",
        b"x86",
        b"arm64",
        b"amd64",
        b"sha1",
        b"sha256",
        b"sha512",
        b"md5",
        b"ipv4",
        b"ipv6",
        b"IPv4",
        b"IPv6",
        b"http2",
        b"HTTP2",
        b"h2",
        b"oauth2",
        b"OAuth2",
        b"base64",
        b"int32",
        b"int64",
        b"uint32",
        b"uint64",
        b"float32",
        b"float64",
        b"s3",
        b"S3",
        b"ec2",
        b"EC2",
        b"k8s",
        b"python3",
        b"e2e",
        b"i18n",
        b"2FA",
        b"asyncpg",
        b"psycopg2",
        b"urllib3",
        b"boto3",
        b"web3",
        b"l10n",
        b"log4j",
        b"p2p",
    ]);
    K.contains(t)
}
/// Booleans and nulls: values, whatever they are next to.
///
/// Asked for almost every word, which is almost never one of these: the
/// length and first letter (`t`, `f` or `n` in either case) rule out most
/// words before the spellings are compared.
#[inline(always)]
pub(super) fn is_bool_word(t: &[u8]) -> bool {
    static B: WordSet = WordSet::new(BOOL_WORDS);
    matches!(t, [b't' | b'T' | b'f' | b'F' | b'n' | b'N', _, _, ..] if t.len() <= 5)
        && B.contains(t)
}

const BOOL_WORDS: &[&[u8]] = &[
    b"true", b"false", b"True", b"False", b"TRUE", b"FALSE", b"null", b"NULL", b"nil",
];

/// A cheap test that a word of letters is none of the words the masker
/// treats specially wherever it occurs (date words, booleans, credential
/// schemes, `user`): the pair (length, first byte) and the pair (length,
/// last byte) of every such word are recorded, in both cases for the lists
/// compared ignoring case. `may_be_special` is true for all of them (and
/// for a few other words, which then just take the general path).
pub(super) fn may_be_special(t: &[u8]) -> bool {
    static F: WordFilter = WordFilter::new()
        .with(MONTHS, false)
        .with(DATE_NAMES, false)
        .with(BOOL_WORDS, false)
        .with(&crate::secrets::AUTH_SCHEMES, true)
        .with(&[b"user"], true)
        .with(&[b"username"], false);
    F.may_contain(t)
}

/// The (length, first byte) and (length, last byte) bitmaps of
/// [`WordSet`], over several word lists and without the words.
pub(super) struct WordFilter {
    first: [u64; 64],
    last: [u64; 64],
}

impl WordFilter {
    const fn new() -> WordFilter {
        WordFilter {
            first: [0; 64],
            last: [0; 64],
        }
    }

    /// Adds `words`; with `ignore_case`, their first and last letters in
    /// both cases.
    const fn with(mut self, words: &[&[u8]], ignore_case: bool) -> WordFilter {
        let mut k = 0;
        while k < words.len() {
            let w = words[k];
            let n = w.len();
            assert!(n > 0 && n < 64);
            let (a, z) = (w[0], w[n - 1]);
            self.first[n] |= 1 << (a & 63);
            self.last[n] |= 1 << (z & 63);
            if ignore_case {
                self.first[n] |= 1 << (a.to_ascii_uppercase() & 63);
                self.first[n] |= 1 << (a.to_ascii_lowercase() & 63);
                self.last[n] |= 1 << (z.to_ascii_uppercase() & 63);
                self.last[n] |= 1 << (z.to_ascii_lowercase() & 63);
            }
            k += 1;
        }
        self
    }

    /// False when no recorded word has `t`'s length, first and last byte.
    #[inline]
    fn may_contain(&self, t: &[u8]) -> bool {
        let n = t.len();
        n > 0
            && n < 64
            && (self.first[n] >> (t[0] & 63)) & (self.last[n] >> (t[n - 1] & 63)) & 1 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The masker's plain-word path relies on `may_be_special` for every
    /// word it must leave to the general path.
    #[test]
    fn special_words_pass_the_filter() {
        let mut words: Vec<Vec<u8>> = Vec::new();
        for list in [MONTHS, DATE_NAMES, BOOL_WORDS] {
            words.extend(list.iter().map(|w| w.to_vec()));
        }
        for w in crate::secrets::AUTH_SCHEMES
            .iter()
            .chain([&b"user".as_slice()])
        {
            let mut cap = w.to_vec();
            cap[0] = cap[0].to_ascii_uppercase();
            words.extend([w.to_vec(), w.to_ascii_uppercase(), cap]);
        }
        words.push(b"username".to_vec());
        for w in &words {
            assert!(may_be_special(w), "{}", String::from_utf8_lossy(w));
        }
        assert!(!may_be_special(b"connection"));
    }
}
