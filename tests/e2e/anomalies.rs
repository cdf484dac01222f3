//! Unusual use through the real binary: custody starts with eight days of baselines
//! restored from a state file in the restart format (so nothing waits for a
//! warm-up), a steady population calls as it always has, and four users do what
//! they never do — a burst of calls, a first CRM export, a run of denials, a run of
//! e-mail addresses. Every injected anomaly is in the trail on that user's rows,
//! no steady user's row has one, `/metrics` counts them, and the baselines are
//! saved again at shutdown.

use custody_anomaly::{Detector, Observation, Settings};
use custody_tests::client::{post_json, send_collect};
use custody_tests::harness::{Custody, admin_get};
use custody_tests::idp::Idp;
use custody_tests::stub::Stub;
use serde_json::{Value, json};

const POLICY: &str = r#"
format: 1
settings: {token_scopes: ignore}
roles:
  viewer: {grants: [tool:crm:read, model:standard]}
  analyst: {inherits: [viewer], grants: [tool:crm:export]}
tools:
  "crm:contacts_search": [tool:crm:read]
  "crm:contacts_export": [tool:crm:export]
models:
  "gpt-4o-mini*": [model:standard]
"#;

const STEADY: [&str; 8] = ["u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"];
const BURST: &str = "burst";
const EXPLORER: &str = "explorer";
const REFUSED: &str = "refused";
const LEAKY: &str = "leaky";

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64
}

/// Eight days of every user calling every 10 minutes around the clock: a model
/// and the CRM search (the refused user also the export it may not use), in
/// hour-long sessions; the snapshot custody writes at shutdown.
fn baselines(now: i64) -> Vec<u8> {
    let start = now - 8 * 86_400_000_000;
    let d = Detector::new(Settings::default(), start);
    let users: Vec<&str> = STEADY
        .iter()
        .copied()
        .chain([BURST, EXPLORER, REFUSED, LEAKY])
        .collect();
    for k in 0..(8 * 144) {
        let at = start + k * 600_000_000;
        let session = format!("base-{}", k / 6);
        for user in &users {
            let target = match (k % 3, *user) {
                (0, _) => "crm:contacts_search",
                (1, REFUSED) => "crm:contacts_export",
                _ => "gpt-4o-mini",
            };
            let fired = d.observe(&Observation {
                at,
                user: Some(user),
                session: Some(&session),
                target: Some(target),
                cost_usd: Some(0.000_05),
                local_hour: ((at / 3_600_000_000) % 24) as u8,
                ..Observation::default()
            });
            assert!(fired.is_empty(), "the baseline itself is steady: {fired:?}");
        }
    }
    d.snapshot()
}

struct Caller<'a> {
    custody: &'a Custody,
    idp: &'a Idp,
}

impl Caller<'_> {
    async fn call(&self, user: &str, role: &str, path: &str, body: &Value, session: &str) -> u16 {
        self.exchange(user, role, path, body, session)
            .await
            .0
            .status
            .as_u16()
    }

    async fn exchange(
        &self,
        user: &str,
        role: &str,
        path: &str,
        body: &Value,
        session: &str,
    ) -> (http::response::Parts, Value) {
        let mut claims = self.idp.claims(user);
        claims["role"] = json!(role);
        claims["roles"] = json!([role]);
        let token = self.idp.sign(&self.idp_kid(), &claims);
        let mut req = post_json(path, body);
        req.headers_mut()
            .insert("x-custody-user-token", token.parse().expect("token"));
        req.headers_mut()
            .insert("x-custody-session", session.parse().expect("session"));
        req.headers_mut().insert(
            "accept",
            "application/json, text/event-stream"
                .parse()
                .expect("accept"),
        );
        let (parts, body) = send_collect(&self.custody.unix(), req)
            .await
            .expect("request");
        (parts, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    fn idp_kid(&self) -> String {
        serde_json::from_str::<Value>(&self.idp.jwks()).expect("jwks")["keys"][0]["kid"]
            .as_str()
            .expect("kid")
            .to_owned()
    }

    async fn chat(&self, user: &str, text: &str, session: &str) -> u16 {
        let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]});
        self.call(
            user,
            "viewer",
            "/openai/v1/chat/completions",
            &body,
            session,
        )
        .await
    }

    async fn tool(&self, user: &str, role: &str, name: &str, session: &str) -> u16 {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": name, "arguments": {"q": "acme"}}});
        self.call(user, role, "/mcp/mcp", &body, session).await
    }
}

/// custody with the baselines restored, two routes, the policy, and `anomalies`
/// extended by `extra` (YAML flow keys).
fn start(stub: &Stub, work: &std::path::Path, extra: &str) -> Custody {
    let policy = work.join("policy.yaml");
    std::fs::write(&policy, POLICY).expect("policy");
    let state = work.join("baselines.json");
    std::fs::write(&state, baselines(now_micros())).expect("state");
    Custody::start(&format!(
        "identity:\n  issuers:\n    - {{issuer: '{u}', audiences: [custody], algorithms: [ES256]}}\nroutes:\n  - {{name: openai, prefix: /openai, upstream: '{u}', kind: openai}}\n  - {{name: crm, prefix: /mcp, upstream: '{u}/echo', kind: mcp}}\npolicy: {{file: '{p}'}}\nanomalies: {{state_file: '{s}'{extra}}}\n",
        u = stub.url(),
        p = policy.display(),
        s = state.display()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_anomalies_are_recorded_and_steady_users_are_not() {
    let stub = Stub::start().await;
    let idp = Idp::new(&stub.url());
    stub.set_jwks(idp.jwks());
    let work = tempfile::tempdir().expect("tempdir");
    let state = work.path().join("baselines.json");
    let mut custody = start(&stub, work.path(), "");
    let c = Caller {
        custody: &custody,
        idp: &idp,
    };
    for user in STEADY {
        assert_eq!(c.chat(user, "summarise the pipeline", user).await, 200);
        assert_eq!(c.tool(user, "viewer", "contacts_search", user).await, 200);
        assert_eq!(c.chat(user, "and the next steps", user).await, 200);
    }
    for _ in 0..40 {
        c.chat(BURST, "again", BURST).await;
    }
    assert_eq!(
        c.tool(EXPLORER, "analyst", "contacts_export", EXPLORER)
            .await,
        200
    );
    for _ in 0..6 {
        // Denied: on an MCP route, a JSON-RPC error (HTTP 200).
        c.tool(REFUSED, "viewer", "contacts_export", REFUSED).await;
    }
    for i in 0..6 {
        let text = format!("write to customer{i}@example.com about the renewal");
        assert_eq!(c.chat(LEAKY, &text, LEAKY).await, 200);
    }
    let (_, metrics) = admin_get(custody.admin, "/metrics").expect("scrape");
    custody.stop();

    let rows = custody.rows();
    let signals = |user: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| r["principal"]["sub"] == user)
            .flat_map(|r| r["anomalies"].as_array().cloned().unwrap_or_default())
            .map(|a| a["signal"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    // Recall: every injected anomaly, on its user's rows.
    for (user, signal) in [
        (BURST, "rate_spike"),
        (EXPLORER, "first_use"),
        (REFUSED, "denial_burst"),
        (LEAKY, "pii_burst"),
    ] {
        let found = signals(user);
        assert!(found.iter().any(|s| s == signal), "{user}: {found:?}");
        assert!(
            found.iter().all(|s| s == signal),
            "{user}: only {signal}: {found:?}"
        );
    }
    assert!(
        rows.iter()
            .filter(|r| r["principal"]["sub"] == REFUSED)
            .all(|r| r["policy"]["decision"] == "deny")
    );
    // No steady user's row has an anomaly; each was looked at (an empty list).
    let steady: Vec<&Value> = rows
        .iter()
        .filter(|r| STEADY.iter().any(|u| r["principal"]["sub"] == *u))
        .collect();
    assert_eq!(steady.len(), 24);
    for r in &steady {
        assert_eq!(r["anomalies"], json!([]), "{r:#}");
    }
    assert!(
        metrics.contains("custody_anomalies_total{signal=\"rate_spike\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("custody_anomalies_total{signal=\"off_hours\"} 0"));
    // Saved again at shutdown, with everyone in it.
    let saved = std::fs::read(&state).expect("saved");
    let restored =
        Detector::restore(Settings::default(), &saved, now_micros()).expect("restorable");
    assert_eq!(restored.users(), 12);
}

/// With `anomalies.action`, the call that trips a chosen signal starts a cool-down:
/// that user's next calls are answered at once (429 with `Retry-After`; a JSON-RPC
/// error on the MCP route), each with its row, a denial by `anomaly:rate_spike`;
/// the user's first_use does not act, and everyone else is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acting_signal_refuses_the_user_for_the_cool_down() {
    let stub = Stub::start().await;
    let idp = Idp::new(&stub.url());
    stub.set_jwks(idp.jwks());
    let work = tempfile::tempdir().expect("tempdir");
    let mut custody = start(
        &stub,
        work.path(),
        ", action: {signals: [rate_spike], response: throttle, cool_down: 2m}",
    );
    let c = Caller {
        custody: &custody,
        idp: &idp,
    };
    // A first use is recorded, not acted on.
    assert_eq!(
        c.tool(EXPLORER, "analyst", "contacts_export", EXPLORER)
            .await,
        200
    );
    assert_eq!(c.chat(EXPLORER, "and now?", EXPLORER).await, 200);
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(c.chat(BURST, "again", BURST).await);
    }
    let first = statuses
        .iter()
        .position(|s| *s == 429)
        .unwrap_or_else(|| panic!("no cool-down: {statuses:?}"));
    assert!(first >= 19, "refused before the spike: {statuses:?}");
    assert!(statuses[first..].iter().all(|s| *s == 429), "{statuses:?}");
    // Answered at once, saying why and for how long.
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let (parts, answer) = c
        .exchange(BURST, "viewer", "/openai/v1/chat/completions", &body, BURST)
        .await;
    assert_eq!(parts.status, 429);
    let wait: u64 = parts.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=120).contains(&wait), "{wait}");
    assert_eq!(answer["error"]["type"], "anomaly_cool_down", "{answer}");
    // On the MCP route: a JSON-RPC error the client shows.
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": "contacts_search", "arguments": {"q": "acme"}}});
    let (parts, answer) = c.exchange(BURST, "viewer", "/mcp/mcp", &call, BURST).await;
    assert_eq!(parts.status, 200);
    assert!(parts.headers.contains_key("retry-after"));
    assert_eq!(answer["id"], 7, "{answer}");
    assert_eq!(
        answer["error"]["data"]["rule"], "anomaly:rate_spike",
        "{answer}"
    );
    // Everyone else goes on.
    for user in STEADY {
        assert_eq!(c.chat(user, "summarise the pipeline", user).await, 200);
    }
    assert_eq!(c.chat(EXPLORER, "still fine", EXPLORER).await, 200);
    custody.stop();

    let rows = custody.rows();
    let refused: Vec<&Value> = rows
        .iter()
        .filter(|r| r["policy"]["rule"] == "anomaly:rate_spike")
        .collect();
    let expected = statuses[first..].len() + 2;
    assert_eq!(refused.len(), expected, "one row per refused call");
    // What reached the upstream: every allowed row's request, no refused one.
    let upstream = stub.request_ids();
    for r in &refused {
        assert_eq!(r["principal"]["sub"], BURST);
        assert_eq!(r["policy"]["decision"], "deny");
        // A refusal by a cool-down is not itself observed.
        assert_eq!(r["anomalies"], Value::Null, "{r:#}");
        let id = r["request_id"].as_str().expect("request_id");
        assert!(
            !upstream.iter().any(|u| u == id),
            "refused, yet forwarded: {r:#}"
        );
        // The status the client got: 429, or 200 with a JSON-RPC error on MCP.
        let status = r["outcome"]["status"].as_i64();
        let mcp = r["action"]["kind"] == "tool";
        assert_eq!(status, Some(if mcp { 200 } else { 429 }), "{r:#}");
    }
    assert_eq!(
        refused
            .iter()
            .filter(|r| r["action"]["kind"] == "tool")
            .count(),
        1,
        "the one MCP call"
    );
    for r in rows.iter().filter(|r| r["policy"]["decision"] == "allow") {
        let id = r["request_id"].as_str().expect("request_id");
        assert!(
            upstream.iter().any(|u| u == id),
            "allowed, not forwarded: {r:#}"
        );
    }
    let tripped = rows
        .iter()
        .filter(|r| r["principal"]["sub"] == BURST && r["policy"]["decision"] == "allow")
        .filter(|r| r["anomalies"].to_string().contains("rate_spike"))
        .count();
    assert_eq!(
        tripped, 1,
        "the call that tripped it was answered and flagged"
    );
    assert!(
        rows.iter()
            .filter(|r| r["principal"]["sub"] != BURST)
            .all(|r| r["policy"]["decision"] == "allow")
    );
}
