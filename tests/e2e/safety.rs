//! Content safety end to end: log by default, redact and block by config, JSON
//! paths in the row, responses scanned, and a canary run: 2 000 seeded PII values
//! through custody, none of them in the audit rows.

use custody_tests::client::{post_json, send_collect};
use custody_tests::harness::Custody;
use custody_tests::rows::row;
use custody_tests::stub::Stub;
use serde_json::{Value, json};

fn routes(stub: &Stub) -> String {
    format!(
        "routes:\n  - {{name: openai, prefix: /openai, upstream: '{u}', kind: openai}}\n  - name: crm\n    prefix: /crm\n    upstream: '{u}/echo'\n    kind: http\n    tools: [{{method: POST, path: /notes, tool: 'crm:notes:add'}}]\n  - {{name: tools, prefix: /mcp, upstream: '{u}/echo', kind: mcp}}\n",
        u = stub.url()
    )
}

async fn post(custody: &Custody, path: &str, body: &Value, id: &str) -> (u16, Value) {
    let mut req = post_json(path, body);
    req.headers_mut()
        .insert("x-request-id", id.parse().expect("id"));
    let (parts, body) = send_collect(&custody.unix(), req).await.expect("request");
    (
        parts.status.as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

const EMAIL: &str = "ada.lovelace@example.org";
const CARD: &str = "4111 1111 1111 1111";

fn note() -> Value {
    json!({"contact": "c-1", "text": format!("Reach Ada at {EMAIL}, card {CARD}.")})
}

#[tokio::test]
async fn without_config_every_detector_logs_and_the_row_keeps_no_value() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let (status, echoed) = post(&custody, "/crm/notes", &note(), "logged").await;
    assert_eq!(status, 200);
    let seen: Value = serde_json::from_str(echoed["body"].as_str().expect("body")).expect("json");
    assert_eq!(seen, note(), "log mode forwards the body untouched");
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": format!("my mail is {EMAIL}")}]});
    let (status, _) = post(&custody, "/openai/v1/chat/completions", &chat, "chat").await;
    assert_eq!(status, 200);
    custody.stop();
    let rows = custody.rows();
    let r = row(&rows, "logged");
    assert_eq!(r["content_safety"]["pii_detected"], true);
    let found = r["content_safety"]["redactions"].as_array().expect("list");
    for (kind, path) in [("EMAIL", "$.text"), ("CARD", "$.text")] {
        assert!(
            found.iter().any(|f| f["kind"] == kind
                && f["path"] == path
                && f["action"] == "log"
                && f["count"] == 1),
            "{kind} at {path}: {found:?}"
        );
    }
    // The echo is a JSON document: scanned as JSON, its finding is placed at the
    // member that carries the request body back.
    assert!(
        found
            .iter()
            .any(|f| f["path"] == "response.body" && f["kind"] == "EMAIL"),
        "the echoed response carries the e-mail back: {found:?}"
    );
    // Schema v8: where each value was found and what happened to it, and the row's
    // one handling value.
    for f in found {
        let side = if f["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("response"))
        {
            "response"
        } else {
            "request"
        };
        assert_eq!(
            (&f["side"], &f["handling"]),
            (&json!(side), &json!("logged")),
            "{f}"
        );
    }
    assert_eq!(r["content_safety"]["handling"], "logged");
    assert_eq!(r["action"]["housekeeping"], false);
    let params = r["action"]["parameters"].as_str().expect("parameters");
    assert!(
        params.contains("[REDACTED:EMAIL]") && params.contains("[REDACTED:CARD]"),
        "{params}"
    );
    let chat = row(&rows, "chat");
    assert_eq!(
        chat["content_safety"]["redactions"][0]["path"],
        "$.messages[0].content"
    );
    // The model asked for (and judged), beside the one the provider reported.
    assert_eq!(chat["action"]["model"], "gpt-4o-mini");
    assert!(chat["usage"]["model"].is_string(), "{chat}");
    let all = serde_json::to_string(&rows).expect("json");
    assert!(
        !all.contains(EMAIL) && !all.contains(CARD),
        "a raw value reached the audit rows"
    );
}

#[tokio::test]
async fn redact_and_block_per_config_with_json_rpc_errors_on_mcp() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&format!(
        "{}safety:\n  detectors: {{EMAIL: redact, CARD: block}}\n  routes: {{openai: {{detectors: {{CARD: redact}}}}}}\n",
        routes(&stub)
    ));
    let redacted = json!({"contact": "c-1", "text": format!("Reach Ada at {EMAIL}.")});
    let (status, echoed) = post(&custody, "/crm/notes", &redacted, "redacted").await;
    assert_eq!(status, 200);
    let seen = echoed["body"].as_str().expect("body");
    assert!(
        seen.contains("[REDACTED:EMAIL]") && !seen.contains(EMAIL),
        "{seen}"
    );

    let (status, body) = post(&custody, "/crm/notes", &note(), "blocked").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["type"], "content_blocked");

    let rpc = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                     "params": {"name": "pay", "arguments": {"card": CARD}}});
    let (status, body) = post(&custody, "/mcp/mcp", &rpc, "mcp-blocked").await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], 3);
    assert_eq!(body["error"]["code"], -32002);
    assert_eq!(body["error"]["data"]["rule"], "safety:block:CARD");

    // The route's own setting wins over the global one: cards are redacted there.
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": format!("card {CARD}")}]});
    let (status, _) = post(
        &custody,
        "/openai/v1/chat/completions",
        &chat,
        "route-redacts",
    )
    .await;
    assert_eq!(status, 200);
    custody.stop();
    let rows = custody.rows();
    let r = row(&rows, "redacted");
    assert_eq!(r["content_safety"]["redactions"][0]["action"], "redact");
    assert_eq!(r["content_safety"]["redactions"][0]["side"], "request");
    assert_eq!(r["content_safety"]["redactions"][0]["handling"], "redacted");
    assert_eq!(r["content_safety"]["handling"], "redacted");
    let r = row(&rows, "blocked");
    assert_eq!(r["policy"]["decision"], "deny");
    assert_eq!(r["policy"]["rule"], "safety:block:CARD");
    assert_eq!(r["outcome"]["status"], 403);
    // The note carried an e-mail (set to redact) and a card (block): nothing of it
    // was forwarded, so both values were blocked, whatever their kind's action.
    let found = r["content_safety"]["redactions"].as_array().expect("list");
    let got: Vec<_> = found
        .iter()
        .map(|f| {
            (
                f["kind"].as_str(),
                f["action"].as_str(),
                f["handling"].as_str(),
            )
        })
        .collect();
    assert!(
        got.contains(&(Some("EMAIL"), Some("redact"), Some("blocked"))),
        "{got:?}"
    );
    assert!(
        got.contains(&(Some("CARD"), Some("block"), Some("blocked"))),
        "{got:?}"
    );
    assert_eq!(r["content_safety"]["handling"], "blocked");
    let r = row(&rows, "mcp-blocked");
    assert_eq!(r["policy"]["rule"], "safety:block:CARD");
    assert_eq!(r["content_safety"]["handling"], "blocked");
    assert_eq!(r["action"]["parameters"], r#"{"card":"[REDACTED:CARD]"}"#);
    let r = row(&rows, "route-redacts");
    assert_eq!(r["content_safety"]["redactions"][0]["action"], "redact");
}

/// A Luhn-valid 16-digit Visa-range number from `seed`.
fn card(seed: u64) -> String {
    let mut digits: Vec<u32> = format!("4{:014}", seed * 7_919 % 100_000_000_000_000)
        .chars()
        .map(|c| c.to_digit(10).expect("digit"))
        .collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                *d
            }
        })
        .sum();
    digits.push((10 - sum % 10) % 10);
    let s: String = digits
        .iter()
        .map(|d| char::from_digit(*d, 10).expect("digit"))
        .collect();
    format!("{} {} {} {}", &s[0..4], &s[4..8], &s[8..12], &s[12..16])
}

#[tokio::test]
async fn canary_thousands_of_seeded_values_never_reach_the_audit_rows() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let mut canaries = Vec::new();
    for i in 0..400u64 {
        let values = [
            format!("canary.{i}.x{}@example-{}.com", i * 31, i % 7),
            card(i + 1),
            format!("{:03}-{:02}-{:04}", 101 + i % 500, 11 + i % 80, 1001 + i),
            format!("AKIA{:016}", 1_000_000_000_000 + i * 977).replace('0', "Q"),
            format!("canary{i}@corp.example.net"),
        ];
        let text = values.join(" and ");
        canaries.extend(values);
        let (path, body) = if i % 2 == 0 {
            (
                "/crm/notes",
                json!({"contact": format!("c-{i}"), "text": text}),
            )
        } else {
            (
                "/mcp/mcp",
                json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                       "params": {"name": "note", "arguments": {"text": text, "list": [text.clone()]}}}),
            )
        };
        let (status, _) = post(&custody, path, &body, &format!("c{i}")).await;
        assert_eq!(status, 200);
        let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]});
        post(
            &custody,
            "/openai/v1/chat/completions",
            &chat,
            &format!("l{i}"),
        )
        .await;
    }
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 800);
    assert_eq!(canaries.len(), 2000);
    let all = serde_json::to_string(&rows).expect("json");
    let leaked: Vec<&String> = canaries
        .iter()
        .filter(|v| all.contains(v.as_str()))
        .collect();
    assert!(
        leaked.is_empty(),
        "{} of {} values leaked, e.g. {:?}",
        leaked.len(),
        canaries.len(),
        &leaked[..leaked.len().min(5)]
    );
    assert!(
        rows.iter()
            .all(|r| r["content_safety"]["pii_detected"] == true),
        "every request carried PII"
    );
}

#[tokio::test]
async fn a_value_the_model_streams_across_many_deltas_is_found_in_the_response() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let text = format!("You can write to {EMAIL} today.");
    let chat = json!({"model": "gpt-4o-mini", "stream": true,
                      "messages": [{"role": "user", "content": text}]});
    let mut req = post_json("/openai/v1/chat/completions", &chat);
    req.headers_mut()
        .insert("x-request-id", "streamed".parse().expect("id"));
    req.headers_mut()
        .insert("x-stub-echo", "1".parse().expect("v"));
    // 12 deltas: the address is cut into pieces of three or four characters.
    req.headers_mut()
        .insert("x-stub-chunks", "12".parse().expect("v"));
    let (parts, body) = send_collect(&custody.unix(), req).await.expect("request");
    assert_eq!(parts.status, 200);
    let raw = String::from_utf8(body.to_vec()).expect("utf-8");
    assert!(!raw.contains(EMAIL), "the address is split across events");
    custody.stop();
    let rows = custody.rows();
    let found = row(&rows, "streamed")["content_safety"]["redactions"]
        .as_array()
        .expect("list")
        .clone();
    assert!(
        found
            .iter()
            .any(|f| f["kind"] == "EMAIL" && f["path"] == "response.choices[0]" && f["count"] == 1),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f["kind"] == "EMAIL" && f["path"] == "$.messages[0].content"),
        "{found:?}"
    );
}

#[tokio::test]
async fn a_json_response_is_scanned_where_its_values_are_in_log_mode_as_in_redact_mode() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&format!(
        "{}  - {{name: held, prefix: /held, upstream: '{}/echo', kind: http}}\nsafety:\n  routes: {{held: {{responses: redact, detectors: {{EMAIL: redact}}}}}}\n",
        routes(&stub),
        stub.url()
    ));
    // A model's answer (log mode): the address is placed in the message.
    let text = format!("You can write to {EMAIL} today.");
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]});
    let mut req = post_json("/openai/v1/chat/completions", &chat);
    req.headers_mut()
        .insert("x-request-id", "answer".parse().expect("id"));
    req.headers_mut()
        .insert("x-stub-echo", "1".parse().expect("v"));
    let (parts, body) = send_collect(&custody.unix(), req).await.expect("request");
    assert_eq!(parts.status, 200);
    let answer: Value = serde_json::from_slice(&body).expect("json");
    assert!(
        answer["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|c| c.contains(EMAIL)),
        "log mode passes the answer untouched: {answer}"
    );
    // The same response from the upstream's side (the echo of a header), on a
    // route that logs and on one that redacts responses.
    for (prefix, id) in [("/crm", "logged"), ("/held", "redacted")] {
        let mut req = post_json(&format!("{prefix}/notes"), &json!({"contact": "c-1"}));
        let headers = req.headers_mut();
        headers.insert("x-request-id", id.parse().expect("id"));
        headers.insert("x-note", format!("mail {EMAIL}").parse().expect("note"));
        let (parts, body) = send_collect(&custody.unix(), req).await.expect("request");
        assert_eq!(parts.status, 200, "{id}");
        let echoed = String::from_utf8_lossy(&body).contains(EMAIL);
        assert_eq!(echoed, id == "logged", "{id}");
    }
    custody.stop();
    let rows = custody.rows();
    for (id, path, action) in [
        ("answer", "response.choices[0].message.content", "log"),
        ("logged", "response.headers['x-note']", "log"),
        ("redacted", "response.headers['x-note']", "redact"),
    ] {
        let found: Vec<_> = row(&rows, id)["content_safety"]["redactions"]
            .as_array()
            .expect("list")
            .iter()
            .filter(|f| f["side"] == "response" && f["kind"] == "EMAIL")
            .map(|f| (f["path"].clone(), f["action"].clone(), f["count"].clone()))
            .collect();
        assert_eq!(found, [(json!(path), json!(action), json!(1))], "{id}");
    }
}

#[tokio::test]
async fn responses_are_redacted_where_configured_and_refused_when_they_cannot_be() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&format!(
        "{}safety:\n  detectors: {{EMAIL: redact, CARD: block}}\n  routes: {{crm: {{responses: redact}}}}\nlimits: {{max_redacted_response: 4KiB}}\n",
        routes(&stub)
    ));
    // The stub echoes the request's headers; the body carries nothing to redact,
    // so every value in the response comes from the upstream's side.
    let target = custody.unix();
    let send = |id: &'static str, note: String| {
        let mut req = post_json("/crm/notes", &json!({"contact": "c-1"}));
        let headers = req.headers_mut();
        headers.insert("x-request-id", id.parse().expect("id"));
        headers.insert("x-note", note.parse().expect("note"));
        headers.insert("accept-encoding", "gzip, br".parse().expect("encoding"));
        send_collect(&target, req)
    };
    let (parts, body) = send("held", format!("mail {EMAIL}, card {CARD}"))
        .await
        .expect("request");
    assert_eq!(parts.status, 200);
    assert_eq!(
        parts.headers["content-length"].to_str().expect("length"),
        body.len().to_string(),
        "the length is the redacted body's"
    );
    let echoed: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        echoed["headers"]["x-note"], "mail [REDACTED:EMAIL], card [REDACTED:CARD]",
        "a blocked kind is redacted in a response: it cannot be refused any more"
    );
    assert_eq!(
        echoed["headers"]["accept-encoding"], "identity",
        "custody asks the upstream for a body it can read"
    );

    let (parts, body) = send("too-large", "x".repeat(5000)).await.expect("request");
    assert_eq!(parts.status, 502);
    let err: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(err["error"]["type"], "response_unscannable");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("limits.max_redacted_response")),
        "{err}"
    );

    // Routes without `responses: redact` stream responses as they are (log mode).
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _) = post(&custody, "/openai/v1/chat/completions", &chat, "streamed").await;
    assert_eq!(status, 200);
    custody.stop();
    let rows = custody.rows();
    let r = row(&rows, "held");
    let found = r["content_safety"]["redactions"].as_array().expect("list");
    for kind in ["EMAIL", "CARD"] {
        assert!(
            found.iter().any(|f| f["kind"] == kind
                && f["path"] == "response.headers['x-note']"
                && f["action"] == "redact"),
            "{kind}: {found:?}"
        );
    }
    assert_eq!(r["outcome"]["status"], 200);
    let r = row(&rows, "too-large");
    assert_eq!(r["outcome"]["status"], 502);
    assert_eq!(
        r["policy"]["decision"], "allow",
        "the call itself was allowed"
    );
    assert!(
        r["outcome"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("could not redact the response")),
        "{r}"
    );
    assert_eq!(row(&rows, "streamed")["outcome"]["status"], 200);
    let all = serde_json::to_string(&rows).expect("json");
    assert!(!all.contains(EMAIL) && !all.contains(CARD));
}
