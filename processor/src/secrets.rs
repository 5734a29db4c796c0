//! Secrets: recognising credentials so that they never leave the process.
//!
//! Two users: the masker (`mask.rs`), which must never let a credential into a
//! template, and [`mask_secrets`], which redacts credentials in a raw sample
//! while keeping the rest of the message readable. Detection is by *context*
//! (a sensitive key before `=`/`:`, the word `Bearer`, `user:pass@` in a URL)
//! and by *shape* (JWTs, emails, well-known API key prefixes, long random
//! tokens), because context alone misses pasted tokens and shape alone misses
//! short passwords.

use crate::mask::WordSet;
use std::borrow::Cow;

/// What a redacted secret is replaced with in samples.
pub const REDACTED: &str = "REDACTED";

/// Key names whose values are credentials. Compared case-insensitively
/// against the whole key or its last `_`/`-`/`.` separated part, so
/// `db_password`, `X-Api-Key` and `client.secret` all count.
static SENSITIVE_KEYS: WordSet = WordSet::new(&[
    b"password",
    b"passwd",
    b"pwd",
    b"pass",
    b"secret",
    b"token",
    b"key",
    b"apikey",
    b"api_key",
    b"auth",
    b"authorization",
    b"credential",
    b"credentials",
    b"jwt",
    b"bearer",
    b"cookie",
    b"session",
    b"sessionid",
    b"signature",
    b"sig",
    b"private_key",
    b"access_token",
    b"refresh_token",
    b"client_secret",
]);

/// True when `key` names a credential (`password`, `api_key`, `X-Auth-Token`…).
pub fn is_sensitive_key(key: &str) -> bool {
    let trim = |b: &u8| matches!(b, b'"' | b'\'' | b'-' | b'_');
    let mut k = key.as_bytes();
    while let [first, rest @ ..] = k {
        if !trim(first) {
            break;
        }
        k = rest;
    }
    while let [rest @ .., last] = k {
        if !trim(last) {
            break;
        }
        k = rest;
    }
    if k.is_empty() || k.len() > 40 {
        return false;
    }
    if SENSITIVE_KEYS.contains_ignore_case(k) {
        return true;
    }
    // The last part, when there is more than one (else `k`, just tested).
    match k.iter().rposition(|&b| matches!(b, b'_' | b'-' | b'.')) {
        Some(p) => SENSITIVE_KEYS.contains_ignore_case(&k[p + 1..]),
        None => false,
    }
}

/// True for the names of HTTP auth schemes, in any case (`Bearer`, `basic`, …):
/// after a sensitive key (`authorization: bearer <token>`) the scheme is not
/// the secret, the word after it is.
pub fn is_auth_scheme(word: &str) -> bool {
    AUTH_SCHEMES
        .iter()
        .any(|s| s.eq_ignore_ascii_case(word.as_bytes()))
}

/// The auth schemes of [`is_auth_scheme`] (lower case).
pub const AUTH_SCHEMES: [&[u8]; 4] = [b"bearer", b"basic", b"token", b"digest"];

/// True for an auth scheme written as in an `Authorization` header
/// (`Bearer eyJ…`, `Basic dXNlcjpw…`): capitalised, so that it announces a
/// credential in the next word when that word looks like one (see
/// [`credential_follows`]). Lowercase prose (`allowing basic
/// functionality`, `a token was refused`) does not.
///
/// Asked for every literal word: the length (the schemes have 5 or 6
/// letters) and the capital rule out almost all of them at once.
#[inline]
pub fn announces_credential(word: &str) -> bool {
    matches!(word.len(), 5 | 6) && word.as_bytes()[0].is_ascii_uppercase() && is_auth_scheme(word)
}

/// True when `rest`, the text after a word that [`announces_credential`],
/// starts with a credential: `Bearer eyJ…` and `Token abc123def456` hide
/// the next word, but `Token refresh failed` and `Bearer token expired` are
/// about tokens and must keep their words (else distinct errors share one
/// template).
pub fn credential_follows(rest: &str) -> bool {
    rest.split_ascii_whitespace().next().is_some_and(|w| {
        let (a, z) = trim_punct(w);
        looks_like_credential(&w.as_bytes()[a..z])
    })
}

/// True when a word (quotes and punctuation trimmed) looks like a credential
/// rather than prose: a secret shape, or anything `is_prose_word` rules
/// out (digits, base64 or token punctuation, case mixed after the first
/// letter, 20 bytes or more).
pub fn looks_like_credential(t: &[u8]) -> bool {
    !t.is_empty() && (is_secret_shaped(t) || !is_prose_word(t))
}

/// A word as prose writes it: letters (with `-` or `'` between them),
/// shorter than the random tokens of [`looks_random`], one case after the
/// first letter (`refresh`, `Token`, `JWT`, `re-auth`). Tokens mix cases
/// (`dXNlcjpw…`) or carry digits; words do neither.
fn is_prose_word(t: &[u8]) -> bool {
    let (Some(first), Some(last)) = (t.first(), t.last()) else {
        return false;
    };
    let rest = &t[1..];
    t.len() < 20
        && first.is_ascii_alphabetic()
        && last.is_ascii_alphabetic()
        && t.iter()
            .all(|&b| b.is_ascii_alphabetic() || matches!(b, b'-' | b'\''))
        && (!rest.iter().any(u8::is_ascii_uppercase) || !rest.iter().any(u8::is_ascii_lowercase))
}

/// Where the quote that closes a quoted value starts: the first byte `q` at
/// or after `from` that no backslash escapes (`"pa\"ss"` is one value).
/// `None` when the value is not closed.
pub fn closing_quote(b: &[u8], from: usize, q: u8) -> Option<usize> {
    let mut k = from;
    while k < b.len() {
        match b[k] {
            b'\\' => k += 2,
            c if c == q => return Some(k),
            _ => k += 1,
        }
    }
    None
}

/// A JSON Web Token: three base64url parts separated by dots, the first
/// starting with `eyJ` (the encoding of `{"`).
pub fn looks_like_jwt(t: &[u8]) -> bool {
    t.len() >= 20
        && t.starts_with(b"eyJ")
        && t.iter().filter(|&&b| b == b'.').count() == 2
        && t.iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'='))
}

/// Well-known API key prefixes (OpenAI/Stripe `sk-`, `sk_live_`, GitHub
/// `ghp_`, Slack `xox?-`, AWS `AKIA`, Google `AIza`) followed by a long tail.
pub fn looks_like_api_key(t: &[u8]) -> bool {
    const PREFIXES: &[&[u8]] = &[
        b"sk-",
        b"sk_",
        b"pk_",
        b"rk_",
        b"ghp_",
        b"gho_",
        b"ghs_",
        b"ghu_",
        b"github_pat_",
        b"xoxb-",
        b"xoxp-",
        b"xoxa-",
        b"AKIA",
        b"ASIA",
        b"AIza",
        b"glpat-",
        b"SG.",
    ];
    t.len() >= 16
        // The first bytes of the prefixes: most tokens stop here.
        && matches!(t[0], b's' | b'p' | b'r' | b'g' | b'x' | b'A' | b'S')
        && PREFIXES.iter().any(|p| t.starts_with(p))
        && t.iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A long token that looks random rather than like a name: at least 20
/// characters of base64 alphabet with upper- and lower-case letters mixed far
/// more often than in CamelCase identifiers (`UnifiedWebSocketManager` has
/// long lower-case runs; `q8ZxP0vLk2MbT` has none).
pub fn looks_random(t: &[u8]) -> bool {
    if t.len() < 20 || t.len() > 512 {
        return false;
    }
    let mut upper = 0usize;
    let mut lower = 0usize;
    let mut digit = 0usize;
    let mut run = 0usize;
    let mut longest_lower_run = 0usize;
    for &b in t {
        if b.is_ascii_uppercase() {
            upper += 1;
            run = 0;
        } else if b.is_ascii_lowercase() {
            lower += 1;
            run += 1;
            longest_lower_run = longest_lower_run.max(run);
        } else if b.is_ascii_digit() {
            digit += 1;
            run = 0;
        } else if matches!(b, b'+' | b'/' | b'=' | b'-' | b'_') {
            run = 0;
        } else {
            return false;
        }
    }
    let letters = upper + lower;
    letters > 0
        && upper * 5 >= letters
        && lower * 5 >= letters
        && (longest_lower_run < 6 || digit * 4 >= t.len())
}

/// An email address `local@domain.tld`.
pub fn looks_like_email(t: &[u8]) -> bool {
    let Some(at) = t.iter().position(|&b| b == b'@') else {
        return false;
    };
    let (local, domain) = (&t[..at], &t[at + 1..]);
    !local.is_empty()
        && domain.len() >= 3
        && domain.contains(&b'.')
        && !domain.starts_with(b".")
        && !domain.ends_with(b".")
        && local
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'%'))
        && domain
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
}

/// True when a whitespace-free token is a credential by its shape alone.
pub fn is_secret_shaped(t: &[u8]) -> bool {
    looks_like_jwt(t) || looks_like_api_key(t) || looks_like_email(t) || looks_random(t)
}

/// Redacts credentials in a raw message (for samples shown in reports),
/// leaving everything else as it was. Borrows when there is nothing to redact.
///
/// Redacted: values of sensitive keys (`password=…`, `"token": "…"`,
/// `{"token":"…"}`, `api_key: …`; a quoted value up to its closing quote,
/// spaces included), the credential after `Bearer`/`Basic`, `user:pass@`
/// in URLs, JWTs, API keys with well-known prefixes, long random tokens and
/// emails.
pub fn mask_secrets(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0usize; // bytes of `s` already handled in `out`
    let mut i = 0usize;
    let mut redact_next_word = false;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        // One whitespace-separated word.
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let word = &s[start..i];
        let mut spans: Vec<(usize, usize)> = Vec::new();
        if redact_next_word {
            let (a, z) = trim_punct(word);
            if is_auth_scheme(&word[a..z]) {
                continue; // `Authorization: Bearer <token>`
            }
            redact_next_word = false;
            if z > a {
                spans.push((start + a, through_closing_quote(b, start + a, start + z)));
            }
        } else {
            find_secret_spans(s, start, i, &mut spans);
            let (a, z) = trim_punct(word);
            let core = &word[a..z];
            if announces_credential(core) {
                if credential_follows(&s[i..]) {
                    redact_next_word = true;
                }
            } else if let Some(k) = core.strip_suffix(':') {
                // `password: hunter2` / `"token": "abc"`
                if is_sensitive_key(k) {
                    redact_next_word = true;
                }
            }
        }
        for (a, z) in spans {
            if a < copied {
                continue;
            }
            let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
            o.push_str(&s[copied..a]);
            o.push_str(REDACTED);
            copied = z;
        }
        // A quoted secret may run on over the next words: they are its.
        i = i.max(copied);
    }
    match out {
        None => Cow::Borrowed(s),
        Some(mut o) => {
            o.push_str(&s[copied..]);
            Cow::Owned(o)
        }
    }
}

/// Strips quotes and sentence punctuation around a word; returns the byte
/// range of what is left.
fn trim_punct(w: &str) -> (usize, usize) {
    let b = w.as_bytes();
    let mut a = 0;
    let mut z = b.len();
    while a < z && matches!(b[a], b'"' | b'\'' | b'(' | b'[' | b'{' | b'<' | b'`') {
        a += 1;
    }
    while z > a
        && matches!(
            b[z - 1],
            b'"' | b'\'' | b')' | b']' | b'}' | b'>' | b',' | b';' | b'.' | b'`'
        )
    {
        z -= 1;
    }
    (a, z)
}

/// The end of a secret that starts at `a` and, read as one word, ends at
/// `z`: when an opening quote precedes it and `z` is not its closing quote
/// (`password: "two words"`), the closing quote further on (the whole
/// message is searched); else `z`.
fn through_closing_quote(msg: &[u8], a: usize, z: usize) -> usize {
    match a.checked_sub(1).map(|p| msg[p]) {
        Some(q) if matches!(q, b'"' | b'\'') && msg.get(z) != Some(&q) => {
            closing_quote(msg, z, q).unwrap_or(z)
        }
        _ => z,
    }
}

/// True when the byte at `i` of a word separates a key from its value:
/// `=`, or `:` as in `"token":"x"` and `password:x` (not `::` as in
/// `Token::new`, nor a trailing colon, which `mask_secrets` sees itself).
fn is_key_separator(b: &[u8], i: usize) -> bool {
    match b[i] {
        b'=' => true,
        b':' => i > 0 && i + 1 < b.len() && b[i - 1] != b':' && b[i + 1] != b':',
        _ => false,
    }
}

/// Values of sensitive keys in the word `msg[base..end]`: `key=value` pairs
/// (also several per word: `a=1&password=x,token=y`) and `key:value` ones
/// (`{"token":"x"}`, `password:x`). A quoted value of a sensitive key runs
/// to its closing quote, spaces included (`password="two words"`).
fn find_key_value_spans(msg: &str, base: usize, end: usize, spans: &mut Vec<(usize, usize)>) {
    let word = &msg[base..end];
    let b = word.as_bytes();
    let mut seg_start = 0usize;
    let mut i = 0usize;
    let mut keys = KeyStarts::default();
    while i < b.len() {
        if !is_key_separator(b, i) {
            i += 1;
            continue;
        }
        // `"token":` — the key ends before its closing quote.
        let key_end = match i.checked_sub(1).map(|p| b[p]) {
            Some(b'"' | b'\'') => i - 1,
            _ => i,
        };
        let key_start = keys.before(b, key_end).unwrap_or(seg_start);
        let sensitive = is_sensitive_key(&word[key_start.max(seg_start).min(key_end)..key_end]);
        if !sensitive && b[i] == b':' {
            // `https://…?token=x`: a colon ends no segment.
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let quote = b.get(j).copied().filter(|c| matches!(c, b'"' | b'\''));
        if quote.is_some() {
            j += 1;
        }
        let vs = j;
        let close = quote
            .filter(|_| sensitive)
            .and_then(|q| closing_quote(msg.as_bytes(), base + vs, q));
        if let Some(c) = close {
            if c > base + vs {
                spans.push((base + vs, c));
            }
            i = (c - base).min(b.len());
            seg_start = i;
            continue;
        }
        while j < b.len() && !matches!(b[j], b'&' | b',' | b';' | b'"' | b'\'' | b')' | b']' | b'}')
        {
            j += 1;
        }
        if j > vs && sensitive {
            spans.push((base + vs, base + j));
        }
        seg_start = j;
        i = j;
    }
}

/// Where the key that ends at a separator starts: after the last byte
/// before it that can precede a key (`&?,;({["'`), found by a scan that
/// only moves forward. Why not a search backwards from each separator:
/// separators that end no key (`C:\\`, `https://`) leave the segment open,
/// and in a long word of them every search read the whole word again
/// (quadratic: a megabyte-long URL list took minutes).
#[derive(Default)]
struct KeyStarts {
    /// Bytes of the word scanned so far.
    scanned: usize,
    /// The index after the last key-preceding byte among them.
    after_last: Option<usize>,
}

impl KeyStarts {
    /// The start of a key ending at `key_end`, when a key-preceding byte
    /// comes before it; `key_end` never decreases between calls.
    fn before(&mut self, b: &[u8], key_end: usize) -> Option<usize> {
        debug_assert!(key_end >= self.scanned, "keys are asked for in order");
        while self.scanned < key_end {
            if matches!(
                b[self.scanned],
                b'&' | b'?' | b',' | b';' | b'(' | b'{' | b'[' | b'"' | b'\''
            ) {
                self.after_last = Some(self.scanned + 1);
            }
            self.scanned += 1;
        }
        self.after_last
    }
}

/// Secret byte ranges inside the word `msg[base..end]` (offsets relative to
/// the message, which a quoted value may run on into).
fn find_secret_spans(msg: &str, base: usize, end: usize, spans: &mut Vec<(usize, usize)>) {
    let word = &msg[base..end];
    let b = word.as_bytes();
    // URL credentials: scheme://user:pass@host
    if let Some(p) = word.find("://") {
        let rest = &b[p + 3..];
        if let Some(at) = rest.iter().position(|&c| c == b'@') {
            if let Some(colon) = rest[..at].iter().position(|&c| c == b':') {
                if !rest[..at].contains(&b'/') {
                    let a = p + 3 + colon + 1;
                    spans.push((base + a, base + p + 3 + at));
                }
            }
        }
    }
    find_key_value_spans(msg, base, end, spans);
    // Whether a token lies inside a span found so far: spans ordered by
    // start, and the tokens come in order, so one pass over both answers
    // (the spans the loop adds lie before every later token).
    spans.sort_unstable();
    let found = spans.len();
    let mut next_span = 0usize;
    let mut reach = 0usize; // the furthest end of the spans starting at or before the token
    let mut s = 0usize;
    for (k, &c) in b
        .iter()
        .enumerate()
        .chain(std::iter::once((b.len(), &b' ')))
    {
        if k == b.len()
            || matches!(
                c,
                b'=' | b','
                    | b';'
                    | b'"'
                    | b'\''
                    | b'('
                    | b')'
                    | b'['
                    | b']'
                    | b'{'
                    | b'}'
                    | b'<'
                    | b'>'
                    | b'&'
            )
        {
            if k > s {
                let mut z = k;
                while z > s && matches!(b[z - 1], b'.' | b':') {
                    z -= 1;
                }
                let t = &b[s..z];
                while next_span < found && spans[next_span].0 <= base + s {
                    reach = reach.max(spans[next_span].1);
                    next_span += 1;
                }
                if is_secret_shaped(t) && reach < base + z {
                    spans.push((base + s, base + z));
                }
            }
            s = k + 1;
        }
    }
    spans.sort_unstable();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercase_prose_is_not_an_auth_scheme() {
        let s = "Redis readiness: allowing basic functionality for user chat value";
        assert_eq!(mask_secrets(s), s);
        assert!(!mask_secrets("Authorization: Bearer abcdefghij").contains("abcdefghij"));
        assert!(!mask_secrets("authorization: bearer abcdefghij").contains("abcdefghij"));
    }

    #[test]
    fn sensitive_keys() {
        for k in [
            "password",
            "db_password",
            "X-Api-Key",
            "api_key",
            "auth",
            "access_token",
            "client.secret",
        ] {
            assert!(is_sensitive_key(k), "{k}");
        }
        for k in ["user", "status", "path", "monkey_count", "keyboard"] {
            assert!(!is_sensitive_key(k), "{k}");
        }
    }

    #[test]
    fn redacts_key_values() {
        assert_eq!(
            mask_secrets("login password=hunter2 user=bob"),
            "login password=REDACTED user=bob"
        );
        assert_eq!(mask_secrets("a=1&token=abc&b=2"), "a=1&token=REDACTED&b=2");
        assert_eq!(
            mask_secrets("password: hunter2 ok"),
            "password: REDACTED ok"
        );
    }

    #[test]
    fn redacts_shapes() {
        let jwt =
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let msg = format!("bad token {jwt} here");
        let m = mask_secrets(&msg);
        assert_eq!(m, "bad token REDACTED here");
        assert_eq!(
            mask_secrets("Authorization: Bearer abc.def"),
            "Authorization: Bearer REDACTED"
        );
        assert_eq!(
            mask_secrets("mail alice@example.com now"),
            "mail REDACTED now"
        );
        assert_eq!(
            mask_secrets("key sk-proj-abcdefghijklmnop1234"),
            "key REDACTED"
        );
        assert_eq!(
            mask_secrets("GET https://bob:pw@host/x"),
            "GET https://bob:REDACTED@host/x"
        );
    }

    /// JSON, Python dicts and quoted values with spaces: the whole value
    /// of a sensitive key is redacted, the key kept.
    #[test]
    fn redacts_quoted_key_values() {
        for (msg, sample) in [
            (
                r#"auth failed with credentials {"username": "alice", "password": "letmein"}"#,
                r#"auth failed with credentials {"username": "alice", "password": "REDACTED"}"#,
            ),
            (r#"{"password":"hunter2"}"#, r#"{"password":"REDACTED"}"#),
            (r#"{"password":"x y"} ok"#, r#"{"password":"REDACTED"} ok"#),
            (
                r#"{"password": "x y"} ok"#,
                r#"{"password": "REDACTED"} ok"#,
            ),
            ("{'password': 'x'}", "{'password': 'REDACTED'}"),
            (
                r#"login password="x y" ok"#,
                r#"login password="REDACTED" ok"#,
            ),
            (
                r#"login password: "x y" ok"#,
                r#"login password: "REDACTED" ok"#,
            ),
            (
                r#"p="a" password="b\" c" d"#,
                r#"p="a" password="REDACTED" d"#,
            ),
            ("login password:hunter2 ok", "login password:REDACTED ok"),
            (
                "GET https://h/x?token=abc&b=2",
                "GET https://h/x?token=REDACTED&b=2",
            ),
        ] {
            assert_eq!(mask_secrets(msg), sample, "{msg}");
        }
        for clean in ["Token::new failed", "at 12:30:01 user:bob"] {
            assert!(matches!(mask_secrets(clean), Cow::Borrowed(_)), "{clean}");
        }
    }

    /// A capitalised auth scheme redacts the next word only when that word
    /// looks like a credential or the scheme follows a sensitive key.
    #[test]
    fn auth_scheme_redacts_only_credentials() {
        for clean in [
            "Token refresh failed for user 5",
            "Token validation failed for user 5",
            "Bearer token expired",
        ] {
            assert!(matches!(mask_secrets(clean), Cow::Borrowed(_)), "{clean}");
        }
        assert_eq!(
            mask_secrets("Authorization: Token abc123def456"),
            "Authorization: Token REDACTED"
        );
        assert_eq!(
            mask_secrets("authorization: Bearer abc"),
            "authorization: Bearer REDACTED"
        );
        assert_eq!(
            mask_secrets("rejected Token abc123def456 now"),
            "rejected Token REDACTED now"
        );
        assert_eq!(
            mask_secrets("rejected Basic dXNlcjpwYXNz now"),
            "rejected Basic REDACTED now"
        );
    }

    #[test]
    fn credential_shapes() {
        for w in [
            "abc123def456",
            "dXNlcjpwYXNz",
            "aGVsbG8=",
            "abc.def",
            "abcdefghijklmnopqrstu",
            "sk-proj-abcdefghijklmnop1234",
        ] {
            assert!(looks_like_credential(w.as_bytes()), "{w}");
        }
        for w in [
            "refresh",
            "validation",
            "token",
            "Token",
            "JWT",
            "re-auth",
            "",
        ] {
            assert!(!looks_like_credential(w.as_bytes()), "{w}");
        }
        assert_eq!(closing_quote(br#""a\"b" x"#, 1, b'"'), Some(5));
        assert_eq!(closing_quote(br#""a\"#, 1, b'"'), None);
    }

    #[test]
    fn borrows_when_clean() {
        let s = "WebSocket is not connected. Need to call \"accept\" first.";
        assert!(matches!(mask_secrets(s), Cow::Borrowed(_)));
        assert!(matches!(
            mask_secrets("Failed password for root from 1.2.3.4"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn keys_in_a_long_word_of_separators() {
        // Separators that end no key, then a key: found, in one pass (each
        // of these words took minutes at a megabyte before).
        for filler in ["C:\\", "https://a.b/", "a:b"] {
            let word = format!("{}?token=hunter2", filler.repeat(50_000));
            assert_eq!(
                mask_secrets(&word),
                format!("{}?token=REDACTED", filler.repeat(50_000))
            );
        }
    }

    #[test]
    fn many_secrets_in_one_word() {
        let key = "AKIAIOSFODNN7EXAMPLE";
        let word = format!("token={key},").repeat(20_000);
        assert_eq!(mask_secrets(&word), "token=REDACTED,".repeat(20_000));
        // A shape inside a key's value is redacted once, a shape after it too.
        assert_eq!(
            mask_secrets(&format!("password={key}&id={key}")),
            "password=REDACTED&id=REDACTED"
        );
    }
}
