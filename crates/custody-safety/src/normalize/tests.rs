//! Each normalisation class, with variants beyond the obvious ones: what the
//! detectors see, and that the match maps back to the original bytes.

use super::*;
use crate::detect::Detectors;
use crate::kind::{Action, Kind};
use crate::redact::{RedactStyle, TokenKey, redact};
use crate::scan::scan_text;

fn normal(s: &str) -> String {
    match normalize(s.as_bytes()) {
        Some(n) => String::from_utf8(n.text).expect("utf8"),
        None => s.to_owned(),
    }
}

/// The kinds found in `s` and the original text each one covers.
fn found(s: &str) -> Vec<(String, String)> {
    Detectors::builtin()
        .find(s.as_bytes())
        .into_iter()
        .map(|h| (h.kind.to_string(), s[h.start..h.end].to_owned()))
        .collect()
}

fn one(kind: &str, s: &str) {
    assert_eq!(found(s), [(kind.to_owned(), s.to_owned())], "{s:?}");
}

#[test]
fn ascii_and_unchanged_text_is_not_copied() {
    assert!(normalize(b"plain ascii 4111").is_none());
    assert!(normalize("héllo wörld, 東京".as_bytes()).is_none());
    assert!(normalize(b"").is_none());
}

#[test]
fn nfkc_forms_that_are_ascii() {
    // Full-width letters, digits, punctuation and the at sign.
    assert_eq!(
        normal("ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ"),
        "alice@example.com"
    );
    assert_eq!(normal("４１１１－１１１１"), "4111-1111");
    assert_eq!(normal("＋１"), "+1");
    // Mathematical, circled, super- and subscript digits; small forms; ligatures.
    assert_eq!(normal("𝟒𝟏𝟏𝟏 ④ ⁴ ₄ ﹫ ﬁ"), "4111 4 4 4 @ fi");
    assert_eq!(normal("⑽"), "(10)");
    // Spaces: no-break, thin, narrow no-break, ideographic.
    assert_eq!(normal("a\u{00A0}b\u{2009}c\u{202F}d\u{3000}e"), "a b c d e");
    // Characters whose NFKC form is not ASCII stay as they are.
    assert_eq!(normal("é ½ ٤ 東"), "é ½ ٤ 東");
}

#[test]
fn default_ignorable_characters_are_removed() {
    for zw in [
        '\u{200B}',
        '\u{200C}',
        '\u{200D}',
        '\u{2060}',
        '\u{FEFF}',
        '\u{00AD}',
        '\u{180E}',
        '\u{200E}',
        '\u{202E}',
        '\u{2063}',
        '\u{FE0F}',
        '\u{E0041}',
        '\u{034F}',
    ] {
        let s = format!("alice{zw}@exa{zw}mple.com");
        assert_eq!(normal(&s), "alice@example.com", "U+{:04X}", u32::from(zw));
        one("EMAIL", &s);
    }
    one("CARD", "4111\u{200B}1111\u{200C}1111\u{200D}1111");
    // A removed character at the edge of a match is not part of it.
    let s = "\u{FEFF}4\u{2060}1\u{2060}1\u{2060}1111111111111\u{200B}";
    assert_eq!(
        found(s),
        [(
            "CARD".to_owned(),
            "4\u{2060}1\u{2060}1\u{2060}1111111111111".to_owned()
        )]
    );
}

#[test]
fn dashes_read_as_hyphens() {
    for dash in [
        '\u{2010}', '\u{2011}', '\u{2012}', '\u{2013}', '\u{2014}', '\u{2212}', '－',
    ] {
        one("CARD", &format!("4111{dash}1111{dash}1111{dash}1111"));
        one("SSN", &format!("123{dash}45{dash}6789"));
    }
}

#[test]
fn full_width_and_mixed_values_are_found_whole() {
    one("EMAIL", "ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ");
    one("EMAIL", "alice＠example.com");
    one("EMAIL", "alice﹫example.com");
    one("CARD", "４１１１ １１１１ １１１１ １１１１");
    one("CARD", "４１１１１１１１１１１１１１１１");
    one("CARD", "𝟒𝟏𝟏𝟏\u{00A0}𝟏𝟏𝟏𝟏\u{00A0}𝟏𝟏𝟏𝟏\u{00A0}𝟏𝟏𝟏𝟏");
    one("SSN", "１２３-４５-６７８９");
    one("PHONE", "＋４４ ２０ ７９４６ ０９５８");
    one("IP_ADDRESS", "１９２．１６８．１．２０");
    one("API_KEY", "ｓｋ-proj-abcdefghijklmnop1234567890");
    // Context around the value keeps its own offsets.
    let s = "mail ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ — thanks";
    assert_eq!(
        found(s),
        [(
            "EMAIL".to_owned(),
            "ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ".to_owned()
        )]
    );
}

#[test]
fn mixed_card_separators() {
    for s in [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111.1111.1111.1111",
        "4111 1111-1111.1111",
        "4111 - 1111 - 1111 - 1111",
        "4111  1111  1111  1111",
        "4111-1111 1111.1111",
        "3782 822463 10005",
        "3782-822463.10005",
        "5555.5555 5555-4444",
    ] {
        one("CARD", s);
    }
    // Not cards: Luhn fails, a longer dotted number, a decimal tail, four
    // separators in a row, dotted groups shorter than three digits.
    for s in [
        "4111 1111-1111.1112",
        "4111.1111.1111.1111.1",
        "4111111111111111.25",
        "4111    1111 1111 1111",
        "63.115.155.168.26",
        "4111.1111.11.11.1111",
    ] {
        assert!(
            found(s).iter().all(|(k, _)| k != "CARD"),
            "{s:?}: {:?}",
            found(s)
        );
    }
}

#[test]
fn invalid_utf8_is_kept() {
    let mut s = b"\xFF alice".to_vec();
    s.extend_from_slice("＠example.com ".as_bytes());
    s.push(0xC3);
    let n = normalize(&s).expect("changed");
    assert!(n.text.starts_with(b"\xFF alice@example.com"));
    let hits = Detectors::builtin().find(&s);
    assert_eq!(hits.len(), 1);
    assert_eq!(
        &s[hits[0].start..hits[0].end],
        "alice＠example.com".as_bytes()
    );
}

#[test]
fn ranges_map_back_to_whole_characters() {
    let s = "x\u{200B}４１＠ﬁ";
    let n = normalize(s.as_bytes()).expect("changed");
    assert_eq!(n.text, b"x41@fi");
    // "41" → the two full-width digits.
    assert_eq!(n.original(1, 3), (4, 10));
    // "i" alone is half of "ﬁ": the whole ligature.
    assert_eq!(n.original(5, 6), (13, 16));
    // The zero-width space before "4" is not included.
    assert_eq!(n.original(1, 2), (4, 7));
    assert_eq!(n.original(0, 1), (0, 1));
}

#[test]
fn redaction_replaces_the_original_bytes() {
    let d = Detectors::builtin();
    let body = "mail ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ or 4111\u{200B}1111\u{2013}1111 1111 now";
    let scan = scan_text(&d, body.as_bytes());
    let out = redact(body.as_bytes(), &scan, &RedactStyle::Label, |_| {
        Action::Redact
    })
    .expect("redact")
    .expect("some");
    assert_eq!(
        String::from_utf8(out).expect("utf8"),
        "mail [REDACTED:EMAIL] or [REDACTED:CARD] now"
    );
}

#[test]
fn tokens_are_the_same_for_every_spelling() {
    let key = TokenKey::new(&[7; 32]).expect("key");
    let ascii = key.token(&Kind::Email, b"alice@example.com");
    assert_eq!(
        key.token(
            &Kind::Email,
            "ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ".as_bytes()
        ),
        ascii
    );
    assert_eq!(
        key.token(&Kind::Email, "ALICE\u{200B}@example.com".as_bytes()),
        ascii
    );
    let card = key.token(&Kind::Card, b"4111111111111111");
    assert_eq!(
        key.token(
            &Kind::Card,
            "４１１１ １１１１ １１１１ １１１１".as_bytes()
        ),
        card
    );
}
