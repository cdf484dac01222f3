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
fn a_duplicate_key_is_reported_where_it_stands() {
    let err =
        RawConfig::from_yaml("image: x\nresources:\n  requests: {cpu: 50m}\n  requests: {}\n")
            .expect_err("duplicate");
    assert!(
        err.to_string()
            .contains("resources: duplicate key `requests` at line 4 column 3"),
        "{err}"
    );
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

#[test]
fn the_production_keys_are_read() {
    let cfg = RawConfig::from_yaml(
        "image: x\nnamespace: custody-system\nmandatory_namespaces: [payments]\n\
         allowed_annotations: [custody.dev/mode]\n\
         max_resources: {requests: {cpu: '1'}, limits: {memory: 2Gi}}\n\
         max_spool_size_limit: 8Gi\nimage_pull_secrets: [regcred]\n\
         run_as_user: null\nrun_as_group: null\nkube_version: 'v1.29.4-eks-036c24b'\n\
         termination_grace: {sidecar_seconds: 45, action: warn}\n\
         spool_volume: {kind: ephemeral, storage_class: fast-ssd}\nconfig_hash: abc123\n\
         resources: {requests: {ephemeral-storage: 1Gi}, limits: {ephemeral-storage: 2Gi}}\n",
    )
    .and_then(RawConfig::validate)
    .expect("valid");
    let raw = cfg.raw();
    assert_eq!(raw.mandatory_namespaces, ["payments"]);
    assert_eq!(raw.run_as_user, None);
    assert_eq!(raw.termination_grace.action, GraceAction::Warn);
    assert_eq!(raw.spool_volume.kind, SpoolKind::Ephemeral);
    assert_eq!(
        raw.resources.limits.ephemeral_storage.as_deref(),
        Some("2Gi")
    );
    // The defaults: backward compatible.
    let raw = RawConfig::default();
    assert_eq!(raw.run_as_user, Some(65532));
    assert_eq!(raw.termination_grace, TerminationGrace::default());
    assert_eq!(raw.termination_grace.sidecar_seconds, 30);
    assert_eq!(raw.spool_volume.kind, SpoolKind::EmptyDir);
    assert!(raw.allowed_annotations.is_none());
}

#[test]
fn every_problem_with_the_production_keys_is_reported() {
    let yaml = "image: x\nnamespace: custody-system\n\
                mandatory_namespaces: [custody-system, kube-system, Bad]\n\
                allowed_annotations: [custody.dev/mode, custody.dev/injected, custody.dev/nope]\n\
                max_resources: {requests: {cpu: lots, ephemeral-storage: 1Gi}, limits: {memory: 128Mi}}\n\
                max_spool_size_limit: 512Mi\nimage_pull_secrets: [Bad_Name]\n\
                run_as_user: 0\nkube_version: '1.28'\n\
                termination_grace: {sidecar_seconds: 7200}\n\
                spool_volume: {storage_class: fast-ssd}\nconfig_hash: 'a b'\n\
                resources: {requests: {ephemeral-storage: 2Gi}, limits: {memory: 256Mi, ephemeral-storage: 1Gi}}\n";
    let err = RawConfig::from_yaml(yaml)
        .and_then(RawConfig::validate)
        .expect_err("invalid");
    let text = err.to_string();
    for key in [
        "mandatory_namespaces[0]: \"custody-system\" is the webhook's own namespace",
        "mandatory_namespaces[1]: \"kube-system\" is also in exclude_namespaces",
        "mandatory_namespaces[2]:",
        "allowed_annotations[1]: \"custody.dev/injected\" is not an annotation a pod can set",
        "allowed_annotations[2]:",
        "max_resources.requests.cpu:",
        "max_resources.requests.ephemeral-storage:",
        "resources.limits.memory: the default 256Mi is above max_resources.limits.memory 128Mi",
        "spool_size_limit: the default 1Gi is above max_spool_size_limit 512Mi",
        "image_pull_secrets[0]:",
        "run_as_user: 0 must be",
        "native_sidecar: true needs Kubernetes 1.29 or later, but kube_version is \"1.28\"",
        "termination_grace.sidecar_seconds: 7200",
        "spool_volume.storage_class: only for kind: ephemeral",
        "config_hash:",
        "resources.requests.ephemeral-storage: 2Gi is more than the limit 1Gi",
    ] {
        assert!(text.contains(key), "{key} missing from {text}");
    }
    assert!(text.contains("16 problem(s)"), "{text}");
}

#[test]
fn kube_versions_as_clusters_report_them() {
    for (text, want) in [
        ("1.28", (1, 28)),
        ("v1.30.2", (1, 30)),
        ("v1.29.4-eks-036c24b", (1, 29)),
        ("1.28+", (1, 28)),
        ("v1.31.1-gke.1146000", (1, 31)),
    ] {
        assert_eq!(kube_minor(text), Ok(want), "{text}");
    }
    for bad in ["", "1", "v", "one.two", "1.x", "0.9", "1.28beta"] {
        assert!(kube_minor(bad).is_err(), "{bad}");
    }
    // Legacy sidecars on an old cluster are fine; a YAML number is refused (1.30 would read as 1.3).
    assert!(
        RawConfig::from_yaml("image: x\nkube_version: '1.25'\nnative_sidecar: false\n")
            .and_then(RawConfig::validate)
            .is_ok()
    );
    let err = RawConfig::from_yaml("image: x\nkube_version: 1.30\n").expect_err("number");
    assert!(err.to_string().contains("as a string"), "{err}");
}

#[test]
fn the_docs_list_every_key_with_its_default() {
    let doc = include_str!("../../../../docs/injection.md");
    let block = doc
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("native_sidecar:"))
        .expect("the config block of docs/injection.md");
    let documented: serde_json::Value = serde_yaml_ng::from_str(block).expect("YAML");
    let defaults = serde_json::to_value(RawConfig::default()).expect("JSON");
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("map").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&documented), keys(&defaults));
    // Every default as documented, but the image (required, an example there).
    for (key, value) in defaults.as_object().expect("map") {
        if key != "image" {
            assert_eq!(&documented[key], value, "{key}");
        }
    }
}
