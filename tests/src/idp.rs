//! A test IdP: ES256 (or another algorithm's) keys by `kid` (from `custody_identity::testing`), its JWKS,
//! and tokens signed with them.

use custody_identity::Algorithm;
use custody_identity::testing::{self, TestKey};
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

pub use custody_identity::testing::with_header;

/// Signing keys of a test IdP (ES256), by `kid`.
pub struct Idp {
    issuer: String,
    algorithm: Algorithm,
    keys: Vec<TestKey>,
}

impl Idp {
    /// An IdP for `issuer` with one ES256 key, `k1`.
    pub fn new(issuer: &str) -> Self {
        Self::with_algorithm(issuer, Algorithm::ES256)
    }

    /// An IdP for `issuer` whose keys are for `algorithm`, with one key, `k1`.
    pub fn with_algorithm(issuer: &str, algorithm: Algorithm) -> Self {
        let mut idp = Self {
            issuer: issuer.to_owned(),
            algorithm,
            keys: Vec::new(),
        };
        idp.add_key("k1");
        idp
    }

    /// Adds a key (key rotation).
    pub fn add_key(&mut self, kid: &str) {
        self.keys.push(TestKey::generate(kid, self.algorithm));
    }

    /// The public keys as a JWKS document.
    pub fn jwks(&self) -> String {
        testing::jwks(&self.keys.iter().collect::<Vec<_>>())
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
        self.keys
            .iter()
            .find(|k| k.kid() == kid)
            .expect("kid")
            .sign(claims)
    }

    /// A token for `sub` signed with the first key.
    pub fn token(&self, sub: &str) -> String {
        self.keys[0].sign(&self.claims(sub))
    }
}
