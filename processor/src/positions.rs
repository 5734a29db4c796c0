//! Where an entry is in a batch's growing list: found by a scan while the
//! list is short, through a hash index once it is not.
//!
//! Why both: a batch's [`crate::enrich::Tally`] usually holds a few
//! services and SLI label sets, for which a scan is cheapest; but a
//! request may carry tens of thousands of resources of distinct services,
//! and a scan per resource and per record then made the batch quadratic
//! (80,000 services in one request: half a minute of a worker's time).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// Up to this many entries a list is scanned; beyond, it is indexed.
pub(crate) const SCAN_LIMIT: usize = 8;

/// The first position of each entry's key hash in one list, kept once the
/// list has more than [`SCAN_LIMIT`] entries (empty until then). A hash two
/// keys share sends the lookup back to the scan, so answers never depend
/// on the hash.
#[derive(Debug, Default)]
pub(crate) struct Positions(HashMap<u64, u32, foldhash::fast::RandomState>);

impl Positions {
    /// A hasher for an entry's key: lookups and entries must write the
    /// same values into it.
    pub(crate) fn hasher(&self) -> impl Hasher {
        self.0.hasher().build_hasher()
    }

    /// The position in `entries` of the one `is_it` accepts; `key` gives
    /// the hash of what is looked for, and is only asked past the scan.
    pub(crate) fn find<T>(
        &self,
        entries: &[T],
        is_it: impl Fn(&T) -> bool,
        key: impl FnOnce(&Self) -> u64,
    ) -> Option<usize> {
        if entries.len() <= SCAN_LIMIT {
            return entries.iter().position(is_it);
        }
        match self.0.get(&key(self)) {
            Some(&i) if is_it(&entries[i as usize]) => Some(i as usize),
            Some(_) => entries.iter().position(is_it),
            None => None,
        }
    }

    /// Notes the entry just pushed onto `entries` (every entry, when that
    /// push took the list past the scan); `key_of` hashes an entry's key as
    /// `find`'s `key` does.
    pub(crate) fn pushed<T>(&mut self, entries: &[T], key_of: impl Fn(&Self, &T) -> u64) {
        let from = match entries.len() {
            n if n == SCAN_LIMIT + 1 => 0,
            n if n > SCAN_LIMIT + 1 => n - 1,
            _ => return,
        };
        for (i, entry) in entries.iter().enumerate().skip(from) {
            let key = key_of(self, entry);
            self.0.entry(key).or_insert(i as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    fn key(positions: &Positions, n: u32) -> u64 {
        let mut h = positions.hasher();
        n.hash(&mut h);
        h.finish()
    }

    /// Before and after the list outgrows the scan, every entry is found
    /// where it is, and an absent one is not.
    #[test]
    fn finds_entries_scanned_and_indexed() {
        let (mut entries, mut positions) = (Vec::new(), Positions::default());
        for n in 0..50u32 {
            assert_eq!(positions.find(&entries, |&e| e == n, |p| key(p, n)), None);
            entries.push(n);
            positions.pushed(&entries, |p, &e| key(p, e));
            for m in 0..=n {
                let found = positions.find(&entries, |&e| e == m, |p| key(p, m));
                assert_eq!(found, Some(m as usize));
            }
        }
    }

    /// A hash two keys share is answered by the scan.
    #[test]
    fn a_shared_hash_falls_back_to_the_scan() {
        let (mut entries, mut positions) = (Vec::new(), Positions::default());
        for n in 0..20u32 {
            entries.push(n);
            positions.pushed(&entries, |_, _| 7);
        }
        for n in 0..20u32 {
            assert_eq!(
                positions.find(&entries, |&e| e == n, |_| 7),
                Some(n as usize)
            );
        }
        assert_eq!(positions.find(&entries, |&e| e == 99, |_| 8), None);
    }
}
