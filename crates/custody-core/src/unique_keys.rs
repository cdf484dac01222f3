//! [`check_unique_keys`]: walks a whole document and fails at the first mapping key
//! that repeats an earlier key of the same mapping.
//!
//! A YAML reader that builds a value (serde_yaml_ng's `Value`) or a struct notices a
//! repeated key only once the whole mapping is read, and reports it where that
//! mapping starts (line 1, column 1 for a top-level key). This walk fails *while
//! reading the repeated key itself*, so a parser that stamps errors with the position
//! of the node being read (serde_yaml_ng does) reports the line and column where the
//! duplicate stands. Callers run it when a parse failed, to replace a badly placed
//! duplicate error; it needs nothing but serde, and no I/O.

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Reads everything `deserializer` holds; `Err` at the first repeated key of a
/// mapping (`duplicate key `name``), or with the deserializer's own error.
pub fn check_unique_keys<'de, D: Deserializer<'de>>(deserializer: D) -> Result<(), D::Error> {
    Walk.deserialize(deserializer)
}

/// [`check_unique_keys`] as a type: deserializing it walks the document (for
/// readers that take a type, such as a stream of JSON values).
#[derive(Clone, Copy, Debug)]
pub struct UniqueKeys;

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        check_unique_keys(d).map(|()| UniqueKeys)
    }
}

/// A mapping key, as far as comparing keys needs: scalars by value, anything else
/// never equal to another key.
#[derive(Debug, PartialEq)]
enum Key {
    Text(String),
    Int(i128),
    Uint(u128),
    Float(u64),
    Bool(bool),
    Null,
    Other,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Text(s) => f.write_str(s),
            Key::Int(n) => write!(f, "{n}"),
            Key::Uint(n) => write!(f, "{n}"),
            Key::Float(bits) => write!(f, "{}", f64::from_bits(*bits)),
            Key::Bool(b) => write!(f, "{b}"),
            Key::Null => f.write_str("null"),
            Key::Other => f.write_str("(complex key)"),
        }
    }
}

/// Any value: maps are checked, everything else read and dropped.
#[derive(Clone, Copy)]
struct Walk;

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Reader { seen: None }).map(drop)
    }
}

/// One mapping key, checked against the keys before it in the same mapping.
struct KeySeed<'a>(&'a [Key]);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_any(Reader { seen: Some(self.0) })
    }
}

/// Reads one node; with `seen`, the node is a key and must not be among them (the
/// error is raised while the key is being read, so it carries the key's position).
struct Reader<'a> {
    seen: Option<&'a [Key]>,
}

impl Reader<'_> {
    fn key<E: de::Error>(self, key: Key) -> Result<Key, E> {
        match self.seen {
            Some(seen) if key != Key::Other && seen.contains(&key) => {
                Err(E::custom(format_args!("duplicate key `{key}`")))
            }
            _ => Ok(key),
        }
    }
}

impl<'de> Visitor<'de> for Reader<'_> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
        self.key(Key::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
        self.key(Key::Int(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Key, E> {
        self.key(Key::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
        self.key(Key::Uint(v.into()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Key, E> {
        self.key(Key::Uint(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
        self.key(Key::Float(v.to_bits()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        self.key(Key::Text(v.to_owned()))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Key, E> {
        Ok(Key::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
        self.key(Key::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Key, E> {
        self.key(Key::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        Walk.deserialize(d).map(|()| Key::Other)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        Walk.deserialize(d).map(|()| Key::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Key, A::Error> {
        while seq.next_element_seed(Walk)?.is_some() {}
        Ok(Key::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Key, A::Error> {
        let mut keys = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed(&keys))? {
            map.next_value_seed(Walk)?;
            keys.push(key);
        }
        Ok(Key::Other)
    }

    /// A tagged node (`!Tag value`): its content is walked.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Key, A::Error> {
        let (de::IgnoredAny, variant) = data.variant()?;
        de::VariantAccess::newtype_variant_seed(variant, Walk).map(|()| Key::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::value::{Error, MapDeserializer};

    fn map(keys: &[&'static str]) -> Result<(), Error> {
        let entries = keys.iter().map(|k| (*k, 1u32));
        check_unique_keys(MapDeserializer::<_, Error>::new(entries))
    }

    #[test]
    fn a_repeated_key_fails_where_it_is_read() {
        assert!(map(&["a", "b", "c"]).is_ok());
        let err = map(&["a", "b", "a"]).expect_err("a repeated key");
        assert_eq!(err.to_string(), "duplicate key `a`");
    }
}
