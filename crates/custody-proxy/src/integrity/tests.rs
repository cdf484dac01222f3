use super::Reason;
use super::credentials::{inject, single};
use super::path::normalise;
use super::query::repeated_key;
use http::{HeaderMap, HeaderName, HeaderValue};

fn norm(raw: &str) -> Result<String, Reason> {
    normalise(raw).map(|n| n.path).map_err(|r| r.reason)
}

#[test]
fn paths_that_mean_the_same_normalise_to_one() {
    for raw in [
        "/crm/admin",
        "/crm//admin",
        "//crm///admin",
        "/crm/./admin",
        "/crm/%61dmin",
        "/crm/%61%64%6D%69%6e",
        "/crm/x/../admin",
        "/crm/x/y/../../admin",
        "/%63rm/admin",
        "/crm/admin/.",
    ] {
        let got = norm(raw);
        let want = if raw.ends_with("/.") {
            "/crm/admin/"
        } else {
            "/crm/admin"
        };
        assert_eq!(got.as_deref(), Ok(want), "{raw}");
    }
    assert_eq!(norm("/").as_deref(), Ok("/"));
    assert_eq!(norm("//").as_deref(), Ok("/"));
    assert_eq!(norm("/a/").as_deref(), Ok("/a/"));
    assert_eq!(norm("/a/b/..").as_deref(), Ok("/a/"));
    assert_eq!(norm("/a/..").as_deref(), Ok("/"));
    // Reserved and non-ASCII escapes stay escaped, hex upper-cased.
    assert_eq!(norm("/a%3ab/%c3%a9").as_deref(), Ok("/a%3Ab/%C3%A9"));
    assert_eq!(norm("/a%20b").as_deref(), Ok("/a%20b"));
}

#[test]
fn paths_parsers_disagree_on_are_refused() {
    for raw in [
        "/crm/../../internal/secret",
        "/..",
        "/a/../..",
        "/crm/%2e%2e/admin",
        "/crm/.%2E/admin",
        "/crm/%2E/admin",
        "/crm%2fadmin",
        "/crm%2Fadmin",
        "/crm%5cadmin",
        "/crm\\admin",
        "/crm/%zzadmin",
        "/crm/admin%",
        "/crm/admin%4",
        "*",
        "",
    ] {
        assert_eq!(norm(raw), Err(Reason::Path), "{raw:?}");
    }
}

#[test]
fn a_prefix_must_be_named_not_climbed_into() {
    let n = normalise("/crm/../openai/v1/chat").expect("normalises");
    assert_eq!(n.path, "/openai/v1/chat");
    assert!(!n.named_prefix("/openai"));
    assert!(n.named_prefix("/crm"));
    assert!(n.named_prefix("/"));
    let n = normalise("/openai/./v1/../v1/chat").expect("normalises");
    assert!(n.named_prefix("/openai"));
    assert!(n.named_prefix("/openai/v1"));
    assert!(!n.named_prefix("/openai/v2"));
    let n = normalise("/open%61i/v1").expect("normalises");
    assert!(n.named_prefix("/openai"), "decoded escapes name the prefix");
}

#[test]
fn repeated_query_keys_are_found_after_decoding() {
    assert!(repeated_key("org=a&org=b").is_some());
    assert!(repeated_key("org=a&or%67=b").is_some());
    assert!(repeated_key("a+b=1&a%20b=2").is_some());
    assert!(repeated_key("org=a&x=1&org").is_some());
    assert!(repeated_key("org=a&org2=b&x=").is_none());
    assert!(repeated_key("").is_none());
    assert!(repeated_key("a=%zz&b=%").is_none());
    assert_eq!(
        repeated_key("q=1&q=2").map(|r| r.reason),
        Some(Reason::RepeatedQuery)
    );
}

#[test]
fn exactly_one_credential_value() {
    let auth = http::header::AUTHORIZATION;
    let mut h = HeaderMap::new();
    assert_eq!(single(&h, &auth), Ok(None));
    h.insert(&auth, HeaderValue::from_static("Bearer a.b.c"));
    assert_eq!(
        single(&h, &auth).ok().flatten(),
        Some(&HeaderValue::from_static("Bearer a.b.c"))
    );
    h.append(&auth, HeaderValue::from_static("Basic YWRtaW46YWRtaW4="));
    let refused = single(&h, &auth).expect_err("two values");
    assert_eq!(refused.reason, Reason::DuplicateCredentials);
    assert!(!refused.message.contains("YWRt"), "never echoes a value");
    let mut h = HeaderMap::new();
    h.insert(&auth, HeaderValue::from_static("Bearer a, Bearer b"));
    assert!(
        single(&h, &auth).is_err(),
        "comma-joined values count as two"
    );
    // A token of JWT length, the comma anywhere in it.
    let token = format!("Bearer {}", "x".repeat(900));
    for at in [7, 8, 31, 32, 33, 500, token.len() - 1] {
        let mut joined = token.clone();
        joined.replace_range(at..=at, ",");
        let mut h = HeaderMap::new();
        h.insert(&auth, HeaderValue::from_str(&joined).expect("value"));
        assert!(single(&h, &auth).is_err(), "comma at {at}");
    }
    let mut h = HeaderMap::new();
    h.insert(&auth, HeaderValue::from_str(&token).expect("value"));
    assert!(single(&h, &auth).is_ok());
}

#[test]
fn injected_credential_replaces_every_client_credential() {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("authorization", "Bearer sk-client"),
        ("proxy-authorization", "Basic x"),
        ("x-api-key", "client"),
        ("api-key", "client"),
        ("x-goog-api-key", "client"),
        ("content-type", "application/json"),
    ] {
        h.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    h.append("x-api-key", HeaderValue::from_static("second"));
    inject(
        &mut h,
        &HeaderName::from_static("x-api-key"),
        HeaderValue::from_static("sk-custody"),
    );
    let left: Vec<(String, String)> = h
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(
        left,
        [
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-api-key".to_owned(), "sk-custody".to_owned()),
        ]
    );
}

mod plain_paths {
    use super::super::path::{normalise, normalise_segments};
    use proptest::prelude::*;

    proptest! {
        /// A path with no escape and no dot segment takes a shortcut; it must give
        /// the path and the named prefixes that the segment-by-segment reading gives.
        #[test]
        fn the_shortcut_reads_as_segment_by_segment(
            parts in proptest::collection::vec(
                prop_oneof![Just("/"), Just("a"), Just("b"), Just("."), Just(".."), Just("v1"), Just("%61"), Just("x.y")],
                0..10,
            ),
        ) {
            let raw = format!("/{}", parts.concat());
            let shortcut = normalise(&raw).map_err(|r| r.reason);
            let slow = normalise_segments(&raw, raw.len() > 1 && raw.ends_with('/')).map_err(|r| r.reason);
            prop_assert_eq!(shortcut.as_ref().map(|n| &n.path), slow.as_ref().map(|n| &n.path), "{}", raw);
            if let (Ok(fast), Ok(slow)) = (&shortcut, &slow) {
                for prefix in ["/", "/a", "/a/b", "/b", "/a/v1", "/x.y", "/a/a", "/v1/b/a"] {
                    prop_assert_eq!(fast.named_prefix(prefix), slow.named_prefix(prefix), "{} {}", raw, prefix);
                }
            }
        }
    }
}
