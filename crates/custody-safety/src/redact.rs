//! Rewriting a body so redacted values never leave: JSON stays JSON with the
//! same structure (only the affected string tokens are re-encoded; every other
//! byte is kept), text has the matched ranges replaced.

use crate::detect::Detectors;
use crate::error::SafetyError;
use crate::kind::{Action, Kind};
use crate::scan::{Encoding, Scan, percent_decode, percent_encode, scan_body};
use aws_lc_rs::hmac;
use std::fmt::{self, Write as _};

/// How a redacted value is replaced.
#[derive(Clone, Debug, Default)]
pub enum RedactStyle {
    /// `[REDACTED:EMAIL]`.
    #[default]
    Label,
    /// `[EMAIL:3f2a9c1d4b5e]`: the first 48 bits of HMAC-SHA256 over the kind
    /// and the normalised value, so the same value always gets the same token
    /// (under one key) and the model can still refer to "the same" value.
    Token(TokenKey),
}

/// The fewest bytes a [`TokenKey`] may have: a shorter key makes the tokens
/// of low-entropy values (e-mail addresses, phone numbers) guessable offline.
pub const MIN_TOKEN_KEY_BYTES: usize = 32;

/// The secret key of [`RedactStyle::Token`] (HMAC-SHA256). Its `Debug` output
/// never shows the key.
#[derive(Clone)]
pub struct TokenKey(Box<hmac::Key>);

impl TokenKey {
    /// A key from raw bytes (e.g. a mounted Secret file's content): at least
    /// [`MIN_TOKEN_KEY_BYTES`], e.g. the 64 characters of `openssl rand -hex 32`.
    pub fn new(key: &[u8]) -> Result<Self, SafetyError> {
        if key.is_empty() {
            return Err(SafetyError::EmptyKey);
        }
        if key.len() < MIN_TOKEN_KEY_BYTES {
            return Err(SafetyError::ShortKey(key.len()));
        }
        Ok(TokenKey(Box::new(hmac::Key::new(hmac::HMAC_SHA256, key))))
    }

    /// The token for `value` of `kind`: `[KIND:12 hex digits]`.
    pub fn token(&self, kind: &Kind, value: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(kind.as_str().as_bytes());
        ctx.update(&[0]);
        ctx.update(&normalize(kind, value));
        let tag = ctx.sign();
        let mut out = format!("[{kind}:");
        for b in &tag.as_ref()[..6] {
            let _ = write!(out, "{b:02x}");
        }
        out.push(']');
        out
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// The form of a value that decides "the same value": normalised as the
/// detectors read it ([`crate::normalize`]), then e-mail addresses ignore
/// case; phone, card and SSN numbers are their digits; IBANs their upper-case
/// alphanumerics.
fn normalize(kind: &Kind, value: &[u8]) -> Vec<u8> {
    // The detectors' form first (full-width, zero-width, …): one token per value
    // however it is spelled.
    let normal = crate::normalize::normalize(value);
    let value = normal.as_ref().map_or(value, |n| n.text.as_slice());
    match kind {
        Kind::Email => value.to_ascii_lowercase(),
        Kind::Phone | Kind::Card | Kind::Ssn => {
            value.iter().copied().filter(u8::is_ascii_digit).collect()
        }
        Kind::Iban => value
            .iter()
            .filter(|b| b.is_ascii_alphanumeric())
            .map(u8::to_ascii_uppercase)
            .collect(),
        _ => value.to_vec(),
    }
}

impl RedactStyle {
    fn replacement(&self, kind: &Kind, value: &[u8]) -> String {
        match self {
            RedactStyle::Label => format!("[REDACTED:{kind}]"),
            RedactStyle::Token(key) => key.token(kind, value),
        }
    }
}

/// Rewrites `body` with every finding whose action is [`Action::Redact`]
/// replaced. Returns `None` when nothing is to be redacted (forward `body` as
/// is). `scan` must come from [`scan_body`] (or
/// [`scan_form`](crate::scan_form), [`scan_text`](crate::scan_text)) on this
/// very body.
///
/// A finding that runs on into the following text parts of a message is
/// replaced where it starts; its continuation is removed from the later parts.
/// A match in a JSON number replaces the whole number (which becomes a string).
pub fn redact(
    body: &[u8],
    scan: &Scan,
    style: &RedactStyle,
    action_for: impl Fn(&Kind) -> Action,
) -> Result<Option<Vec<u8>>, SafetyError> {
    if scan.body_len != body.len()
        || scan
            .strings
            .iter()
            .any(|r| r.end > body.len() || r.start > r.end)
        || scan.findings.iter().any(|f| f.string >= scan.strings.len())
        || scan
            .pieces
            .iter()
            .any(|p| p.string >= scan.strings.len() || p.finding >= scan.findings.len())
    {
        return Err(SafetyError::ScanMismatch);
    }
    let findings = &scan.findings;
    let redacted = |i: usize| action_for(&findings[i].kind) == Action::Redact;
    // (string, start, end, the finding replaced there; None: a continuation,
    // removed).
    let mut edits: Vec<(usize, usize, usize, Option<usize>)> = Vec::new();
    for (i, f) in findings.iter().enumerate() {
        if redacted(i) {
            edits.push((f.string, f.start, f.end, Some(i)));
        }
    }
    for p in &scan.pieces {
        if redacted(p.finding) {
            edits.push((p.string, p.start, p.end, None));
        }
    }
    if edits.is_empty() {
        return Ok(None);
    }
    // In body order (strings are not numbered in body order when text parts
    // were scanned after their neighbours).
    edits.sort_by_key(|e| (scan.strings[e.0].start, e.1));
    // Whole values of findings that continue into later parts (for tokens).
    let mut continued: Vec<(usize, Vec<u8>)> = Vec::new();
    if matches!(style, RedactStyle::Token(_)) {
        for p in scan.pieces.iter().filter(|p| redacted(p.finding)) {
            let k = match continued.iter().position(|(i, _)| *i == p.finding) {
                Some(k) => k,
                None => {
                    let f = &findings[p.finding];
                    let text = decoded(body, scan, f.string)?;
                    let head = text.get(f.start..f.end).unwrap_or_default().to_vec();
                    continued.push((p.finding, head));
                    continued.len() - 1
                }
            };
            let text = decoded(body, scan, p.string)?;
            continued[k]
                .1
                .extend_from_slice(text.get(p.start..p.end).unwrap_or_default());
        }
    }
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let mut copied = 0;
    let mut k = 0;
    while k < edits.len() {
        let string = edits[k].0;
        let group_end = edits[k..]
            .iter()
            .position(|e| e.0 != string)
            .map_or(edits.len(), |n| k + n);
        let group = &edits[k..group_end];
        k = group_end;
        let raw = scan.strings[string].clone();
        if raw.start < copied {
            return Err(SafetyError::ScanMismatch);
        }
        let text = decoded(body, scan, string)?;
        let mut rewritten = Vec::with_capacity(text.len());
        let mut at = 0;
        for &(_, start, end, finding) in group {
            if start < at || end > text.len() || start > end {
                continue;
            }
            rewritten.extend_from_slice(&text[at..start]);
            if let Some(i) = finding {
                let value = continued
                    .iter()
                    .find(|(c, _)| *c == i)
                    .map_or(&text[start..end], |(_, v)| v.as_slice());
                let kind = &findings[i].kind;
                rewritten.extend_from_slice(style.replacement(kind, value).as_bytes());
            }
            at = end;
        }
        rewritten.extend_from_slice(&text[at..]);
        out.extend_from_slice(&body[copied..raw.start]);
        match scan.encoding {
            Encoding::Json => {
                let s = String::from_utf8_lossy(&rewritten);
                let encoded = serde_json::to_string(&s).map_err(|_| SafetyError::ScanMismatch)?;
                out.extend_from_slice(encoded.as_bytes());
            }
            Encoding::Form => percent_encode(&rewritten, &mut out),
            Encoding::Text => out.extend_from_slice(&rewritten),
        }
        copied = raw.end;
    }
    out.extend_from_slice(&body[copied..]);
    Ok(Some(out))
}

/// The decoded content of string `string` of `scan` in `body`.
fn decoded(body: &[u8], scan: &Scan, string: usize) -> Result<Vec<u8>, SafetyError> {
    let raw = scan
        .strings
        .get(string)
        .ok_or(SafetyError::ScanMismatch)?
        .clone();
    let token = &body[raw];
    Ok(match scan.encoding {
        Encoding::Json if token.first() == Some(&b'"') && token.len() >= 2 => {
            let mut decoded = Vec::new();
            crate::json::decode_into(&token[1..token.len() - 1], &mut decoded)
                .map_err(|_| SafetyError::ScanMismatch)?;
            decoded
        }
        Encoding::Form => percent_decode(token),
        Encoding::Json | Encoding::Text => token.to_vec(),
    })
}

/// Scans and redacts `action.parameters` (canonical JSON text, or the
/// truncation marker) so it is stored after redaction: returns the text to
/// store and the scan. Canonical JSON stays canonical (keys and order are
/// untouched; strings are re-encoded as serde_json encodes them).
pub fn redact_parameters(
    detectors: &Detectors,
    parameters: &str,
    style: &RedactStyle,
    action_for: impl Fn(&Kind) -> Action,
) -> Result<(String, Scan), SafetyError> {
    let scan = scan_body(detectors, parameters.as_bytes())?;
    let text = match redact(parameters.as_bytes(), &scan, style, action_for)? {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => parameters.to_owned(),
    };
    Ok((text, scan))
}

#[cfg(test)]
mod tests;
