//! Identity end to end: real ES256 tokens, keys found through OpenID discovery on
//! the stub, 401s with their rows, principals in the rows.

use bytes::Bytes;
use custody_tests::client::{post_json, request, send_collect};
use custody_tests::harness::{Custody, admin_get};
use custody_tests::idp::{Idp, with_header};
use custody_tests::rows::row;
use custody_tests::stub::Stub;
use http_body_util::Full;
use serde_json::{Value, json};

fn config(stub: &Stub, extra_routes: &str) -> String {
    format!(
        "identity:\n  issuers:\n    - issuer: '{u}'\n      audiences: [custody]\n      algorithms: [ES256]\n      claims: {{org: org_id, role: role, roles: roles, scopes: scope}}\nroutes:\n  - {{name: openai, prefix: /openai, upstream: '{u}', kind: openai}}\n  - {{name: echo, prefix: /tools/echo, upstream: '{u}/echo', kind: http, token_from: authorization}}\n  - {{name: public, prefix: /public, upstream: '{u}/echo', kind: http, identity: optional}}\n{extra_routes}",
        u = stub.url()
    )
}

fn chat() -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_users_are_attributed_and_the_token_never_leaves_custody() {
    let stub = Stub::start().await;
    let idp = Idp::new(&stub.url());
    stub.set_jwks(idp.jwks());
    let mut custody = Custody::start(&config(&stub, ""));
    assert_eq!(
        stub.jwks_fetches(),
        1,
        "keys found through discovery at startup"
    );

    // Valid token on an LLM route, in custody's header.
    let mut req = post_json("/openai/v1/chat/completions", &chat());
    req.headers_mut().insert(
        "x-custody-user-token",
        idp.token("auth0|alice").parse().expect("v"),
    );
    req.headers_mut()
        .insert("x-request-id", "ok".parse().expect("v"));
    let (parts, _) = send_collect(&custody.unix(), req).await.expect("request");
    assert_eq!(parts.status, 200);

    // The upstream never sees custody's token header.
    let token = idp.token("auth0|alice");
    let req = request("GET", "/public/x")
        .header("x-custody-user-token", &token)
        .header("x-request-id", "optional-ok")
        .body(Full::default())
        .expect("req");
    let (_, body) = send_collect(&custody.unix(), req).await.expect("request");
    let seen: Value = serde_json::from_slice(&body).expect("json");
    assert!(
        seen["headers"].get("x-custody-user-token").is_none(),
        "{seen}"
    );

    // token_from: authorization — the bearer token is the user's and passes through.
    let req = request("GET", "/tools/echo/contacts")
        .header("authorization", format!("Bearer {token}"))
        .header("x-request-id", "bearer")
        .body(Full::default())
        .expect("req");
    let (parts, body) = send_collect(&custody.tcp(), req).await.expect("request");
    assert_eq!(parts.status, 200);
    let seen: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(seen["headers"]["authorization"], format!("Bearer {token}"));

    // Optional route without a token: anonymous but allowed.
    let req = request("GET", "/public/y")
        .header("x-request-id", "anon")
        .body(Full::default())
        .expect("req");
    let (parts, _) = send_collect(&custody.unix(), req).await.expect("request");
    assert_eq!(parts.status, 200);

    custody.stop();
    let rows = custody.rows();
    let ok = row(&rows, "ok");
    assert_eq!(ok["principal"]["sub"], "auth0|alice");
    assert_eq!(ok["principal"]["org"], "org_acme_corp");
    assert_eq!(ok["principal"]["role"], "analyst");
    assert_eq!(ok["principal"]["roles"], json!(["analyst"]));
    assert_eq!(ok["principal"]["issuer"], stub.url());
    assert_eq!(ok["policy"]["scopes"], json!(["tool:crm:read", "openid"]));
    assert_eq!(row(&rows, "bearer")["principal"]["sub"], "auth0|alice");
    assert_eq!(row(&rows, "optional-ok")["principal"]["sub"], "auth0|alice");
    assert!(row(&rows, "anon")["principal"]["sub"].is_null());
    for path in custody_tests::rows::parquet_files(&custody.audit_dir) {
        let bytes = std::fs::read(path).expect("read");
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "token stored"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_tokens_get_401_with_the_reason_and_a_deny_row() {
    let stub = Stub::start().await;
    let idp = Idp::new(&stub.url());
    stub.set_jwks(idp.jwks());
    let mut custody = Custody::start(&config(&stub, ""));
    let mut expired = idp.claims("auth0|bob");
    expired["exp"] = json!(1_000_000);
    let mut early = idp.claims("auth0|carol");
    early["nbf"] = json!(4_000_000_000_u64);
    let mut wrong_aud = idp.claims("auth0|bob");
    wrong_aud["aud"] = json!("someone-else");
    let token = idp.token("auth0|bob");
    // Signed by another key under the same kid and issuer: the signature fails.
    let forger = Idp::new(&stub.url());
    let stranger = Idp::new("https://idp.elsewhere.example/");
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("missing", None, "missing"),
        ("garbage", Some("not-a-jwt".into()), "malformed"),
        ("expired", Some(idp.sign("k1", &expired)), "expired"),
        ("early", Some(idp.sign("k1", &early)), "not_yet_valid"),
        (
            "forged",
            Some(forger.token("auth0|mallory")),
            "bad_signature",
        ),
        (
            "stranger",
            Some(stranger.token("auth0|mallory")),
            "unknown_issuer",
        ),
        ("aud", Some(idp.sign("k1", &wrong_aud)), "wrong_audience"),
        (
            "none",
            Some(with_header(&token, &json!({"alg": "none", "kid": "k1"}))),
            "disallowed_algorithm",
        ),
        (
            "kid",
            Some(with_header(
                &token,
                &json!({"alg": "ES256", "kid": "../../etc/passwd"}),
            )),
            "unknown_key",
        ),
    ];
    for (id, token, reason) in &cases {
        let mut req = post_json("/openai/v1/chat/completions", &chat());
        req.headers_mut()
            .insert("x-request-id", id.parse().expect("v"));
        if let Some(t) = token {
            req.headers_mut()
                .insert("x-custody-user-token", t.parse().expect("v"));
        }
        let (parts, body) = send_collect(&custody.unix(), req).await.expect("request");
        assert_eq!(parts.status, 401, "{id}");
        let challenge = parts.headers["www-authenticate"].to_str().expect("ascii");
        if *reason == "missing" {
            assert_eq!(challenge, "Bearer");
        } else {
            assert!(
                challenge.contains("error=\"invalid_token\"") && challenge.contains(reason),
                "{id}: {challenge}"
            );
        }
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["error"]["type"], "unauthenticated");
        assert!(
            v["error"]["message"]
                .as_str()
                .expect("message")
                .contains(reason),
            "{v}"
        );
    }
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), cases.len());
    for (id, _, reason) in &cases {
        let r = row(&rows, id);
        assert_eq!(r["policy"]["decision"], "deny");
        assert_eq!(r["policy"]["rule"], format!("identity:{reason}"));
        assert_eq!(r["outcome"]["status"], 401);
        // Who was refused: the subject only of a token whose signature verified and
        // whose time was wrong; the issuer when the token named a configured one.
        let sub = match *id {
            "expired" => json!("auth0|bob"),
            "early" => json!("auth0|carol"),
            _ => Value::Null,
        };
        assert_eq!(r["principal"]["sub"], sub, "{id}");
        let issuer = match *id {
            "missing" | "garbage" | "stranger" => Value::Null,
            _ => json!(stub.url()),
        };
        assert_eq!(r["principal"]["issuer"], issuer, "{id}");
    }
    // The unknown kid caused at most one refetch beyond the startup load.
    assert!(stub.jwks_fetches() <= 2, "{} fetches", stub.jwks_fetches());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_are_fetched_once_and_kid_floods_stay_within_budget() {
    let stub = Stub::start().await;
    let mut idp = Idp::new(&stub.url());
    stub.set_jwks(idp.jwks());
    let mut custody = Custody::start(&config(&stub, ""));
    assert_eq!(stub.jwks_fetches(), 1);
    idp.add_key("k2");
    stub.set_jwks(idp.jwks());
    let rotated = idp.sign("k2", &idp.claims("auth0|carol"));
    let mut req = post_json("/openai/v1/chat/completions", &chat());
    req.headers_mut()
        .insert("x-custody-user-token", rotated.parse().expect("v"));
    let (parts, _) = send_collect(&custody.unix(), req).await.expect("request");
    assert_eq!(parts.status, 200, "new key accepted after one refetch");
    assert_eq!(stub.jwks_fetches(), 2);
    let token = idp.token("auth0|carol");
    for i in 0..50 {
        let forged = with_header(
            &token,
            &json!({"alg": "ES256", "kid": format!("random-{i}")}),
        );
        let mut req = post_json("/openai/v1/chat/completions", &chat());
        req.headers_mut()
            .insert("x-custody-user-token", forged.parse().expect("v"));
        let (parts, _) = send_collect(&custody.unix(), req).await.expect("request");
        assert_eq!(parts.status, 401);
    }
    assert_eq!(
        stub.jwks_fetches(),
        2,
        "no refetch within 30 s of the last one"
    );
    custody.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_replace_what_the_app_sent_and_follow_the_mounted_file() {
    let stub = Stub::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("crm-token");
    std::fs::write(&secret, "s3cr3t-from-the-mounted-secret\n").expect("write");
    let mut custody = Custody::start(&format!(
        "routes:\n  - name: crm\n    prefix: /crm\n    upstream: '{}/echo'\n    kind: http\n    credentials: {{header: authorization, value_file: '{}', prefix: 'Bearer '}}\n",
        stub.url(),
        secret.display()
    ));
    let req = request("GET", "/crm/x")
        .header("authorization", "Bearer app-key-should-not-pass")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let (parts, body) = send_collect(&custody.unix(), req).await.expect("request");
    assert_eq!(parts.status, 200);
    let seen: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        seen["headers"]["authorization"],
        "Bearer s3cr3t-from-the-mounted-secret"
    );

    // The Secret is rotated: the new value is used within the 10 s reload period.
    std::fs::write(&secret, "r0tated-s3cr3t\n").expect("write");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let req = request("GET", "/crm/x")
            .body(Full::new(Bytes::new()))
            .expect("req");
        let (_, body) = send_collect(&custody.unix(), req).await.expect("request");
        let seen: Value = serde_json::from_slice(&body).expect("json");
        if seen["headers"]["authorization"] == "Bearer r0tated-s3cr3t" {
            break;
        }
        assert_eq!(
            seen["headers"]["authorization"], "Bearer s3cr3t-from-the-mounted-secret",
            "the old value until the reload"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "rotated credential not picked up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    custody.stop();
    let log = custody.log();
    assert!(
        !log.contains("s3cr3t") && log.contains("credential reloaded"),
        "credential logged, or reload not logged:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_in_token_headers_are_never_fetched_and_huge_tokens_are_refused() {
    let stub = Stub::start().await;
    let idp = Idp::new(&stub.url());
    stub.set_jwks(idp.jwks());
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let trap_url = format!("http://{}", trap.local_addr().expect("addr"));
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while trap.accept().await.is_ok() {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let mut custody = Custody::start(&config(&stub, ""));
    let token = idp.token("auth0|mallory");
    let headers = [
        json!({"alg": "ES256", "kid": "evil", "jku": format!("{trap_url}/jwks")}),
        json!({"alg": "ES256", "kid": "evil", "x5u": format!("{trap_url}/cert")}),
        json!({"alg": "ES256", "kid": format!("{trap_url}/key")}),
    ];
    for header in &headers {
        let mut req = post_json("/openai/v1/chat/completions", &chat());
        req.headers_mut().insert(
            "x-custody-user-token",
            with_header(&token, header).parse().expect("v"),
        );
        let (parts, _) = send_collect(&custody.unix(), req).await.expect("request");
        assert_eq!(parts.status, 401);
    }
    let mut big = idp.claims("auth0|mallory");
    big["padding"] = json!("x".repeat(64 * 1024));
    let mut req = post_json("/openai/v1/chat/completions", &chat());
    req.headers_mut().insert(
        "x-custody-user-token",
        idp.sign("k1", &big).parse().expect("v"),
    );
    req.headers_mut()
        .insert("x-request-id", "big".parse().expect("v"));
    let (parts, _) = send_collect(&custody.unix(), req).await.expect("request");
    assert_eq!(parts.status, 401);
    custody.stop();
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "custody fetched a URL named by a token"
    );
    let rows = custody.rows();
    assert_eq!(row(&rows, "big")["policy"]["rule"], "identity:too_large");
}

/// A chat request carrying `token`, tagged `id`.
async fn chat_as(custody: &Custody, id: &str, token: &str) -> (u16, Value) {
    let mut req = post_json("/openai/v1/chat/completions", &chat());
    req.headers_mut()
        .insert("x-request-id", id.parse().expect("v"));
    req.headers_mut()
        .insert("x-custody-user-token", token.parse().expect("v"));
    let (parts, body) = send_collect(&custody.unix(), req).await.expect("request");
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (parts.status.as_u16(), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_follow_cache_headers_and_outlive_an_outage_up_to_max_stale() {
    let stub = Stub::start().await;
    let idp = Idp::new(&stub.url());
    stub.set_jwks(idp.jwks());
    stub.set_jwks_cache_control("public, max-age=1");
    let config = config(&stub, "").replacen(
        "identity:\n",
        "identity:\n  jwks_refresh_min: 1s\n  jwks_max_stale: 2s\n",
        1,
    );
    let mut custody = Custody::start(&config);
    let ready = |custody: &Custody| admin_get(custody.admin, "/readyz").map(|(s, _)| s);

    // Refreshed on the IdP's schedule (max-age=1), not only at startup.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let scheduled = stub.jwks_fetches();
    assert!(
        scheduled >= 3,
        "{scheduled} fetches in 2.5 s with max-age=1"
    );

    // The IdP goes down: the last good keys keep verifying new tokens...
    stub.set_jwks_down(true);
    let (status, _) = chat_as(&custody, "outage", &idp.token("auth0|dave")).await;
    assert_eq!(status, 200, "cached keys serve through an outage");
    assert_eq!(ready(&custody), Some(200));

    // ...until they are jwks_max_stale past their refresh time.
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let (status, body) = chat_as(&custody, "stale", &idp.token("auth0|erin")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["type"], "identity_unavailable");
    // An IdP outage is every pod's: the sidecar stays ready (readiness is "can
    // serve"), and the stale keys show in /readyz's body and in the metrics.
    assert_eq!(ready(&custody), Some(200));
    let (_, state) = admin_get(custody.admin, "/readyz").expect("readyz");
    assert!(state.contains("\"identity_keys_usable\":false"), "{state}");
    assert_eq!(custody.metric("custody_identity_keys_usable"), Some(0.0));
    let failed = stub.jwks_fetches();
    assert!(
        failed > scheduled + 2,
        "failed refreshes are retried: {scheduled} → {failed}"
    );

    // The IdP comes back: keys are reloaded by the retry, without a token's help.
    stub.set_jwks_down(false);
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    assert_eq!(ready(&custody), Some(200));
    assert_eq!(custody.metric("custody_identity_keys_usable"), Some(1.0));
    let (status, _) = chat_as(&custody, "back", &idp.token("auth0|frank")).await;
    assert_eq!(status, 200);
    custody.stop();
    let rows = custody.rows();
    let stale = row(&rows, "stale");
    assert_eq!(stale["policy"]["decision"], "deny");
    assert_eq!(stale["policy"]["rule"], "identity:keys_unavailable");
    assert_eq!(row(&rows, "outage")["principal"]["sub"], "auth0|dave");
    assert_eq!(row(&rows, "back")["principal"]["sub"], "auth0|frank");
}
