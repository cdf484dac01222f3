//! `custody policy check | test | explain`, run as the real binary on temp files:
//! output, stderr and exit codes. The examples of `docs/policy.md` are run as
//! written and their pinned outputs compared byte for byte.

use std::path::Path;
use std::process::{Command, Output};

const DOC: &str = include_str!("../../../docs/policy.md");

/// A small policy with one warning (`tool:crm:raed` is granted, never required).
const WARNS: &str = r#"roles:
  viewer: {grants: [tool:crm:read, tool:crm:raed]}
tools:
  "crm:*": [tool:crm:read]
rules:
  - {name: no-guests, effect: deny, when: {principal: {role: guest}}}
"#;

/// Every kind of problem at once: a cycle, a bad operand, a duplicate, a typo.
const BROKEN: &str = r#"roles:
  a: {inherits: [b]}
  b: {inherits: [a]}
rules:
  - {name: r1, effect: alow}
  - {name: r1, effect: deny, when: {arguments: [{path: $.n, gt: many}]}}
"#;

/// A fenced block of the doc by its info string (the first one).
fn block(info: &str) -> String {
    let mut body = None::<String>;
    for line in DOC.split_inclusive('\n') {
        let trimmed = line.trim_end();
        match &mut body {
            None => {
                if trimmed.strip_prefix("```").map(str::trim) == Some(info) {
                    body = Some(String::new());
                }
            }
            Some(b) => {
                if trimmed == "```" {
                    return body.unwrap_or_default();
                }
                b.push_str(line);
            }
        }
    }
    panic!("no `{info}` block in docs/policy.md");
}

/// Runs `custody` in `dir`.
fn custody(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custody"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run custody")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A temp dir holding `files`.
fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

// ---- check ----

#[test]
fn check_prints_version_counts_and_every_warning_and_exits_0() {
    let dir = dir_with(&[("policy.yaml", WARNS)]);
    let out = custody(dir.path(), &["policy", "check", "policy.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "policy policy.yaml is valid\n",
        "version:      sha256:",
        "roles:        1\n",
        "rules:        1\n",
        "token_scopes: intersect\n",
        "warnings:     1\n",
        "warning[unused-scope]: roles.viewer.grants (line 2, column 20): role \"viewer\" grants \"tool:crm:raed\"",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn check_with_deny_warnings_exits_1_on_warnings_and_0_without() {
    let dir = dir_with(&[
        ("policy.yaml", WARNS),
        ("clean.yaml", &block("yaml policy")),
    ]);
    let out = custody(
        dir.path(),
        &["policy", "check", "--deny-warnings", "policy.yaml"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("warning[unused-scope]"));
    assert!(
        stderr(&out).contains("policy.yaml: 1 warning and --deny-warnings is set"),
        "{}",
        stderr(&out)
    );

    let out = custody(
        dir.path(),
        &["policy", "check", "clean.yaml", "--deny-warnings"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("warnings:     0\n"));
    assert!(stdout(&out).contains("roles:        5\nrules:        6\n"));
}

#[test]
fn check_output_is_the_one_the_doc_shows() {
    let dir = dir_with(&[("policy.yaml", &block("yaml warns"))]);
    let out = custody(dir.path(), &["policy", "check", "policy.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), block("text cli-check"));
}

#[test]
fn check_lists_every_problem_with_line_and_column_and_exits_2() {
    let dir = dir_with(&[("policy.yaml", BROKEN)]);
    let out = custody(dir.path(), &["policy", "check", "policy.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let err = stderr(&out);
    for needle in [
        "custody: policy.yaml: invalid policy: 4 problems\n",
        "  - roles.a.inherits[0] (line 2, column 18): inheritance cycle",
        "  - rules[0].effect (line 5, column 24): unknown effect \"alow\"",
        "  - rules[1].name (line 6, column 12): duplicate rule name \"r1\"",
        "  - rules[1].when.arguments[0].gt (line 6, column 65): expected a number",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in\n{err}");
    }
}

#[test]
fn the_docs_broken_example_fails_exactly_as_documented() {
    let dir = dir_with(&[("policy.yaml", &block("yaml broken"))]);
    let out = custody(dir.path(), &["policy", "check", "policy.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!("custody: policy.yaml: {}", block("text errors"))
    );
}

#[test]
fn a_yaml_syntax_error_is_located_and_exits_2() {
    let dir = dir_with(&[("policy.yaml", "roles:\n  viewer: {grants: [a\n")]);
    let out = custody(dir.path(), &["policy", "check", "policy.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("invalid policy: 1 problem\n"), "{err}");
    assert!(err.contains("(line 3, column 1): not valid YAML"), "{err}");
}

#[test]
fn a_missing_policy_file_exits_2() {
    let dir = dir_with(&[]);
    let out = custody(dir.path(), &["policy", "check", "nope.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("reading policy nope.yaml"));
}

// ---- test ----

#[test]
fn test_runs_the_docs_cases_prints_the_documented_report_and_exits_0() {
    let dir = dir_with(&[
        ("policy.yaml", &block("yaml policy")),
        ("cases.yaml", &block("yaml cases")),
    ]);
    let out = custody(dir.path(), &["policy", "test", "policy.yaml", "cases.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), block("text test"));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn a_failing_case_shows_the_mismatch_and_exits_1() {
    let cases = block("yaml cases").replacen(
        r#"expect: {decision: deny, rule: "missing-scope:tool:crm:write", scopes: [tool:crm:write]}"#,
        r#"expect: {decision: allow, rule: "role:viewer grants tool:crm:write"}"#,
        1,
    );
    let dir = dir_with(&[
        ("policy.yaml", &block("yaml policy")),
        ("cases.yaml", &cases),
    ]);
    let out = custody(dir.path(), &["policy", "test", "policy.yaml", "cases.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains(&block("text fail")), "{text}");
    assert!(
        text.contains("PASS: cases[4] admins inherit write"),
        "{text}"
    );
    assert!(text.ends_with("PASS: 18/19\nFAIL: 1/19\n"), "{text}");
}

#[test]
fn an_invalid_cases_file_exits_2_with_every_problem() {
    let cases = "cases:\n  - name: x\n    action: {tool: \"crm:contacts:search\"}\n    expect: allowed\n  - {action: {kind: smtp}, expect: deny, extra: 1}\n";
    let dir = dir_with(&[("policy.yaml", WARNS), ("cases.yaml", cases)]);
    let out = custody(dir.path(), &["policy", "test", "policy.yaml", "cases.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let err = stderr(&out);
    for needle in [
        "custody: policy.yaml: 1 warning; see `custody policy check policy.yaml`\n",
        "custody: cases.yaml: invalid cases: 3 problems\n",
        "  - cases[0].expect (line 4, column 13): expected allow or deny, found \"allowed\"",
        "cases[1].extra (line 5",
        "cases[1].action.kind (line 5",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in\n{err}");
    }
}

#[test]
fn test_with_an_invalid_policy_exits_2_before_reading_the_cases() {
    let dir = dir_with(&[("policy.yaml", BROKEN)]);
    let out = custody(
        dir.path(),
        &["policy", "test", "policy.yaml", "missing.yaml"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("invalid policy: 4 problems"), "{err}");
    assert!(!err.contains("missing.yaml"), "{err}");
}

#[test]
fn test_with_a_missing_cases_file_exits_2() {
    let dir = dir_with(&[("policy.yaml", WARNS)]);
    let out = custody(
        dir.path(),
        &["policy", "test", "policy.yaml", "missing.yaml"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("reading cases missing.yaml"));
}

// ---- explain ----

#[test]
fn the_docs_explain_command_prints_the_documented_denial_and_exits_0() {
    let dir = dir_with(&[("policy.yaml", &block("yaml policy"))]);
    let command = block("sh explain");
    let command = command
        .strip_prefix("custody ")
        .expect("the example starts with `custody`");
    let out = Command::new("sh")
        .current_dir(dir.path())
        .arg("-c")
        .arg(format!("\"$CUSTODY\" {command}"))
        .env("CUSTODY", env!("CARGO_BIN_EXE_custody"))
        .output()
        .expect("run sh");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("decision: deny\n"));
    assert_eq!(stdout(&out), block("text explain"));
}

#[test]
fn explain_an_allowed_action() {
    let dir = dir_with(&[("policy.yaml", &block("yaml policy"))]);
    let out = custody(
        dir.path(),
        &[
            "policy",
            "explain",
            "policy.yaml",
            "--principal",
            "{sub: alice, org: acme, role: viewer}",
            "--action",
            r#"{tool: "crm:contacts:search", route: crm}"#,
            "--arguments",
            r#"{"org_id": "acme"}"#,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(
            "decision: allow\nrule:     role:viewer grants tool:crm:read\nscopes:   tool:crm:read\nversion:  sha256:"
        ),
        "{text}"
    );
    assert!(
        text.contains("  tool:crm:read: granted by held role \"viewer\""),
        "{text}"
    );
}

#[test]
fn explain_by_a_rule_with_claims() {
    let dir = dir_with(&[("policy.yaml", &block("yaml policy"))]);
    let out = custody(
        dir.path(),
        &[
            "policy",
            "explain",
            "policy.yaml",
            "--principal",
            "{sub: support-bot, org: acme, issuer: 'https://idp.acme.example/realms/bots'}",
            "--claims",
            r#"{"azp": "support-bot", "tenant": {"id": "acme"}}"#,
            "--action",
            r#"{tool: "crm:contacts:search"}"#,
            "--arguments",
            r#"{"org_id": "acme"}"#,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("decision: allow\nrule:     support-bot-lookup\n"),
        "{text}"
    );
    assert!(
        text.contains("rules[5] support-bot-lookup (allow): MATCHED"),
        "{text}"
    );
}

#[test]
fn explain_token_scopes_narrow_the_roles_grants() {
    let dir = dir_with(&[("policy.yaml", &block("yaml policy"))]);
    let base = [
        "policy",
        "explain",
        "policy.yaml",
        "--principal",
        "{sub: root, org: acme, role: admin}",
        "--action",
        r#"{tool: "crm:contacts:update"}"#,
        "--arguments",
        r#"{"org_id": "acme"}"#,
    ];
    let with = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        custody(dir.path(), &args)
    };

    let out = with(&["--token-scopes", "openid,tool:crm:read"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("decision: deny\nrule:     missing-scope:tool:crm:write\n"),
        "{text}"
    );
    assert!(
        text.contains("token scopes: openid, tool:crm:read; effective scopes"),
        "{text}"
    );
    assert!(
        text.contains("role \"admin\" grants it, but the token does not carry it"),
        "{text}"
    );

    // Repeated flags and spaces add up.
    let out = with(&[
        "--token-scopes",
        "openid tool:crm:read",
        "--token-scopes",
        "tool:crm:write",
    ]);
    assert!(
        stdout(&out).starts_with("decision: allow\n"),
        "{}",
        stdout(&out)
    );

    // An empty scope claim narrows to nothing; no flag at all does not narrow.
    let out = with(&["--token-scopes", ""]);
    assert!(stdout(&out).contains("token scopes: (none); effective scopes"));
    assert!(stdout(&out).starts_with("decision: deny\n"));
    let out = with(&[]);
    assert!(stdout(&out).starts_with("decision: allow\n"));
    assert!(stdout(&out).contains("token scopes: none carried"));
}

#[test]
fn explain_an_anonymous_caller_is_denied_by_default() {
    let dir = dir_with(&[("policy.yaml", &block("yaml policy"))]);
    let out = custody(
        dir.path(),
        &[
            "policy",
            "explain",
            "policy.yaml",
            "--action",
            "{tool: 'hr:payroll:read'}",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("decision: deny\nrule:     default:deny\nscopes:   (none)\n"),
        "{text}"
    );
    assert!(
        text.contains("principal: anonymous (no roles, no scopes)"),
        "{text}"
    );
}

#[test]
fn explain_with_invalid_flags_exits_2_naming_each_flag() {
    let dir = dir_with(&[("policy.yaml", &block("yaml policy"))]);
    let out = custody(
        dir.path(),
        &[
            "policy",
            "explain",
            "policy.yaml",
            "--principal",
            "{sub: a, roles: {x: 1}, team: b}",
            "--action",
            "{kind: smtp}",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(err.starts_with("custody: invalid explain input: "), "{err}");
    for needle in ["principal.roles:", "principal.team:", "action.kind:"] {
        assert!(err.contains(needle), "missing {needle:?} in\n{err}");
    }

    let out = custody(
        dir.path(),
        &["policy", "explain", "policy.yaml", "--action", "{tool: [x"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("  - action (line"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn explain_without_an_action_is_a_usage_error() {
    let dir = dir_with(&[("policy.yaml", WARNS)]);
    let out = custody(dir.path(), &["policy", "explain", "policy.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--action"));
}

#[test]
fn explain_with_an_invalid_policy_exits_2() {
    let dir = dir_with(&[("policy.yaml", BROKEN)]);
    let out = custody(
        dir.path(),
        &["policy", "explain", "policy.yaml", "--action", "{tool: x}"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("invalid policy: 4 problems"));
}
