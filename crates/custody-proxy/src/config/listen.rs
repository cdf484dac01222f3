//! `listen.allowed_hosts` and `listen.allowed_origins`: whom custody's TCP
//! listeners answer (see `crate::loopback` and docs/security.md).
//!
//! - `allowed_hosts`: names a request to custody's own TCP listeners may carry in
//!   `Host` (or its URI authority) besides `localhost`, `127.0.0.1`, `[::1]` and the
//!   address the connection arrived at. Entries are [`HostPattern`]s: `name`,
//!   `name:port`, `*.example.com`, addresses; `*` alone is refused (it would turn
//!   the check off).
//! - `allowed_origins`: browser origins (`scheme://host[:port]`, `http` or `https`)
//!   allowed to call custody; stored as browsers serialise them (lowercase, default
//!   port omitted), so comparing is string equality. `null` and `*` are refused.

use super::problems::Problems;
use super::{HostMatch, HostPattern};

/// Checks `listen.allowed_hosts`, recording each bad entry.
pub(crate) fn validate_hosts(entries: Vec<String>, issues: &mut Problems) -> Vec<HostPattern> {
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let path = format!("listen.allowed_hosts[{i}]");
        match HostPattern::parse(entry, false) {
            Ok(HostPattern {
                host: HostMatch::Any,
                ..
            }) => issues.push(path, "\"*\" would answer requests naming any host, which is what DNS rebinding needs; list the names clients use (a pod or Service name, *.svc.cluster.local)"),
            Ok(p) => out.push(p),
            Err(message) => issues.push(path, message),
        }
    }
    out
}

/// Checks `listen.allowed_origins`, recording each bad entry.
pub(crate) fn validate_origins(entries: Vec<String>, issues: &mut Problems) -> Vec<String> {
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        match serialise_origin(entry) {
            Ok(o) => out.push(o),
            Err(message) => issues.push(format!("listen.allowed_origins[{i}]"), message),
        }
    }
    out
}

/// An origin as browsers send it in `Origin`: `scheme://host[:port]`, lowercase,
/// without the scheme's default port. `None` for anything else (`null`, a path,
/// another scheme).
pub(crate) fn origin(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ', '*']) {
        return None;
    }
    let authority: http::uri::Authority = rest.parse().ok()?;
    let host = authority.host().to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    let has_port = authority.as_str().len() > authority.host().len();
    Some(match authority.port_u16() {
        Some(p) if p != default => format!("{scheme}://{host}:{p}"),
        Some(_) => format!("{scheme}://{host}"),
        // A port that is not a number, or an empty one, is not an origin.
        None if has_port => return None,
        None => format!("{scheme}://{host}"),
    })
}

fn serialise_origin(text: &str) -> Result<String, String> {
    let t = text.trim();
    if t == "*" || t.eq_ignore_ascii_case("null") {
        return Err(format!(
            "{t:?} is not accepted: list each origin (scheme://host[:port]) that may call custody"
        ));
    }
    origin(t.strip_suffix('/').unwrap_or(t)).ok_or_else(|| {
        format!("{text:?} is not an origin; expected scheme://host[:port] with scheme http or https, e.g. http://localhost:6274")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_stored_as_browsers_send_them() {
        let mut issues = Problems::default();
        let got = validate_origins(
            vec![
                "http://localhost:6274".into(),
                "HTTPS://App.Example.com:443/".into(),
                "http://[::1]:80".into(),
            ],
            &mut issues,
        );
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(
            got,
            [
                "http://localhost:6274",
                "https://app.example.com",
                "http://[::1]"
            ]
        );
        for bad in [
            "*",
            "null",
            "localhost:6274",
            "ftp://x",
            "http://x/path",
            "http://",
            "http://x:",
        ] {
            let mut issues = Problems::default();
            assert!(
                validate_origins(vec![bad.into()], &mut issues).is_empty(),
                "{bad}"
            );
            let issues = issues.into_vec();
            assert_eq!(issues.len(), 1, "{bad}");
            assert_eq!(issues[0].path, "listen.allowed_origins[0]");
        }
    }

    #[test]
    fn hosts_take_patterns_but_not_everything() {
        let mut issues = Problems::default();
        let got = validate_hosts(
            vec![
                "custody.default.svc".into(),
                "*.svc.cluster.local".into(),
                "localhost:8080".into(),
                "*".into(),
                "a/b".into(),
            ],
            &mut issues,
        );
        assert_eq!(got.len(), 3);
        let issues = issues.into_vec();
        assert_eq!(issues.len(), 2, "{issues:?}");
        assert_eq!(issues[0].path, "listen.allowed_hosts[3]");
        assert_eq!(issues[1].path, "listen.allowed_hosts[4]");
    }
}
