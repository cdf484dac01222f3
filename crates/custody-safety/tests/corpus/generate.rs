//! Deterministic generator of the labelled corpus: synthetic values of every
//! built-in kind in many formats and contexts, and hard negatives.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

#[path = "negatives.rs"]
mod negatives;

pub(crate) use negatives::negative;

/// One labelled sample: text, the values it holds (kind name, exact text), and
/// whether it is sent as a JSON chat body.
pub(crate) struct Sample {
    pub(crate) text: String,
    pub(crate) labels: Vec<(&'static str, String)>,
    pub(crate) json: bool,
    pub(crate) negative: bool,
}

/// splitmix64.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    pub(crate) fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    pub(crate) fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
    pub(crate) fn chars(&mut self, n: usize, alphabet: &[u8]) -> String {
        (0..n).map(|_| char::from(*self.pick(alphabet))).collect()
    }
}

pub(crate) const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
pub(crate) const HEX: &[u8] = b"0123456789abcdef";

pub(crate) const FIRST: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "oscar", "peggy", "trent", "victor", "walter", "zoë",
];
pub(crate) const LAST: &[&str] = &[
    "smith", "jones", "garcia", "müller", "nguyen", "okafor", "rossi", "tanaka", "kowalski",
    "dubois", "silva", "o'neil",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.co.uk",
    "corp.example.io",
    "uni-example.edu",
    "example.org",
    "sub.dept.example.net",
    "example.de",
    "example.fr",
    "health.example.care",
    "x.io",
];

pub(crate) fn ascii(s: &&str) -> String {
    s.chars().filter(char::is_ascii_alphanumeric).collect()
}

pub(crate) fn email(r: &mut Rng) -> String {
    let (f, l) = (ascii(r.pick(FIRST)), ascii(r.pick(LAST)));
    let local = match r.below(6) {
        0 => format!("{f}.{l}"),
        1 => format!("{f}_{l}{}", r.below(100)),
        2 => format!("{}{l}", &f[..1]),
        3 => format!("{f}+{}", r.pick(&["news", "billing", "x1"])),
        4 => format!("{}.{}", f.to_uppercase(), l),
        _ => format!("{f}-{l}.{}", r.below(10)),
    };
    format!("{local}@{}", r.pick(DOMAINS))
}

fn nanp_parts(r: &mut Rng) -> (String, String, String) {
    let npa = format!("{}{}{}", r.range(2, 9), r.range(0, 8), r.below(10));
    let nxx = format!("{}{}", r.range(2, 9), r.digits(2));
    (npa, nxx, r.digits(4))
}

pub(crate) fn phone(r: &mut Rng) -> String {
    let (a, b, c) = nanp_parts(r);
    match r.below(14) {
        0 => format!("({a}) {b}-{c}"),
        1 => format!("{a}-{b}-{c}"),
        2 => format!("{a}.{b}.{c}"),
        3 => format!("{a} {b} {c}"),
        4 => format!("+1 {a} {b} {c}"),
        5 => format!("+1{a}{b}{c}"),
        6 => format!("1-{a}-{b}-{c}"),
        7 => format!("+1 ({a}) {b}-{c}"),
        8 => format!("+44 20 {} {}", r.digits(4), r.digits(4)),
        9 => format!("+44 (0){} {} {}", r.range(20, 29), r.digits(4), r.digits(4)),
        10 => format!("+49 {} {}", r.range(30, 89), r.digits(7)),
        11 => format!(
            "+33 {} {} {} {} {}",
            r.range(1, 9),
            r.digits(2),
            r.digits(2),
            r.digits(2),
            r.digits(2)
        ),
        12 => format!("+81 {}-{}-{}", r.range(3, 9), r.digits(4), r.digits(4)),
        _ => format!(
            "00{} {} {}",
            r.pick(&["44", "49", "61", "91", "34"]),
            r.digits(3),
            r.digits(6)
        ),
    }
}

pub(crate) fn ssn(r: &mut Rng) -> String {
    let mut area = r.range(1, 899);
    if area == 666 {
        area = 667;
    }
    let sep = if r.below(5) == 0 { " " } else { "-" };
    format!(
        "{area:03}{sep}{:02}{sep}{:04}",
        r.range(1, 99),
        r.range(1, 9999)
    )
}

fn luhn_digit(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &d)| {
            let d = u32::from(d);
            if k % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// A card number's digits; `valid` false gives a wrong check digit.
pub(crate) fn card_digits(r: &mut Rng, valid: bool) -> Vec<u8> {
    let (prefix, len) = *r.pick(&[
        ("4", 16),
        ("4", 16),
        ("4", 13),
        ("51", 16),
        ("55", 16),
        ("2221", 16),
        ("2720", 16),
        ("34", 15),
        ("37", 15),
        ("6011", 16),
        ("65", 16),
        ("3530", 16),
        ("36", 14),
        ("62", 16),
    ]);
    let mut ds: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
    while ds.len() < len - 1 {
        ds.push(r.below(10) as u8);
    }
    let check = luhn_digit(&ds);
    ds.push(if valid {
        check
    } else {
        (check + 1 + r.below(9) as u8) % 10
    });
    ds
}

pub(crate) fn format_card(r: &mut Rng, ds: &[u8]) -> String {
    let s: String = ds.iter().map(|d| char::from(b'0' + d)).collect();
    match (r.below(4), ds.len()) {
        (0, _) => s,
        (_, 15) => {
            let sep = if r.below(2) == 0 { " " } else { "-" };
            format!("{}{sep}{}{sep}{}", &s[..4], &s[4..10], &s[10..])
        }
        (k, _) => {
            let sep = if k == 1 { "-" } else { " " };
            let groups: Vec<&str> = s
                .as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap_or(""))
                .collect();
            groups.join(sep)
        }
    }
}

pub(crate) fn card(r: &mut Rng) -> String {
    let ds = card_digits(r, true);
    format_card(r, &ds)
}

fn mod97(s: &str) -> u32 {
    let mut rem = 0u32;
    for c in s.bytes() {
        rem = if c.is_ascii_digit() {
            (rem * 10 + u32::from(c - b'0')) % 97
        } else {
            (rem * 100 + u32::from(c - b'A' + 10)) % 97
        };
    }
    rem
}

pub(crate) fn iban(r: &mut Rng, valid: bool) -> String {
    let (cc, len, letters) = *r.pick(&[
        ("DE", 22, 0),
        ("GB", 22, 4),
        ("FR", 27, 0),
        ("ES", 24, 0),
        ("IT", 27, 1),
        ("NL", 18, 4),
        ("BE", 16, 0),
        ("CH", 21, 0),
        ("AT", 20, 0),
        ("PL", 28, 0),
        ("SE", 24, 0),
        ("IE", 22, 4),
        ("NO", 15, 0),
        ("PT", 25, 0),
        ("DK", 18, 0),
    ]);
    let bank = r.chars(letters, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    let bban = format!("{bank}{}", r.digits(len - 4 - letters));
    let check = 98 - mod97(&format!("{bban}{cc}00"));
    let check = if valid {
        check
    } else {
        (check + 1 + r.below(90) as u32) % 97 + 2
    };
    let compact = format!("{cc}{check:02}{bban}");
    if r.below(2) == 0 {
        compact
    } else {
        let g: Vec<String> = compact
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        g.join(" ")
    }
}

pub(crate) fn ip(r: &mut Rng) -> String {
    if r.below(3) == 0 {
        let segs: Vec<u16> = (0..8)
            .map(|_| {
                if r.below(3) == 0 {
                    0
                } else {
                    r.below(0x10000) as u16
                }
            })
            .collect();
        let a = Ipv6Addr::new(
            segs[0] | 0x2000,
            segs[1],
            segs[2],
            segs[3],
            segs[4],
            segs[5],
            segs[6],
            segs[7],
        );
        a.to_string()
    } else {
        Ipv4Addr::new(
            r.range(1, 254) as u8,
            r.below(256) as u8,
            r.below(256) as u8,
            r.range(1, 254) as u8,
        )
        .to_string()
    }
}

pub(crate) fn aws(r: &mut Rng) -> String {
    format!(
        "{}{}",
        r.pick(&["AKIA", "ASIA"]),
        r.chars(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    )
}

fn mixed(r: &mut Rng, n: usize, alphabet: &[u8]) -> String {
    loop {
        let s = r.chars(n, alphabet);
        if s.bytes().any(|b| b.is_ascii_digit()) && s.bytes().any(|b| b.is_ascii_alphabetic()) {
            return s;
        }
    }
}

pub(crate) fn api_key(r: &mut Rng) -> String {
    match r.below(3) {
        0 => format!("sk-{}", mixed(r, 48, ALNUM)),
        1 => format!("sk-proj-{}", mixed(r, 64, B64URL)),
        _ => format!("sk-ant-api03-{}", mixed(r, 93, B64URL)),
    }
}

pub(crate) fn github(r: &mut Rng) -> String {
    match r.below(3) {
        0 => format!("ghp_{}", r.chars(36, ALNUM)),
        1 => format!("{}_{}", r.pick(&["gho", "ghs", "ghu"]), r.chars(36, ALNUM)),
        _ => format!("github_pat_{}_{}", r.chars(22, ALNUM), r.chars(59, ALNUM)),
    }
}

pub(crate) fn slack(r: &mut Rng) -> String {
    format!(
        "{}-{}-{}-{}",
        r.pick(&["xoxb", "xoxp", "xoxa"]),
        r.digits(12),
        r.digits(13),
        r.chars(24, ALNUM)
    )
}

fn b64url(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |a, (i, &b)| a | u32::from(b) << (16 - 8 * i));
        for k in 0..=chunk.len() {
            out.push(char::from(B64URL[((n >> (18 - 6 * k)) & 63) as usize]));
        }
    }
    out
}

pub(crate) fn jwt(r: &mut Rng) -> String {
    let header = format!(
        r#"{{"alg":"{}","typ":"JWT"}}"#,
        r.pick(&["HS256", "RS256", "ES256"])
    );
    let payload = format!(
        r#"{{"sub":"{}","iat":{},"name":"{}"}}"#,
        r.digits(10),
        r.range(1_600_000_000, 1_800_000_000),
        *r.pick(FIRST)
    );
    format!(
        "{}.{}.{}",
        b64url(header.as_bytes()),
        b64url(payload.as_bytes()),
        r.chars(43, B64URL)
    )
}

pub(crate) fn private_key(r: &mut Rng) -> String {
    let label = *r.pick(&[
        "RSA PRIVATE KEY",
        "PRIVATE KEY",
        "EC PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
    ]);
    let mut s = format!("-----BEGIN {label}-----\n");
    for _ in 0..r.range(2, 6) {
        s.push_str(&r.chars(
            64,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        ));
        s.push('\n');
    }
    let _ = write!(s, "-----END {label}-----");
    s
}

/// A secret assignment: the full context text and the value.
pub(crate) fn assignment(r: &mut Rng) -> (String, String) {
    let value = loop {
        let n = r.range(10, 32) as usize;
        let v = r.chars(
            n,
            b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!#%^+-_",
        );
        if v.bytes().any(|b| b.is_ascii_digit()) {
            break v;
        }
    };
    let key = *r.pick(&[
        "api_key",
        "API_KEY",
        "DB_PASSWORD",
        "password",
        "client_secret",
        "AUTH_TOKEN",
        "access_token",
        "apiKey",
        "secret",
        "SMTP_PASSWD",
        "aws_secret_access_key",
        "private_key",
    ]);
    let text = match r.below(5) {
        0 => format!("{key}={value}"),
        1 => format!("export {key}=\"{value}\""),
        2 => format!("\"{key}\": \"{value}\""),
        3 => format!("{key}: {value}"),
        _ => format!("{key} = '{value}'"),
    };
    (text, value)
}

pub(crate) const CONTEXTS: &[&str] = &[
    "{v}",
    "Please contact me at {v}.",
    "My details: {v}, thanks!",
    "(see {v})",
    "\"{v}\"",
    "<td>{v}</td>",
    "Line one\n{v}\nline three",
    "Customer record -> {v}; verified",
    "Kunde: {v} – bitte prüfen",
    "value: '{v}'",
    "[{v}]",
    "Send it to {v} before Friday, 10:30.",
];

pub(crate) fn corpus() -> Vec<Sample> {
    let mut r = Rng::new(0x5AFE_C0DE);
    let mut out = Vec::new();
    let per_kind = 500;
    type Gen = fn(&mut Rng) -> String;
    let gens: [(&'static str, Gen); 12] = [
        ("EMAIL", email),
        ("PHONE", phone),
        ("SSN", ssn),
        ("CARD", card),
        ("IBAN", |r| iban(r, true)),
        ("IP_ADDRESS", ip),
        ("AWS_ACCESS_KEY", aws),
        ("API_KEY", api_key),
        ("GITHUB_TOKEN", github),
        ("SLACK_TOKEN", slack),
        ("JWT", jwt),
        ("PRIVATE_KEY", private_key),
    ];
    for (kind, generate) in gens {
        for k in 0..per_kind {
            let v = generate(&mut r);
            let ctx = *r.pick(CONTEXTS);
            out.push(Sample {
                text: ctx.replace("{v}", &v),
                labels: vec![(kind, v)],
                json: k % 2 == 1,
                negative: false,
            });
        }
    }
    for k in 0..per_kind {
        let (text, v) = assignment(&mut r);
        let ctx = *r.pick(&[
            "{v}",
            "config:\n  {v}\n",
            "Set {v} in the env file.",
            "```\n{v}\n```",
        ]);
        out.push(Sample {
            text: ctx.replace("{v}", &text),
            labels: vec![("SECRET", v)],
            json: k % 2 == 1,
            negative: false,
        });
    }
    // Mixed samples: several values in one message.
    for k in 0..400 {
        let (e, p, c) = (email(&mut r), phone(&mut r), card(&mut r));
        let text = format!(
            "Hi, I'm {} ({e}); call {p}. Card on file: {c}. Order ORD-{}-{}.",
            r.pick(FIRST),
            r.range(2019, 2026),
            r.digits(6)
        );
        out.push(Sample {
            text,
            labels: vec![("EMAIL", e), ("PHONE", p), ("CARD", c)],
            json: k % 2 == 0,
            negative: false,
        });
    }
    for k in 0..6000 {
        let text = negative(&mut r);
        out.push(Sample {
            text,
            labels: Vec::new(),
            json: k % 2 == 0,
            negative: true,
        });
    }
    out
}
