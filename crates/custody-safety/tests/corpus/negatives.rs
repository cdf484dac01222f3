//! Hard negatives: text that looks like one of the kinds but is none.

use super::{ALNUM, CONTEXTS, FIRST, HEX, LAST, Rng, ascii, card_digits, format_card, iban};

fn uuid(r: &mut Rng) -> String {
    format!(
        "{}-{}-4{}-a{}-{}",
        r.chars(8, HEX),
        r.chars(4, HEX),
        r.chars(3, HEX),
        r.chars(3, HEX),
        r.chars(12, HEX)
    )
}

/// A hard negative: looks like one of the kinds but is not.
pub(crate) fn negative(r: &mut Rng) -> String {
    let v = match r.below(30) {
        0 => {
            let ds = card_digits(r, false);
            format_card(r, &ds)
        }
        1 => format!("Order ORD-{}-{}", r.range(2015, 2026), r.digits(6)),
        2 => {
            let n = r.range(6, 12) as usize;
            format!("order #{} shipped", r.digits(n))
        }
        3 => uuid(r),
        4 => format!(
            "{}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            r.range(2000, 2030),
            r.range(1, 12),
            r.range(1, 28),
            r.below(24),
            r.below(60),
            r.below(60)
        ),
        5 => format!(
            "ts={} ms={}",
            r.range(1_500_000_000, 1_900_000_000),
            r.range(1_500_000_000_000, 1_900_000_000_000)
        ),
        6 => format!(
            "{}-{:02}-{:02} and {:02}/{:02}/{}",
            r.range(2000, 2030),
            r.range(1, 12),
            r.range(1, 28),
            r.range(1, 12),
            r.range(1, 28),
            r.range(1990, 2030)
        ),
        7 => format!(
            "v{}.{}.{} / {}.{}.{}-beta.{}",
            r.below(20),
            r.below(50),
            r.below(100),
            r.below(5),
            r.below(30),
            r.below(10),
            r.below(9)
        ),
        8 => format!(
            "build {}.{}.{}.{}",
            r.below(30),
            r.below(10),
            r.range(1000, 30000),
            r.below(999)
        ),
        9 => format!("sha256 {} md5 {}", r.chars(64, HEX), r.chars(32, HEX)),
        10 => format!("commit {} ({})", r.chars(40, HEX), r.chars(7, HEX)),
        11 => format!(
            "Total: ${},{}.{:02} or €{}.{:02}",
            r.range(1, 99),
            r.digits(3),
            r.below(100),
            r.range(1, 999),
            r.below(100)
        ),
        12 => format!("SKU {}-{}-{}", r.range(100, 199), r.digits(3), r.digits(4)),
        13 => format!(
            "part {}-{}-{} and AB-{}-{}",
            r.digits(2),
            r.digits(4),
            r.digits(3),
            r.digits(4),
            r.digits(4)
        ),
        14 => {
            let area = *r.pick(&[0u64, 666, 900, 950, 999]);
            format!("id {area:03}-{:02}-{:04}", r.range(1, 99), r.range(1, 9999))
        }
        15 => format!(
            "ref {:03}-00-{:04} or {:03}-{:02}-0000",
            r.range(1, 899),
            r.range(1, 9999),
            r.range(1, 665),
            r.range(1, 99)
        ),
        16 => iban(r, false),
        17 => format!(
            "{}.{}.{}.{} and {}.{}.{}",
            r.range(256, 999),
            r.below(256),
            r.below(256),
            r.below(256),
            r.below(256),
            r.below(256),
            r.below(256)
        ),
        18 => format!(
            "ping {}.{}.{}.{}.{}",
            r.below(256),
            r.below(256),
            r.below(256),
            r.below(256),
            r.below(256)
        ),
        19 => format!(
            "@{} said hi; {}@localhost; icon@2x.png; {} at example dot com",
            ascii(r.pick(FIRST)),
            ascii(r.pick(FIRST)),
            ascii(r.pick(LAST))
        ),
        20 => format!(
            "use sk-learn and sk-{} ; AKIA{} ; ghp_{}",
            r.chars(8, ALNUM),
            r.chars(8, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
            r.chars(10, ALNUM)
        ),
        21 => format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----",
            r.chars(64, ALNUM)
        ),
        22 => format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----",
            r.chars(64, ALNUM)
        ),
        23 => format!(
            "{} api_key=<your-api-key> password: ${{DB_PASSWORD}} token=xxxxxxxxxxxx",
            r.pick(&["Set", "Use"])
        ),
        24 => format!(
            "max_tokens={} temperature=0.{} top_p: 0.9 secret: none",
            r.range(16, 8192),
            r.below(10)
        ),
        25 => format!(
            "{:02}:{:02}:{:02} and std::vec::Vec and a::b::c",
            r.below(24),
            r.below(60),
            r.below(60)
        ),
        26 => format!(
            "mac {}:{}:{}:{}:{}:{}",
            r.chars(2, HEX),
            r.chars(2, HEX),
            r.chars(2, HEX),
            r.chars(2, HEX),
            r.chars(2, HEX),
            r.chars(2, HEX)
        ),
        27 => format!(
            "tracking 1Z{} invoice INV{}",
            r.chars(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
            r.digits(10)
        ),
        28 => format!(
            "call ext. {} or room {}-{}",
            r.digits(4),
            r.digits(2),
            r.digits(3)
        ),
        _ => format!(
            "base64 {}",
            r.chars(
                120,
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
            )
        ),
    };
    let ctx = *r.pick(CONTEXTS);
    ctx.replace("{v}", &v)
}
