//! What an identity refusal says about where custody looked for the user's token
//! and what it found there instead — the header names and the kind of value, never
//! a token or a key.
//!
//! The common mistakes it names: an SDK that puts the user's JWT in `api_key`
//! (`Authorization: Bearer`, or Anthropic's `x-api-key`) while the route reads
//! `x-custody-user-token`; a route with `token_from: authorization` called with the
//! token in `x-custody-user-token`. docs/sdk.md has the recipe for each SDK.

use crate::config::TokenFrom;
use custody_identity::Rejection;
use http::{HeaderMap, HeaderName, header};

/// Where custody looked, and a hint when the token seems to be elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Looked {
    /// "the x-custody-user-token header", "the Authorization header (bearer)".
    place: String,
    /// What custody found instead, and what to change.
    hint: Option<String>,
}

impl std::fmt::Display for Looked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(looked in {})", self.place)?;
        if let Some(hint) = &self.hint {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

/// Whether `value` has the shape of a compact JWS: three base64url segments, the
/// first a JSON object (`eyJ`). Nothing of it is kept.
fn looks_like_jwt(value: &str) -> bool {
    let value = value.trim();
    let value = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .unwrap_or(value)
        .trim();
    let mut parts = value.split('.');
    let segments: Vec<&str> = parts.by_ref().take(4).collect();
    segments.len() == 3
        && segments[0].starts_with("eyJ")
        && segments.iter().all(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// What a header holds, as far as a hint needs: absent, a JWT, or something else.
fn holds(headers: &HeaderMap, name: &HeaderName) -> Option<bool> {
    let value = headers.get(name)?;
    Some(value.to_str().is_ok_and(looks_like_jwt))
}

/// Where a route reads the token, and (for a missing token) what the request
/// carries instead. `token_header` is custody's header (`identity.token_header`),
/// already removed from `headers` (`had_own`: it was there); `via_proxy` says the
/// connection's `Proxy-Authorization` was also a place (forward-proxy mode). Only
/// called for a refusal: a hint is given when no token was found, or (reading
/// `Authorization`) when what was there is not a JWT — a provider key, usually.
pub(crate) fn looked(
    token_from: TokenFrom,
    token_header: &HeaderName,
    headers: &HeaderMap,
    had_own: bool,
    rejection: &Rejection,
    via_proxy: bool,
) -> Looked {
    let missing = matches!(
        (rejection, token_from),
        (Rejection::Missing, _) | (Rejection::Malformed(_), TokenFrom::Authorization)
    );
    let place = match (token_from, via_proxy) {
        (TokenFrom::Header, false) => format!("the {token_header} header"),
        (TokenFrom::Header, true) => {
            format!("the {token_header} header and the connection's Proxy-Authorization")
        }
        (TokenFrom::Authorization, _) => {
            "the Authorization header (this route has token_from: authorization)".to_owned()
        }
    };
    if !missing {
        return Looked { place, hint: None };
    }
    let api_key = HeaderName::from_static("x-api-key");
    let hint = match token_from {
        TokenFrom::Header => match (
            holds(headers, &header::AUTHORIZATION),
            holds(headers, &api_key),
        ) {
            (Some(true), _) => Some(format!(
                "an Authorization bearer token shaped like a JWT is present: send the user's token in {token_header} (the SDK's default_headers), or set the route's token_from: authorization and keep the provider's key in credentials"
            )),
            (_, Some(true)) => Some(format!(
                "an x-api-key header shaped like a JWT is present: send the user's token in {token_header} (the SDK's default_headers)"
            )),
            (Some(false), _) | (_, Some(false)) => Some(format!(
                "the request carries a provider credential (Authorization or x-api-key) that is not a JWT; custody reads the user's token only from {token_header}"
            )),
            (None, None) => None,
        },
        TokenFrom::Authorization => match (
            had_own,
            holds(headers, &api_key),
            holds(headers, &header::AUTHORIZATION),
        ) {
            (true, _, _) => Some(format!(
                "the {token_header} header is set, but this route reads the user's token from Authorization: send it as the SDK's api_key (Anthropic: auth_token), or remove token_from: authorization"
            )),
            (_, Some(true), _) => Some(
                "an x-api-key header shaped like a JWT is present: with the Anthropic SDK pass the user's token as auth_token (sent as Authorization: Bearer), not api_key".to_owned(),
            ),
            (_, _, Some(false)) => Some(
                "the Authorization header holds something that is not a bearer JWT (a provider key?): send the user's token as the SDK's api_key and keep the provider's key in the route's credentials".to_owned(),
            ),
            _ => None,
        },
    };
    Looked { place, hint }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    fn say(from: TokenFrom, pairs: &[(&str, &str)]) -> String {
        let custody = HeaderName::from_static("x-custody-user-token");
        let mut h = headers(pairs);
        let had_own = h.remove(&custody).is_some();
        looked(from, &custody, &h, had_own, &Rejection::Missing, false).to_string()
    }

    #[test]
    fn a_jwt_in_the_wrong_place_is_named_never_echoed() {
        let cases = [
            (
                TokenFrom::Header,
                (
                    "authorization",
                    "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln",
                ),
                "token_from: authorization",
            ),
            (
                TokenFrom::Header,
                ("x-api-key", JWT),
                "x-api-key header shaped like a JWT",
            ),
            (
                TokenFrom::Header,
                ("authorization", "Bearer sk-live-123"),
                "not a JWT",
            ),
            (
                TokenFrom::Authorization,
                ("x-custody-user-token", JWT),
                "remove token_from",
            ),
            (TokenFrom::Authorization, ("x-api-key", JWT), "auth_token"),
            (
                TokenFrom::Authorization,
                ("authorization", "sk-live-123"),
                "not a bearer JWT",
            ),
        ];
        for (from, pair, expect) in cases {
            let text = say(from, &[pair]);
            assert!(text.contains(expect), "{pair:?}: {text}");
            assert!(!text.contains("eyJ") && !text.contains("sk-live"), "{text}");
        }
        assert_eq!(
            say(TokenFrom::Header, &[]),
            "(looked in the x-custody-user-token header)"
        );
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt(JWT));
        assert!(looks_like_jwt(&format!("Bearer {JWT}")));
        assert!(!looks_like_jwt("sk-ant-api03-abc"));
        assert!(!looks_like_jwt("eyJ.a"));
        assert!(!looks_like_jwt("eyJa.b.c.d"));
    }
}
