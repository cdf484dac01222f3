//! Validation of the `identity` section and of the routes' identity settings.

use super::problems::{Problems, Span};
use super::raw::{NumberOrText, RawClaims, RawCredentials, RawIdentity, RawIssuer, Setting};
use super::units::parse_size;
use super::{Credentials, IdentityConfig, IssuerConfig, KeyRefresh, KeySource};
use custody_identity::{Algorithm, ClaimNames, IssuerPolicy};
use http::{HeaderName, Uri};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// Default header for the user's token on routes with `token_from: header`.
pub const DEFAULT_TOKEN_HEADER: &str = "x-custody-user-token";
const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
const DEFAULT_MAX_TOKEN: u64 = 8 << 10;
const MAX_TOKEN_LIMIT: u64 = 64 << 10;
/// Default `jwks_refresh_min`, `jwks_refresh_max` and `jwks_max_stale`.
const DEFAULT_REFRESH: KeyRefresh = KeyRefresh {
    min: Duration::from_secs(5 * 60),
    max: Duration::from_secs(24 * 3600),
    max_stale: Duration::from_secs(24 * 3600),
};

/// Every asymmetric algorithm custody verifies; the default allow-list.
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fn text(v: &NumberOrText) -> String {
    v.text()
}

pub(crate) fn validate_identity(raw: RawIdentity, issues: &mut Problems) -> Option<IdentityConfig> {
    let token_header = match raw.token_header.as_deref() {
        None => HeaderName::from_static(DEFAULT_TOKEN_HEADER),
        Some(h) => match HeaderName::try_from(h) {
            Ok(name) if name != http::header::AUTHORIZATION => name,
            Ok(_) => {
                issues.push("identity.token_header",
                    "use `token_from: authorization` on a route to read Authorization; token_header names custody's own header",
                );
                HeaderName::from_static(DEFAULT_TOKEN_HEADER)
            }
            Err(_) => {
                issues.push(
                    "identity.token_header",
                    format!("{h:?} is not a valid header name"),
                );
                HeaderName::from_static(DEFAULT_TOKEN_HEADER)
            }
        },
    };
    let leeway = issues.duration(
        "identity.leeway",
        raw.leeway.as_ref(),
        DEFAULT_LEEWAY,
        Span::Any,
    );
    let refresh = KeyRefresh {
        min: issues.duration(
            "identity.jwks_refresh_min",
            raw.jwks_refresh_min.as_ref(),
            DEFAULT_REFRESH.min,
            Span::Any,
        ),
        max: issues.duration(
            "identity.jwks_refresh_max",
            raw.jwks_refresh_max.as_ref(),
            DEFAULT_REFRESH.max,
            Span::Any,
        ),
        max_stale: issues.duration(
            "identity.jwks_max_stale",
            raw.jwks_max_stale.as_ref(),
            DEFAULT_REFRESH.max_stale,
            Span::Any,
        ),
    };
    for (key, message) in refresh.problems() {
        issues.push(format!("identity.{key}"), message);
    }
    let max_token = match &raw.max_token_size {
        None => DEFAULT_MAX_TOKEN,
        Some(v) => match parse_size(&text(v)) {
            Ok(n) if (256..=MAX_TOKEN_LIMIT).contains(&n) => n,
            Ok(n) => {
                issues.push(
                    "identity.max_token_size",
                    format!("{n} bytes is outside 256B..=64KiB"),
                );
                DEFAULT_MAX_TOKEN
            }
            Err(m) => {
                issues.push("identity.max_token_size", m);
                DEFAULT_MAX_TOKEN
            }
        },
    };
    if raw.issuers.is_empty() {
        issues.push(
            "identity.issuers",
            "at least one issuer is needed (remove the identity section to run without identity)",
        );
        return None;
    }
    let mut seen = HashSet::new();
    let issuers = raw
        .issuers
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let at = format!("identity.issuers[{i}]");
            if !seen.insert(r.issuer.clone()) {
                issues.push(
                    format!("{at}.issuer"),
                    format!("duplicate issuer {:?}", r.issuer),
                );
            }
            validate_issuer(r, &at, leeway, max_token, issues)
        })
        .collect();
    Some(IdentityConfig {
        token_header,
        issuers,
        refresh,
    })
}

fn validate_issuer(
    r: RawIssuer,
    at: &str,
    leeway: Duration,
    max_token: u64,
    issues: &mut Problems,
) -> Option<IssuerConfig> {
    let start = issues.len();
    if r.issuer.trim().is_empty() {
        issues.push(format!("{at}.issuer"), "must not be empty");
    }
    if r.audiences.is_empty() || r.audiences.iter().any(|a| a.is_empty()) {
        issues.push(
            format!("{at}.audiences"),
            "list the audiences custody accepts (non-empty strings)",
        );
    }
    let keys = match (r.discovery, r.jwks_uri, r.jwks_file) {
        (Some(true), Some(_), _) | (Some(true), _, Some(_)) | (_, Some(_), Some(_)) => {
            issues.push(
                at,
                "choose one key source: discovery, jwks_uri or jwks_file",
            );
            None
        }
        (_, Some(uri), None) => http_uri(&uri)
            .map_err(|m| issues.push(format!("{at}.jwks_uri"), m))
            .ok()
            .map(KeySource::Uri),
        (_, None, Some(file)) if file.trim().is_empty() => {
            issues.push(format!("{at}.jwks_file"), "must not be empty");
            None
        }
        (_, None, Some(file)) => Some(KeySource::File(PathBuf::from(file))),
        (Some(false), None, None) => {
            issues.push(
                at,
                "discovery is off and neither jwks_uri nor jwks_file is set: no keys",
            );
            None
        }
        (None | Some(true), None, None) => {
            let url = format!(
                "{}/.well-known/openid-configuration",
                r.issuer.trim_end_matches('/')
            );
            http_uri(&url)
                .map_err(|m| issues.push(format!("{at}.issuer"), format!("discovery: {m}")))
                .ok()
                .map(KeySource::Discovery)
        }
    };
    let algorithms = match r.algorithms {
        None => ASYMMETRIC.to_vec(),
        Some(names) => names
            .iter()
            .enumerate()
            .filter_map(|(j, name)| {
                let alg = serde_json::from_value::<Algorithm>(serde_json::Value::String(name.clone()))
                    .ok()
                    .filter(|a| ASYMMETRIC.contains(a));
                if alg.is_none() {
                    issues.push(format!("{at}.algorithms[{j}]"), format!("{name:?} is not an accepted algorithm; use RS256/384/512, PS256/384/512, ES256/384 or EdDSA"));
                }
                alg
            })
            .collect(),
    };
    let claims = claim_names(r.claims.unwrap_or_default());
    if issues.len() > start {
        return None;
    }
    Some(IssuerConfig {
        policy: IssuerPolicy {
            issuer: r.issuer,
            audiences: r.audiences,
            algorithms,
            leeway,
            claims,
            max_token_bytes: usize::try_from(max_token).unwrap_or(usize::MAX),
        },
        keys: keys?,
    })
}

fn claim_names(raw: RawClaims) -> ClaimNames {
    let defaults = ClaimNames::default();
    let pick = |s: Setting<String>, d: Option<String>| match s {
        Setting::Absent => d,
        Setting::Null => None,
        Setting::Value(v) => Some(v),
    };
    ClaimNames {
        org: pick(raw.org, defaults.org),
        role: pick(raw.role, defaults.role),
        roles: pick(raw.roles, defaults.roles),
        scopes: pick(raw.scopes, defaults.scopes),
    }
}

fn http_uri(text: &str) -> Result<Uri, String> {
    let uri: Uri = text
        .parse()
        .map_err(|e| format!("invalid URL {text:?}: {e}"))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => Ok(uri),
        _ => Err(format!("{text:?} must be an http:// or https:// URL")),
    }
}

pub(crate) fn validate_credentials(
    raw: RawCredentials,
    at: &str,
    issues: &mut Problems,
) -> Option<Credentials> {
    let header = HeaderName::try_from(raw.header.as_str())
        .map_err(|_| {
            issues.push(
                format!("{at}.header"),
                format!("{:?} is not a valid header name", raw.header),
            )
        })
        .ok();
    if raw.value_file.trim().is_empty() {
        issues.push(format!("{at}.value_file"), "must not be empty");
        return None;
    }
    if http::HeaderValue::from_str(&raw.prefix).is_err() {
        issues.push(format!("{at}.prefix"), "must be printable ASCII");
        return None;
    }
    Some(Credentials {
        header: header?,
        value_file: PathBuf::from(raw.value_file),
        prefix: raw.prefix,
    })
}
