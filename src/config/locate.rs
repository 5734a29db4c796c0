//! Where a key is written: maps a key path found by a check after parsing
//! (`processors.gardener.sli.definitions.http_5xx.threshold`) to the line and
//! column of that key in the YAML text, so that semantic errors point at a
//! line as syntax and type errors do.
//!
//! serde_yaml_ng keeps no spans in its `Value`, but it attaches the position
//! of the node being read to any error a `Deserialize` raises there. So the
//! text is read once more with a seed that walks the path and, on reaching
//! the last key, fails with a marker error: the error's location is the
//! key's. No YAML is parsed by hand, and anchors, aliases, flow and block
//! styles behave exactly as in the real parse.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The marker error's message (never shown).
const FOUND: &str = "\u{0}log-gardener: key located";

/// Line and column (both 1-based) of the key at `path` (keys joined by `.`,
/// sequence items by their index), or of its nearest ancestor written in the
/// text when the key itself is not (a default, or an index past a list's
/// end). `None` when not even the first key is written.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let mut path = path;
    loop {
        if let Some(at) = locate_exact(text, path) {
            return Some(at);
        }
        path = &path[..path.rfind('.')?];
    }
}

/// Whether the key at `path` itself is written in the text.
pub fn is_written(text: &str, path: &str) -> bool {
    locate_exact(text, path).is_some()
}

fn locate_exact(text: &str, path: &str) -> Option<(usize, usize)> {
    if path.is_empty() {
        return None;
    }
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    match (Seek { rest: path }).deserialize(deserializer) {
        Err(e) if e.to_string().contains(FOUND) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

/// Looks for `rest` under the node it is given.
struct Seek<'p> {
    rest: &'p str,
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a mapping or sequence holding {}", self.rest)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(next) = map.next_key_seed(Key { rest: self.rest })? {
            match next {
                // The path goes on under this key (keys may contain dots:
                // `Key` matched the longest key the path starts with).
                Some(rest) => return map.next_value_seed(Seek { rest }),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (head, rest) = match self.rest.split_once('.') {
            Some((head, rest)) => (head, Some(rest)),
            None => (self.rest, None),
        };
        let Ok(index) = head.parse::<usize>() else {
            return Ok(());
        };
        for _ in 0..index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        match rest {
            Some(rest) => seq.next_element_seed(Seek { rest }).map(|_| ()),
            None => seq.next_element_seed(Here).map(|_| ()),
        }
    }

    // Scalars hold no keys.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// A mapping key: fails with [`FOUND`] (at the key's position) when it is
/// the path's last key, `Some(rest of the path)` when the path goes on under
/// it, `None` when the path does not go through it.
struct Key<'p> {
    rest: &'p str,
}

impl<'de, 'p> DeserializeSeed<'de> for Key<'p> {
    type Value = Option<&'p str>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, 'p> Visitor<'de> for Key<'p> {
    type Value = Option<&'p str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        if self.rest == key {
            return Err(E::custom(FOUND));
        }
        Ok(self
            .rest
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('.')))
    }
}

/// A sequence item that is the path's end: fails with [`FOUND`] at its position.
struct Here;

impl<'de> DeserializeSeed<'de> for Here {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Here {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("anything")
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
}

#[cfg(test)]
mod tests {
    use super::locate;

    const TEXT: &str = "\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
processors:
  gardener:
    signatures:
      rules:
        - category: a
          pattern: x
        - { category: b, pattern: '(' }
    sli:
      definitions:
        my.dotted:
          threshold: 5
";

    #[test]
    fn finds_keys_items_and_falls_back_to_the_nearest_written_ancestor() {
        assert_eq!(
            locate(TEXT, "receivers.otlp.protocols.grpc.endpoint"),
            Some((5, 9))
        );
        assert_eq!(
            locate(TEXT, "processors.gardener.signatures.rules.1"),
            Some((12, 11))
        );
        assert_eq!(
            locate(TEXT, "processors.gardener.signatures.rules.1.pattern"),
            Some((12, 26))
        );
        assert_eq!(
            locate(
                TEXT,
                "processors.gardener.sli.definitions.my.dotted.threshold"
            ),
            Some((16, 11))
        );
        // Not written: the nearest ancestor that is.
        assert_eq!(
            locate(TEXT, "receivers.otlp.protocols.http.endpoint"),
            Some((3, 5))
        );
        assert_eq!(
            locate(TEXT, "processors.gardener.signatures.rules.7"),
            Some((9, 7))
        );
        assert_eq!(locate(TEXT, "service.admin.endpoint"), None);
    }
}
