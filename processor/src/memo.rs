//! A small, exact, per-thread memo for pure computations on error inputs.
//!
//! Errors repeat: most records carry a template seen shortly before, so one
//! hash and one comparison of the input can replace a keyword scan or a
//! fingerprint. The memo is direct-mapped (a new entry evicts the old one in
//! its slot) and bounded (`SLOTS` entries of at most `MAX_KEY` key bytes,
//! about 1 MB per thread). A hit compares the complete encoded input, never
//! just its hash, and entries carry the id of the owner that computed them
//! (a rule pack, a signer), so the result stays a pure function of the
//! input and the owner's configuration: memoizing never changes an answer.
//!
//! An input is stored the second time it is seen, not the first: a slot
//! remembers the hash of the last input that missed it. Messages with ids
//! in them never repeat, and storing each (a copy of the input, a clone of
//! the value, the old value freed) cost more than the lookup, and evicted
//! inputs that do repeat.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::LocalKey;

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Slots per memo (a power of two).
const SLOTS: usize = 2048;
/// Inputs whose encoding is longer are computed without the memo.
pub const MAX_KEY: usize = 384;

/// A fresh owner id: each rule pack or signer takes one, never reused.
pub fn next_owner_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The injective encoding of an input: every part length-prefixed, an
/// absent optional part distinct from an empty one.
///
/// Its methods are inlined: each is a copy or two, which cost about as much
/// as the call (a key is encoded for every signed record, twice).
pub struct Key<'a>(&'a mut Vec<u8>);

impl Key<'_> {
    #[inline]
    pub fn part(&mut self, p: &str) -> &mut Self {
        self.0.extend_from_slice(&(p.len() as u32).to_le_bytes());
        self.0.extend_from_slice(p.as_bytes());
        self
    }

    #[inline]
    pub fn optional(&mut self, p: Option<&str>) -> &mut Self {
        match p {
            None => self.0.push(0),
            Some(p) => {
                self.0.push(1);
                self.part(p);
            }
        }
        self
    }

    #[inline]
    pub fn status(&mut self, status: Option<u16>) -> &mut Self {
        match status {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.0.extend_from_slice(&s.to_le_bytes());
            }
        }
        self
    }
}

struct Slot<V> {
    owner: u64,
    key: Vec<u8>,
    value: Option<V>,
}

impl<V> Default for Slot<V> {
    fn default() -> Self {
        Self {
            owner: 0,
            key: Vec::new(),
            value: None,
        }
    }
}

/// One thread's memo of values of type `V`.
pub struct Memo<V> {
    /// Scratch: the encoded input of the current lookup.
    key: Vec<u8>,
    slots: Vec<Slot<V>>,
    /// Per slot, the hash of the last input that missed it and was not
    /// stored: the next miss with that hash stores its input.
    seen: Vec<u64>,
    /// Number of slots (a power of two) and longest key memoized.
    slot_count: usize,
    max_key: usize,
}

impl<V> Default for Memo<V> {
    /// `SLOTS` slots of keys up to [`MAX_KEY`] bytes.
    fn default() -> Self {
        Self::with_limits(SLOTS, MAX_KEY)
    }
}

impl<V> Memo<V> {
    /// A memo of `slots` slots (rounded up to a power of two) for keys of
    /// at most `max_key` bytes: at most `slots * max_key` bytes of keys.
    pub const fn with_limits(slots: usize, max_key: usize) -> Self {
        Self {
            key: Vec::new(),
            slots: Vec::new(),
            seen: Vec::new(),
            slot_count: slots.next_power_of_two(),
            max_key,
        }
    }
}

impl<V: Clone> Memo<V> {
    /// The value for the input that `encode` writes, computed by `compute`
    /// unless this owner computed it for the same input before.
    pub fn get_or_compute(
        &mut self,
        owner: u64,
        encode: impl FnOnce(&mut Key<'_>),
        compute: impl FnOnce() -> V,
    ) -> V {
        self.key.clear();
        encode(&mut Key(&mut self.key));
        if self.key.len() > self.max_key {
            return compute();
        }
        if self.slots.is_empty() {
            self.slots.resize_with(self.slot_count, Slot::default);
            self.seen.resize(self.slot_count, 0);
        }
        let h = xxh3_64_with_seed(&self.key, owner);
        let index = (h as usize) & (self.slot_count - 1);
        let slot = &mut self.slots[index];
        if slot.owner == owner && slot.key == self.key {
            if let Some(value) = &slot.value {
                return value.clone();
            }
        }
        let value = compute();
        if self.seen[index] != h {
            // Seen for the first time (as far as this slot knows).
            self.seen[index] = h;
            return value;
        }
        slot.owner = owner;
        slot.key.clear();
        slot.key.extend_from_slice(&self.key);
        slot.value = Some(value.clone());
        value
    }
}

/// [`Memo::get_or_compute`] on a thread-local memo; computes without it if
/// the memo is already in use on this thread (a re-entrant call).
pub fn with_thread_memo<V: Clone + 'static>(
    memo: &'static LocalKey<RefCell<Memo<V>>>,
    owner: u64,
    encode: impl FnOnce(&mut Key<'_>),
    compute: impl FnOnce() -> V,
) -> V {
    memo.with(|cell| match cell.try_borrow_mut() {
        Ok(mut memo) => memo.get_or_compute(owner, encode, compute),
        Err(_) => compute(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_are_exact_and_per_owner() {
        let mut memo = Memo::<u32>::default();
        let (a, b) = (next_owner_id(), next_owner_id());
        let calls = std::cell::Cell::new(0);
        let mut get = |owner, text: &str, status, value| {
            memo.get_or_compute(
                owner,
                |k| {
                    k.part(text).status(status);
                },
                || {
                    calls.set(calls.get() + 1);
                    value
                },
            )
        };
        assert_eq!(get(a, "x", None, 1), 1);
        assert_eq!(get(a, "x", None, 2), 2, "stored the second time it is seen");
        assert_eq!(get(a, "x", None, 3), 2, "a hit returns the memoized value");
        assert_eq!(get(b, "x", None, 4), 4, "another owner computes its own");
        assert_eq!(get(b, "x", None, 5), 5);
        assert_eq!(
            get(a, "x", Some(500), 7),
            7,
            "the status is part of the input"
        );
        assert_eq!(get(a, "y", None, 8), 8);
        assert_eq!(calls.get(), 6);
    }

    #[test]
    fn the_encoding_is_injective_and_long_inputs_bypass_the_memo() {
        let mut left = Vec::new();
        Key(&mut left).part("ab").part("c");
        let mut right = Vec::new();
        Key(&mut right).part("a").part("bc");
        assert_ne!(left, right);
        let (mut absent, mut empty) = (Vec::new(), Vec::new());
        Key(&mut absent).optional(None);
        Key(&mut empty).optional(Some(""));
        assert_ne!(absent, empty);

        let mut memo = Memo::<u32>::default();
        let long = "z".repeat(MAX_KEY + 1);
        let owner = next_owner_id();
        assert_eq!(
            memo.get_or_compute(
                owner,
                |k| {
                    k.part(&long);
                },
                || 1
            ),
            1
        );
        assert_eq!(
            memo.get_or_compute(
                owner,
                |k| {
                    k.part(&long);
                },
                || 2
            ),
            2
        );
    }
}
