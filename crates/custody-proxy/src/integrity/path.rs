//! The one path: what routing, tool templates, the policy's `when.action.path`,
//! the row's `action.path` and the upstream all see.
//!
//! From the path the client sent (without the query), in this order:
//! 1. percent escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`, RFC 3986
//!    §2.3) are decoded; other escapes are kept, their hex digits upper-cased;
//! 2. empty segments are dropped: `//` counts as `/` (a trailing `/` is kept);
//! 3. dot segments are removed (RFC 3986 §5.2.4): `.` is dropped, `..` drops the
//!    segment before it.
//!
//! Refused, because parsers disagree on them: an escape that is not two hex
//! digits, an encoded `/` (`%2F`) or `\` (`%5C`), a raw `\`, a segment that is a
//! dot segment only once decoded (`%2e%2e`, `.%2E`), a `..` climbing above the
//! root, and anything that is not an absolute path (`*`).

use super::{Reason, Refusal};

/// A normalised path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Normalised {
    /// The normalised path (always starts with `/`).
    pub(crate) path: String,
    /// The segments as the client named them (decoded, `//` collapsed, dot
    /// segments still in place), to check that a route's prefix was named, not
    /// climbed into.
    named: Vec<String>,
}

impl Normalised {
    /// Whether the client named `prefix` (a route prefix, `/` or `/a/b`) literally
    /// at the start of its path, rather than reaching it through `..`.
    pub(crate) fn named_prefix(&self, prefix: &str) -> bool {
        let mut named = self.named.iter().filter(|s| s.as_str() != ".");
        prefix
            .split('/')
            .filter(|s| !s.is_empty())
            .all(|want| named.next().is_some_and(|got| got == want))
    }
}

fn refuse(message: String) -> Refusal {
    Refusal::new(Reason::Path, message)
}

/// Normalises `raw` (see the module documentation).
pub(crate) fn normalise(raw: &str) -> Result<Normalised, Refusal> {
    if !raw.starts_with('/') {
        return Err(refuse(format!("the path {raw:?} is not an absolute path")));
    }
    if raw.contains('\\') {
        return Err(refuse(format!(
            "the path {raw:?} contains a backslash, which servers read differently"
        )));
    }
    let trailing_slash = raw.len() > 1 && raw.ends_with('/');
    let mut named = Vec::new();
    for segment in raw.split('/').filter(|s| !s.is_empty()) {
        let decoded = decode_segment(raw, segment)?;
        if decoded != segment && (decoded == "." || decoded == "..") {
            return Err(refuse(format!(
                "the path {raw:?} has an encoded dot segment ({segment:?})"
            )));
        }
        named.push(decoded);
    }
    let mut out: Vec<&str> = Vec::with_capacity(named.len());
    let mut ends_in_dir = trailing_slash;
    for (i, segment) in named.iter().enumerate() {
        let last = i + 1 == named.len();
        match segment.as_str() {
            "." => ends_in_dir |= last,
            ".." => {
                if out.pop().is_none() {
                    return Err(refuse(format!(
                        "the path {raw:?} climbs above the root with '..'"
                    )));
                }
                ends_in_dir |= last;
            }
            s => out.push(s),
        }
    }
    let mut path = String::with_capacity(raw.len());
    for segment in &out {
        path.push('/');
        path.push_str(segment);
    }
    if path.is_empty() || ends_in_dir {
        path.push('/');
    }
    Ok(Normalised { path, named })
}

/// One segment with unreserved escapes decoded and the others upper-cased.
fn decode_segment(raw: &str, segment: &str) -> Result<String, Refusal> {
    if !segment.contains('%') {
        return Ok(segment.to_owned());
    }
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            let end = bytes[i..]
                .iter()
                .position(|b| *b == b'%')
                .map_or(bytes.len(), |p| i + p);
            out.push_str(&segment[i..end]);
            i = end;
            continue;
        }
        let hex = segment
            .get(i + 1..i + 3)
            .filter(|h| h.len() == 2 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some(hex) = hex else {
            return Err(refuse(format!(
                "the path {raw:?} has a malformed percent escape"
            )));
        };
        let value = u8::from_str_radix(hex, 16).unwrap_or(0);
        match value {
            b'/' | b'\\' => {
                return Err(refuse(format!(
                    "the path {raw:?} has an encoded '{}' (%{hex}), which servers read differently",
                    value as char
                )));
            }
            v if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') => {
                out.push(v as char);
            }
            _ => {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
        }
        i += 3;
    }
    Ok(out)
}
