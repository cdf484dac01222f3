//! Scanning a body: JSON-aware when it is JSON, as text otherwise; and the
//! values of a query string or form body ([`scan_form`]) or of path parameters
//! ([`scan_fields`]).
//!
//! The text parts of one message are scanned joined as well as one by one: in
//! a JSON array whose elements are objects with a string member `text` (OpenAI
//! and Anthropic content parts, `[{"type":"text","text":"4111 1111"},
//! {"type":"text","text":" 1111 1111"}]`), a value split across parts is found.
//! Such a finding is reported once, at the part where it starts (its range runs
//! to that part's end); redacting it replaces that piece and removes the rest
//! from the following parts.

use crate::detect::{Detectors, Hit};
use crate::detect::{secret_name, secret_value};
use crate::error::SafetyError;
use crate::json::{self, Seg, StrValue, WalkError};
use crate::kind::Kind;
use std::ops::Range;
use std::sync::Arc;

mod form;

pub(crate) use form::{percent_decode, percent_encode};
pub use form::{scan_fields, scan_form};

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

/// How the strings of a scanned body are encoded in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// Plain text: the bytes are the string.
    #[default]
    Text,
    /// JSON string tokens (quoted, escaped) and number tokens.
    Json,
    /// `application/x-www-form-urlencoded` values (`+` and percent escapes).
    Form,
}

/// The rest of a finding that runs on into the following text parts of one
/// message: `start..end` of string `string` belongs to finding `finding`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) finding: usize,
    pub(crate) string: usize,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// The result of scanning one body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Every finding, in body order.
    pub findings: Vec<Finding>,
    /// Whether the body was scanned as JSON (else as text or as a form).
    pub json: bool,
    /// How the strings are encoded.
    pub(crate) encoding: Encoding,
    /// Raw token ranges (quotes included) of the strings that have findings;
    /// the whole body for text.
    pub(crate) strings: Vec<Range<usize>>,
    /// Continuations of findings across text parts, by string.
    pub(crate) pieces: Vec<Piece>,
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
    let mut walker = BodyScan {
        detectors,
        body,
        scan: Scan {
            json: true,
            encoding: Encoding::Json,
            body_len: body.len(),
            ..Scan::default()
        },
        hits: Vec::new(),
        parts: None,
    };
    let walked = json::walk(body, &mut |stack, value| walker.value(stack, &value));
    walker.flush();
    match walked {
        Ok(()) => Ok(in_body_order(walker.scan)),
        Err(WalkError::NotJson) => Ok(scan_text(detectors, body)),
        Err(WalkError::TooDeep) => Err(SafetyError::TooDeep(json::MAX_DEPTH)),
    }
}

/// Findings sorted by where they are in the body (text parts are scanned when
/// their array's run of parts ends, after the other members of its elements).
fn in_body_order(mut scan: Scan) -> Scan {
    let at = |f: &Finding| (scan.strings[f.string].start, f.start);
    if scan.findings.is_sorted_by_key(at) {
        return scan;
    }
    let mut order: Vec<usize> = (0..scan.findings.len()).collect();
    order.sort_by_key(|&i| at(&scan.findings[i]));
    let mut new_index = vec![0; order.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    let mut findings: Vec<Option<Finding>> = scan.findings.drain(..).map(Some).collect();
    scan.findings = order.iter().filter_map(|&i| findings[i].take()).collect();
    for piece in &mut scan.pieces {
        piece.finding = new_index[piece.finding];
    }
    scan
}

/// The state of one JSON body scan.
struct BodyScan<'a> {
    detectors: &'a Detectors,
    body: &'a [u8],
    scan: Scan,
    hits: Vec<Hit>,
    /// The text parts of one content array seen so far.
    parts: Option<Parts>,
}

/// Consecutive `text` members of the elements of one array.
struct Parts {
    /// The array's path.
    array: Vec<Seg>,
    items: Vec<Part>,
}

struct Part {
    /// Where the part is; its path is built only for a part with a finding.
    stack: Vec<Seg>,
    raw: Range<usize>,
    text: Vec<u8>,
}

/// Whether `stack` is `<array>[i].text`; returns the array's path.
fn text_part<'s>(body: &[u8], stack: &'s [Seg]) -> Option<&'s [Seg]> {
    match stack {
        [array @ .., Seg::Index(_), Seg::Key(key)] if &body[key.clone()] == b"\"text\"" => {
            Some(array)
        }
        _ => None,
    }
}

impl BodyScan<'_> {
    fn value(&mut self, stack: &[Seg], value: &StrValue<'_>) {
        if !value.number
            && let Some(array) = text_part(self.body, stack)
        {
            let part = Part {
                stack: stack.to_vec(),
                raw: value.raw.clone(),
                text: value.text.to_vec(),
            };
            match &mut self.parts {
                Some(parts) if parts.array == array => parts.items.push(part),
                _ => {
                    self.flush();
                    self.parts = Some(Parts {
                        array: array.to_vec(),
                        items: vec![part],
                    });
                }
            }
            return;
        }
        // Other members of the array's elements (`"type":"text"`) do not end
        // the run of parts.
        if !self
            .parts
            .as_ref()
            .is_some_and(|p| stack.len() > p.array.len() && stack.starts_with(&p.array))
        {
            self.flush();
        }
        self.hits.clear();
        self.detectors.find_into(value.text, &mut self.hits);
        if self.hits.is_empty()
            && self.detectors.is_enabled(&Kind::Secret)
            && json::last_key(self.body, stack).is_some_and(secret_name)
            && secret_value(value.text)
        {
            self.hits.push(Hit {
                kind: Kind::Secret,
                start: 0,
                end: value.text.len(),
            });
        }
        if self.hits.is_empty() {
            return;
        }
        if value.number {
            // A match in a number covers the whole token (its text is not the
            // token's: `4.111111111111111e15`).
            self.hits.truncate(1);
            self.hits[0].start = 0;
            self.hits[0].end = value.raw.len();
        }
        let path: Arc<str> = Arc::from(json::path(self.body, stack, self.detectors));
        let string = self.scan.strings.len();
        self.scan.strings.push(value.raw.clone());
        self.scan
            .findings
            .extend(self.hits.drain(..).map(|h| Finding {
                kind: h.kind,
                path: Arc::clone(&path),
                start: h.start,
                end: h.end,
                string,
            }));
    }

    /// Scans the pending text parts: each alone, then joined for values that
    /// cross from one part into the next.
    fn flush(&mut self) {
        let Some(parts) = self.parts.take() else {
            return;
        };
        let items = parts.items;
        // Findings of each part alone, in joined coordinates.
        let mut offsets = Vec::with_capacity(items.len());
        let mut joined = Vec::new();
        let mut local: Vec<Vec<Hit>> = Vec::with_capacity(items.len());
        for item in &items {
            offsets.push(joined.len());
            joined.extend_from_slice(&item.text);
            local.push(self.detectors.find(&item.text));
        }
        let part_of = |at: usize| offsets.partition_point(|&o| o <= at) - 1;
        // Joined matches that cross a boundary and overlap no part's own match.
        let mut crossing: Vec<Hit> = Vec::new();
        if items.len() > 1 {
            for h in self.detectors.find(&joined) {
                let (a, b) = (part_of(h.start), part_of(h.end - 1));
                let overlaps = (a..=b).any(|k| {
                    local[k].iter().any(|l| {
                        let (s, e) = (offsets[k] + l.start, offsets[k] + l.end);
                        s < h.end && h.start < e
                    })
                });
                if a != b && !overlaps {
                    crossing.push(h);
                }
            }
        }
        // Strings are numbered in body order: a part gets one when a finding or
        // a piece of one is in it.
        let mut string_of: Vec<Option<usize>> = vec![None; items.len()];
        let mut number = |k: usize, scan: &mut Scan| -> usize {
            *string_of[k].get_or_insert_with(|| {
                scan.strings.push(items[k].raw.clone());
                scan.strings.len() - 1
            })
        };
        // A part's path, built when a finding is placed in it.
        let mut paths: Vec<Option<Arc<str>>> = vec![None; items.len()];
        let (body, detectors) = (self.body, self.detectors);
        let mut path_of = |k: usize| -> Arc<str> {
            Arc::clone(
                paths[k]
                    .get_or_insert_with(|| Arc::from(json::path(body, &items[k].stack, detectors))),
            )
        };
        // The finding each crossing match became.
        let mut cross_finding: Vec<usize> = Vec::with_capacity(crossing.len());
        for (k, item) in items.iter().enumerate() {
            // Pieces of crossing findings that started in an earlier part.
            for (h, &finding) in crossing.iter().zip(&cross_finding) {
                let (a, b) = (part_of(h.start), part_of(h.end - 1));
                if a < k && k <= b {
                    let string = number(k, &mut self.scan);
                    self.scan.pieces.push(Piece {
                        finding,
                        string,
                        start: 0,
                        end: (h.end - offsets[k]).min(item.text.len()),
                    });
                }
            }
            for l in &local[k] {
                let string = number(k, &mut self.scan);
                self.scan.findings.push(Finding {
                    kind: l.kind.clone(),
                    path: path_of(k),
                    start: l.start,
                    end: l.end,
                    string,
                });
            }
            while let Some(h) = crossing.get(cross_finding.len())
                && part_of(h.start) == k
            {
                let string = number(k, &mut self.scan);
                cross_finding.push(self.scan.findings.len());
                self.scan.findings.push(Finding {
                    kind: h.kind.clone(),
                    path: path_of(k),
                    start: h.start - offsets[k],
                    end: item.text.len(),
                    string,
                });
            }
        }
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
        encoding: Encoding::Text,
        pieces: Vec::new(),
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
