use super::*;

#[test]
fn json_paths_and_secret_members() {
    let d = Detectors::builtin();
    let body = br#"{"model":"m","messages":[{"role":"user","content":"ssn 123-45-6789, mail a@b.io"}],"tools":{"db":{"password":"Hunter2Hunter2"}}}"#;
    let scan = scan_body(&d, body).expect("scan");
    assert!(scan.json);
    let got: Vec<_> = scan
        .findings
        .iter()
        .map(|f| (f.kind.to_string(), &*f.path))
        .collect();
    assert_eq!(
        got,
        [
            ("SSN".to_owned(), "$.messages[0].content"),
            ("EMAIL".to_owned(), "$.messages[0].content"),
            ("SECRET".to_owned(), "$.tools.db.password"),
        ]
    );
}

#[test]
fn text_and_malformed_json_are_text() {
    let d = Detectors::builtin();
    let scan = scan_body(&d, b"plain a@b.io").expect("scan");
    assert!(!scan.json);
    assert_eq!(&*scan.findings[0].path, "$");
    let scan = scan_body(&d, b"{not json a@b.io").expect("scan");
    assert!(!scan.json);
    assert_eq!(scan.findings.len(), 1);
}

#[test]
fn too_deep_fails() {
    let deep = "[".repeat(300) + &"]".repeat(300);
    assert!(matches!(
        scan_body(&Detectors::builtin(), deep.as_bytes()),
        Err(SafetyError::TooDeep(_))
    ));
}

fn kinds_at(scan: &Scan) -> Vec<(String, String)> {
    scan.findings
        .iter()
        .map(|f| (f.kind.to_string(), f.path.to_string()))
        .collect()
}

fn redacted(body: &[u8], scan: &Scan) -> String {
    let out = crate::redact(body, scan, &crate::RedactStyle::Label, |_| {
        crate::Action::Redact
    })
    .expect("redact")
    .expect("some");
    String::from_utf8(out).expect("utf8")
}

#[test]
fn numbers_are_read_as_their_integer_value() {
    let d = Detectors::builtin();
    for n in [
        "4111111111111111",
        "-4111111111111111",
        "4.111111111111111e15",
        "4.111111111111111E+15",
        "41111111111111.11e2",
        "4111111111111111.000",
        "411111111111111100e-2",
        "0.4111111111111111e16",
        "0.0000004111111111111111e22",
    ] {
        let body = format!(r#"{{"card": {n}, "n": 1}}"#);
        let scan = scan_body(&d, body.as_bytes()).expect("scan");
        assert_eq!(kinds_at(&scan), [("CARD".into(), "$.card".into())], "{n}");
        // The whole number is redacted and becomes a string.
        assert_eq!(
            redacted(body.as_bytes(), &scan),
            r#"{"card": "[REDACTED:CARD]", "n": 1}"#,
            "{n}"
        );
    }
    for n in [
        "4111111111111111.5",
        "4.1111e3",
        "1e300",
        "4111111111111111e30",
        "-0.0",
        "123456789012",
    ] {
        let body = format!(r#"{{"card": {n}}}"#);
        let scan = scan_body(&d, body.as_bytes()).expect("scan");
        assert!(scan.is_clean(), "{n}: {:?}", scan.findings);
    }
}

#[test]
fn a_value_split_across_the_parts_of_one_message_is_found() {
    let d = Detectors::builtin();
    // OpenAI chat content parts.
    let body = br#"{"messages":[{"role":"user","content":[{"type":"text","text":"card 4111 1111"},{"type":"text","text":" 1111 1111 thanks"}]}]}"#;
    let scan = scan_body(&d, body).expect("scan");
    assert_eq!(
        kinds_at(&scan),
        [("CARD".into(), "$.messages[0].content[0].text".into())]
    );
    assert_eq!(
        redacted(body, &scan),
        r#"{"messages":[{"role":"user","content":[{"type":"text","text":"card [REDACTED:CARD]"},{"type":"text","text":" thanks"}]}]}"#
    );
    // Anthropic blocks, three parts, an e-mail split twice, beside a whole one.
    let body = br#"{"messages":[{"role":"user","content":[{"type":"text","text":"bob@example.org and ali"},{"type":"image","source":{}},{"type":"text","text":"ce@exa"},{"type":"text","text":"mple.com"}]}]}"#;
    let scan = scan_body(&d, body).expect("scan");
    let paths: Vec<_> = scan.findings.iter().map(|f| &*f.path).collect();
    assert_eq!(
        paths,
        [
            "$.messages[0].content[0].text",
            "$.messages[0].content[0].text"
        ]
    );
    assert_eq!(
        redacted(body, &scan),
        r#"{"messages":[{"role":"user","content":[{"type":"text","text":"[REDACTED:EMAIL] and [REDACTED:EMAIL]"},{"type":"image","source":{}},{"type":"text","text":""},{"type":"text","text":""}]}]}"#
    );
    // Responses API input parts.
    let body = br#"{"input":[{"role":"user","content":[{"type":"input_text","text":"ssn 123-45"},{"type":"input_text","text":"-6789"}]}]}"#;
    let scan = scan_body(&d, body).expect("scan");
    assert_eq!(
        kinds_at(&scan),
        [("SSN".into(), "$.input[0].content[0].text".into())]
    );
    // Log-only findings leave the body alone.
    assert!(
        crate::redact(body, &scan, &crate::RedactStyle::Label, |_| {
            crate::Action::Log
        })
        .expect("redact")
        .is_none()
    );
}

#[test]
fn split_values_get_the_token_of_the_whole_value() {
    let d = Detectors::builtin();
    let key = crate::TokenKey::new(&[7; 32]).expect("key");
    let whole = key.token(&Kind::Email, b"alice@example.com");
    let body = br#"{"content":[{"text":"alice@exa"},{"text":"mple.com"}]}"#;
    let scan = scan_body(&d, body).expect("scan");
    let out = crate::redact(body, &scan, &crate::RedactStyle::Token(key), |_| {
        crate::Action::Redact
    })
    .expect("redact")
    .expect("some");
    assert_eq!(
        String::from_utf8(out).expect("utf8"),
        format!(r#"{{"content":[{{"text":"{whole}"}},{{"text":""}}]}}"#)
    );
}

#[test]
fn parts_of_different_messages_are_not_joined() {
    let d = Detectors::builtin();
    // A known limit: two messages, or members other than `text`.
    for body in [
        r#"{"messages":[{"content":[{"text":"4111 1111"}]},{"content":[{"text":" 1111 1111"}]}]}"#,
        r#"{"messages":[{"content":"4111 1111"},{"content":" 1111 1111"}]}"#,
        r#"{"items":[{"note":"4111 1111"},{"note":" 1111 1111"}]}"#,
    ] {
        assert!(
            scan_body(&d, body.as_bytes()).expect("scan").is_clean(),
            "{body}"
        );
    }
    // A part's own value is still found when the joined text reads differently.
    let body = br#"{"content":[{"text":"a 4111 1111 1111 1111"},{"text":"2 b"}]}"#;
    let scan = scan_body(&d, body).expect("scan");
    assert_eq!(
        kinds_at(&scan),
        [("CARD".into(), "$.content[0].text".into())]
    );
}

#[test]
fn forms_and_queries_are_scanned_as_decoded() {
    let d = Detectors::builtin();
    let q = b"q=acme&email=alice%40example.com&card=4111+1111+1111+1111&e-mail=%EF%BD%81%EF%BC%A0b.io&password=Hunter2Hunter2&tag=a&tag=bob%40example.org&flag&&x=%zz";
    let scan = scan_form(&d, q, "$.query");
    assert_eq!(
        kinds_at(&scan),
        [
            ("EMAIL".into(), "$.query.email".into()),
            ("CARD".into(), "$.query.card".into()),
            ("EMAIL".into(), "$.query['e-mail']".into()),
            ("SECRET".into(), "$.query.password".into()),
            ("EMAIL".into(), "$.query.tag[1]".into()),
        ]
    );
    // Redacted values are encoded again; every other byte is kept.
    assert_eq!(
        redacted(q, &scan),
        "q=acme&email=%5BREDACTED%3AEMAIL%5D&card=%5BREDACTED%3ACARD%5D&e-mail=%5BREDACTED%3AEMAIL%5D&password=%5BREDACTED%3ASECRET%5D&tag=a&tag=%5BREDACTED%3AEMAIL%5D&flag&&x=%zz"
    );
    // Part of a value: the rest is kept (decoded, then encoded again).
    let form = b"note=mail+alice%40example.com+now%21&n=1";
    let scan = scan_form(&d, form, "$.body");
    assert_eq!(kinds_at(&scan), [("EMAIL".into(), "$.body.note".into())]);
    assert_eq!(
        redacted(form, &scan),
        "note=mail%20%5BREDACTED%3AEMAIL%5D%20now%21&n=1"
    );
    assert!(scan_form(&d, b"a=1&b=two", "$.query").is_clean());
}

#[test]
fn fields_are_scanned_by_name() {
    let d = Detectors::builtin();
    let found = scan_fields(
        &d,
        "$.path",
        [
            ("id", "4111111111111111"),
            ("org", "acme"),
            ("who", "a＠b.io"),
        ],
    );
    let got: Vec<_> = found
        .iter()
        .map(|f| (f.kind.to_string(), f.path.to_string()))
        .collect();
    assert_eq!(
        got,
        [
            ("CARD".to_owned(), "$.path.id".to_owned()),
            ("EMAIL".to_owned(), "$.path.who".to_owned())
        ]
    );
}

#[test]
fn parts_and_their_neighbours_are_reported_in_body_order() {
    let d = Detectors::builtin();
    let body = br#"{"content":[{"type":"text","text":"alice@exa","meta":"bob@example.org"},{"note":"4111 1111 1111 1111","text":"mple.com"}],"x":"carol@example.net"}"#;
    let scan = scan_body(&d, body).expect("scan");
    assert_eq!(
        kinds_at(&scan),
        [
            ("EMAIL".into(), "$.content[0].text".into()),
            ("EMAIL".into(), "$.content[0].meta".into()),
            ("CARD".into(), "$.content[1].note".into()),
            ("EMAIL".into(), "$.x".into()),
        ]
    );
    assert_eq!(
        redacted(body, &scan),
        r#"{"content":[{"type":"text","text":"[REDACTED:EMAIL]","meta":"[REDACTED:EMAIL]"},{"note":"[REDACTED:CARD]","text":""}],"x":"[REDACTED:EMAIL]"}"#
    );
    // Only the split value redacted: its continuation goes with it.
    let out = crate::redact(body, &scan, &crate::RedactStyle::Label, |k| {
        if *k == Kind::Card {
            crate::Action::Log
        } else {
            crate::Action::Redact
        }
    })
    .expect("redact")
    .expect("some");
    assert!(
        String::from_utf8(out)
            .expect("utf8")
            .contains(r#""note":"4111 1111 1111 1111","text":"""#)
    );
}

#[test]
fn a_value_in_a_key_never_reaches_a_path() {
    let d = Detectors::builtin();
    // Values found in the keys above a finding: a map keyed by address, a field
    // named with a card, an escaped address.
    let body = br#"{"contacts": {"ada@example.org": {"note": "card 4111 1111 1111 1111"}},
                    "paid by 4111 1111 1111 1111": "mail bob@example.org",
                    "c\u0040example.org": ["call 415-555-2671"]}"#;
    let scan = scan_body(&d, body).expect("scan");
    let found = kinds_at(&scan);
    assert_eq!(
        found,
        [
            ("CARD".into(), "$.contacts['[REDACTED:EMAIL]'].note".into()),
            ("EMAIL".into(), "$['paid by [REDACTED:CARD]']".into()),
            ("PHONE".into(), "$['[REDACTED:EMAIL]'][0]".into()),
        ],
        "{found:?}"
    );
    // A form's field names too.
    let form = scan_form(&d, b"ada%40example.org=4111+1111+1111+1111", "$.body");
    assert_eq!(
        kinds_at(&form),
        [("CARD".into(), "$.body['[REDACTED:EMAIL]']".into())]
    );
    // A key holding nothing keeps its name.
    let plain = scan_body(&d, br#"{"x-note": "bob@example.org"}"#).expect("scan");
    assert_eq!(kinds_at(&plain), [("EMAIL".into(), "$['x-note']".into())]);
}
