//! Everything `custody run` reads from files at start, read once more without
//! starting anything ([`preflight`]): the policy, the safety key, the routes'
//! credentials, the upstream and interception CAs, the audit sink's secrets and
//! the digest signing key, and the issuers' JWKS files. `custody config check`
//! reports every problem at once, each with the message `run` would stop with;
//! `run` does the same before it starts, so one attempt shows them all.
//!
//! Not checked here, because only starting can tell: whether the listeners'
//! addresses are free, whether URLs (JWKS, discovery, the S3 endpoint) answer.

use crate::config::{Config, KeySource};
use crate::error::StartError;

/// One thing custody would refuse (or, for a JWKS file, keep refusing tokens
/// over) at start.
#[derive(Debug)]
pub struct Problem {
    /// The message, as `custody run` says it.
    pub message: String,
    /// Whether `run` stops on it (`false`: it starts, but is not ready or refuses
    /// what depends on it).
    pub fatal: bool,
}

/// Reads every file `config` names the way `custody run` does at start.
pub fn preflight(config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut fatal = |r: Result<(), StartError>| {
        if let Err(e) = r {
            problems.push(Problem {
                message: e.to_string(),
                fatal: true,
            });
        }
    };
    fatal(crate::policy::PolicyStage::load(config.policy.as_ref()).map(drop));
    fatal(crate::safety::Safety::load(&config.safety).map(drop));
    fatal(crate::upstream::upstream_roots(&config.upstream_tls).map(drop));
    if let Some(intercept) = &config.intercept {
        fatal(crate::intercept::Intercept::check_ca(intercept));
    }
    for route in &config.routes {
        if let Some(c) = &route.credentials {
            fatal(crate::credentials::Credential::load(c).map(drop));
        }
    }
    fatal(
        config
            .audit
            .trail_config("check")
            .map(drop)
            .map_err(StartError::from),
    );
    if let Some(identity) = &config.identity {
        for issuer in &identity.issuers {
            let KeySource::File(path) = &issuer.keys else {
                continue;
            };
            let read = std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|b| custody_identity::KeySet::from_jwks(&b).map_err(|e| e.to_string()));
            if let Err(e) = read {
                problems.push(Problem {
                    message: format!(
                        "identity issuer {}: jwks_file {}: {e} (custody would start, stay not ready and refuse this issuer's tokens until the file is readable)",
                        issuer.policy.issuer,
                        path.display()
                    ),
                    fatal: false,
                });
            }
        }
    }
    problems
}
