//! Remembered classifications of *quiet* events.
//!
//! Why: most records are request logs that count toward the HTTP SLI and
//! nothing else, and finding that out means asking ten matchers, each a
//! few dozen instructions, on every record; errors, which have a category,
//! ask more. An event is quiet when none of the things that make events
//! differ beyond a few bits can play a part: no message or span name that a
//! regex could match (the literal prefilter rules them all out; for a
//! message, a matcher may also be ruled out by its regex's literal
//! suffixes, or by a severity condition the event fails, since the
//! severity is part of the key), and every
//! SLI is labelled by the service alone. What the engine decides for a
//! quiet event is then a function of its signal, severity, HTTP status,
//! span kind and span status, of its category's answers to the matchers'
//! category conditions (`category: database_connection`,
//! `category_prefix: websocket`), never of the category's other letters,
//! and of its attributes' answers to the matchers' attribute conditions
//! (`http.request.method` exists, `gen_ai.operation.name` equals
//! `invoke_agent`), never of their other values ([`QuietKey`]): this
//! per-thread table remembers the decision by that key.
//!
//! Spans get one more chance: a span whose name a regex may match (an
//! `invoke_agent` span, a WebSocket handshake) is remembered with its name
//! (span names are few by convention: no ids in them), in a second table
//! whose entries hold the name and are used only for the same name. Its
//! message must be its name, or be ruled out by the prefilter.
//!
//! The table is a cache of exact answers: an entry is used only for the
//! same key and the same engine (entries carry the engine's id, never
//! reused), it is filled by the full classification, and a miss costs the
//! full classification, never a different answer. Bounded: 256 entries per
//! thread in each table, a new entry evicts the one in its slot.

use std::cell::Cell;

use super::SliSignal;

/// Everything a quiet event's classification depends on, packed: the
/// event's facts and category answers in the low half, its attribute
/// answers in the high half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct QuietKey(u128);

impl QuietKey {
    /// The key of a quiet event; `None` for a severity or span kind out of
    /// the ranges the key holds (such events are classified in full).
    /// `category`: `None` for an event without one, else bit `i` set when
    /// it meets the `i`th category condition of the event's kind.
    /// `attributes`: bit `i` set when the event meets the `i`th attribute
    /// condition of its kind.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        signal: SliSignal,
        severity_number: i32,
        http_status: Option<u16>,
        span_kind: Option<i32>,
        span_status_error: bool,
        category: Option<u32>,
        attributes: u64,
    ) -> Option<Self> {
        let severity = u8::try_from(severity_number).ok()?;
        let kind = match span_kind {
            None => 0,
            Some(k @ 0..=7) => 8 | k as u64,
            Some(_) => return None,
        };
        let status = http_status.map_or(0, |s| 1 << 16 | u64::from(s));
        let facts = u64::from(severity)
            | status << 8
            | kind << 25
            | u64::from(span_status_error) << 29
            | u64::from(signal == SliSignal::Span) << 30
            | u64::from(category.is_some()) << 31
            | u64::from(category.unwrap_or(0)) << 32;
        Some(QuietKey(u128::from(attributes) << 64 | u128::from(facts)))
    }

    fn slot(self) -> usize {
        let mixed = (self.0 as u64) ^ ((self.0 >> 64) as u64).rotate_left(29);
        (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS.trailing_zeros())) as usize
    }
}

/// A classification: bit `i` of `events` set when the event counts toward
/// SLI `i`, of `bad` when it is also bad.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Outcome {
    pub events: u64,
    pub bad: u64,
}

impl Outcome {
    /// Records that the event counts toward SLI `sli` (< 64).
    pub(super) fn count(&mut self, sli: usize, bad: bool) {
        self.events |= 1 << sli;
        self.bad |= u64::from(bad) << sli;
    }
}

/// Entries per thread (a power of two).
const SLOTS: usize = 256;

#[derive(Clone, Copy)]
struct Entry {
    /// The engine's id; 0 = empty (ids start at 1).
    engine: u64,
    key: QuietKey,
    outcome: Outcome,
}

const EMPTY: Entry = Entry {
    engine: 0,
    key: QuietKey(0),
    outcome: Outcome { events: 0, bad: 0 },
};

thread_local! {
    static TABLE: [Cell<Entry>; SLOTS] = const { [const { Cell::new(EMPTY) }; SLOTS] };
}

/// The outcome engine `engine` gave for `key` on this thread, if remembered.
pub(super) fn remembered(engine: u64, key: QuietKey) -> Option<Outcome> {
    TABLE.with(|table| {
        let entry = table[key.slot()].get();
        (entry.engine == engine && entry.key == key).then_some(entry.outcome)
    })
}

/// Remembers the outcome engine `engine` gave for `key` on this thread.
pub(super) fn remember(engine: u64, key: QuietKey, outcome: Outcome) {
    TABLE.with(|table| {
        table[key.slot()].set(Entry {
            engine,
            key,
            outcome,
        })
    });
}

/// Longest span name the table of named keys holds; spans with longer
/// names are classified in full.
pub(super) const MAX_NAME: usize = 48;

#[derive(Clone, Copy)]
struct NamedEntry {
    /// The engine's id; 0 = empty.
    engine: u64,
    key: QuietKey,
    /// The name, zero-padded, and its length.
    name: [u8; MAX_NAME],
    len: u8,
    outcome: Outcome,
}

const EMPTY_NAMED: NamedEntry = NamedEntry {
    engine: 0,
    key: QuietKey(0),
    name: [0; MAX_NAME],
    len: 0,
    outcome: Outcome { events: 0, bad: 0 },
};

thread_local! {
    static NAMED: [Cell<NamedEntry>; SLOTS] =
        const { [const { Cell::new(EMPTY_NAMED) }; SLOTS] };
}

/// `name` zero-padded, with its slot for `key`; `None` when it is longer
/// than [`MAX_NAME`].
fn named_slot(key: QuietKey, name: &str) -> Option<([u8; MAX_NAME], usize)> {
    let mut padded = [0u8; MAX_NAME];
    padded
        .get_mut(..name.len())?
        .copy_from_slice(name.as_bytes());
    let mut h = key.slot() as u64;
    for chunk in padded.chunks_exact(8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        h = (h.rotate_left(5) ^ word).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    Some((padded, (h >> (64 - SLOTS.trailing_zeros())) as usize))
}

/// The outcome engine `engine` gave for `key` and the span name `name` on
/// this thread, if remembered.
pub(super) fn remembered_named(engine: u64, key: QuietKey, name: &str) -> Option<Outcome> {
    let (padded, slot) = named_slot(key, name)?;
    NAMED.with(|table| {
        let entry = table[slot].get();
        (entry.engine == engine
            && entry.key == key
            && usize::from(entry.len) == name.len()
            && entry.name == padded)
            .then_some(entry.outcome)
    })
}

/// Remembers the outcome engine `engine` gave for `key` and the span name
/// `name` on this thread (nothing for a name longer than [`MAX_NAME`]).
pub(super) fn remember_named(engine: u64, key: QuietKey, name: &str, outcome: Outcome) {
    if let Some((padded, slot)) = named_slot(key, name) {
        NAMED.with(|table| {
            table[slot].set(NamedEntry {
                engine,
                key,
                name: padded,
                len: name.len() as u8,
                outcome,
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_tell_every_input_apart() {
        let mut keys = Vec::new();
        for signal in [SliSignal::Log, SliSignal::Span] {
            for severity in [0, 9, 17, 255] {
                for status in [None, Some(0), Some(101), Some(500), Some(u16::MAX)] {
                    for kind in [None, Some(0), Some(2), Some(7)] {
                        for error in [false, true] {
                            for category in [None, Some(0), Some(1), Some(0x8000_0000)] {
                                for attributes in [0, 1, 1 << 63] {
                                    keys.push(
                                        QuietKey::new(
                                            signal, severity, status, kind, error, category,
                                            attributes,
                                        )
                                        .unwrap(),
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        let n = keys.len();
        keys.sort_unstable_by_key(|k| k.0);
        keys.dedup();
        assert_eq!(keys.len(), n);
        assert_eq!(
            QuietKey::new(SliSignal::Log, 256, None, None, false, None, 0),
            None
        );
        assert_eq!(
            QuietKey::new(SliSignal::Log, -1, None, None, false, None, 0),
            None
        );
        assert_eq!(
            QuietKey::new(SliSignal::Span, 0, None, Some(8), false, None, 0),
            None
        );
    }

    #[test]
    fn named_answers_only_for_the_same_name() {
        let key = QuietKey::new(SliSignal::Span, 9, None, Some(1), false, None, 0).unwrap();
        let mut outcome = Outcome::default();
        outcome.count(2, false);
        remember_named(u64::MAX, key, "invoke_agent triage", outcome);
        assert_eq!(
            remembered_named(u64::MAX, key, "invoke_agent triage"),
            Some(outcome)
        );
        for other in [
            "invoke_agent triag",
            "invoke_agent triage\0",
            "invoke_agent",
            "",
        ] {
            assert_eq!(remembered_named(u64::MAX, key, other), None, "{other:?}");
        }
        assert_eq!(
            remembered_named(u64::MAX - 1, key, "invoke_agent triage"),
            None
        );
        let other_key = QuietKey::new(SliSignal::Span, 17, None, Some(1), true, None, 0).unwrap();
        assert_eq!(
            remembered_named(u64::MAX, other_key, "invoke_agent triage"),
            None
        );
        // Names longer than the table holds are never remembered.
        let long = "x".repeat(MAX_NAME + 1);
        remember_named(u64::MAX, key, &long, outcome);
        assert_eq!(remembered_named(u64::MAX, key, &long), None);
        let longest = "y".repeat(MAX_NAME);
        remember_named(u64::MAX, key, &longest, outcome);
        assert_eq!(remembered_named(u64::MAX, key, &longest), Some(outcome));
    }

    #[test]
    fn answers_only_for_the_same_engine_and_key() {
        let a = QuietKey::new(SliSignal::Log, 9, Some(200), None, false, None, 0).unwrap();
        let b = QuietKey::new(SliSignal::Log, 9, Some(500), None, false, None, 0).unwrap();
        let mut outcome = Outcome::default();
        outcome.count(0, false);
        outcome.count(3, true);
        assert_eq!(remembered(u64::MAX, a), None);
        remember(u64::MAX, a, outcome);
        assert_eq!(remembered(u64::MAX, a), Some(outcome));
        assert_eq!(remembered(u64::MAX - 1, a), None);
        assert_eq!(remembered(u64::MAX, b), None);
        assert_eq!(
            outcome,
            Outcome {
                events: 0b1001,
                bad: 0b1000
            }
        );
    }
}
