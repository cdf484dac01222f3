use super::{Arrival, Guard};
use crate::config::{Config, HostPattern};
use crate::integrity::Reason;
use http::Request;

const LOCAL: &str = "127.0.0.1:15080";

fn guard(hosts: &[&str], origins: &[&str]) -> Guard {
    let mut listen = Config::defaults().listen;
    listen.allowed_hosts = hosts
        .iter()
        .map(|h| HostPattern::parse(h, false).expect("pattern"))
        .collect();
    listen.allowed_origins = origins.iter().map(|o| (*o).to_owned()).collect();
    Guard::new(&listen)
}

fn tcp(addr: &str) -> Arrival {
    Arrival::Tcp(addr.parse().expect("addr"))
}

fn req(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::post(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).expect("request")
}

fn host_ok(g: &Guard, host: &str, at: &str) -> bool {
    g.check(&req("/openai/v1/x", &[("host", host)]), tcp(at), false)
        .is_ok()
}

#[test]
fn loopback_names_with_or_without_the_listeners_port() {
    let g = guard(&[], &[]);
    for host in [
        "localhost",
        "localhost:15080",
        "LocalHost.:15080",
        "127.0.0.1",
        "127.0.0.1:15080",
        "[::1]",
        "[::1]:15080",
    ] {
        assert!(host_ok(&g, host, LOCAL), "{host}");
    }
    for host in [
        "evil.example",
        "evil.example:15080",
        "localhost:8080",
        "127.0.0.2:15080",
        "localhost.evil.example",
        "user@localhost:15080",
        "localhost:x",
        "10.0.0.5:15080",
    ] {
        assert!(!host_ok(&g, host, LOCAL), "{host}");
    }
}

#[test]
fn the_address_the_connection_arrived_at_is_custody() {
    // kubelet probes and Prometheus send Host: <pod IP>:<port>.
    let g = guard(&[], &[]);
    assert!(host_ok(&g, "10.0.0.5:15090", "10.0.0.5:15090"));
    assert!(host_ok(&g, "10.0.0.5", "10.0.0.5:15090"));
    assert!(host_ok(&g, "[fd00::5]:15090", "[fd00::5]:15090"));
    assert!(!host_ok(&g, "10.0.0.6:15090", "10.0.0.5:15090"));
    // An IPv4 connection accepted on a dual-stack socket.
    assert!(host_ok(&g, "10.0.0.5:15090", "[::ffff:10.0.0.5]:15090"));
}

#[test]
fn listed_hosts_are_answered() {
    let g = guard(
        &["custody.default.svc", "*.pods.local", "localhost:8080"],
        &[],
    );
    assert!(host_ok(&g, "custody.default.svc:15080", LOCAL));
    assert!(host_ok(&g, "custody.default.svc", LOCAL));
    assert!(host_ok(&g, "a.pods.local:15080", LOCAL));
    assert!(host_ok(&g, "localhost:8080", LOCAL));
    assert!(!host_ok(&g, "pods.local", LOCAL));
    assert!(!host_ok(&g, "localhost:8081", LOCAL));
}

#[test]
fn every_name_the_request_carries_is_checked() {
    let g = guard(&[], &[]);
    let refused = |r: Request<()>| {
        g.check(&r, tcp(LOCAL), false)
            .map(|_| ())
            .map_err(|e| e.reason)
    };
    // The URI authority (HTTP/2 :authority, absolute form) and Host disagree.
    assert_eq!(
        refused(req("http://evil.example:15080/x", &[("host", "localhost")])),
        Err(Reason::Host)
    );
    assert_eq!(
        refused(req("http://localhost:15080/x", &[("host", "evil.example")])),
        Err(Reason::Host)
    );
    assert_eq!(
        refused(req(
            "http://localhost:15080/x",
            &[("host", "localhost:15080")]
        )),
        Ok(())
    );
    let mut two = req("/x", &[("host", "localhost")]);
    two.headers_mut()
        .append("host", http::HeaderValue::from_static("evil.example"));
    assert_eq!(refused(two), Err(Reason::Host));
    // No name at all (HTTP/1.0) names nothing else.
    assert_eq!(refused(req("/x", &[])), Ok(()));
    // A forward-proxy request naming its target keeps its own rules.
    assert!(
        g.check(
            &req("http://api.openai.com/v1/x", &[("host", "api.openai.com")]),
            tcp(LOCAL),
            true
        )
        .is_ok()
    );
    // The Unix socket and terminated CONNECTs are not host-checked.
    let evil = req("/x", &[("host", "evil.example")]);
    assert!(g.check(&evil, Arrival::Unix, false).is_ok());
    assert!(g.check(&evil, Arrival::Tunnel, false).is_ok());
}

#[test]
fn browsers_are_answered_only_from_listed_origins() {
    let g = guard(&[], &["http://localhost:6274"]);
    let check = |headers: &[(&str, &str)], arrival| {
        let mut h = vec![("host", "localhost:15080")];
        h.extend_from_slice(headers);
        g.check(&req("/x", &h), arrival, false)
            .map(|c| c.origin.is_some())
            .map_err(|e| e.reason)
    };
    assert_eq!(check(&[], tcp(LOCAL)), Ok(false));
    assert_eq!(check(&[("sec-fetch-site", "none")], tcp(LOCAL)), Ok(false));
    assert_eq!(
        check(&[("sec-fetch-site", "same-origin")], tcp(LOCAL)),
        Ok(false)
    );
    assert_eq!(
        check(&[("origin", "http://localhost:6274")], tcp(LOCAL)),
        Ok(true)
    );
    assert_eq!(
        check(&[("origin", "HTTP://LOCALHOST:6274")], tcp(LOCAL)),
        Ok(true)
    );
    // custody's own origin: same-origin, no CORS needed.
    for own in [
        "http://localhost:15080",
        "http://127.0.0.1:15080",
        "http://[::1]:15080",
    ] {
        assert_eq!(check(&[("origin", own)], tcp(LOCAL)), Ok(false), "{own}");
        assert_eq!(
            check(&[("origin", own)], Arrival::Tunnel),
            Err(Reason::Origin),
            "{own}"
        );
    }
    for bad in [
        vec![("origin", "http://evil.example")],
        vec![("origin", "null")],
        vec![("origin", "http://localhost:6275")],
        vec![("origin", "https://localhost:15080")],
        vec![("origin", "http://localhost:15081")],
        vec![
            ("origin", "http://localhost:15080"),
            ("sec-fetch-site", "cross-site"),
        ],
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![
            ("origin", "http://localhost:6274"),
            ("origin", "http://evil.example"),
        ],
    ] {
        assert_eq!(check(&bad, tcp(LOCAL)), Err(Reason::Origin), "{bad:?}");
        // Inside a terminated CONNECT too (a browser using custody as its proxy).
        assert_eq!(check(&bad, Arrival::Tunnel), Err(Reason::Origin), "{bad:?}");
        assert_eq!(check(&bad, Arrival::Unix), Ok(false), "{bad:?}");
    }
}

#[test]
fn cors_for_a_listed_origin_only() {
    let g = guard(&[], &["http://localhost:6274"]);
    let preflight = Request::options("/mcp")
        .header("host", "localhost:15080")
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, mcp-session-id",
        )
        .body(())
        .expect("request");
    let cors = g.check(&preflight, tcp(LOCAL), false).expect("listed");
    let answer = cors.preflight().expect("custody answers the preflight");
    assert_eq!(answer.status(), 204);
    let h = answer.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:6274");
    assert_eq!(h["access-control-allow-methods"], "POST");
    assert_eq!(
        h["access-control-allow-headers"],
        "content-type, mcp-session-id"
    );
    assert!(h.get("access-control-allow-credentials").is_none());

    // A plain request is not a preflight; the upstream's CORS headers are replaced.
    let plain = req(
        "/mcp",
        &[("host", "localhost"), ("origin", "http://localhost:6274")],
    );
    let cors = g.check(&plain, tcp(LOCAL), false).expect("listed");
    assert!(cors.preflight().is_none());
    let mut headers = http::HeaderMap::new();
    headers.insert("access-control-allow-origin", "*".parse().expect("v"));
    headers.insert(
        "access-control-allow-credentials",
        "true".parse().expect("v"),
    );
    cors.apply(&mut headers);
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://localhost:6274"
    );
    assert!(headers.get("access-control-allow-credentials").is_none());

    // No origin: no CORS headers at all, the upstream's removed.
    let cors = g.check(&req("/mcp", &[("host", "localhost")]), tcp(LOCAL), false);
    let mut headers = http::HeaderMap::new();
    headers.insert("access-control-allow-origin", "*".parse().expect("v"));
    cors.expect("ok").apply(&mut headers);
    assert!(headers.is_empty());
}

proptest::proptest! {
    /// The shortcut for plain names never answers a name the parse refuses: names
    /// built from pieces of loopback names, ports (with leading zeros, signs, out
    /// of range), user info, brackets and trailing dots, at listeners on several
    /// addresses and ports.
    #[test]
    fn the_plain_name_shortcut_takes_only_what_the_parse_takes(
        host in proptest::sample::select(vec![
            "127.0.0.1", "LOCALHOST", "localhost", "LocalHost", "localhost.", "127.0.0.2",
            "[::1]", "[::1]x", "[::2]", "127.0.0.10", "localhostx", "user@localhost",
            "127.0.0.1@evil", "", "evil", "localhost.evil",
            "0x7f.1", "127.1",
        ]),
        sep in proptest::sample::select(vec![":", "", "::", ": "]),
        port in proptest::sample::select(vec![
            "15080", "015080", "+15080", "1508", "150800", "65536", "", "8080", "80", "x",
        ]),
        at in proptest::sample::select(vec!["127.0.0.1:15080", "10.0.0.5:15080", "127.0.0.1:8080", "[::1]:80"]),
    ) {
        let g = guard(&[], &[]);
        let local: std::net::SocketAddr = at.parse().expect("addr");
        let name = format!("{host}{sep}{port}");
        if super::plainly_own(&name, local) {
            proptest::prop_assert!(g.answers_parsed(&name, local), "{name} at {at}");
        }
    }
}

#[test]
fn the_plain_name_shortcut_takes_the_usual_names() {
    let local: std::net::SocketAddr = LOCAL.parse().expect("addr");
    for name in [
        "127.0.0.1:15080",
        "localhost:15080",
        "LOCALHOST:15080",
        "localhost",
        "127.0.0.1",
        "[::1]",
        "[::1]:15080",
    ] {
        assert!(super::plainly_own(name, local), "{name}");
    }
    for name in [
        "127.0.0.1:8080",
        "localhost:015080",
        "localhost:",
        "localhost.",
        "localhostx",
        "127.0.0.10",
        "[::1]x",
        "localhost:15080x",
    ] {
        assert!(!super::plainly_own(name, local), "{name}");
    }
}
