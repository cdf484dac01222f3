//! The negative corpus and the happy paths, with real keys.

use super::*;
use crate::testing::{self, TestKey, forge};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

const ISS: &str = "https://idp.test/";

fn signer(kid: &str, alg: Algorithm) -> TestKey {
    TestKey::generate(kid, alg)
}

fn keyset(keys: &[&TestKey]) -> KeySet {
    KeySet::from_jwks(testing::jwks(keys).as_bytes()).expect("keyset")
}

fn policy() -> IssuerPolicy {
    IssuerPolicy {
        issuer: ISS.into(),
        audiences: vec!["custody".into()],
        algorithms: vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA],
        leeway: Duration::from_secs(60),
        claims: ClaimNames::default(),
        max_token_bytes: 8192,
    }
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("time")
}

fn claims() -> Value {
    json!({
        "iss": ISS, "aud": ["other", "custody"], "sub": "auth0|8f3a2b1c9d4e5f6a",
        "exp": now() + 300, "iat": now(), "org_id": "org_acme_corp", "role": "analyst",
        "roles": ["analyst", "viewer"], "scope": "tool:crm:read openid", "jti": "jti-1"
    })
}

fn sign(s: &TestKey, claims: &Value) -> String {
    s.sign(claims)
}

#[test]
fn accepts_rs256_es256_and_eddsa_and_maps_claims() {
    let signers = [
        signer("rsa", Algorithm::RS256),
        signer("ec", Algorithm::ES256),
        signer("ed", Algorithm::EdDSA),
    ];
    let keys = keyset(&signers.iter().collect::<Vec<_>>());
    for s in &signers {
        let v = verify(&sign(s, &claims()), &policy(), &keys).expect("valid");
        assert_eq!(v.principal.sub.as_deref(), Some("auth0|8f3a2b1c9d4e5f6a"));
        assert_eq!(v.principal.org.as_deref(), Some("org_acme_corp"));
        assert_eq!(v.principal.role.as_deref(), Some("analyst"));
        assert_eq!(
            v.principal.roles,
            Some(vec!["analyst".into(), "viewer".into()])
        );
        assert_eq!(v.principal.issuer.as_deref(), Some(ISS));
        assert_eq!(
            v.scopes.as_deref(),
            Some(&["tool:crm:read".to_owned(), "openid".to_owned()][..])
        );
        assert_eq!(v.claims["org_id"], "org_acme_corp");
        assert_eq!(v.jti.as_deref(), Some("jti-1"));
    }
}

#[test]
fn alg_none_in_any_spelling_is_refused() {
    let s = signer("ec", Algorithm::ES256);
    let keys = keyset(&[&s]);
    for none in ["none", "None", "NONE", "nOnE"] {
        let token = forge(
            &json!({"alg": none, "typ": "JWT", "kid": "ec"}),
            &claims(),
            b"",
        );
        let err = verify(&token, &policy(), &keys).expect_err(none);
        assert_eq!(err.reason(), "disallowed_algorithm", "{none}: {err}");
    }
}

#[test]
fn hmac_signed_with_the_public_key_is_refused() {
    let s = signer("rsa", Algorithm::RS256);
    let keys = keyset(&[&s]);
    let public = serde_json::to_vec(s.jwk()).expect("jwk bytes");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa".into());
    let token =
        jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(&public)).expect("sign");
    let mut allow_hs = policy();
    allow_hs.algorithms.push(Algorithm::HS256);
    for p in [policy(), allow_hs] {
        assert_eq!(
            verify(&token, &p, &keys).expect_err("hs256").reason(),
            "disallowed_algorithm"
        );
    }
}

#[test]
fn algorithm_must_fit_the_key() {
    let rsa = signer("shared", Algorithm::RS256);
    let ec = signer("shared", Algorithm::ES256);
    // The set holds the RSA key under "shared"; an ES256 token naming it is refused.
    let keys = keyset(&[&rsa]);
    let err = verify(&sign(&ec, &claims()), &policy(), &keys).expect_err("family");
    assert_eq!(err.reason(), "disallowed_algorithm");
    // An algorithm the issuer does not allow is refused even with a good key.
    let mut es_only = policy();
    es_only.algorithms = vec![Algorithm::ES256];
    let err = verify(&sign(&rsa, &claims()), &es_only, &keys).expect_err("not allowed");
    assert_eq!(err.reason(), "disallowed_algorithm");
}

#[test]
fn stripped_and_zero_signatures_are_bad() {
    let s = signer("ec", Algorithm::ES256);
    let keys = keyset(&[&s]);
    let token = sign(&s, &claims());
    let stripped = format!("{}.", &token[..token.rfind('.').expect("dot")]);
    assert_eq!(
        verify(&stripped, &policy(), &keys)
            .expect_err("stripped")
            .reason(),
        "bad_signature"
    );
    let zero = forge(&json!({"alg": "ES256", "kid": "ec"}), &claims(), &[0u8; 64]);
    assert_eq!(
        verify(&zero, &policy(), &keys).expect_err("r=s=0").reason(),
        "bad_signature"
    );
    let other = signer("ec", Algorithm::ES256);
    assert_eq!(
        verify(&sign(&other, &claims()), &policy(), &keys)
            .expect_err("other key")
            .reason(),
        "bad_signature"
    );
}

#[test]
fn time_claims_are_checked_with_the_leeway() {
    let s = signer("ed", Algorithm::EdDSA);
    let keys = keyset(&[&s]);
    let with = |k: &str, v: i64| {
        let mut c = claims();
        c[k] = json!(v);
        sign(&s, &c)
    };
    assert!(
        verify(&with("exp", now() - 30), &policy(), &keys).is_ok(),
        "within the leeway"
    );
    assert_eq!(
        verify(&with("exp", now() - 120), &policy(), &keys)
            .expect_err("exp")
            .reason(),
        "expired"
    );
    assert_eq!(
        verify(&with("nbf", now() + 600), &policy(), &keys)
            .expect_err("nbf")
            .reason(),
        "not_yet_valid"
    );
    assert_eq!(
        verify(&with("iat", now() + 600), &policy(), &keys)
            .expect_err("iat")
            .reason(),
        "not_yet_valid"
    );
}

#[test]
fn issuer_audience_and_required_claims() {
    let s = signer("rsa", Algorithm::RS256);
    let keys = keyset(&[&s]);
    let mut c = claims();
    c["iss"] = json!("https://idp.test");
    assert_eq!(
        verify(&sign(&s, &c), &policy(), &keys)
            .expect_err("iss")
            .reason(),
        "unknown_issuer"
    );
    let mut c = claims();
    c["aud"] = json!("someone-else");
    assert_eq!(
        verify(&sign(&s, &c), &policy(), &keys)
            .expect_err("aud")
            .reason(),
        "wrong_audience"
    );
    for claim in ["exp", "sub", "aud", "iss"] {
        let mut c = claims();
        c.as_object_mut().expect("object").remove(claim);
        let err = verify(&sign(&s, &c), &policy(), &keys).expect_err(claim);
        assert!(
            matches!(err.reason(), "malformed" | "unknown_issuer"),
            "{claim}: {err}"
        );
    }
}

#[test]
fn kid_is_only_a_lookup_string_and_embedded_keys_are_ignored() {
    let s = signer("ec", Algorithm::ES256);
    let keys = keyset(&[&s, &signer("ec2", Algorithm::ES256)]);
    let attacker = signer("attacker", Algorithm::ES256);
    assert_eq!(
        verify(&sign(&attacker, &claims()), &policy(), &keys)
            .expect_err("kid")
            .reason(),
        "unknown_key"
    );
    let traversal = signer("../../../etc/passwd", Algorithm::ES256);
    assert_eq!(
        verify(&sign(&traversal, &claims()), &policy(), &keys)
            .expect_err("path")
            .reason(),
        "unknown_key"
    );
    // The attacker embeds its own key and points at URLs, naming a trusted kid.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ec".into());
    header.jwk = Some(attacker.jwk().clone());
    header.jku = Some("http://127.0.0.1:9/jwks".into());
    header.x5u = Some("http://127.0.0.1:9/cert".into());
    let token = attacker.sign_with(&header, &claims());
    assert_eq!(
        verify(&token, &policy(), &keys)
            .expect_err("embedded")
            .reason(),
        "bad_signature"
    );
}

#[test]
fn crit_headers_and_oversized_or_garbled_tokens_are_refused() {
    let s = signer("ec", Algorithm::ES256);
    let keys = keyset(&[&s]);
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ec".into());
    header.crit = Some(vec!["exp".into()]);
    let token = s.sign_with(&header, &claims());
    assert_eq!(
        verify(&token, &policy(), &keys).expect_err("crit").reason(),
        "unsupported_critical"
    );
    let mut c = claims();
    c["padding"] = json!("x".repeat(64 * 1024));
    assert_eq!(
        verify(&sign(&s, &c), &policy(), &keys)
            .expect_err("big")
            .reason(),
        "too_large"
    );
    for garbage in ["a.b", "a.b.c.d", "!!!.???.***", ".."] {
        assert_eq!(
            verify(garbage, &policy(), &keys)
                .expect_err(garbage)
                .reason(),
            "malformed"
        );
    }
    assert_eq!(
        verify("", &policy(), &keys).expect_err("empty").reason(),
        "missing"
    );
}

#[test]
fn peek_issuer_reads_iss_without_verifying() {
    let s = signer("ed", Algorithm::EdDSA);
    assert_eq!(peek_issuer(&sign(&s, &claims()), 8192).as_deref(), Ok(ISS));
    assert!(peek_issuer("x.y.z", 8192).is_err());
}

#[test]
fn jwks_keys_without_alg_are_usable() {
    // Many IdPs publish JWKs without the optional `alg` member.
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        let s = signer("k", alg);
        let mut jwk = serde_json::to_value(s.jwk()).expect("jwk");
        jwk.as_object_mut().expect("object").remove("alg");
        let doc = json!({"keys": [jwk]});
        let keys = KeySet::from_jwks(doc.to_string().as_bytes()).expect("keyset");
        assert!(
            verify(&sign(&s, &claims()), &policy(), &keys).is_ok(),
            "{alg:?}"
        );
    }
}

#[test]
fn jwks_skips_encryption_and_symmetric_keys() {
    let s = signer("ec", Algorithm::ES256);
    let mut enc = s.jwk().clone();
    enc.common.key_id = Some("enc".into());
    enc.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Encryption);
    let doc = json!({"keys": [
        serde_json::to_value(s.jwk()).expect("jwk"),
        serde_json::to_value(&enc).expect("jwk"),
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
    ]});
    let set = KeySet::from_jwks(doc.to_string().as_bytes()).expect("keyset");
    assert_eq!(set.len(), 1);
    assert!(set.contains("ec") && !set.contains("enc") && !set.contains("hmac"));
    assert!(KeySet::from_jwks(br#"{"keys":[]}"#).is_err());
    assert!(KeySet::from_jwks(b"not json").is_err());
}

#[test]
fn every_supported_algorithm_verifies() {
    use Algorithm::*;
    let all = [
        RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA,
    ];
    let mut p = policy();
    p.algorithms = all.to_vec();
    for alg in all {
        let s = signer("k", alg);
        let keys = keyset(&[&s]);
        let v = verify(&sign(&s, &claims()), &p, &keys);
        assert!(v.is_ok(), "{alg:?}: {v:?}");
    }
}

#[test]
fn the_curve_and_key_type_must_fit_the_algorithm() {
    let mut p = policy();
    p.algorithms = vec![Algorithm::ES256, Algorithm::ES384, Algorithm::PS256];
    // A P-384 key named by an ES256 token (and the reverse) is refused by name.
    let p384 = signer("ec", Algorithm::ES384);
    let p256 = signer("ec", Algorithm::ES256);
    let forged = testing::with_header(
        &sign(&p384, &claims()),
        &json!({"alg": "ES256", "kid": "ec"}),
    );
    let err = verify(&forged, &p, &keyset(&[&p384])).expect_err("curve");
    assert_eq!(err.reason(), "disallowed_algorithm");
    let forged = testing::with_header(
        &sign(&p256, &claims()),
        &json!({"alg": "ES384", "kid": "ec"}),
    );
    let err = verify(&forged, &p, &keyset(&[&p256])).expect_err("curve");
    assert_eq!(err.reason(), "disallowed_algorithm");
    // A PS256 token naming an Ed25519 key.
    let ed = signer("ed", Algorithm::EdDSA);
    let forged = testing::with_header(&sign(&ed, &claims()), &json!({"alg": "PS256", "kid": "ed"}));
    let err = verify(&forged, &p, &keyset(&[&ed])).expect_err("type");
    assert_eq!(err.reason(), "disallowed_algorithm");
}

#[test]
fn rsa_keys_under_2048_bits_are_skipped() {
    let s = signer("big", Algorithm::RS256);
    let mut small = serde_json::to_value(s.jwk()).expect("jwk");
    small["kid"] = json!("small");
    // A 1024-bit modulus (128 bytes).
    small["n"] = json!(URL_SAFE_NO_PAD.encode([0xc5u8; 128]));
    let doc = json!({"keys": [serde_json::to_value(s.jwk()).expect("jwk"), small]});
    let set = KeySet::from_jwks(doc.to_string().as_bytes()).expect("keyset");
    assert!(set.contains("big") && !set.contains("small"));
}

#[test]
fn claim_types_are_checked() {
    let s = signer("ed", Algorithm::EdDSA);
    let keys = keyset(&[&s]);
    let mut c = claims();
    c["exp"] = json!(now() as f64 + 300.5);
    assert!(
        verify(&sign(&s, &c), &policy(), &keys).is_ok(),
        "fractional exp"
    );
    for (claim, value) in [
        ("exp", json!("tomorrow")),
        ("aud", json!(42)),
        ("aud", json!(["custody", 7])),
        ("iss", json!(["https://idp.test/"])),
        ("nbf", json!(-5)),
    ] {
        let mut c = claims();
        c[claim] = value;
        let err = verify(&sign(&s, &c), &policy(), &keys).expect_err(claim);
        assert_eq!(err.reason(), "malformed", "{claim}: {err}");
    }
}
