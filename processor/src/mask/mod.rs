//! Masking: a message becomes a template by replacing *values* with typed
//! placeholders while keeping the words that carry *meaning*.
//!
//! Why a hand-written single pass: a template is computed for every warning
//! and error record, so a cascade of regexes over the whole string (one per
//! value class) would dominate the processor's cost. Here the message is read
//! once, left to right; each whitespace-free atom is classified by looking at
//! its bytes once, with a little context (the previous word, the next word,
//! whether it is the value of a `key=value`).
//!
//! What is masked: UUIDs, hex ids, numbers, IPv4/IPv6 (with ports), URLs,
//! paths and file names, emails, timestamps and durations, compound ids such
//! as `ws_10146348_1757373397_aca2f891`, `key=value` values, quoted free text,
//! host names, booleans, secrets (see `secrets.rs`) and the items of
//! variable-length lists (consecutive placeholders collapse into one).
//!
//! What is kept: identifiers (exception classes, function and module names,
//! field names in validation errors), HTTP status codes next to `HTTP` or a
//! reason phrase, errno names, and quoted text that looks like an identifier
//! (`'accept'`, `'websocket.close'`), because those name the *kind* of error.

mod bytes;
mod classify;
mod words;

pub use classify::classify;
pub(crate) use words::WordSet;

use crate::secrets;
use bytes::*;
use classify::{classify_with, is_ipv6};
use words::{is_date_word, is_month, is_stopword, is_time_unit, is_unit, may_be_special};

/// The typed placeholders a template may contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placeholder {
    Uuid,
    Num,
    Hex,
    Ip,
    Url,
    Path,
    Email,
    Ts,
    Duration,
    Id,
    Str,
    Any,
}

impl Placeholder {
    /// The text written into templates, e.g. `<uuid>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Placeholder::Uuid => "<uuid>",
            Placeholder::Num => "<num>",
            Placeholder::Hex => "<hex>",
            Placeholder::Ip => "<ip>",
            Placeholder::Url => "<url>",
            Placeholder::Path => "<path>",
            Placeholder::Email => "<email>",
            Placeholder::Ts => "<ts>",
            Placeholder::Duration => "<duration>",
            Placeholder::Id => "<id>",
            Placeholder::Str => "<str>",
            Placeholder::Any => "<*>",
        }
    }

    /// Appends [`Placeholder::as_str`] to `out`; each arm copies a string
    /// of known length, which compiles to a few moves instead of a call to
    /// `memcpy` (a placeholder is written for most values).
    #[inline(always)]
    fn push_to(self, out: &mut String) {
        match self {
            Placeholder::Uuid => out.push_str("<uuid>"),
            Placeholder::Num => out.push_str("<num>"),
            Placeholder::Hex => out.push_str("<hex>"),
            Placeholder::Ip => out.push_str("<ip>"),
            Placeholder::Url => out.push_str("<url>"),
            Placeholder::Path => out.push_str("<path>"),
            Placeholder::Email => out.push_str("<email>"),
            Placeholder::Ts => out.push_str("<ts>"),
            Placeholder::Duration => out.push_str("<duration>"),
            Placeholder::Id => out.push_str("<id>"),
            Placeholder::Str => out.push_str("<str>"),
            Placeholder::Any => out.push_str("<*>"),
        }
    }

    /// True when `t` is exactly one placeholder spelling (`<num>`, `<*>`…).
    pub fn is_placeholder(t: &[u8]) -> bool {
        matches!(
            t,
            b"<uuid>"
                | b"<num>"
                | b"<hex>"
                | b"<ip>"
                | b"<url>"
                | b"<path>"
                | b"<email>"
                | b"<ts>"
                | b"<duration>"
                | b"<id>"
                | b"<str>"
                | b"<*>"
        )
    }

    /// All placeholder spellings (used e.g. to map templates to `<*>`).
    pub const ALL: [Placeholder; 12] = [
        Placeholder::Uuid,
        Placeholder::Num,
        Placeholder::Hex,
        Placeholder::Ip,
        Placeholder::Url,
        Placeholder::Path,
        Placeholder::Email,
        Placeholder::Ts,
        Placeholder::Duration,
        Placeholder::Id,
        Placeholder::Str,
        Placeholder::Any,
    ];

    /// Two adjacent values collapse into one placeholder: same type stays,
    /// a date next to a time is a timestamp, anything else is `<*>`.
    fn merge(self, other: Placeholder) -> Placeholder {
        use Placeholder::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Ts, Num) | (Num, Ts) | (Ts, Duration) | (Duration, Ts) => Ts,
            (Num, Duration) | (Duration, Num) => Duration,
            _ => Any,
        }
    }
}

/// Messages longer than this are masked only up to here (at a character
/// boundary): templates must stay small and masking cost bounded.
pub const MAX_INPUT_BYTES: usize = 2048;

/// Quoted text with more words than this is free text (user input) and is
/// masked as a whole; shorter quoted phrases (`"GET /x HTTP/1.1"`) are masked
/// word by word.
const MAX_QUOTED_WORDS: usize = 3;

/// Returns the template of `msg`.
///
/// The capacity is rounded up to a multiple of 64 bytes: templates of
/// similar messages then share an allocator size class, so the block freed
/// with the previous template is reused at once (the allocator's per-thread
/// cache is per size class) instead of going through its slow paths.
pub fn mask(msg: &str) -> String {
    let cap = (msg.len().min(MAX_INPUT_BYTES) + 8 + 63) & !63;
    let mut out = String::with_capacity(cap);
    mask_into(msg, &mut out);
    out
}

/// Appends the template of `msg` to `out` (lets callers reuse a buffer).
pub fn mask_into(msg: &str, out: &mut String) {
    let mut end = msg.len().min(MAX_INPUT_BYTES);
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    let base = out.len();
    let mut m = Masker {
        src: msg,
        s: msg.as_bytes(),
        out,
        base,
        pending_space: false,
        last: None,
        swallow_close: 0,
        prev_word: "",
        redact_next: false,
        name_next: false,
    };
    m.run(0, end);
}

/// Masks an HTTP route or URL segment by segment, keeping the endpoint:
/// `https://h/api/threads/9c8a…?x=1` → `/api/threads/<uuid>`. Scheme, host
/// and query are dropped; `{id}`-style route parameters stay.
pub fn mask_route(url: &str) -> String {
    let mut path = url;
    if let Some(p) = path.find("://") {
        path = &path[p + 3..];
        path = path.find('/').map_or("/", |i| &path[i..]);
    }
    if let Some(q) = path.find(['?', '#']) {
        path = &path[..q];
    }
    let mut out = String::with_capacity(path.len());
    for (k, seg) in path.split('/').enumerate() {
        if k > 0 {
            out.push('/');
        }
        if seg.is_empty() || (seg.starts_with('{') && seg.ends_with('}')) || seg.starts_with(':') {
            out.push_str(seg);
        } else {
            match classify(seg.as_bytes()) {
                Some(p) => out.push_str(p.as_str()),
                None => out.push_str(seg),
            }
        }
    }
    out
}

/// Maps every typed placeholder in a template to `<*>` (the Loghub
/// convention), so templates can be compared with ground truth.
pub fn to_generic(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    'outer: while let Some(p) = rest.find('<') {
        out.push_str(&rest[..p]);
        let tail = &rest[p..];
        for ph in Placeholder::ALL {
            if tail.starts_with(ph.as_str()) {
                out.push_str("<*>");
                rest = &tail[ph.as_str().len()..];
                continue 'outer;
            }
        }
        out.push('<');
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

/// The last placeholder written: where it starts and ends in `out`, and its
/// type, so that a following value can collapse into it.
#[derive(Clone, Copy)]
struct Last {
    start: usize,
    end: usize,
    kind: Placeholder,
}

struct Masker<'a, 'o> {
    src: &'a str,
    s: &'a [u8],
    out: &'o mut String,
    /// Where this template starts in `out`.
    base: usize,
    pending_space: bool,
    last: Option<Last>,
    /// Closing brackets to drop because their opener was merged away, as in
    /// `<num> bytes (<num> KB)` → `<num>`.
    swallow_close: u8,
    /// The previous literal word (for `HTTP 500`, `Bearer <token>`).
    prev_word: &'a str,
    /// The next word is a credential (after `Bearer`, `password:`).
    redact_next: bool,
    /// The next word is probably a user name (after `user`).
    name_next: bool,
}
impl<'a> Masker<'a, '_> {
    fn run(&mut self, mut i: usize, end: usize) {
        while i < end {
            let b = self.s[i];
            if is_space(b) {
                if self.out.len() > self.base {
                    self.pending_space = true;
                }
                i += 1;
                continue;
            }
            i = self.word_part(i, end);
        }
    }

    /// Writes the run of plain words that starts with the atom `s[i..j]`
    /// (byte classes `flags`) in one copy and returns where it ends; `None`
    /// when that atom is not a plain word.
    ///
    /// A plain word is made of letters and underscores, ends at whitespace
    /// (or `end`), and is one that [`Masker::atom`] would write as it is
    /// without touching any state but `prev_word`: not a value for
    /// `classify_with` (long hex, a boolean, 16 bytes or more), not a unit
    /// after a placeholder, not a date word, not a credential scheme, not
    /// `user`. The words of a run are separated by one space, which is what
    /// the masker writes between them, so the source bytes are the output.
    /// About half the words of typical messages are plain; this path skips
    /// `atom`'s tests and writes once per run instead of once per word.
    /// (Out of line: inlined, it made the general path slower.)
    #[inline(never)]
    fn plain_run(&mut self, i: usize, j: usize, flags: u16, end: usize) -> Option<usize> {
        let s = self.s;
        if !self.plain_word(&s[i..j], flags, true) {
            return None;
        }
        let (mut run_end, mut last_start) = (j, i);
        // The next words, while they are plain and one space apart (the word
        // that ends the run is scanned again by `word_part`).
        while run_end + 1 < end
            && s[run_end] == b' '
            && BYTE_CLASS[s[run_end + 1] as usize] & !C_WORD == 0
        {
            let k = run_end + 1;
            // The word's bytes, four at a time as in `word_part`.
            let rest = &s[k..end];
            let mut n = 0;
            let mut flags = 0u16;
            while let Some(w) = rest.get(n..n + 4) {
                let c = BYTE_CLASS[w[0] as usize]
                    | BYTE_CLASS[w[1] as usize]
                    | BYTE_CLASS[w[2] as usize]
                    | BYTE_CLASS[w[3] as usize];
                if c & !C_WORD != 0 {
                    break;
                }
                flags |= c;
                n += 4;
            }
            while let Some(&b) = rest.get(n) {
                let c = BYTE_CLASS[b as usize];
                if c & !C_WORD != 0 {
                    break;
                }
                flags |= c;
                n += 1;
            }
            let z = k + n;
            if (z < end && !is_space(s[z])) || !self.plain_word(&s[k..z], flags, false) {
                break;
            }
            run_end = z;
            last_start = k;
        }
        self.write_run(i, last_start, run_end);
        Some(run_end)
    }

    /// Writes the plain words `src[i..z]`, the last one starting at `last`
    /// (what [`Masker::lit`] does, given that no closing bracket is to be
    /// dropped). A pending space that is a space in the source is copied
    /// with the words: one copy instead of two.
    #[inline]
    fn write_run(&mut self, i: usize, last: usize, z: usize) {
        self.name_next = false;
        let mut a = i;
        if self.pending_space {
            self.pending_space = false;
            if i > 0 && self.s[i - 1] == b' ' {
                a = i - 1;
            } else {
                self.out.push(' ');
            }
        }
        self.out.push_str(&self.src[a..z]);
        self.prev_word = &self.src[last..z];
    }

    /// Whether [`Masker::atom`] writes the letters-and-underscores word
    /// `t` (byte classes `flags`) literally and sets no state but
    /// `prev_word`; `first`: the word is the first of its run.
    #[inline]
    fn plain_word(&self, t: &[u8], flags: u16, first: bool) -> bool {
        let n = t.len();
        // `classify_with` on letters: long hex, booleans (in
        // `may_be_special`), secrets (16 bytes or more).
        n < 16
            && !(n >= 8 && flags == C_HEXL)
            && !may_be_special(t)
            && !(first && self.just_after_ph() && is_unit(t))
    }

    fn flush_space(&mut self) {
        if self.pending_space {
            self.out.push(' ');
            self.pending_space = false;
        }
    }

    /// Writes literal text.
    #[inline]
    fn lit(&mut self, text: &str) {
        if self.swallow_close > 0 {
            return self.lit_swallowing(text);
        }
        if text.is_empty() {
            return;
        }
        self.name_next = false;
        self.flush_space();
        self.out.push_str(text);
    }

    /// [`Masker::lit`] while closing brackets are to be dropped (rare).
    #[cold]
    fn lit_swallowing(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if self.swallow_close > 0
            && !self.pending_space
            && matches!(text.as_bytes()[0], b')' | b']')
        {
            self.swallow_close -= 1;
            self.lit_swallowing(&text[1..]);
            return;
        }
        self.swallow_close = 0;
        self.name_next = false;
        self.flush_space();
        self.out.push_str(text);
    }

    /// Writes a placeholder, collapsing it into the previous one when only
    /// spaces, commas or an opening bracket separate them (lists, `1.2 KB`,
    /// `Jun 15 04:06:18 2005`).
    fn ph(&mut self, kind: Placeholder) {
        self.name_next = false;
        if let Some(last) = self.last {
            if last.end <= self.out.len() {
                let gap = &self.out.as_bytes()[last.end..];
                if gap.len() <= 3 && gap.iter().all(|&c| matches!(c, b' ' | b',' | b'(' | b'[')) {
                    let opens = gap.iter().filter(|&&c| matches!(c, b'(' | b'[')).count() as u8;
                    let merged = last.kind.merge(kind);
                    self.out.truncate(last.start);
                    merged.push_to(self.out);
                    self.last = Some(Last {
                        start: last.start,
                        end: self.out.len(),
                        kind: merged,
                    });
                    self.pending_space = false;
                    self.swallow_close = self.swallow_close.saturating_add(opens);
                    return;
                }
            }
        }
        self.swallow_close = 0;
        self.flush_space();
        let start = self.out.len();
        kind.push_to(self.out);
        self.last = Some(Last {
            start,
            end: self.out.len(),
            kind,
        });
    }

    /// True when the last thing written is a placeholder followed by at most
    /// a pending space (the unit in `12 ms` is then part of the value).
    fn just_after_ph(&self) -> bool {
        matches!(self.last, Some(l) if l.end == self.out.len())
    }

    /// Handles the text starting at `i` (not whitespace) up to the next atom
    /// boundary; returns where to continue.
    fn word_part(&mut self, i: usize, end: usize) -> usize {
        let s = self.s;
        let b = s[i];

        if self.redact_next {
            return self.credential(i, end);
        }

        // Quotes, brackets, comparison signs and other delimiters: most
        // atoms start with none of them, which one table load tells.
        if BYTE_CLASS[b as usize] & (C_DELIM | C_APOS) != 0 || b == b'~' {
            // Quoted text.
            if is_quote(b) && (b != b'\'' || i == 0 || !s[i - 1].is_ascii_alphanumeric()) {
                return self.quoted(i, end);
            }
            // `<1 sec`, `>5`, `~3`: a comparison sign belongs to the number.
            if matches!(b, b'<' | b'>' | b'~') && i + 1 < end && s[i + 1].is_ascii_digit() {
                return i + 1;
            }
            // `[fe80::1]:443`: a bracketed IPv6 address, maybe with a port.
            if b == b'[' {
                if let Some(p) = s[i + 1..end].iter().position(|&c| c == b']' || is_space(c)) {
                    let close = i + 1 + p;
                    if s[close] == b']' && is_ipv6(&s[i + 1..close]) {
                        let mut k = close + 1;
                        if k + 1 < end && s[k] == b':' && s[k + 1].is_ascii_digit() {
                            k += 1;
                            while k < end && s[k].is_ascii_digit() {
                                k += 1;
                            }
                        }
                        self.ph(Placeholder::Ip);
                        return k;
                    }
                }
            }
            // `<ip> ()`: an empty value after a value is part of it.
            if b == b'(' && i + 1 < end && s[i + 1] == b')' && self.just_after_ph() {
                self.pending_space = false;
                return i + 2;
            }
            if is_delim(b) {
                self.lit(&self.src[i..i + 1]);
                return i + 1;
            }
        }

        // The atom: up to whitespace or a delimiter. URLs keep their
        // delimiters (query strings) up to whitespace.
        let mut seen = 0u16;
        let rest = &s[i..end];
        let mut k = 0;
        // Four bytes at a time while none of them may end the atom (one
        // test per four bytes), then byte by byte up to the end.
        while let Some(w) = rest.get(k..k + 4) {
            let c = BYTE_CLASS[w[0] as usize]
                | BYTE_CLASS[w[1] as usize]
                | BYTE_CLASS[w[2] as usize]
                | BYTE_CLASS[w[3] as usize];
            if c & (C_SPACE | C_DELIM | C_APOS) != 0 {
                break;
            }
            seen |= c;
            k += 4;
        }
        while k < rest.len() {
            let c = BYTE_CLASS[rest[k] as usize];
            if c & (C_SPACE | C_DELIM | C_APOS) != 0
                && (c & C_APOS == 0
                    || !(k > 0
                        && k + 1 < rest.len()
                        && rest[k - 1].is_ascii_alphanumeric()
                        && rest[k + 1].is_ascii_alphanumeric()))
            {
                break;
            }
            seen |= c;
            k += 1;
        }
        let j = i + k;
        if j == i {
            // A lone apostrophe after a letter (`'s`, `a'`): literal.
            self.lit(&self.src[i..i + 1]);
            return i + 1;
        }
        // A word of letters: maybe the start of a run of plain words.
        if seen & !C_WORD == 0
            && (j == end || is_space(s[j]))
            && !self.name_next
            && self.swallow_close == 0
        {
            if let Some(next) = self.plain_run(i, j, seen, end) {
                return next;
            }
        }
        if let Some(p) = (seen & C_COLON != 0)
            .then(|| scheme_separator(&s[i..j]))
            .flatten()
        {
            if p > 0
                && s[i..i + p]
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'.' | b'-'))
            {
                let mut k = j;
                while k < end
                    && !is_space(s[k])
                    && !matches!(s[k], b'"' | b'`' | b'>' | b')' | b']')
                {
                    k += 1;
                }
                while k > i && matches!(s[k - 1], b'.' | b',' | b';' | b':' | b'\'' | b'!' | b'?') {
                    k -= 1;
                }
                self.ph(Placeholder::Url);
                return k;
            }
        }

        // A path with a query string: `/v2/servers/detail?all_tenants=1&x=2`.
        if b == b'/' && j < end && s[j] == b'=' {
            let mut k = j;
            while k < end && !is_space(s[k]) && !matches!(s[k], b'"' | b'\'' | b'`') {
                k += 1;
            }
            if s[i..k].contains(&b'?') {
                while k > i && matches!(s[k - 1], b'.' | b',' | b';' | b':' | b')' | b']') {
                    k -= 1;
                }
                self.ph(Placeholder::Path);
                return k;
            }
        }
        // Key = value: the atom is a key, what follows `=` is a value.
        if j < end && s[j] == b'=' && j > i {
            let key = &self.src[i..j];
            self.atom(i, j, end, seen);
            let sensitive = secrets::is_sensitive_key(key);
            return self.value_after_eq(j, end, sensitive);
        }
        self.atom(i, j, end, seen);
        j
    }

    /// Masks the credential that starts at `i` (after `password:`,
    /// `Bearer`…) up to whitespace; returns where it ends. A quoted one runs
    /// to the whitespace after its closing quote, so that `password: "two
    /// words"` hides both words (a value closed within the word, as in
    /// `password: "x",`, ends where it always did).
    fn credential(&mut self, i: usize, end: usize) -> usize {
        let s = &self.s[..end];
        let word_end = |from: usize| {
            s[from..]
                .iter()
                .position(|&c| is_space(c))
                .map_or(end, |p| from + p)
        };
        let j = word_end(i);
        // `Authorization: Bearer <token>`: the scheme is not the secret.
        if secrets::is_auth_scheme(&self.src[i..j]) {
            self.lit(&self.src[i..j]);
            return j;
        }
        self.redact_next = false;
        self.ph(Placeholder::Str);
        match is_quote(s[i]).then(|| secrets::closing_quote(s, i + 1, s[i])) {
            Some(Some(c)) => word_end(c + 1),
            _ => j,
        }
    }

    /// After the quoted key `key` (its closing quote just before `k`): a
    /// colon makes the value a credential when the key is sensitive, as
    /// `password:` does for a bare key. JSON and Python dicts quote their
    /// keys (`{"password": "x"}`, `{'token':'x'}`), which the bare-key test
    /// cannot see. Writes the colon and a quoted value as `"<str>"` (an
    /// unquoted one is left to [`Masker::credential`]); returns where to
    /// continue, `None` when no colon follows or the key is not sensitive.
    fn sensitive_key_value(&mut self, key: &str, k: usize, end: usize) -> Option<usize> {
        let s = &self.s[..end];
        let colon = k + s[k..].iter().position(|&c| !is_space(c))?;
        if s[colon] != b':' || s.get(colon + 1) == Some(&b':') || !secrets::is_sensitive_key(key) {
            return None;
        }
        self.pending_space = colon > k;
        self.lit(":");
        let Some(v) = s[colon + 1..]
            .iter()
            .position(|&c| !is_space(c))
            .map(|p| colon + 1 + p)
        else {
            self.redact_next = true;
            return Some(colon + 1);
        };
        let close = is_quote(s[v])
            .then(|| secrets::closing_quote(s, v + 1, s[v]))
            .flatten();
        let Some(c) = close else {
            self.redact_next = true;
            return Some(colon + 1);
        };
        self.pending_space = v > colon + 1;
        let quote = &self.src[v..v + 1];
        self.lit(quote);
        self.last = None;
        self.ph(Placeholder::Str);
        self.last = None;
        self.lit(quote);
        Some(c + 1)
    }

    /// `=` at `j`: writes it and masks the value that follows.
    fn value_after_eq(&mut self, j: usize, end: usize, sensitive: bool) -> usize {
        let s = self.s;
        // `==`, `=>`: operators, not assignments.
        self.lit("=");
        let mut k = j + 1;
        if k >= end || is_space(s[k]) {
            return k;
        }
        if is_quote(s[k]) {
            let q = s[k];
            let close = s[k + 1..end]
                .iter()
                .position(|&c| c == q)
                .map(|p| k + 1 + p);
            if let Some(c) = close {
                let q = &self.src[k..k + 1];
                self.lit(q);
                self.last = None;
                self.ph(if sensitive {
                    Placeholder::Str
                } else {
                    self.value_kind(k + 1, c)
                });
                self.last = None;
                self.lit(q);
                return c + 1;
            }
        }
        let vs = k;
        while k < end
            && !is_space(s[k])
            && !matches!(s[k], b',' | b';' | b'&' | b')' | b']' | b'}' | b'"')
        {
            // `WorkSource{10113}`, `Rect(0,0)`: a bracketed value closed
            // within the word is one value; otherwise the bracket ends it.
            if matches!(s[k], b'(' | b'{' | b'[') {
                let close = match s[k] {
                    b'(' => b')',
                    b'{' => b'}',
                    _ => b']',
                };
                match s[k + 1..end]
                    .iter()
                    .position(|&c| c == close || is_space(c))
                {
                    Some(p) if s[k + 1 + p] == close => {
                        k += p + 2;
                        continue;
                    }
                    _ => break,
                }
            }
            k += 1;
        }
        // Trailing sentence punctuation is not part of the value.
        let mut ve = k;
        while ve > vs
            && matches!(s[ve - 1], b'.' | b':')
            && (ve - 1 == vs || !s[ve - 2].is_ascii_digit())
        {
            ve -= 1;
        }
        if ve > vs {
            self.last = None;
            let kind = if sensitive {
                Placeholder::Str
            } else {
                self.value_kind(vs, ve)
            };
            self.ph(kind);
        }
        if ve < k {
            self.lit(&self.src[ve..k]);
        }
        k
    }

    /// The placeholder for a `key=value` value: its own type when it has
    /// one, `<*>` otherwise.
    fn value_kind(&self, a: usize, z: usize) -> Placeholder {
        match classify(&self.s[a..z]) {
            Some(Placeholder::Str) | None => Placeholder::Any,
            Some(p) => p,
        }
    }

    /// Quoted text starting at `i`.
    fn quoted(&mut self, i: usize, end: usize) -> usize {
        let s = self.s;
        let q = s[i];
        // The closing quote: the same byte, followed by the end, whitespace
        // or punctuation.
        let mut k = i + 1;
        let mut close = None;
        let mut words = 1usize;
        while k < end {
            let c = s[k];
            if c == q && (k + 1 >= end || !s[k + 1].is_ascii_alphanumeric()) {
                close = Some(k);
                break;
            }
            if is_space(c) && k > i + 1 && !is_space(s[k - 1]) {
                words += 1;
            }
            k += 1;
        }
        let Some(c) = close else {
            self.lit(&self.src[i..i + 1]);
            return i + 1;
        };
        let quote = &self.src[i..i + 1];
        self.lit(quote);
        self.last = None;
        let inner = &s[i + 1..c];
        if inner.is_empty() {
            // nothing
        } else if words > MAX_QUOTED_WORDS {
            self.ph(Placeholder::Str);
        } else {
            self.run(i + 1, c);
        }
        self.pending_space = false;
        self.last = None;
        self.swallow_close = 0;
        self.out.push_str(quote);
        self.sensitive_key_value(&self.src[i + 1..c], c + 1, end)
            .unwrap_or(c + 1)
    }

    /// Classifies and writes the atom `s[i..j]` (no whitespace, no
    /// delimiters except `:` `.` `/` `-` `_` `@` …).
    /// `seen` is the OR of the byte classes of `s[i..j]`.
    // Inlined into its two call sites in `word_part`: it runs for every
    // atom, and the call (arguments, saved registers) was a tenth of its cost.
    #[inline(always)]
    fn atom(&mut self, i: usize, j: usize, end: usize, seen: u16) {
        let s = self.s;
        // Trailing sentence punctuation stays literal.
        let mut z = j;
        // (Only `:`, `'` and `.!?` are trimmed: nothing to do without them.)
        if seen & (C_COLON | C_APOS | C_PUNCT) != 0 {
            while z > i && matches!(s[z - 1], b'.' | b':' | b'!' | b'?' | b'\'') {
                z -= 1;
            }
        }
        // ... but `1.` in `1.2.` and IPv6 `::` need care: keep `::` whole.
        if z < j && s[z] == b':' && z + 1 < j && s[z + 1] == b':' {
            z = j;
        }
        if z == i {
            self.lit(&self.src[i..j]);
            return;
        }
        let t = &s[i..z];
        let text = &self.src[i..z];
        // Nothing trimmable in the atom: its classes are those of `t`.
        let flags = if seen & (C_COLON | C_APOS | C_PUNCT) == 0 {
            seen
        } else {
            class_union(t)
        };
        if let Some(kind) = classify_with(t, flags) {
            if kind == Placeholder::Num && self.keep_status_code(t, j, end) {
                self.lit(text);
                self.prev_word = text;
            } else {
                self.ph(kind);
            }
        } else if self.just_after_ph() && is_unit(t) {
            // `12 ms`, `1.2 KB`, `3 seconds`: the unit is part of the value.
            if let Some(l) = self.last.as_mut() {
                if l.kind == Placeholder::Num && is_time_unit(t) {
                    l.kind = Placeholder::Duration;
                    self.out.truncate(l.start);
                    Placeholder::Duration.push_to(self.out);
                    l.end = self.out.len();
                }
            }
            self.pending_space = false;
        } else if is_date_word(t)
            && (self.just_after_ph() || next_starts_with_digit_or_month(s, j, end))
        {
            self.ph(Placeholder::Ts);
        } else if let Some(c) = (flags & C_COLON != 0).then(|| key_colon(t)).flatten() {
            // `isOverlap:false`, `user:root`: keep the key, mask the value.
            self.lit(&self.src[i..i + c + 1]);
            self.prev_word = &self.src[i..i + c];
            self.last = None;
            let v = &s[i + c + 1..z];
            let kind = match classify(v) {
                Some(Placeholder::Str) | None => Placeholder::Any,
                Some(p) => p,
            };
            self.ph(if secrets::is_sensitive_key(self.prev_word) {
                Placeholder::Str
            } else {
                kind
            });
        } else if self.name_next && !is_stopword(t) {
            self.ph(Placeholder::Id);
        } else {
            self.lit(text);
            // `Bearer <token>` (not `Token refresh failed`), `password: <secret>`
            if (secrets::announces_credential(text)
                && secrets::credential_follows(&self.src[j..end]))
                || (z < j && s[z] == b':' && secrets::is_sensitive_key(text))
            {
                self.redact_next = true;
            }
            self.prev_word = text;
            // `for user alice`, `Invalid user admin`: the name is a value.
            // (The length test first: it rules out almost every word.)
            if matches!(t.len(), 4 | 8)
                && (t.eq_ignore_ascii_case(b"user") || t == b"username")
                && z == j
                && j < end
                && is_space(s[j])
            {
                self.name_next = true;
            }
        }
        if z < j {
            self.lit(&self.src[z..j]);
        }
    }

    /// HTTP status codes carry meaning: `HTTP 503`, `HTTP/1.1" 500`,
    /// `returned 404 Not Found` keep the number.
    fn keep_status_code(&self, t: &[u8], j: usize, end: usize) -> bool {
        if t.len() != 3 || !(b'1'..=b'5').contains(&t[0]) || !t.iter().all(u8::is_ascii_digit) {
            return false;
        }
        if self.prev_word.eq_ignore_ascii_case("http")
            || self.prev_word.eq_ignore_ascii_case("status_code")
        {
            return true;
        }
        let s = self.s;
        let mut k = j;
        while k < end && is_space(s[k]) {
            k += 1;
        }
        let ws = k;
        while k < end && s[k].is_ascii_alphabetic() {
            k += 1;
        }
        static REASONS: WordSet = WordSet::new(&[
            b"Internal",
            b"Bad",
            b"Service",
            b"Gateway",
            b"Forbidden",
            b"Unauthorized",
            b"Method",
            b"Too",
            b"Not",
            b"Conflict",
            b"Unprocessable",
            b"Request",
            b"Payload",
            b"Gone",
            b"Precondition",
            b"Unsupported",
        ]);
        ws > j && REASONS.contains(&s[ws..k])
    }
}

/// Where the first `://` in `h` starts. Atoms with a colon are common in
/// error messages (`failed:`, `ws_1a2b:`), URLs are not: a search for the
/// colons, each then tested for `//`, costs a few instructions per byte less
/// than comparing three bytes at every position.
fn scheme_separator(h: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(p) = h[from..].iter().position(|&b| b == b':') {
        let colon = from + p;
        if h[colon + 1..].starts_with(b"//") {
            return Some(colon);
        }
        from = colon + 1;
    }
    None
}

/// `key:value` inside one atom (not `::`, not a trailing colon): the byte
/// offset of the colon when the key is an identifier.
fn key_colon(t: &[u8]) -> Option<usize> {
    let c = t.iter().position(|&b| b == b':')?;
    if c == 0 || c + 1 >= t.len() || t[c + 1] == b':' || t[c - 1] == b':' {
        return None;
    }
    if t[c + 1..].windows(2).any(|w| w == b"::") {
        return None;
    }
    t[..c]
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        .then_some(c)
}

fn next_starts_with_digit_or_month(s: &[u8], mut j: usize, end: usize) -> bool {
    while j < end && is_space(s[j]) {
        j += 1;
    }
    if j >= end {
        return false;
    }
    if s[j].is_ascii_digit() {
        return true;
    }
    let mut k = j;
    while k < end && s[k].is_ascii_alphabetic() {
        k += 1;
    }
    is_month(&s[j..k])
}
#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> String {
        mask(s)
    }

    #[test]
    fn scheme_separator_is_the_first_colon_slash_slash() {
        for h in [
            "",
            ":",
            "://",
            "a:",
            "a:/",
            "a:/b://c",
            "http://x",
            "a::b://c",
            "x:y:z",
            ":a//",
            "a://b://c",
        ] {
            let h = h.as_bytes();
            let reference = h.windows(3).position(|w| w == b"://");
            assert_eq!(scheme_separator(h), reference, "{h:?}");
        }
    }

    #[test]
    fn uuid() {
        assert_eq!(
            m("Stream 9c8ae392-6df6-44c5-beb7-56dc1ca79238 error"),
            "Stream <uuid> error"
        );
    }
    #[test]
    fn numbers_and_hex() {
        assert_eq!(m("retry 3 of 5"), "retry <num> of <num>");
        assert_eq!(m("ptr 0x7ffe12ab value -1.5"), "ptr <hex> value <num>");
        assert_eq!(m("commit 4e237ba7de736df8"), "commit <hex>");
        assert_eq!(m("object deadbeefcafe"), "object <hex>");
    }
    #[test]
    fn ips() {
        assert_eq!(m("from 10.0.0.1 port 22"), "from <ip> port <num>");
        assert_eq!(m("connect 10.0.0.1:5432 failed"), "connect <ip> failed");
        assert_eq!(
            m("peer [fe80::1ff:fe23:4567:890a]:443 reset"),
            "peer <ip> reset"
        );
        assert_eq!(m("peer 2001:db8::ff00:42:8329 reset"), "peer <ip> reset");
    }
    #[test]
    fn urls_paths_emails() {
        assert_eq!(
            m("GET https://api.x.ai/v1/a?b=1&c=2 failed"),
            "GET <url> failed"
        );
        assert_eq!(m("open /var/log/app.log: denied"), "open <path>: denied");
        assert_eq!(m("load C:\\Windows\\x.dll"), "load <path>");
        assert_eq!(m("run chrome.exe now"), "run <path> now");
        assert_eq!(m("I/O error"), "I/O error");
        assert_eq!(m("mail bob@example.com bounced"), "mail <email> bounced");
    }
    #[test]
    fn timestamps_and_durations() {
        assert_eq!(
            m("at 2025-09-14T05:14:47.585094+00:00 done"),
            "at <ts> done"
        );
        assert_eq!(m("at Wed Jun 15 04:06:18 2005 x"), "at <ts> x");
        assert_eq!(m("took 120ms"), "took <duration>");
        assert_eq!(m("took 1.5 seconds"), "took <duration>");
        assert_eq!(m("lifetime 00:01"), "lifetime <ts>");
    }
    #[test]
    fn compound_ids() {
        assert_eq!(
            m("WebSocket connection state error for ws_10146348_1757373397_aca2f891: x"),
            "WebSocket connection state error for <id>: x"
        );
        assert_eq!(
            m("id thread_websocket_factory_1757373577513_54_24427b1b"),
            "id <id>"
        );
        assert_eq!(
            m("run 'run_chat_1757826886250_1084_b4c0bd77' x"),
            "run '<id>' x"
        );
    }
    #[test]
    fn key_values() {
        assert_eq!(m("login user=bob ok"), "login user=<*> ok");
        assert_eq!(m("logname= uid=0 euid=0"), "logname= uid=<num> euid=<num>");
        assert_eq!(
            m("updateClipping isOverlap:false, x"),
            "updateClipping isOverlap:<*>, x"
        );
        assert_eq!(m("tag=\"some thing here\" ok"), "tag=\"<*>\" ok");
    }
    #[test]
    fn json_values() {
        assert_eq!(
            m(r#"payload {"user": "bob", "n": 3} bad"#),
            r#"payload {"user": "bob", "n": <num>} bad"#
        );
        assert_eq!(
            m(r#"payload {"msg": "a long user text here"} bad"#),
            r#"payload {"msg": "<str>"} bad"#
        );
    }
    #[test]
    fn quoted() {
        assert_eq!(
            m("Need to call \"accept\" first."),
            "Need to call \"accept\" first."
        );
        assert_eq!(
            m("Unexpected ASGI message 'websocket.close', after"),
            "Unexpected ASGI message 'websocket.close', after"
        );
        assert_eq!(m("reply 'please do the thing now' ok"), "reply '<str>' ok");
        assert_eq!(
            m("object can't be used in 'await' expression"),
            "object can't be used in 'await' expression"
        );
    }
    #[test]
    fn lists() {
        assert_eq!(m("nodes [1, 2, 3, 4] down"), "nodes [<num>] down");
        assert_eq!(m("nodes [1] down"), "nodes [<num>] down");
        assert_eq!(m("sent 1190 bytes (1.16 KB) ok"), "sent <num> ok");
    }
    #[test]
    fn keeps_meaning() {
        let s = "create_server_message() missing 1 required positional argument: 'data'";
        assert_eq!(
            m(s),
            "create_server_message() missing <num> required positional argument: 'data'"
        );
        assert_eq!(
            m("ValidationError: trace_id Field required"),
            "ValidationError: trace_id Field required"
        );
        assert_eq!(
            m("upstream returned HTTP 503"),
            "upstream returned HTTP 503"
        );
        assert_eq!(
            m("got 500 Internal Server Error"),
            "got 500 Internal Server Error"
        );
        assert_eq!(
            m("connect ECONNREFUSED 127.0.0.1:5432"),
            "connect ECONNREFUSED <ip>"
        );
        assert_eq!(m("std::io::Error oops"), "std::io::Error oops");
    }

    #[test]
    fn classes_of_modules_with_digits_keep_their_names() {
        for kept in [
            "psycopg2.OperationalError: could not connect to server",
            "psycopg2.errors.UniqueViolation: duplicate key",
            "urllib3.exceptions.MaxRetryError: retries exceeded",
            "boto3 client failed",
        ] {
            assert_eq!(m(kept), kept);
        }
        // Not a class (a file, a version, an unknown module): masked as before.
        assert_eq!(m("File psycopg2.py failed"), "File <path> failed");
        assert_eq!(m("v2.Error: boom"), "<id>: boom");
        assert_eq!(m("mod9.Error: boom"), "<id>: boom");
    }
    #[test]
    fn secrets_masked() {
        assert_eq!(
            m("Authorization: Bearer abcdef"),
            "Authorization: Bearer <str>"
        );
        assert_eq!(
            m("Failed to extract auth=REDACTED SessionMiddleware"),
            "Failed to extract auth=<str> SessionMiddleware"
        );
        assert_eq!(m("password: hunter2 rejected"), "password: <str> rejected");
        assert_eq!(m("Failed password for root"), "Failed password for root");
    }
    /// Credentials written as JSON or as a Python dict: the key stays
    /// readable, its value is masked whatever the quoting.
    #[test]
    fn quoted_key_credentials_masked() {
        for (msg, template) in [
            (
                r#"auth failed with credentials {"username": "alice", "password": "letmein"}"#,
                r#"auth failed with credentials {"username": "alice", "password": "<str>"}"#,
            ),
            (
                r#"creds {"token": "abcdef"}"#,
                r#"creds {"token": "<str>"}"#,
            ),
            (
                r#"creds {"a": "b", "api_key": "abcdef"}"#,
                r#"creds {"a": "b", "api_key": "<str>"}"#,
            ),
            (r#"{"password":"hunter2"}"#, r#"{"password":"<str>"}"#),
            (r#"{"password":"letmein"}"#, r#"{"password":"<str>"}"#),
            (r#"{"password" : "x"}"#, r#"{"password" : "<str>"}"#),
            ("{'password': 'x'}", "{'password': '<str>'}"),
            (r#"{"password": "pa\"ss word"}"#, r#"{"password": "<str>"}"#),
            (r#"{"token": 12345}"#, r#"{"token": <str>"#),
            (r#"login password="x y" ok"#, r#"login password="<str>" ok"#),
            (r#"login password: "x y" ok"#, "login password: <str> ok"),
            ("login password: x ok", "login password: <str> ok"),
            ("login password=x ok", "login password=<str> ok"),
        ] {
            assert_eq!(m(msg), template, "{msg}");
        }
        // Other quoted keys keep their values' own placeholders.
        assert_eq!(
            m(r#"{"user": "bob", "n": 3}"#),
            r#"{"user": "bob", "n": <num>}"#
        );
    }

    /// The same message with different passwords is one error: one
    /// signature, and the password in none of the templates.
    #[test]
    fn different_passwords_one_signature() {
        let signer = crate::signature::Signer::new(&Default::default()).unwrap();
        let forms = [
            r#"auth failed with credentials {"username": "alice", "password": "PW"}"#,
            r#"creds {"token": "PW"}"#,
            r#"creds {"a": "b", "api_key": "PW"}"#,
            r#"{"password":"PW"}"#,
            "{'password': 'PW'}",
            r#"login password="PW" ok"#,
            r#"login password: "PW" ok"#,
            "login password: PW ok",
            "login password=PW ok",
        ];
        for form in forms {
            let signs: Vec<_> = ["letmein", "hunter2", "Tr0ub4dor&3", "x", "abcdef"]
                .iter()
                .map(|pw| signer.sign_message("svc", &form.replace("PW", pw)))
                .collect();
            for (sign, pw) in signs.iter().zip(["letmein", "hunter2", "Tr0ub4dor"]) {
                assert!(!sign.template.contains(pw), "{form}: {}", sign.template);
            }
            for sign in &signs[1..] {
                assert_eq!(sign.fingerprint, signs[0].fingerprint, "{form}");
            }
        }
    }

    /// `Token`/`Bearer` hide the next word only when it looks like a
    /// credential or follows a sensitive key: `Token refresh failed` and
    /// `Token validation failed` are two errors.
    #[test]
    fn auth_scheme_hides_only_credentials() {
        let refresh = m("Token refresh failed for user 5");
        let validation = m("Token validation failed for user 5");
        assert_eq!(refresh, "Token refresh failed for user <num>");
        assert_eq!(validation, "Token validation failed for user <num>");
        let signer = crate::signature::Signer::new(&Default::default()).unwrap();
        assert_ne!(
            signer
                .sign_message("svc", "Token refresh failed for user 5")
                .fingerprint,
            signer
                .sign_message("svc", "Token validation failed for user 5")
                .fingerprint
        );
        assert_eq!(m("Bearer token expired"), "Bearer token expired");
        assert_eq!(
            m("Authorization: Token abc123def456"),
            "Authorization: Token <str>"
        );
        assert_eq!(
            m("authorization: Bearer abc"),
            "authorization: Bearer <str>"
        );
        assert_eq!(
            m("rejected Token abc123def456 now"),
            "rejected Token <str> now"
        );
        assert_eq!(
            m("rejected Basic dXNlcjpwYXNz now"),
            "rejected Basic <str> now"
        );
        let jwt =
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            m(&format!("rejected Bearer {jwt} now")),
            "rejected Bearer <str> now"
        );
    }

    #[test]
    fn hosts() {
        assert_eq!(m("rhost=csnsu.nsuok.edu"), "rhost=<*>");
        assert_eq!(m("from ns.example.com x"), "from <*> x");
        assert_eq!(
            m("module netra_backend.app.agents"),
            "module netra_backend.app.agents"
        );
    }
    #[test]
    fn routes() {
        assert_eq!(
            mask_route("https://api.x.ai/api/threads/9c8ae392-6df6-44c5-beb7-56dc1ca79238?limit=5"),
            "/api/threads/<uuid>"
        );
        assert_eq!(
            mask_route("/users/{user_id}/posts/42"),
            "/users/{user_id}/posts/<num>"
        );
    }
    #[test]
    fn placeholder_spellings() {
        for ph in Placeholder::ALL {
            assert!(Placeholder::is_placeholder(ph.as_str().as_bytes()));
            let mut out = String::from("x");
            ph.push_to(&mut out);
            assert_eq!(&out[1..], ph.as_str());
        }
        assert!(!Placeholder::is_placeholder(b"<x>"));
    }
    #[test]
    fn plain_word_runs() {
        assert_eq!(
            m("retry later user alice logged out"),
            "retry later user <id> logged out"
        );
        assert_eq!(
            m("auth failed Bearer abc123 def"),
            "auth failed Bearer <str> def"
        );
        assert_eq!(m("value is true for all"), "value is <*> for all");
        assert_eq!(m("a  b\tc d"), "a b c d");
        assert_eq!(
            m("took 3 seconds to say hello"),
            "took <duration> to say hello"
        );
    }
    #[test]
    fn generic() {
        assert_eq!(to_generic("a <num> b <uuid> <x> c"), "a <*> b <*> <x> c");
    }
    #[test]
    fn long_input_is_bounded() {
        let s = "é".repeat(5000);
        assert!(mask(&s).len() <= MAX_INPUT_BYTES);
    }
}
