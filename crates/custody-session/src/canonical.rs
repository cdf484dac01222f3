//! Canonical digests of tool-call arguments.
//!
//! Arguments are compared by a 128-bit keyed digest of their canonical form
//! (object keys sorted by UTF-8 bytes, whitespace irrelevant, integral numbers
//! equal whatever their spelling: `1`, `1.0` and `1e0` are the same), computed
//! straight from the `serde_json::Value` without building text. Only the digest is
//! remembered: arguments may carry personal data, and memory is budgeted.

use crate::ids::{Key, Keys, Pair};
use serde_json::Value;

/// A tool call's arguments as custody saw them.
#[derive(Clone, Copy, Debug, Default)]
pub enum Arguments<'a> {
    /// Not known (not captured, or a REST call whose inputs do not map to the
    /// model's arguments): the call is matched by tool name alone.
    #[default]
    Unknown,
    /// JSON text, e.g. OpenAI's `arguments` string. Text that is not JSON is
    /// compared as a JSON string with that content; empty text means no arguments.
    Text(&'a str),
    /// Parsed JSON, e.g. Anthropic's `input` or MCP's `params.arguments`.
    Json(&'a Value),
}

/// The digest of `args`; `None` when unknown. No arguments (`""`, `null`, `{}`)
/// all give the digest of `{}`.
pub(crate) fn digest(keys: &Keys, args: Arguments<'_>) -> Option<Key> {
    let mut h = keys.pair();
    match args {
        Arguments::Unknown => return None,
        Arguments::Json(v) => hash_top(v, &mut h),
        Arguments::Text(t) => {
            let t = t.trim();
            if t.is_empty() {
                hash_top(&Value::Null, &mut h);
            } else {
                match serde_json::from_str::<Value>(t) {
                    Ok(v) => hash_top(&v, &mut h),
                    Err(_) => hash_str(t, &mut h),
                }
            }
        }
    }
    Some(h.finish())
}

/// Top level: `null` means no arguments, the same as `{}`.
fn hash_top(v: &Value, h: &mut Pair) {
    if v.is_null() {
        h.write_u8(b'{');
        h.write_u64(0);
    } else {
        hash_value(v, h);
    }
}

fn hash_str(s: &str, h: &mut Pair) {
    h.write_u8(b's');
    h.write_field(s.as_bytes());
}

fn hash_value(v: &Value, h: &mut Pair) {
    match v {
        Value::Null => h.write_u8(b'n'),
        Value::Bool(b) => h.write_u8(if *b { b't' } else { b'f' }),
        Value::Number(n) => hash_number(n, h),
        Value::String(s) => hash_str(s, h),
        Value::Array(items) => {
            h.write_u8(b'[');
            h.write_u64(items.len() as u64);
            for item in items {
                hash_value(item, h);
            }
        }
        Value::Object(map) => {
            h.write_u8(b'{');
            h.write_u64(map.len() as u64);
            let sorted = map
                .keys()
                .zip(map.keys().skip(1))
                .all(|(a, b)| a.as_bytes() < b.as_bytes());
            if sorted {
                for (k, v) in map {
                    h.write_field(k.as_bytes());
                    hash_value(v, h);
                }
            } else {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                for (k, v) in entries {
                    h.write_field(k.as_bytes());
                    hash_value(v, h);
                }
            }
        }
    }
}

fn hash_number(n: &serde_json::Number, h: &mut Pair) {
    if let Some(u) = n.as_u64() {
        return int(u, false, h);
    }
    if let Some(i) = n.as_i64() {
        return int(i.unsigned_abs(), i < 0, h);
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    // Integral floats within ±2⁶⁴ hash as the integer they equal.
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 18_446_744_073_709_551_616.0 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let mag = f.abs() as u64;
        return int(mag, f < 0.0 && mag != 0, h);
    }
    h.write_u8(b'd');
    h.write_u64(f.to_bits());
}

fn int(mag: u64, negative: bool, h: &mut Pair) {
    h.write_u8(if negative { b'-' } else { b'+' });
    h.write_u64(mag);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(keys: &Keys, args: Arguments<'_>) -> Key {
        digest(keys, args).expect("known")
    }

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let k = Keys::new();
        let a = d(
            &k,
            Arguments::Text(r#"{"q":"acme","limit":5,"f":{"b":1,"a":[1,2]}}"#),
        );
        let b = d(
            &k,
            Arguments::Text(
                "{ \"limit\" : 5,\n \"f\": {\"a\": [1, 2], \"b\": 1}, \"q\": \"acme\" }",
            ),
        );
        let c = d(
            &k,
            Arguments::Json(&json!({"f": {"a": [1, 2], "b": 1}, "q": "acme", "limit": 5})),
        );
        assert_eq!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn different_arguments_differ() {
        let k = Keys::new();
        let base = d(&k, Arguments::Json(&json!({"q": "acme"})));
        for other in [
            json!({"q": "acme "}),
            json!({"q": "Acme"}),
            json!({"q": ["acme"]}),
            json!({"Q": "acme"}),
            json!({"q": "acme", "limit": null}),
            json!("acme"),
            json!({"q": {"acme": null}}),
        ] {
            assert_ne!(base, d(&k, Arguments::Json(&other)), "{other}");
        }
        assert_ne!(
            d(&k, Arguments::Json(&json!([1, [2, 3]]))),
            d(&k, Arguments::Json(&json!([[1, 2], 3])))
        );
    }

    #[test]
    fn numbers_compare_by_value() {
        let k = Keys::new();
        let one = d(&k, Arguments::Text(r#"{"n":1}"#));
        assert_eq!(one, d(&k, Arguments::Text(r#"{"n":1.0}"#)));
        assert_eq!(one, d(&k, Arguments::Text(r#"{"n":1e0}"#)));
        assert_ne!(one, d(&k, Arguments::Text(r#"{"n":-1}"#)));
        assert_ne!(one, d(&k, Arguments::Text(r#"{"n":1.5}"#)));
        assert_eq!(
            d(&k, Arguments::Text(r#"{"n":-0.0}"#)),
            d(&k, Arguments::Text(r#"{"n":0}"#))
        );
        assert_eq!(
            d(&k, Arguments::Text(r#"{"n":-7}"#)),
            d(&k, Arguments::Text(r#"{"n":-7.0}"#))
        );
    }

    #[test]
    fn no_arguments_and_plain_text() {
        let k = Keys::new();
        let empty = d(&k, Arguments::Json(&json!({})));
        assert_eq!(empty, d(&k, Arguments::Text("")));
        assert_eq!(empty, d(&k, Arguments::Text("  ")));
        assert_eq!(empty, d(&k, Arguments::Json(&Value::Null)));
        assert_eq!(empty, d(&k, Arguments::Text("null")));
        assert_eq!(
            d(&k, Arguments::Text("free text, not json")),
            d(&k, Arguments::Json(&json!("free text, not json")))
        );
        assert_eq!(digest(&k, Arguments::Unknown), None);
    }
}
