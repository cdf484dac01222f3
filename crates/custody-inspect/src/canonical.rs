//! Canonical JSON text and the bounded form recorded as `parameters`.
//!
//! Keys are sorted here explicitly (not by relying on serde_json's map type), so
//! the text stays canonical even if a dependency ever turns on `preserve_order`.

use serde_json::Value;
use std::fmt::Write as _;

/// The canonical text of `value`: object keys sorted by their UTF-8 bytes, no
/// whitespace, strings escaped as serde_json escapes them.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(k, out);
                out.push(':');
                write_value(v, out);
            }
            out.push('}');
        }
    }
}

/// Writes `s` as a JSON string literal.
fn write_str(s: &str, out: &mut String) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{08}' => "\\b",
            '\u{0c}' => "\\f",
            c if (c as u32) < 0x20 => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push_str(esc);
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// The length of `c` once escaped inside a JSON string literal.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Bounds canonical parameters text to `max_bytes`.
///
/// Returns `(Some(canonical), None)` when it fits; otherwise the truncation marker
/// `{"_truncated":true,"original_bytes":N,"prefix":"..."}` (valid JSON, at most
/// `max_bytes` long, `prefix` cut on a character boundary) and `Some(N)`, the
/// original length. When not even the marker fits, `(None, Some(N))`.
pub fn truncate_parameters(canonical: String, max_bytes: usize) -> (Option<String>, Option<usize>) {
    let original = canonical.len();
    if original <= max_bytes {
        return (Some(canonical), None);
    }
    let head = format!("{{\"_truncated\":true,\"original_bytes\":{original},\"prefix\":\"");
    let overhead = head.len() + 2; // closing `"}`
    if overhead > max_bytes {
        return (None, Some(original));
    }
    let mut budget = max_bytes - overhead;
    let mut cut = 0;
    for (i, c) in canonical.char_indices() {
        let n = escaped_len(c);
        if n > budget {
            break;
        }
        budget -= n;
        cut = i + c.len_utf8();
    }
    let mut out = head;
    out.pop(); // write_str adds the opening quote again
    write_str(&canonical[..cut], &mut out);
    out.push('}');
    (Some(out), Some(original))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_strips_whitespace() {
        let v: Value =
            serde_json::from_str(r#"{ "b": [1, 2.5, {"z": null, "a": true}], "a": "x" }"#)
                .expect("json");
        assert_eq!(
            canonical_json(&v),
            r#"{"a":"x","b":[1,2.5,{"a":true,"z":null}]}"#
        );
    }

    #[test]
    fn escapes_like_serde_json() {
        let s = "quote\" back\\ nl\n tab\t bell\u{07} del\u{7f} é 😀 \u{2028}";
        let v = json!({ "s": s });
        assert_eq!(canonical_json(&v), serde_json::to_string(&v).expect("json"));
    }

    #[test]
    fn keeps_text_that_fits() {
        assert_eq!(
            truncate_parameters("{}".into(), 2),
            (Some("{}".into()), None)
        );
    }

    #[test]
    fn marker_is_valid_json_within_the_limit() {
        let big =
            json!({"query": "pipeline \"status\" ".repeat(200), "notes": "é😀\\".repeat(300)});
        let text = canonical_json(&big);
        for limit in [60, 61, 64, 65, 70, 100, 101, 256, 1000, 1001, 1002, 1003] {
            let (out, from) = truncate_parameters(text.clone(), limit);
            assert_eq!(from, Some(text.len()));
            let out = out.expect("marker fits");
            assert!(out.len() <= limit, "{} > {limit}", out.len());
            let v: Value = serde_json::from_str(&out).expect("marker is JSON");
            assert_eq!(v["_truncated"], json!(true));
            assert_eq!(v["original_bytes"], json!(text.len()));
            let prefix = v["prefix"].as_str().expect("prefix");
            assert!(text.starts_with(prefix));
            // Greedy: one more character would not have fit.
            if let Some(next) = text[prefix.len()..].chars().next() {
                assert!(out.len() + escaped_len(next) > limit);
            }
        }
    }

    #[test]
    fn too_small_for_the_marker() {
        assert_eq!(truncate_parameters("x".repeat(100), 10), (None, Some(100)));
    }
}
