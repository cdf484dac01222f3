//! A minimal, allocation-light JSON walker: it visits every string *value*
//! with its path, its raw token range in the body and its decoded bytes.
//!
//! Object keys are not scanned (they are structure, and rewriting them could
//! create duplicate keys). A number is scanned as the digits of its integer
//! value when it is an integer of nine to [`MAX_NUMBER_DIGITS`] digits, however
//! it is written (`4111111111111111`, `-4111111111111111`,
//! `4.111111111111111e15`, `4111111111111111.0`): a card number sent as a
//! number. A match in a number covers the whole number token; redacting one
//! turns it into a string. A body that is not well-formed JSON is reported as
//! such and the caller scans it as text.

use crate::detect::Detectors;
use memchr::memchr2;
use std::fmt::Write as _;
use std::ops::Range;

/// How deep the walker follows nesting (serde_json's default limit is 128 too).
pub const MAX_DEPTH: usize = 128;

/// Most digits of a number's integer value that are scanned (a card has at most
/// 19; longer values cannot hold one as a whole number).
pub(crate) const MAX_NUMBER_DIGITS: usize = 24;

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    /// An object member: the key's raw token range (with quotes).
    Key(Range<usize>),
    /// An array element.
    Index(usize),
}

/// Why walking stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WalkError {
    NotJson,
    TooDeep,
}

/// A string value (or a number that is a long integer): where its token is,
/// and its decoded bytes (a number's: the digits of its integer value).
pub(crate) struct StrValue<'a> {
    /// The token's range in the body, quotes included (a number has none).
    pub(crate) raw: Range<usize>,
    /// The decoded content.
    pub(crate) text: &'a [u8],
    /// Whether the token is a number (a match then covers the whole token).
    pub(crate) number: bool,
}

/// Walks `body`, calling `visit(path, value)` for every string value.
pub(crate) fn walk(
    body: &[u8],
    visit: &mut dyn FnMut(&[Seg], StrValue<'_>),
) -> Result<(), WalkError> {
    let mut w = Walker {
        b: body,
        pos: 0,
        stack: Vec::new(),
        scratch: Vec::new(),
    };
    w.value(0, visit)?;
    w.ws();
    if w.pos == body.len() {
        Ok(())
    } else {
        Err(WalkError::NotJson)
    }
}

struct Walker<'a> {
    b: &'a [u8],
    pos: usize,
    stack: Vec<Seg>,
    scratch: Vec<u8>,
}

impl Walker<'_> {
    fn ws(&mut self) {
        while self
            .b
            .get(self.pos)
            .is_some_and(|c| matches!(c, b' ' | b'\n' | b'\r' | b'\t'))
        {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.b.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Walks an object member's or an array element's value, with `seg` on the
    /// path.
    fn member(
        &mut self,
        seg: Seg,
        depth: usize,
        visit: &mut dyn FnMut(&[Seg], StrValue<'_>),
    ) -> Result<(), WalkError> {
        self.stack.push(seg);
        self.value(depth + 1, visit)?;
        self.stack.pop();
        Ok(())
    }

    /// After a member or an element: `true` at a `,` (another follows), `false`
    /// at `close` (the object or array ends).
    fn another(&mut self, close: u8) -> Result<bool, WalkError> {
        if self.eat(b',') {
            Ok(true)
        } else if self.eat(close) {
            Ok(false)
        } else {
            Err(WalkError::NotJson)
        }
    }

    fn value(
        &mut self,
        depth: usize,
        visit: &mut dyn FnMut(&[Seg], StrValue<'_>),
    ) -> Result<(), WalkError> {
        if depth > MAX_DEPTH {
            return Err(WalkError::TooDeep);
        }
        self.ws();
        match self.b.get(self.pos) {
            Some(b'{') => {
                self.pos += 1;
                if self.eat(b'}') {
                    return Ok(());
                }
                loop {
                    self.ws();
                    if self.b.get(self.pos) != Some(&b'"') {
                        return Err(WalkError::NotJson);
                    }
                    let (key, _) = self.string_token()?;
                    if !self.eat(b':') {
                        return Err(WalkError::NotJson);
                    }
                    self.member(Seg::Key(key), depth, visit)?;
                    if !self.another(b'}')? {
                        return Ok(());
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                if self.eat(b']') {
                    return Ok(());
                }
                let mut index = 0;
                loop {
                    self.member(Seg::Index(index), depth, visit)?;
                    index += 1;
                    if !self.another(b']')? {
                        return Ok(());
                    }
                }
            }
            Some(b'"') => {
                let (raw, escaped) = self.string_token()?;
                let inner = &self.b[raw.start + 1..raw.end - 1];
                let text = if escaped {
                    self.scratch.clear();
                    decode_into(inner, &mut self.scratch)?;
                    &self.scratch[..]
                } else {
                    inner
                };
                visit(
                    &self.stack,
                    StrValue {
                        raw,
                        text,
                        number: false,
                    },
                );
                Ok(())
            }
            Some(_) => {
                let start = self.pos;
                let number = self.scalar()?;
                // Long integers are scanned too (a card number sent as a number).
                if number && integer_digits(&self.b[start..self.pos], &mut self.scratch) {
                    visit(
                        &self.stack,
                        StrValue {
                            raw: start..self.pos,
                            text: &self.scratch,
                            number: true,
                        },
                    );
                }
                Ok(())
            }
            None => Err(WalkError::NotJson),
        }
    }

    /// A string token at `pos` (which is a `"`): its range and whether it has
    /// escapes.
    fn string_token(&mut self) -> Result<(Range<usize>, bool), WalkError> {
        let start = self.pos;
        let mut p = start + 1;
        let mut escaped = false;
        loop {
            let rest = self.b.get(p..).ok_or(WalkError::NotJson)?;
            match memchr2(b'"', b'\\', rest) {
                Some(k) if rest[k] == b'"' => {
                    self.pos = p + k + 1;
                    return Ok((start..self.pos, escaped));
                }
                Some(k) => {
                    escaped = true;
                    p += k + 2;
                }
                None => return Err(WalkError::NotJson),
            }
        }
    }

    /// A literal or number; `Ok(true)` for a number.
    fn scalar(&mut self) -> Result<bool, WalkError> {
        let rest = &self.b[self.pos..];
        for lit in [&b"true"[..], b"false", b"null"] {
            if rest.starts_with(lit) {
                self.pos += lit.len();
                return Ok(false);
            }
        }
        let len = number_len(rest).ok_or(WalkError::NotJson)?;
        self.pos += len;
        Ok(true)
    }
}

/// The length of the JSON number at the start of `s` (RFC 8259 grammar).
fn number_len(s: &[u8]) -> Option<usize> {
    let digits = |p: usize| {
        s[p.min(s.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let mut p = usize::from(s.first() == Some(&b'-'));
    match s.get(p) {
        Some(b'0') => p += 1,
        Some(b'1'..=b'9') => p += digits(p),
        _ => return None,
    }
    if s.get(p) == Some(&b'.') {
        let d = digits(p + 1);
        if d == 0 {
            return None;
        }
        p += 1 + d;
    }
    if matches!(s.get(p), Some(b'e' | b'E')) {
        p += 1;
        if matches!(s.get(p), Some(b'+' | b'-')) {
            p += 1;
        }
        let d = digits(p);
        if d == 0 {
            return None;
        }
        p += d;
    }
    Some(p)
}

/// Writes the digits of the integer value of the JSON number `token` to `out`
/// (sign dropped, no leading zeros) when it is an integer of 9 to
/// [`MAX_NUMBER_DIGITS`] digits: `4.111111111111111e15` → `4111111111111111`.
pub(crate) fn integer_digits(token: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let token = token.strip_prefix(b"-").unwrap_or(token);
    // A plain integer (most numbers): its digits without the leading zeros. A
    // number without an exponent has at most as many digits as its token has
    // bytes, so short ones (counts, indexes, prices) are decided at once.
    if token.iter().all(u8::is_ascii_digit) {
        let first = token.iter().position(|&d| d != b'0').unwrap_or(token.len());
        let digits = &token[first..];
        if !(9..=MAX_NUMBER_DIGITS).contains(&digits.len()) {
            return false;
        }
        out.extend_from_slice(digits);
        return true;
    }
    if token.len() < 9 && !token.iter().any(|&b| b | 0x20 == b'e') {
        return false;
    }
    let (mantissa, exponent) = match token.iter().position(|&b| matches!(b, b'e' | b'E')) {
        Some(k) => (&token[..k], &token[k + 1..]),
        None => (token, &b""[..]),
    };
    let (negative, exp_digits) = match exponent.first() {
        Some(b'-') => (true, &exponent[1..]),
        Some(b'+') => (false, &exponent[1..]),
        _ => (false, exponent),
    };
    // Saturating: beyond a few hundred no value of at most MAX_NUMBER_DIGITS
    // digits remains either way.
    let mut shift: i64 = 0;
    for &d in exp_digits {
        shift = (shift * 10 + i64::from(d.wrapping_sub(b'0'))).min(100_000);
    }
    if negative {
        shift = -shift;
    }
    let (int, frac) = match mantissa.iter().position(|&b| b == b'.') {
        Some(k) => (&mantissa[..k], &mantissa[k + 1..]),
        None => (mantissa, &b""[..]),
    };
    shift = shift.saturating_sub(i64::try_from(frac.len()).unwrap_or(i64::MAX));
    for &d in int.iter().chain(frac) {
        if !d.is_ascii_digit() {
            return false;
        }
        if !out.is_empty() || d != b'0' {
            out.push(d);
        }
    }
    // Trailing zeros become the shift: `out` keeps the significant digits.
    let zeros = out.iter().rev().take_while(|&&d| d == b'0').count();
    out.truncate(out.len() - zeros);
    shift = shift.saturating_add(i64::try_from(zeros).unwrap_or(i64::MAX));
    if out.is_empty() || shift < 0 {
        return false;
    }
    let pad = usize::try_from(shift).unwrap_or(usize::MAX);
    if out.len().saturating_add(pad) > MAX_NUMBER_DIGITS {
        return false;
    }
    out.resize(out.len() + pad, b'0');
    out.len() >= 9
}

fn hex4(s: &[u8]) -> Option<u32> {
    let s = s.get(..4)?;
    let mut v = 0;
    for &c in s {
        v = v * 16 + char::from(c).to_digit(16)?;
    }
    Some(v)
}

/// Decodes the inside of a JSON string token (escapes resolved; a lone
/// surrogate becomes U+FFFD).
pub(crate) fn decode_into(s: &[u8], out: &mut Vec<u8>) -> Result<(), WalkError> {
    let mut i = 0;
    while let Some(k) = memchr::memchr(b'\\', &s[i..]) {
        out.extend_from_slice(&s[i..i + k]);
        i += k + 1;
        let c = *s.get(i).ok_or(WalkError::NotJson)?;
        i += 1;
        let simple = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let mut u = hex4(&s[i..]).ok_or(WalkError::NotJson)?;
                i += 4;
                if (0xD800..0xDC00).contains(&u)
                    && s[i..].starts_with(b"\\u")
                    && let Some(lo) = hex4(&s[i + 2..]).filter(|lo| (0xDC00..0xE000).contains(lo))
                {
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                }
                let ch = char::from_u32(u).unwrap_or('\u{FFFD}');
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            _ => return Err(WalkError::NotJson),
        };
        out.push(simple);
    }
    out.extend_from_slice(&s[i..]);
    Ok(())
}

/// The path of `stack` in `body`: `$.messages[0].content`, with keys that are
/// not identifiers in brackets: `$['x-api key']`, and what `detectors` find in a
/// key replaced by its label ([`push_key_redacted`]).
pub(crate) fn path(body: &[u8], stack: &[Seg], detectors: &Detectors) -> String {
    let mut out = String::from("$");
    let mut scratch = Vec::new();
    for seg in stack {
        match seg {
            Seg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
            Seg::Key(raw) => {
                scratch.clear();
                let inner = &body[raw.start + 1..raw.end - 1];
                if decode_into(inner, &mut scratch).is_err() {
                    scratch.clear();
                    scratch.extend_from_slice(inner);
                }
                push_key_redacted(&mut out, &String::from_utf8_lossy(&scratch), detectors);
            }
        }
    }
    out
}

/// Appends a member step (as [`push_key`]) whose key may itself hold a value
/// the detectors find (`{"ada@example.org": {…}}`): each such value is replaced
/// by its label, `['[REDACTED:EMAIL]']`, so that a path stored in the row never
/// carries a value it was scanned for.
pub(crate) fn push_key_redacted(out: &mut String, key: &str, detectors: &Detectors) {
    let hits = detectors.find(key.as_bytes());
    if hits.is_empty() {
        push_key(out, key);
    } else {
        push_key(out, &replace_hits(key, &hits));
    }
}

/// `key` with each of `hits` (sorted, non-overlapping) replaced by its label.
/// Matches cover whole characters; a range that does not is widened to the
/// character boundaries around it, so no part of a value is ever kept.
fn replace_hits(key: &str, hits: &[crate::detect::Hit]) -> String {
    let mut clean = String::with_capacity(key.len());
    let mut at = 0;
    for hit in hits {
        let start = (at..=hit.start.min(key.len()))
            .rev()
            .find(|&i| key.is_char_boundary(i))
            .unwrap_or(at);
        clean.push_str(key.get(at..start).unwrap_or_default());
        let _ = write!(clean, "[REDACTED:{}]", hit.kind.as_str());
        at = (hit.end.max(start)..=key.len())
            .find(|&i| key.is_char_boundary(i))
            .unwrap_or(key.len());
    }
    clean.push_str(key.get(at..).unwrap_or_default());
    clean
}

/// Appends a member step to a path: `.key` for identifiers, `['x-api key']`
/// (with `'` and `\` escaped) otherwise.
pub(crate) fn push_key(out: &mut String, key: &str) {
    let ident = key
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ident {
        out.push('.');
        out.push_str(key);
    } else {
        out.push_str("['");
        for ch in key.chars() {
            if ch == '\'' || ch == '\\' {
                out.push('\\');
            }
            out.push(ch);
        }
        out.push_str("']");
    }
}

/// The raw (undecoded) key bytes of the innermost member, if the value is one.
pub(crate) fn last_key<'a>(body: &'a [u8], stack: &[Seg]) -> Option<&'a [u8]> {
    match stack.last()? {
        Seg::Key(raw) => Some(&body[raw.start + 1..raw.end - 1]),
        Seg::Index(_) => None,
    }
}

#[cfg(test)]
mod tests;
