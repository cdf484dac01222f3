use super::*;

fn kinds(text: &str) -> Vec<(String, String)> {
    Detectors::builtin()
        .find(text.as_bytes())
        .into_iter()
        .map(|h| (h.kind.to_string(), text[h.start..h.end].to_owned()))
        .collect()
}

fn one(text: &str, kind: &str, value: &str) {
    assert_eq!(
        kinds(text),
        vec![(kind.to_owned(), value.to_owned())],
        "{text}"
    );
}

fn none(text: &str) {
    assert_eq!(kinds(text), vec![], "{text}");
}

#[test]
fn emails() {
    one(
        "mail alice.smith+tag@mail.example.co.uk.",
        "EMAIL",
        "alice.smith+tag@mail.example.co.uk",
    );
    one("<bob@example.org>", "EMAIL", "bob@example.org");
    none("icon@2x.png and @mention and user@localhost");
}

#[test]
fn phones() {
    one("call (415) 555-2671 now", "PHONE", "(415) 555-2671");
    one("call 415-555-2671", "PHONE", "415-555-2671");
    one("tel:+14155552671", "PHONE", "+14155552671");
    one("UK +44 20 7946 0958.", "PHONE", "+44 20 7946 0958");
    one("+44 (0)20 7946 0958", "PHONE", "+44 (0)20 7946 0958");
    one("1-800-555-0199", "PHONE", "1-800-555-0199");
    none("order 123-456-7890 and 2024-01-15 and 1700000000");
}

#[test]
fn ssn_card_iban_ip() {
    one("ssn 123-45-6789", "SSN", "123-45-6789");
    none("ssn 666-45-6789 000-12-3456 123-00-4567 900-12-3456");
    one(
        "card 4111 1111 1111 1111 exp",
        "CARD",
        "4111 1111 1111 1111",
    );
    one("card 4111-1111-1111-1111", "CARD", "4111-1111-1111-1111");
    one("amex 378282246310005", "CARD", "378282246310005");
    none("4111 1111 1111 1112 and 1234567812345678");
    one(
        "IBAN DE89 3704 0044 0532 0130 00 ok",
        "IBAN",
        "DE89 3704 0044 0532 0130 00",
    );
    one("GB82WEST12345698765432", "IBAN", "GB82WEST12345698765432");
    none("GB82WEST12345698765433");
    one("from 192.168.1.20:8080", "IP_ADDRESS", "192.168.1.20");
    one(
        "addr 2001:db8::8a2e:370:7334.",
        "IP_ADDRESS",
        "2001:db8::8a2e:370:7334",
    );
    none("v1.2.3.4 and 1.2.3 and 256.1.1.1 and 10:30:00 and std::vec");
    // The shortest addresses reported (five bytes), and shorter ones that are not.
    one("at ::abc now", "IP_ADDRESS", "::abc");
    one("at 1:2::3 now", "IP_ADDRESS", "1:2::3");
    one("\"ip\":\"fe80::1\"", "IP_ADDRESS", "fe80::1");
    none("at ::ab and a::b and ::1 and \"role\":\"user\" and a:b");
}

#[test]
fn secrets() {
    one(
        "AKIAIOSFODNN7EXAMPLE",
        "AWS_ACCESS_KEY",
        "AKIAIOSFODNN7EXAMPLE",
    );
    one(
        "key sk-proj-abc123DEF456ghi789JKL0",
        "API_KEY",
        "sk-proj-abc123DEF456ghi789JKL0",
    );
    one(
        "sk-ant-api03-abcdefghij0123456789",
        "API_KEY",
        "sk-ant-api03-abcdefghij0123456789",
    );
    let gh = format!("ghp_{}", "a1B2".repeat(9));
    one(&format!("token {gh}"), "GITHUB_TOKEN", &gh);
    one(
        "xoxb-123456789012-abcdefABCDEF",
        "SLACK_TOKEN",
        "xoxb-123456789012-abcdefABCDEF",
    );
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig_nature-x";
    one(&format!("Bearer {jwt}"), "JWT", jwt);
    one(
        "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----",
        "PRIVATE_KEY",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----",
    );
    one("DB_PASSWORD=s3cr3tPass!", "SECRET", "s3cr3tPass!");
    one("\"api_key\": \"Zx81kPq0Lm2\"", "SECRET", "Zx81kPq0Lm2");
    one(
        "OPENAI_API_KEY=sk-abcdefghij0123456789xyz",
        "API_KEY",
        "sk-abcdefghij0123456789xyz",
    );
    none("password=${DB_PASSWORD} token=<your-token> api_key=xxxxxxxx sk-learn max_tokens=512");
}

#[test]
fn custom_detectors() {
    let d = Detectors::with_custom(&[
        CustomDetector {
            name: "MRN".into(),
            regex: Some(r"MRN-\d{7}".into()),
            ..CustomDetector::default()
        },
        CustomDetector {
            name: "CODENAME".into(),
            terms: Some(vec!["falcon".into(), "blue osprey".into()]),
            case_insensitive: true,
            ..CustomDetector::default()
        },
    ])
    .expect("compile");
    let text = b"MRN-1234567 for Falcon and Blue Osprey, not falconry";
    let found: Vec<_> = d
        .find(text)
        .into_iter()
        .map(|h| h.kind.to_string())
        .collect();
    assert_eq!(found, ["MRN", "CODENAME", "CODENAME"]);
    assert!(
        Detectors::with_custom(&[CustomDetector {
            name: "EMAIL".into(),
            regex: Some("x".into()),
            ..CustomDetector::default()
        }])
        .is_err()
    );
    assert!(
        Detectors::with_custom(&[CustomDetector {
            name: "X".into(),
            regex: Some("(".into()),
            ..CustomDetector::default()
        }])
        .is_err()
    );
}

#[test]
fn disabled_kinds_are_recognised_but_not_reported() {
    let d = Detectors::builtin().without(&Kind::Card);
    assert!(d.find(b"4111 1111 1111 1111").is_empty());
}

#[test]
fn never_panics_on_edges() {
    let d = Detectors::builtin();
    for s in [
        "",
        "@",
        "a@",
        "@b.c",
        "+",
        "(",
        "-",
        "_",
        ":",
        "=",
        "sk-",
        "xoxb-",
        "gh_",
        "ghp_",
        "github_",
        "github_pat_",
        "ey",
        "eyJ",
        "eyJ.",
        "-----BEGIN ",
        "-----BEGIN PRIVATE KEY-----",
        "DE89",
        "AKIA",
        "1",
        "123-45-",
        "(415",
        "+1 (",
        "token=",
        "token=\"",
        "::",
        "fe80::",
    ] {
        let _ = d.find(s.as_bytes());
        for cut in 0..s.len() {
            let _ = d.find(&s.as_bytes()[..cut]);
        }
    }
    let bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let _ = d.find(&bytes);
}

#[test]
fn bits_follow_builtin_order() {
    for (i, k) in Kind::BUILTIN.iter().enumerate() {
        assert_eq!(bit(k), 1 << i);
    }
}

/// The last-byte table in front of [`secret_name`] rejects only keys the
/// comparison with every name would reject too: checked against that comparison
/// alone, for every name in every case, after each separator, with a byte
/// added, and for every two-byte key.
#[test]
fn secret_name_table_rejects_only_what_the_names_reject() {
    let reference = |key: &[u8]| {
        key.len() <= 64
            && secret::SECRET_NAMES.iter().any(|name| {
                key.len() >= name.len() && {
                    let at = key.len() - name.len();
                    key[at..].eq_ignore_ascii_case(name)
                        && (at == 0 || matches!(key[at - 1], b'_' | b'-' | b'.'))
                }
            })
    };
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for name in secret::SECRET_NAMES {
        let upper = name.to_ascii_uppercase();
        let mixed: Vec<u8> = name
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if i % 2 == 0 {
                    b.to_ascii_uppercase()
                } else {
                    *b
                }
            })
            .collect();
        for form in [name.to_vec(), upper, mixed] {
            for prefix in [&b""[..], b"x_", b"X-", b"a.", b"my", b"db_"] {
                for suffix in [&b""[..], b"s", b"_id", b"X"] {
                    keys.push([prefix, &form[..], suffix].concat());
                }
            }
        }
    }
    for a in 0..=255u8 {
        for b in 0..=255u8 {
            keys.push(vec![a, b]);
        }
    }
    keys.push(vec![b'a'; 60].into_iter().chain(*b"_token").collect());
    keys.push(Vec::new());
    for key in &keys {
        assert_eq!(
            secret_name(key),
            reference(key),
            "{}",
            String::from_utf8_lossy(key)
        );
    }
    assert!(secret_name(b"OPENAI_API_KEY") && secret_name(b"client.Secret"));
    assert!(!secret_name(b"finish_reason") && !secret_name(b"tokens"));
}

/// The key scan [`secret::assignment_at`] made before it checked a key: back over
/// word bytes, `-` and `.`, at most 64 of them, then [`secret_name`].
fn key_by_scan(t: &[u8], end: usize) -> bool {
    let mut k = end;
    while k > 0 && end - k < 64 && (is_word(t[k - 1]) || matches!(t[k - 1], b'-' | b'.')) {
        k -= 1;
    }
    k != end && secret_name(&t[k..end])
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
    /// Deciding from the key's last bytes gives what the scan to the key's start
    /// gave, at every position of texts made of names, separators, letters and
    /// punctuation.
    #[test]
    fn the_key_check_from_the_end_agrees_with_the_scan(
        pieces in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Strategy::prop_map(
                    proptest::sample::select(secret::SECRET_NAMES.to_vec()),
                    <[u8]>::to_vec,
                ),
                proptest::strategy::Strategy::prop_map(
                    proptest::sample::select(vec![
                        &b"_"[..], b"-", b".", b"\"", b" ", b":", b"=", b"a", b"X", b"1",
                        b"my", b"Token", b"API", b"\xc3\xa9", b"{", b"_key", b"s",
                    ]),
                    <[u8]>::to_vec,
                ),
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4),
            ],
            0..24,
        )
    ) {
        let t = pieces.concat();
        for end in 0..=t.len() {
            proptest::prop_assert_eq!(
                secret::key_names_secret(&t, end),
                key_by_scan(&t, end),
                "{:?} at {}", String::from_utf8_lossy(&t), end
            );
        }
    }
}

#[test]
fn a_key_longer_than_the_scan_still_names_by_its_end() {
    let long: Vec<u8> = [vec![b'a'; 70], b"_token".to_vec()].concat();
    assert_eq!(
        secret::key_names_secret(&long, long.len()),
        key_by_scan(&long, long.len())
    );
    assert!(secret::key_names_secret(b"\"db_password", 12));
    assert!(!secret::key_names_secret(b"\"passwords", 10));
    assert!(!secret::key_names_secret(b"mytoken", 7));
    assert!(secret::key_names_secret(b"my.token", 8));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
    /// The IPv6 detector's first check (another colon within five bytes) turns
    /// away only colons the full check turns away too: at every colon of texts
    /// made of hex groups, colons, dots, digits and JSON punctuation.
    #[test]
    fn ipv6_early_exits_agree_with_the_parse(
        pieces in proptest::collection::vec(
            proptest::sample::select(vec![
                &b":"[..], b"::", b"0", b"ab", b"ffff", b"2001", b"12345", b"1.2.3.4", b"\"",
                b",", b" ", b"x",
            ]),
            0..14,
        ),
        floor_at in 0usize..8,
    ) {
        let t = pieces.concat();
        for i in (0..t.len()).filter(|&i| t[i] == b':') {
            let floor = i.saturating_sub(floor_at * 8).min(i);
            proptest::prop_assert_eq!(
                text::ipv6_at(&t, i, floor),
                text::ipv6_around(&t, i, floor),
                "{:?} at {}", String::from_utf8_lossy(&t), i
            );
        }
    }
}

#[test]
fn ipv6_forms_are_found() {
    one(
        "peer ::ffff:192.168.1.1 up",
        "IP_ADDRESS",
        "::ffff:192.168.1.1",
    );
    one(
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "IP_ADDRESS",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    );
    one(
        "[fe80::1ff:fe23:4567:890a]:443",
        "IP_ADDRESS",
        "fe80::1ff:fe23:4567:890a",
    );
    none("\"created\":1700000000,\"a\":{\"b\":12345}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
    /// The shortcut for short bare numbers skips only numbers no detector would
    /// report: at every position of texts made of digit runs (cards, SSNs,
    /// phone numbers, addresses among them) and the bytes around numbers.
    #[test]
    fn the_short_number_shortcut_agrees_with_every_validator(
        pieces in proptest::collection::vec(
            proptest::sample::select(vec![
                &b"0"[..], b"00", b"1", b"4", b"12", b"415", b"555", b"0199", b"4111", b"1111",
                b"37828224631", b"0005", b"192", b"168", b"44", b"20", b"7946", b"0958",
                b" ", b"-", b".", b"(", b")", b"+", b"/", b",", b":", b"\"", b"x",
            ]),
            0..16,
        ),
    ) {
        let t = pieces.concat();
        for i in 0..t.len() {
            proptest::prop_assert_eq!(
                numeric::at(&t, i),
                numeric::at_by_every_validator(&t, i),
                "{:?} at {}", String::from_utf8_lossy(&t), i
            );
        }
    }
}
