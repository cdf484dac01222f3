use super::*;
use crate::test_support::{Ask, crm, llm, load, tool, user};
use custody_core::Principal;

fn text(e: &Explanation) -> String {
    let version = e.decision.version.to_string();
    e.to_string().replace(&version, "sha256:<version>")
}

#[test]
fn explains_a_missing_scope_step_by_step() {
    let policy = crm();
    let mut p = user("alice", "acme", "analyst");
    p.roles = Some(vec!["analyst".into(), "ghost".into()]);
    let a = tool("crm:contacts:update");
    let scopes = vec!["tool:crm:read".to_owned(), "tool:crm:write".to_owned()];
    let input = Ask::new(&p, &a)
        .args(r#"{"org_id":"acme"}"#)
        .scopes(&scopes)
        .input();
    let want = r#"decision: deny
rule:     missing-scope:tool:crm:write
scopes:   tool:crm:write
version:  sha256:<version>

principal: sub="alice" org="acme" role="analyst" roles=["analyst", "ghost"] issuer="https://idp.example"
  role "analyst" grants: tool:crm:read (inherited from viewer), model:standard (inherited from viewer), tool:crm:export
  role "ghost": not defined in the policy; grants nothing
  token scopes: tool:crm:read, tool:crm:write; effective scopes = role grants the token also carries
  effective scopes: tool:crm:read
action: kind=tool route="crm" method="POST" path="/mcp" tool="crm:contacts:update" operation="tools/call"
  arguments: {"org_id":"acme"}

rules (in order; the first match decides):
  rules[0] mcp-session (allow): no match: action.operation "tools/call" does not match ["initialize", "notifications/*", "tools/list"]
  rules[1] own-org-only (deny): no match: arguments[0]: $.org_id not_equals_claim principal.org does not hold: $.org_id is "acme" (principal.org = "acme")
  rules[2] contractors-no-export (deny): no match: action.tool "crm:contacts:update" does not match "crm:*:export"
  rules[3] support-bot (allow): no match: action.tool "crm:contacts:update" does not match "crm:contacts:search"
no explicit rule matched; grant check:
  tool "crm:contacts:update": tools["crm:contacts:update"] requires tool:crm:write
  tool:crm:write: missing: no held role grants it
"#;
    assert_eq!(text(&policy.explain(&input)), want);
}

#[test]
fn explains_a_matching_rule_and_skips_the_rest() {
    let policy = crm();
    let p = user("alice", "acme", "viewer");
    let a = tool("crm:contacts:search");
    let input = Ask::new(&p, &a).args(r#"{"org_id":"globex"}"#).input();
    let e = policy.explain(&input);
    assert_eq!(e.decision.rule, "own-org-only");
    let outcomes: Vec<&RuleOutcome> = e.rules.iter().map(|s| &s.outcome).collect();
    assert!(matches!(outcomes[0], RuleOutcome::NotMatched(_)));
    assert_eq!(
        outcomes[1],
        &RuleOutcome::Matched(Some(
            "arguments[0]: $.org_id not_equals_claim principal.org: $.org_id is \"globex\" (principal.org = \"acme\")".into()
        ))
    );
    assert_eq!(
        outcomes[2..],
        [&RuleOutcome::NotConsidered, &RuleOutcome::NotConsidered]
    );
    assert!(e.grants.is_empty(), "a rule decided");
    assert!(text(&e).contains("  rules[2..=3]: not considered (an earlier rule decided)\n"));
    // Fail closed, said so.
    let input = Ask::new(&p, &a).args("{oops").input();
    let e = policy.explain(&input);
    let RuleOutcome::Matched(Some(note)) = &e.rules[1].outcome else {
        panic!("{:?}", e.rules[1]);
    };
    assert!(
        note.ends_with("could not be decided; deny rules fail closed"),
        "{note}"
    );
}

#[test]
fn explains_grants_and_their_roles() {
    let policy = crm();
    let admin = user("root", "acme", "admin");
    let a = tool("crm:contacts:update");
    let e = policy.explain(&Ask::new(&admin, &a).args(r#"{"org_id":"acme"}"#).input());
    assert_eq!(e.decision.rule, "role:admin grants tool:crm:write");
    assert_eq!(
        e.grants,
        [
            "no explicit rule matched; grant check:",
            "  tool \"crm:contacts:update\": tools[\"crm:contacts:update\"] requires tool:crm:write",
            "  tool:crm:write: granted by held role \"admin\"",
        ]
    );
    assert!(
        e.caller[1].contains("tool:crm:write (inherited from sales)"),
        "{:?}",
        e.caller
    );
    let viewer = user("v", "acme", "viewer");
    let e = policy.explain(&Ask::new(&viewer, &llm()).model("o3-mini").input());
    assert_eq!(
        e.grants,
        [
            "no explicit rule matched; grant check:",
            "  model \"o3-mini\": no `models` pattern covers it",
            "  not covered: default deny (default:deny)",
        ]
    );
    let e = policy.explain(&Ask::new(&viewer, &llm()).input());
    assert_eq!(
        e.grants[1],
        "  the action has no tool and no model for `tools` / `models` to cover"
    );
    let e = policy.explain(&Ask::new(&viewer, &tool("search:web")).input());
    assert_eq!(
        e.grants[1],
        "  tool \"search:web\": tools[\"search:web\"] requires no scope"
    );
    // Token scopes that hide a role grant.
    let read = vec!["tool:crm:read".to_owned()];
    let e = policy.explain(
        &Ask::new(&admin, &a)
            .args(r#"{"org_id":"acme"}"#)
            .scopes(&read)
            .input(),
    );
    assert_eq!(
        e.grants[2],
        "  tool:crm:write: missing: role \"admin\" grants it, but the token does not carry it"
    );
}

#[test]
fn explains_anonymous_callers_and_undecidable_allow_rules() {
    let policy = load(
        "rules:\n  - {name: small, effect: allow, when: {principal: {role: viewer}, arguments: [{path: $.n, lt: 10}]}}\n  - {name: signed-in, effect: allow, when: {principal: {anonymous: false}}}\n",
    )
    .policy;
    let anonymous = Principal::default();
    let a = tool("x");
    let e = policy.explain(&Ask::new(&anonymous, &a).input());
    assert_eq!(e.caller[0], "principal: anonymous (no roles, no scopes)");
    assert_eq!(
        e.rules[0].outcome,
        RuleOutcome::NotMatched("the caller holds no role (the rule needs \"viewer\")".into())
    );
    assert_eq!(
        e.rules[1].outcome,
        RuleOutcome::NotMatched("the caller is anonymous".into())
    );
    let viewer = user("v", "acme", "viewer");
    let e = policy.explain(&Ask::new(&viewer, &a).args(r#"{"n":"5"}"#).input());
    assert_eq!(
        e.rules[0].outcome,
        RuleOutcome::NotMatched(
            "arguments[0]: $.n lt 10: cannot be decided ($.n is \"5\"); allow rules fail closed"
                .into()
        )
    );
    assert_eq!(e.decision.rule, "signed-in");
}
