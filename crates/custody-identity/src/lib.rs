//! Identity: verify an end user's OAuth JWT against their IdP's public keys and map
//! its claims to a [`custody_core::Principal`].
//!
//! Invariants:
//! - Only asymmetric algorithms are accepted (RS/PS/ES/EdDSA), and only those the
//!   issuer allows; `none` in any spelling and HMAC are rejected, and the token's
//!   `alg` must belong to the family of the key its `kid` selects (no key confusion).
//! - Nothing a token names is fetched or opened: `jku`, `x5u`, `jwk` and `x5c` are
//!   ignored, `kid` is only a lookup string. Tokens with `crit` are rejected (custody
//!   understands no extensions).
//! - `exp`, `iss`, `aud` and `sub` are required; `exp`, `nbf` and `iat` are checked
//!   with the issuer's leeway; `iss` must match exactly; `aud` must intersect the
//!   configured audiences; tokens larger than a limit are refused unparsed.
//! - Every rejection has a stable machine-readable [`Rejection::reason`], used for
//!   `policy.rule = identity:<reason>` in the audit row. Tokens are never logged.
//!
//! This crate does no I/O: key sets are parsed from bytes ([`KeySet::from_jwks`]);
//! fetching, caching and refreshing them belongs to the caller.

#![deny(missing_docs)]

mod cache;
mod claims;
pub mod config;
mod keys;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod verify;

pub use cache::VerifiedCache;
pub use claims::ClaimNames;
pub use jsonwebtoken::Algorithm;
pub use keys::{JwksError, KeySet};
pub use verify::{IssuerPolicy, Rejection, Verified, peek_issuer, verify};
