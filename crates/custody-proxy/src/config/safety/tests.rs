use super::*;
use custody_safety::{Action, Kind};

fn config(yaml: &str) -> SafetyConfig {
    serde_yaml_ng::from_str::<RawSafety>(yaml)
        .expect("yaml")
        .into()
}

#[test]
fn precedence_tool_route_global_default() {
    let policy = config(
        r#"
detectors: {EMAIL: redact, IP_ADDRESS: off, "*": log}
routes: {crm: {detectors: {EMAIL: log, "*": block}}}
tools: {"crm:search": {detectors: {EMAIL: block}}}
custom: [{name: MRN, regex: 'MRN-\d{7}'}]
"#,
    )
    .validate()
    .expect("valid");
    assert_eq!(
        policy.action(None, None, &Kind::Email),
        Some(Action::Redact)
    );
    assert_eq!(
        policy.action(Some("crm"), None, &Kind::Email),
        Some(Action::Log)
    );
    assert_eq!(
        policy.action(Some("crm"), None, &Kind::Card),
        Some(Action::Block)
    );
    assert_eq!(
        policy.action(Some("crm"), Some("crm:search"), &Kind::Email),
        Some(Action::Block)
    );
    assert_eq!(policy.action(None, None, &Kind::IpAddress), None);
    assert!(!policy.detectors().is_enabled(&Kind::IpAddress));
    assert!(policy.detectors().is_enabled(&Kind::Custom("MRN".into())));
    assert!(policy.enforcing(None, None));
    assert!(!SafetyPolicy::default().enforcing(Some("x"), None));
}

#[test]
fn every_problem_is_reported() {
    let problems = config(
        r#"
detectors: {EMALI: redact}
routes: {crm: {detectors: {NOPE: log}}}
redaction: {style: token}
"#,
    )
    .validate()
    .expect_err("invalid");
    let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "safety.detectors.EMALI",
            "safety.routes.crm.detectors.NOPE",
            "safety.redaction.key_file"
        ]
    );
    assert!(serde_yaml_ng::from_str::<RawSafety>("bogus: 1").is_err());
}

#[test]
fn response_mode_follows_tool_route_global_precedence() {
    let policy = config(
        r#"
responses: redact
routes: {crm: {responses: log}, ehr: {detectors: {EMAIL: redact}}}
tools: {"crm:notes": {responses: redact}}
"#,
    )
    .validate()
    .expect("valid");
    assert!(policy.redacts_responses(None, None));
    assert!(policy.redacts_responses(Some("ehr"), None));
    assert!(!policy.redacts_responses(Some("crm"), None));
    assert!(policy.redacts_responses(Some("crm"), Some("crm:notes")));
    assert!(!SafetyPolicy::default().redacts_responses(Some("crm"), None));
    let err = serde_yaml_ng::from_str::<RawSafety>("responses: block\n").expect_err("unknown mode");
    assert!(err.to_string().contains("unknown variant"), "{err}");
}
