//! Verifying one token against one issuer's policy and keys.

use crate::claims::{self, ClaimNames};
use crate::keys::KeySet;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custody_core::Principal;
use jsonwebtoken::Algorithm;
use serde_json::Value;
use std::str::FromStr as _;
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
    /// The token's scopes; `None` when it carries no scope claim at all (then a
    /// policy grants by role alone), `Some(empty)` when it carries an empty one.
    pub scopes: Option<Vec<String>>,
    /// The token's claims object, for policies that test any claim. Never logged or
    /// stored (it is the token's content).
    pub claims: std::sync::Arc<Value>,
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
    /// `exp` is past (beyond the leeway). The signature verified, so the token's
    /// `sub` is the issuer's word: it names who was refused.
    #[error("token expired")]
    Expired {
        /// The token's (verified) `sub`.
        sub: Option<String>,
    },
    /// `nbf` or `iat` is in the future (beyond the leeway); the signature verified.
    #[error("token not yet valid")]
    NotYetValid {
        /// The token's (verified) `sub`.
        sub: Option<String>,
    },
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
    /// The issuer's keys are not loaded, or too stale to trust (IdP unreachable).
    #[error("the issuer's signing keys are unavailable")]
    KeysUnavailable,
}

impl Rejection {
    /// The stable reason, as used in `policy.rule = identity:<reason>`.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Missing => "missing",
            Rejection::Malformed(_) => "malformed",
            Rejection::TooLarge(_) => "too_large",
            Rejection::Expired { .. } => "expired",
            Rejection::NotYetValid { .. } => "not_yet_valid",
            Rejection::BadSignature => "bad_signature",
            Rejection::UnknownIssuer(_) => "unknown_issuer",
            Rejection::WrongAudience => "wrong_audience",
            Rejection::UnknownKey => "unknown_key",
            Rejection::DisallowedAlgorithm(_) => "disallowed_algorithm",
            Rejection::UnsupportedCritical => "unsupported_critical",
            Rejection::KeysUnavailable => "keys_unavailable",
        }
    }

    /// The subject of a token refused only for its time (expired, not yet
    /// valid): its signature verified, so the `sub` is authentic. `None` for every
    /// other refusal: a `sub` whose signature did not verify (or was not checked)
    /// is anyone's claim.
    pub fn verified_subject(&self) -> Option<&str> {
        match self {
            Rejection::Expired { sub } | Rejection::NotYetValid { sub } => sub.as_deref(),
            _ => None,
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
///
/// Order: size, header (`alg`, `crit`, `kid` → key), signature, then claims, so
/// nothing in an unauthenticated payload decides anything but the failure reason.
pub fn verify(token: &str, policy: &IssuerPolicy, keys: &KeySet) -> Result<Verified, Rejection> {
    if token.is_empty() {
        return Err(Rejection::Missing);
    }
    if token.len() > policy.max_token_bytes {
        return Err(Rejection::TooLarge(policy.max_token_bytes));
    }
    let [header, payload, signature] = segments(token)?;
    let header = json_segment(header, "header")?;

    // The algorithm, checked by name so that `none` in any spelling and symmetric
    // algorithms are refused before anything else.
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| Rejection::Malformed("header has no alg".into()))?;
    let alg = Algorithm::from_str(alg_name)
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
    if key.alg.is_some_and(|pinned| pinned != alg) {
        return Err(Rejection::DisallowedAlgorithm(alg_name.to_owned()));
    }
    // The token's `alg` must fit the key's type (and curve): no key confusion.
    let public_key = key
        .key
        .for_algorithm(alg)
        .ok_or_else(|| Rejection::DisallowedAlgorithm(alg_name.to_owned()))?;

    // The signature covers `header.payload` exactly as sent.
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| Rejection::Malformed("signature is not base64url".into()))?;
    let signed = &token[..token.len() - segment_len(token)];
    public_key
        .verify_sig(signed.as_bytes(), &signature)
        .map_err(|_| Rejection::BadSignature)?;

    let claims = json_segment(payload, "payload")?;
    let sub = claims::string(&claims, Some("sub")).filter(|s| !s.is_empty());
    check_claims(&claims, policy, sub.as_deref())?;
    let sub = sub.ok_or_else(|| Rejection::Malformed("empty sub".into()))?;
    let names = &policy.claims;
    Ok(Verified {
        principal: Principal {
            sub: Some(sub),
            org: claims::string(&claims, names.org.as_deref()),
            role: claims::string(&claims, names.role.as_deref()),
            roles: claims::list(&claims, names.roles.as_deref()),
            issuer: Some(policy.issuer.clone()),
        },
        scopes: claims::list(&claims, names.scopes.as_deref()),
        jti: claims::string(&claims, Some("jti")),
        exp: numeric_date(&claims, "exp")?.unwrap_or(0),
        claims: std::sync::Arc::new(claims),
    })
}

/// The length of the signature segment plus its dot.
fn segment_len(token: &str) -> usize {
    token.rfind('.').map_or(0, |dot| token.len() - dot)
}

/// A NumericDate claim (seconds since the epoch; fractions dropped), if present.
fn numeric_date(claims: &Value, name: &str) -> Result<Option<u64>, Rejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    // Truncation is the point: NumericDate may carry fractions.
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| Rejection::Malformed(format!("claim {name} has the wrong type"))),
    }
}

/// The registered claims: `exp`, `iss`, `aud` and `sub` present; `exp`, `nbf` and
/// `iat` within the leeway; `iss` exact; `aud` intersecting the policy's.
/// `sub` goes into a refusal for the token's time (the signature has verified).
fn check_claims(claims: &Value, policy: &IssuerPolicy, sub: Option<&str>) -> Result<(), Rejection> {
    for required in ["exp", "iss", "aud", "sub"] {
        if claims.get(required).is_none() {
            return Err(Rejection::Malformed(format!("no {required} claim")));
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let leeway = policy.leeway.as_secs();
    if numeric_date(claims, "exp")?.is_some_and(|exp| exp.saturating_add(leeway) < now) {
        return Err(Rejection::Expired {
            sub: sub.map(str::to_owned),
        });
    }
    for not_before in ["nbf", "iat"] {
        if numeric_date(claims, not_before)?.is_some_and(|t| t > now.saturating_add(leeway)) {
            return Err(Rejection::NotYetValid {
                sub: sub.map(str::to_owned),
            });
        }
    }
    match claims.get("iss") {
        Some(Value::String(iss)) if *iss == policy.issuer => {}
        Some(Value::String(iss)) => return Err(Rejection::UnknownIssuer(iss.clone())),
        _ => return Err(Rejection::Malformed("claim iss has the wrong type".into())),
    }
    let accepted = |aud: &Value| {
        aud.as_str()
            .is_some_and(|a| policy.audiences.iter().any(|p| p == a))
    };
    let audience_ok = match claims.get("aud") {
        Some(aud @ Value::String(_)) => accepted(aud),
        Some(Value::Array(auds)) if auds.iter().all(Value::is_string) => auds.iter().any(accepted),
        _ => return Err(Rejection::Malformed("claim aud has the wrong type".into())),
    };
    if !audience_ok {
        return Err(Rejection::WrongAudience);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
