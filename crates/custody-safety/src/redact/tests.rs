use super::*;
use crate::scan::scan_text;

fn all_redact(_: &Kind) -> Action {
    Action::Redact
}

#[test]
fn json_redaction_keeps_structure() {
    let d = Detectors::builtin();
    let body = br#"{ "b": ["x", "mail \"a@b.io\" or A@B.io"], "a": 1 }"#;
    let scan = scan_body(&d, body).expect("scan");
    let out = redact(body, &scan, &RedactStyle::Label, all_redact)
        .expect("redact")
        .expect("some");
    assert_eq!(
        String::from_utf8(out).expect("utf8"),
        r#"{ "b": ["x", "mail \"[REDACTED:EMAIL]\" or [REDACTED:EMAIL]"], "a": 1 }"#
    );
}

#[test]
fn tokens_are_keyed_deterministic_and_normalised() {
    let d = Detectors::builtin();
    let key = TokenKey::new(b"k1-0123456789abcdef0123456789abcdef").expect("key");
    let body = b"a@b.io and A@B.IO and c@d.io";
    let scan = scan_text(&d, body);
    let out = redact(body, &scan, &RedactStyle::Token(key), all_redact)
        .expect("ok")
        .expect("some");
    let out = String::from_utf8(out).expect("utf8");
    let parts: Vec<&str> = out.split(" and ").collect();
    assert_eq!(parts[0], parts[1]);
    assert_ne!(parts[0], parts[2]);
    assert!(parts[0].starts_with("[EMAIL:") && parts[0].len() == "[EMAIL:]".len() + 12);
    let other = TokenKey::new(b"k2-0123456789abcdef0123456789abcdef").expect("key");
    assert_ne!(other.token(&Kind::Email, b"a@b.io"), parts[0]);
    assert!(TokenKey::new(b"").is_err());
    assert_eq!(
        format!("{:?}", TokenKey::new(&[7; 32]).expect("key")),
        "TokenKey(..)"
    );
}

#[test]
fn only_redact_actions_are_applied() {
    let d = Detectors::builtin();
    let body = b"a@b.io 123-45-6789";
    let scan = scan_text(&d, body);
    let act = |k: &Kind| {
        if *k == Kind::Ssn {
            Action::Redact
        } else {
            Action::Log
        }
    };
    let out = redact(body, &scan, &RedactStyle::Label, act)
        .expect("ok")
        .expect("some");
    assert_eq!(out, b"a@b.io [REDACTED:SSN]");
    let none = redact(body, &scan, &RedactStyle::Label, |_| Action::Log).expect("ok");
    assert!(none.is_none());
    assert!(redact(b"short", &scan, &RedactStyle::Label, all_redact).is_err());
}

#[test]
fn parameters_stay_canonical() {
    let d = Detectors::builtin();
    let (text, scan) = redact_parameters(
        &d,
        r#"{"email":"a@b.io","n":1}"#,
        &RedactStyle::Label,
        all_redact,
    )
    .expect("ok");
    assert_eq!(text, r#"{"email":"[REDACTED:EMAIL]","n":1}"#);
    assert_eq!(&*scan.findings[0].path, "$.email");
}

#[test]
fn long_json_numbers_are_scanned_and_redacted_as_strings() {
    let d = Detectors::builtin();
    let body = br#"{"card":4111111111111111,"n":12}"#;
    let scan = scan_body(&d, body).expect("scan");
    assert_eq!(&*scan.findings[0].path, "$.card");
    let out = redact(body, &scan, &RedactStyle::Label, all_redact)
        .expect("ok")
        .expect("some");
    assert_eq!(out, br#"{"card":"[REDACTED:CARD]","n":12}"#);
}

#[test]
fn a_key_shorter_than_32_bytes_is_refused() {
    assert!(TokenKey::new(&[7; crate::MIN_TOKEN_KEY_BYTES]).is_ok());
    let err = TokenKey::new(b"short").expect_err("5 bytes");
    assert_eq!(
        err.to_string(),
        "redaction key is 5 bytes; at least 32 are required (make one with `openssl rand -hex 32`)"
    );
    assert!(TokenKey::new(&[7; 31]).is_err());
}
