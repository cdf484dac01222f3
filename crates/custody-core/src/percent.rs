//! Percent-decoding, shared by every crate that reads what a client URL-encoded
//! (query strings, form bodies, path segments), so that inspection, content
//! safety and the integrity checks decode the same bytes the same way.

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`, as in query
/// strings and form bodies); an invalid escape is kept as it is.
pub fn decode(raw: &[u8], plus_is_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%'
            && let (Some(hi), Some(lo)) = (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(if plus_is_space && b == b'+' { b' ' } else { b });
        i += 1;
    }
    out
}

/// [`decode`] as text (invalid UTF-8 replaced).
pub fn decode_str(raw: &str, plus_is_space: bool) -> String {
    if !raw
        .bytes()
        .any(|b| b == b'%' || (plus_is_space && b == b'+'))
    {
        return raw.to_owned();
    }
    String::from_utf8_lossy(&decode(raw.as_bytes(), plus_is_space)).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_keeps_what_is_not_one() {
        assert_eq!(decode_str("a%40b+c", true), "a@b c");
        assert_eq!(decode_str("a%40b+c", false), "a@b+c");
        assert_eq!(decode_str("%zz%4%", true), "%zz%4%");
        assert_eq!(decode_str("%C3%A9", false), "é");
        assert_eq!(decode_str("%FF", false), "\u{FFFD}");
    }
}
