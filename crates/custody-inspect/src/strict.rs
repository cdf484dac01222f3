//! The strict read that decides whether a JSON body is readable at all, before
//! any lenient field extraction: custody decides on a body only when every
//! parser the upstream might use reads it the same way.
//!
//! Unreadable: anything `serde_json` refuses (invalid syntax, `NaN`, invalid
//! UTF-8 or UTF-16 text, a lone surrogate escape such as `\ud800`, nesting deeper
//! than its recursion limit) and an object that names a key twice (parsers
//! disagree on which value wins). Values are not kept: the read only validates.

mod checking;

use crate::lenient::Key;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

/// Longest key quoted in an error message, in characters.
const MAX_KEY_CHARS: usize = 64;

/// `Ok` when `body` is one JSON value every parser reads the same way; else why not.
pub(crate) fn check_json(body: &[u8]) -> Result<(), String> {
    fn check<'de, R: serde_json::de::Read<'de>>(
        mut de: serde_json::Deserializer<R>,
    ) -> serde_json::Result<()> {
        Checked::deserialize(&mut de).and_then(|_| de.end())
    }
    match std::str::from_utf8(body) {
        Ok(text) => check(serde_json::Deserializer::from_str(text)),
        Err(_) => check(serde_json::Deserializer::from_slice(body)),
    }
    .map_err(|e| format!("request body is not JSON: {e}"))
}

/// `serde_json::from_slice`, with the UTF-8 checked once for the whole body.
///
/// Read from bytes, serde_json checks every string on its own; read from `&str` it
/// checks none. One pass over a body of valid UTF-8 costs less than the calls
/// string by string (a chat request has dozens of strings), and a body that is not
/// UTF-8 is read from its bytes, so the error says where, as before. Either way
/// the value, or the error, is the one `from_slice` gives.
pub(crate) fn from_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
}

/// `body` read into `T` and checked as [`check_json`] checks it, in one pass: `Some`
/// only when `check_json` would accept the body. `None` says nothing more: make the
/// two reads then, for the messages they give (a body that is not UTF-8, or that
/// the strict read refuses, is rare).
pub(crate) fn from_json_checked<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Option<T> {
    let text = std::str::from_utf8(body).ok()?;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = T::deserialize(checking::Checking(&mut de)).ok()?;
    de.end().ok()?;
    Some(value)
}

/// A validated value (nothing kept).
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckVisitor)
    }
}

struct CheckVisitor;

impl<'de> Visitor<'de> for CheckVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        let mut keys = Keys::default();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if keys.repeated(key.clone()) {
                return Err(named_twice(&key));
            }
            map.next_value::<Checked>()?;
        }
        Ok(Checked)
    }
}

/// The keys of one object read so far.
#[derive(Default)]
struct Keys<'de> {
    /// Small objects (the usual case) are checked with a linear scan.
    few: Vec<Cow<'de, str>>,
    many: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> Keys<'de> {
    /// Whether `key` was read before in this object (else it is remembered).
    fn repeated(&mut self, key: Cow<'de, str>) -> bool {
        match &mut self.many {
            Some(set) => !set.insert(key),
            None if self.few.contains(&key) => true,
            None => {
                self.few.push(key);
                if self.few.len() > 16 {
                    self.many = Some(self.few.drain(..).collect());
                }
                false
            }
        }
    }
}

/// The error for an object that names `key` twice.
fn named_twice<E: de::Error>(key: &str) -> E {
    let shown: String = key.chars().take(MAX_KEY_CHARS).collect();
    E::custom(format!(
        "the object names the key {shown:?} more than once (parsers disagree on which value counts)"
    ))
}

#[cfg(test)]
mod tests {
    use super::{check_json, from_json};
    use serde_json::Value;

    #[test]
    fn readable_json_passes() {
        for ok in [
            &br#"{"a":1,"b":[1,2,{"a":2}],"c":{"a":"x\u00e9\ud83d\ude00"}}"#[..],
            b"[]",
            b" 1 ",
            br#""\"""#,
        ] {
            assert_eq!(check_json(ok), Ok(()), "{}", String::from_utf8_lossy(ok));
        }
        let wide: String = format!(
            "{{{}}}",
            (0..100)
                .map(|i| format!("\"k{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(check_json(wide.as_bytes()), Ok(()));
    }

    #[test]
    fn what_parsers_disagree_on_is_unreadable() {
        let wide_dup: String = format!(
            "{{{},\"k7\":0}}",
            (0..100)
                .map(|i| format!("\"k{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        for bad in [
            &br#"{"name":"search","name":"delete_all"}"#[..],
            br#"{"params":{"name":"a","n\u0061me":"b"}}"#,
            br#"[{"a":1},{"b":{"c":1,"c":2}}]"#,
            wide_dup.as_bytes(),
            br#"{"a":NaN}"#,
            br#"{"a":Infinity}"#,
            br#"{"a":"\ud800"}"#,
            br#"{"a":"\udc00x"}"#,
            b"\xff\xfe{\x00}\x00",
            b"{\"a\":\"\xff\"}",
            br#"{"a":1} {"b":2}"#,
            br#"{"a":1,}"#,
        ] {
            assert!(check_json(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    /// `from_json` gives what `from_slice` gives, value or error, including for
    /// bodies that are not UTF-8 and errors past multi-byte text.
    #[test]
    fn from_json_reads_as_from_slice() {
        for body in [
            &br#"{"a":"x\u00e9\ud83d\ude00","b":[1,2.5e3,null]}"#[..],
            "{\"é\":\"ü\",\"n\":1}".as_bytes(),
            "{\"é\":\"ü\" oops}".as_bytes(),
            b"{\"a\":\"\xff\"}",
            b"\xef\xbb\xbf{}",
            br#"{"a":"\ud800"}"#,
            br#"{"a":1} {"b":2}"#,
            b"",
        ] {
            let ours = from_json::<Value>(body).map_err(|e| e.to_string());
            let theirs = serde_json::from_slice::<Value>(body).map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(body));
        }
    }
}
