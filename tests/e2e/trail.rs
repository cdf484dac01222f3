//! `custody trail`: a real session written by the real binary (a model turn asking
//! for a tool, the MCP call carrying it out, the turn returning its result), read
//! back step by step by `custody trail`, as text and as JSON; an unknown session
//! exits 1, an ambiguous prefix and a remote sink exit 2.

use super::sessions::{call, config};
use custody_tests::harness::{Custody, custody_bin};
use custody_tests::idp::Idp;
use custody_tests::rows::{key_of, row};
use custody_tests::stub::Stub;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};

/// Runs `custody trail` with `args`.
pub(super) fn trail(args: &[&str]) -> Output {
    Command::new(custody_bin())
        .arg("trail")
        .args(args)
        .env_remove("CUSTODY_CONFIG")
        // Object storage that is not there (a closed port): fails fast.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "nobody")
        .env("AWS_SECRET_ACCESS_KEY", "nothing")
        .output()
        .expect("run custody trail")
}

pub(super) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trail_prints_a_session_step_by_step_with_its_links() {
    let stub = Stub::start().await;
    let idp = Idp::new(&stub.url());
    stub.set_jwks(idp.jwks());
    let mut custody = Custody::start(&config(&stub));
    let alice = idp.token("auth0|alice");
    let bob = idp.token("auth0|bob");
    let as_alice = [
        ("x-custody-user-token", alice.as_str()),
        ("x-custody-session", "conv-trail"),
    ];
    let tools = json!([{"type": "function", "function": {"name": "search_contacts", "parameters": {
        "type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}}}}]);

    let ask = json!({"model": "gpt-4o-mini", "tools": tools,
                     "messages": [{"role": "user", "content": "find ada@example.com"}]});
    assert_eq!(
        call(
            &custody,
            "/openai/v1/chat/completions",
            &ask,
            &as_alice,
            "turn-1"
        )
        .await
        .0,
        200
    );
    let rpc = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                     "params": {"name": "search_contacts", "arguments": {"limit": 1, "query": "stub query"}}});
    assert_eq!(
        call(&custody, "/mcp/mcp", &rpc, &as_alice, "tool-1")
            .await
            .0,
        200
    );
    let answer = json!({"model": "gpt-4o-mini", "tools": tools, "messages": [
        {"role": "user", "content": "find ada@example.com"},
        {"role": "assistant", "tool_calls": [{"id": "call_stub_1", "type": "function",
            "function": {"name": "search_contacts", "arguments": "{\"query\":\"stub query\",\"limit\":1}"}}]},
        {"role": "tool", "tool_call_id": "call_stub_1", "content": "Ada Lovelace"}]});
    assert_eq!(
        call(
            &custody,
            "/openai/v1/chat/completions",
            &answer,
            &as_alice,
            "turn-2"
        )
        .await
        .0,
        200
    );
    // Another user's session with the same header value: not part of Alice's trail.
    let as_bob = [
        ("x-custody-user-token", bob.as_str()),
        ("x-custody-session", "conv-trail"),
    ];
    assert_eq!(
        call(
            &custody,
            "/openai/v1/chat/completions",
            &ask,
            &as_bob,
            "bob-1"
        )
        .await
        .0,
        200
    );
    custody.stop();

    let rows = custody.rows();
    let session = row(&rows, "turn-1")["session_id"]
        .as_str()
        .expect("session id")
        .to_owned();
    let turn1 = key_of(&rows, "turn-1");
    let sink = custody.audit_dir.display().to_string();

    // Text: one block per step, in step order, links resolved to steps.
    let out = trail(&["--session", &session, "--sink", &sink]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let headers: Vec<&str> = stdout.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(headers.len(), 3, "{stdout}");
    assert!(headers[0].starts_with("#1 "), "{stdout}");
    assert!(
        headers[0].contains(
            " auth0|alice (analyst, org_acme_corp) llm openai chat.completions -> 200 allow ("
        ),
        "{stdout}"
    );
    assert!(
        headers[1].contains(
            " auth0|alice (analyst, org_acme_corp) tool crm crm:search_contacts -> 200 allow ("
        ),
        "{stdout}"
    );
    assert!(headers[2].starts_with("#3 "), "{stdout}");
    assert!(
        stdout.starts_with(&format!("session {session} (header): 3 calls")),
        "{stdout}"
    );
    for expected in [
        format!("    request {turn1} (client id turn-1),"),
        "    PII: EMAIL x1 at $.messages[0].content (log)".to_owned(),
        "    asked for: search_contacts (call_stub_1, carried out at step 2)".to_owned(),
        format!("    carries out call_stub_1 asked at step 1 (req {turn1})"),
        format!(
            "    returns results of call_stub_1 asked at step 1 (req {turn1}), carried out at step 2"
        ),
        "    model gpt-4o-mini".to_owned(),
        "total: 2 llm, 1 tool, 0 http; 0 denied;".to_owned(),
    ] {
        assert!(stdout.contains(&expected), "{expected:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("bob-1"), "{stdout}");

    // JSON: one object per row, in step order.
    let out = trail(&["--session", &session, "--sink", &sink, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let objects: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    let ids: Vec<_> = objects
        .iter()
        .map(|o| o["client_request_id"].clone())
        .collect();
    assert_eq!(ids, [json!("turn-1"), json!("tool-1"), json!("turn-2")]);
    let keys: Vec<_> = objects.iter().map(|o| o["request_id"].clone()).collect();
    let want: Vec<_> = ["turn-1", "tool-1", "turn-2"]
        .iter()
        .map(|id| json!(key_of(&rows, id)))
        .collect();
    assert_eq!(keys, want);
    assert_eq!(objects[1]["session_step"], 2);
    assert_eq!(objects[1]["links"]["tool_call_id"], "call_stub_1");
    assert_eq!(objects[1]["links"]["model_request_id"], turn1.as_str());
    assert_eq!(
        objects[2]["links"]["tool_results"],
        json!([{"tool_call_id": "call_stub_1", "model_request_id": turn1}])
    );
    assert_eq!(
        objects[0]["action"]["model_tool_calls"][0]["name"],
        "search_contacts"
    );

    // A unique prefix names the session too; a prefix of two sessions does not.
    let prefix = &session[..session.len() - 3];
    let out = trail(&["--session", prefix, "--sink", &sink, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 3);
    let out = trail(&["--session", "hdr:", "--sink", &sink]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("prefix of 2 sessions"),
        "{}",
        text(&out.stderr)
    );

    unknown_and_remote(&custody.audit_dir, &session);
}

fn unknown_and_remote(audit_dir: &Path, session: &str) {
    // A file that is not Parquet is reported and skipped; the others are read.
    let garbage = audit_dir.join("garbage.parquet");
    std::fs::write(&garbage, b"not parquet").expect("write");
    let sink = audit_dir.display().to_string();
    let out = trail(&["--session", session, "--sink", &sink]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: skipped") && err.contains(&garbage.display().to_string()),
        "{err}"
    );
    assert_eq!(
        text(&out.stdout)
            .lines()
            .filter(|l| l.starts_with('#'))
            .count(),
        3
    );

    let files = custody_tests::rows::parquet_files(audit_dir).len();
    let out = trail(&["--session", "hdr:nope", "--sink", &sink]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(err.contains("no row has session id \"hdr:nope\""), "{err}");
    assert!(
        err.contains(&format!("searched {files} audit file")),
        "{err}"
    );

    // A remote sink is read (tests/e2e/verify.rs reads one); one that cannot be
    // reached is a usage error naming it.
    let out = trail(&["--session", "x", "--sink", "s3://bucket/audit"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("cannot list s3://bucket/audit"), "{err}");

    // A config whose sink is remote is read there, not as the default directory.
    let remote = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(remote.path(), "audit:\n  sink: s3://bucket/audit\n").expect("write config");
    let config = remote.path().to_str().expect("utf-8 path");
    let out = trail(&["--session", "x", "--config", config]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("cannot list s3://bucket/audit"), "{err}");

    let out = trail(&["--session", "x", "--sink", &format!("{sink}/missing")]);
    assert_eq!(out.status.code(), Some(2));
    let out = trail(&["--sink", &sink]);
    assert_eq!(out.status.code(), Some(2), "--session is required");
}
