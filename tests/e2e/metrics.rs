//! `/metrics` end to end: allowed, policy-denied, unauthenticated, PII-carrying and
//! unrouted requests through the real binary, then exact counter values on a scrape
//! — and as many requests counted as there are audit rows, group by group.

use custody_tests::client::{post_json, request, send_collect};
use custody_tests::harness::{Custody, admin_get};
use custody_tests::idp::Idp;
use custody_tests::stub::Stub;
use http_body_util::Full;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const POLICY: &str = r#"
format: 1
settings: {token_scopes: ignore}
roles:
  analyst: {grants: [model:standard]}
models:
  "gpt-4o-mini*": [model:standard]
  "gpt-4o*": [model:premium]
"#;

/// The samples of an exposition, `name{labels}` → value.
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').expect("sample");
            (key.to_owned(), value.parse().expect("value"))
        })
        .collect()
}

fn scrape(custody: &Custody) -> BTreeMap<String, f64> {
    let (status, text) = admin_get(custody.admin, "/metrics").expect("scrape");
    assert_eq!(status, 200);
    parse(&text)
}

fn sum(samples: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

fn chat(model: &str, content: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": content}]})
}

async fn call(custody: &Custody, model: &str, content: &str, token: Option<&str>) -> u16 {
    let mut req = post_json("/openai/v1/chat/completions", &chat(model, content));
    if let Some(token) = token {
        req.headers_mut()
            .insert("x-custody-user-token", token.parse().expect("token"));
    }
    let (parts, _) = send_collect(&custody.unix(), req).await.expect("request");
    parts.status.as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_counted_once_each_with_route_decision_and_class() {
    let stub = Stub::start().await;
    let idp = Idp::new(&stub.url());
    stub.set_jwks(idp.jwks());
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).expect("write");
    let mut custody = Custody::start(&format!(
        "identity:\n  issuers:\n    - {{issuer: '{u}', audiences: [custody], algorithms: [ES256]}}\nroutes:\n  - {{name: openai, prefix: /openai, upstream: '{u}', kind: openai}}\npolicy: {{file: '{p}'}}\n",
        u = stub.url(),
        p = policy.display()
    ));
    let before = scrape(&custody);
    assert_eq!(sum(&before, "custody_requests_total"), 0.0);
    assert_eq!(
        before["custody_identity_failures_total{reason=\"malformed\"}"],
        0.0
    );
    let fetched = format!(
        "custody_jwks_fetches_total{{issuer=\"{}\",result=\"succeeded\"}}",
        stub.url()
    );
    assert_eq!(before[&fetched], 1.0, "keys loaded once at startup");
    assert_eq!(before["custody_added_latency_seconds_count"], 0.0);

    let token = idp.token("auth0|alice");
    assert_eq!(call(&custody, "gpt-4o-mini", "hi", Some(&token)).await, 200);
    assert_eq!(
        call(&custody, "gpt-4o-mini", "again", Some(&token)).await,
        200
    );
    let pii = "mail ada.lovelace@example.org or call, card 4111 1111 1111 1111";
    assert_eq!(call(&custody, "gpt-4o-mini", pii, Some(&token)).await, 200);
    assert_eq!(
        call(&custody, "gpt-4o", "hi", Some(&token)).await,
        403,
        "premium model: denied by policy"
    );
    assert_eq!(
        call(&custody, "gpt-4o-mini", "hi", Some("not-a-jwt")).await,
        401
    );
    assert_eq!(call(&custody, "gpt-4o-mini", "hi", None).await, 401);
    let req = request("GET", "/nowhere")
        .body(Full::default())
        .expect("req");
    let (parts, _) = send_collect(&custody.tcp(), req).await.expect("request");
    assert_eq!(parts.status, 404);

    // The rows are emitted as the responses end; allow the last one a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let m = loop {
        let m = scrape(&custody);
        if sum(&m, "custody_requests_total") >= 7.0 || Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let requests: BTreeMap<&str, f64> = m
        .iter()
        .filter(|(k, _)| k.starts_with("custody_requests_total"))
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        requests,
        BTreeMap::from([
            (
                r#"custody_requests_total{route="openai",decision="allow",code="2xx"}"#,
                3.0
            ),
            (
                r#"custody_requests_total{route="openai",decision="deny",code="4xx"}"#,
                3.0
            ),
            (
                r#"custody_requests_total{route="",decision="none",code="4xx"}"#,
                1.0
            ),
        ])
    );
    assert_eq!(
        m[r#"custody_request_duration_seconds_count{route="openai"}"#],
        6.0
    );
    assert_eq!(
        m[r#"custody_request_duration_seconds_count{route=""}"#],
        1.0
    );
    assert_eq!(
        m[r#"custody_request_duration_seconds_bucket{route="openai",le="+Inf"}"#],
        6.0
    );
    assert_eq!(
        m["custody_added_latency_seconds_count"], 3.0,
        "observed for the forwarded requests only"
    );
    assert!(m["custody_added_latency_seconds_sum"] > 0.0);
    assert_eq!(
        m[r#"custody_identity_failures_total{reason="malformed"}"#],
        1.0
    );
    assert_eq!(
        m[r#"custody_identity_failures_total{reason="missing"}"#],
        1.0
    );
    assert_eq!(sum(&m, "custody_identity_failures_total"), 2.0);
    assert_eq!(m[&fetched], 1.0);
    assert_eq!(stub.jwks_fetches(), 1);
    assert_eq!(
        m[r#"custody_pii_findings_total{kind="EMAIL",direction="request"}"#],
        1.0
    );
    assert_eq!(
        m[r#"custody_pii_findings_total{kind="CARD",direction="request"}"#],
        1.0
    );
    assert_eq!(
        m[r#"custody_policy_reloads_total{result="succeeded"}"#],
        0.0
    );
    assert_eq!(m[r#"custody_policy_reloads_total{result="failed"}"#], 0.0);

    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len() as f64, sum(&m, "custody_requests_total"));
    // Group by group, the rows say what the counters say.
    let mut from_rows: BTreeMap<String, f64> = BTreeMap::new();
    let mut findings: BTreeMap<String, f64> = BTreeMap::new();
    for r in &rows {
        let class = r["outcome"]["status"]
            .as_i64()
            .map_or("none".to_owned(), |s| format!("{}xx", s / 100));
        let key = format!(
            "custody_requests_total{{route=\"{}\",decision=\"{}\",code=\"{class}\"}}",
            r["action"]["route"].as_str().unwrap_or(""),
            r["policy"]["decision"].as_str().unwrap_or("none"),
        );
        *from_rows.entry(key).or_default() += 1.0;
        for f in r["content_safety"]["redactions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let direction = if f["path"].as_str().expect("path").starts_with("response") {
                "response"
            } else {
                "request"
            };
            let key = format!(
                "custody_pii_findings_total{{kind=\"{}\",direction=\"{direction}\"}}",
                f["kind"].as_str().expect("kind")
            );
            *findings.entry(key).or_default() += f["count"].as_f64().expect("count");
        }
    }
    let counted: BTreeMap<String, f64> = requests
        .iter()
        .map(|(k, v)| ((*k).to_owned(), *v))
        .collect();
    assert_eq!(from_rows, counted);
    let counted: BTreeMap<String, f64> = m
        .iter()
        .filter(|(k, _)| k.starts_with("custody_pii_findings_total"))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(findings, counted);
}
