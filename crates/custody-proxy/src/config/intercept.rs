//! Validation of the `intercept` section (forward-proxy mode: `CONNECT` and
//! absolute-form requests, TLS terminated with a pod-local CA) and of `routes[].hosts`.

use super::problems::{Problems, Span};
use super::raw::NumberOrText;
use super::tunnel::TunnelConfig;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Built-in defaults, documented in `docs/configuration.md`.
pub(crate) mod defaults {
    use std::time::Duration;
    /// Leaf certificates kept (one per intercepted host name).
    pub(crate) const LEAF_CACHE_SIZE: usize = 1024;
    /// Validity of a minted leaf; it is re-minted once half of it has passed.
    pub(crate) const LEAF_LIFETIME: Duration = Duration::from_secs(24 * 3600);
}

/// `intercept` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIntercept {
    #[serde(default)]
    pub(crate) ca: RawCa,
    pub(crate) others: Option<Others>,
    pub(crate) leaf_cache_size: Option<usize>,
    pub(crate) leaf_lifetime: Option<NumberOrText>,
    #[serde(default)]
    pub(crate) tunnel: super::tunnel::RawTunnel,
}

/// `intercept.ca` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCa {
    pub(crate) cert_file: Option<String>,
    pub(crate) key_file: Option<String>,
    pub(crate) export_dir: Option<String>,
}

/// `intercept.others`: what happens to a `CONNECT` to a host no route claims.
/// `tunnel` tunnels only to the hosts `intercept.tunnel` allows (none by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Others {
    /// A blind TCP tunnel (nothing inside is inspected) to a host `intercept.tunnel`
    /// allows, recorded as one row of kind `tunnel` when it closes; other hosts are
    /// refused with 403 and a row.
    #[default]
    Tunnel,
    /// Refused with 403 and a row.
    Deny,
}

/// `intercept`: forward-proxy mode is on when the section is present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterceptConfig {
    /// Where the CA comes from: files, or generated at start.
    pub ca: CaSource,
    /// Where `ca.pem` and `bundle.pem` are written (never the key).
    pub export_dir: Option<PathBuf>,
    /// `CONNECT` to hosts no route claims.
    pub others: Others,
    /// Where tunnels may go (`others: tunnel`).
    pub tunnel: TunnelConfig,
    /// Most leaf certificates kept.
    pub leaf_cache_size: usize,
    /// Validity of a minted leaf certificate.
    pub leaf_lifetime: Duration,
}

/// `intercept.ca.cert_file` / `key_file`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaSource {
    /// Generated in memory at start (ECDSA P-256); the key never leaves the process.
    Generate,
    /// A CA certificate and its private key (PEM), e.g. from a mounted Secret.
    Files {
        /// The CA certificate.
        cert_file: PathBuf,
        /// Its private key (PKCS#8, SEC1 or PKCS#1 PEM); should be readable by
        /// custody alone.
        key_file: PathBuf,
    },
}

pub(crate) fn validate_intercept(raw: RawIntercept, issues: &mut Problems) -> InterceptConfig {
    let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty()).map(PathBuf::from);
    let ca = match (nonempty(raw.ca.cert_file), nonempty(raw.ca.key_file)) {
        (None, None) => CaSource::Generate,
        (Some(cert_file), Some(key_file)) => CaSource::Files {
            cert_file,
            key_file,
        },
        (Some(_), None) => {
            issues.push(
                "intercept.ca.key_file",
                "needed with intercept.ca.cert_file (or set neither to generate a CA at start)",
            );
            CaSource::Generate
        }
        (None, Some(_)) => {
            issues.push(
                "intercept.ca.cert_file",
                "needed with intercept.ca.key_file (or set neither to generate a CA at start)",
            );
            CaSource::Generate
        }
    };
    let leaf_cache_size = match raw.leaf_cache_size {
        None => defaults::LEAF_CACHE_SIZE,
        Some(n @ 1..=1_000_000) => n,
        Some(n) => {
            issues.push(
                "intercept.leaf_cache_size",
                format!("{n} is out of range 1..=1000000"),
            );
            defaults::LEAF_CACHE_SIZE
        }
    };
    let leaf_lifetime = issues.duration(
        "intercept.leaf_lifetime",
        raw.leaf_lifetime.as_ref(),
        defaults::LEAF_LIFETIME,
        Span::Within {
            min: Duration::from_secs(600),
            max: Duration::from_secs(397 * 86400),
            bounds: "10m and 397d",
            unit: "h",
        },
    );
    let others = raw.others.unwrap_or_default();
    let tunnel = super::tunnel::validate_tunnel(raw.tunnel, others == Others::Deny, issues);
    InterceptConfig {
        ca,
        export_dir: nonempty(raw.ca.export_dir),
        others,
        tunnel,
        leaf_cache_size,
        leaf_lifetime,
    }
}

/// Checks one entry of `routes[].hosts` and returns it normalised (lowercase, no
/// trailing dot): a DNS name or an IP address, without scheme, port or path.
pub(crate) fn check_host(host: &str) -> Result<String, String> {
    let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
    if h.is_empty() {
        return Err("must not be empty".into());
    }
    if h.parse::<std::net::IpAddr>().is_ok() {
        return Ok(h);
    }
    if h.contains("://") || h.contains(['/', ':', '?', '#', '@', ' ', '*']) {
        return Err(format!(
            "{host:?} must be a plain host name such as api.openai.com (no scheme, port, path or wildcard)"
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if h.len() > 253 || !h.split('.').all(label_ok) {
        return Err(format!("{host:?} is not a valid host name"));
    }
    Ok(h)
}
