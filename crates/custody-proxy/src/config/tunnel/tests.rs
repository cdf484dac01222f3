use super::*;
use crate::config::{Config, ConfigError};

fn p(s: &str) -> HostPattern {
    HostPattern::parse(s, false).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn err(s: &str, exact: bool) -> String {
    HostPattern::parse(s, exact).expect_err(s)
}

#[test]
fn patterns_parse_and_print() {
    for (text, printed) in [
        ("*", "*"),
        ("*:443", "*:443"),
        ("*.googleapis.com", "*.googleapis.com"),
        ("*.GoogleAPIs.com.:443", "*.googleapis.com:443"),
        ("api.github.com:443", "api.github.com:443"),
        ("API.GitHub.com.", "api.github.com"),
        ("203.0.113.7", "203.0.113.7"),
        ("203.0.113.7:8443", "203.0.113.7:8443"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "[2001:db8::1]:443"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("localhost", "localhost"),
    ] {
        assert_eq!(p(text).to_string(), printed, "{text}");
    }
    assert_eq!(
        p("*.example.com:443"),
        HostPattern {
            host: HostMatch::Below(".example.com".into()),
            port: Some(443)
        }
    );
}

#[test]
fn bad_patterns_say_why() {
    for (text, needle) in [
        ("", "empty"),
        ("https://api.github.com", "no scheme"),
        ("api.github.com/x", "no scheme"),
        ("api.*.com", "first label"),
        ("*api.com", "first label"),
        ("**.api.com", "first label"),
        ("*.", "after \"*.\""),
        ("*.10.0.0.1", "names, not addresses"),
        ("api.github.com:0", "not a port"),
        ("api.github.com:65536", "not a port"),
        ("api.github.com:x", "not a port"),
        ("2001:db8::1:443x", "brackets"),
        ("[2001:db8::1", "without its ]"),
        ("[example.com]:443", "not an IPv6"),
        ("[2001:db8::1]443", "expected :PORT"),
        ("bad_host.example", "not a valid host name"),
        ("-x.example", "not a valid host name"),
    ] {
        let e = err(text, false);
        assert!(e.contains(needle), "{text:?}: {e}");
    }
    for text in ["*", "*.example.com", "*:443"] {
        assert!(err(text, true).contains("no wildcard"), "{text}");
    }
    assert_eq!(
        HostPattern::parse("localhost:8443", true)
            .expect("exact")
            .to_string(),
        "localhost:8443"
    );
}

#[test]
fn matching() {
    let any = p("*");
    assert!(any.matches("example.com", 443) && any.matches("10.0.0.1", 22));
    let below = p("*.example.com");
    assert!(below.matches("a.example.com", 443));
    assert!(below.matches("a.b.example.com", 8443));
    assert!(!below.matches("example.com", 443), "not the name itself");
    assert!(!below.matches("badexample.com", 443));
    assert!(!below.matches("example.com.evil", 443));
    let exact = p("api.github.com:443");
    assert!(exact.matches("api.github.com", 443));
    assert!(!exact.matches("api.github.com", 80));
    assert!(!exact.matches("x.api.github.com", 443));
    let v4 = p("203.0.113.7");
    assert!(v4.matches("203.0.113.7", 1));
    assert!(v4.matches("::ffff:203.0.113.7", 1), "mapped form");
    assert!(!v4.matches("203.0.113.8", 1));
    let v6 = p("[2001:db8::1]:443");
    assert!(v6.matches("2001:db8:0::1", 443));
    assert!(!v6.matches("2001:db8::1", 80));
    assert!(v4.names_address("203.0.113.7".parse().expect("ip"), 9));
    assert!(!exact.names_address("203.0.113.7".parse().expect("ip"), 443));
}

fn problems(yaml: &str) -> Vec<String> {
    match Config::from_yaml_str(yaml, "t.yaml") {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { issues, .. }) => {
            issues.iter().map(ToString::to_string).collect()
        }
        Err(e) => vec![e.to_string()],
    }
}

#[test]
fn the_section_is_validated_with_paths() {
    let c = Config::from_yaml_str(
        "intercept:\n  tunnel:\n    allow: ['*.googleapis.com', 'api.github.com:443']\n    allow_internal: ['127.0.0.1:8443']\n",
        "t.yaml",
    )
    .expect("valid");
    let t = c.intercept.expect("on").tunnel;
    assert_eq!(t.allow, [p("*.googleapis.com"), p("api.github.com:443")]);
    assert_eq!(t.allow_internal, [p("127.0.0.1:8443")]);
    // Absent: nothing is tunnelled.
    let c = Config::from_yaml_str("intercept: {}\n", "t.yaml").expect("valid");
    assert_eq!(c.intercept.expect("on").tunnel, TunnelConfig::default());

    let got = problems(
        "intercept:\n  tunnel:\n    allow: [ok.example, 'api.*.com', '127.0.0.1', '169.254.169.254:80', '10.0.0.1']\n    allow_internal: ['*.svc', '169.254.169.254']\n    allwo: []\n",
    );
    // The unknown key hides nothing: the section's values are checked as well.
    assert_eq!(
        got[0],
        "intercept.tunnel.allwo: unknown field `allwo`, expected `allow` or `allow_internal`"
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("intercept.tunnel.allow[1]: ")),
        "{got:?}"
    );
    let got = problems(
        "intercept:\n  tunnel:\n    allow: [ok.example, 'api.*.com', '127.0.0.1', '169.254.169.254:80', '10.0.0.1']\n    allow_internal: ['*.svc', '169.254.169.254']\n",
    );
    let joined = got.join("\n");
    for expected in [
        "intercept.tunnel.allow[1]: \"api.*.com\": a wildcard is either",
        "intercept.tunnel.allow[2]: 127.0.0.1 is a loopback address: custody tunnels there only when intercept.tunnel.allow_internal names it",
        "intercept.tunnel.allow_internal[0]: \"*.svc\": allow_internal takes exact hosts",
    ] {
        assert!(joined.contains(expected), "{expected} in:\n{joined}");
    }
    assert_eq!(got.len(), 3, "{joined}");

    let got = problems("intercept:\n  others: deny\n  tunnel: {allow: [a.example]}\n");
    assert_eq!(
        got,
        [
            "intercept.tunnel.allow: has no effect with intercept.others: deny (nothing is tunnelled); set others: tunnel or remove it"
        ]
    );
}
