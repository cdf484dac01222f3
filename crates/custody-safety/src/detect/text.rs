//! E-mail addresses, IBANs and IPv6 addresses.

use super::{digits, is_word, word_end};
use crate::kind::Kind;
use std::net::Ipv6Addr;

type Found = Option<(Kind, usize, usize)>;

fn local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-' | b'\'')
}

/// Top-level "domains" that are really file extensions (`icon@2x.png`).
const NOT_TLDS: [&[u8]; 24] = [
    b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"ico", b"bmp", b"css", b"js", b"mjs", b"ts",
    b"tsx", b"jsx", b"json", b"txt", b"md", b"html", b"htm", b"xml", b"yaml", b"yml", b"py", b"rs",
];

/// `local@domain.tld` around the `@` at `i`: local part of letters, digits and
/// `._%+-'` (not starting or ending with a dot), a domain of two or more
/// labels, an alphabetic TLD of 2–24 letters that is not a file extension.
pub(super) fn email_at(t: &[u8], i: usize, floor: usize) -> Found {
    let mut s = i;
    while s > floor && i - s < 64 && local_char(t[s - 1]) {
        s -= 1;
    }
    while s < i && matches!(t[s], b'.' | b'-' | b'+' | b'\'') {
        s += 1;
    }
    if s == i || t[i - 1] == b'.' || (s > 0 && (t[s - 1] == b'@' || is_word(t[s - 1]))) {
        return None;
    }
    if t[s..i].windows(2).any(|w| w == b"..") {
        return None;
    }
    // Domain labels.
    let mut p = i + 1;
    let mut labels = 0;
    let mut last = p;
    loop {
        let len = t[p.min(t.len())..]
            .iter()
            .take(63)
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
            .count();
        if len == 0 || t[p] == b'-' || t[p + len - 1] == b'-' {
            break;
        }
        labels += 1;
        last = p;
        p += len;
        if t.get(p) == Some(&b'.') && t.get(p + 1).is_some_and(u8::is_ascii_alphanumeric) {
            p += 1;
        } else {
            break;
        }
    }
    let tld = &t[last..p];
    let ok = labels >= 2
        && (2..=24).contains(&tld.len())
        && tld.iter().all(u8::is_ascii_alphabetic)
        && !NOT_TLDS.iter().any(|x| tld.eq_ignore_ascii_case(x))
        && word_end(t, p)
        && t.get(p) != Some(&b'@');
    ok.then_some((Kind::Email, s, p))
}

/// IBAN lengths by country (ISO 13616 registry, common countries).
const IBAN_LENGTHS: [(&[u8; 2], usize); 75] = [
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
    (b"LY", 25),
];

/// `CCkk BBAN…` at `i` (a word start): a known country, its exact length,
/// optionally grouped by single spaces, and ISO 7064 mod-97 = 1.
pub(super) fn iban_at(t: &[u8], i: usize) -> Found {
    if t.len() < i + 15 || !t[i + 1].is_ascii_uppercase() || digits(t, i + 2) < 2 {
        return None;
    }
    let cc = [t[i], t[i + 1]];
    let len = IBAN_LENGTHS.iter().find(|(c, _)| **c == cc)?.1;
    let mut chars = [0u8; 34];
    chars[..4].copy_from_slice(&t[i..i + 4]);
    let mut n = 4;
    let mut p = i + 4;
    while n < len {
        match t.get(p) {
            Some(&b) if b.is_ascii_alphanumeric() => {
                chars[n] = b.to_ascii_uppercase();
                n += 1;
                p += 1;
            }
            Some(b' ') if t.get(p + 1).is_some_and(u8::is_ascii_alphanumeric) => p += 1,
            _ => return None,
        }
    }
    if !word_end(t, p) {
        return None;
    }
    // Move the first four characters to the end, letters become 10..35.
    let mut rem = 0u32;
    for &c in chars[4..len].iter().chain(&chars[..4]) {
        rem = match c {
            b'0'..=b'9' => (rem * 10 + u32::from(c - b'0')) % 97,
            _ => (rem * 100 + u32::from(c - b'A' + 10)) % 97,
        };
    }
    (rem == 1).then_some((Kind::Iban, i, p))
}

/// An IPv6 address around the `:` at `i`: the longest run of hex digits,
/// colons (and dots, for an embedded IPv4) that parses as an address, with at
/// least three groups or one group of three or more hex digits.
#[inline]
pub(super) fn ipv6_at(t: &[u8], i: usize, floor: usize) -> Found {
    // A group has at most four hex digits, so a colon in an address has another
    // within five bytes on one side (`::ffff:1.2.3.4` included). Most colons in a
    // body have none (`"created":1700000000`) and are turned away here, inline,
    // without a call.
    let colon = |b: &u8| *b == b':';
    if t[i + 1..(i + 6).min(t.len())].iter().any(colon)
        || t[i.saturating_sub(5)..i].iter().any(colon)
    {
        ipv6_around(t, i, floor)
    } else {
        None
    }
}

/// [`ipv6_at`] past its first check.
#[inline(never)]
pub(super) fn ipv6_around(t: &[u8], i: usize, floor: usize) -> Found {
    let hexc = |b: u8| b.is_ascii_hexdigit() || b == b':';
    let mut s = i;
    while s > floor && i - s < 40 && hexc(t[s - 1]) {
        s -= 1;
    }
    if s > 0 && (is_word(t[s - 1]) || t[s - 1] == b'.') {
        return None;
    }
    let mut e = i;
    while e < t.len() && e - s < 46 && (hexc(t[e]) || t[e] == b'.') {
        e += 1;
    }
    // Trailing punctuation: a sentence's full stop, a port-less colon.
    while e > i + 1 && (t[e - 1] == b'.' || (t[e - 1] == b':' && t[e - 2] != b':')) {
        e -= 1;
    }
    if !word_end(t, e) {
        return None;
    }
    // Every `:` of a JSON body (`"role":"user"`) lands here: turn those away
    // before any text work. What the checks below accept is at least five bytes
    // (three groups and two colons, or a group of three and `::`).
    let token = &t[s..e];
    if token.len() < 5 || token.iter().filter(|&&b| b == b':').count() < 2 {
        return None;
    }
    let token = std::str::from_utf8(token).ok()?;
    let groups = token.split(':').filter(|g| !g.is_empty());
    let (count, longest) = groups.fold((0, 0), |(c, l), g| (c + 1, l.max(g.len())));
    if count < 3 && longest < 3 {
        return None;
    }
    token.parse::<Ipv6Addr>().ok()?;
    Some((Kind::IpAddress, s, e))
}
