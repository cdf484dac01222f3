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
    /// climbed into; `None` when they are the normalised path's own segments (a
    /// path with no escape and no dot segment, the usual case).
    named: Option<Vec<String>>,
}

impl Normalised {
    /// Whether the client named `prefix` (a route prefix, `/` or `/a/b`) literally
    /// at the start of its path, rather than reaching it through `..`.
    pub(crate) fn named_prefix(&self, prefix: &str) -> bool {
        match &self.named {
            Some(named) => starts_with(named.iter().map(String::as_bytes), prefix),
            None => starts_with(self.path.as_bytes().split(|&b| b == b'/'), prefix),
        }
    }
}

/// Whether `named` (`.` segments skipped, empty ones too) starts with `prefix`'s
/// segments (split on the byte `/`: cheaper than a `char` pattern).
fn starts_with<'a>(named: impl Iterator<Item = &'a [u8]>, prefix: &str) -> bool {
    let mut named = named.filter(|s| !s.is_empty() && *s != b".");
    prefix
        .as_bytes()
        .split(|&b| b == b'/')
        .filter(|s| !s.is_empty())
        .all(|want| named.next().is_some_and(|got| got == want))
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
    match plain(raw, trailing_slash) {
        Some(path) => Ok(Normalised { path, named: None }),
        None => normalise_segments(raw, trailing_slash),
    }
}

/// The normalised path of a path with nothing to decode and no dot segment (only
/// `//` to collapse), in one pass over its bytes; `None` for any other path.
fn plain(raw: &str, trailing_slash: bool) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut path = String::with_capacity(raw.len());
    let mut start = 0;
    for end in 0..=bytes.len() {
        match bytes.get(end) {
            Some(b'%') => return None,
            Some(b'/') | None => {
                // `/` is ASCII, so `start..end` are character boundaries.
                match &raw[start..end] {
                    "" => {}
                    "." | ".." => return None,
                    segment => {
                        path.push('/');
                        path.push_str(segment);
                    }
                }
                start = end + 1;
            }
            Some(_) => {}
        }
    }
    if path.is_empty() || trailing_slash {
        path.push('/');
    }
    Some(path)
}

/// Steps 1 to 3 on a path that passed the first checks, segment by segment.
pub(super) fn normalise_segments(raw: &str, trailing_slash: bool) -> Result<Normalised, Refusal> {
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
    Ok(Normalised {
        path,
        named: Some(named),
    })
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
