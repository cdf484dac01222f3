//! Tunnels to hosts no route claims: only to hosts `intercept.tunnel` allows, never
//! to internal addresses (custody's listeners, loopback, unspecified, metadata,
//! link-local, IPv4-mapped forms) unless `allow_internal` names them; `deny`; the
//! rows, the JSON errors and the counters of each refusal.

use super::{allow_internal, setup, tunnel};
use bytes::Bytes;
use custody_tests::client::{connect, http1_over, request};
use custody_tests::harness::Custody;
use custody_tests::rows::row;
use custody_tests::stub::Stub;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

/// `CONNECT authority` (over TCP, with `x-request-id: id`) that custody refuses:
/// returns the status and the JSON error.
async fn refused(custody: &Custody, authority: &str, id: &str) -> (u16, Value) {
    use tokio::io::AsyncReadExt;
    let (status, head, mut io) = connect(
        &custody.tcp(),
        authority,
        &format!("x-request-id: {id}\r\n"),
    )
    .await
    .expect("connect");
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .unwrap_or_else(|| panic!("a refusal has a length: {head}"));
    let mut body = vec![0; len];
    io.read_exact(&mut body).await.expect("error body");
    (status, serde_json::from_slice(&body).expect("JSON error"))
}

#[tokio::test]
async fn allowed_hosts_are_tunnelled_and_recorded() {
    // The other server is on loopback: reachable only because allow_internal names
    // exactly its address and port (which also allows the tunnel).
    let (other, other_ca) = Stub::start_tls().await;
    let authority = format!("127.0.0.1:{}", other.addr.port());
    let s = setup(true, &allow_internal(&authority)).await;
    let mut custody = Custody::start(&s.config);
    let tls = tunnel(&custody, &authority, "x-request-id: tun-1\r\n", &other_ca).await;
    let mut h1 = http1_over(tls).await.expect("h1");
    let response = h1
        .send_request(
            request("GET", "/bytes?n=5000")
                .header("x-request-id", "inside-tunnel")
                .body(Full::<Bytes>::default())
                .expect("req"),
        )
        .await
        .expect("through the tunnel");
    assert_eq!(response.status(), 200);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(body.len(), 5000);
    drop(h1);
    assert_eq!(other.request_ids(), ["inside-tunnel"]);
    assert_eq!(
        custody.metric("custody_intercept_tunnels_opened_total"),
        Some(1.0)
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let t = row(&rows, "tun-1");
    assert_eq!(t["action"]["kind"], "tunnel");
    assert_eq!(t["action"]["method"], "CONNECT");
    assert_eq!(t["action"]["upstream"], authority);
    assert_eq!(t["intercepted_host"], authority);
    assert_eq!(t["policy"]["decision"], "allow");
    assert_eq!(
        t["policy"]["rule"],
        format!("intercept.tunnel.allow_internal:{authority}")
    );
    assert_eq!(t["outcome"]["status"], 200);
    assert!(t["outcome"]["bytes_in"].as_i64().expect("in") > 100);
    assert!(t["outcome"]["bytes_out"].as_i64().expect("out") > 5000);
    assert!(t["outcome"]["duration_ms"].as_f64().expect("duration") > 0.0);
}

#[tokio::test]
async fn deny_mode_refuses_other_hosts_with_a_row() {
    let s = setup(true, "  others: deny\n").await;
    let mut custody = Custody::start(&s.config);
    let (status, head, _) = connect(
        &custody.unix(),
        "example.com:443",
        "x-request-id: deny-1\r\n",
    )
    .await
    .expect("connect");
    assert_eq!(status, 403, "{head}");
    assert!(head.contains("application/json"), "{head}");
    assert_eq!(
        custody.metric("custody_intercept_tunnels_refused_total{reason=\"others_deny\"}"),
        Some(1.0)
    );
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 1);
    let r = row(&rows, "deny-1");
    assert_eq!(r["action"]["kind"], "tunnel");
    assert_eq!(r["action"]["upstream"], "example.com:443");
    assert_eq!(r["policy"]["decision"], "deny");
    assert_eq!(r["policy"]["rule"], "intercept.others:deny");
    assert_eq!(r["outcome"]["status"], 403);
}

/// Without `intercept.tunnel`, no unclaimed host is tunnelled (nothing is resolved).
#[tokio::test]
async fn by_default_no_host_is_tunnelled() {
    let s = setup(true, "").await;
    let mut custody = Custody::start(&s.config);
    let (status, body) = refused(&custody, "example.com:443", "na-1").await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["type"], "tunnel_not_allowed", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("intercept.tunnel.allow"),
        "the message names the key: {body}"
    );
    assert_eq!(
        custody.metric("custody_intercept_tunnels_refused_total{reason=\"not_allowed\"}"),
        Some(1.0)
    );
    assert_eq!(
        custody.metric("custody_intercept_tunnels_opened_total"),
        Some(0.0)
    );
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 1);
    let r = row(&rows, "na-1");
    assert_eq!(r["action"]["kind"], "tunnel");
    assert_eq!(r["action"]["upstream"], "example.com:443");
    assert_eq!(r["policy"]["decision"], "deny");
    assert_eq!(r["policy"]["rule"], "integrity:tunnel_not_allowed");
    assert_eq!(r["outcome"]["status"], 403);
}

/// With every host allowed (`*`), custody's own listeners, loopback, unspecified,
/// metadata and IPv4-mapped forms are still refused, each with a row saying why, and
/// nothing reaches the server listening there.
#[tokio::test]
async fn internal_targets_are_refused_even_when_every_host_is_allowed() {
    let (other, _) = Stub::start_tls().await;
    let port = other.addr.port();
    let s = setup(true, "  tunnel: {allow: ['*']}\n").await;
    let mut custody = Custody::start(&s.config);
    let admin = custody.admin;
    let cases = [
        (
            "t-admin",
            admin.to_string(),
            "is custody's own admin listener",
        ),
        (
            "t-tcp",
            custody.tcp.to_string(),
            "is custody's own tcp listener",
        ),
        (
            "t-localhost",
            format!("localhost:{port}"),
            "localhost resolves to ",
        ),
        (
            "t-loop",
            format!("127.0.0.1:{port}"),
            "127.0.0.1 is a loopback address",
        ),
        (
            "t-mapped",
            format!("[::ffff:127.0.0.1]:{port}"),
            "is a loopback address",
        ),
        (
            "t-zero",
            format!("0.0.0.0:{port}"),
            "0.0.0.0 is an unspecified address",
        ),
        (
            "t-meta",
            "169.254.169.254:80".into(),
            "169.254.169.254 is a cloud metadata address",
        ),
        (
            "t-meta6",
            "[fd00:ec2::254]:80".into(),
            "fd00:ec2::254 is a cloud metadata address",
        ),
        ("t-link", "[fe80::1]:443".into(), "a link-local address"),
    ];
    for (id, authority, _) in &cases {
        let (status, body) = refused(&custody, authority, id).await;
        assert_eq!(status, 403, "{authority}: {body}");
        assert_eq!(body["error"]["type"], "tunnel_target_forbidden", "{body}");
    }
    let metric = |reason: &str| {
        custody.metric(&format!(
            "custody_intercept_tunnels_refused_total{{reason=\"{reason}\"}}"
        ))
    };
    assert_eq!(metric("listener"), Some(2.0));
    assert_eq!(metric("loopback"), Some(3.0));
    assert_eq!(metric("unspecified"), Some(1.0));
    assert_eq!(metric("metadata"), Some(2.0));
    assert_eq!(metric("link_local"), Some(1.0));
    assert_eq!(metric("not_allowed"), Some(0.0));
    custody.stop();
    assert!(other.request_ids().is_empty(), "nothing reached the server");
    let rows = custody.rows();
    assert_eq!(rows.len(), cases.len(), "{rows:#?}");
    for (id, authority, says) in &cases {
        let r = row(&rows, id);
        assert_eq!(r["action"]["kind"], "tunnel", "{r:#?}");
        assert_eq!(r["policy"]["decision"], "deny", "{r:#?}");
        assert_eq!(r["policy"]["rule"], "integrity:tunnel_target", "{r:#?}");
        assert_eq!(r["outcome"]["status"], 403, "{r:#?}");
        let error = r["outcome"]["error"].as_str().expect("error");
        assert!(error.contains(says), "{authority}: {error}");
        assert!(error.contains("intercept.tunnel.allow_internal"), "{error}");
    }
}

/// A name on the allow-list that resolves to loopback is refused at connect time:
/// every address is checked, and the name is no opt-in for internal addresses.
#[tokio::test]
async fn an_allowed_name_that_resolves_to_loopback_is_refused() {
    let (other, _) = Stub::start_tls().await;
    let port = other.addr.port();
    let s = setup(true, "  tunnel: {allow: [localhost]}\n").await;
    let mut custody = Custody::start(&s.config);
    let (status, body) = refused(&custody, &format!("localhost:{port}"), "lh-1").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["type"], "tunnel_target_forbidden");
    // Not on the list: refused before any resolution.
    let (status, body) = refused(&custody, "example.com:443", "lh-2").await;
    assert_eq!(
        (status, &body["error"]["type"]),
        (403, &json!("tunnel_not_allowed"))
    );
    custody.stop();
    assert!(other.request_ids().is_empty());
    let rows = custody.rows();
    let r = row(&rows, "lh-1");
    assert_eq!(r["policy"]["rule"], "integrity:tunnel_target");
    let error = r["outcome"]["error"].as_str().expect("error");
    assert!(error.contains("localhost resolves to "), "{error}");
    assert!(error.contains("a loopback address"), "{error}");
    assert_eq!(
        row(&rows, "lh-2")["policy"]["rule"],
        "integrity:tunnel_not_allowed"
    );
}

/// SIGTERM while a tunnel is open: custody waits for it up to the grace period, then
/// cuts it, records it and exits 0.
#[tokio::test]
async fn an_open_tunnel_is_cut_at_the_end_of_the_grace_period_and_recorded() {
    let (other, other_ca) = Stub::start_tls().await;
    let authority = format!("127.0.0.1:{}", other.addr.port());
    let s = setup(true, &allow_internal(&authority)).await;
    let config = format!("{}shutdown:\n  grace_period: 1s\n", s.config);
    let mut custody = Custody::start(&config);
    let open = tunnel(
        &custody,
        &authority,
        "x-request-id: tun-open\r\n",
        &other_ca,
    )
    .await;
    let started = std::time::Instant::now();
    custody.stop();
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(900),
        "waited for the open tunnel ({took:?})"
    );
    assert!(
        took < std::time::Duration::from_secs(6),
        "cut at the end of the grace period ({took:?})"
    );
    drop(open);
    let rows = custody.rows();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let t = row(&rows, "tun-open");
    assert_eq!(t["action"]["kind"], "tunnel");
    assert_eq!(t["intercepted_host"], authority);
    assert!(
        t["outcome"]["bytes_in"].as_i64().expect("in") > 100,
        "{t:#?}"
    );
    assert!(
        t["outcome"]["duration_ms"].as_f64().expect("ms") >= 900.0,
        "{t:#?}"
    );
    assert_eq!(
        t["outcome"]["error"],
        "custody shut down before the tunnel closed (grace period over)"
    );
}
