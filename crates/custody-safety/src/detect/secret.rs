//! Credentials: AWS access key ids, `sk-` API keys, GitHub and Slack tokens,
//! JWTs, PEM private keys and secret-looking assignments (`api_key=…`).

use super::{is_word, word_end, word_start};
use crate::kind::Kind;

type Found = Option<(Kind, usize, usize)>;

/// Bytes of a base64url / token alphabet.
fn token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn run(t: &[u8], p: usize, f: impl Fn(u8) -> bool) -> usize {
    t.get(p..)
        .map_or(0, |s| s.iter().take(4096).take_while(|&&b| f(b)).count())
}

fn has_digit_and_letter(s: &[u8]) -> bool {
    s.iter().any(u8::is_ascii_digit) && s.iter().any(u8::is_ascii_alphabetic)
}

/// At a `-`: `sk-…` (OpenAI, Anthropic `sk-ant-…`), `xox?-…` (Slack) or
/// `-----BEGIN … PRIVATE KEY-----`.
pub(super) fn dash_at(t: &[u8], i: usize, floor: usize) -> Found {
    if i >= 2 && i - 2 >= floor && &t[i - 2..i] == b"sk" && word_start(t, i - 2) {
        return api_key(t, i - 2);
    }
    if i >= 4
        && i - 4 >= floor
        && &t[i - 4..i - 1] == b"xox"
        && matches!(t[i - 1], b'a' | b'b' | b'p' | b'r' | b's' | b'e')
        && word_start(t, i - 4)
    {
        return slack(t, i - 4);
    }
    if t[i..].starts_with(b"-----BEGIN ") && (i == 0 || t[i - 1] != b'-') {
        return private_key(t, i);
    }
    None
}

fn api_key(t: &[u8], s: usize) -> Found {
    let len = run(t, s + 3, token_char);
    let e = s + 3 + len;
    let body = &t[s + 3..e];
    (len >= 20 && has_digit_and_letter(body) && word_end(t, e)).then_some((Kind::ApiKey, s, e))
}

fn slack(t: &[u8], s: usize) -> Found {
    let len = run(t, s + 5, |b| b.is_ascii_alphanumeric() || b == b'-');
    let e = s + 5 + len;
    (len >= 10 && t[s + 5..e].iter().any(u8::is_ascii_digit) && word_end(t, e)).then_some((
        Kind::SlackToken,
        s,
        e,
    ))
}

fn private_key(t: &[u8], s: usize) -> Found {
    let label_start = s + 11;
    let label_len = t[label_start..]
        .iter()
        .take(64)
        .take_while(|&&b| b.is_ascii_uppercase() || b == b' ')
        .count();
    let label = &t[label_start..label_start + label_len];
    if !(label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK")) {
        return None;
    }
    let after = label_start + label_len;
    if !t[after..].starts_with(b"-----") {
        return None;
    }
    let body = after + 5;
    let window = &t[body..t.len().min(body + 64 * 1024)];
    if let Some(k) = memchr::memmem::find(window, b"-----END ") {
        let end_label = body + k + 9;
        if let Some(m) = memchr::memmem::find(&t[end_label..t.len().min(end_label + 80)], b"-----")
        {
            return Some((Kind::PrivateKey, s, end_label + m + 5));
        }
    }
    // No END line (cut off): the header and the base64 body that follows.
    let len = run(t, body, |b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'+' | b'/' | b'=' | b'\n' | b'\r' | b' ' | b':' | b',' | b'-'
            )
    });
    Some((Kind::PrivateKey, s, body + len))
}

/// At a `_`: GitHub `ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_` + 36 or more
/// alphanumerics, or `github_pat_` + 22 or more.
pub(super) fn underscore_at(t: &[u8], i: usize, floor: usize) -> Found {
    if i >= 3
        && i - 3 >= floor
        && &t[i - 3..i - 1] == b"gh"
        && matches!(t[i - 1], b'p' | b'o' | b'u' | b's' | b'r')
        && word_start(t, i - 3)
    {
        let len = run(t, i + 1, |b| b.is_ascii_alphanumeric());
        let e = i + 1 + len;
        return ((36..=255).contains(&len) && word_end(t, e)).then_some((
            Kind::GithubToken,
            i - 3,
            e,
        ));
    }
    if i >= 6
        && i - 6 >= floor
        && &t[i - 6..i] == b"github"
        && t[i..].starts_with(b"_pat_")
        && word_start(t, i - 6)
    {
        let len = run(t, i + 5, |b| b.is_ascii_alphanumeric() || b == b'_');
        let e = i + 5 + len;
        return (len >= 22 && word_end(t, e)).then_some((Kind::GithubToken, i - 6, e));
    }
    None
}

const AWS_PREFIXES: [&[u8; 4]; 11] = [
    b"AKIA", b"ASIA", b"ABIA", b"ACCA", b"AGPA", b"AIDA", b"AROA", b"AIPA", b"ANPA", b"ANVA",
    b"APKA",
];

/// `AKIA…` (and the other AWS unique-id prefixes) + 16 upper-case
/// alphanumerics, a whole word.
pub(super) fn aws_at(t: &[u8], i: usize) -> Found {
    let prefix = t.get(i..i + 4)?;
    if !AWS_PREFIXES.iter().any(|p| p[..] == *prefix) {
        return None;
    }
    let len = run(t, i + 4, |b| b.is_ascii_uppercase() || b.is_ascii_digit());
    (len == 16 && word_end(t, i + 20)).then_some((Kind::AwsAccessKey, i, i + 20))
}

/// `eyJ…`.`eyJ…`.`sig` at `s`: base64url header and payload of 10 or more
/// characters each (both JSON objects, hence `eyJ`), an optional signature.
pub(super) fn jwt_at(t: &[u8], s: usize) -> Found {
    if !word_start(t, s) {
        return None;
    }
    let h = run(t, s, token_char);
    let p0 = s + h + 1;
    if h < 10 || t.get(s + h) != Some(&b'.') || !t[p0..].starts_with(b"eyJ") {
        return None;
    }
    let p = run(t, p0, token_char);
    let mut e = p0 + p;
    if p < 10 {
        return None;
    }
    if t.get(e) == Some(&b'.') {
        e += 1 + run(t, e + 1, token_char);
    }
    word_end(t, e).then_some((Kind::Jwt, s, e))
}

/// Key names whose value is a secret (matched as a suffix of the key, at the
/// start or after `_`, `-` or `.`, case-insensitively).
pub(super) const SECRET_NAMES: [&[u8]; 14] = [
    b"api_key",
    b"apikey",
    b"api-key",
    b"secret",
    b"secret_key",
    b"client_secret",
    b"token",
    b"password",
    b"passwd",
    b"pwd",
    b"private_key",
    b"access_key",
    b"credentials",
    b"auth",
];

/// For each byte, the [`SECRET_NAMES`] ending in it (bit `n`: name `n`; the names
/// are lower-case): a key that ends in any other byte names no secret. Every `:`
/// and `=` in a body asks [`secret_name`] about the word before it; most such
/// words (`"role":`, `"finish_reason":`) are rejected here by one table lookup,
/// and the others are compared only with the names that end as they do (in a
/// response's usage, `"prompt_tokens":` with `credentials` alone).
static NAMES_ENDING: [u16; 256] = {
    let mut ends = [0u16; 256];
    let mut n = 0;
    while n < SECRET_NAMES.len() {
        let name = SECRET_NAMES[n];
        ends[name[name.len() - 1] as usize] |= 1 << n;
        n += 1;
    }
    ends
};

/// The names in `set` (a [`NAMES_ENDING`] entry).
fn names_in(mut set: u16) -> impl Iterator<Item = &'static [u8]> {
    std::iter::from_fn(move || {
        if set == 0 {
            return None;
        }
        let n = set.trailing_zeros() as usize;
        set &= set - 1;
        Some(SECRET_NAMES[n])
    })
}

/// Whether a key (of an assignment or a JSON member) names a secret.
pub(crate) fn secret_name(key: &[u8]) -> bool {
    let Some(&last) = key.last() else {
        return false;
    };
    let names = NAMES_ENDING[last.to_ascii_lowercase() as usize];
    if key.len() > 64 || names == 0 {
        return false;
    }
    names_in(names).any(|name| {
        key.len() >= name.len() && {
            let at = key.len() - name.len();
            key[at..].eq_ignore_ascii_case(name)
                && (at == 0 || matches!(key[at - 1], b'_' | b'-' | b'.'))
        }
    })
}

/// Whether a value looks like a real secret rather than a placeholder: 8–512
/// bytes, no whitespace, at least two of lower / upper / digit / symbol, and
/// no placeholder marker (`your`, `example`, `xxxx`, `***`, `${`, `<`, …).
pub(crate) fn secret_value(v: &[u8]) -> bool {
    if !(8..=512).contains(&v.len()) || v.iter().any(|b| b.is_ascii_whitespace()) {
        return false;
    }
    // Template references: `${X}`, `<x>`, `{{x}}`, `%(x)s`, `%X%`, `***`.
    if matches!(v[0], b'$' | b'<' | b'{' | b'*' | b'[' | b'(')
        || v.starts_with(b"%(")
        || v.starts_with(b"%{")
        || (v[0] == b'%' && v[v.len() - 1] == b'%')
    {
        return false;
    }
    let classes = [
        v.iter().any(u8::is_ascii_lowercase),
        v.iter().any(u8::is_ascii_uppercase),
        v.iter().any(u8::is_ascii_digit),
        v.iter().any(|b| !b.is_ascii_alphanumeric()),
    ];
    if classes.iter().filter(|&&c| c).count() < 2 {
        return false;
    }
    const PLACEHOLDERS: [&[u8]; 9] = [
        b"your",
        b"example",
        b"xxxx",
        b"***",
        b"changeme",
        b"placeholder",
        b"redacted",
        b"...",
        b"process.env",
    ];
    !PLACEHOLDERS
        .iter()
        .any(|p| v.windows(p.len()).any(|w| w.eq_ignore_ascii_case(p)))
}

/// Whether the key ending at `end` in `t` names a secret: [`secret_name`] of the
/// key (the word bytes, `-` and `.` before `end`), decided from its last bytes
/// alone. A name matches as a suffix, so only the bytes it covers and the one
/// before it matter: an `_`, or any byte that is not a word byte (`-`, `.`, a
/// quote, or the start of the text), lets it count; a letter or digit makes it
/// part of a longer word. Most keys are turned away by their last byte.
pub(super) fn key_names_secret(t: &[u8], end: usize) -> bool {
    let Some(&last) = end.checked_sub(1).and_then(|i| t.get(i)) else {
        return false;
    };
    let names = NAMES_ENDING[last.to_ascii_lowercase() as usize];
    if names == 0 {
        return false;
    }
    names_in(names).any(|name| {
        let len = name.len();
        end >= len
            && t[end - len..end].eq_ignore_ascii_case(name)
            && (end == len || {
                let before = t[end - len - 1];
                before == b'_' || !is_word(before)
            })
    })
}

/// A specific credential starting at `p` (used inside assignments).
fn specific_at(t: &[u8], p: usize) -> Found {
    match t.get(p..p + 3)? {
        b"sk-" => api_key(t, p),
        b"xox" if t.get(p + 4) == Some(&b'-') => slack(t, p),
        b"eyJ" => jwt_at(t, p),
        [b'g', b'h', _] if t.get(p + 3) == Some(&b'_') => underscore_at(t, p + 3, p),
        b"git" => underscore_at(t, p + 6, p),
        [b'A', ..] => aws_at(t, p),
        _ => None,
    }
}

/// At `=` or `:` after a secret-naming key (`API_KEY=…`, `"password": "…"`,
/// `token: …`): the value (quoted or bare) if it looks like a secret, as a
/// specific kind when it is one.
pub(super) fn assignment_at(t: &[u8], i: usize) -> Found {
    if t.get(i + 1) == Some(&b'=')
        || (i > 0 && matches!(t[i - 1], b'=' | b'!' | b'<' | b'>' | b':'))
    {
        return None;
    }
    // The key: optional closing quote and spaces, then a name.
    let mut k = i;
    while k > 0 && i - k < 3 && t[k - 1] == b' ' {
        k -= 1;
    }
    if k > 0 && matches!(t[k - 1], b'"' | b'\'') {
        k -= 1;
    }
    if !key_names_secret(t, k) {
        return None;
    }
    // The value.
    let mut v = i + 1;
    while v < t.len() && v - i < 4 && t[v] == b' ' {
        v += 1;
    }
    let quote = match t.get(v) {
        Some(&q @ (b'"' | b'\'')) => {
            v += 1;
            Some(q)
        }
        _ => None,
    };
    if let Some(found) = specific_at(t, v) {
        return Some(found);
    }
    let len = match quote {
        Some(q) => run(t, v, |b| b != q && b != b'\n' && b != b'\\'),
        None => run(t, v, |b| {
            !b.is_ascii_whitespace()
                && !matches!(
                    b,
                    b',' | b';' | b'"' | b'\'' | b'&' | b')' | b'}' | b']' | b'<' | b'>'
                )
        }),
    };
    let e = v + len;
    secret_value(&t[v..e]).then_some((Kind::Secret, v, e))
}
