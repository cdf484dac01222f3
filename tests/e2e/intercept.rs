//! Forward-proxy mode: `CONNECT` with TLS terminated by custody's CA, absolute-form
//! requests, untrusted upstreams and clients that do not trust the CA; tunnels to
//! hosts no route claims in [`tunnels`].

mod tunnels;

use bytes::Bytes;
use custody_tests::client::{Target, connect, http1_over, http2_over, request, send_collect, tls};
use custody_tests::harness::Custody;
use custody_tests::rows::row;
use custody_tests::stub::Stub;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

fn chat(stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

/// A TLS stub, its CA in a file, and the config sections that route `api.openai.com`
/// and `tools.internal` to it (with `extra`, e.g. `others: deny`, under `intercept`).
struct Setup {
    stub: Stub,
    _dir: tempfile::TempDir,
    config: String,
}

async fn setup(trust_upstream: bool, intercept_extra: &str) -> Setup {
    let (stub, ca_pem) = Stub::start_tls().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("upstream-ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("write");
    let port = stub.addr.port();
    let mut config = format!(
        "routes:\n  - {{name: openai, prefix: /openai, upstream: 'https://localhost:{port}', kind: openai, hosts: [api.openai.com]}}\n  - {{name: echo, prefix: /tools/echo, upstream: 'https://localhost:{port}/echo', kind: http, hosts: [tools.internal]}}\nintercept:\n  ca: {{export_dir: '{{dir}}/ca'}}\n{intercept_extra}"
    );
    if trust_upstream {
        config += &format!("upstream_tls:\n  extra_ca_file: '{}'\n", ca_file.display());
    }
    Setup {
        stub,
        _dir: dir,
        config,
    }
}

fn exported_ca(custody: &Custody) -> String {
    std::fs::read_to_string(custody.dir.path().join("ca/ca.pem")).expect("ca.pem exported")
}

/// `CONNECT host:443` through `target`, then TLS trusting custody's CA.
async fn intercepted(
    custody: &Custody,
    target: &Target,
    host: &str,
    alpn: &[&str],
) -> tokio_rustls::client::TlsStream<Box<dyn custody_tests::client::Io>> {
    intercepted_with(custody, target, host, "", alpn).await
}

/// [`intercepted`] with `extra` header lines on the `CONNECT`.
async fn intercepted_with(
    custody: &Custody,
    target: &Target,
    host: &str,
    extra: &str,
    alpn: &[&str],
) -> tokio_rustls::client::TlsStream<Box<dyn custody_tests::client::Io>> {
    let (status, head, io) = connect(target, &format!("{host}:443"), extra)
        .await
        .expect("connect");
    assert_eq!(status, 200, "{head}");
    tls(io, host, &exported_ca(custody), alpn)
        .await
        .expect("TLS with custody's leaf")
}

/// `CONNECT authority` (with `extra` header lines) to a host no route claims, over
/// TCP, then TLS with that server itself (trusting `server_ca`): a blind tunnel.
async fn tunnel(
    custody: &Custody,
    authority: &str,
    extra: &str,
    server_ca: &str,
) -> tokio_rustls::client::TlsStream<Box<dyn custody_tests::client::Io>> {
    let (status, head, io) = connect(&custody.tcp(), authority, extra)
        .await
        .expect("connect");
    assert_eq!(status, 200, "{head}");
    // The other server's own certificate, end to end: custody does not intercept.
    tls(io, "localhost", server_ca, &["http/1.1"])
        .await
        .expect("TLS with the real server")
}

/// `intercept.tunnel.allow_internal` naming exactly `authority` (for [`setup`]).
fn allow_internal(authority: &str) -> String {
    format!("  tunnel: {{allow_internal: ['{authority}']}}\n")
}

fn post(uri: &str, id: &str, body: &Value) -> http::Request<Full<Bytes>> {
    http::Request::post(uri)
        .header("content-type", "application/json")
        .header("x-request-id", id)
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request")
}

// Multi-threaded: the h2 client must keep running while the test thread waits for
// custody to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_a_claimed_host_is_intercepted_and_recorded_like_reverse_mode() {
    let s = setup(true, "").await;
    let mut custody = Custody::start(&s.config);
    let export = custody.dir.path().join("ca");
    let bundle = std::fs::read_to_string(export.join("bundle.pem")).expect("bundle.pem");
    assert!(bundle.ends_with(&exported_ca(&custody)));
    for f in ["ca.pem", "bundle.pem"] {
        let text = std::fs::read_to_string(export.join(f)).expect("read");
        assert!(!text.contains("PRIVATE KEY"), "{f} holds no key");
    }

    // Reverse-proxy mode, for comparison.
    let (parts, _) = send_collect(
        &custody.tcp(),
        post(
            "http://localhost/openai/v1/chat/completions",
            "rev-1",
            &chat(false),
        ),
    )
    .await
    .expect("reverse");
    assert_eq!(parts.status, 200);

    // CONNECT over the Unix socket, h2 inside: a JSON call and a stream on one
    // connection.
    let tls_h2 = intercepted(
        &custody,
        &custody.unix(),
        "api.openai.com",
        &["h2", "http/1.1"],
    )
    .await;
    assert_eq!(tls_h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut h2 = http2_over(tls_h2).await.expect("h2");
    let response = h2
        .send_request(post(
            "https://api.openai.com/v1/chat/completions",
            "int-1",
            &chat(false),
        ))
        .await
        .expect("intercepted JSON");
    assert_eq!(response.status(), 200);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from the stub."
    );
    let response = h2
        .send_request(post(
            "https://api.openai.com/v1/chat/completions",
            "int-2",
            &chat(true),
        ))
        .await
        .expect("intercepted stream");
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert!(
        String::from_utf8_lossy(&body)
            .trim_end()
            .ends_with("data: [DONE]")
    );

    // CONNECT over TCP, HTTP/1.1 inside, keep-alive: two requests on one connection.
    let tls_h1 = intercepted(&custody, &custody.tcp(), "api.openai.com", &["http/1.1"]).await;
    assert_eq!(tls_h1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut h1 = http1_over(tls_h1).await.expect("h1");
    for id in ["int-3", "int-4"] {
        h1.ready().await.expect("ready");
        let mut req = post("/v1/chat/completions", id, &chat(false));
        req.headers_mut()
            .insert("host", "api.openai.com".parse().expect("host"));
        let response = h1.send_request(req).await.expect("intercepted h1");
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.expect("body");
    }
    // Four requests on two connections to one host: one leaf signed.
    assert_eq!(
        custody.metric("custody_intercept_leaf_certificates_minted_total"),
        Some(1.0)
    );
    drop(h2);
    drop(h1);
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 5, "{rows:#?}");
    let seen = s.stub.request_ids();
    for id in ["rev-1", "int-1", "int-2", "int-3", "int-4"] {
        assert!(seen.iter().any(|s| s == id), "{id} reached the upstream");
    }
    let reverse = row(&rows, "rev-1");
    assert!(reverse["intercepted_host"].is_null());
    assert_eq!(reverse["schema_version"], custody_audit::SCHEMA_VERSION);
    for id in ["int-1", "int-3"] {
        let r = row(&rows, id);
        assert_eq!(r["intercepted_host"], "api.openai.com:443");
        assert_eq!(r["action"]["path"], "/v1/chat/completions");
        // Identical to the reverse-mode row but for identifiers, timings and path.
        let strip = |v: &Value| {
            let mut v = v.clone();
            for k in [
                "request_id",
                "client_request_id",
                "event_time",
                "intercepted_host",
                "session_id",
                "trace_id",
                "span_id",
                "session_step",
                "row_seq",
            ] {
                v[k] = Value::Null;
            }
            v["action"]["path"] = Value::Null;
            v["outcome"]["duration_ms"] = Value::Null;
            v
        };
        assert_eq!(strip(r), strip(reverse), "{id}");
    }
    let streamed = row(&rows, "int-2");
    assert_eq!(streamed["outcome"]["status"], 200);
    assert!(streamed["outcome"]["error"].is_null(), "{streamed:#?}");
    assert_eq!(streamed["usage"]["model"], "gpt-4o-mini");
}

#[tokio::test]
async fn absolute_form_requests_are_routed_by_host() {
    let s = setup(true, "").await;
    let mut custody = Custody::start(&s.config);
    let (parts, body) = send_collect(
        &custody.tcp(),
        request("GET", "http://tools.internal/contacts/7?q=1")
            .header("x-request-id", "abs-1")
            .header("proxy-authorization", "Basic dXNlcjpwYXNz")
            .body(Full::default())
            .expect("req"),
    )
    .await
    .expect("absolute-form");
    assert_eq!(parts.status, 200, "{}", String::from_utf8_lossy(&body));
    let seen: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(seen["path"], "/echo/contacts/7");
    assert_eq!(seen["query"], "q=1");
    assert!(
        seen["headers"]["proxy-authorization"].is_null(),
        "not forwarded"
    );
    // A host no route claims: refused, not relayed.
    let (parts, body) = send_collect(
        &custody.tcp(),
        request("GET", "http://example.com/x")
            .header("x-request-id", "abs-2")
            .body(Full::default())
            .expect("req"),
    )
    .await
    .expect("absolute-form");
    assert_eq!(parts.status, 403);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["error"]["type"], "host_not_intercepted");
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 2);
    let ok = row(&rows, "abs-1");
    assert_eq!(ok["intercepted_host"], "tools.internal:80");
    assert_eq!(ok["action"]["route"], "echo");
    assert_eq!(ok["action"]["path"], "/contacts/7");
    let refused = row(&rows, "abs-2");
    assert_eq!(refused["intercepted_host"], "example.com:80");
    assert_eq!(refused["outcome"]["status"], 403);
}

#[tokio::test]
async fn an_untrusted_upstream_certificate_is_a_502_with_a_row() {
    let s = setup(false, "").await;
    let mut custody = Custody::start(&s.config);
    let tls = intercepted(&custody, &custody.tcp(), "api.openai.com", &["http/1.1"]).await;
    let mut h1 = http1_over(tls).await.expect("h1");
    let mut req = post("/v1/chat/completions", "bad-up-1", &chat(false));
    req.headers_mut()
        .insert("host", "api.openai.com".parse().expect("host"));
    let response = h1.send_request(req).await.expect("response");
    assert_eq!(response.status(), 502);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["error"]["type"], "upstream_unreachable");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("certificate"),
        "{v}"
    );
    drop(h1);
    custody.stop();
    let rows = custody.rows();
    let r = row(&rows, "bad-up-1");
    assert_eq!(r["outcome"]["status"], 502);
    assert_eq!(r["intercepted_host"], "api.openai.com:443");
    assert!(s.stub.request_ids().is_empty());
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_forwards_nothing() {
    let s = setup(true, "").await;
    let mut custody = Custody::start(&s.config);
    let (status, _, io) = connect(&custody.tcp(), "api.openai.com:443", "")
        .await
        .expect("connect");
    assert_eq!(status, 200);
    // Trusts another CA only (the web roots would not do either).
    let (_, stranger_ca) = Stub::start_tls().await;
    let Err(e) = tls(io, "api.openai.com", &stranger_ca, &["http/1.1"]).await else {
        panic!("the handshake must fail");
    };
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    custody.stop();
    assert!(s.stub.request_ids().is_empty(), "nothing forwarded");
    let rows = custody.rows();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let r = &rows[0];
    assert_eq!(r["action"]["method"], "CONNECT");
    assert!(r["action"]["upstream"].is_null(), "no forwarded request");
    assert_eq!(r["intercepted_host"], "api.openai.com:443");
    assert!(
        r["outcome"]["error"]
            .as_str()
            .expect("error")
            .contains("handshake"),
        "{r:#?}"
    );
}

#[tokio::test]
async fn connect_without_forward_proxy_mode_is_refused() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&crate::routes(&stub));
    let (status, _, _) = connect(
        &custody.tcp(),
        "api.openai.com:443",
        "x-request-id: off-1\r\n",
    )
    .await
    .expect("connect");
    assert_eq!(status, 405);
    custody.stop();
    let rows = custody.rows();
    assert_eq!(row(&rows, "off-1")["outcome"]["status"], 405);
}

#[tokio::test]
async fn a_server_name_other_than_the_connect_host_is_refused() {
    let s = setup(true, "").await;
    let mut custody = Custody::start(&s.config);
    let (status, _, io) = connect(
        &custody.tcp(),
        "api.openai.com:443",
        "x-request-id: sni-1\r\n",
    )
    .await
    .expect("connect");
    assert_eq!(status, 200);
    // Another host custody would intercept too, asked for inside this tunnel.
    let result = tls(io, "tools.internal", &exported_ca(&custody), &["http/1.1"]).await;
    assert!(result.is_err(), "the handshake must fail");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        custody.metric("custody_intercept_leaf_certificates_minted_total"),
        Some(0.0),
        "no leaf signed for a mismatched name"
    );
    custody.stop();
    assert!(s.stub.request_ids().is_empty(), "nothing forwarded");
    let rows = custody.rows();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let r = row(&rows, "sni-1");
    assert_eq!(r["intercepted_host"], "api.openai.com:443");
    let error = r["outcome"]["error"].as_str().expect("error");
    assert!(
        error.contains("server name") && error.contains("tools.internal"),
        "{error}"
    );
}

/// Identity from the `CONNECT`'s `Proxy-Authorization`: on the tunnel's row, and for
/// requests inside an intercepted connection that carry no token of their own. The
/// token reaches neither the upstream nor a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_authorization_token_identifies_tunnels_and_intercepted_requests() {
    let (other, other_ca) = Stub::start_tls().await;
    let authority = format!("127.0.0.1:{}", other.addr.port());
    let s = setup(true, &allow_internal(&authority)).await;
    let issuer = Stub::start().await;
    let idp = custody_tests::idp::Idp::new(&issuer.url());
    issuer.set_jwks(idp.jwks());
    let config = format!(
        "{}identity:\n  issuers:\n    - {{issuer: '{}', audiences: [custody], algorithms: [ES256]}}\n",
        s.config,
        issuer.url()
    );
    let mut custody = Custody::start(&config);
    let token = idp.token("auth0|alice");
    let auth = format!("proxy-authorization: Bearer {token}\r\n");

    // A tunnel to a host no route claims.
    let open = tunnel(
        &custody,
        &authority,
        &format!("x-request-id: tun-auth\r\n{auth}"),
        &other_ca,
    )
    .await;
    drop(open);

    // An intercepted connection: the request inside has no token of its own. The
    // echo route shows what the upstream received.
    let inner = intercepted_with(
        &custody,
        &custody.tcp(),
        "tools.internal",
        &auth,
        &["http/1.1"],
    )
    .await;
    let mut h1 = http1_over(inner).await.expect("h1");
    let response = h1
        .send_request(
            request("GET", "/x")
                .header("host", "tools.internal")
                .header("x-request-id", "int-auth")
                .body(Full::<Bytes>::default())
                .expect("req"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let seen: Value = serde_json::from_slice(&body).expect("echo json");
    assert!(
        seen["headers"].get("proxy-authorization").is_none(),
        "{seen}"
    );
    assert!(
        !seen.to_string().contains(&token),
        "the upstream never sees the token"
    );
    drop(h1);

    // A connection without Proxy-Authorization, and a request without a token:
    // refused, so the 200 above came from the CONNECT's token.
    let inner = intercepted(&custody, &custody.tcp(), "api.openai.com", &["http/1.1"]).await;
    let mut h1 = http1_over(inner).await.expect("h1");
    let mut req = post("/v1/chat/completions", "int-anon", &chat(false));
    req.headers_mut()
        .insert("host", "api.openai.com".parse().expect("host"));
    let response = h1.send_request(req).await.expect("response");
    assert_eq!(response.status(), 401);
    drop(h1);

    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    custody.stop();
    assert_eq!(s.stub.request_ids(), ["int-auth"]);
    let rows = custody.rows();
    for id in ["tun-auth", "int-auth"] {
        let r = row(&rows, id);
        assert_eq!(r["principal"]["sub"], "auth0|alice", "{r:#?}");
        assert_eq!(r["principal"]["issuer"], issuer.url().as_str(), "{r:#?}");
    }
    assert_eq!(row(&rows, "tun-auth")["action"]["kind"], "tunnel");
    assert_eq!(row(&rows, "int-anon")["outcome"]["status"], 401);
    let all = serde_json::to_string(&rows).expect("json");
    assert!(!all.contains(&token), "the token is in no row");
}

/// `CONNECT` as an HTTP/2 request (prior knowledge on the Unix socket): the stream
/// is upgraded and intercepted like an HTTP/1.1 `CONNECT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_over_http2_is_intercepted_too() {
    let s = setup(true, "").await;
    let mut custody = Custody::start(&s.config);
    let custody_tests::client::Target::Unix(socket) = custody.unix() else {
        panic!("a Unix socket")
    };
    let io = tokio::net::UnixStream::connect(&socket)
        .await
        .expect("socket");
    let mut h2 = http2_over(io).await.expect("h2c");
    let req = http::Request::connect("api.openai.com:443")
        .header("x-request-id", "h2-connect")
        .body(Full::<Bytes>::default())
        .expect("request");
    let mut response = h2.send_request(req).await.expect("CONNECT");
    assert_eq!(response.status(), 200);
    let upgraded = hyper::upgrade::on(&mut response).await.expect("upgrade");
    let io: Box<dyn custody_tests::client::Io> = Box::new(hyper_util::rt::TokioIo::new(upgraded));
    let inner = tls(io, "api.openai.com", &exported_ca(&custody), &["http/1.1"])
        .await
        .expect("TLS with custody's leaf");
    let mut h1 = http1_over(inner).await.expect("h1");
    let mut req = post("/v1/chat/completions", "h2-inner", &chat(false));
    req.headers_mut()
        .insert("host", "api.openai.com".parse().expect("host"));
    let response = h1.send_request(req).await.expect("response");
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.expect("body");
    drop(h1);
    drop(h2);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    custody.stop();
    assert_eq!(s.stub.request_ids(), ["h2-inner"]);
    let rows = custody.rows();
    assert_eq!(
        rows.len(),
        1,
        "one row per request, none for the tunnel: {rows:#?}"
    );
    let r = row(&rows, "h2-inner");
    assert_eq!(r["intercepted_host"], "api.openai.com:443");
    assert_eq!(r["outcome"]["status"], 200);
}
