//! Byte scanning for the streaming hot paths: finding line ends, and cheap,
//! conservative prefilters that decide whether a JSON event is worth parsing.
//!
//! Searches go eight bytes at a time (SWAR, safe code): on a token-per-event
//! stream, scanning is most of the cost.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The position of the first byte equal to `x` or `y`.
fn find2(bytes: &[u8], x: u8, y: u8) -> Option<usize> {
    let (xs, ys) = (LO * u64::from(x), LO * u64::from(y));
    let words = bytes.chunks_exact(8);
    let tail = words.remainder();
    for (k, word) in words.enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let w = u64::from_le_bytes(w);
        let (a, b) = (w ^ xs, w ^ ys);
        // A zero byte in `a` or `b` is a match; the lowest flagged byte is exact
        // (false positives only appear above a true match).
        let hits = (a.wrapping_sub(LO) & !a | b.wrapping_sub(LO) & !b) & HI;
        if hits != 0 {
            return Some(k * 8 + (hits.trailing_zeros() / 8) as usize);
        }
    }
    let base = bytes.len() - tail.len();
    tail.iter()
        .position(|&b| b == x || b == y)
        .map(|p| base + p)
}

/// The position of the first CR or LF.
pub(crate) fn find_eol(bytes: &[u8]) -> Option<usize> {
    find2(bytes, b'\n', b'\r')
}

/// Calls `f` with the bytes following each `"` of `json`, until it returns true.
fn any_after_quote(json: &[u8], mut f: impl FnMut(&[u8]) -> bool) -> bool {
    let mut i = 0;
    while let Some(q) = find2(&json[i..], b'"', b'"') {
        i += q + 1;
        if f(&json[i..]) {
            return true;
        }
    }
    false
}

/// If `rest` (the bytes after a quote) is `key"`, optional whitespace and `:`,
/// the bytes of the member's value (leading whitespace skipped).
fn member_value<'a>(rest: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let rest = rest.strip_prefix(key)?.strip_prefix(b"\"")?;
    let rest = rest.trim_ascii_start().strip_prefix(b":")?;
    Some(rest.trim_ascii_start())
}

/// Whether `json` may hold a member named `key` whose value is not `null`.
/// Conservative: `false` means surely absent or null; `true` means "parse to find
/// out". A key inside a string never matches, since its quotes are escaped.
pub(crate) fn may_have_non_null(json: &[u8], key: &[u8]) -> bool {
    any_after_quote(json, |rest| {
        member_value(rest, key).is_some_and(|v| !v.starts_with(b"null"))
    })
}

/// Whether an OpenAI chat chunk may carry a tool call, usage, an error or a
/// Responses API `type` (the content-only chunks, most of a stream, do not).
pub(crate) fn chat_chunk_may_matter(json: &[u8]) -> bool {
    // Most quotes open a key or a string that matches none of these: one branch
    // on the next byte rules them out.
    any_after_quote(json, |rest| match rest.first() {
        Some(b't') => rest.starts_with(b"tool_calls\"") || rest.starts_with(b"type\""),
        Some(b'f') => rest.starts_with(b"function_call\""),
        Some(b'u') => member_value(rest, b"usage").is_some_and(|v| !v.starts_with(b"null")),
        Some(b'e') => member_value(rest, b"error").is_some_and(|v| !v.starts_with(b"null")),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_eol_matches_the_naive_scan() {
        let naive = |b: &[u8]| b.iter().position(|&c| c == b'\n' || c == b'\r');
        let mut inputs: Vec<Vec<u8>> = vec![vec![], b"\n".to_vec(), b"\r".to_vec()];
        for len in 0..40 {
            for at in 0..len {
                for c in [b'\n', b'\r', 0x0b, 0x0c, 0x8a, 0x8d, 0xff, 0x00] {
                    let mut v = vec![b'a'; len];
                    v[at] = c;
                    if at + 3 < len {
                        v[at + 3] = b'\n';
                    }
                    inputs.push(v);
                }
            }
        }
        for input in inputs {
            assert_eq!(find_eol(&input), naive(&input), "{input:?}");
        }
    }

    #[test]
    fn non_null_member_prefilter() {
        let has = |j: &str| may_have_non_null(j.as_bytes(), b"usage");
        assert!(!has(r#"{"choices":[],"usage":null}"#));
        assert!(!has(r#"{"usage" : null}"#));
        assert!(!has(r#"{"c":"say \"usage\": 1"}"#));
        assert!(!has(r#"{"usages":{}}"#));
        assert!(!has(r#"{"a":1}"#));
        assert!(has(r#"{"usage":{"prompt_tokens":1}}"#));
        assert!(has(r#"{"x":["usage"],"usage" :{}}"#));
    }

    #[test]
    fn chat_chunk_prefilter() {
        let content = r#"{"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"\"type\": \"tool_calls\""},"finish_reason":null}],"usage":null}"#;
        assert!(!chat_chunk_may_matter(content.as_bytes()));
        for matters in [
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0}]}}]}"#,
            r#"{"choices":[{"delta":{"function_call":{"name":"f"}}}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1}}"#,
            r#"{"error":{"message":"x"}}"#,
            r#"{"type":"response.completed"}"#,
        ] {
            assert!(chat_chunk_may_matter(matters.as_bytes()), "{matters}");
        }
    }
}
