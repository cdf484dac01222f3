//! Number-shaped detectors: IPv4, US SSN, payment cards and phone numbers.
//!
//! They share one trigger (a digit, `+` or `(` at a number start) and are tried
//! in that order; when none matches, the whole digit run (digits joined by single
//! ` -./` separators) is skipped, so no match ever starts inside a longer number.

use super::{digits, is_word};
use crate::kind::Kind;

type Found = Option<(Kind, usize, usize)>;

/// Tries every number detector at `i`; returns the match, if any, and where to
/// resume when there is none.
pub(super) fn at(t: &[u8], i: usize) -> (Found, usize) {
    if !number_start(t, i) || short_bare_number(t, i) {
        return (None, skip_run(t, i));
    }
    validators(t, i)
}

/// [`at`] without the [`short_bare_number`] shortcut (what the shortcut is
/// checked against).
#[cfg(test)]
pub(super) fn at_by_every_validator(t: &[u8], i: usize) -> (Found, usize) {
    if !number_start(t, i) {
        return (None, skip_run(t, i));
    }
    validators(t, i)
}

/// Whether `i` starts fewer than ten digits followed by none of the separators
/// the detectors read between groups. No detector matches there: an address, an
/// SSN, a grouped card and a phone number all need a separator after a short
/// first group, a bare card number has 13 digits or more, and a bare `00…`
/// phone number 10 or more. Most numbers in a body are such (`"created":
/// 1700000000`, token counts), and each would otherwise be tried five times.
fn short_bare_number(t: &[u8], i: usize) -> bool {
    let len = digits(t, i);
    len > 0 && len < 10 && !matches!(t.get(i + len), Some(b'.' | b'-' | b' ' | b'(' | b')'))
}

/// Every number detector at `i`, a number start.
fn validators(t: &[u8], i: usize) -> (Found, usize) {
    let b = t[i];
    let found = match b {
        b'+' => intl_phone(t, i, i + 1),
        b'(' => nanp(t, i, i),
        _ => ipv4(t, i)
            .map(|e| (Kind::IpAddress, i, e))
            .or_else(|| ssn(t, i).map(|e| (Kind::Ssn, i, e)))
            .or_else(|| card(t, i).map(|e| (Kind::Card, i, e)))
            .or_else(|| nanp(t, i, i))
            .or_else(|| {
                if t[i..].starts_with(b"00") {
                    intl_phone(t, i, i + 2)
                } else {
                    None
                }
            }),
    };
    let next = if found.is_some() || !b.is_ascii_digit() {
        i + 1
    } else {
        skip_run(t, i)
    };
    (found, next)
}

/// A number may start at `i`: the byte before is not part of a word or of a
/// longer number/identifier (`-`, `.`, `/`, `+`, `#`).
fn number_start(t: &[u8], i: usize) -> bool {
    i == 0 || {
        let p = t[i - 1];
        !(is_word(p)
            || matches!(
                p,
                b'-' | b'.' | b'/' | b'+' | b'#' | b'$' | b'%' | b'&' | b'='
            ))
    }
}

/// Whether a number may end at `e`: not followed by a word byte, nor by a
/// separator and another digit that would make it part of a longer number.
fn number_end(t: &[u8], e: usize) -> bool {
    match t.get(e) {
        None => true,
        Some(&b) if is_word(b) => false,
        Some(b'-' | b'.' | b'/') => !t.get(e + 1).is_some_and(u8::is_ascii_digit),
        Some(_) => true,
    }
}

/// The end of the digit run at `i` (digits and single separators between them).
fn skip_run(t: &[u8], i: usize) -> usize {
    let mut e = i + 1;
    while e < t.len() {
        if t[e].is_ascii_digit() || is_word(t[e]) {
            e += 1;
        } else if matches!(t[e], b' ' | b'-' | b'.' | b'/')
            && t.get(e + 1).is_some_and(u8::is_ascii_digit)
        {
            e += 2;
        } else {
            break;
        }
    }
    e
}

fn num(t: &[u8], i: usize, len: usize) -> u32 {
    t[i..i + len]
        .iter()
        .fold(0, |acc, &d| acc * 10 + u32::from(d - b'0'))
}

/// Dotted-quad IPv4: four parts 0–255 without leading zeros.
fn ipv4(t: &[u8], i: usize) -> Option<usize> {
    let mut p = i;
    for part in 0..4 {
        if part > 0 {
            if t.get(p) != Some(&b'.') {
                return None;
            }
            p += 1;
        }
        let len = digits(t, p);
        if len == 0 || len > 3 || (len > 1 && t[p] == b'0') || num(t, p, len) > 255 {
            return None;
        }
        p += len;
    }
    number_end(t, p).then_some(p)
}

/// `AAA-GG-SSSS` (dashes or spaces): area 001–899 except 666, group 01–99,
/// serial 0001–9999; two well-known advertising numbers excluded.
fn ssn(t: &[u8], i: usize) -> Option<usize> {
    if digits(t, i) != 3 {
        return None;
    }
    let sep = *t.get(i + 3)?;
    if !matches!(sep, b'-' | b' ') || digits(t, i + 4) != 2 || t.get(i + 6) != Some(&sep) {
        return None;
    }
    if digits(t, i + 7) != 4 {
        return None;
    }
    let e = i + 11;
    if !number_end(t, e) || (sep == b' ' && t.get(e) == Some(&b' ') && digits(t, e + 1) > 0) {
        return None;
    }
    let (area, group, serial) = (num(t, i, 3), num(t, i + 4, 2), num(t, i + 7, 4));
    let valid = area != 0
        && area != 666
        && area < 900
        && group != 0
        && serial != 0
        && !matches!((area, group, serial), (78, 5, 1120) | (219, 9, 9999));
    valid.then_some(e)
}

/// 13–19 digits, bare or grouped: between groups one to three separator bytes
/// (space, dash, dot, mixed freely: `4111 1111-1111.1111`, `4111 - 1111 …`;
/// with a dot, every group has three digits or more, so dotted addresses and
/// versions are not read as one number), Luhn valid, with a known issuer
/// prefix and a length that issuer uses.
fn card(t: &[u8], i: usize) -> Option<usize> {
    let mut ds = [0u8; 19];
    let mut n = 0;
    let mut p = i;
    let mut punctuated = false;
    let mut dotted = false;
    let mut shortest = usize::MAX;
    // Group ends where the digit count is a candidate, longest tried first.
    let mut ends: [(usize, usize); 8] = [(0, 0); 8];
    let mut groups = 0;
    loop {
        let len = digits(t, p);
        if len == 0 || groups == ends.len() {
            return None;
        }
        if n + len > 19 {
            // Two bare numbers side by side (`4111… 4000…`): the first stands
            // alone and is judged by itself; the scan finds the next one after it.
            if groups == 1 && (13..=19).contains(&n) {
                p = ends[0].0;
                break;
            }
            return None;
        }
        for k in 0..len {
            ds[n + k] = t[p + k] - b'0';
        }
        n += len;
        p += len;
        ends[groups] = (p, n);
        groups += 1;
        shortest = shortest.min(len);
        let gap = t[p..]
            .iter()
            .take(3)
            .take_while(|b| matches!(b, b' ' | b'-' | b'.'))
            .count();
        if gap == 0 || !t.get(p + gap).is_some_and(u8::is_ascii_digit) {
            break;
        }
        punctuated |= t[p..p + gap].iter().any(|&b| b != b' ');
        dotted |= t[p..p + gap].contains(&b'.');
        p += gap;
    }
    if dotted && shortest < 3 {
        return None;
    }
    if groups > 1 && punctuated && !number_end(t, p) {
        return None;
    }
    for &(e, len) in ends[..groups].iter().rev() {
        if (13..=19).contains(&len) && number_end(t, e) && issuer_ok(&ds[..len]) && luhn(&ds[..len])
        {
            return Some(e);
        }
    }
    None
}

fn luhn(ds: &[u8]) -> bool {
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &d)| {
            let d = u32::from(d);
            if k % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Known IIN ranges and the lengths their issuers use.
fn issuer_ok(ds: &[u8]) -> bool {
    let prefix = |k: usize| ds[..k].iter().fold(0u32, |a, &d| a * 10 + u32::from(d));
    let len = ds.len();
    let (p1, p2, p3, p4, p6) = (prefix(1), prefix(2), prefix(3), prefix(4), prefix(6));
    match p1 {
        4 => matches!(len, 13 | 16 | 19), // Visa
        5 => {
            (51..=55).contains(&p2) && len == 16
                || (p2 == 50 || (56..=58).contains(&p2)) && (12..=19).contains(&len)
        } // Mastercard, Maestro
        2 => (2221..=2720).contains(&p4) && len == 16, // Mastercard 2-series
        3 => {
            (p2 == 34 || p2 == 37) && len == 15 // Amex
                || (3528..=3589).contains(&p4) && (16..=19).contains(&len) // JCB
                || ((300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39) && (14..=19).contains(&len) // Diners
        }
        6 => {
            (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || (622_126..=622_925).contains(&p6))
                && (16..=19).contains(&len) // Discover
                || p2 == 62 && (16..=19).contains(&len) // UnionPay
                || (p2 == 63 || p2 == 67) && (12..=19).contains(&len) // Maestro
        }
        _ => false,
    }
}

/// `+CC …` or `00CC …` with 8–15 digits in all, grouped by single spaces, dashes,
/// dots, or a parenthesised area/trunk code (`+44 (0)20 7946 0958`).
fn intl_phone(t: &[u8], start: usize, i: usize) -> Found {
    if !t.get(i).is_some_and(|b| (b'1'..=b'9').contains(b)) {
        return None;
    }
    let mut p = i;
    let mut n = 0;
    let mut open = 0;
    loop {
        let len = digits(t, p);
        if len == 0 {
            return None;
        }
        n += len;
        p += len;
        if n > 15 {
            return None;
        }
        // Up to two separator bytes (e.g. ") " or " (") before the next group.
        let mut q = p;
        let mut seps = 0;
        while seps < 2 && matches!(t.get(q), Some(b' ' | b'-' | b'.' | b'(' | b')')) {
            match t[q] {
                b'(' => open += 1,
                b')' => open -= 1,
                _ => {}
            }
            q += 1;
            seps += 1;
        }
        if seps == 0 || !t.get(q).is_some_and(u8::is_ascii_digit) {
            break;
        }
        // A closing parenthesis may end the number: "+1 (415) 555-2671" continues.
        p = q;
    }
    let e = if open > 0 && t.get(p) == Some(&b')') {
        p + 1
    } else {
        p
    };
    ((8..=15).contains(&n) && number_end(t, e)).then_some((Kind::Phone, start, e))
}

/// NANP: `[1 ](NPA) NXX-XXXX`, `NPA-NXX-XXXX`, `NPA.NXX.XXXX`, `NPA NXX XXXX`;
/// NPA `[2-9][0-8]x`, NXX `[2-9]xx`.
fn nanp(t: &[u8], start: usize, i: usize) -> Found {
    let mut p = i;
    // Optional leading country code "1" and a separator.
    if t.get(p) == Some(&b'1') && matches!(t.get(p + 1), Some(b'-' | b' ' | b'.')) {
        p += 2;
    }
    let sep;
    if t.get(p) == Some(&b'(') {
        if digits(t, p + 1) != 3 || t.get(p + 4) != Some(&b')') {
            return None;
        }
        if !npa(t, p + 1) {
            return None;
        }
        p += 5;
        if matches!(t.get(p), Some(b' ' | b'-')) {
            p += 1;
        }
        if digits(t, p) != 3 {
            return None;
        }
        sep = *t.get(p + 3)?;
        if !matches!(sep, b'-' | b'.' | b' ') {
            return None;
        }
    } else {
        if digits(t, p) != 3 || !npa(t, p) {
            return None;
        }
        sep = *t.get(p + 3)?;
        if !matches!(sep, b'-' | b'.' | b' ') || digits(t, p + 4) != 3 || t.get(p + 7) != Some(&sep)
        {
            return None;
        }
        p += 4;
    }
    if !(b'2'..=b'9').contains(&t[p]) || t.get(p + 3) != Some(&sep) || digits(t, p + 4) != 4 {
        return None;
    }
    let e = p + 8;
    number_end(t, e).then_some((Kind::Phone, start, e))
}

fn npa(t: &[u8], p: usize) -> bool {
    (b'2'..=b'9').contains(&t[p]) && t[p + 1] != b'9'
}
