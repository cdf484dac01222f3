//! Rewriting a body so redacted values never leave: JSON stays JSON with the
//! same structure (only the affected string tokens are re-encoded; every other
//! byte is kept), text has the matched ranges replaced.

use crate::detect::Detectors;
use crate::error::SafetyError;
use crate::kind::{Action, Kind};
use crate::scan::{Scan, scan_body};
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

/// The secret key of [`RedactStyle::Token`] (HMAC-SHA256). Its `Debug` output
/// never shows the key.
#[derive(Clone)]
pub struct TokenKey(Box<hmac::Key>);

impl TokenKey {
    /// A key from raw bytes (e.g. a mounted Secret file's content); must not be
    /// empty, should be 32 random bytes.
    pub fn new(key: &[u8]) -> Result<Self, SafetyError> {
        if key.is_empty() {
            return Err(SafetyError::EmptyKey);
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

/// The form of a value that decides "the same value": e-mail addresses ignore
/// case; phone, card and SSN numbers are their digits; IBANs their upper-case
/// alphanumerics.
fn normalize(kind: &Kind, value: &[u8]) -> Vec<u8> {
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
/// is). `scan` must come from [`scan_body`] on this very body.
pub fn redact(
    body: &[u8],
    scan: &Scan,
    style: &RedactStyle,
    action_for: impl Fn(&Kind) -> Action,
) -> Result<Option<Vec<u8>>, SafetyError> {
    if scan.body_len != body.len() || scan.strings.iter().any(|r| r.end > body.len()) {
        return Err(SafetyError::ScanMismatch);
    }
    let mut out: Vec<u8> = Vec::new();
    let mut copied = 0;
    let mut any = false;
    let mut k = 0;
    let findings = &scan.findings;
    while k < findings.len() {
        let string = findings[k].string;
        let group_end = findings[k..]
            .iter()
            .position(|f| f.string != string)
            .map_or(findings.len(), |n| k + n);
        let group = &findings[k..group_end];
        k = group_end;
        if !group.iter().any(|f| action_for(&f.kind) == Action::Redact) {
            continue;
        }
        let raw = scan
            .strings
            .get(string)
            .ok_or(SafetyError::ScanMismatch)?
            .clone();
        let quoted = body.get(raw.start) == Some(&b'"');
        let text: Vec<u8> = if scan.json && quoted {
            let mut decoded = Vec::new();
            crate::json::decode_into(&body[raw.start + 1..raw.end - 1], &mut decoded)
                .map_err(|_| SafetyError::ScanMismatch)?;
            decoded
        } else {
            body[raw.clone()].to_vec()
        };
        let mut rewritten = Vec::with_capacity(text.len());
        let mut at = 0;
        for f in group {
            if action_for(&f.kind) != Action::Redact || f.start < at || f.end > text.len() {
                continue;
            }
            rewritten.extend_from_slice(&text[at..f.start]);
            rewritten
                .extend_from_slice(style.replacement(&f.kind, &text[f.start..f.end]).as_bytes());
            at = f.end;
        }
        rewritten.extend_from_slice(&text[at..]);
        out.extend_from_slice(&body[copied..raw.start]);
        if scan.json {
            let s = String::from_utf8_lossy(&rewritten);
            let encoded = serde_json::to_string(&s).map_err(|_| SafetyError::ScanMismatch)?;
            out.extend_from_slice(encoded.as_bytes());
        } else {
            out.extend_from_slice(&rewritten);
        }
        copied = raw.end;
        any = true;
    }
    if !any {
        return Ok(None);
    }
    out.extend_from_slice(&body[copied..]);
    Ok(Some(out))
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
