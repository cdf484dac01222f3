//! Policy end to end: allow and deny on openai, http and mcp routes with the rule,
//! scopes and version in the row; hot reload under load; an invalid policy at start.

use bytes::Bytes;
use custody_tests::client::{post_json, send_collect};
use custody_tests::harness::{Custody, admin_get};
use custody_tests::idp::Idp;
use custody_tests::rows::row;
use custody_tests::stub::Stub;
use http_body_util::Full;
use serde_json::{Value, json};
use std::path::Path;

const POLICY: &str = r#"
format: 1
settings: {token_scopes: ignore}
roles:
  analyst: {grants: [tool:crm:read, model:standard]}
tools:
  "crm:contacts:*": [tool:crm:read]
  "crm-mcp:search_*": [tool:crm:read]
models:
  "gpt-4o-mini*": [model:standard]
  "gpt-4o*": [model:premium]
rules:
  - name: own-org-only
    effect: deny
    when:
      action: {route: crm}
      arguments:
        - {path: $.body.org_id, not_equals_claim: org}
  - name: mcp-own-org-only
    effect: deny
    when:
      action: {route: crm-mcp, tool: "crm-mcp:*"}
      arguments:
        - {path: $.org_id, not_equals_claim: org}
"#;

fn config(stub: &Stub, policy: &Path, extra: &str) -> String {
    format!(
        "identity:\n  issuers:\n    - {{issuer: '{u}', audiences: [custody], algorithms: [ES256]}}\nroutes:\n  - {{name: openai, prefix: /openai, upstream: '{u}', kind: openai}}\n  - name: crm\n    prefix: /crm\n    upstream: '{u}/echo'\n    kind: http\n    tools: [{{method: POST, path: /contacts/search, tool: 'crm:contacts:search'}}]\n  - {{name: crm-mcp, prefix: /mcp, upstream: '{u}/echo', kind: mcp}}\npolicy: {{file: '{p}'{extra}}}\n",
        u = stub.url(),
        p = policy.display()
    )
}

/// POSTs `body` to `path` as the user of `token`, tagged `id`.
async fn call(custody: &Custody, path: &str, body: &Value, token: &str, id: &str) -> (u16, Value) {
    let mut req = post_json(path, body);
    req.headers_mut()
        .insert("x-custody-user-token", token.parse().expect("token"));
    req.headers_mut()
        .insert("x-request-id", id.parse().expect("id"));
    let (parts, body) = send_collect(&custody.unix(), req).await.expect("request");
    (
        parts.status.as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// A stub with an IdP, a policy file holding [`POLICY`], and custody using both.
struct Setup {
    _stub: Stub,
    idp: Idp,
    _dir: tempfile::TempDir,
    policy: std::path::PathBuf,
    custody: Custody,
}

async fn setup(policy_extra: &str) -> Setup {
    let stub = Stub::start().await;
    let idp = Idp::new(&stub.url());
    stub.set_jwks(idp.jwks());
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).expect("write");
    let custody = Custody::start(&config(&stub, &policy, policy_extra));
    Setup {
        _stub: stub,
        idp,
        _dir: dir,
        policy,
        custody,
    }
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_name_their_rule_scopes_and_version_on_every_route_kind() {
    let Setup {
        _stub,
        idp,
        _dir,
        mut custody,
        ..
    } = setup("").await;
    let token = idp.token("auth0|alice");

    let (status, _) = call(
        &custody,
        "/openai/v1/chat/completions",
        &chat("gpt-4o-mini"),
        &token,
        "mini",
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &custody,
        "/openai/v1/chat/completions",
        &chat("gpt-4o"),
        &token,
        "premium",
    )
    .await;
    let premium_key = body["error"]["request_id"].clone();
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["type"], "policy_denied");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("missing-scope:model:premium"),
        "{body}"
    );

    let own = json!({"org_id": "org_acme_corp", "query": "pipeline"});
    let other = json!({"org_id": "org_globex", "query": "pipeline"});
    let (status, _) = call(&custody, "/crm/contacts/search", &own, &token, "own-org").await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &custody,
        "/crm/contacts/search",
        &other,
        &token,
        "other-org",
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // MCP: the denial is a JSON-RPC error to the request's id, so MCP clients show it.
    let rpc = |args: &Value| {
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                                    "params": {"name": "search_contacts", "arguments": args}})
    };
    let (status, body) = call(&custody, "/mcp/mcp", &rpc(&other), &token, "mcp-other").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], 7);
    assert_eq!(body["error"]["code"], -32001);
    assert_eq!(body["error"]["data"]["rule"], "mcp-own-org-only");
    let mcp_key = body["error"]["data"]["request_id"].clone();
    let (status, _) = call(&custody, "/mcp/mcp", &rpc(&own), &token, "mcp-own").await;
    assert_eq!(status, 200);
    let unlisted = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"});
    let (_, body) = call(&custody, "/mcp/mcp", &unlisted, &token, "mcp-list").await;
    assert_eq!(body["error"]["data"]["rule"], "default:deny", "{body}");

    let ready = admin_get(custody.admin, "/readyz").expect("readyz").1;
    custody.stop();
    let rows = custody.rows();
    let version = row(&rows, "mini")["policy"]["version"]
        .as_str()
        .expect("version")
        .to_owned();
    assert!(version.starts_with("sha256:"), "{version}");
    assert!(ready.contains(&version), "{ready}");
    for (id, decision, rule) in [
        ("mini", "allow", "role:analyst grants model:standard"),
        ("premium", "deny", "missing-scope:model:premium"),
        ("own-org", "allow", "role:analyst grants tool:crm:read"),
        ("other-org", "deny", "own-org-only"),
        ("mcp-other", "deny", "mcp-own-org-only"),
        ("mcp-own", "allow", "role:analyst grants tool:crm:read"),
        ("mcp-list", "deny", "default:deny"),
    ] {
        let r = row(&rows, id);
        assert_eq!(r["policy"]["decision"], decision, "{id}: {r}");
        assert_eq!(r["policy"]["rule"], rule, "{id}: {r}");
        assert_eq!(r["policy"]["version"], version.as_str(), "{id}");
        assert_eq!(r["principal"]["sub"], "auth0|alice");
    }
    assert_eq!(
        row(&rows, "premium")["policy"]["scopes"],
        json!(["model:premium"])
    );
    assert_eq!(row(&rows, "mcp-other")["outcome"]["status"], 200);
    // JSON and JSON-RPC errors name the row's key, not the client's id.
    assert_eq!(row(&rows, "premium")["request_id"], premium_key);
    assert_eq!(row(&rows, "mcp-other")["request_id"], mcp_key);
    assert_eq!(
        row(&rows, "mcp-other")["action"]["tool"],
        "crm-mcp:search_contacts"
    );
    assert!(
        row(&rows, "premium")["action"]["upstream"].is_string(),
        "denied rows still say where the call was going"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_under_load_loses_no_request_and_keeps_the_last_good_policy() {
    let Setup {
        _stub,
        idp,
        _dir: dir,
        policy,
        mut custody,
    } = setup(", reload_interval: 100ms").await;
    let token = idp.token("auth0|bob");
    // The new policy no longer grants model:standard: gpt-4o-mini is refused.
    let revoked = POLICY.replace(
        "grants: [tool:crm:read, model:standard]",
        "grants: [tool:crm:read]",
    );
    // Swapped in as Kubernetes does: a new file renamed over the old.
    let swap = |text: &str| {
        let tmp = dir.path().join("policy.yaml.tmp");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, &policy).expect("rename");
    };
    let mut statuses = Vec::new();
    let mut swapped = false;
    let mut broken = false;
    for i in 0..400 {
        let (status, _) = call(
            &custody,
            "/openai/v1/chat/completions",
            &chat("gpt-4o-mini"),
            &token,
            &format!("r{i}"),
        )
        .await;
        statuses.push(status);
        if i == 100 {
            swap(&revoked);
            swapped = true;
        }
        if swapped && !broken && status == 403 {
            swap("format: 1\nroles: {a: {inherits: [a]}}\nrules: [{effect: allow}]\n");
            broken = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert!(broken, "the new policy never took effect");
    let (_, ready) = admin_get(custody.admin, "/readyz").expect("readyz");
    let ready: Value = serde_json::from_str(&ready).expect("json");
    assert!(ready["policy"]["reloads"].as_u64() >= Some(1), "{ready}");
    assert!(
        ready["policy"]["reload_failures"].as_u64() >= Some(1),
        "{ready}"
    );
    custody.stop();
    assert!(
        custody.log().contains("invalid policy rejected"),
        "{}",
        custody.log()
    );

    let rows = custody.rows();
    assert_eq!(rows.len(), statuses.len(), "one row per request");
    let first = row(&rows, "r0")["policy"]["version"].clone();
    let last = row(&rows, "r399")["policy"]["version"].clone();
    assert_ne!(first, last);
    assert_eq!(
        ready["policy"]["version"], last,
        "the last good policy stays in force"
    );
    let mut switched = false;
    for (i, status) in statuses.iter().enumerate() {
        let r = row(&rows, &format!("r{i}"));
        let (decision, version) = (&r["policy"]["decision"], &r["policy"]["version"]);
        match status {
            200 => {
                assert!(!switched, "r{i}: allowed after the switch");
                assert_eq!((decision, version), (&json!("allow"), &first), "r{i}");
            }
            403 => {
                switched = true;
                assert_eq!((decision, version), (&json!("deny"), &last), "r{i}");
            }
            other => panic!("r{i}: status {other}"),
        }
    }
    assert!(statuses[..100].iter().all(|s| *s == 200));
    assert_eq!(statuses[399], 403);
}

#[test]
fn an_invalid_policy_stops_custody_with_every_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "format: 1\nroles:\n  a: {inherits: [b]}\nrules:\n  - {effect: maybe}\n",
    )
    .expect("write");
    let err = Custody::try_start(&format!(
        "routes: []\npolicy: {{file: '{}'}}\n",
        policy.display()
    ))
    .err()
    .expect("custody must refuse to start");
    for expected in ["roles.a.inherits", "rules[0]", "line"] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    let _ = Bytes::new();
    let _ = Full::<Bytes>::default();
}
