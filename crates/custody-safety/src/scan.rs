//! Scanning a body: JSON-aware when it is JSON, as text otherwise.

use crate::detect::{Detectors, Hit};
use crate::detect::{secret_name, secret_value};
use crate::error::SafetyError;
use crate::json::{self, WalkError};
use crate::kind::Kind;
use std::ops::Range;
use std::sync::Arc;

/// One finding: what, where (JSON path and byte range in that string). Never
/// the value itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What was found.
    pub kind: Kind,
    /// The JSON path of the string holding it (`$.messages[0].content`), or `$`
    /// for a text body. Shared by the findings of one string.
    pub path: Arc<str>,
    /// Start byte offset within that (decoded) string.
    pub start: usize,
    /// End byte offset (exclusive) within that (decoded) string.
    pub end: usize,
    /// Index into [`Scan::strings`].
    pub(crate) string: usize,
}

/// The result of scanning one body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Every finding, in body order.
    pub findings: Vec<Finding>,
    /// Whether the body was scanned as JSON (else as text).
    pub json: bool,
    /// Raw token ranges (quotes included) of the strings that have findings;
    /// the whole body for text.
    pub(crate) strings: Vec<Range<usize>>,
    /// Length of the scanned body, to catch a scan applied to another body.
    pub(crate) body_len: usize,
}

impl Scan {
    /// Whether anything was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Whether `body` looks like a JSON document (first non-blank byte `{` or `[`).
fn looks_json(body: &[u8]) -> bool {
    matches!(body.trim_ascii_start().first(), Some(b'{' | b'['))
}

/// Scans a request or response body. If it is a JSON object or array, every
/// string value is scanned and findings carry its JSON path; otherwise (or if
/// it is not well-formed JSON) the whole body is scanned as text with path `$`.
///
/// A JSON member whose key names a secret (`password`, `api_key`, `token`, …,
/// see docs/safety.md) and whose string value looks like one is reported as
/// [`Kind::Secret`] even without any other match.
///
/// Fails only when the JSON nests deeper than [`MAX_DEPTH`](crate::MAX_DEPTH).
pub fn scan_body(detectors: &Detectors, body: &[u8]) -> Result<Scan, SafetyError> {
    if !looks_json(body) {
        return Ok(scan_text(detectors, body));
    }
    let mut scan = Scan {
        json: true,
        body_len: body.len(),
        ..Scan::default()
    };
    let mut hits: Vec<Hit> = Vec::new();
    let walked = json::walk(body, &mut |stack, value| {
        hits.clear();
        detectors.find_into(value.text, &mut hits);
        if hits.is_empty()
            && detectors.is_enabled(&Kind::Secret)
            && json::last_key(body, stack).is_some_and(secret_name)
            && secret_value(value.text)
        {
            hits.push(Hit {
                kind: Kind::Secret,
                start: 0,
                end: value.text.len(),
            });
        }
        if hits.is_empty() {
            return;
        }
        let path: Arc<str> = Arc::from(json::path(body, stack));
        let string = scan.strings.len();
        scan.strings.push(value.raw);
        scan.findings.extend(hits.drain(..).map(|h| Finding {
            kind: h.kind,
            path: Arc::clone(&path),
            start: h.start,
            end: h.end,
            string,
        }));
    });
    match walked {
        Ok(()) => Ok(scan),
        Err(WalkError::NotJson) => Ok(scan_text(detectors, body)),
        Err(WalkError::TooDeep) => Err(SafetyError::TooDeep(json::MAX_DEPTH)),
    }
}

/// Scans `text` as plain text: findings have path `$` and byte ranges in `text`.
pub fn scan_text(detectors: &Detectors, text: &[u8]) -> Scan {
    let root: Arc<str> = Arc::from("$");
    let mut findings: Vec<Finding> = Vec::new();
    detectors.for_each_hit(text, |h| {
        findings.push(Finding {
            kind: h.kind,
            path: Arc::clone(&root),
            start: h.start,
            end: h.end,
            string: 0,
        });
    });
    Scan {
        strings: if findings.is_empty() {
            Vec::new()
        } else {
            std::iter::once(0..text.len()).collect()
        },
        findings,
        json: false,
        body_len: text.len(),
    }
}

#[cfg(test)]
mod tests;
