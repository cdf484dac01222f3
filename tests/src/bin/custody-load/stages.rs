//! Which stages custody runs under load: identity alone (`--users N`), or every
//! stage (`--stages all`), with the config and the callers' tokens each needs.

use custody_identity::Algorithm;
use custody_tests::idp::Idp;
use custody_tests::stub::Stub;
use http::HeaderValue;
use std::path::Path;

/// The policy of `--stages all`: one explicit rule (that never matches the load's
/// callers, so every request is also checked against the grants) and a model
/// grant for the load's model.
const POLICY: &str = r#"format: 1
roles:
  analyst:
    grants: [model:standard]
models:
  "gpt-4o-mini*": [model:standard]
rules:
  - name: contractors-no-premium
    effect: deny
    when:
      principal: {role: contractor}
      action: {model: "gpt-4o*"}
"#;

/// The config a choice of stages adds, and the tokens of the callers.
#[derive(Default)]
pub(crate) struct Stages {
    pub(crate) config: String,
    pub(crate) tokens: Vec<HeaderValue>,
}

/// Every stage on: RS256 identity with the keys from a JWKS file, the policy
/// above, content safety with e-mail addresses redacted and card numbers
/// blocked (every other detector logging), OpenAI inspection (the route's kind),
/// and the default audit path (the spool, `durability: process`, Parquet).
pub(crate) fn all(stub: &Stub, dir: &Path, users: usize) -> anyhow::Result<Stages> {
    let issuer = stub.url();
    let idp = Idp::with_algorithm(&issuer, Algorithm::RS256);
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, idp.jwks())?;
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, POLICY)?;
    let config = format!(
        "identity:\n  issuers:\n    - {{issuer: '{issuer}', audiences: [custody], algorithms: [RS256], jwks_file: '{}'}}\n\
         policy: {{file: '{}'}}\n\
         safety: {{detectors: {{EMAIL: redact, CARD: block}}}}\n",
        jwks.display(),
        policy.display()
    );
    Ok(Stages {
        config,
        tokens: tokens(&idp, users, "model:standard openid")?,
    })
}

/// Identity alone: ES256 tokens of `users` callers, keys from the stub's JWKS
/// endpoint.
pub(crate) fn users(stub: &Stub, users: usize) -> anyhow::Result<Stages> {
    let idp = Idp::new(&stub.url());
    stub.set_jwks(idp.jwks());
    Ok(Stages {
        config: format!(
            "identity:\n  issuers:\n    - {{issuer: '{}', audiences: [custody], algorithms: [ES256]}}\n",
            stub.url()
        ),
        tokens: tokens(&idp, users, "tool:crm:read openid")?,
    })
}

/// One day-long token per caller (`load|user-N`, role `analyst`, `scope`).
fn tokens(idp: &Idp, users: usize, scope: &str) -> anyhow::Result<Vec<HeaderValue>> {
    (0..users)
        .map(|user| {
            let mut claims = idp.claims(&format!("load|user-{user}"));
            claims["exp"] = serde_json::json!(claims["iat"].as_u64().unwrap_or(0) + 24 * 3600);
            claims["scope"] = serde_json::json!(scope);
            Ok(HeaderValue::from_str(&idp.sign("k1", &claims))?)
        })
        .collect()
}
