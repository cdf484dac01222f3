//! A JWKS document → the verification keys it holds, by `kid`.

use jsonwebtoken::jwk::{JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Why a JWKS document is unusable.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// Not a JWKS JSON document.
    #[error("not a JWKS document: {0}")]
    Parse(#[from] serde_json::Error),
    /// It parsed, but no key in it can verify signatures.
    #[error("the JWKS holds no usable signature key ({0} keys skipped)")]
    NoUsableKeys(usize),
}

/// One verification key.
pub(crate) struct Key {
    pub(crate) kid: Option<String>,
    pub(crate) key: DecodingKey,
    /// The key's own `alg`, when the JWKS pins one.
    pub(crate) alg: Option<Algorithm>,
}

/// The signature keys of one issuer.
pub struct KeySet {
    keys: Vec<Key>,
    skipped: usize,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field(
                "kids",
                &self
                    .keys
                    .iter()
                    .map(|k| k.kid.as_deref())
                    .collect::<Vec<_>>(),
            )
            .field("skipped", &self.skipped)
            .finish()
    }
}

impl KeySet {
    /// Parses a JWKS (`{"keys":[...]}`). Keys meant for encryption (`use: enc`),
    /// symmetric keys (`kty: oct`) and keys of unsupported types are skipped.
    pub fn from_jwks(bytes: &[u8]) -> Result<Self, JwksError> {
        let set: JwkSet = serde_json::from_slice(bytes)?;
        let mut keys = Vec::new();
        let mut skipped = 0;
        for jwk in &set.keys {
            // `alg` is optional in a JWK (many IdPs omit it): a key without one is
            // usable, and the token's `alg` is then checked against the key's family.
            let alg_ok = jwk
                .common
                .key_algorithm
                .is_none_or(|a| algorithm_of(a).is_some());
            let usable = alg_ok
                && !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption))
                && matches!(
                    jwk.algorithm,
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_)
                        | jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_)
                        | jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_)
                );
            let decoding = usable.then(|| DecodingKey::from_jwk(jwk).ok()).flatten();
            let Some(key) = decoding else {
                skipped += 1;
                continue;
            };
            let alg = jwk.common.key_algorithm.and_then(algorithm_of);
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                key,
                alg,
            });
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKeys(skipped));
        }
        Ok(Self { keys, skipped })
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no keys (never true for a parsed set).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key with this `kid` is present.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The key for `kid`; a token without `kid` may use the only key of the set.
    pub(crate) fn find(&self, kid: Option<&str>) -> Option<&Key> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }
}

fn algorithm_of(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}
