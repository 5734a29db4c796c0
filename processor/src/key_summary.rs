//! A Bloom summary of a set of attribute keys.
//!
//! Why: most attribute lookups on the hot path ask for keys a record does
//! not have (the SLI engine asks every request log for a WebSocket close
//! code and a GenAI operation). Building the summary costs a few
//! instructions per key, inside a scan that happens anyway, and then
//! answers "certainly absent" for most such lookups in one `AND`, where
//! finding out otherwise means scanning every attribute of the record and of
//! its resource.

use gardener_proto::view::MapRef;

/// Two bits of 128 per key; the OR over a list's keys. A key whose bits are
/// not all set is certainly absent; different keys may share bits, so all
/// bits set only says "maybe" (about 5% of absent keys for a list of 17).
///
/// Kept as two 64-bit words: setting a bit of a `u128` by a variable
/// position compiles to a double-word shift and two conditional moves,
/// setting it in the word it falls in to one shift and one `or`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeySummary([u64; 2]);

impl KeySummary {
    /// The summary of one key (a `const fn`, so that the summaries of
    /// constant keys cost nothing at run time).
    #[inline]
    pub const fn of_key(key: &[u8]) -> Self {
        let n = key.len();
        let (Some(&first), Some(&last)) = (key.first(), key.last()) else {
            return KeySummary([1, 0]);
        };
        let middle = key[n / 2];
        let h = (n as u32).wrapping_mul(0x9E37_79B1)
            ^ (first as u32).wrapping_mul(0x27D4_EB2F)
            ^ (middle as u32).wrapping_mul(0xC2B2_AE3D)
            ^ (last as u32).wrapping_mul(0x85EB_CA77);
        let h = h ^ (h >> 15);
        let (a, b) = (h & 127, (h >> 7) & 127);
        // Each bit goes to the word its position falls in, chosen by masks
        // rather than by indexing: indexed, the two words were built in
        // memory with two 8-byte `or`s and read back as one 16-byte load,
        // which the CPU cannot forward from its store buffer (a stall of a
        // dozen cycles for every key of every record).
        let (bit_a, bit_b) = (1u64 << (a & 63), 1u64 << (b & 63));
        let (high_a, high_b) = (
            ((a >> 6) as u64).wrapping_neg(),
            ((b >> 6) as u64).wrapping_neg(),
        );
        KeySummary([
            (bit_a & !high_a) | (bit_b & !high_b),
            (bit_a & high_a) | (bit_b & high_b),
        ])
    }

    /// Adds a key.
    #[inline]
    pub fn add(&mut self, key: &[u8]) {
        *self = self.union(Self::of_key(key));
    }

    /// The summary of both sets.
    #[inline]
    pub fn union(self, other: KeySummary) -> KeySummary {
        KeySummary([self.0[0] | other.0[0], self.0[1] | other.0[1]])
    }

    /// False only when `key` (a summary made by [`of_key`](Self::of_key))
    /// is certainly not in the set.
    #[inline]
    pub fn may_contain(self, key: KeySummary) -> bool {
        self.0[0] & key.0[0] == key.0[0] && self.0[1] & key.0[1] == key.0[1]
    }

    /// The summary of a list's keys.
    pub fn of_map(map: MapRef<'_>) -> Self {
        let mut summary = KeySummary::default();
        for entry in map.entries() {
            summary.add(entry.key_bytes());
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The masked word selection puts the bits where indexing would.
    #[test]
    fn bits_land_in_the_word_of_their_position() {
        fn indexed(key: &[u8]) -> [u64; 2] {
            let n = key.len();
            let (Some(&first), Some(&last)) = (key.first(), key.last()) else {
                return [1, 0];
            };
            let h = (n as u32).wrapping_mul(0x9E37_79B1)
                ^ (first as u32).wrapping_mul(0x27D4_EB2F)
                ^ (key[n / 2] as u32).wrapping_mul(0xC2B2_AE3D)
                ^ (last as u32).wrapping_mul(0x85EB_CA77);
            let h = h ^ (h >> 15);
            let mut words = [0u64; 2];
            for p in [h & 127, (h >> 7) & 127] {
                words[(p >> 6) as usize] |= 1 << (p & 63);
            }
            words
        }
        let mut seen = [0u64; 2];
        for i in 0..5000u32 {
            let key = format!("k{i}.{}", i.wrapping_mul(2_654_435_761));
            let summary = KeySummary::of_key(key.as_bytes());
            assert_eq!(summary.0, indexed(key.as_bytes()), "{key}");
            seen = [seen[0] | summary.0[0], seen[1] | summary.0[1]];
        }
        // Both words are used (bits in the high word are not lost).
        assert!(
            seen[0].count_ones() > 60 && seen[1].count_ones() > 60,
            "{seen:x?}"
        );
        assert_eq!(KeySummary::of_key(b"").0, indexed(b""));
    }

    #[test]
    fn present_keys_are_always_found() {
        let keys: Vec<String> = (0..200).map(|i| format!("attr.{i}.name")).collect();
        let mut summary = KeySummary::default();
        for k in &keys {
            summary.add(k.as_bytes());
        }
        for k in &keys {
            assert!(summary.may_contain(KeySummary::of_key(k.as_bytes())), "{k}");
        }
        assert!(summary.may_contain(KeySummary::of_key(b"attr.7.name")));
        let empty = KeySummary::default().union(KeySummary::of_key(b""));
        assert!(empty.may_contain(KeySummary::of_key(b"")));
    }

    #[test]
    fn absent_keys_are_mostly_ruled_out() {
        // A request log's keys and its resource's.
        let present = [
            "http.request.method",
            "url.path",
            "http.route",
            "http.response.status_code",
            "user_agent.original",
            "code.function",
            "code.filepath",
            "code.lineno",
            "exception.type",
            "exception.message",
            "logger",
            "logging.googleapis.com/trace",
            "logging.googleapis.com/spanId",
            "gardener.trace_context",
            "service.name",
            "service.version",
            "cloud.provider",
        ];
        let mut summary = KeySummary::default();
        for k in present {
            summary.add(k.as_bytes());
        }
        let absent: Vec<String> = (0..1000).map(|i| format!("absent.key.{i}")).collect();
        let maybe = absent
            .iter()
            .filter(|k| summary.may_contain(KeySummary::of_key(k.as_bytes())))
            .count();
        assert!(maybe < 150, "{maybe} of 1000 absent keys not ruled out");
        for k in [
            "websocket.close.code",
            "gen_ai.operation.name",
            "http.status_code",
        ] {
            assert!(
                !summary.may_contain(KeySummary::of_key(k.as_bytes())),
                "{k}"
            );
        }
    }
}
