use super::*;
use crate::test_support::crm;

const CASES: &str = r#"
cases:
  - name: viewer searches their own org
    principal: {sub: alice, org: acme, role: viewer}
    action: {tool: "crm:contacts:search", route: crm}
    arguments: {org_id: acme}
    expect: {decision: allow, rule: "role:viewer grants tool:crm:read", scopes: [tool:crm:read]}
  - name: another org is denied
    principal: {sub: alice, org: acme, role: viewer}
    action: {tool: "crm:contacts:search"}
    arguments: '{"org_id": "globex"}'
    expect: {decision: deny, rule: own-org-only, scopes: []}
  - name: wrong on purpose
    principal: {sub: alice, org: acme, role: viewer}
    token_scopes: tool:crm:read openid
    action: {tool: "crm:contacts:update"}
    arguments: {org_id: acme}
    expect: {decision: allow, rule: own-org-only, scopes: [tool:crm:write]}
  - principal: {sub: bot-1, org: acme}
    claims: {client_id: support-bot, tenant: {id: acme}}
    action: {kind: tool, tool: "crm:contacts:search", method: post, path: /mcp, operation: tools/call}
    arguments: {org_id: acme}
    expect: allow
  - name: anonymous llm call
    action: {model: gpt-4o-mini}
    expect: deny
"#;

#[test]
fn runs_every_case_and_reports_every_mismatch() {
    let policy = crm();
    let report = run(&policy, CASES).expect("valid cases");
    assert_eq!((report.passed(), report.failed()), (4, 1));
    assert!(!report.is_success());
    let failed = &report.results[2];
    assert_eq!(
        failed.mismatches,
        [
            "decision: expected allow, got deny",
            "rule: expected \"own-org-only\", got \"missing-scope:tool:crm:write\"",
        ],
        "scopes match as sets"
    );
    assert_eq!(report.results[3].name, "case 3");
    let text = report
        .to_string()
        .replace(policy.version(), "sha256:<version>");
    let want = r#"policy sha256:<version>
PASS: cases[0] viewer searches their own org
PASS: cases[1] another org is denied
FAIL: cases[2] wrong on purpose
    decision: expected allow, got deny
    rule: expected "own-org-only", got "missing-scope:tool:crm:write"
    (got deny by "missing-scope:tool:crm:write")
PASS: cases[3] case 3
PASS: cases[4] anonymous llm call
--------------------------------------------------------------------------------
PASS: 4/5
FAIL: 1/5
"#;
    assert_eq!(text, want);
}

#[test]
fn all_passing_reports_success() {
    let policy = crm();
    let only_passing = CASES.replace(
        "decision: allow, rule: own-org-only",
        "decision: deny, rule: \"missing-scope:tool:crm:write\"",
    );
    let report = run(&policy, &only_passing).expect("valid cases");
    assert!(report.is_success());
    assert!(report.to_string().ends_with("PASS: 5/5\n"));
}

#[test]
fn bad_cases_files_list_every_problem() {
    let policy = crm();
    let text = "cases:\n  - principal: {sub: a, team: x}\n    action: {kind: robot}\n    expect: maybe\n  - action: {tool: t}\n  - expect: allow\n    action: {tool: t}\n    arguments: !tagged x\n";
    let err = run(&policy, text).expect_err("invalid");
    let got: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "cases[0].principal.team (line 2, column 31): unknown field `team`; expected one of: sub, org, role, roles, issuer",
            "cases[0].action.kind (line 3, column 20): unknown action kind \"robot\"; expected llm, tool or http",
            "cases[0].expect (line 4, column 13): expected allow or deny, found \"maybe\"",
            "cases[1] (line 5, column 5): missing field `expect`",
            "cases[2].arguments (line 8, column 16): YAML tags (`!tag`) are not supported here",
        ]
    );
    assert!(
        err.to_string()
            .starts_with("invalid cases: 5 problems\n  - cases[0].principal.team")
    );
    let err = run(&policy, "cases: []").expect_err("empty");
    assert_eq!(err.problems[0].message, "no cases");
    let err = run(&policy, "cases: [").expect_err("syntax");
    assert!(err.problems[0].message.starts_with("not valid YAML"));
}

#[test]
fn inputs_from_command_line_parts() {
    let policy = crm();
    let input = CaseInput::from_parts(&Parts {
        principal: Some("{sub: alice, org: acme, role: viewer}"),
        action: r#"{"tool": "crm:contacts:search"}"#,
        arguments: Some(r#"{"org_id": "acme"}"#),
        claims: None,
        token_scopes: Some("tool:crm:read"),
    })
    .expect("valid parts");
    assert_eq!(
        input.token_scopes.as_deref(),
        Some(&["tool:crm:read".to_owned()][..])
    );
    assert_eq!(input.arguments.as_deref(), Some(r#"{"org_id": "acme"}"#));
    assert_eq!(input.action.kind, custody_core::ActionKind::Tool);
    assert!(policy.evaluate(&input.input()).allow);
    let err = CaseInput::from_parts(&Parts {
        principal: Some("{sub: [}"),
        action: "{tool: x, colour: red}",
        ..Parts::default()
    })
    .expect_err("bad principal");
    assert_eq!(err.problems[0].path, "principal");
    let err = CaseInput::from_parts(&Parts {
        action: "{tool: x, colour: red}",
        ..Parts::default()
    })
    .expect_err("bad action");
    assert_eq!(
        err.problems[0].to_string(),
        "action.colour: unknown field `colour`; expected one of: kind, route, method, path, tool, operation, model"
    );
    let input = CaseInput::from_yaml("action: {model: gpt-4o}\nprincipal: {sub: s, role: admin}\n")
        .expect("valid");
    assert_eq!(input.model.as_deref(), Some("gpt-4o"));
    assert_eq!(input.action.kind, custody_core::ActionKind::Llm);
    assert_eq!(
        policy.evaluate(&input.input()).rule,
        "role:admin grants model:premium"
    );
}
