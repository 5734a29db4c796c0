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
/// credential in the next word. Lowercase prose (`allowing basic
/// functionality`, `a token was refused`) does not.
///
/// Asked for every literal word: the length (the schemes have 5 or 6
/// letters) and the capital rule out almost all of them at once.
#[inline]
pub fn announces_credential(word: &str) -> bool {
    matches!(word.len(), 5 | 6) && word.as_bytes()[0].is_ascii_uppercase() && is_auth_scheme(word)
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
/// `api_key: …`), the token after `Bearer`/`Basic`, `user:pass@` in URLs,
/// JWTs, API keys with well-known prefixes, long random tokens and emails.
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
                spans.push((start + a, start + z));
            }
        } else {
            find_secret_spans(word, start, &mut spans);
            let (a, z) = trim_punct(word);
            let core = &word[a..z];
            if announces_credential(core) {
                redact_next_word = true;
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

/// Secret byte ranges inside one word (offsets relative to the message).
fn find_secret_spans(word: &str, base: usize, spans: &mut Vec<(usize, usize)>) {
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
    // key=value pairs (also several per word: a=1&password=x,token=y)
    let mut seg_start = 0usize;
    let mut i = 0usize;
    while i < b.len() {
        if b[i] == b'=' {
            let key_start = b[..i]
                .iter()
                .rposition(|&c| {
                    matches!(
                        c,
                        b'&' | b'?' | b',' | b';' | b'(' | b'{' | b'[' | b'"' | b'\''
                    )
                })
                .map_or(seg_start, |p| p + 1);
            let key = &word[key_start.max(seg_start).min(i)..i];
            let mut j = i + 1;
            let quoted = j < b.len() && matches!(b[j], b'"' | b'\'');
            if quoted {
                j += 1;
            }
            let vs = j;
            while j < b.len()
                && !matches!(b[j], b'&' | b',' | b';' | b'"' | b'\'' | b')' | b']' | b'}')
            {
                j += 1;
            }
            if j > vs && is_sensitive_key(key) {
                spans.push((base + vs, base + j));
            }
            seg_start = j;
            i = j;
            continue;
        }
        i += 1;
    }
    // Shapes: split on delimiters that cannot occur inside a token.
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
                if is_secret_shaped(t)
                    && !spans.iter().any(|&(a, e)| a <= base + s && base + z <= e)
                {
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

    #[test]
    fn borrows_when_clean() {
        let s = "WebSocket is not connected. Need to call \"accept\" first.";
        assert!(matches!(mask_secrets(s), Cow::Borrowed(_)));
        assert!(matches!(
            mask_secrets("Failed password for root from 1.2.3.4"),
            Cow::Borrowed(_)
        ));
    }
}
