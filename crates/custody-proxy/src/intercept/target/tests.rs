use super::*;
use crate::config::HostPattern;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn class(s: &str) -> Option<Forbidden> {
    classify(ip(s))
}

#[test]
fn ipv4_classes() {
    for (a, want) in [
        ("127.0.0.1", Some(Forbidden::Loopback)),
        ("127.255.255.254", Some(Forbidden::Loopback)),
        ("0.0.0.0", Some(Forbidden::Unspecified)),
        ("0.1.2.3", Some(Forbidden::Unspecified)),
        ("169.254.169.254", Some(Forbidden::Metadata)),
        ("169.254.170.2", Some(Forbidden::Metadata)),
        ("100.100.100.200", Some(Forbidden::Metadata)),
        ("192.0.0.192", Some(Forbidden::Metadata)),
        ("168.63.129.16", Some(Forbidden::Metadata)),
        ("169.254.0.1", Some(Forbidden::LinkLocal)),
        ("169.254.255.255", Some(Forbidden::LinkLocal)),
        ("224.0.0.1", Some(Forbidden::Multicast)),
        ("239.255.255.250", Some(Forbidden::Multicast)),
        ("255.255.255.255", Some(Forbidden::Broadcast)),
        // Public and private unicast are for the allow-list to decide.
        ("93.184.216.34", None),
        ("10.0.0.1", None),
        ("192.168.1.1", None),
        ("172.16.0.1", None),
        ("100.64.0.1", None),
        ("100.100.100.201", None),
        ("169.253.255.255", None),
        ("1.0.0.0", None),
    ] {
        assert_eq!(class(a), want, "{a}");
    }
}

#[test]
fn ipv6_classes() {
    for (a, want) in [
        ("::1", Some(Forbidden::Loopback)),
        ("::", Some(Forbidden::Unspecified)),
        ("fe80::1", Some(Forbidden::LinkLocal)),
        ("febf:ffff::1", Some(Forbidden::LinkLocal)),
        ("ff02::1", Some(Forbidden::Multicast)),
        ("fd00:ec2::254", Some(Forbidden::Metadata)),
        ("fd20:ce::254", Some(Forbidden::Metadata)),
        ("fd00:c1::a9fe:a9fe", Some(Forbidden::Metadata)),
        ("2001:db8::1", None),
        ("2606:4700::1111", None),
        ("fd00:ec2::253", None),
        ("fec0::1", None),
    ] {
        assert_eq!(class(a), want, "{a}");
    }
}

#[test]
fn ipv6_forms_of_ipv4_are_judged_by_the_ipv4_address() {
    for (a, want) in [
        // IPv4-mapped.
        ("::ffff:127.0.0.1", Some(Forbidden::Loopback)),
        ("::ffff:7f00:1", Some(Forbidden::Loopback)),
        ("::ffff:0.0.0.0", Some(Forbidden::Unspecified)),
        ("::ffff:169.254.169.254", Some(Forbidden::Metadata)),
        ("::ffff:a9fe:a9fe", Some(Forbidden::Metadata)),
        ("::ffff:100.100.100.200", Some(Forbidden::Metadata)),
        ("::ffff:169.254.1.1", Some(Forbidden::LinkLocal)),
        ("::ffff:93.184.216.34", None),
        // IPv4-compatible (deprecated, still parsed).
        ("::127.0.0.1", Some(Forbidden::Loopback)),
        ("::169.254.169.254", Some(Forbidden::Metadata)),
        ("::93.184.216.34", None),
        // NAT64 well-known prefix.
        ("64:ff9b::127.0.0.1", Some(Forbidden::Loopback)),
        ("64:ff9b::a9fe:a9fe", Some(Forbidden::Metadata)),
        ("64:ff9b::93.184.216.34", None),
    ] {
        assert_eq!(class(a), want, "{a}");
    }
}

#[test]
fn labels_are_complete_and_distinct() {
    let all = [
        Forbidden::Loopback,
        Forbidden::Unspecified,
        Forbidden::Metadata,
        Forbidden::LinkLocal,
        Forbidden::Multicast,
        Forbidden::Broadcast,
        Forbidden::Listener("admin"),
        Forbidden::Local,
        Forbidden::Unverified,
    ];
    assert_eq!(all.map(Forbidden::label), Forbidden::LABELS);
    assert_eq!(
        Forbidden::Listener("admin").describe(),
        "custody's own admin listener"
    );
}

fn guard(allow: &[&str], internal: &[&str], listeners: &[(&'static str, &str)]) -> Guard {
    let p = |list: &[&str], exact| {
        list.iter()
            .map(|s| HostPattern::parse(s, exact).expect("pattern"))
            .collect()
    };
    Guard::new(
        &TunnelConfig {
            allow: p(allow, false),
            allow_internal: p(internal, true),
        },
        listeners
            .iter()
            .map(|(n, a)| (*n, a.parse().expect("addr")))
            .collect(),
    )
}

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("socket addr")
}

/// A non-loopback address of this machine, when it has a route out (the address a
/// UDP socket "connected" towards TEST-NET-1 would use; nothing is sent).
fn outbound_address() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

#[test]
fn listeners_and_local_addresses_are_refused() {
    let g = guard(
        &["*"],
        &[],
        &[("tcp", "127.0.0.1:15080"), ("admin", "0.0.0.0:15090")],
    );
    assert_eq!(
        g.check("x", sa("127.0.0.1:15080")),
        Some(Forbidden::Listener("tcp"))
    );
    assert_eq!(
        g.check("x", sa("[::ffff:127.0.0.1]:15080")),
        Some(Forbidden::Listener("tcp"))
    );
    // The admin listener binds every local address.
    assert_eq!(
        g.check("x", sa("127.0.0.5:15090")),
        Some(Forbidden::Listener("admin"))
    );
    assert_eq!(
        g.check("x", sa("0.0.0.0:15090")),
        Some(Forbidden::Listener("admin"))
    );
    // Other ports of loopback are loopback; a remote address on the admin port is fine.
    assert_eq!(
        g.check("x", sa("127.0.0.1:8080")),
        Some(Forbidden::Loopback)
    );
    assert_eq!(g.check("x", sa("192.0.2.1:15090")), None);
    assert_eq!(g.check("x", sa("192.0.2.1:443")), None);
    assert_eq!(g.check("x", sa("[2001:db8::1]:443")), None);
    if let Some(own) = outbound_address() {
        assert_eq!(
            g.check("x", SocketAddr::new(own, 15090)),
            Some(Forbidden::Listener("admin")),
            "{own}"
        );
        assert_eq!(
            g.check("x", SocketAddr::new(own, 443)),
            Some(Forbidden::Local),
            "{own}"
        );
    }
}

#[test]
fn allow_internal_lifts_the_ban_for_what_it_names_only() {
    let g = guard(
        &["*"],
        &["127.0.0.1:8443", "localhost:9000", "169.254.169.254"],
        &[("admin", "127.0.0.1:15090")],
    );
    assert_eq!(g.check("127.0.0.1", sa("127.0.0.1:8443")), None);
    // Another name resolving to the named address and port: the same target.
    assert_eq!(g.check("evil.example", sa("127.0.0.1:8443")), None);
    assert_eq!(
        g.check("127.0.0.1", sa("127.0.0.1:8444")),
        Some(Forbidden::Loopback)
    );
    // A name: every address it resolves to, on its port.
    assert_eq!(g.check("localhost", sa("[::1]:9000")), None);
    assert_eq!(g.check("localhost", sa("127.0.0.1:9000")), None);
    assert_eq!(
        g.check("localhost", sa("127.0.0.1:9001")),
        Some(Forbidden::Loopback)
    );
    assert_eq!(
        g.check("localhost", sa("127.0.0.1:15090")),
        Some(Forbidden::Listener("admin"))
    );
    // No port: every port.
    assert_eq!(g.check("x", sa("169.254.169.254:80")), None);
    assert_eq!(
        g.check("x", sa("169.254.170.2:80")),
        Some(Forbidden::Metadata)
    );
}

#[test]
fn permits_names_the_entry_that_allowed() {
    let g = guard(
        &["*.googleapis.com", "api.github.com:443"],
        &["127.0.0.1:8443"],
        &[],
    );
    assert_eq!(
        g.permits("storage.googleapis.com", 443).as_deref(),
        Some("intercept.tunnel.allow:*.googleapis.com")
    );
    assert_eq!(
        g.permits("api.github.com", 443).as_deref(),
        Some("intercept.tunnel.allow:api.github.com:443")
    );
    assert_eq!(
        g.permits("127.0.0.1", 8443).as_deref(),
        Some("intercept.tunnel.allow_internal:127.0.0.1:8443")
    );
    assert_eq!(g.permits("api.github.com", 22), None);
    assert_eq!(g.permits("googleapis.com", 443), None);
    assert_eq!(g.permits("example.com", 443), None);
    // Not a host name at all.
    assert_eq!(guard(&["*"], &[], &[]).permits("a b", 443), None);
    assert_eq!(
        guard(&["*"], &[], &[]).permits("a_b%2e", 443),
        None,
        "neither a name nor an address"
    );
    assert_eq!(guard(&[], &[], &[]).permits("example.com", 443), None);
}

#[tokio::test]
async fn a_name_resolving_to_a_forbidden_address_is_refused_before_any_connection() {
    let g = guard(&["localhost"], &[], &[]);
    match g.connect("localhost", 9).await {
        Err(TargetError::Forbidden { address, class }) => {
            assert!(address.is_loopback(), "{address}");
            assert_eq!(class, Forbidden::Loopback);
        }
        other => panic!("{other:?}"),
    }
    // Numeric spellings the resolver accepts are judged by what they resolve to.
    let g = guard(&["*"], &[], &[]);
    for host in ["127.1", "2130706433", "0x7f.0.0.1", "0"] {
        match g.connect(host, 9).await {
            Err(TargetError::Forbidden { class, .. }) => {
                assert!(
                    matches!(class, Forbidden::Loopback | Forbidden::Unspecified),
                    "{host}: {class:?}"
                );
            }
            other => panic!("{host}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_opted_in_internal_target_is_connected_to() {
    let server = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = server.local_addr().expect("addr").port();
    let g = guard(&[], &[&format!("127.0.0.1:{port}")], &[]);
    let stream = g.connect("127.0.0.1", port).await.expect("connected");
    assert_eq!(stream.peer_addr().expect("peer").port(), port);
}
