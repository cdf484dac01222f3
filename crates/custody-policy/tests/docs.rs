//! The examples in `docs/policy.md` are real: every `yaml policy` block loads
//! without errors or warnings; every `yaml warns` block loads and its warnings are
//! exactly the following `text check` block; every `yaml cases` block passes
//! against the last `yaml policy` block before it, and the following `text test`
//! block is its report; the `sh explain` command's output is the `text explain`
//! block; a `yaml broken` block fails with exactly the following `text errors`
//! block. Other `yaml` blocks must at least parse.

use custody_policy::Policy;
use custody_policy::cases::{self, CaseInput, Parts};

const DOC: &str = include_str!("../../../docs/policy.md");

/// Fenced blocks: (info string, body).
fn blocks(doc: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in doc.split_inclusive('\n') {
        let trimmed = line.trim_end();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    open = Some((info.trim().to_owned(), String::new()));
                }
            }
            Some((info, body)) => {
                if trimmed == "```" {
                    out.push((std::mem::take(info), std::mem::take(body)));
                    open = None;
                } else {
                    body.push_str(line);
                }
            }
        }
    }
    assert!(open.is_none(), "unclosed block");
    out
}

/// The value of `--flag '...'` in a shell command.
fn flag<'a>(command: &'a str, name: &str) -> Option<&'a str> {
    let start = command.find(&format!("--{name} '"))? + name.len() + 4;
    let len = command[start..].find('\'')?;
    Some(&command[start..start + len])
}

#[test]
fn every_example_in_the_policy_doc_is_real() {
    let blocks = blocks(DOC);
    let mut policy: Option<Policy> = None;
    let mut main: Option<Policy> = None;
    let mut expected_next: Option<(&str, String)> = None;
    let (mut policies, mut cases_run, mut explained, mut checked, mut broken) = (0, 0, 0, 0, 0);
    for (info, body) in &blocks {
        if let Some((kind, want)) = expected_next.take() {
            assert_eq!(info, kind, "a `{kind}` block must follow");
            if body != &want {
                eprintln!("---- {kind}: the code produces ----\n{want}----");
            }
            assert_eq!(
                body, &want,
                "the `{kind}` block is not what the code produces"
            );
            continue;
        }
        match info.as_str() {
            "yaml policy" => {
                let loaded = Policy::from_yaml(body).unwrap_or_else(|e| panic!("{e}\n{body}"));
                assert!(loaded.warnings.is_empty(), "{:?}\n{body}", loaded.warnings);
                if main.is_none() {
                    main = Some(Policy::from_yaml(body).expect("valid").policy);
                }
                policy = Some(loaded.policy);
                policies += 1;
            }
            "yaml warns" => {
                let loaded = Policy::from_yaml(body).unwrap_or_else(|e| panic!("{e}"));
                assert!(!loaded.warnings.is_empty());
                let text: String = loaded.warnings.iter().map(|w| format!("{w}\n")).collect();
                expected_next = Some(("text check", text));
                checked += 1;
            }
            "yaml broken" => {
                let err = Policy::from_yaml(body).expect_err("the example is invalid");
                expected_next = Some(("text errors", format!("{err}\n")));
                broken += 1;
            }
            "yaml cases" => {
                let policy = main.as_ref().expect("a policy before the cases");
                let report = cases::run(policy, body).unwrap_or_else(|e| panic!("{e}"));
                assert!(report.is_success(), "{report}");
                expected_next = Some(("text test", report.to_string()));
                cases_run += 1;
            }
            "sh explain" => {
                let policy = main.as_ref().expect("a policy before explain");
                let input = CaseInput::from_parts(&Parts {
                    principal: flag(body, "principal"),
                    action: flag(body, "action").expect("--action"),
                    arguments: flag(body, "arguments"),
                    claims: flag(body, "claims"),
                    token_scopes: flag(body, "token-scopes"),
                })
                .unwrap_or_else(|e| panic!("{e}"));
                expected_next = Some(("text explain", policy.explain(&input.input()).to_string()));
                explained += 1;
            }
            "yaml" => {
                serde_yaml_ng::from_str::<serde_yaml_ng::Value>(body)
                    .unwrap_or_else(|e| panic!("{e}\n{body}"));
            }
            _ => {}
        }
    }
    assert!(expected_next.is_none(), "a block is missing at the end");
    // The failing-case illustration: case 3 expecting allow.
    let (_, cases_yaml) = blocks
        .iter()
        .find(|(i, _)| i == "yaml cases")
        .expect("cases");
    let (_, fail) = blocks.iter().find(|(i, _)| i == "text fail").expect("fail");
    let wrong = cases_yaml.replacen(
        r#"expect: {decision: deny, rule: "missing-scope:tool:crm:write", scopes: [tool:crm:write]}"#,
        r#"expect: {decision: allow, rule: "role:viewer grants tool:crm:write"}"#,
        1,
    );
    let report = cases::run(main.as_ref().expect("policy"), &wrong).expect("valid");
    let text = report.to_string();
    assert!(text.contains(fail.as_str()), "{text}");
    assert!(text.ends_with("PASS: 18/19\nFAIL: 1/19\n"), "{text}");
    assert_eq!((cases_run, explained, checked, broken), (1, 1, 1, 1));
    assert!(policies >= 4);
    let _ = policy;
}

#[test]
fn the_no_policy_rule_is_documented() {
    assert!(DOC.contains(custody_policy::NO_POLICY_RULE));
    assert!(DOC.contains(custody_policy::DEFAULT_DENY_RULE));
    assert!(DOC.contains(custody_policy::MISSING_SCOPE_PREFIX));
}
