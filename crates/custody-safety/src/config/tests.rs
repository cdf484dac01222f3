//! The typed configuration on its own (the proxy's tests read the same rules
//! from YAML).

use super::*;

fn settings(pairs: &[(&str, Setting)]) -> BTreeMap<String, Setting> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn rules(pairs: &[(&str, Setting)], responses: Option<ResponseMode>) -> Rules {
    Rules {
        detectors: settings(pairs),
        responses,
    }
}

#[test]
fn the_most_specific_setting_wins() {
    let config = SafetyConfig {
        detectors: settings(&[("EMAIL", Setting::Redact), ("*", Setting::Log)]),
        routes: [("crm".to_string(), rules(&[("*", Setting::Block)], None))].into(),
        tools: [(
            "crm:search".to_string(),
            rules(&[("EMAIL", Setting::Off)], Some(ResponseMode::Redact)),
        )]
        .into(),
        ..SafetyConfig::default()
    };
    let policy = config.validate().expect("valid");
    assert_eq!(
        policy.action(None, None, &Kind::Email),
        Some(Action::Redact)
    );
    assert_eq!(
        policy.action(Some("crm"), None, &Kind::Email),
        Some(Action::Block)
    );
    assert_eq!(
        policy.action(Some("crm"), Some("crm:search"), &Kind::Email),
        None
    );
    assert!(policy.redacts_responses(Some("crm"), Some("crm:search")));
    assert!(!policy.redacts_responses(Some("crm"), None));
    assert!(policy.enforcing_on_route("crm"));
}

#[test]
fn custom_detectors_and_token_style_are_checked() {
    let config = SafetyConfig {
        custom: vec![CustomDetector {
            name: "lower".into(),
            regex: Some("x".into()),
            ..CustomDetector::default()
        }],
        redaction: RedactionConfig {
            style: StyleName::Token,
            key_file: None,
        },
        ..SafetyConfig::default()
    };
    let problems = config.validate().expect_err("invalid");
    let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["safety.custom", "safety.redaction.key_file"]);
    assert!(
        problems[0].message.contains("upper-case"),
        "{}",
        problems[0]
    );
}
