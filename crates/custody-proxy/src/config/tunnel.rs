//! `intercept.tunnel`: which hosts a `CONNECT` to a host no route claims may be
//! tunnelled to (`allow`), and which internal targets the operator opts into
//! (`allow_internal`).
//!
//! A pattern is `HOST` or `HOST:PORT` (IPv6 in brackets with a port: `[2001:db8::1]:443`):
//! - `*` — any host (names and IP addresses);
//! - `*.example.com` — any name *below* `example.com` (`a.example.com`,
//!   `a.b.example.com`), not `example.com` itself;
//! - `api.github.com` — that name exactly (lowercase; a trailing dot is ignored);
//! - `203.0.113.7`, `2001:db8::1` — that address (IPv4-mapped IPv6 forms compare
//!   equal to the IPv4 address).
//!
//! Without a port a pattern matches every port. `allow_internal` entries are exact
//! (no `*`): each names a host or address custody may tunnel to even though it is (or
//! resolves to) an address custody otherwise never tunnels to (loopback, link-local,
//! cloud metadata, its own addresses; see `intercept::target`). An `allow_internal`
//! entry also allows the tunnel: it need not be repeated in `allow`.

use super::problems::Problems;
use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;

/// `intercept.tunnel` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTunnel {
    #[serde(default)]
    pub(crate) allow: Vec<String>,
    #[serde(default)]
    pub(crate) allow_internal: Vec<String>,
}

/// `intercept.tunnel`, checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TunnelConfig {
    /// Hosts a `CONNECT` to an unclaimed host may be tunnelled to. Empty (the default):
    /// none.
    pub allow: Vec<HostPattern>,
    /// Exact hosts or addresses that may be tunnelled to although they are internal
    /// (loopback, link-local, metadata, custody's own addresses).
    pub allow_internal: Vec<HostPattern>,
}

/// One entry of `intercept.tunnel.allow` or `allow_internal`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    /// Which hosts.
    pub host: HostMatch,
    /// Which port; `None`: any.
    pub port: Option<u16>,
}

/// The host part of a [`HostPattern`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostMatch {
    /// `*`: every host.
    Any,
    /// `*.example.com`: names ending in `.example.com` (stored with the leading dot).
    Below(String),
    /// A host name, lowercase, without a trailing dot.
    Name(String),
    /// An IP address (IPv4-mapped IPv6 stored as IPv4).
    Ip(IpAddr),
}

impl HostPattern {
    /// Parses one entry; `exact` refuses wildcards (`allow_internal`).
    pub(crate) fn parse(text: &str, exact: bool) -> Result<HostPattern, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("must not be empty".into());
        }
        if t.contains("://") || t.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!(
                "{text:?} must be a host with an optional port, e.g. api.github.com or *.googleapis.com:443 (no scheme or path)"
            ));
        }
        let (host, port) = split_port(t).map_err(|m| format!("{text:?}: {m}"))?;
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(rest) = host.strip_prefix("*.") {
            let name = super::intercept::check_host(rest)
                .map_err(|_| format!("{text:?}: after \"*.\" comes a host name"))?;
            if name.parse::<IpAddr>().is_ok() {
                return Err(format!(
                    "{text:?}: a wildcard applies to names, not addresses"
                ));
            }
            HostMatch::Below(format!(".{name}"))
        } else if let Ok(ip) = host.trim_end_matches('.').parse::<IpAddr>() {
            HostMatch::Ip(ip.to_canonical())
        } else if host.contains('*') {
            return Err(format!(
                "{text:?}: a wildcard is either the whole host (*) or its first label (*.example.com)"
            ));
        } else {
            HostMatch::Name(super::intercept::check_host(&host)?)
        };
        if exact && matches!(host, HostMatch::Any | HostMatch::Below(_)) {
            return Err(format!(
                "{text:?}: allow_internal takes exact hosts or addresses, no wildcard"
            ));
        }
        Ok(HostPattern { host, port })
    }

    /// Whether `host` (lowercase, no brackets, no trailing dot, as the `CONNECT`
    /// asked for it) and `port` match.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match &self.host {
            HostMatch::Any => true,
            HostMatch::Ip(ip) => host
                .parse::<IpAddr>()
                .is_ok_and(|h| h.to_canonical() == *ip),
            HostMatch::Name(name) => name == host,
            HostMatch::Below(suffix) => {
                host.len() > suffix.len()
                    && host.ends_with(suffix.as_str())
                    && host.parse::<IpAddr>().is_err()
            }
        }
    }

    /// Whether this exact entry names the address `ip` on `port` (IP entries only).
    pub fn names_address(&self, ip: IpAddr, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
            && matches!(self.host, HostMatch::Ip(own) if own == ip.to_canonical())
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.host {
            HostMatch::Any => "*".to_owned(),
            HostMatch::Below(s) => format!("*{s}"),
            HostMatch::Name(n) => n.clone(),
            HostMatch::Ip(IpAddr::V6(ip)) if self.port.is_some() => format!("[{ip}]"),
            HostMatch::Ip(ip) => ip.to_string(),
        };
        match self.port {
            Some(p) => write!(f, "{host}:{p}"),
            None => f.write_str(&host),
        }
    }
}

/// `host[:port]`, `[v6]:port`, or a bare IPv6 address.
fn split_port(t: &str) -> Result<(&str, Option<u16>), String> {
    let port = |p: &str| match p.parse::<u16>() {
        Ok(p @ 1..) => Ok(Some(p)),
        _ => Err(format!("{p:?} is not a port (1..=65535)")),
    };
    if let Some(rest) = t.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or_else(|| "an opening [ without its ]".to_owned())?;
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{ip:?} in brackets is not an IPv6 address"));
        }
        return match after {
            "" => Ok((ip, None)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((ip, port(p)?)),
                None => Err("expected :PORT after the ]".into()),
            },
        };
    }
    if t.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok((t, None));
    }
    match t.rsplit_once(':') {
        Some((h, _)) if h.contains(':') => {
            Err("an IPv6 address with a port goes in brackets: [2001:db8::1]:443".into())
        }
        Some((h, p)) => Ok((h, port(p)?)),
        None => Ok((t, None)),
    }
}

/// Checks `intercept.tunnel`. `deny`: `intercept.others` is `deny`, so nothing is
/// tunnelled and a non-empty list would be misleading.
pub(crate) fn validate_tunnel(raw: RawTunnel, deny: bool, issues: &mut Problems) -> TunnelConfig {
    let mut push = |path: String, message: String| issues.push(path, message);
    let mut list = |key: &str, entries: Vec<String>, exact: bool| -> Vec<(usize, HostPattern)> {
        if deny && !entries.is_empty() {
            push(
                format!("intercept.tunnel.{key}"),
                "has no effect with intercept.others: deny (nothing is tunnelled); set others: tunnel or remove it".into(),
            );
        }
        entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                HostPattern::parse(e, exact)
                    .map(|p| (i, p))
                    .map_err(|m| push(format!("intercept.tunnel.{key}[{i}]"), m))
                    .ok()
            })
            .collect()
    };
    let allow = list("allow", raw.allow, false);
    let allow_internal = list("allow_internal", raw.allow_internal, true);
    // An address custody never tunnels to, allowed but not opted into: it would be
    // refused on every CONNECT; say so now.
    for (i, p) in &allow {
        if let HostMatch::Ip(ip) = p.host
            && let Some(class) = crate::intercept::target::classify(ip)
            && !allow_internal.iter().any(|(_, e)| e.host == p.host)
        {
            push(
                format!("intercept.tunnel.allow[{i}]"),
                format!(
                    "{ip} is {}: custody tunnels there only when intercept.tunnel.allow_internal names it",
                    class.describe()
                ),
            );
        }
    }
    TunnelConfig {
        allow: allow.into_iter().map(|(_, p)| p).collect(),
        allow_internal: allow_internal.into_iter().map(|(_, p)| p).collect(),
    }
}

#[cfg(test)]
mod tests;
