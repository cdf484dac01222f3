//! Where a tunnel may go: the allow-list (`intercept.tunnel.allow`), the addresses
//! custody never tunnels to, and the one resolution a tunnel connects with.
//!
//! Forbidden addresses ([`classify`], [`Guard::check`]), whatever the `CONNECT` named:
//! - loopback: `127.0.0.0/8`, `::1`;
//! - unspecified / "this network": `0.0.0.0/8`, `::` (Linux connects `0.0.0.0` to
//!   the local host);
//! - cloud metadata: `169.254.169.254` (AWS, GCP, Azure, OCI, OpenStack,
//!   DigitalOcean), `169.254.170.2` (AWS ECS task metadata), `fd00:ec2::254` (AWS
//!   IMDS over IPv6), `fd20:ce::254` (GCP metadata over IPv6), `fd00:c1::a9fe:a9fe`
//!   (OCI IMDS over IPv6), `100.100.100.200` (Alibaba Cloud), `192.0.0.192` (Oracle
//!   Cloud Classic), `168.63.129.16` (Azure WireServer);
//! - link-local: `169.254.0.0/16`, `fe80::/10`;
//! - multicast `224.0.0.0/4`, `ff00::/8`, and broadcast `255.255.255.255`;
//! - custody's own TCP and admin listeners (a listener on `0.0.0.0` or `::` is on every
//!   local address);
//! - any address of this machine (pod): one a socket can be bound to. Checked by
//!   binding a UDP socket to it (port 0, nothing sent); an error other than "address
//!   not available" refuses the address (fail closed).
//!
//! IPv6 forms that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`,
//! IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) are judged by that address.
//!
//! Resolution: a name is resolved once, at connect time; every address it resolves to
//! is checked, and the tunnel connects only to those checked addresses (never a second
//! lookup, which DNS rebinding would exploit). One forbidden address refuses the whole
//! name. `intercept.tunnel.allow_internal` lifts the ban for what it names: a name
//! (every address it resolves to) or an address.

use crate::config::{HostPattern, TunnelConfig};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::TcpStream;

/// Why an address is refused as a tunnel target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Forbidden {
    Loopback,
    Unspecified,
    Metadata,
    LinkLocal,
    Multicast,
    Broadcast,
    /// One of custody's own listeners: `"tcp"` or `"admin"`.
    Listener(&'static str),
    /// An address of this machine or pod.
    Local,
    /// Whether it is local could not be checked.
    Unverified,
}

impl Forbidden {
    /// Every metric label of [`Forbidden::label`], in a fixed order.
    pub(crate) const LABELS: [&'static str; 9] = [
        "loopback",
        "unspecified",
        "metadata",
        "link_local",
        "multicast",
        "broadcast",
        "listener",
        "local",
        "unverified",
    ];

    /// The `reason` label on `custody_intercept_tunnels_refused_total`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Forbidden::Loopback => "loopback",
            Forbidden::Unspecified => "unspecified",
            Forbidden::Metadata => "metadata",
            Forbidden::LinkLocal => "link_local",
            Forbidden::Multicast => "multicast",
            Forbidden::Broadcast => "broadcast",
            Forbidden::Listener(_) => "listener",
            Forbidden::Local => "local",
            Forbidden::Unverified => "unverified",
        }
    }

    /// For messages: "a loopback address".
    pub(crate) fn describe(self) -> String {
        match self {
            Forbidden::Loopback => "a loopback address".into(),
            Forbidden::Unspecified => "an unspecified address (the local host)".into(),
            Forbidden::Metadata => "a cloud metadata address".into(),
            Forbidden::LinkLocal => "a link-local address".into(),
            Forbidden::Multicast => "a multicast address".into(),
            Forbidden::Broadcast => "the broadcast address".into(),
            Forbidden::Listener(name) => format!("custody's own {name} listener"),
            Forbidden::Local => "an address of this machine (pod)".into(),
            Forbidden::Unverified => {
                "an address custody could not check (is it this machine's?)".into()
            }
        }
    }
}

/// The cloud metadata addresses (see the module docs).
pub(crate) const METADATA: [IpAddr; 8] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V4(Ipv4Addr::new(192, 0, 0, 192)),
    IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V6(Ipv6Addr::new(0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xc1, 0, 0, 0, 0, 0xa9fe, 0xa9fe)),
];

/// The IPv4 address an IPv6 address carries: IPv4-mapped, IPv4-compatible (not `::`
/// or `::1`), NAT64 well-known prefix.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::from(u32::from(s[6]) << 16 | u32::from(s[7]));
    let compatible = s[..6].iter().all(|&x| x == 0) && !ip.is_unspecified() && !ip.is_loopback();
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    (compatible || nat64).then_some(tail)
}

/// The class of a forbidden address, from the address alone (no I/O); `None` for an
/// address custody may tunnel to (its own listeners and local addresses aside: see
/// [`Guard::check`]).
pub(crate) fn classify(ip: IpAddr) -> Option<Forbidden> {
    let ip = match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if METADATA.contains(&ip) {
        return Some(Forbidden::Metadata);
    }
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_loopback() {
                Some(Forbidden::Loopback)
            } else if v4.octets()[0] == 0 {
                Some(Forbidden::Unspecified)
            } else if v4.is_link_local() {
                Some(Forbidden::LinkLocal)
            } else if v4.is_multicast() {
                Some(Forbidden::Multicast)
            } else if v4.is_broadcast() {
                Some(Forbidden::Broadcast)
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                Some(Forbidden::Loopback)
            } else if v6.is_unspecified() {
                Some(Forbidden::Unspecified)
            } else if v6.is_unicast_link_local() {
                Some(Forbidden::LinkLocal)
            } else if v6.is_multicast() {
                Some(Forbidden::Multicast)
            } else {
                None
            }
        }
    }
}

/// Whether `ip` is an address of this machine: a UDP socket can be bound to it.
fn is_local(ip: IpAddr) -> std::io::Result<bool> {
    match std::net::UdpSocket::bind(SocketAddr::new(ip, 0)) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Ok(false),
        Err(e) => Err(e),
    }
}

/// Why a tunnel could not be opened.
#[derive(Debug)]
pub(crate) enum TargetError {
    /// The name is, or resolves to, an address custody does not tunnel to.
    Forbidden { address: IpAddr, class: Forbidden },
    /// Resolution or every connection attempt failed.
    Unreachable(String),
}

/// The tunnel rules, ready: `intercept.tunnel` and custody's own listeners.
#[derive(Debug, Default)]
pub(crate) struct Guard {
    allow: Vec<HostPattern>,
    allow_internal: Vec<HostPattern>,
    /// `("tcp" | "admin", bound address)`.
    pub(crate) listeners: Vec<(&'static str, SocketAddr)>,
}

impl Guard {
    pub(crate) fn new(config: &TunnelConfig, listeners: Vec<(&'static str, SocketAddr)>) -> Self {
        Self {
            allow: config.allow.clone(),
            allow_internal: config.allow_internal.clone(),
            listeners,
        }
    }

    /// The entry that allows `host:port`, as the row's `policy.rule`
    /// (`intercept.tunnel.allow:*.example.com`, `intercept.tunnel.allow_internal:…`),
    /// or `None`. `host` as [`crate::entrance::split_authority`] gives it; a host that
    /// is neither a valid name nor an address is never allowed.
    pub(crate) fn permits(&self, host: &str, port: u16) -> Option<String> {
        if crate::config::check_host(host).is_err() {
            return None;
        }
        let find = |key: &str, list: &[HostPattern]| {
            list.iter()
                .find(|p| p.matches(host, port))
                .map(|p| format!("intercept.tunnel.{key}:{p}"))
        };
        find("allow", &self.allow).or_else(|| find("allow_internal", &self.allow_internal))
    }

    /// Why custody will not tunnel to `addr`, reached through `host` (the `CONNECT`
    /// host); `None` when it may.
    pub(crate) fn check(&self, host: &str, addr: SocketAddr) -> Option<Forbidden> {
        let (ip, port) = (addr.ip().to_canonical(), addr.port());
        let exempt = self
            .allow_internal
            .iter()
            .any(|p| p.matches(host, port) || p.names_address(ip, port));
        if exempt {
            return None;
        }
        let class = classify(ip);
        // Only addresses no class forbids need the system call.
        let local = class.is_none().then(|| is_local(ip));
        let on_this_host = matches!(class, Some(Forbidden::Loopback | Forbidden::Unspecified))
            || matches!(local, Some(Ok(true) | Err(_)));
        for &(name, l) in &self.listeners {
            let at = l.ip().to_canonical() == ip || (l.ip().is_unspecified() && on_this_host);
            if l.port() == port && at {
                return Some(Forbidden::Listener(name));
            }
        }
        match (class, local) {
            (Some(class), _) => Some(class),
            (None, Some(Ok(true))) => Some(Forbidden::Local),
            (None, Some(Err(e))) => {
                tracing::warn!(address = %ip, error = %e, "could not check whether a tunnel target is a local address; refused");
                Some(Forbidden::Unverified)
            }
            (None, _) => None,
        }
    }

    /// Resolves `host` once, checks every address, and connects to the first checked
    /// address that answers.
    pub(crate) async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, TargetError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| TargetError::Unreachable(format!("resolving {host}: {e}")))?
            .collect();
        if addrs.is_empty() {
            return Err(TargetError::Unreachable(format!(
                "{host} resolves to no address"
            )));
        }
        for addr in &addrs {
            if let Some(class) = self.check(host, *addr) {
                return Err(TargetError::Forbidden {
                    address: addr.ip(),
                    class,
                });
            }
        }
        let mut last = String::new();
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(TargetError::Unreachable(last))
    }
}

#[cfg(test)]
mod tests;
