//! Reading and checking the webhook config.

use super::*;

#[test]
fn defaults_need_only_an_image() {
    let err = RawConfig::default().validate().expect_err("no image");
    assert!(err.to_string().contains("image: required"), "{err}");
    let cfg = RawConfig::from_yaml("image: registry.example/custody:1\n")
        .and_then(RawConfig::validate)
        .expect("valid");
    assert_eq!(cfg.image(), "registry.example/custody:1");
    assert!(cfg.native_sidecar());
    assert_eq!(cfg.mode(), Mode::Reverse);
}

#[test]
fn unknown_keys_are_errors() {
    let err = RawConfig::from_yaml("image: x\nimgae: y\n").expect_err("typo");
    assert!(err.to_string().contains("imgae"), "{err}");
}

#[test]
fn every_problem_is_reported() {
    let yaml = "image: 'a b'\nnamespace: Custody\nconfig_configmap: Bad_Name\n\
                spool_size_limit: lots\nrun_as_user: 0\nadmin_port: 15080\n\
                resources: {requests: {memory: 1Gi}, limits: {memory: 256Mi}}\n\
                env: {reverse: {'1BAD': x}}\n";
    let err = RawConfig::from_yaml(yaml)
        .and_then(RawConfig::validate)
        .expect_err("invalid");
    let text = err.to_string();
    for key in [
        "image:",
        "namespace:",
        "config_configmap:",
        "spool_size_limit:",
        "run_as_user:",
        "admin_port:",
        "resources.requests.memory: 1Gi is more than the limit 256Mi",
        "env.reverse.1BAD",
    ] {
        assert!(text.contains(key), "{key} missing from {text}");
    }
    assert!(text.contains("8 problem(s)"), "{text}");
}

#[test]
fn null_turns_optional_mounts_off() {
    let cfg = RawConfig::from_yaml(
        "image: x\npolicy_configmap: null\nprovider_keys_secret: null\ndigest_key_secret: null\n",
    )
    .and_then(RawConfig::validate)
    .expect("valid");
    assert!(cfg.raw().policy_configmap.is_none());
    assert!(cfg.raw().digest_key_secret.is_none());
}
