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

/// One bit in each of two 64-bit words per key; the OR over a list's keys.
/// A key whose two bits are not both set is certainly absent; different
/// keys may share bits, so both set only says "maybe" (about 5% of absent
/// keys for a list of 17, as for two bits of one 128-bit set).
///
/// One bit per word, chosen by six bits of a hash each: setting it is one
/// shift and one `or`, with no choice of word (which, made by indexing,
/// went through memory and stalled store forwarding, and made by masks
/// cost a dozen instructions per key; every key of every record is added).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeySummary([u64; 2]);

impl KeySummary {
    /// The summary of one key (a `const fn`, so that the summaries of
    /// constant keys cost nothing at run time).
    #[inline]
    pub const fn of_key(key: &[u8]) -> Self {
        let (a, b) = Self::positions(key);
        KeySummary([1 << a, 1 << b])
    }

    /// The key's bit in each word: the top twelve bits of one 64-bit
    /// multiplication of its length and its first, middle and last bytes
    /// (the bytes that tell attribute keys apart cheaply; keys that share
    /// them share bits).
    #[inline]
    const fn positions(key: &[u8]) -> (u32, u32) {
        let n = key.len();
        let (Some(&first), Some(&last)) = (key.first(), key.last()) else {
            return (0, 0);
        };
        let middle = key[n / 2];
        let x = (n as u64 & 0xFFFF_FFFF)
            | (first as u64) << 32
            | (middle as u64) << 40
            | (last as u64) << 48;
        let h = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((h >> 58) as u32, ((h >> 52) & 63) as u32)
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

    /// Every key sets one bit in each word, and the bits spread over
    /// both words (a hash that left bits unused would raise the rate of
    /// "maybe").
    #[test]
    fn one_bit_per_word_spread_over_both_words() {
        let mut seen = [0u64; 2];
        for i in 0..5000u32 {
            let key = format!("k{i}.{}", i.wrapping_mul(2_654_435_761));
            let summary = KeySummary::of_key(key.as_bytes());
            assert_eq!(summary.0.map(u64::count_ones), [1, 1], "{key}");
            seen = [seen[0] | summary.0[0], seen[1] | summary.0[1]];
        }
        assert!(
            seen[0].count_ones() > 60 && seen[1].count_ones() > 60,
            "{seen:x?}"
        );
        assert_eq!(KeySummary::of_key(b"").0, [1, 1]);
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
