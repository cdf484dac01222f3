//! Normalisation before detection: the one place where a string is turned into
//! the form the detectors read, for bodies, parameters and streams alike
//! ([`Detectors::find`](crate::Detectors::find) calls it on every string).
//!
//! The detectors match ASCII patterns, so only characters that *become* ASCII
//! matter. Each character of the string is, in order:
//! - removed when it is a default-ignorable code point (Unicode's
//!   `Default_Ignorable_Code_Point`: zero-width space, joiners and non-joiners
//!   U+200B–U+200D, word joiner U+2060, BOM U+FEFF, soft hyphen U+00AD,
//!   direction marks and embeddings, variation selectors, tag characters, …):
//!   they render as nothing, so `4111\u{200B}1111…` reads as one number;
//! - replaced by `-` when it is a typographic dash (U+2010–U+2015, the minus
//!   sign U+2212, U+FE58): NFKC keeps them, yet `4111–1111–…` is the same card;
//! - replaced by its NFKC form when that form is all ASCII (full-width forms
//!   `４１１１` and `＠`, no-break and other spaces, super- and subscript digits,
//!   circled and mathematical digits and letters, ligatures such as `ﬁ`, `…`);
//! - else kept as it is (an invalid UTF-8 byte too).
//!
//! Per character rather than over the whole string: NFKC's composition step only
//! ever produces non-ASCII characters, so for what the detectors can match the
//! result is the same, and every normalised byte comes from exactly one original
//! character. A match in the normalised text therefore always maps back to a
//! range of whole original characters ([`Normalized::original`]): the original
//! bytes are what is redacted. A match that starts or ends inside the expansion
//! of one character (`⑽` → `(10)`) covers that whole character.

use unicode_normalization::char::decompose_compatible;

/// A string in normalised form and the way back to the original offsets.
#[derive(Debug)]
pub(crate) struct Normalized {
    /// The normalised bytes.
    pub(crate) text: Vec<u8>,
    /// Every changed character, in order; bytes between them are copied 1:1.
    edits: Vec<Edit>,
}

/// One changed character: `orig_len` bytes at `orig` became `norm_len` bytes at
/// `at` in the normalised text (`norm_len` 0: removed).
#[derive(Clone, Copy, Debug)]
struct Edit {
    at: usize,
    norm_len: usize,
    orig: usize,
    orig_len: usize,
}

/// The normalised form of `text`, or `None` when it is the same as `text` (all
/// ASCII, or no character changes).
pub(crate) fn normalize(text: &[u8]) -> Option<Normalized> {
    if text.is_ascii() {
        return None;
    }
    let mut out = Normalized {
        text: Vec::new(),
        edits: Vec::new(),
    };
    let mut copied = 0;
    let mut base = 0;
    for chunk in text.utf8_chunks() {
        let valid = chunk.valid();
        for (k, c) in valid.char_indices() {
            if c.is_ascii() {
                continue;
            }
            let Some((bytes, len)) = replacement(c) else {
                continue;
            };
            let orig = base + k;
            if out.text.capacity() == 0 {
                out.text.reserve(text.len());
            }
            out.text.extend_from_slice(&text[copied..orig]);
            out.edits.push(Edit {
                at: out.text.len(),
                norm_len: len,
                orig,
                orig_len: c.len_utf8(),
            });
            out.text.extend_from_slice(&bytes[..len]);
            copied = orig + c.len_utf8();
        }
        base += valid.len() + chunk.invalid().len();
    }
    if out.edits.is_empty() {
        return None;
    }
    out.text.extend_from_slice(&text[copied..]);
    Some(out)
}

/// Longest ASCII expansion kept (`⒇` → `(20)`; longer ones are left alone).
const MAX_EXPANSION: usize = 8;

/// What a non-ASCII character becomes, if it changes: removed (length 0), `-`,
/// or its all-ASCII NFKC form.
fn replacement(c: char) -> Option<([u8; MAX_EXPANSION], usize)> {
    let mut buf = [0u8; MAX_EXPANSION];
    if ignorable(c) {
        return Some((buf, 0));
    }
    if matches!(c, '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}') {
        buf[0] = b'-';
        return Some((buf, 1));
    }
    let mut len = 0;
    let mut ascii = true;
    decompose_compatible(c, |d| {
        if !d.is_ascii() || len == MAX_EXPANSION {
            ascii = false;
        } else if ascii {
            // `d` is ASCII: one byte.
            buf[len] = u8::try_from(u32::from(d)).unwrap_or(b'?');
            len += 1;
        }
    });
    (ascii && len > 0).then_some((buf, len))
}

/// Unicode's `Default_Ignorable_Code_Point` (DerivedCoreProperties.txt): code
/// points that render as nothing.
fn ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

impl Normalized {
    /// The original byte range of the normalised range `start..end` (whole
    /// original characters; a removed character at either edge is left out).
    pub(crate) fn original(&self, start: usize, end: usize) -> (usize, usize) {
        let s = self.start_of(start);
        let e = if end > start { self.end_of(end - 1) } else { s };
        (s, e.max(s))
    }

    /// The last edit at or before normalised offset `p`.
    fn edit_before(&self, p: usize) -> Option<&Edit> {
        let k = self.edits.partition_point(|e| e.at <= p);
        k.checked_sub(1).map(|k| &self.edits[k])
    }

    /// Where the original character holding normalised byte `p` starts.
    fn start_of(&self, p: usize) -> usize {
        match self.edit_before(p) {
            None => p,
            Some(e) if p < e.at + e.norm_len => e.orig,
            Some(e) => e.orig + e.orig_len + (p - e.at - e.norm_len),
        }
    }

    /// Where the original character holding normalised byte `p` ends.
    fn end_of(&self, p: usize) -> usize {
        match self.edit_before(p) {
            Some(e) if p < e.at + e.norm_len => e.orig + e.orig_len,
            _ => self.start_of(p) + 1,
        }
    }
}

#[cfg(test)]
mod tests;
