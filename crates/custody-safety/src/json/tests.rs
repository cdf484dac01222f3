use super::*;

fn strings(body: &str) -> Result<Vec<(String, String)>, WalkError> {
    let mut out = Vec::new();
    walk(body.as_bytes(), &mut |stack, v| {
        out.push((
            path(body.as_bytes(), stack, &Detectors::builtin()),
            String::from_utf8_lossy(v.text).into_owned(),
        ));
    })?;
    Ok(out)
}

#[test]
fn paths_and_decoding() {
    let got =
        strings(r#"{"a":[1,"x",{"b c":"y\n\u00e9\ud83d\ude00"}],"d":true,"e":null,"f":-1.5e3}"#)
            .expect("json");
    assert_eq!(
        got,
        vec![
            ("$.a[1]".to_owned(), "x".to_owned()),
            ("$.a[2]['b c']".to_owned(), "y\né😀".to_owned()),
        ]
    );
}

#[test]
fn not_json_and_too_deep() {
    assert_eq!(strings(r#"{"a":}"#), Err(WalkError::NotJson));
    assert_eq!(strings(r#"{"a":"x"} trailing"#), Err(WalkError::NotJson));
    assert_eq!(strings(r#"["unterminated"#), Err(WalkError::NotJson));
    let deep = "[".repeat(200) + &"]".repeat(200);
    assert_eq!(strings(&deep), Err(WalkError::TooDeep));
}

#[test]
fn numbers_follow_the_grammar() {
    assert!(strings("[1, -0.5, 2e10, 3.25E-2, 0]").is_ok());
    for bad in [
        "[363-378-0455]",
        "[01]",
        "[1.]",
        "[.5]",
        "[1e]",
        "[-]",
        "[192.168.1.1]",
    ] {
        assert_eq!(strings(bad), Err(WalkError::NotJson), "{bad}");
    }
}

#[test]
fn a_number_is_scanned_as_the_digits_of_its_integer_value() {
    let ones = |n: usize| "1".repeat(n);
    let cases: Vec<(String, Option<String>)> = vec![
        ("4111111111111111".into(), Some("4111111111111111".into())),
        ("-4111111111111111".into(), Some("4111111111111111".into())),
        ("4111111111111111.0".into(), Some("4111111111111111".into())),
        (
            "4.111111111111111e15".into(),
            Some("4111111111111111".into()),
        ),
        (
            "41111111111111110E-1".into(),
            Some("4111111111111111".into()),
        ),
        ("1e9".into(), Some("1000000000".into())),
        ("100000000".into(), Some("100000000".into())),
        ("123456789".into(), Some("123456789".into())),
        ("12345678".into(), None),
        ("-12345678".into(), None),
        ("12345678.5".into(), None),
        ("1234567890.25".into(), None),
        ("0".into(), None),
        ("1e-9".into(), None),
        (ones(24), Some(ones(24))),
        (ones(25), None),
        (format!("{}e1", ones(23)), Some(format!("{}0", ones(23)))),
        (format!("{}e1", ones(24)), None),
    ];
    let mut out = Vec::new();
    for (token, want) in cases {
        let got = integer_digits(token.as_bytes(), &mut out)
            .then(|| String::from_utf8(out.clone()).expect("digits"));
        assert_eq!(got, want, "{token}");
    }
}

#[test]
fn a_hit_in_a_key_is_replaced_whole_even_off_a_character_boundary() {
    use crate::detect::Hit;
    use crate::kind::Kind;
    let hit = |start, end| Hit {
        kind: Kind::Email,
        start,
        end,
    };
    // "é" is bytes 1..3: ranges that start or end inside it take the whole of it.
    let key = "aébc@d.org";
    assert_eq!(replace_hits(key, &[hit(2, 5)]), "a[REDACTED:EMAIL]@d.org");
    assert_eq!(replace_hits(key, &[hit(0, 2)]), "[REDACTED:EMAIL]bc@d.org");
    assert_eq!(replace_hits(key, &[hit(3, 11)]), "aé[REDACTED:EMAIL]");
    assert_eq!(
        replace_hits(key, &[hit(0, 1), hit(3, 4)]),
        "[REDACTED:EMAIL]é[REDACTED:EMAIL]c@d.org"
    );
    assert_eq!(replace_hits(key, &[]), key);
}
