use crate::locate::Location;
use crate::test_support::{CRM, load};
use crate::{Policy, Problem, WarningKind};

fn errors(text: &str) -> Vec<Problem> {
    match Policy::from_yaml(text) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.problems,
    }
}

/// `(path, line, message)` of every problem, for exact assertions.
fn listed(problems: &[Problem]) -> Vec<(String, usize, String)> {
    problems
        .iter()
        .map(|p| {
            (
                p.path.clone(),
                p.location.map_or(0, |l| l.line),
                p.message.clone(),
            )
        })
        .collect()
}

const BROKEN: &str = r#"format: 2
settings: {token_scopes: union}
roles:
  a: {inherits: [b], grants: [x]}
  b: {inherits: a}
  c: {inherits: [nope], grants: ["has space"], extra: 1}
tools:
  "crm:**": [x]
  "ok:*":
models:
  "gpt-4?": [x]
rules:
  - effect: allow
  - name: dup
    effect: allow
  - name: dup
    effect: permit
  - name: bad name
    effect: deny
  - name: ops
    effect: deny
    when:
      principal: {role: [], claims: [{path: $.x}]}
      action: {kind: robot, method: "*", tool: "a[b]"}
      arguments:
        - {path: org_id, equals: 1}
        - {path: $.x, eq: 1}
        - {path: $.x, equals: 1, in: [1]}
        - {path: $.x, in: []}
        - {path: $.x, gt: ten}
        - {path: $.x, exists: yes}
        - {path: $.x, equals_claim: tenant}
      extra: 1
unknown_top: 1
"#;

#[test]
fn every_problem_is_reported_with_path_and_line() {
    let got = listed(&errors(BROKEN));
    let want: Vec<(&str, usize, &str)> = vec![
        (
            "format",
            1,
            "unsupported format 2: this custody reads format 1",
        ),
        (
            "settings.token_scopes",
            2,
            "unknown token_scopes mode \"union\"; expected intersect or ignore",
        ),
        ("roles.a.inherits[0]", 4, "inheritance cycle: a -> b -> a"),
        (
            "roles.c.inherits[0]",
            6,
            "\"c\" inherits \"nope\", which is not a role defined here",
        ),
        (
            "roles.c.grants[0]",
            6,
            "scope \"has space\" contains whitespace (token scopes are space-separated)",
        ),
        (
            "roles.c.extra",
            6,
            "unknown field `extra`; expected one of: description, inherits, grants",
        ),
        (
            "tools[\"crm:**\"]",
            8,
            "bad pattern \"crm:**\": '**' (a single '*' already matches any characters, ':' and '/' included)",
        ),
        (
            "tools[\"ok:*\"]",
            9,
            "expected a scope or a list of scopes (use [] to require no scope)",
        ),
        (
            "models[\"gpt-4?\"]",
            11,
            "bad pattern \"gpt-4?\": '?' is reserved (only '*' is a wildcard)",
        ),
        ("rules[0]", 13, "missing field `name`"),
        (
            "rules[2].name",
            16,
            "duplicate rule name \"dup\" (also rules[1])",
        ),
        (
            "rules[2].effect",
            17,
            "unknown effect \"permit\"; expected allow or deny",
        ),
        (
            "rules[3].name",
            18,
            "bad rule name \"bad name\": use letters, digits, '-', '_', '.' or '/'",
        ),
        (
            "rules[4].when.principal.role",
            23,
            "an empty list matches nothing (leave the field out to match anything)",
        ),
        (
            "rules[4].when.principal.claims[0]",
            23,
            "missing operator; expected one of: equals, not_equals, in, not_in, gt, gte, lt, lte, exists, absent, equals_claim, not_equals_claim",
        ),
        (
            "rules[4].when.action.kind",
            24,
            "unknown action kind \"robot\"; expected llm, tool or http",
        ),
        (
            "rules[4].when.action.method",
            24,
            "bad method \"*\": a method is letters only, e.g. GET (leave the field out to match every method)",
        ),
        (
            "rules[4].when.action.tool",
            24,
            "bad pattern \"a[b]\": '[' is reserved (only '*' is a wildcard)",
        ),
        (
            "rules[4].when.arguments[0].path",
            26,
            "bad JSON path \"org_id\": must start with '$' (e.g. $.org_id)",
        ),
        (
            "rules[4].when.arguments[1].eq",
            27,
            "unknown operator `eq`; expected one of: path, equals, not_equals, in, not_in, gt, gte, lt, lte, exists, absent, equals_claim, not_equals_claim",
        ),
        (
            "rules[4].when.arguments[2].in",
            28,
            "one operator per condition (write one list item per condition; all must hold)",
        ),
        (
            "rules[4].when.arguments[3].in",
            29,
            "an empty list: `in` would never hold and `not_in` always",
        ),
        (
            "rules[4].when.arguments[4].gt",
            30,
            "expected a number, found a string",
        ),
        (
            "rules[4].when.arguments[5].exists",
            31,
            "expected true or false, found a string",
        ),
        (
            "rules[4].when.arguments[6].equals_claim",
            32,
            "unknown principal field \"tenant\": use sub, org, role, issuer, or a claim path such as $.tenant_id",
        ),
        (
            "rules[4].when.extra",
            33,
            "unknown field `extra`; expected one of: principal, action, scopes, arguments",
        ),
        (
            "unknown_top",
            34,
            "unknown field `unknown_top`; expected one of: format, description, settings, roles, tools, models, rules",
        ),
    ];
    let want: Vec<(String, usize, String)> = want
        .into_iter()
        .map(|(p, l, m)| (p.to_owned(), l, m.to_owned()))
        .collect();
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
}

#[test]
fn columns_point_at_the_node() {
    let problems = errors(
        "rules:\n  - name: r\n    effect: deny\n    when:\n      arguments:\n        - {path: $.a, gt: x}\n",
    );
    let at = problems[0].location.expect("location");
    assert_eq!((at.line, at.column), (6, 27));
    assert_eq!(
        problems[0].to_string(),
        "rules[0].when.arguments[0].gt (line 6, column 27): expected a number, found a string"
    );
}

#[test]
fn syntax_errors_stop_with_their_location() {
    let problems = errors("roles:\n  a: [x\n  b: 1\n");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, "");
    assert!(
        problems[0].message.starts_with("not valid YAML: "),
        "{}",
        problems[0].message
    );
    let at = problems[0].location.expect("location");
    let suffix = format!(" at line {} column {}", at.line, at.column);
    assert!(
        !problems[0].message.ends_with(&suffix),
        "{}",
        problems[0].message
    );
    // A repeated key is placed where the repeat stands, not at its mapping's start.
    let dup = errors("rules: []\nrules: []\n");
    assert!(dup[0].message.contains("duplicate key `rules`"), "{dup:?}");
    assert_eq!(dup[0].location, Some(Location { line: 2, column: 1 }));
    let dup = errors("format: 1\nroles:\n  a: {grants: [x]}\n  b: {}\n  a: {}\n");
    assert!(
        dup[0].message.contains("roles: duplicate key `a`"),
        "{dup:?}"
    );
    assert_eq!(dup[0].location, Some(Location { line: 5, column: 3 }));
}

#[test]
fn an_empty_policy_is_refused() {
    for text in ["", "# nothing\n", "~"] {
        let problems = errors(text);
        assert!(
            problems[0].message.contains("the policy is empty"),
            "{problems:?}"
        );
    }
    let problems = errors("[1, 2]");
    assert_eq!(problems[0].message, "expected a mapping, found a list");
}

#[test]
fn cycles_are_reported_once_each() {
    let text = "roles:\n  a: {inherits: [b]}\n  b: {inherits: [c]}\n  c: {inherits: [a]}\n  d: {inherits: [d]}\n  e: {inherits: [a]}\n";
    let messages: Vec<String> = errors(text)
        .into_iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect();
    assert_eq!(
        messages,
        [
            "roles.a.inherits[0]: inheritance cycle: a -> b -> c -> a",
            "roles.d.inherits[0]: inheritance cycle: d -> d",
        ]
    );
}

#[test]
fn the_display_lists_every_problem() {
    let err = Policy::from_yaml("rules: [{name: a}, {effect: deny}]").expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "invalid policy: 2 problems\n  - rules[0] (line 1, column 9): missing field `effect`\n  - rules[1] (line 1, column 20): missing field `name`"
    );
}

#[test]
fn the_example_policy_has_no_warnings() {
    let loaded = load(CRM);
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    assert_eq!(loaded.policy.rule_count(), 4);
    let roles: Vec<&str> = loaded.policy.role_names().collect();
    assert_eq!(roles, ["viewer", "analyst", "sales", "admin", "contractor"]);
}

const DUBIOUS: &str = r#"
roles:
  viewer: {grants: [tool:crm:read, tool:crm:raed]}
tools:
  "crm:*": [tool:crm:read]
  "hr:*": [tool:hr:read]
rules:
  - {name: all-crm, effect: deny, when: {action: {tool: "crm:*"}, principal: {role: [viewer, guest]}}}
  - {name: some-crm, effect: allow, when: {action: {tool: "crm:contacts:*", method: POST}, principal: {role: viewer}}}
  - {name: same-again, effect: deny, when: {action: {tool: "crm:x"}, principal: {role: viewer}}}
  - {name: needs-ghost, effect: allow, when: {scopes: [tool:ghost]}}
  - {name: llm-tools, effect: allow, when: {action: {kind: llm, tool: "x"}}}
  - {name: anon-admin, effect: allow, when: {principal: {anonymous: true, role: admin}}}
  - {name: both, effect: deny, when: {arguments: [{path: $.a, exists: true}, {path: $.a, absent: true}]}}
  - {name: conditional-allow, effect: allow, when: {action: {tool: "hr:*"}, arguments: [{path: $.a, equals: 1}]}}
  - {name: later-deny, effect: deny, when: {action: {tool: "hr:x"}, arguments: [{path: $.a, equals: 1}]}}
  - {name: catch-all, effect: deny}
  - {name: after-all, effect: allow, when: {action: {tool: "y"}}}
"#;

#[test]
fn warnings_name_probable_mistakes() {
    let loaded = load(DUBIOUS);
    let got: Vec<(WarningKind, String, String)> = loaded
        .warnings
        .iter()
        .map(|w| (w.kind, w.problem.path.clone(), w.problem.message.clone()))
        .collect();
    use WarningKind::*;
    let want = vec![
        (
            UnusedScope,
            "roles.viewer.grants",
            "role \"viewer\" grants \"tool:crm:raed\", which no tool, model or rule requires (a typo?)",
        ),
        (
            UngrantedScope,
            "tools[\"hr:*\"]",
            "tools[\"hr:*\"] requires \"tool:hr:read\", which no role grants: only an explicit allow rule can allow it",
        ),
        (
            ShadowedRule,
            "rules[1]",
            "rule \"some-crm\" is shadowed by rules[0] \"all-crm\" (deny), which matches every request it matches: it never applies",
        ),
        (
            ShadowedRule,
            "rules[2]",
            "rule \"same-again\" is shadowed by rules[0] \"all-crm\" (deny), which matches every request it matches: it is redundant",
        ),
        (
            UnsatisfiableRule,
            "rules[3].when.scopes",
            "rule \"needs-ghost\" never matches: no role grants scope \"tool:ghost\"",
        ),
        (
            UnsatisfiableRule,
            "rules[4].when.action.tool",
            "rule \"llm-tools\" never matches: only tool calls have a tool, and action.kind excludes them",
        ),
        (
            UnsatisfiableRule,
            "rules[5].when.principal",
            "rule \"anon-admin\" never matches: an anonymous caller has no sub, org, role, issuer or scopes to match",
        ),
        (
            UnsatisfiableRule,
            "rules[6].when.arguments",
            "rule \"both\" never matches: $.a must both exist and be absent",
        ),
        (
            ShadowedRule,
            "rules[10]",
            "rule \"after-all\" is shadowed by rules[9] \"catch-all\" (deny), which matches every request it matches: it never applies",
        ),
    ];
    let want: Vec<(WarningKind, String, String)> = want
        .into_iter()
        .map(|(k, p, m)| (k, p.to_owned(), m.to_owned()))
        .collect();
    assert_eq!(got, want);
    // The conditional allow rule does not shadow the deny rule after it: with
    // unreadable arguments the allow rule does not match and the deny rule does.
    assert!(
        loaded
            .warnings
            .iter()
            .all(|w| !w.problem.path.starts_with("rules[8]"))
    );
    assert!(loaded.warnings.iter().all(|w| w.problem.location.is_some()));
    assert_eq!(
        loaded.warnings[4].to_string(),
        "warning[unsatisfiable-rule]: rules[3].when.scopes (line 11, column 55): rule \"needs-ghost\" never matches: no role grants scope \"tool:ghost\""
    );
}

#[test]
fn mcp_housekeeping_names_exactly_its_operations() {
    use crate::test_support::{Ask, user};
    use custody_core::{Action, ActionKind};
    let policy = load(
        r#"format: 1
rules:
  - name: session
    effect: allow
    when: {action: {operation: ["@mcp-housekeeping", tools/list]}}
"#,
    )
    .policy;
    let alice = user("alice", "acme", "viewer");
    let decide = |operation: &str| {
        let mut a = Action::new(ActionKind::Tool, "POST", "/mcp");
        a.operation = Some(operation.into());
        Ask::new(&alice, &a).on(&policy).allow
    };
    for op in crate::MCP_HOUSEKEEPING
        .iter()
        .copied()
        .chain(["tools/list"])
    {
        assert!(decide(op), "{op}");
    }
    for op in [
        "response",
        "tools/call",
        "resources/read",
        "notifications/message",
        "initializex",
        "sampling/createMessage",
    ] {
        assert!(!decide(op), "{op}");
    }
    let problems = errors(
        "format: 1\nrules:\n  - {name: a, effect: allow, when: {action: {operation: ['@mcp-housekeep']}}}\n",
    );
    assert_eq!(
        listed(&problems),
        [(
            "rules[0].when.action.operation[0]".to_owned(),
            3,
            r#"unknown operation group "@mcp-housekeep"; the only group is @mcp-housekeeping"#
                .to_owned()
        )]
    );
}
