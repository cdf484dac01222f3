//! The `identity` section as custody-identity uses it: the trusted issuers, where
//! their keys come from and how keys are refreshed. custody's config file is parsed
//! centrally (custody-proxy); the typed section lives here, with the checks that
//! span its fields ([`KeyRefresh::problems`]).

use std::path::PathBuf;
use std::time::Duration;

/// `identity`.
#[derive(Clone, Debug)]
pub struct IdentityConfig {
    /// Header carrying the user's token on routes with `token_from: header`.
    pub token_header: http::HeaderName,
    /// The trusted issuers, chosen by the token's `iss`.
    pub issuers: Vec<IssuerConfig>,
    /// When keys are refreshed and how long the last good ones outlive an outage.
    pub refresh: KeyRefresh,
}

/// `identity.jwks_refresh_min`, `jwks_refresh_max`, `jwks_max_stale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRefresh {
    /// Keys are never refetched on schedule sooner than this after a fetch, whatever
    /// the IdP's `Cache-Control` says (also the schedule of `jwks_file` rereads).
    pub min: Duration,
    /// Keys are refetched at least this often, whatever the IdP's cache headers say.
    pub max: Duration,
    /// How long past its refresh time a key set is still used while refreshes fail
    /// (IdP outage); after that the issuer's tokens are refused (`keys_unavailable`).
    pub max_stale: Duration,
}

/// One entry of `identity.issuers`.
#[derive(Clone, Debug)]
pub struct IssuerConfig {
    /// What the issuer's tokens must satisfy.
    pub policy: crate::IssuerPolicy,
    /// Where its keys come from.
    pub keys: KeySource,
}

/// Where an issuer's signing keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// A static JWKS file (air-gapped).
    File(PathBuf),
    /// A JWKS URL.
    Uri(http::Uri),
    /// `jwks_uri` from this OpenID discovery document URL.
    Discovery(http::Uri),
}

impl KeyRefresh {
    /// What is wrong with these settings, as (key, message): `jwks_refresh_min`
    /// must be at least 1 s, and `jwks_refresh_max` at least `jwks_refresh_min`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.min.is_zero() {
            out.push(("jwks_refresh_min", "must be at least 1s".to_owned()));
        }
        if self.max < self.min {
            out.push((
                "jwks_refresh_max",
                format!(
                    "{} is less than jwks_refresh_min ({})",
                    humantime::format_duration(self.max),
                    humantime::format_duration(self.min)
                ),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_bounds_are_checked_together() {
        let s = Duration::from_secs;
        let ok = KeyRefresh {
            min: s(60),
            max: s(3600),
            max_stale: s(86400),
        };
        assert!(ok.problems().is_empty());
        let bad = KeyRefresh {
            min: s(0),
            max: s(0),
            max_stale: s(0),
        };
        assert_eq!(
            bad.problems(),
            [("jwks_refresh_min", "must be at least 1s".to_owned())]
        );
        let inverted = KeyRefresh {
            min: s(120),
            max: s(60),
            max_stale: s(0),
        };
        assert_eq!(
            inverted.problems(),
            [(
                "jwks_refresh_max",
                "1m is less than jwks_refresh_min (2m)".to_owned()
            )]
        );
    }
}
