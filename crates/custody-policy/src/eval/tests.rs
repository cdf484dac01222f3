use crate::test_support::{Ask, brief, crm, llm, load, tool, user};
use custody_core::{Action, ActionKind, Principal};
use serde_json::json;

const ACME: &str = r#"{"org_id":"acme"}"#;

#[test]
fn roles_grant_scopes_through_inheritance() {
    let policy = crm();
    let search = tool("crm:contacts:search");
    let update = tool("crm:contacts:update");
    for role in ["viewer", "analyst", "sales", "admin"] {
        let p = user("u", "acme", role);
        let d = Ask::new(&p, &search).args(ACME).on(&policy);
        let rule = format!("role:{role} grants tool:crm:read");
        assert_eq!(
            brief(&d),
            (true, rule.as_str(), vec!["tool:crm:read"]),
            "{role}"
        );
    }
    // admin inherits sales (write) through a diamond: admin -> analyst/sales -> viewer.
    let admin = user("root", "acme", "admin");
    let d = Ask::new(&admin, &update).args(ACME).on(&policy);
    assert_eq!(
        brief(&d),
        (
            true,
            "role:admin grants tool:crm:write",
            vec!["tool:crm:write"]
        )
    );
    let analyst = user("ann", "acme", "analyst");
    let d = Ask::new(&analyst, &update).args(ACME).on(&policy);
    assert_eq!(
        brief(&d),
        (
            false,
            "missing-scope:tool:crm:write",
            vec!["tool:crm:write"]
        )
    );
}

#[test]
fn the_first_held_role_that_grants_is_named() {
    let policy = crm();
    let mut p = user("u", "acme", "contractor");
    p.roles = Some(vec!["contractor".into(), "sales".into(), "admin".into()]);
    let d = Ask::new(&p, &tool("crm:contacts:update"))
        .args(ACME)
        .on(&policy);
    assert_eq!(d.rule, "role:sales grants tool:crm:write");
    // Roles unknown to the policy grant nothing.
    let ghost = user("u", "acme", "ghost");
    let d = Ask::new(&ghost, &tool("crm:contacts:search"))
        .args(ACME)
        .on(&policy);
    assert_eq!(d.rule, "missing-scope:tool:crm:read");
}

#[test]
fn the_most_specific_pattern_decides_what_is_required() {
    let policy = crm();
    let admin = user("root", "acme", "admin");
    let cases = [
        // exact beats any wildcard
        ("crm:contacts:delete", "tool:crm:admin"),
        ("crm:contacts:update", "tool:crm:write"),
        // "crm:contacts:*" (13 literal chars) beats "crm:*:export" (11)
        ("crm:contacts:export", "tool:crm:read"),
        ("crm:deals:export", "tool:crm:export"),
    ];
    for (name, scope) in cases {
        let d = Ask::new(&admin, &tool(name)).args(ACME).on(&policy);
        assert_eq!(d.scopes, vec![scope], "{name}");
    }
    let viewer = user("v", "acme", "viewer");
    let d = Ask::new(&viewer, &llm())
        .model("gpt-4o-mini-2024-07-18")
        .on(&policy);
    assert_eq!(
        brief(&d),
        (
            true,
            "role:viewer grants model:standard",
            vec!["model:standard"]
        )
    );
    let d = Ask::new(&viewer, &llm()).model("gpt-4o").on(&policy);
    assert_eq!(
        brief(&d),
        (false, "missing-scope:model:premium", vec!["model:premium"])
    );
}

#[test]
fn patterns_without_scopes_are_open_to_everyone() {
    let policy = crm();
    let anonymous = Principal::default();
    let d = Ask::new(&anonymous, &tool("search:web")).on(&policy);
    assert_eq!(
        brief(&d),
        (true, "tools[\"search:web\"] requires no scope", vec![])
    );
    let d = Ask::new(&anonymous, &llm())
        .model("text-embedding-3-small")
        .on(&policy);
    assert_eq!(d.rule, "models[\"text-embedding-*\"] requires no scope");
}

#[test]
fn token_scopes_narrow_role_grants_by_default() {
    let policy = crm();
    let admin = user("root", "acme", "admin");
    let update = tool("crm:contacts:update");
    let read_only = vec!["tool:crm:read".to_owned(), "openid".to_owned()];
    let d = Ask::new(&admin, &update)
        .args(ACME)
        .scopes(&read_only)
        .on(&policy);
    assert_eq!(
        brief(&d),
        (
            false,
            "missing-scope:tool:crm:write",
            vec!["tool:crm:write"]
        )
    );
    let d = Ask::new(&admin, &tool("crm:contacts:search"))
        .args(ACME)
        .scopes(&read_only)
        .on(&policy);
    assert!(d.allow);
    // A token scope never grants by itself.
    let viewer = user("v", "acme", "viewer");
    let write = vec!["tool:crm:write".to_owned()];
    assert!(
        !Ask::new(&viewer, &update)
            .args(ACME)
            .scopes(&write)
            .on(&policy)
            .allow
    );
    // A scope claim that is present but empty leaves nothing effective.
    let none: Vec<String> = Vec::new();
    assert!(
        !Ask::new(&admin, &update)
            .args(ACME)
            .scopes(&none)
            .on(&policy)
            .allow
    );
}

#[test]
fn token_scopes_can_be_ignored() {
    let text = crate::test_support::CRM
        .replace("format: 1", "format: 1\nsettings: {token_scopes: ignore}");
    let policy = load(&text).policy;
    assert_eq!(policy.token_scopes(), crate::TokenScopes::Ignore);
    let admin = user("root", "acme", "admin");
    let read_only = vec!["tool:crm:read".to_owned()];
    let d = Ask::new(&admin, &tool("crm:contacts:update"))
        .args(ACME)
        .scopes(&read_only)
        .on(&policy);
    assert_eq!(d.rule, "role:admin grants tool:crm:write");
}

#[test]
fn own_org_rule_compares_an_argument_with_the_callers_org() {
    let policy = crm();
    let alice = user("alice", "acme", "viewer");
    let search = tool("crm:contacts:search");
    let ask = |args| Ask::new(&alice, &search).args(args).on(&policy);
    assert!(ask(r#"{"org_id":"acme","query":"x"}"#).allow);
    let d = ask(r#"{"org_id":"globex"}"#);
    assert_eq!(brief(&d), (false, "own-org-only", vec![]));
    // Missing: `not_equals_claim` holds, the deny rule applies.
    assert_eq!(ask(r#"{"query":"x"}"#).rule, "own-org-only");
    // Unreadable or truncated arguments: the deny rule fails closed.
    assert_eq!(ask("{not json").rule, "own-org-only");
    let marker = r#"{"_truncated":true,"original_bytes":99999,"prefix":"{\"org_id\":\"ac"}"#;
    assert_eq!(ask(marker).rule, "own-org-only");
    // A caller without an org never equals anything.
    let mut orgless = user("bob", "acme", "viewer");
    orgless.org = None;
    let d = Ask::new(&orgless, &search).args(ACME).on(&policy);
    assert_eq!(d.rule, "own-org-only");
    // No arguments at all: nothing to compare, the value is missing.
    assert_eq!(Ask::new(&alice, &search).on(&policy).rule, "own-org-only");
}

#[test]
fn claim_conditions_and_claim_paths() {
    let policy = crm();
    let bot = Principal {
        sub: Some("bot-7".into()),
        org: Some("acme".into()),
        ..Principal::default()
    };
    let search = tool("crm:contacts:search");
    let claims = json!({"client_id": "support-bot", "tenant": {"id": "acme"}});
    let d = Ask::new(&bot, &search)
        .args(ACME)
        .claims(&claims)
        .on(&policy);
    assert_eq!(brief(&d), (true, "support-bot", vec![]));
    let other_client = json!({"client_id": "crawler", "tenant": {"id": "acme"}});
    let d = Ask::new(&bot, &search)
        .args(ACME)
        .claims(&other_client)
        .on(&policy);
    assert_eq!(d.rule, "missing-scope:tool:crm:read", "bots hold no role");
    let other_tenant = json!({"client_id": "support-bot", "tenant": {"id": "globex"}});
    assert!(
        !Ask::new(&bot, &search)
            .args(ACME)
            .claims(&other_tenant)
            .on(&policy)
            .allow
    );
    assert!(
        !Ask::new(&bot, &search).args(ACME).on(&policy).allow,
        "no claims"
    );
}

#[test]
fn first_matching_rule_wins() {
    let rules = |first: &str, second: &str| {
        format!(
            "rules:\n  - {{name: {first}, effect: {}, when: {{action: {{tool: \"crm:*\"}}}}}}\n  - {{name: {second}, effect: {}, when: {{action: {{tool: \"crm:contacts:*\"}}}}}}\n",
            if first == "a" { "allow" } else { "deny" },
            if second == "a" { "allow" } else { "deny" },
        )
    };
    let p = user("u", "acme", "viewer");
    let a = tool("crm:contacts:search");
    let loaded = load(&rules("a", "d"));
    assert_eq!(loaded.warnings.len(), 1, "the second rule is shadowed");
    assert_eq!(
        brief(&Ask::new(&p, &a).on(&loaded.policy)),
        (true, "a", vec![])
    );
    let loaded = load(&rules("d", "a"));
    assert_eq!(
        brief(&Ask::new(&p, &a).on(&loaded.policy)),
        (false, "d", vec![])
    );
    // The narrower rule first: each decides its own calls.
    let narrow_first = "rules:\n  - {name: n, effect: deny, when: {action: {tool: \"crm:contacts:*\"}}}\n  - {name: w, effect: allow, when: {action: {tool: \"crm:*\"}}}\n";
    let policy = load(narrow_first).policy;
    assert_eq!(Ask::new(&p, &a).on(&policy).rule, "n");
    assert_eq!(Ask::new(&p, &tool("crm:deals:list")).on(&policy).rule, "w");
}

#[test]
fn nothing_covered_is_denied_by_default() {
    let policy = crm();
    let admin = user("root", "acme", "admin");
    let d = Ask::new(&admin, &tool("hr:payroll:read")).on(&policy);
    assert_eq!(brief(&d), (false, crate::DEFAULT_DENY_RULE, vec![]));
    // An LLM call without a model, a model no pattern covers, a plain HTTP call.
    assert_eq!(Ask::new(&admin, &llm()).on(&policy).rule, "default:deny");
    assert_eq!(
        Ask::new(&admin, &llm()).model("o3").on(&policy).rule,
        "default:deny"
    );
    let http = Action::new(ActionKind::Http, "GET", "/healthz");
    assert_eq!(Ask::new(&admin, &http).on(&policy).rule, "default:deny");
    // An empty policy file is refused, but a policy with only a comment-free
    // empty rules list denies everything.
    let empty = load("rules: []").policy;
    assert_eq!(
        Ask::new(&admin, &tool("search:web")).on(&empty).rule,
        "default:deny"
    );
}

#[test]
fn anonymous_callers_hold_no_roles() {
    let policy = crm();
    let anonymous = Principal::default();
    let search = tool("crm:contacts:search");
    let d = Ask::new(&anonymous, &search)
        .args(r#"{"org_id":null}"#)
        .on(&policy);
    assert_eq!(d.rule, "own-org-only");
    // No sub: role fields are ignored even if set.
    let half = Principal {
        role: Some("admin".into()),
        org: Some("acme".into()),
        ..Principal::default()
    };
    let d = Ask::new(&half, &search).args(ACME).on(&policy);
    assert_eq!(d.rule, "missing-scope:tool:crm:read");
    // mcp-session requires a signed-in caller.
    let mut init = tool("crm:contacts:search");
    init.tool = None;
    init.operation = Some("initialize".into());
    assert_eq!(Ask::new(&anonymous, &init).on(&policy).rule, "default:deny");
    let alice = user("alice", "acme", "viewer");
    assert_eq!(Ask::new(&alice, &init).on(&policy).rule, "mcp-session");
    init.operation = Some("notifications/initialized".into());
    assert_eq!(Ask::new(&alice, &init).on(&policy).rule, "mcp-session");
}

#[test]
fn principal_and_action_matchers() {
    let text = r#"
rules:
  - {name: by-issuer, effect: deny, when: {principal: {issuer: "https://evil.example/*"}}}
  - {name: by-org, effect: deny, when: {principal: {org: [globex, initech]}}}
  - {name: by-sub, effect: allow, when: {principal: {sub: "svc-*"}, action: {kind: http}}}
  - {name: by-method, effect: allow, when: {action: {method: [get, HEAD], route: docs}}}
  - {name: by-path, effect: deny, when: {action: {path: "/admin/*"}}}
  - {name: by-kind-llm, effect: allow, when: {action: {kind: llm, route: "open*"}}}
"#;
    let policy = load(text).policy;
    let mut p = user("u", "acme", "viewer");
    let mut http = Action::new(ActionKind::Http, "GET", "/admin/x");
    assert_eq!(Ask::new(&p, &http).on(&policy).rule, "by-path");
    http.route = Some("docs".into());
    http.path = "/readme".into();
    assert_eq!(Ask::new(&p, &http).on(&policy).rule, "by-method");
    http.method = "POST".into();
    assert_eq!(Ask::new(&p, &http).on(&policy).rule, "default:deny");
    p.sub = Some("svc-backup".into());
    assert_eq!(Ask::new(&p, &http).on(&policy).rule, "by-sub");
    p.org = Some("initech".into());
    assert_eq!(Ask::new(&p, &http).on(&policy).rule, "by-org");
    p.issuer = Some("https://evil.example/realms/x".into());
    assert_eq!(Ask::new(&p, &http).on(&policy).rule, "by-issuer");
    let p = user("u", "acme", "viewer");
    assert_eq!(Ask::new(&p, &llm()).on(&policy).rule, "by-kind-llm");
    // The kind index: a tool call never reaches the llm rule.
    assert_eq!(Ask::new(&p, &tool("x")).on(&policy).rule, "default:deny");
}

#[test]
fn rules_can_require_effective_scopes_and_record_them() {
    let text = r#"
roles:
  admin: {grants: [tool:crm:admin]}
  viewer: {grants: [tool:crm:read]}
tools: {"crm:*": [tool:crm:read]}
rules:
  - name: admins-bypass-org-check
    effect: allow
    when: {scopes: [tool:crm:admin], action: {tool: "crm:*"}}
"#;
    let policy = load(text).policy;
    let admin = user("root", "acme", "admin");
    let d = Ask::new(&admin, &tool("crm:x")).on(&policy);
    assert_eq!(
        brief(&d),
        (true, "admins-bypass-org-check", vec!["tool:crm:admin"])
    );
    let read = vec!["tool:crm:read".to_owned()];
    let d = Ask::new(&admin, &tool("crm:x")).scopes(&read).on(&policy);
    assert_eq!(
        brief(&d),
        (false, "missing-scope:tool:crm:read", vec!["tool:crm:read"])
    );
}

#[test]
fn allow_rules_fail_closed_and_deny_rules_fail_closed_too() {
    let text = r#"
rules:
  - name: small-exports
    effect: allow
    when: {arguments: [{path: $.limit, lte: 100}]}
  - name: huge-exports
    effect: deny
    when: {arguments: [{path: $.limit, gt: 10000}]}
"#;
    let policy = load(text).policy;
    let p = user("u", "acme", "viewer");
    let a = tool("crm:reports:export");
    let ask = |args| Ask::new(&p, &a).args(args).on(&policy).rule;
    assert_eq!(ask(r#"{"limit":50}"#), "small-exports");
    assert_eq!(ask(r#"{"limit":50000}"#), "huge-exports");
    assert_eq!(ask(r#"{"limit":500}"#), "default:deny");
    // A string is not a number: undecidable; the allow rule does not match, the deny rule does.
    assert_eq!(ask(r#"{"limit":"50"}"#), "huge-exports");
    assert_eq!(ask("not json"), "huge-exports");
    // Missing: neither comparison holds.
    assert_eq!(ask("{}"), "default:deny");
}

#[test]
fn decisions_carry_the_policy_version() {
    let loaded = load(crate::test_support::CRM);
    let v = loaded.policy.version().to_owned();
    assert!(v.starts_with("sha256:") && v.len() == 7 + 16, "{v}");
    assert!(
        v[7..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    let p = user("u", "acme", "viewer");
    let d = Ask::new(&p, &tool("search:web")).on(&loaded.policy);
    assert_eq!(&*d.version, v);
    assert_eq!(d.as_str(), "allow");
    let other = load(&format!("{}\n# edited\n", crate::test_support::CRM));
    assert_ne!(
        other.policy.version(),
        v,
        "any byte change is a new version"
    );
    assert_eq!(
        crate::policy::content_version(b""),
        "sha256:e3b0c44298fc1c14"
    );
}

#[test]
fn policy_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<crate::Policy>();
    check::<crate::Decision>();
}
