//! Verification speed: a fresh signature check per algorithm, and a cached lookup.
//!
//! `cargo bench -p custody-identity --features testing --bench verify`; results in docs/performance.md.

#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use custody_identity::testing::{self, TestKey};
use custody_identity::{Algorithm, ClaimNames, IssuerPolicy, KeySet, VerifiedCache, verify};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn setup(alg: Algorithm) -> (String, IssuerPolicy, KeySet) {
    let key = TestKey::generate("k", alg);
    let keys = KeySet::from_jwks(testing::jwks(&[&key]).as_bytes()).expect("keys");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = serde_json::json!({"iss": "https://idp", "aud": "custody", "sub": "auth0|8f3a2b1c9d4e5f6a",
        "exp": now + 3600, "iat": now, "org_id": "org_acme", "role": "analyst", "roles": ["analyst"],
        "scope": "tool:crm:read openid profile"});
    let token = key.sign(&claims);
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
    // The signature check alone, for scale: what a verification costs beyond it is
    // custody's own work (base64, JSON, claims).
    {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
            ParsedPublicKey,
        };
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("pair");
        let message = [7u8; 600];
        let signature = pair.sign(&rng, &message).expect("sign");
        let public = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref())
            .expect("public");
        c.bench_function("signature-only/ES256", |b| {
            b.iter(|| {
                public
                    .verify_sig(black_box(&message), signature.as_ref())
                    .expect("valid")
            })
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
