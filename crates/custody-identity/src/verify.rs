//! Verifying one token against one issuer's policy and keys.

use crate::claims::{self, ClaimNames};
use crate::keys::KeySet;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custody_core::Principal;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What one issuer accepts.
#[derive(Clone, Debug)]
pub struct IssuerPolicy {
    /// The exact `iss` value.
    pub issuer: String,
    /// Accepted audiences; the token's `aud` must contain at least one.
    pub audiences: Vec<String>,
    /// Allowed signature algorithms (asymmetric only; others are never accepted).
    pub algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Where the attributes are in the claims.
    pub claims: ClaimNames,
    /// Largest token accepted, in bytes.
    pub max_token_bytes: usize,
}

/// A verified token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// sub, org, role, roles, issuer.
    pub principal: Principal,
    /// The token's scopes (empty when it carries none).
    pub scopes: Vec<String>,
    /// The token's `jti`, if any.
    pub jti: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No token where one is required.
    #[error("no token")]
    Missing,
    /// Not a well-formed JWT (segments, base64, JSON, required claims).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Larger than the issuer's limit.
    #[error("token larger than {0} bytes")]
    TooLarge(usize),
    /// `exp` is past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// No configured issuer has this `iss`.
    #[error("unknown issuer {0:?}")]
    UnknownIssuer(String),
    /// `aud` does not contain an accepted audience.
    #[error("wrong audience")]
    WrongAudience,
    /// No key with the token's `kid`.
    #[error("unknown signing key")]
    UnknownKey,
    /// `alg` is `none`, symmetric, not allowed for the issuer, or does not fit the key.
    #[error("algorithm {0:?} not allowed")]
    DisallowedAlgorithm(String),
    /// The token has a `crit` header custody does not understand.
    #[error("unsupported critical header")]
    UnsupportedCritical,
}

impl Rejection {
    /// The stable reason, as used in `policy.rule = identity:<reason>`.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Missing => "missing",
            Rejection::Malformed(_) => "malformed",
            Rejection::TooLarge(_) => "too_large",
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not_yet_valid",
            Rejection::BadSignature => "bad_signature",
            Rejection::UnknownIssuer(_) => "unknown_issuer",
            Rejection::WrongAudience => "wrong_audience",
            Rejection::UnknownKey => "unknown_key",
            Rejection::DisallowedAlgorithm(_) => "disallowed_algorithm",
            Rejection::UnsupportedCritical => "unsupported_critical",
        }
    }
}

fn segments(token: &str) -> Result<[&str; 3], Rejection> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() => Ok([h, p, s]),
        _ => Err(Rejection::Malformed(
            "a JWT has three dot-separated parts".into(),
        )),
    }
}

fn json_segment(segment: &str, what: &str) -> Result<Value, Rejection> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Rejection::Malformed(format!("{what} is not base64url")))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|_| Rejection::Malformed(format!("{what} is not JSON")))?;
    if !value.is_object() {
        return Err(Rejection::Malformed(format!("{what} is not a JSON object")));
    }
    Ok(value)
}

/// The token's `iss`, read without verifying anything, to choose the issuer whose
/// policy and keys then verify it. `max_bytes` bounds the work done.
pub fn peek_issuer(token: &str, max_bytes: usize) -> Result<String, Rejection> {
    if token.len() > max_bytes {
        return Err(Rejection::TooLarge(max_bytes));
    }
    let [_, payload, _] = segments(token)?;
    let claims = json_segment(payload, "payload")?;
    claims
        .get("iss")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Rejection::Malformed("no iss claim".into()))
}

/// Verifies `token` for the issuer described by `policy`, with its `keys`.
pub fn verify(token: &str, policy: &IssuerPolicy, keys: &KeySet) -> Result<Verified, Rejection> {
    if token.is_empty() {
        return Err(Rejection::Missing);
    }
    if token.len() > policy.max_token_bytes {
        return Err(Rejection::TooLarge(policy.max_token_bytes));
    }
    let [header, _, _] = segments(token)?;
    let header = json_segment(header, "header")?;

    // The algorithm, checked before any library parsing so that `none` in any
    // spelling and symmetric algorithms are refused by name.
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| Rejection::Malformed("header has no alg".into()))?;
    let alg: Algorithm = serde_json::from_value(Value::String(alg_name.to_owned()))
        .map_err(|_| Rejection::DisallowedAlgorithm(alg_name.to_owned()))?;
    let symmetric = matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
    if symmetric || !policy.algorithms.contains(&alg) {
        return Err(Rejection::DisallowedAlgorithm(alg_name.to_owned()));
    }
    if header.get("crit").is_some() {
        return Err(Rejection::UnsupportedCritical);
    }

    // The key: `kid` is only ever a lookup string.
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(Rejection::Malformed("kid is not a string".into())),
    };
    let key = keys.find(kid).ok_or(Rejection::UnknownKey)?;
    if key.key.family() != alg.family() || key.alg.is_some_and(|pinned| pinned != alg) {
        return Err(Rejection::DisallowedAlgorithm(alg_name.to_owned()));
    }

    let mut validation = Validation::new(alg);
    validation.leeway = policy.leeway.as_secs();
    validation.validate_nbf = true;
    validation.set_issuer(&[&policy.issuer]);
    validation.set_audience(&policy.audiences);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Value>(token, &key.key, &validation).map_err(|e| {
        match e.into_kind() {
            ErrorKind::ExpiredSignature => Rejection::Expired,
            ErrorKind::ImmatureSignature => Rejection::NotYetValid,
            ErrorKind::InvalidIssuer => Rejection::UnknownIssuer(
                peek_issuer(token, policy.max_token_bytes).unwrap_or_default(),
            ),
            ErrorKind::InvalidAudience => Rejection::WrongAudience,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                Rejection::DisallowedAlgorithm(alg_name.to_owned())
            }
            ErrorKind::MissingRequiredClaim(claim) => {
                Rejection::Malformed(format!("no {claim} claim"))
            }
            ErrorKind::InvalidClaimFormat(claim) => {
                Rejection::Malformed(format!("claim {claim} has the wrong type"))
            }
            ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                Rejection::Malformed("cannot decode".into())
            }
            // A signature that does not verify, or that the crypto library refuses
            // outright (e.g. ECDSA r = s = 0).
            _ => Rejection::BadSignature,
        }
    })?;
    let claims = data.claims;

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if let Some(iat) = claims.get("iat").and_then(Value::as_u64)
        && iat > now + policy.leeway.as_secs()
    {
        return Err(Rejection::NotYetValid);
    }
    let sub = claims::string(&claims, Some("sub"))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Rejection::Malformed("empty sub".into()))?;
    let names = &policy.claims;
    Ok(Verified {
        principal: Principal {
            sub: Some(sub),
            org: claims::string(&claims, names.org.as_deref()),
            role: claims::string(&claims, names.role.as_deref()),
            roles: claims::list(&claims, names.roles.as_deref()),
            issuer: Some(policy.issuer.clone()),
        },
        scopes: claims::list(&claims, names.scopes.as_deref()).unwrap_or_default(),
        jti: claims::string(&claims, Some("jti")),
        exp: claims.get("exp").and_then(Value::as_u64).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests;
