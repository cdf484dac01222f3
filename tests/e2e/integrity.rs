//! The trail must be true: what a row says is what the upstream received. Each test
//! sends hostile variants through the real binary to a raw upstream that records the
//! exact bytes it gets ([`Recorder`]) and compares them with the rows: a refused
//! request reaches nobody and its row says why (`policy.rule` `integrity:<reason>`);
//! an allowed one reaches the upstream exactly as the row describes it.

use custody_tests::harness::Custody;
use custody_tests::idp::Idp;
use custody_tests::recorder::{Recorder, raw_request};
use custody_tests::stub::Stub;
use serde_json::{Value, json};

const POLICY: &str = r#"
format: 1
settings: {token_scopes: ignore}
rules:
  - name: no-admin
    effect: deny
    when: {action: {path: "/crm/admin*"}}
  - name: no-delete
    effect: deny
    when: {action: {tool: "mcp:delete_all"}}
  - name: signed-in
    effect: allow
    when: {principal: {anonymous: false}}
"#;

struct Setup {
    _stub: Stub,
    idp: Idp,
    recorder: Recorder,
    custody: Custody,
}

/// A recorder behind `crm` (http, tools), `mcp`, `openai` (the user's token in
/// `Authorization`) and `anthropic` (custody's own `x-api-key`) routes; with the
/// policy above unless `policy` is false.
async fn setup(policy: bool) -> Setup {
    let stub = Stub::start().await;
    let idp = Idp::new(&stub.url());
    stub.set_jwks(idp.jwks());
    let recorder = Recorder::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("anthropic-key");
    std::fs::write(&key, "sk-custody\n").expect("key");
    let policy_file = dir.path().join("policy.yaml");
    std::fs::write(&policy_file, POLICY).expect("policy");
    let policy_section = if policy {
        format!("policy: {{file: '{}'}}\n", policy_file.display())
    } else {
        String::new()
    };
    let custody = Custody::start(&format!(
        "identity:\n  issuers:\n    - {{issuer: '{s}', audiences: [custody], algorithms: [ES256]}}\n\
         inspection: {{max_body: 4KiB}}\n\
         routes:\n\
         \x20 - name: crm\n    prefix: /crm\n    upstream: '{r}/api'\n    kind: http\n\
         \x20   tools: [{{method: GET, path: '/contacts/{{id}}', tool: 'crm:contacts:read'}}]\n\
         \x20 - {{name: mcp, prefix: /mcp, upstream: '{r}/mcp', kind: mcp}}\n\
         \x20 - {{name: openai, prefix: /openai, upstream: '{r}', kind: openai, token_from: authorization}}\n\
         \x20 - name: anthropic\n    prefix: /anthropic\n    upstream: '{r}'\n    kind: anthropic\n\
         \x20   credentials: {{header: x-api-key, value_file: '{k}'}}\n\
         {policy_section}",
        s = stub.url(),
        r = recorder.url(),
        k = key.display(),
    ));
    // The key file must outlive the start only; the policy file is read at start.
    std::mem::forget(dir);
    Setup {
        _stub: stub,
        idp,
        recorder,
        custody,
    }
}

/// Sends `METHOD target` with the user's token and extra header lines, exactly as
/// written; returns the status and the JSON answer.
async fn send(s: &Setup, line: &str, headers: &[&str], body: &[u8]) -> (u16, Value) {
    let mut head = format!(
        "{line} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-custody-user-token: {}",
        s.idp.token("alice")
    );
    for h in headers {
        head.push_str("\r\n");
        head.push_str(h);
    }
    let (status, body) = raw_request(s.custody.tcp, &head, body).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The row a request tagged `tag` (its `x-request-id`) produced.
fn row_for<'a>(rows: &'a [Value], tag: &str) -> &'a Value {
    let hits: Vec<&Value> = rows
        .iter()
        .filter(|r| r["client_request_id"] == tag || r["request_id"] == tag)
        .collect();
    assert_eq!(hits.len(), 1, "one row for {tag}: {rows:#?}");
    hits[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_are_decided_and_forwarded_in_one_normal_form() {
    let mut s = setup(true).await;
    // Every spelling of /crm/admin meets the rule on /crm/admin*.
    let admin = [
        "/crm//admin/users",
        "/crm/./admin/users",
        "/crm/%61dmin/users",
        "/crm/%61%64%6D%69%6E/users",
        "/crm/x/../admin/users",
        "/crm/x/y/../../admin/users",
        "/%63rm/admin/users",
    ];
    for (i, path) in admin.iter().enumerate() {
        let (status, body) = send(
            &s,
            &format!("GET {path}"),
            &[&format!("x-request-id: admin-{i}")],
            b"",
        )
        .await;
        assert_eq!(
            (status, body["error"]["type"].as_str()),
            (403, Some("policy_denied")),
            "{path}: {body}"
        );
    }
    // What cannot be normalised safely is refused.
    let refused = [
        "/crm/../../internal/secret",
        "/crm/%2e%2e/admin",
        "/crm/.%2E/admin",
        "/crm/admin%2fusers",
        "/crm/admin%5Cusers",
        "/crm/contacts/%zz",
        "/crm/../openai/v1/models",
        "/crm/contacts?org=a&org=b",
        "/crm/contacts?org=a&or%67=b",
    ];
    for (i, path) in refused.iter().enumerate() {
        let (status, body) = send(
            &s,
            &format!("GET {path}"),
            &[&format!("x-request-id: refused-{i}")],
            b"",
        )
        .await;
        assert_eq!(status, 400, "{path}: {body}");
        let kind = body["error"]["type"].as_str().unwrap_or("");
        assert!(
            kind == "path_refused" || kind == "repeated_query_key",
            "{path}: {body}"
        );
    }
    assert!(
        s.recorder.requests().is_empty(),
        "nothing refused reached the upstream: {:?}",
        s.recorder.requests()
    );
    // An allowed request reaches the upstream as the row says, and a template
    // parameter never holds a dot segment.
    let (status, _) = send(
        &s,
        "GET /crm/contacts/7/../%31%32?x=%41",
        &["x-request-id: allowed"],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    let seen = s.recorder.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/api/contacts/12?x=%41");
    assert_eq!(
        s.custody
            .metric("custody_integrity_refusals_total{reason=\"path\"}"),
        Some(7.0)
    );
    s.custody.stop();
    let rows = s.custody.rows();
    let ok = row_for(&rows, "allowed");
    assert_eq!(ok["action"]["path"], "/crm/contacts/12");
    assert_eq!(ok["action"]["raw_path"], "/crm/contacts/7/../%31%32");
    assert_eq!(
        ok["action"]["upstream"],
        format!("{}/api/contacts/12", s.recorder.url())
    );
    assert_eq!(ok["action"]["tool"], "crm:contacts:read");
    let params: Value =
        serde_json::from_str(ok["action"]["parameters"].as_str().expect("params")).expect("json");
    assert_eq!(params["path"]["id"], "12");
    for (i, sent) in admin.iter().enumerate() {
        let r = row_for(&rows, &format!("admin-{i}"));
        assert_eq!(
            (
                r["policy"]["decision"].as_str(),
                r["policy"]["rule"].as_str()
            ),
            (Some("deny"), Some("no-admin"))
        );
        assert_eq!(r["action"]["path"], "/crm/admin/users");
        assert_eq!(r["action"]["raw_path"], *sent, "the path as sent");
    }
    for (i, path) in refused.iter().enumerate() {
        let r = row_for(&rows, &format!("refused-{i}"));
        let rule = r["policy"]["rule"].as_str().unwrap_or("");
        assert!(
            rule == "integrity:path" || rule == "integrity:repeated_query",
            "{path}: {r}"
        );
        assert_eq!(r["policy"]["decision"], "deny");
        assert_eq!(r["outcome"]["status"], 400);
        // The path as sent is recorded whenever the row's path is another one.
        let sent = path.split('?').next().unwrap_or(path);
        let raw = r["action"]["raw_path"].as_str();
        assert!(
            raw.is_none() && r["action"]["path"] == sent
                || raw == Some(sent) && r["action"]["path"] != sent,
            "{path}: {r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custody_verifies_one_credential_and_forwards_only_its_own() {
    let mut s = setup(true).await;
    let alice = s.idp.token("alice");
    let bob = s.idp.token("bob");
    let chat = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let base = "POST /openai/v1/chat/completions";
    let ct = "content-type: application/json";
    for (i, extra) in [
        vec![
            format!("authorization: Bearer {alice}"),
            format!("authorization: Bearer {bob}"),
        ],
        vec![
            format!("authorization: Bearer {alice}"),
            "authorization: Basic YWRtaW46YWRtaW4=".to_owned(),
        ],
        vec![format!("authorization: Bearer {alice}, Bearer {bob}")],
    ]
    .into_iter()
    .enumerate()
    {
        let mut headers: Vec<&str> = extra.iter().map(String::as_str).collect();
        let tag = format!("x-request-id: dup-{i}");
        headers.push(ct);
        headers.push(&tag);
        let (status, body) = send(&s, base, &headers, chat).await;
        assert_eq!(
            (status, body["error"]["type"].as_str()),
            (400, Some("duplicate_credentials")),
            "{body}"
        );
        assert!(!body.to_string().contains(&alice[..20]), "no token echoed");
    }
    assert!(s.recorder.requests().is_empty());
    // One token: verified and forwarded as it is.
    let auth = format!("authorization: Bearer {alice}");
    let (status, _) = send(&s, base, &[&auth, ct, "x-request-id: one"], chat).await;
    assert_eq!(status, 200);
    assert_eq!(
        s.recorder.requests()[0].header_values("authorization"),
        [format!("Bearer {alice}")]
    );
    s.recorder.clear();
    // A route with credentials: the client's provider keys never reach the upstream
    // (the Anthropic SDK sends its key as Authorization: Bearer as well as x-api-key).
    let message = br#"{"model":"claude-3-5-haiku","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
    let (status, _) = send(
        &s,
        "POST /anthropic/v1/messages",
        &[
            ct,
            "authorization: Bearer sk-ant-client",
            "x-api-key: sk-ant-client",
            "x-api-key: second",
            "api-key: client",
            "proxy-authorization: Basic eA==",
            "x-request-id: creds",
        ],
        message,
    )
    .await;
    assert_eq!(status, 200);
    let seen = &s.recorder.requests()[0];
    let credentials: Vec<(&str, &str)> = seen
        .headers
        .iter()
        .filter(|(k, _)| {
            [
                "authorization",
                "x-api-key",
                "api-key",
                "proxy-authorization",
                "x-custody-user-token",
            ]
            .contains(&k.as_str())
        })
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(credentials, [("x-api-key", "sk-custody")]);
    s.custody.stop();
    let rows = s.custody.rows();
    for i in 0..3 {
        let r = row_for(&rows, &format!("dup-{i}"));
        assert_eq!(r["policy"]["rule"], "integrity:duplicate_credentials");
    }
    assert_eq!(row_for(&rows, "one")["principal"]["sub"], "alice");
    assert_eq!(row_for(&rows, "creds")["principal"]["sub"], "alice");
}

/// A JSON-RPC `tools/call` body.
fn call(id: u64, name: &str, args: &Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": args}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_bodies_custody_cannot_read_alike_are_refused() {
    let mut s = setup(true).await;
    let mcp = "POST /mcp";
    let json_ct = "content-type: application/json";
    let search = "mcp-name: search";
    let method = "mcp-method: tools/call";
    let big =
        serde_json::to_vec(&call(9, "search", &json!({"q": "x".repeat(5000)}))).expect("json");
    let mut utf16 = vec![0xff, 0xfe];
    for unit in r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all"}}"#
        .encode_utf16()
    {
        utf16.extend_from_slice(&unit.to_le_bytes());
    }
    let unreadable: Vec<Vec<u8>> = vec![
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","name":"delete_all"}}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","n\u0061me":"delete_all"}}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all","arguments":{"n":NaN}}}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all","arguments":{"s":"\ud800"}}}"#.to_vec(),
        utf16,
        big,
    ];
    for (i, body) in unreadable.iter().enumerate() {
        let tag = format!("x-request-id: unreadable-{i}");
        let (status, answer) = send(&s, mcp, &[json_ct, method, search, &tag], body).await;
        assert_eq!(
            (status, answer["error"]["type"].as_str()),
            (400, Some("unreadable_body")),
            "{i}: {answer}"
        );
        if i == 5 {
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("inspection.max_body"),
                "{answer}"
            );
        }
    }
    // Headers that disagree with the body: answered as an MCP server answers.
    let body = serde_json::to_vec(&call(3, "delete_all", &json!({}))).expect("json");
    let (status, answer) = send(
        &s,
        mcp,
        &[json_ct, method, search, "x-request-id: mismatch"],
        &body,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        (answer["id"].as_u64(), answer["error"]["code"].as_i64()),
        (Some(3), Some(-32020)),
        "{answer}"
    );
    // A batch with requests: a JSON-RPC error per id, nothing forwarded.
    let batch = serde_json::to_vec(&json!([
        call(1, "search", &json!({"q": "a"})),
        call(2, "delete_all", &json!({"email": "alice@example.com"}))
    ]))
    .expect("json");
    let (status, answer) = send(&s, mcp, &[json_ct, "x-request-id: batch"], &batch).await;
    assert_eq!(status, 200, "{answer}");
    let codes: Vec<(Option<u64>, Option<i64>)> = answer
        .as_array()
        .expect("array")
        .iter()
        .map(|r| (r["id"].as_u64(), r["error"]["code"].as_i64()))
        .collect();
    assert_eq!(codes, [(Some(1), Some(-32001)), (Some(2), Some(-32001))]);
    assert!(
        s.recorder.requests().is_empty(),
        "{:?}",
        s.recorder.requests()
    );
    // A readable call passes, and the upstream gets the bytes custody read.
    let body = serde_json::to_vec(&call(4, "search", &json!({"q": "pipeline"}))).expect("json");
    let (status, _) = send(
        &s,
        mcp,
        &[json_ct, method, search, "x-request-id: ok"],
        &body,
    )
    .await;
    assert_eq!(status, 200);
    let seen = s.recorder.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, body);
    s.custody.stop();
    let rows = s.custody.rows();
    for i in 0..unreadable.len() {
        let r = row_for(&rows, &format!("unreadable-{i}"));
        assert_eq!(
            (
                r["policy"]["rule"].as_str(),
                r["action"]["inspected"].as_bool()
            ),
            (Some("integrity:unreadable_body"), Some(false)),
            "{i}: {r}"
        );
    }
    assert_eq!(
        row_for(&rows, "mismatch")["policy"]["rule"],
        "integrity:mcp_header_mismatch"
    );
    let b = row_for(&rows, "batch");
    assert_eq!(
        (
            b["action"]["operation"].as_str(),
            b["policy"]["rule"].as_str()
        ),
        (Some("batch"), Some("integrity:batch_refused"))
    );
    assert_eq!(b["action"]["tool"], Value::Null);
    let params = b["action"]["parameters"].as_str().expect("parameters");
    assert!(
        params.contains("search") && params.contains("delete_all"),
        "{params}"
    );
    assert!(
        !params.contains("alice@example.com"),
        "stored redacted: {params}"
    );
    let ok = row_for(&rows, "ok");
    assert_eq!(
        (
            ok["action"]["tool"].as_str(),
            ok["policy"]["decision"].as_str()
        ),
        (Some("mcp:search"), Some("allow"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_policy_a_batch_is_one_row_naming_no_single_tool() {
    let mut s = setup(false).await;
    let batch = serde_json::to_vec(&json!([
        call(1, "search", &json!({})),
        call(2, "delete_all", &json!({}))
    ]))
    .expect("json");
    let (status, _) = send(
        &s,
        "POST /mcp",
        &["content-type: application/json", "x-request-id: batch"],
        &batch,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(s.recorder.requests()[0].body, batch);
    s.custody.stop();
    let rows = s.custody.rows();
    let b = row_for(&rows, "batch");
    assert_eq!(
        (
            b["action"]["operation"].as_str(),
            b["action"]["tool"].as_str()
        ),
        (Some("batch"), None)
    );
    assert_eq!(b["policy"]["decision"], "allow");
}

/// A request line, extra headers, the body sent, the body the upstream must get.
type Variant = (&'static str, Vec<String>, Vec<u8>, Vec<u8>);

/// Every allowed request, whatever its spelling: the row describes exactly what the
/// upstream received and what the client got — method, normalised path, query as
/// sent, the one credential, the decoded body, the tool call, status and byte counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_row_is_what_the_upstream_received_and_the_client_got() {
    let mut s = setup(true).await;
    let alice = s.idp.token("alice");
    let mcp =
        |name: &str, q: &str| serde_json::to_vec(&call(5, name, &json!({"q": q}))).expect("json");
    let gzipped = {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&mcp("search", "gzipped")).expect("gzip");
        e.finish().expect("gzip")
    };
    let auth = format!("authorization: Bearer {alice}");
    let chat = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#.to_vec();
    let variants: Vec<Variant> = vec![
        (
            "GET /crm/contacts/7/../12?x=%41&y=b",
            vec![],
            vec![],
            vec![],
        ),
        ("GET /crm//contacts/%31%32", vec![], vec![], vec![]),
        ("DELETE /crm/./contacts/5", vec![], vec![], vec![]),
        (
            "POST /mcp",
            vec![
                "content-type: application/json".into(),
                "mcp-method: tools/call".into(),
                "mcp-name: search".into(),
            ],
            mcp("search", "plain"),
            mcp("search", "plain"),
        ),
        (
            "POST /mcp",
            vec![
                "content-type: application/json".into(),
                "content-encoding: gzip".into(),
            ],
            gzipped.clone(),
            mcp("search", "gzipped"),
        ),
        (
            "POST /openai/v1/chat/completions",
            vec![auth.clone(), "content-type: application/json".into()],
            chat.clone(),
            chat.clone(),
        ),
        (
            "POST /anthropic/v1/messages?beta=true",
            vec![
                "content-type: application/json".into(),
                "x-api-key: sk-client".into(),
                "authorization: Bearer sk-client".into(),
            ],
            chat.clone(),
            chat.clone(),
        ),
    ];
    let mut got = Vec::new();
    for (i, (line, headers, body, _)) in variants.iter().enumerate() {
        let tag = format!("x-request-id: class-{i}");
        let mut all: Vec<&str> = headers.iter().map(String::as_str).collect();
        all.push(&tag);
        let mut head =
            format!("{line} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-custody-user-token: {alice}");
        for h in &all {
            head.push_str("\r\n");
            head.push_str(h);
        }
        got.push(raw_request(s.custody.tcp, &head, body).await);
    }
    let seen = s.recorder.requests();
    s.custody.stop();
    let rows = s.custody.rows();
    assert_eq!(
        seen.len(),
        variants.len(),
        "every variant reached the upstream once"
    );
    for (i, (line, _, sent, decoded)) in variants.iter().enumerate() {
        let tag = format!("class-{i}");
        let up = seen
            .iter()
            .find(|r| r.header_values("x-request-id") == [tag.as_str()])
            .expect("upstream request");
        let row = row_for(&rows, &tag);
        let a = &row["action"];
        let o = &row["outcome"];
        // Method and path: the row's upstream URL is what the upstream was asked for.
        assert_eq!(a["method"], up.method, "{line}");
        assert_eq!(
            a["upstream"],
            format!("{}{}", s.recorder.url(), up.path()),
            "{line}"
        );
        // The query as the client sent it.
        let query = line.split_once('?').map(|(_, q)| q);
        assert_eq!(up.query(), query, "{line}");
        // The body custody decided on is the body the upstream got.
        assert_eq!(&up.body, decoded, "{line}");
        if let Some(name) = up.json()["params"]["name"].as_str() {
            assert_eq!(a["tool"], format!("mcp:{name}"), "{line}");
            let args: Value =
                serde_json::from_str(a["parameters"].as_str().expect("params")).expect("json");
            assert_eq!(args, up.json()["params"]["arguments"], "{line}");
        }
        // One credential: the verified token, or custody's own key; never the
        // user token header.
        let credentials: Vec<(&str, &str)> = up
            .headers
            .iter()
            .filter(|(k, _)| {
                ["authorization", "x-api-key", "x-custody-user-token"].contains(&k.as_str())
            })
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let expected: Vec<(&str, &str)> = if line.contains("/anthropic/") {
            vec![("x-api-key", "sk-custody")]
        } else if line.contains("/openai/") {
            vec![(
                "authorization",
                auth.strip_prefix("authorization: ").expect("bearer"),
            )]
        } else {
            vec![]
        };
        assert_eq!(credentials, expected, "{line}");
        assert_eq!(row["principal"]["sub"], "alice", "{line}");
        // What the client got, and the bytes on the wire.
        let (status, body) = &got[i];
        assert_eq!(o["status"], *status, "{line}");
        assert_eq!(o["bytes_out"], body.len(), "{line}");
        assert_eq!(o["bytes_in"], sent.len(), "{line}");
        assert_eq!(row["policy"]["decision"], "allow", "{line}");
    }
}
