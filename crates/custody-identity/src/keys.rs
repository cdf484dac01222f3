//! A JWKS document → the verification keys it holds, by `kid`.
//!
//! Each key is parsed once, when the JWKS is loaded, into aws-lc-rs public keys ready
//! to verify: a token's signature check then does no key parsing at all.

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};

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

/// The RSA algorithms, in the order of [`PublicKey::Rsa`]'s array.
const RSA_ALGORITHMS: [(Algorithm, &RsaParameters); 6] = [
    (Algorithm::RS256, &signature::RSA_PKCS1_2048_8192_SHA256),
    (Algorithm::RS384, &signature::RSA_PKCS1_2048_8192_SHA384),
    (Algorithm::RS512, &signature::RSA_PKCS1_2048_8192_SHA512),
    (Algorithm::PS256, &signature::RSA_PSS_2048_8192_SHA256),
    (Algorithm::PS384, &signature::RSA_PSS_2048_8192_SHA384),
    (Algorithm::PS512, &signature::RSA_PSS_2048_8192_SHA512),
];

/// A public key, parsed for each algorithm it can verify.
pub(crate) enum PublicKey {
    /// One parsed key per entry of [`RSA_ALGORITHMS`] (an RSA key serves RS* and PS*).
    Rsa(Box<[ParsedPublicKey; 6]>),
    /// An ECDSA key and the one algorithm its curve fits (ES256 on P-256, ES384 on P-384).
    Ec(Algorithm, ParsedPublicKey),
    /// An Ed25519 key (EdDSA).
    Ed25519(ParsedPublicKey),
}

impl PublicKey {
    /// The parsed key that verifies `alg`, if this key can.
    pub(crate) fn for_algorithm(&self, alg: Algorithm) -> Option<&ParsedPublicKey> {
        match self {
            PublicKey::Rsa(keys) => RSA_ALGORITHMS
                .iter()
                .position(|(a, _)| *a == alg)
                .map(|i| &keys[i]),
            PublicKey::Ec(a, key) => (*a == alg).then_some(key),
            PublicKey::Ed25519(key) => (alg == Algorithm::EdDSA).then_some(key),
        }
    }

    fn from_jwk(jwk: &Jwk) -> Option<Self> {
        match &jwk.algorithm {
            AlgorithmParameters::RSA(rsa) => {
                let n = decode(&rsa.n)?;
                let e = decode(&rsa.e)?;
                let components = RsaPublicKeyComponents {
                    n: strip_zeros(&n),
                    e: strip_zeros(&e),
                };
                // Keys below 2048 bits are refused here, not at every verification.
                if components.n.len() < 256 {
                    return None;
                }
                let parsed: Vec<ParsedPublicKey> = RSA_ALGORITHMS
                    .iter()
                    .map(|(_, params)| components.to_parsed_public_key(params).ok())
                    .collect::<Option<_>>()?;
                Some(PublicKey::Rsa(Box::new(parsed.try_into().ok()?)))
            }
            AlgorithmParameters::EllipticCurve(ec) => {
                let (alg, verification, len): (
                    _,
                    &'static signature::EcdsaVerificationAlgorithm,
                    _,
                ) = match ec.curve {
                    EllipticCurve::P256 => {
                        (Algorithm::ES256, &signature::ECDSA_P256_SHA256_FIXED, 32)
                    }
                    EllipticCurve::P384 => {
                        (Algorithm::ES384, &signature::ECDSA_P384_SHA384_FIXED, 48)
                    }
                    _ => return None,
                };
                let (x, y) = (decode(&ec.x)?, decode(&ec.y)?);
                if x.len() != len || y.len() != len {
                    return None;
                }
                // The uncompressed SEC1 point: 0x04 || x || y.
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let key = ParsedPublicKey::new(verification, point).ok()?;
                Some(PublicKey::Ec(alg, key))
            }
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                let x = decode(&okp.x)?;
                let key = ParsedPublicKey::new(&signature::ED25519, x).ok()?;
                Some(PublicKey::Ed25519(key))
            }
            _ => None,
        }
    }
}

fn decode(b64: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(b64).ok()
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// One verification key.
pub(crate) struct Key {
    pub(crate) kid: Option<String>,
    pub(crate) key: PublicKey,
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
    /// symmetric keys (`kty: oct`), RSA keys under 2048 bits, and keys of
    /// unsupported types or curves are skipped.
    pub fn from_jwks(bytes: &[u8]) -> Result<Self, JwksError> {
        let set: JwkSet = serde_json::from_slice(bytes)?;
        let mut keys = Vec::new();
        let mut skipped = 0;
        for jwk in &set.keys {
            // `alg` is optional in a JWK (many IdPs omit it): a key without one is
            // usable, and the token's `alg` is then checked against the key's type.
            let alg = jwk.common.key_algorithm.map(algorithm_of);
            let usable = !matches!(alg, Some(None))
                && !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption));
            let parsed = usable.then(|| PublicKey::from_jwk(jwk)).flatten();
            let Some(key) = parsed else {
                skipped += 1;
                continue;
            };
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                key,
                alg: alg.flatten(),
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
