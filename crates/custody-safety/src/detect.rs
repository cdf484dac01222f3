//! The compiled detector set and the single-pass scanner over one string.
//!
//! The built-in detectors are hand-written: one pass over the bytes with a
//! 256-entry class table picks out *trigger* bytes (digits, `+`, `(`, upper-case
//! letters at a word start, `@`, `-`, `_`, `:`, `=`), and only there does a
//! validator look around. Words made only of lower-case letters and spaces are
//! skipped eight bytes at a time. Custom regexes and dictionaries run after the
//! built-ins; overlapping findings are resolved left-most, then longest.

mod custom;
mod numeric;
mod secret;
mod text;

use crate::error::SafetyError;
use crate::kind::Kind;
use std::sync::Arc;

pub use custom::CustomDetector;
pub(crate) use secret::{secret_name, secret_value};

/// One match inside one string: its kind and byte range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// What was found.
    pub kind: Kind,
    /// Start byte offset.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
}

/// The compiled detectors: the built-ins (each can be disabled) plus custom
/// regexes and dictionaries. Immutable, `Send + Sync`; share it in an `Arc`.
#[derive(Clone, Debug)]
pub struct Detectors {
    /// Bit `i` set: `Kind::BUILTIN[i]` is reported.
    enabled: u16,
    custom: Vec<custom::Compiled>,
}

const ALL: u16 = (1 << Kind::BUILTIN.len()) - 1;

/// The bit of a built-in kind (its index in `Kind::BUILTIN`); 0 for custom.
fn bit(kind: &Kind) -> u16 {
    1 << match kind {
        Kind::Email => 0,
        Kind::Phone => 1,
        Kind::Ssn => 2,
        Kind::Card => 3,
        Kind::Iban => 4,
        Kind::IpAddress => 5,
        Kind::AwsAccessKey => 6,
        Kind::ApiKey => 7,
        Kind::GithubToken => 8,
        Kind::SlackToken => 9,
        Kind::Jwt => 10,
        Kind::PrivateKey => 11,
        Kind::Secret => 12,
        Kind::Custom(_) => return 0,
    }
}

impl Default for Detectors {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Detectors {
    /// Every built-in detector, no custom ones.
    pub fn builtin() -> Self {
        Detectors {
            enabled: ALL,
            custom: Vec::new(),
        }
    }

    /// The built-ins plus the given custom detectors. Names must be upper-case
    /// `[A-Z0-9_]`, unique, and not a built-in kind's name.
    pub fn with_custom(custom: &[CustomDetector]) -> Result<Self, SafetyError> {
        let mut compiled = Vec::with_capacity(custom.len());
        for c in custom {
            if compiled
                .iter()
                .any(|d: &custom::Compiled| **d.name() == *c.name)
            {
                return Err(SafetyError::CustomName {
                    name: c.name.clone(),
                    reason: "defined twice",
                });
            }
            compiled.push(custom::Compiled::new(c)?);
        }
        Ok(Detectors {
            enabled: ALL,
            custom: compiled,
        })
    }

    /// The same detectors with the built-in `kind` turned off (its values are
    /// still recognised, so they are not mistaken for another kind, but not
    /// reported). Custom kinds are not affected.
    pub fn without(mut self, kind: &Kind) -> Self {
        self.enabled &= !bit(kind);
        self
    }

    /// Whether `kind` is reported.
    pub fn is_enabled(&self, kind: &Kind) -> bool {
        match kind {
            Kind::Custom(name) => self.custom.iter().any(|c| **c.name() == **name),
            k => self.enabled & bit(k) != 0,
        }
    }

    /// Every match in `text`, sorted by start, non-overlapping.
    pub fn find(&self, text: &[u8]) -> Vec<Hit> {
        let mut hits = Vec::new();
        self.find_into(text, &mut hits);
        hits
    }

    /// Appends every match in `text` to `hits` (sorted, non-overlapping). The
    /// detectors read the normalised form of `text` ([`crate::normalize`]); the
    /// ranges are mapped back to `text`.
    pub(crate) fn find_into(&self, text: &[u8], hits: &mut Vec<Hit>) {
        let Some(normal) = crate::normalize::normalize(text) else {
            self.find_raw_into(text, hits);
            return;
        };
        let first = hits.len();
        self.find_raw_into(&normal.text, hits);
        let mapped = hits.split_off(first);
        let mut end = 0;
        for h in mapped {
            let (start, stop) = normal.original(h.start, h.end);
            // Two matches in one character's expansion: keep the first.
            if start < end || start >= stop {
                continue;
            }
            end = stop;
            hits.push(Hit {
                kind: h.kind,
                start,
                end: stop,
            });
        }
    }

    /// [`Detectors::find_into`] on text as it is (already normalised).
    fn find_raw_into(&self, text: &[u8], hits: &mut Vec<Hit>) {
        let first = hits.len();
        self.builtin_into(text, &mut |h| hits.push(h));
        if self.custom.is_empty() {
            return;
        }
        for c in &self.custom {
            c.find_into(text, hits);
        }
        let mut all = hits.split_off(first);
        all.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut end = 0;
        for h in all {
            if h.start >= end || hits.len() == first {
                end = h.end;
                hits.push(h);
            }
        }
    }

    /// Calls `emit` with every match in `text`, in order (sorted, non-overlapping),
    /// without collecting them first when there are no custom detectors and the
    /// text is ASCII (nothing to normalise).
    pub(crate) fn for_each_hit(&self, text: &[u8], mut emit: impl FnMut(Hit)) {
        if self.custom.is_empty() && text.is_ascii() {
            self.builtin_into(text, &mut emit);
        } else {
            self.find(text).into_iter().for_each(emit);
        }
    }

    fn builtin_into(&self, t: &[u8], emit: &mut impl FnMut(Hit)) {
        let n = t.len();
        let mut i = 0;
        let mut last_end = 0;
        while i < n {
            // Find the next trigger: eight bytes at a time, looking up the class
            // table only for bytes that are neither lower-case, non-ASCII nor
            // spaces.
            if i + 8 <= n {
                let mut w = [0u8; 8];
                w.copy_from_slice(&t[i..i + 8]);
                let mut candidates = interesting(u64::from_le_bytes(w));
                let mut at = None;
                while candidates != 0 {
                    let j = i + (candidates.trailing_zeros() / 8) as usize;
                    if CLASS[t[j] as usize] != 0 {
                        at = Some(j);
                        break;
                    }
                    candidates &= candidates - 1;
                }
                match at {
                    Some(j) => i = j,
                    None => {
                        i += 8;
                        continue;
                    }
                }
            } else if CLASS[t[i] as usize] == 0 {
                i += 1;
                continue;
            }
            let class = CLASS[t[i] as usize];
            let (found, next) = match class {
                NUM => numeric::at(t, i),
                UPPER => (self::upper_at(t, i), i + 1),
                AT => (text::email_at(t, i, last_end), i + 1),
                DASH => (secret::dash_at(t, i, last_end), i + 1),
                UNDERSCORE => (secret::underscore_at(t, i, last_end), i + 1),
                _ => (assign_or_ipv6(t, i, last_end), i + 1),
            };
            match found {
                Some((kind, start, end)) if start >= last_end => {
                    if self.enabled & bit(&kind) != 0 {
                        emit(Hit { kind, start, end });
                    }
                    last_end = end;
                    i = end.max(i + 1);
                }
                _ => i = next,
            }
        }
    }
}

fn upper_at(t: &[u8], i: usize) -> Option<(Kind, usize, usize)> {
    if t[i] == b'J' && i >= 2 && &t[i - 2..i] == b"ey" {
        return secret::jwt_at(t, i - 2);
    }
    if !word_start(t, i) {
        return None;
    }
    if t[i] == b'A'
        && let Some(found) = secret::aws_at(t, i)
    {
        return Some(found);
    }
    text::iban_at(t, i)
}

fn assign_or_ipv6(t: &[u8], i: usize, last_end: usize) -> Option<(Kind, usize, usize)> {
    if t[i] == b':'
        && let Some(found) = text::ipv6_at(t, i, last_end)
    {
        return Some(found);
    }
    secret::assignment_at(t, i)
}

const NUM: u8 = 1;
const UPPER: u8 = 2;
const AT: u8 = 3;
const DASH: u8 = 4;
const UNDERSCORE: u8 = 5;
const ASSIGN: u8 = 6;

static CLASS: [u8; 256] = {
    let mut c = [0u8; 256];
    let mut b = b'0';
    while b <= b'9' {
        c[b as usize] = NUM;
        b += 1;
    }
    let mut b = b'A';
    while b <= b'Z' {
        c[b as usize] = UPPER;
        b += 1;
    }
    c[b'+' as usize] = NUM;
    c[b'(' as usize] = NUM;
    c[b'@' as usize] = AT;
    c[b'-' as usize] = DASH;
    c[b'_' as usize] = UNDERSCORE;
    c[b':' as usize] = ASSIGN;
    c[b'=' as usize] = ASSIGN;
    c
};

const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HI: u64 = 0x8080_8080_8080_8080;
const SPACES: u64 = 0x2020_2020_2020_2020;

/// The high bit of each byte of `w` that may be a trigger: bytes `< 0x60`
/// other than space (lower-case letters, `` ` ``, `{|}~`, DEL, non-ASCII and
/// spaces never are).
#[inline]
fn interesting(w: u64) -> u64 {
    let high = (((w & LO7) + SPACES) | w) & HI;
    let x = w ^ SPACES;
    let nonspace = (((x & LO7) + LO7) | x) & HI;
    !high & nonspace & HI
}

/// A byte that continues a word: ASCII letters, digits and `_`.
#[inline]
pub(crate) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether `i` starts a word (the byte before is not a word byte).
#[inline]
pub(crate) fn word_start(t: &[u8], i: usize) -> bool {
    i == 0 || !is_word(t[i - 1])
}

/// Whether `i` ends a word (the byte at `i` is not a word byte).
#[inline]
pub(crate) fn word_end(t: &[u8], i: usize) -> bool {
    i >= t.len() || !is_word(t[i])
}

/// The number of ASCII digits at `t[i..]`.
#[inline]
pub(crate) fn digits(t: &[u8], i: usize) -> usize {
    t.get(i..)
        .map_or(0, |s| s.iter().take_while(|b| b.is_ascii_digit()).count())
}

/// The custom detector kinds, in configuration order.
impl Detectors {
    /// The names of the custom detectors.
    pub fn custom_kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        self.custom
            .iter()
            .map(|c| Kind::Custom(Arc::clone(c.name())))
    }
}

#[cfg(test)]
mod tests;
