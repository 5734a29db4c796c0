//! Literal prefilters: which SLI regexes can match a text at all.
//!
//! Most records match no SLI regex, and running each regex on each message
//! would be most of an SLI's cost. Every match of a regex starts with one
//! of its literal prefixes and ends with one of its literal suffixes
//! (extracted by `regex-syntax`); one pass of a case-insensitive
//! Aho-Corasick automaton over the text tells which regexes can match, and
//! only those run. [`Prefilter`] is that pass, [`JointPrefilter`] the
//! message's and span name's in one, [`PrefilteredRegex`] a regex behind
//! both filters, [`Possible`] the answer computed once per text.

use std::cell::Cell;

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind};
use regex::Regex;

/// Which prefiltered regexes may match one haystack, computed at most once
/// per event and only if a matcher gets as far as its regex.
pub(super) struct Possible<'p> {
    pub(super) prefilter: Option<&'p Prefilter>,
    pub(super) bits: Cell<Option<u64>>,
}

impl Possible<'_> {
    /// False only when the regex in prefilter slot `slot` cannot match `haystack`.
    pub(super) fn may_match(&self, slot: Option<u8>, haystack: &str) -> bool {
        let (Some(slot), Some(_)) = (slot, self.prefilter) else {
            return true;
        };
        self.bits(haystack) & (1 << slot) != 0
    }

    /// The slots whose regex may match `haystack` (none without a prefilter).
    pub(super) fn bits(&self, haystack: &str) -> u64 {
        match self.bits.get() {
            Some(bits) => bits,
            None => {
                let bits = self.prefilter.map_or(0, |p| p.scan(haystack));
                self.bits.set(Some(bits));
                bits
            }
        }
    }
}

/// The message and span-name prefilters as one automaton, for a span
/// whose message is its name (a span's message is its name unless it has
/// a status message): one scan of the name answers both, where each
/// prefilter scanned it once. The span-name slots' bits are shifted above
/// the message's; the slots a literal stands for are those it stands for
/// in either prefilter, so each side's bits are what its own prefilter
/// finds.
#[derive(Debug)]
pub(super) struct JointPrefilter {
    prefilter: Prefilter,
    /// Where the span-name slots' bits start (above every message slot).
    shift: u32,
}

impl JointPrefilter {
    /// `None` when the slots of both do not fit in 64 bits, or when the
    /// joint scan would walk the automaton over every byte where each
    /// prefilter alone looks for the places a literal begins. It may look
    /// for twice as many beginnings as one prefilter: each costs a few
    /// vector instructions per 16 bytes, a second scan costs more.
    pub(super) fn new(
        (message, message_literals): (&Prefilter, Vec<(Vec<u8>, u64)>),
        (span_name, span_name_literals): (&Prefilter, Vec<(Vec<u8>, u64)>),
    ) -> Option<JointPrefilter> {
        let shift = u64::BITS - message.all.leading_zeros();
        if span_name.all.leading_zeros() < shift {
            return None;
        }
        let mut literals = message_literals;
        for (literal, owners) in span_name_literals {
            let owners = owners << shift;
            match literals.iter_mut().find(|(l, _)| *l == literal) {
                Some((_, o)) => *o |= owners,
                None => literals.push((literal, owners)),
            }
        }
        let prefilter = Prefilter::of_literals_with(literals, 2 * MAX_BEGINNINGS)?;
        let slower = prefilter.beginnings.is_none()
            && message.beginnings.is_some()
            && span_name.beginnings.is_some();
        (!slower).then_some(JointPrefilter { prefilter, shift })
    }

    /// The slots whose regex may match `text`: (message, span name).
    pub(super) fn scan(&self, text: &str) -> (u64, u64) {
        let bits = self.prefilter.scan(text);
        (bits & ((1 << self.shift) - 1), bits >> self.shift)
    }
}

/// One pass of a case-insensitive Aho-Corasick automaton over a haystack
/// tells which regexes can match it at all: every match of a regex starts
/// with one of its literal prefixes (extracted by `regex-syntax`), so a regex
/// none of whose prefixes occurs cannot match and is not run. Most records
/// match no SLI regex, and the automaton's one pass is much cheaper than
/// running each regex.
///
/// The pass walks a full DFA byte by byte (one table lookup per byte, as in
/// [`crate::rules`]) instead of `find_overlapping_iter`, whose generic
/// overlapping search cost ~23 instructions per byte; every log message is
/// scanned, so this loop is most of the SLI cost of a record. The literals
/// are few, so the DFA is small and quick to build.
#[derive(Debug)]
pub(super) struct Prefilter {
    dfa: DFA,
    start: StateID,
    /// Per automaton pattern: the regex slots it stands for (a bit each).
    owners: Vec<u64>,
    /// Every slot's bit: once all are set, the rest of the haystack cannot
    /// add any.
    all: u64,
    /// Bytes that begin a literal (both ASCII cases). In the start state any
    /// other byte leads back to the start state, so the scan skips them with
    /// one table lookup each instead of a transition.
    starts: [bool; 256],
    /// The first two bytes of every literal, when all literals have two and
    /// there are at most [`MAX_BEGINNINGS`] such pairs: the scan then looks
    /// for the places where a literal can begin, 16 bytes at a time, and
    /// walks the automaton only from there (in text, the first letters of
    /// the literals are common; their first two letters together are not).
    beginnings: Option<Vec<Beginning>>,
}

/// At most this many regexes per haystack kind get a prefilter slot (bits of a `u64`).
const PREFILTER_SLOTS: usize = 64;

/// Most distinct two-byte literal beginnings searched for (each costs a few
/// vector instructions per 16 bytes).
const MAX_BEGINNINGS: usize = 8;

/// The first two bytes of a literal with the ASCII case bit (0x20) set.
/// A place in the text may begin that literal when its two bytes, with the
/// same bit set, are these: both cases of a letter are found, and so is a
/// non-letter that differs from the literal's only in that bit, which the
/// automaton then rules out. A beginning is never missed.
///
/// Each byte is kept repeated 16 times, ready to be loaded as a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Beginning([[u8; 16]; 2]);

impl Beginning {
    fn of(literal: &[u8]) -> Option<Beginning> {
        let [a, b, ..] = *literal else {
            return None;
        };
        Some(Beginning([[a | 0x20; 16], [b | 0x20; 16]]))
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn matches(self, pair: [u8; 2]) -> bool {
        pair[0] | 0x20 == self.0[0][0] && pair[1] | 0x20 == self.0[1][0]
    }
}

/// The first position at or after `at` where one of `beginnings` occurs
/// (`haystack.len()` if none): 16 positions at a time with SSE2 (part of
/// every x86-64 CPU; the last few bytes are copied into a zeroed block),
/// one at a time elsewhere.
fn next_beginning(beginnings: &[Beginning], haystack: &[u8], mut at: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        while at + 17 <= haystack.len() {
            let mask = block_beginnings(beginnings, &haystack[at..at + 17]);
            if mask != 0 {
                return at + mask.trailing_zeros() as usize;
            }
            at += 16;
        }
        let rest = haystack.len().saturating_sub(at);
        if rest > 0 && haystack.len() >= 17 {
            // The last 17 bytes, overlapping what was searched: the
            // positions before `at` are masked off (a beginning needs two
            // bytes, so none starts at the very last one).
            let start = haystack.len() - 17;
            let mask = block_beginnings(beginnings, &haystack[start..]) >> (at - start);
            if mask != 0 {
                return at + mask.trailing_zeros() as usize;
            }
        } else if rest > 0 {
            let mut block = [0u8; 17];
            block[..rest].copy_from_slice(&haystack[at..]);
            let mask = block_beginnings(beginnings, &block) & ((1u32 << rest) - 1);
            if mask != 0 {
                return at + mask.trailing_zeros() as usize;
            }
        }
        haystack.len()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        while at + 1 < haystack.len() {
            let pair = [haystack[at], haystack[at + 1]];
            if beginnings.iter().any(|b| b.matches(pair)) {
                return at;
            }
            at += 1;
        }
        haystack.len()
    }
}

/// Bit `j` set when one of `beginnings` may begin at `block[j]` (`j` < 16).
#[cfg(target_arch = "x86_64")]
#[inline]
fn block_beginnings(beginnings: &[Beginning], block: &[u8]) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8, _mm_setzero_si128,
    };
    assert!(block.len() >= 17);
    // SAFETY: SSE2 is in the x86-64 baseline, so these intrinsics are
    // available; the unaligned 16-byte loads read `block[0..17]`, which the
    // assertion above keeps in bounds, and the 16-byte arrays of `beginnings`.
    unsafe {
        let case = _mm_set1_epi8(0x20);
        let first = _mm_or_si128(_mm_loadu_si128(block.as_ptr().cast::<__m128i>()), case);
        let second = _mm_or_si128(
            _mm_loadu_si128(block.as_ptr().add(1).cast::<__m128i>()),
            case,
        );
        let mut found = _mm_setzero_si128();
        for b in beginnings {
            let both = _mm_and_si128(
                _mm_cmpeq_epi8(first, _mm_loadu_si128(b.0[0].as_ptr().cast::<__m128i>())),
                _mm_cmpeq_epi8(second, _mm_loadu_si128(b.0[1].as_ptr().cast::<__m128i>())),
            );
            found = _mm_or_si128(found, both);
        }
        _mm_movemask_epi8(found) as u32
    }
}

impl Prefilter {
    /// A prefilter for patterns given by their literal prefixes
    /// (`prefixes[i]`, from [`literal_prefixes`]; slot = index); `None` if
    /// none qualifies. `slots[i]` is set for the patterns that got one (a
    /// pattern without prefixes gets none). Also returns the literals with
    /// the slots each stands for (for a [`JointPrefilter`]).
    #[allow(clippy::type_complexity)]
    pub(super) fn build(
        prefixes: &[Option<&[Vec<u8>]>],
        slots: &mut [Option<u8>],
    ) -> Option<(Prefilter, Vec<(Vec<u8>, u64)>)> {
        let literals = Self::literals(prefixes, slots);
        let prefilter = Self::of_literals(literals.clone());
        if prefilter.is_none() {
            // No literal, or too many for a DFA: every regex simply runs.
            slots.iter_mut().for_each(|s| *s = None);
        }
        Some((prefilter?, literals))
    }

    /// The distinct literals of `prefixes`, each with the slots it stands
    /// for; sets `slots[i]` for the patterns that have prefixes.
    fn literals(prefixes: &[Option<&[Vec<u8>]>], slots: &mut [Option<u8>]) -> Vec<(Vec<u8>, u64)> {
        let mut literals: Vec<(Vec<u8>, u64)> = Vec::new();
        for (i, set) in prefixes.iter().enumerate().take(PREFILTER_SLOTS) {
            let Some(set) = set else {
                continue;
            };
            slots[i] = Some(i as u8);
            for literal in set.iter() {
                match literals.iter_mut().find(|(l, _)| l == literal) {
                    Some((_, owners)) => *owners |= 1 << i,
                    None => literals.push((literal.clone(), 1 << i)),
                }
            }
        }
        literals
    }

    /// A prefilter for `literals`, each with the slots it stands for (a
    /// bit each); `None` if there are none or too many for a DFA.
    fn of_literals(literals: Vec<(Vec<u8>, u64)>) -> Option<Prefilter> {
        Self::of_literals_with(literals, MAX_BEGINNINGS)
    }

    /// [`of_literals`](Self::of_literals) looking for at most
    /// `max_beginnings` beginnings.
    fn of_literals_with(literals: Vec<(Vec<u8>, u64)>, max_beginnings: usize) -> Option<Prefilter> {
        if literals.is_empty() {
            return None;
        }
        // Standard semantics report every pattern ending at a position,
        // overlapping ones included; no built-in prefilter: the start state
        // then is not "special", and the loop below checks one bound per byte.
        let built = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(literals.iter().map(|(l, _)| l))
            .ok()
            .and_then(|dfa| Some((dfa.start_state(Anchored::No).ok()?, dfa)));
        let (start, dfa) = built?;
        let mut starts = [false; 256];
        for (literal, _) in &literals {
            let first = literal[0];
            starts[usize::from(first.to_ascii_lowercase())] = true;
            starts[usize::from(first.to_ascii_uppercase())] = true;
        }
        let mut beginnings: Option<Vec<Beginning>> = Some(Vec::new());
        for (literal, _) in &literals {
            match (Beginning::of(literal), beginnings.as_mut()) {
                (Some(b), Some(list)) if list.contains(&b) => {}
                (Some(b), Some(list)) if list.len() < max_beginnings => list.push(b),
                _ => beginnings = None,
            }
        }
        let owners: Vec<u64> = literals.into_iter().map(|(_, o)| o).collect();
        Some(Prefilter {
            dfa,
            start,
            all: owners.iter().fold(0, |a, o| a | o),
            owners,
            starts,
            beginnings,
        })
    }

    /// The slots whose regex may match `haystack`.
    pub(super) fn scan(&self, haystack: &str) -> u64 {
        match &self.beginnings {
            Some(beginnings) => self.scan_from_beginnings(beginnings, haystack.as_bytes()),
            None => self.scan_every_byte(haystack.as_bytes()),
        }
    }

    /// [`scan_every_byte`](Self::scan_every_byte), walking the automaton
    /// only from the places where a literal can begin until it is back in
    /// its start state. Elsewhere the walk would stay in the start state
    /// (an Aho-Corasick state is the longest suffix of the text read that
    /// begins a literal), so the slots found are the same.
    fn scan_from_beginnings(&self, beginnings: &[Beginning], haystack: &[u8]) -> u64 {
        let dfa = &self.dfa;
        let mut bits = 0;
        let mut at = 0;
        loop {
            let mut i = next_beginning(beginnings, haystack, at);
            let mut sid = self.start;
            loop {
                let Some(&b) = haystack.get(i) else {
                    return bits;
                };
                i += 1;
                sid = dfa.next_state(Anchored::No, sid, b);
                if dfa.is_special(sid) && dfa.is_match(sid) {
                    for k in 0..dfa.match_len(sid) {
                        bits |= self.owners[dfa.match_pattern(sid, k).as_usize()];
                    }
                    if bits == self.all {
                        return bits;
                    }
                }
                if sid == self.start {
                    break;
                }
            }
            at = i;
        }
    }

    /// The slots whose regex may match `haystack`, by walking the automaton
    /// over every byte.
    fn scan_every_byte(&self, haystack: &[u8]) -> u64 {
        let dfa = &self.dfa;
        let mut bits = 0;
        let mut sid = self.start;
        for &b in haystack {
            if sid == self.start && !self.starts[usize::from(b)] {
                continue;
            }
            sid = dfa.next_state(Anchored::No, sid, b);
            if dfa.is_special(sid) && dfa.is_match(sid) {
                for k in 0..dfa.match_len(sid) {
                    bits |= self.owners[dfa.match_pattern(sid, k).as_usize()];
                }
                if bits == self.all {
                    break;
                }
            }
        }
        bits
    }
}

/// Literal prefixes, ASCII-lowercased and deduplicated, such that every
/// match of `pattern` starts with one of them; `None` when there is no such
/// finite set of non-empty literals (the regex then always runs). Parsed
/// with the same defaults as `regex::Regex::new`.
pub(super) fn literal_prefixes(pattern: &str) -> Option<Vec<Vec<u8>>> {
    literals(pattern, regex_syntax::hir::literal::ExtractKind::Prefix)
}

/// Literal suffixes, as [`literal_prefixes`], such that every match of
/// `pattern` *in an ASCII haystack* ends with one of them, matched ASCII
/// case-insensitively.
///
/// A leading `(?i)` is dropped before extracting: case-insensitive
/// literals expand into every case variant (`started` alone has 192, with
/// the Unicode `ſ`), which cost most of start-up to extract and dedupe.
/// Without it the literals are the pattern's own, ASCII-lowercased; on an
/// ASCII haystack `(?i)` adds nothing but other ASCII cases, which the
/// case-insensitive search covers. Its other effects (`ſ`, the Kelvin
/// sign, non-ASCII letters) need a non-ASCII haystack, for which the
/// suffix filter is not used.
fn literal_suffixes(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let pattern = pattern.strip_prefix("(?i)").unwrap_or(pattern);
    literals(pattern, regex_syntax::hir::literal::ExtractKind::Suffix)
}

/// The literals of `kind` (prefix or suffix) of `pattern`.
fn literals(pattern: &str, kind: regex_syntax::hir::literal::ExtractKind) -> Option<Vec<Vec<u8>>> {
    use regex_syntax::hir::literal::Extractor;
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .ok()?;
    // Above the default of 250 literals: `(?i)close|code` has more than
    // 250 case variants, and past the limit the extractor shortens them
    // all to `c`, a prefilter that passes nearly every message.
    let seq = Extractor::new().kind(kind).limit_total(1000).extract(&hir);
    let literals = seq.literals()?;
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(literals.len());
    for literal in literals {
        let bytes = literal.as_bytes().to_ascii_lowercase();
        if bytes.is_empty() {
            return None;
        }
        out.push(bytes);
    }
    out.sort_unstable();
    out.dedup();
    (!out.is_empty()).then_some(out)
}

/// A regex, its slot in the engine's prefilter (`None`: always run it)
/// and its own filter of literal suffixes.
#[derive(Debug)]
pub(super) struct PrefilteredRegex {
    pub(super) regex: Regex,
    pub(super) slot: Option<u8>,
    /// Every match ends with one of the regex's literal suffixes, so a
    /// haystack with none of them cannot match. Checked only after the
    /// engine's prefix prefilter passed the haystack: a word the regex
    /// starts with is often there without the rest of the match (`agent`
    /// in `/api/agents`, `WebSocket connection` in a message about a
    /// connection id), and a scan for the suffixes costs a fraction of the
    /// regex search it saves. `None` when the suffixes are unknown, not
    /// selective (shorter than [`MIN_SUFFIX_LEN`] bytes, more than
    /// [`MAX_SUFFIXES`]) or all among the prefixes (`agents?`).
    pub(super) suffixes: Option<Box<Prefilter>>,
    /// Its [`literal_prefixes`], until the engine's prefilter is built
    /// from them (taken then: nothing reads them after start-up).
    pub(super) prefixes: Option<Vec<Vec<u8>>>,
}

/// Shortest literal suffix worth a scan.
const MIN_SUFFIX_LEN: usize = 3;
/// Most literal suffixes scanned for per regex.
const MAX_SUFFIXES: usize = 64;

impl PrefilteredRegex {
    pub(super) fn new(regex: Regex) -> Self {
        let prefixes = literal_prefixes(regex.as_str());
        let suffixes = literal_suffixes(regex.as_str())
            .filter(|s| s.len() <= MAX_SUFFIXES && s.iter().all(|l| l.len() >= MIN_SUFFIX_LEN))
            .filter(|s| {
                let prefixes = prefixes.as_deref().unwrap_or_default();
                !s.iter().all(|l| prefixes.contains(l))
            })
            .and_then(|s| Prefilter::of_literals(s.into_iter().map(|l| (l, 1)).collect()))
            .map(Box::new);
        PrefilteredRegex {
            regex,
            slot: None,
            suffixes,
            prefixes,
        }
    }

    pub(super) fn is_match(&self, haystack: &str, possible: &Possible<'_>) -> bool {
        possible.may_match(self.slot, haystack)
            && self.suffix_may_match(haystack)
            && self.regex.is_match(haystack)
    }

    /// False only when the filter of literal suffixes rules `haystack` out.
    pub(super) fn suffix_may_match(&self, haystack: &str) -> bool {
        self.suffixes
            .as_ref()
            .is_none_or(|s| !haystack.is_ascii() || s.scan(haystack) != 0)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The prefilter of `patterns` and each pattern's slot.
    fn prefilter(patterns: &[&str]) -> (Prefilter, Vec<Option<u8>>) {
        let mut slots = vec![None; patterns.len()];
        let prefixes: Vec<_> = patterns.iter().map(|p| literal_prefixes(p)).collect();
        let refs: Vec<_> = prefixes.iter().map(Option::as_deref).collect();
        let (p, _) = Prefilter::build(&refs, &mut slots).expect("a prefilter");
        (p, slots)
    }

    /// The DFA walk reports exactly the slots whose literals occur
    /// (ASCII case-insensitively), overlapping and nested occurrences
    /// included, checked against a naive substring search.
    #[test]
    fn prefilter_scan_finds_every_literal() {
        let patterns = [
            "(?i)websocket connection (accepted|failed)",
            "abcd",
            "bc",
            "(?i)cd|xyz",
            "(?i)agents?",
            "^/ws",
        ];
        let (p, slots) = prefilter(&patterns);
        assert!(slots.iter().all(Option::is_some));
        let prefixes: Vec<Vec<Vec<u8>>> = patterns
            .iter()
            .map(|q| literal_prefixes(q).unwrap())
            .collect();
        let haystacks = [
            "",
            "abcd",
            "xxABCDxx",
            "zzabcxcd",
            "aabcd",
            "ababcbcd",
            "xxagenTwebsocketZZ",
            "WebSocket Connection FAILED",
            "websocket connection closed",
            "AGENTS and agent",
            "/ws/threads",
            "x/wsXYZ",
            "caf\u{e9} bc \u{212A}",
            "GET /api/threads/1 200 12ms",
        ];
        for h in haystacks {
            let lower = h.to_ascii_lowercase();
            let mut want = 0u64;
            for (i, literals) in prefixes.iter().enumerate() {
                if literals
                    .iter()
                    .any(|l| lower.as_bytes().windows(l.len()).any(|w| w == &l[..]))
                {
                    want |= 1 << slots[i].unwrap();
                }
            }
            assert_eq!(p.scan(h), want, "{h:?}");
            assert_eq!(p.scan_every_byte(h.as_bytes()), want, "{h:?}");
        }
    }

    /// The search from literal beginnings finds what the byte-by-byte walk
    /// finds, on haystacks dense in beginnings and near-misses, in every
    /// case and at every offset of the 16-byte blocks.
    #[test]
    fn beginning_scan_equals_the_byte_walk() {
        let patterns = [
            "(?i)websocket connection (accepted|failed)",
            "(?i)(?-u:\\b)(close|closed|closing|code)(?-u:\\b)",
            "\"WebSocket [^\"]*\"",
            "(?i)agents?",
            "abab",
            "(?i)ba",
            "@x",
        ];
        let (p, _) = prefilter(&patterns);
        assert!(p.beginnings.is_some());
        let pieces = [
            "a",
            "b",
            "ab",
            "ba",
            "Ag",
            "aGeNt",
            "agents",
            "web",
            "WebSocket",
            "\"WebSocket ",
            "websocket connection ",
            "accepted",
            "co",
            "cLoSe",
            "code",
            " ",
            "\u{e9}",
            "0",
            "abab",
            "ababab",
            "@",
            "@x",
            "`x",
            "@X",
            "xxxxxxxxxxxxxxx",
        ];
        for h in random_haystacks(&pieces, 30_000, 30, 0x2545f4914f6cdd1d) {
            assert_eq!(p.scan(&h), p.scan_every_byte(h.as_bytes()), "{h:?}");
        }
    }

    /// `count` haystacks of fewer than `max_pieces` of `pieces` each,
    /// drawn by a xorshift generator from `seed` (the same every run).
    pub(in crate::sli) fn random_haystacks(
        pieces: &[&str],
        count: usize,
        max_pieces: u64,
        seed: u64,
    ) -> Vec<String> {
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..count)
            .map(|_| {
                let n = next() % max_pieces;
                (0..n)
                    .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                    .collect()
            })
            .collect()
    }

    #[test]
    fn one_byte_or_many_beginnings_walk_every_byte() {
        for patterns in [
            vec!["x", "(?i)agent"],
            (0..=MAX_BEGINNINGS)
                .map(|i| ["ab", "ac", "ad", "ae", "af", "ag", "ah", "ai", "aj"][i])
                .collect(),
        ] {
            let (p, _) = prefilter(&patterns);
            assert!(p.beginnings.is_none(), "{patterns:?}");
        }
    }

    #[test]
    fn unprefilterable_regexes_still_run() {
        assert_eq!(literal_prefixes(".*boom"), None);
        assert_eq!(literal_prefixes("a?b?"), None);
        assert_eq!(literal_prefixes("(?i)ab"), Some(vec![b"ab".to_vec()]));
    }
}
