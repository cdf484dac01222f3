//! Query strings and form bodies (`application/x-www-form-urlencoded`), and
//! single values such as path parameters: scanned as custody decodes them into
//! `action.parameters`, with the same detectors as a JSON body.
//!
//! A query or form is split at `&` into `key=value` pairs (empty pairs skipped);
//! key and value are decoded (`+` is a space, `%XX` a byte). Each value is
//! scanned at `<prefix>.<key>` (`$.query.email`, `$.body['e-mail']`), a key
//! named more than once at `<prefix>.<key>[i]` — the paths of
//! `action.parameters`. A value whose key names a secret is a `SECRET` when it
//! looks like one, as for a JSON member. Keys are not scanned (structure, like
//! JSON object keys). [`redact`](fn@crate::redact) rewrites only the pairs it
//! redacts: the decoded value with the matches replaced, percent-encoded again;
//! every other byte is kept.

use super::{Encoding, Finding, Scan};
use crate::detect::{Detectors, Hit, secret_name, secret_value};
use crate::json::{push_key, push_key_redacted};
use crate::kind::Kind;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

/// Scans the values of a query string (without `?`) or form body `text`; the
/// findings' paths start with `prefix` (`$.query`, `$.body`). The scan can be
/// given to [`redact`](fn@crate::redact) with `text`.
pub fn scan_form(detectors: &Detectors, text: &[u8], prefix: &str) -> Scan {
    let pairs = split(text);
    let mut seen: HashMap<&[u8], (usize, usize)> = HashMap::new();
    for (key, _) in &pairs {
        seen.entry(key.as_slice()).or_insert((0, 0)).0 += 1;
    }
    let mut scan = Scan {
        encoding: Encoding::Form,
        body_len: text.len(),
        ..Scan::default()
    };
    let mut hits = Vec::new();
    for (key, raw) in &pairs {
        let (count, index) = seen.get_mut(key.as_slice()).map_or((1, 0), |e| {
            e.1 += 1;
            (e.0, e.1 - 1)
        });
        let value = percent_decode(&text[raw.clone()]);
        hits.clear();
        value_hits(detectors, key, &value, &mut hits);
        if hits.is_empty() {
            continue;
        }
        let mut path = String::from(prefix);
        push_key_redacted(&mut path, &String::from_utf8_lossy(key), detectors);
        if count > 1 {
            path.push_str(&format!("[{index}]"));
        }
        let path: Arc<str> = Arc::from(path);
        let string = scan.strings.len();
        scan.strings.push(raw.clone());
        scan.findings.extend(hits.drain(..).map(|h| Finding {
            kind: h.kind,
            path: Arc::clone(&path),
            start: h.start,
            end: h.end,
            string,
        }));
    }
    scan
}

/// Scans single named values that are already decoded (path parameters: `id` →
/// `$.path.id`). They cannot be redacted in place, so only the findings come
/// back (ranges within each value).
pub fn scan_fields<'a>(
    detectors: &Detectors,
    prefix: &str,
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut hits = Vec::new();
    for (k, (key, value)) in fields.into_iter().enumerate() {
        hits.clear();
        value_hits(detectors, key.as_bytes(), value.as_bytes(), &mut hits);
        if hits.is_empty() {
            continue;
        }
        let mut path = String::from(prefix);
        push_key(&mut path, key);
        let path: Arc<str> = Arc::from(path);
        findings.extend(hits.drain(..).map(|h| Finding {
            kind: h.kind,
            path: Arc::clone(&path),
            start: h.start,
            end: h.end,
            string: k,
        }));
    }
    findings
}

/// The matches in one decoded value, plus `SECRET` for a secret-looking value
/// of a secret-named key.
fn value_hits(detectors: &Detectors, key: &[u8], value: &[u8], hits: &mut Vec<Hit>) {
    detectors.find_into(value, hits);
    if hits.is_empty()
        && detectors.is_enabled(&Kind::Secret)
        && secret_name(key)
        && secret_value(value)
    {
        hits.push(Hit {
            kind: Kind::Secret,
            start: 0,
            end: value.len(),
        });
    }
}

/// The pairs of `text`: the decoded key and the raw range of the value.
fn split(text: &[u8]) -> Vec<(Vec<u8>, Range<usize>)> {
    let mut pairs = Vec::new();
    let mut at = 0;
    for pair in text.split(|&b| b == b'&') {
        let start = at;
        at += pair.len() + 1;
        if pair.is_empty() {
            continue;
        }
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(k) => (&pair[..k], start + k + 1..start + pair.len()),
            None => (pair, start + pair.len()..start + pair.len()),
        };
        pairs.push((percent_decode(key), value));
    }
    pairs
}

/// Decodes a form-encoded key or value: `+` is a space, `%XX` a byte; an
/// invalid escape is kept as it is (as custody's inspection decodes it).
pub(crate) fn percent_decode(raw: &[u8]) -> Vec<u8> {
    custody_core::percent::decode(raw, true)
}

/// Percent-encodes `value` for a query or form: unreserved bytes
/// (`A-Z a-z 0-9 - . _ ~`) as they are, every other byte as `%XX`.
pub(crate) fn percent_encode(value: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}
