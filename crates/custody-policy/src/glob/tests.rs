use super::*;

fn g(s: &str) -> Glob {
    Glob::parse(s).expect("valid pattern")
}

#[test]
fn shapes_match_as_documented() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "crm:contacts:search",
            &["crm:contacts:search"],
            &["crm:contacts:searchx", "CRM:contacts:search"],
        ),
        ("*", &["", "anything:at/all"], &[]),
        (
            "crm:contacts:*",
            &["crm:contacts:", "crm:contacts:read", "crm:contacts:a:b"],
            &["crm:contact", "xcrm:contacts:read"],
        ),
        (
            "gpt-4o*",
            &["gpt-4o", "gpt-4o-mini", "gpt-4o-2024-08-06"],
            &["gpt-4", "o1"],
        ),
        ("*:read", &["crm:read", ":read"], &["crm:reader"]),
        (
            "crm:*:read",
            &["crm:x:read", "crm::read", "crm:a:b:read"],
            &["crm:read", "crm:x:write"],
        ),
        (
            "a*b*c",
            &["abc", "aXbYc", "abbc", "abcbc"],
            &["ab", "acb", "bc"],
        ),
        ("*mini*", &["gpt-4o-mini", "mini"], &["gpt-4o"]),
        ("a*a", &["aa", "aba"], &["a"]),
    ];
    for (pattern, yes, no) in cases {
        let glob = g(pattern);
        for name in *yes {
            assert!(glob.matches(name), "{pattern} should match {name}");
        }
        for name in *no {
            assert!(!glob.matches(name), "{pattern} should not match {name}");
        }
    }
}

#[test]
fn bad_patterns_are_refused_with_a_reason() {
    for (bad, why) in [
        ("", "empty"),
        ("crm:**", "'**'"),
        ("gpt-4?", "'?' is reserved"),
        ("crm:[ab]", "'[' is reserved"),
        ("{a,b}", "'{' is reserved"),
        ("a\\*", "'\\\\' is reserved"),
    ] {
        let err = Glob::parse(bad).expect_err(bad);
        assert!(err.contains(why), "{bad}: {err}");
    }
}

#[test]
fn specificity_and_exactness() {
    assert!(g("crm:contacts:read").is_exact());
    assert!(!g("crm:*").is_exact());
    assert!(g("crm:contacts:*").literal_len() > g("crm:*").literal_len());
    assert_eq!(g("*").literal_len(), 0);
}

#[test]
fn coverage_is_conservative_but_catches_the_common_cases() {
    assert!(g("*").covers(&g("crm:*")));
    assert!(g("crm:*").covers(&g("crm:contacts:*")));
    assert!(g("crm:*").covers(&g("crm:contacts:read")));
    assert!(g("crm:*").covers(&g("crm:*:read")));
    assert!(g("*:read").covers(&g("crm:*:read")));
    assert!(g("a*b*c").covers(&g("a*b*c")));
    assert!(!g("crm:contacts:*").covers(&g("crm:*")));
    assert!(!g("crm:contacts:read").covers(&g("crm:*")));
    assert!(!g("crm:*").covers(&g("*")));
    assert!(!g("a*c").covers(&g("a*b*c")), "not proven, so not claimed");
    let set = GlobSet::new(vec![g("crm:*"), g("billing:*")]);
    assert!(set.covers(&GlobSet::new(vec![g("crm:a"), g("billing:b:*")])));
    assert!(!set.covers(&GlobSet::new(vec![g("crm:a"), g("hr:b")])));
    assert_eq!(set.to_string(), "[\"crm:*\", \"billing:*\"]");
}
