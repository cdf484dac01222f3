//! The sidecar hash: what an injected pod carries in `custody.dev/sidecar-hash`,
//! so that pods injected under an older config or version can be found
//! (`custody inject --stale`).

use crate::config::{InjectConfig, RawConfig};
use serde_json::Value;

/// The keys of the config that decide who is injected (admission policy), not
/// what is injected: they do not make a running sidecar stale.
const POLICY_KEYS: [&str; 9] = [
    "namespace",
    "exclude_namespaces",
    "mandatory_namespaces",
    "allowed_annotations",
    "max_resources",
    "max_spool_size_limit",
    "host_network",
    "kube_version",
    "image",
];

/// 16 hex characters: the start of the SHA-256 of the canonical JSON (keys
/// sorted, no spaces) of the effective sidecar settings: the injector's version,
/// the image, and every key of the config that shapes the injected pod (pull
/// policy and secrets, command, mode, ConfigMaps and Secrets, volumes and their
/// sizes, resources, user and group, ports, environment, native sidecar,
/// termination grace, `config_hash`). Pod annotations are not part of it.
pub fn sidecar_hash(cfg: &InjectConfig) -> String {
    cfg.hash.clone()
}

/// [`sidecar_hash`], computed once when the config is checked.
pub(crate) fn compute(raw: &RawConfig, image: &str) -> String {
    let mut value = serde_json::to_value(raw).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        for key in POLICY_KEYS {
            map.remove(key);
        }
        map.insert("image".into(), Value::String(image.to_owned()));
        map.insert("version".into(), Value::String(crate::VERSION.to_owned()));
    }
    let canonical = canonical(&value);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// JSON with object keys sorted at every level, whatever the map type keeps.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let members: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(yaml: &str) -> String {
        sidecar_hash(
            &RawConfig::from_yaml(yaml)
                .and_then(RawConfig::validate)
                .expect("config"),
        )
    }

    #[test]
    fn what_shapes_the_sidecar_changes_the_hash_admission_policy_does_not() {
        let base = hash("image: r/custody:1\n");
        assert_eq!(base.len(), 16);
        assert!(
            base.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(base, hash("image: r/custody:1\n"), "deterministic");
        for changed in [
            "image: r/custody:2\n",
            "image: r/custody:1\nconfig_hash: abc\n",
            "image: r/custody:1\nresources: {limits: {memory: 1Gi}}\n",
            "image: r/custody:1\nmode: intercept\n",
            "image: r/custody:1\nrun_as_user: null\n",
            "image: r/custody:1\nimage_pull_secrets: [regcred]\n",
            "image: r/custody:1\nspool_volume: {kind: ephemeral}\n",
            "image: r/custody:1\nnative_sidecar: false\n",
            "image: r/custody:1\ntermination_grace: {sidecar_seconds: 60}\n",
        ] {
            assert_ne!(hash(changed), base, "{changed}");
        }
        for same in [
            "image: r/custody:1\nnamespace: custody-system\n",
            "image: r/custody:1\nmandatory_namespaces: [agents]\n",
            "image: r/custody:1\nhost_network: deny\n",
            "image: r/custody:1\nkube_version: \"1.31\"\n",
            "image: r/custody:1\nmax_spool_size_limit: 8Gi\n",
            "image: r/custody:1\nallowed_annotations: [custody.dev/mode]\n",
        ] {
            assert_eq!(hash(same), base, "{same}");
        }
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let v = serde_json::json!({"b": [{"z": 1, "a": null}], "a": "x"});
        assert_eq!(canonical(&v), r#"{"a":"x","b":[{"a":null,"z":1}]}"#);
    }
}
