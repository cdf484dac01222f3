use super::*;
use custody_audit::Redaction;
use custody_core::{Action, ActionKind};
use std::time::SystemTime;

fn metrics(routes: &[&str]) -> Metrics {
    let mut yaml =
        String::from("safety:\n  custom:\n    - {name: MRN, regex: 'MRN-\\d{7}'}\nroutes:\n");
    for (i, name) in routes.iter().enumerate() {
        yaml +=
            &format!("  - {{name: '{name}', prefix: /r{i}, upstream: 'http://u', kind: http}}\n");
    }
    let config = Config::from_yaml_str(&yaml, "test.yaml").expect("config");
    Metrics::new(&config)
}

fn row(route: Option<&str>, decision: Option<&str>, status: Option<i32>) -> AuditRecord {
    let mut action = Action::new(ActionKind::Http, "GET", "/x");
    action.route = route.map(str::to_owned);
    let mut r = AuditRecord::new(SystemTime::now(), "req".into(), action);
    r.policy.decision = decision.map(str::to_owned);
    r.outcome.status = status;
    r
}

fn finding(kind: &str, path: &str, count: i64) -> Redaction {
    Redaction {
        kind: kind.into(),
        path: path.into(),
        count,
        action: "log".into(),
        side: None,
        handling: Some("logged".into()),
    }
}

fn text(m: &Metrics) -> String {
    let mut o = Out::new();
    m.render(&mut o);
    o.0
}

/// The samples of `text` as `name{labels} value` lines, comments dropped.
fn samples(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

#[test]
fn histogram_buckets_are_upper_inclusive_and_rendered_cumulative() {
    static BOUNDS: &[f64] = &[0.001, 0.01, 0.1];
    let h = Histogram::new(BOUNDS);
    for d in [
        Duration::from_micros(500),
        Duration::from_millis(1), // on the bound: le="0.001"
        Duration::from_millis(5),
        Duration::from_millis(100),
        Duration::from_secs(3), // beyond the last bound: +Inf only
    ] {
        h.observe(d);
    }
    assert_eq!(h.snapshot().buckets, vec![2, 1, 1, 1]);
    assert_eq!(h.count(), 5);
    let mut o = Out::new();
    o.histogram("x_seconds", "route=\"a\"", &h);
    assert_eq!(
        o.0,
        "x_seconds_bucket{route=\"a\",le=\"0.001\"} 2\n\
         x_seconds_bucket{route=\"a\",le=\"0.01\"} 3\n\
         x_seconds_bucket{route=\"a\",le=\"0.1\"} 4\n\
         x_seconds_bucket{route=\"a\",le=\"+Inf\"} 5\n\
         x_seconds_sum{route=\"a\"} 3.1065\n\
         x_seconds_count{route=\"a\"} 5\n"
    );
    let mut o = Out::new();
    o.histogram("y_seconds", "", &Histogram::new(BOUNDS));
    assert!(
        o.0.starts_with("y_seconds_bucket{le=\"0.001\"} 0\n"),
        "{}",
        o.0
    );
    assert!(
        o.0.ends_with("y_seconds_sum 0\ny_seconds_count 0\n"),
        "{}",
        o.0
    );
}

#[test]
fn bucket_bounds_render_as_plain_decimals() {
    for bounds in [ADDED_LATENCY_BUCKETS, REQUEST_DURATION_BUCKETS] {
        assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        let h = Histogram::new(bounds);
        let mut o = Out::new();
        o.histogram("h", "", &h);
        for line in o.0.lines().filter(|l| l.contains("le=")) {
            let le = line.split('"').nth(1).expect("le");
            assert!(le == "+Inf" || le.parse::<f64>().is_ok(), "{le}");
            assert!(!le.contains('e'), "no exponent: {le}");
        }
    }
    assert_eq!(ADDED_LATENCY_BUCKETS[0], 0.00005);
    let h = Histogram::new(ADDED_LATENCY_BUCKETS);
    h.observe(Duration::from_micros(50));
    assert_eq!(h.snapshot().buckets[0], 1, "50 µs is within le=0.00005");
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(escape("plain"), "plain");
    assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
    assert_eq!(escape("line\nbreak"), "line\\nbreak");
    let m = metrics(&["we\"ird\\name"]);
    m.exchange(
        &row(Some("we\"ird\\name"), Some("allow"), Some(200)),
        Duration::ZERO,
    );
    let t = text(&m);
    assert!(
        t.contains(
            r#"custody_requests_total{route="we\"ird\\name",decision="allow",code="2xx"} 1"#
        ),
        "{t}"
    );
}

#[test]
fn requests_are_counted_by_route_decision_and_class() {
    let m = metrics(&["openai", "echo"]);
    let ms = Duration::from_millis;
    m.exchange(&row(Some("openai"), Some("allow"), Some(200)), ms(20));
    m.exchange(&row(Some("openai"), Some("allow"), Some(201)), ms(20));
    m.exchange(&row(Some("openai"), Some("deny"), Some(403)), ms(1));
    m.exchange(&row(Some("echo"), Some("allow"), Some(502)), ms(2));
    m.exchange(&row(Some("echo"), Some("allow"), None), ms(3));
    m.exchange(&row(None, None, Some(404)), ms(0));
    m.exchange(&row(Some("not-configured"), None, Some(400)), ms(0));
    m.exchange(&row(Some("echo"), Some("something"), Some(700)), ms(0));
    let t = text(&m);
    let s = samples(&t);
    let requests: Vec<&str> = s
        .iter()
        .copied()
        .filter(|l| l.starts_with("custody_requests_total"))
        .collect();
    assert_eq!(
        requests,
        [
            r#"custody_requests_total{route="openai",decision="allow",code="2xx"} 2"#,
            r#"custody_requests_total{route="openai",decision="deny",code="4xx"} 1"#,
            r#"custody_requests_total{route="echo",decision="allow",code="5xx"} 1"#,
            r#"custody_requests_total{route="echo",decision="allow",code="none"} 1"#,
            r#"custody_requests_total{route="echo",decision="none",code="none"} 1"#,
            r#"custody_requests_total{route="",decision="none",code="4xx"} 2"#,
        ]
    );
    assert!(s.contains(&r#"custody_request_duration_seconds_count{route="openai"} 3"#));
    assert!(s.contains(&r#"custody_request_duration_seconds_sum{route="openai"} 0.041"#));
    assert!(s.contains(&r#"custody_request_duration_seconds_count{route="echo"} 3"#));
    assert!(s.contains(&r#"custody_request_duration_seconds_count{route=""} 2"#));
    assert!(s.contains(&r#"custody_request_duration_seconds_bucket{route="openai",le="0.001"} 1"#));
    assert!(s.contains(&r#"custody_request_duration_seconds_bucket{route="openai",le="0.025"} 3"#));
    // No request yet: the histogram is there, empty.
    assert!(s.contains(&"custody_added_latency_seconds_count 0"));
    m.added_latency(Duration::from_micros(120));
    let t = text(&m);
    assert!(t.contains("custody_added_latency_seconds_bucket{le=\"0.0001\"} 0\n"));
    assert!(t.contains("custody_added_latency_seconds_bucket{le=\"0.00025\"} 1\n"));
    assert!(t.contains("custody_added_latency_seconds_sum 0.00012\n"));
}

#[test]
fn pii_findings_are_counted_per_finding_kind_and_direction() {
    let m = metrics(&["r"]);
    let mut r = row(Some("r"), Some("allow"), Some(200));
    r.content_safety.redactions = Some(vec![
        finding("EMAIL", "$.messages[0].content", 2),
        finding("EMAIL", "$.messages[1].content", 1),
        finding("EMAIL", "response.choices[0]", 1),
        finding("MRN", "$.note", 3),
        finding("SOMETHING_NEW", "response", 1),
        // A finding's side (schema v8) says where it was, whatever its path.
        Redaction {
            side: Some("response".into()),
            ..finding("MRN", "$.output", 2)
        },
    ]);
    m.exchange(&r, Duration::ZERO);
    let t = text(&m);
    let pii: Vec<&str> = samples(&t)
        .into_iter()
        .filter(|l| l.starts_with("custody_pii_findings_total"))
        .collect();
    assert_eq!(
        pii,
        [
            r#"custody_pii_findings_total{kind="EMAIL",direction="request"} 3"#,
            r#"custody_pii_findings_total{kind="EMAIL",direction="response"} 1"#,
            r#"custody_pii_findings_total{kind="MRN",direction="request"} 3"#,
            r#"custody_pii_findings_total{kind="MRN",direction="response"} 2"#,
            r#"custody_pii_findings_total{kind="other",direction="response"} 1"#,
        ]
    );
}

#[test]
fn request_decodings_are_counted_by_encoding_and_result() {
    use crate::decode::{Coding, Label, Outcome};
    let m = metrics(&["r"]);
    assert!(text(&m).contains("# TYPE custody_request_decodings_total counter\n"));
    m.decoding(Label::One(Coding::Gzip), Outcome::Decoded);
    m.decoding(Label::One(Coding::Gzip), Outcome::Decoded);
    m.decoding(Label::Stacked, Outcome::Ratio);
    m.decoding(Label::Other, Outcome::Unsupported);
    let t = text(&m);
    let decodings: Vec<&str> = samples(&t)
        .into_iter()
        .filter(|l| l.starts_with("custody_request_decodings_total"))
        .collect();
    assert_eq!(
        decodings,
        [
            r#"custody_request_decodings_total{encoding="gzip",result="decoded"} 2"#,
            r#"custody_request_decodings_total{encoding="stacked",result="ratio"} 1"#,
            r#"custody_request_decodings_total{encoding="other",result="unsupported"} 1"#,
        ]
    );
}

#[test]
fn every_family_has_help_and_type_once_before_its_samples() {
    let m = metrics(&["r"]);
    m.exchange(&row(Some("r"), Some("allow"), Some(200)), Duration::ZERO);
    let t = text(&m);
    let mut seen = std::collections::HashSet::new();
    let mut current = String::new();
    for line in t.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().expect("name").to_owned();
            assert!(seen.insert(name.clone()), "{name} twice");
            current = name;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("type");
            assert_eq!(name, current);
            assert!(["counter", "gauge", "histogram"].contains(&kind));
        } else {
            let name = line.split(['{', ' ']).next().expect("name");
            let family = name
                .strip_suffix("_bucket")
                .or_else(|| name.strip_suffix("_sum"))
                .or_else(|| name.strip_suffix("_count"))
                .filter(|_| current.ends_with("_seconds"))
                .unwrap_or(name);
            assert_eq!(family, current, "{line}");
            assert!(
                line.rsplit(' ')
                    .next()
                    .expect("value")
                    .parse::<f64>()
                    .is_ok()
            );
        }
    }
    assert!(seen.contains("custody_requests_total"));
    assert!(seen.contains("custody_added_latency_seconds"));
}
