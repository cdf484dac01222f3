//! Test keys, for this crate's tests, its benchmarks and the end-to-end tests
//! (feature `testing`; custody itself never signs anything): real key pairs,
//! their JWKs, and tokens signed with them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A signing key of a test IdP, with its public JWK.
pub struct TestKey {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
    jwk: Jwk,
}

impl TestKey {
    /// A fresh key pair for `alg` (RSA 2048 for RS*/PS*, P-256, P-384, Ed25519),
    /// published under `kid` with `alg` pinned in its JWK.
    ///
    /// # Panics
    /// For HMAC algorithms (test keys are asymmetric).
    pub fn generate(kid: &str, alg: Algorithm) -> Self {
        use Algorithm::*;
        let pair = match alg {
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => {
                rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            }
            ES256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            ES384 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            EdDSA => rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519),
            _ => panic!("test keys are asymmetric, not {alg:?}"),
        }
        .expect("generate key");
        let pem = pair.serialize_pem();
        let key = match alg {
            ES256 | ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
            EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .expect("encoding key");
        let mut jwk = if alg == EdDSA {
            // jsonwebtoken cannot derive an Ed25519 JWK from a private key: build it.
            let x = URL_SAFE_NO_PAD.encode(pair.public_key_raw());
            serde_json::from_value(json!({"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA"}))
                .expect("jwk")
        } else {
            Jwk::from_encoding_key(&key, alg).expect("jwk")
        };
        jwk.common.key_id = Some(kid.to_owned());
        Self {
            kid: kid.to_owned(),
            alg,
            key,
            jwk,
        }
    }

    /// The key's `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The private key.
    pub fn encoding_key(&self) -> &EncodingKey {
        &self.key
    }

    /// `claims` signed with this key, the header naming its `alg` and `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        self.sign_with(&header, claims)
    }

    /// `claims` signed with this key under a header of the caller's making.
    pub fn sign_with(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &self.key).expect("sign")
    }
}

/// The public keys as a JWKS document.
pub fn jwks(keys: &[&TestKey]) -> String {
    let set = JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone()).collect(),
    };
    serde_json::to_string(&set).expect("jwks")
}

/// A token whose header is replaced by `header` (payload and signature kept).
pub fn with_header(token: &str, header: &Value) -> String {
    let rest = token.split_once('.').map_or("", |(_, r)| r);
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
}

/// A token of a hand-written header, claims and signature.
pub fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        b64(header),
        b64(claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}
