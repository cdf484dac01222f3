//! Content safety sees everything custody decodes into the parameters: the query
//! string's values, form body fields and tool-template path parameters are scanned
//! with the same detectors and actions as a JSON body, after normalisation
//! (full-width characters, zero-width characters, split content parts). Each test
//! sends through the real binary to a raw upstream that records the exact bytes
//! ([`Recorder`]) and compares them with the rows: a blocked request reaches
//! nobody, a redacted value never reaches the upstream, and the row's
//! `content_safety` agrees with its (redacted) `action.parameters`.

use custody_tests::harness::Custody;
use custody_tests::recorder::{Recorder, raw_request};
use serde_json::Value;

const CARD: &str = "4111111111111111";

/// A recorder behind an `http` route with tools and an `openai` route, with the
/// given `safety` section.
async fn setup(safety: &str) -> (Recorder, Custody) {
    let recorder = Recorder::start().await;
    let custody = Custody::start(&format!(
        "routes:\n\
         \x20 - name: crm\n    prefix: /crm\n    upstream: '{r}/api'\n    kind: http\n\
         \x20   tools:\n\
         \x20     - {{method: GET, path: '/contacts/{{id}}', tool: 'crm:contacts:read'}}\n\
         \x20     - {{method: POST, path: '/notes', tool: 'crm:notes:add'}}\n\
         \x20 - {{name: openai, prefix: /openai, upstream: '{r}', kind: openai}}\n\
         safety: {safety}\n",
        r = recorder.url(),
    ));
    (recorder, custody)
}

/// Sends `line` (`GET /path?query`) tagged `tag`, with extra header lines.
async fn send(custody: &Custody, line: &str, tag: &str, headers: &[&str], body: &[u8]) -> u16 {
    let mut head = format!("{line} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-request-id: {tag}");
    for h in headers {
        head.push_str("\r\n");
        head.push_str(h);
    }
    raw_request(custody.tcp, &head, body).await.0
}

const FORM: &str = "content-type: application/x-www-form-urlencoded";

fn row_for<'a>(rows: &'a [Value], tag: &str) -> &'a Value {
    let hits: Vec<&Value> = rows
        .iter()
        .filter(|r| r["client_request_id"] == tag || r["request_id"] == tag)
        .collect();
    assert_eq!(hits.len(), 1, "one row for {tag}: {rows:#?}");
    hits[0]
}

/// The row found `kind` at `path` with `action`, says PII was detected, and its
/// parameters hold no raw value.
fn assert_found(row: &Value, kind: &str, path: &str, action: &str) {
    let cs = &row["content_safety"];
    assert_eq!(cs["pii_detected"], true, "{row:#}");
    let found = cs["redactions"].as_array().expect("redactions");
    assert!(
        found
            .iter()
            .any(|f| f["kind"] == kind && f["path"] == path && f["action"] == action),
        "{kind} at {path} ({action}): {found:?}"
    );
    assert_clean(row);
}

/// No form of the raw values anywhere in the row's action: parameters, path, raw
/// path, upstream.
fn assert_clean(row: &Value) {
    let params = row["action"].to_string();
    for raw in [
        "alice",
        "%40example",
        "4111111111111111",
        "４",
        "ａ",
        "\\u200b",
        "\u{200B}",
    ] {
        assert!(!params.contains(raw), "{raw:?} in parameters {params}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_in_the_query_or_a_form_is_blocked_and_reaches_nobody() {
    let (recorder, mut custody) = setup("{detectors: {EMAIL: block}}").await;
    let queries = [
        "email=alice%40example.com",
        "q=acme&email=alice@example.com",
        "who=mail+alice%40example.com+now",
        // Full-width at sign (UTF-8, percent-encoded) and full-width letters.
        "email=alice%EF%BC%A0example.com",
        "email=%EF%BD%81lice%EF%BC%A0example%EF%BC%8Ecom",
        // Zero-width space, word joiner and BOM inside the address.
        "email=alice%E2%80%8B%40exa%E2%81%A0mple.com%EF%BB%BF",
    ];
    for (i, q) in queries.iter().enumerate() {
        let tag = format!("query-{i}");
        let status = send(
            &custody,
            &format!("GET /crm/contacts/search?{q}"),
            &tag,
            &[],
            b"",
        )
        .await;
        assert_eq!(status, 403, "{q}");
    }
    let forms = [
        "email=alice%40example.com&note=hi",
        "note=reach+me+at+alice%EF%BC%A0example.com",
        "note=alice%C2%AD%40example.com",
    ];
    for (i, form) in forms.iter().enumerate() {
        let tag = format!("form-{i}");
        let status = send(&custody, "POST /crm/notes", &tag, &[FORM], form.as_bytes()).await;
        assert_eq!(status, 403, "{form}");
    }
    // A value split across the text parts of one message.
    let chat = r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"mail alice@exa"},{"type":"text","text":"mple.com please"}]}]}"#;
    let status = send(
        &custody,
        "POST /openai/v1/chat/completions",
        "parts",
        &["content-type: application/json"],
        chat.as_bytes(),
    )
    .await;
    assert_eq!(status, 403);
    assert!(recorder.requests().is_empty(), "{:#?}", recorder.requests());
    // A clean request passes.
    let status = send(
        &custody,
        "GET /crm/contacts/search?q=acme",
        "clean",
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(recorder.requests().len(), 1);
    custody.stop();
    let rows = custody.rows();
    for i in 0..queries.len() {
        let row = row_for(&rows, &format!("query-{i}"));
        assert_eq!(row["policy"]["rule"], "safety:block:EMAIL");
        let path = if i == 2 {
            "$.query.who"
        } else {
            "$.query.email"
        };
        assert_found(row, "EMAIL", path, "block");
    }
    for (i, path) in ["$.body.email", "$.body.note", "$.body.note"]
        .iter()
        .enumerate()
    {
        let row = row_for(&rows, &format!("form-{i}"));
        assert_eq!(row["policy"]["rule"], "safety:block:EMAIL");
        assert_found(row, "EMAIL", path, "block");
    }
    let row = row_for(&rows, "parts");
    assert_found(row, "EMAIL", "$.messages[0].content[0].text", "block");
    let row = row_for(&rows, "clean");
    assert_eq!(row["content_safety"]["pii_detected"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redaction_rewrites_query_values_and_form_fields_as_forwarded() {
    let (recorder, mut custody) = setup("{detectors: {EMAIL: redact, CARD: redact}}").await;
    let label = "%5BREDACTED%3AEMAIL%5D";
    let cases = [
        (
            "q=acme&email=alice%40example.com&x=%7e1",
            format!("q=acme&email={label}&x=%7e1"),
            "$.query.email",
        ),
        (
            "email=alice%EF%BC%A0example.com",
            format!("email={label}"),
            "$.query.email",
        ),
        (
            "email=alice%E2%80%8B%40example.com&limit=5",
            format!("email={label}&limit=5"),
            "$.query.email",
        ),
        (
            "note=call+alice%40example.com+today",
            format!("note=call%20{label}%20today"),
            "$.query.note",
        ),
    ];
    for (i, (query, _, _)) in cases.iter().enumerate() {
        recorder.clear();
        let tag = format!("query-{i}");
        let status = send(
            &custody,
            &format!("GET /crm/contacts/search?{query}"),
            &tag,
            &[],
            b"",
        )
        .await;
        assert_eq!(status, 200, "{query}");
        let seen = recorder.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path(), "/api/contacts/search");
        assert_eq!(seen[0].query(), Some(cases[i].1.as_str()), "{query}");
    }
    let forms = [
        (
            "email=alice%40example.com&note=hi+there",
            format!("email={label}&note=hi+there"),
            "$.body.email",
        ),
        (
            "note=alice%EF%BC%A0example.com&card=4111+1111+1111+1111",
            format!("note={label}&card=%5BREDACTED%3ACARD%5D"),
            "$.body.note",
        ),
        (
            "card=%EF%BC%94111%E2%80%931111%E2%80%931111%E2%80%931111&n=1",
            "card=%5BREDACTED%3ACARD%5D&n=1".to_owned(),
            "$.body.card",
        ),
    ];
    for (i, (form, want, _)) in forms.iter().enumerate() {
        recorder.clear();
        let tag = format!("form-{i}");
        let status = send(&custody, "POST /crm/notes", &tag, &[FORM], form.as_bytes()).await;
        assert_eq!(status, 200, "{form}");
        let seen = recorder.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(String::from_utf8_lossy(&seen[0].body), *want, "{form}");
        assert_eq!(
            seen[0].header_values("content-length"),
            [want.len().to_string().as_str()],
            "content-length follows the redacted body"
        );
    }
    // A card in a path parameter cannot be redacted in place: blocked, also when
    // written with a full-width digit.
    recorder.clear();
    for (i, id) in [CARD, "%EF%BC%94111111111111111"].iter().enumerate() {
        let status = send(
            &custody,
            &format!("GET /crm/contacts/{id}"),
            &format!("path-{i}"),
            &[],
            b"",
        )
        .await;
        assert_eq!(status, 403, "{id}");
    }
    assert!(recorder.requests().is_empty(), "{:#?}", recorder.requests());
    custody.stop();
    let rows = custody.rows();
    for (i, (_, _, path)) in cases.iter().enumerate() {
        let row = row_for(&rows, &format!("query-{i}"));
        assert_eq!(row["policy"]["decision"], "allow");
        assert_found(row, "EMAIL", path, "redact");
        let params = row["action"]["parameters"].as_str().expect("parameters");
        assert!(params.contains("[REDACTED:EMAIL]"), "{params}");
    }
    for (i, (_, _, path)) in forms.iter().enumerate() {
        let row = row_for(&rows, &format!("form-{i}"));
        let kind = if i == 2 { "CARD" } else { "EMAIL" };
        assert_found(row, kind, path, "redact");
    }
    assert_found(row_for(&rows, "form-1"), "CARD", "$.body.card", "redact");
    for i in 0..2 {
        let row = row_for(&rows, &format!("path-{i}"));
        assert_eq!(row["policy"]["rule"], "safety:block:CARD");
        assert_eq!(row["outcome"]["status"], 403);
        assert_found(row, "CARD", "$.path.id", "block");
        assert_eq!(
            row["action"]["path"], "/crm/contacts/[REDACTED:CARD]",
            "{row}"
        );
    }
}

/// The stored paths (`action.path`, `action.upstream`) are redacted on every
/// request, not only the first: custody remembers the paths it found nothing in
/// and does not scan them again, and a path with something in it must never be
/// taken for one of those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_is_redacted_in_the_row_every_time_it_is_sent() {
    let (recorder, mut custody) = setup("{detectors: {EMAIL: log}}").await;
    let lines = [
        "GET /crm/people/search",
        "GET /crm/people/alice%40example.com",
        "GET /crm/people/search",
        "GET /crm/people/alice%40example.com",
        "GET /crm/people/alice@example.com/notes",
        "GET /crm/people/alice%40example.com",
    ];
    for (i, line) in lines.iter().enumerate() {
        let status = send(&custody, line, &format!("p-{i}"), &[], b"").await;
        assert_eq!(status, 200, "{line}");
    }
    // Logged, not redacted, on the wire: the upstream saw the paths as sent.
    assert_eq!(recorder.requests().len(), lines.len());
    let seen: Vec<String> = recorder
        .requests()
        .iter()
        .map(|r| r.path().to_owned())
        .collect();
    let sent: Vec<String> = lines
        .iter()
        .map(|l| l.replacen("GET /crm", "/api", 1))
        .collect();
    assert_eq!(seen, sent);
    custody.stop();
    let rows = custody.rows();
    for (i, line) in lines.iter().enumerate() {
        let row = row_for(&rows, &format!("p-{i}"));
        assert_eq!(row["outcome"]["status"], 200, "{row}");
        if line.contains("alice") {
            assert_clean(row);
            let path = row["action"]["path"].as_str().expect("path");
            assert!(path.contains("[REDACTED:EMAIL]"), "{path}");
            let upstream = row["action"]["upstream"].as_str().expect("upstream");
            assert!(upstream.contains("[REDACTED:EMAIL]"), "{upstream}");
        } else {
            assert_eq!(row["action"]["path"], "/crm/people/search", "{row}");
        }
    }
}
