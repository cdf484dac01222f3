//! Small text helpers: bounded strings, percent-decoding and form parsing.

use serde_json::{Map, Value};

/// `s` cut to at most `max_chars` characters, the last of which is `…` when cut.
pub(crate) fn truncate_chars(s: &str, max_chars: usize) -> String {
    if s.char_indices().nth(max_chars).is_none() {
        return s.to_owned();
    }
    match s.char_indices().nth(max_chars.saturating_sub(1)) {
        Some((at, _)) => {
            let mut out = String::with_capacity(at + 3);
            out.push_str(&s[..at]);
            out.push('…');
            out
        }
        None => s.to_owned(),
    }
}

/// Percent-decodes `s` (invalid escapes are kept literally); `plus_is_space` for
/// `application/x-www-form-urlencoded` (queries and form bodies), not for paths.
/// Bytes that are not UTF-8 after decoding are replaced by U+FFFD.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    custody_core::percent::decode_str(s, plus_is_space)
}

/// Parses `a=1&b=x+y&a=2` into `{"a":["1","2"],"b":"x y"}`: a key seen once maps to
/// its string value, a repeated key to the array of its values in order; a key
/// without `=` maps to `""`. Empty pairs are skipped.
pub(crate) fn parse_form(s: &str) -> Map<String, Value> {
    let mut map = Map::new();
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k, true);
        let v = Value::String(percent_decode(v, true));
        match map.get_mut(&k) {
            None => {
                map.insert(k, v);
            }
            Some(Value::Array(values)) => values.push(v),
            Some(first) => {
                let first = first.take();
                map.insert(k, Value::Array(vec![first, v]));
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundary() {
        assert_eq!(truncate_chars("héllo", 3), "hé…");
        assert_eq!(truncate_chars("héllo", 4), "hél…");
        assert_eq!(truncate_chars("héllo", 5), "héllo");
        assert_eq!(truncate_chars("", 0), "");
    }

    #[test]
    fn percent_decodes() {
        assert_eq!(percent_decode("a%20b+c", false), "a b+c");
        assert_eq!(percent_decode("a%20b+c", true), "a b c");
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert_eq!(percent_decode("%C3%A9", false), "é");
        assert_eq!(percent_decode("%FF", false), "\u{FFFD}");
    }

    #[test]
    fn parses_forms() {
        let m = parse_form("q=acme+corp&limit=10&tag=a&tag=b&tag=c&flag&&");
        assert_eq!(
            Value::Object(m),
            serde_json::json!({"q": "acme corp", "limit": "10", "tag": ["a", "b", "c"], "flag": ""})
        );
    }
}
