//! custody's loopback listeners answer the agent, not a web page: a request naming
//! another host (DNS rebinding) or sent by a browser page from an origin the
//! operator did not list is refused with a row and reaches nobody; a listed origin
//! gets CORS from custody. Every test drives the real binary with exact bytes
//! ([`raw_request`]) against an upstream that records what it receives.

use custody_tests::harness::{Custody, admin_get};
use custody_tests::recorder::{Recorder, raw_request};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An `anthropic` route holding custody's own key and an `mcp` route, both to
/// `recorder`; `http://localhost:6274` is a listed browser origin.
fn start(recorder: &Recorder, extra: &str) -> Custody {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("key");
    std::fs::write(&key, "sk-custody\n").expect("key");
    let custody = Custody::start(&format!(
        "listen:\n  allowed_origins: ['http://localhost:6274']\n\
         routes:\n\
         \x20 - name: anthropic\n    prefix: /anthropic\n    upstream: '{r}'\n    kind: anthropic\n\
         \x20   credentials: {{header: x-api-key, value_file: '{k}'}}\n\
         \x20 - {{name: mcp, prefix: /mcp, upstream: '{r}/mcp', kind: mcp}}\n{extra}",
        r = recorder.url(),
        k = key.display(),
    ));
    std::mem::forget(dir);
    custody
}

const MESSAGES: &[u8] =
    br#"{"model":"claude-3-5-haiku-latest","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;

/// The status, the response head (lower-case) and body of `head` + `body` sent as is.
async fn exchange(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> (u16, String, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request = format!(
        "{head}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        head.to_ascii_lowercase(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn row<'a>(rows: &'a [Value], id: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["client_request_id"] == id)
        .unwrap_or_else(|| panic!("no row {id}: {rows:#?}"))
}

#[tokio::test]
async fn a_rebound_host_is_refused_with_a_row_and_nothing_forwarded() {
    let recorder = Recorder::start().await;
    let mut custody = start(&recorder, "");
    let port = custody.tcp.port();
    for (id, head) in [
        // A page at http://evil.example:PORT whose name now resolves to 127.0.0.1.
        (
            "host-1",
            format!("POST /anthropic/v1/messages HTTP/1.1\r\nHost: evil.example:{port}"),
        ),
        // The absolute form names custody, the Host header another name.
        (
            "host-2",
            format!(
                "POST http://127.0.0.1:{port}/anthropic/v1/messages HTTP/1.1\r\nHost: evil.example"
            ),
        ),
        // The absolute form names another host (no forward-proxy mode).
        (
            "host-3",
            format!(
                "POST http://evil.example:{port}/anthropic/v1/messages HTTP/1.1\r\nHost: localhost"
            ),
        ),
        // Two Host headers.
        (
            "host-4",
            "POST /anthropic/v1/messages HTTP/1.1\r\nHost: localhost\r\nHost: evil.example".into(),
        ),
    ] {
        let (status, _, v) = exchange(
            custody.tcp,
            &format!("{head}\r\nx-request-id: {id}\r\ncontent-type: application/json"),
            MESSAGES,
        )
        .await;
        assert_eq!(status, 421, "{id}: {v}");
        assert_eq!(v["error"]["type"], "host_not_allowed", "{id}");
    }
    assert!(recorder.requests().is_empty(), "nothing forwarded");
    // The same request naming custody is forwarded, with custody's key.
    let (status, _, _) = exchange(
        custody.tcp,
        &format!("POST /anthropic/v1/messages HTTP/1.1\r\nHost: localhost:{port}\r\nx-request-id: host-ok\r\ncontent-type: application/json"),
        MESSAGES,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(recorder.requests().len(), 1);
    assert_eq!(
        custody.metric("custody_integrity_refusals_total{reason=\"host\"}"),
        Some(4.0)
    );
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 5, "{rows:#?}");
    for id in ["host-1", "host-2", "host-3", "host-4"] {
        let r = row(&rows, id);
        assert_eq!(r["policy"]["decision"], "deny", "{id}");
        assert_eq!(r["policy"]["rule"], "integrity:host", "{id}");
        assert_eq!(r["outcome"]["status"], 421, "{id}");
        let why = if id == "host-4" {
            "more than one Host header"
        } else {
            "listen.allowed_hosts"
        };
        assert!(
            r["outcome"]["error"]
                .as_str()
                .is_some_and(|e| e.contains(why)),
            "{r:#?}"
        );
    }
}

#[tokio::test]
async fn browser_requests_only_from_listed_origins() {
    let recorder = Recorder::start().await;
    let mut custody = start(&recorder, "");
    let post = |id: &str, extra: &str| {
        format!(
            "POST /anthropic/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nx-request-id: {id}\r\ncontent-type: text/plain{extra}"
        )
    };
    for (id, extra) in [
        ("origin-1", "\r\nOrigin: http://evil.example"),
        ("origin-2", "\r\nOrigin: null"),
        ("origin-3", "\r\nSec-Fetch-Site: cross-site"),
        (
            "origin-4",
            "\r\nOrigin: http://localhost:6274\r\nOrigin: http://evil.example",
        ),
    ] {
        let (status, head, v) = exchange(custody.tcp, &post(id, extra), MESSAGES).await;
        assert_eq!(status, 403, "{id}: {v}");
        assert_eq!(v["error"]["type"], "origin_not_allowed", "{id}");
        assert!(
            !head.contains("access-control-"),
            "no CORS for {id}: {head}"
        );
    }
    // Its preflight is refused too.
    let (status, head, _) = exchange(
        custody.tcp,
        "OPTIONS /anthropic/v1/messages HTTP/1.1\r\nHost: localhost\r\nx-request-id: origin-5\r\nOrigin: http://evil.example\r\nAccess-Control-Request-Method: POST",
        b"",
    )
    .await;
    assert_eq!(status, 403);
    assert!(!head.contains("access-control-"), "{head}");
    assert!(recorder.requests().is_empty(), "nothing forwarded");

    // The listed origin: custody answers its preflight and its requests carry CORS.
    let (status, head, _) = exchange(
        custody.tcp,
        "OPTIONS /mcp HTTP/1.1\r\nHost: localhost\r\nx-request-id: pre-1\r\nOrigin: http://localhost:6274\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type, mcp-session-id",
        b"",
    )
    .await;
    assert_eq!(status, 204, "{head}");
    assert!(
        head.contains("access-control-allow-origin: http://localhost:6274"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-methods: post"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-headers: content-type, mcp-session-id"),
        "{head}"
    );
    assert!(recorder.requests().is_empty(), "the preflight is custody's");
    let (status, head, _) = exchange(
        custody.tcp,
        &post(
            "origin-ok",
            "\r\nOrigin: http://localhost:6274\r\nSec-Fetch-Site: cross-site",
        ),
        MESSAGES,
    )
    .await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("access-control-allow-origin: http://localhost:6274"),
        "{head}"
    );
    assert_eq!(recorder.requests().len(), 1);
    assert_eq!(
        recorder.requests()[0].header_values("x-api-key"),
        ["sk-custody"]
    );
    assert_eq!(
        custody.metric("custody_integrity_refusals_total{reason=\"origin\"}"),
        Some(5.0)
    );
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 7, "{rows:#?}");
    for id in ["origin-1", "origin-2", "origin-3", "origin-4", "origin-5"] {
        let r = row(&rows, id);
        assert_eq!(r["policy"]["rule"], "integrity:origin", "{id}");
        assert_eq!(r["outcome"]["status"], 403, "{id}");
    }
    let pre = row(&rows, "pre-1");
    assert_eq!(pre["outcome"]["status"], 204);
    assert_eq!(pre["action"]["method"], "OPTIONS");
    assert_eq!(pre["action"]["route"], "mcp");
    assert_eq!(row(&rows, "origin-ok")["outcome"]["status"], 200);
}

#[tokio::test]
async fn the_unix_socket_is_not_checked() {
    let recorder = Recorder::start().await;
    let custody = start(&recorder, "");
    let mut stream = tokio::net::UnixStream::connect(&custody.socket)
        .await
        .expect("connect");
    let head = format!(
        "POST /anthropic/v1/messages HTTP/1.1\r\nHost: evil.example\r\nOrigin: http://evil.example\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        MESSAGES.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(MESSAGES).await.expect("write");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.expect("read");
    assert!(
        out.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(recorder.requests().len(), 1);
}

#[tokio::test]
async fn the_admin_listener_checks_host_and_origin() {
    let recorder = Recorder::start().await;
    let custody = start(&recorder, "");
    let admin = custody.admin;
    for (head, status, kind) in [
        (
            format!(
                "GET /metrics HTTP/1.1\r\nHost: evil.example:{}",
                admin.port()
            ),
            421,
            "host_not_allowed",
        ),
        (
            "GET /healthz HTTP/1.1\r\nHost: localhost\r\nOrigin: http://evil.example".into(),
            403,
            "origin_not_allowed",
        ),
    ] {
        let (got, v) = raw_request(admin, &head, b"").await;
        assert_eq!(got, status, "{head}");
        let v: Value = serde_json::from_slice(&v).expect("json");
        assert_eq!(v["error"]["type"], kind);
    }
    // Kubelet and Prometheus name the address they connected to.
    let (got, _) = raw_request(
        admin,
        &format!("GET /readyz HTTP/1.1\r\nHost: {admin}"),
        b"",
    )
    .await;
    assert_eq!(got, 200);
    assert_eq!(admin_get(admin, "/healthz").map(|(c, _)| c), Some(200));
    assert_eq!(
        custody.metric("custody_admin_refusals_total{reason=\"host\"}"),
        Some(1.0)
    );
    assert_eq!(
        custody.metric("custody_admin_refusals_total{reason=\"origin\"}"),
        Some(1.0)
    );
}

#[tokio::test]
async fn forward_proxy_requests_keep_their_rules_but_do_not_bypass_the_check() {
    let recorder = Recorder::start().await;
    let mut custody = start(
        &recorder,
        &format!(
            "  - {{name: tools, prefix: /tools, upstream: '{}', kind: http, hosts: [tools.internal]}}\nintercept:\n  ca: {{export_dir: '{{dir}}/ca'}}\n",
            recorder.url()
        ),
    );
    let port = custody.tcp.port();
    // A claimed host: its authority is the target, routed by host as before.
    let (status, _, _) = exchange(
        custody.tcp,
        "GET http://tools.internal/x HTTP/1.1\r\nHost: tools.internal\r\nx-request-id: fp-1",
        b"",
    )
    .await;
    assert_eq!(status, 200);
    // A host no route claims: 403 as before.
    let (status, _, v) = exchange(
        custody.tcp,
        "GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\nx-request-id: fp-2",
        b"",
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(v["error"]["type"], "host_not_intercepted");
    // Addressed to custody itself with another Host: the check applies.
    let (status, _, v) = exchange(
        custody.tcp,
        &format!("POST http://localhost:{port}/anthropic/v1/messages HTTP/1.1\r\nHost: evil.example\r\nx-request-id: fp-3\r\ncontent-type: application/json"),
        MESSAGES,
    )
    .await;
    assert_eq!(status, 421, "{v}");
    // A browser using custody as its proxy: the origin is checked on host-routed requests.
    let (status, _, v) = exchange(
        custody.tcp,
        "POST http://tools.internal/x HTTP/1.1\r\nHost: tools.internal\r\nOrigin: http://evil.example\r\nx-request-id: fp-4",
        b"{}",
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(v["error"]["type"], "origin_not_allowed");
    assert_eq!(recorder.requests().len(), 1, "only fp-1 forwarded");
    custody.stop();
    let rows = custody.rows();
    assert_eq!(row(&rows, "fp-2")["outcome"]["status"], 403);
    assert_eq!(row(&rows, "fp-3")["policy"]["rule"], "integrity:host");
    assert_eq!(row(&rows, "fp-4")["policy"]["rule"], "integrity:origin");
}
