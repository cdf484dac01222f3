//! Verification speed: a fresh signature check per algorithm, and a cached lookup.
//!
//! `cargo bench -p custody-identity --bench verify`; results in docs/performance.md.

#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use custody_identity::{Algorithm, ClaimNames, IssuerPolicy, KeySet, VerifiedCache, verify};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{EncodingKey, Header};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn setup(alg: Algorithm) -> (String, IssuerPolicy, KeySet) {
    let pair = match alg {
        Algorithm::RS256 => {
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        }
        Algorithm::ES256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        _ => rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519),
    }
    .expect("key");
    let pem = pair.serialize_pem();
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_ed_pem(pem.as_bytes()),
    }
    .expect("encoding key");
    let jwk: Jwk = if alg == Algorithm::EdDSA {
        use base64::Engine as _;
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key_raw());
        serde_json::from_value(
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k"}),
        )
        .expect("jwk")
    } else {
        let mut j = Jwk::from_encoding_key(&key, alg).expect("jwk");
        j.common.key_id = Some("k".into());
        j
    };
    let keys = KeySet::from_jwks(&serde_json::to_vec(&JwkSet { keys: vec![jwk] }).expect("json"))
        .expect("keys");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = serde_json::json!({"iss": "https://idp", "aud": "custody", "sub": "auth0|8f3a2b1c9d4e5f6a",
        "exp": now + 3600, "iat": now, "org_id": "org_acme", "role": "analyst", "roles": ["analyst"],
        "scope": "tool:crm:read openid profile"});
    let mut header = Header::new(alg);
    header.kid = Some("k".into());
    let token = jsonwebtoken::encode(&header, &claims, &key).expect("sign");
    let policy = IssuerPolicy {
        issuer: "https://idp".into(),
        audiences: vec!["custody".into()],
        algorithms: vec![alg],
        leeway: Duration::from_secs(60),
        claims: ClaimNames::default(),
        max_token_bytes: 8192,
    };
    (token, policy, keys)
}

fn bench(c: &mut Criterion) {
    for (name, alg) in [
        ("RS256", Algorithm::RS256),
        ("ES256", Algorithm::ES256),
        ("EdDSA", Algorithm::EdDSA),
    ] {
        let (token, policy, keys) = setup(alg);
        c.bench_function(&format!("verify/{name}"), |b| {
            b.iter(|| verify(black_box(&token), &policy, &keys).expect("valid"))
        });
    }
    let (token, policy, keys) = setup(Algorithm::ES256);
    let cache = VerifiedCache::new(10_000);
    let verified = Arc::new(verify(&token, &policy, &keys).expect("valid"));
    cache.insert(&token, verified, 0);
    c.bench_function("cache/hit", |b| {
        b.iter(|| cache.get(black_box(&token), 1).expect("hit"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
