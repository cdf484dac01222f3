//! Test identity: real key pairs, their JWKS, and tokens signed with them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

/// Signing keys of a test IdP (ES256), by `kid`.
pub struct Idp {
    issuer: String,
    keys: Vec<(String, EncodingKey, Jwk)>,
}

impl Idp {
    /// An IdP for `issuer` with one key, `k1`.
    pub fn new(issuer: &str) -> Self {
        let mut idp = Self {
            issuer: issuer.to_owned(),
            keys: Vec::new(),
        };
        idp.add_key("k1");
        idp
    }

    /// Adds a key (key rotation).
    pub fn add_key(&mut self, kid: &str) {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("encoding key");
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).expect("jwk");
        jwk.common.key_id = Some(kid.to_owned());
        self.keys.push((kid.to_owned(), key, jwk));
    }

    /// The public keys as a JWKS document.
    pub fn jwks(&self) -> String {
        let set = JwkSet {
            keys: self.keys.iter().map(|(_, _, j)| j.clone()).collect(),
        };
        serde_json::to_string(&set).expect("jwks")
    }

    /// Standard claims for `sub`, valid for five minutes, audience `custody`.
    pub fn claims(&self, sub: &str) -> Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        json!({"iss": self.issuer, "aud": "custody", "sub": sub, "iat": now, "exp": now + 300,
               "org_id": "org_acme_corp", "role": "analyst", "roles": ["analyst"],
               "scope": "tool:crm:read openid"})
    }

    /// `claims` signed with key `kid`.
    pub fn sign(&self, kid: &str, claims: &Value) -> String {
        let (_, key, _) = self.keys.iter().find(|(k, _, _)| k == kid).expect("kid");
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, key).expect("sign")
    }

    /// A token for `sub` signed with the first key.
    pub fn token(&self, sub: &str) -> String {
        self.sign(&self.keys[0].0, &self.claims(sub))
    }
}

/// A token whose header is replaced by `header` (signature kept), for negative cases.
pub fn with_header(token: &str, header: &Value) -> String {
    let rest = token.split_once('.').map(|(_, r)| r).unwrap_or("");
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
}
