//! What injection adds: the custody container, its volumes, and the mount and
//! environment every app container gets. Names and paths are fixed (the config
//! file in the ConfigMap refers to them); see docs/injection.md.

use crate::annotations::Plan;
use crate::config::{InjectConfig, Mode, Quantities, SpoolKind};
use serde_json::{Map, Value, json};

/// The sidecar's container name.
pub const CONTAINER: &str = "custody";
/// The shared volume (socket, CA bundle), in the sidecar and every app container.
pub(crate) const VOLUME_RUN: &str = "custody-run";
/// The sidecar's data volume (spool, audit files before shipping).
pub(crate) const VOLUME_DATA: &str = "custody-spool";
/// The config ConfigMap's volume.
pub(crate) const VOLUME_CONFIG: &str = "custody-config";
/// The policy ConfigMap's volume.
pub(crate) const VOLUME_POLICY: &str = "custody-policy";
/// The provider keys Secret's volume.
pub(crate) const VOLUME_KEYS: &str = "custody-provider-keys";
/// The digest key Secret's volume.
pub(crate) const VOLUME_DIGEST: &str = "custody-digest-key";
/// Every volume name injection may add.
pub const VOLUMES: [&str; 6] = [
    VOLUME_RUN,
    VOLUME_DATA,
    VOLUME_CONFIG,
    VOLUME_POLICY,
    VOLUME_KEYS,
    VOLUME_DIGEST,
];

/// Where the shared volume is mounted (`custody.sock`, `ca/bundle.pem`).
pub const RUN_DIR: &str = "/run/custody";
/// Where the data volume is mounted (`spool/`, `audit/`).
pub const DATA_DIR: &str = "/var/lib/custody";
/// Where the config ConfigMap is mounted.
pub const CONFIG_DIR: &str = "/etc/custody/config";
/// Where the policy ConfigMap is mounted.
pub const POLICY_DIR: &str = "/etc/custody/policy";
/// Where the provider keys Secret is mounted.
pub const KEYS_DIR: &str = "/etc/custody/keys";
/// Where the digest key Secret is mounted.
pub const DIGEST_DIR: &str = "/etc/custody/digest";

fn quantities(q: &Quantities) -> Value {
    let mut m = Map::new();
    if let Some(cpu) = &q.cpu {
        m.insert("cpu".into(), json!(cpu));
    }
    if let Some(memory) = &q.memory {
        m.insert("memory".into(), json!(memory));
    }
    if let Some(storage) = &q.ephemeral_storage {
        m.insert("ephemeral-storage".into(), json!(storage));
    }
    Value::Object(m)
}

fn field_ref(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}})
}

fn probe(path: &str, port: u16, period: u32, failures: u32) -> Value {
    json!({
        "httpGet": {"path": path, "port": port, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    })
}

/// The custody container.
pub(crate) fn container(cfg: &InjectConfig, plan: &Plan) -> Value {
    let raw = cfg.raw();
    let mut mounts = vec![
        json!({"name": VOLUME_RUN, "mountPath": RUN_DIR}),
        json!({"name": VOLUME_DATA, "mountPath": DATA_DIR}),
        json!({"name": VOLUME_CONFIG, "mountPath": CONFIG_DIR, "readOnly": true}),
    ];
    for (present, name, dir) in [
        (plan.policy_configmap.is_some(), VOLUME_POLICY, POLICY_DIR),
        (raw.provider_keys_secret.is_some(), VOLUME_KEYS, KEYS_DIR),
        (raw.digest_key_secret.is_some(), VOLUME_DIGEST, DIGEST_DIR),
    ] {
        if present {
            mounts.push(json!({"name": name, "mountPath": dir, "readOnly": true}));
        }
    }
    let mut resources = Map::new();
    for (key, q) in [
        ("requests", &plan.resources.requests),
        ("limits", &plan.resources.limits),
    ] {
        let q = quantities(q);
        if q.as_object().is_some_and(|m| !m.is_empty()) {
            resources.insert(key.into(), q);
        }
    }
    let mut c = json!({
        "name": CONTAINER,
        "image": cfg.image(),
        "imagePullPolicy": raw.image_pull_policy.as_str(),
        "args": ["run", "--config", format!("{CONFIG_DIR}/{}", raw.config_key)],
        "env": [
            field_ref("POD_NAME", "metadata.name"),
            field_ref("POD_NAMESPACE", "metadata.namespace"),
            field_ref("POD_UID", "metadata.uid"),
            field_ref("NODE_NAME", "spec.nodeName"),
            {"name": "CUSTODY_LOG_FORMAT", "value": "json"},
        ],
        "ports": [{"name": "custody-admin", "containerPort": raw.admin_port, "protocol": "TCP"}],
        // Apps start once custody answers (native sidecars gate the containers after them).
        "startupProbe": probe("/healthz", raw.admin_port, 1, 60),
        "readinessProbe": probe("/readyz", raw.admin_port, 5, 3),
        "livenessProbe": probe("/healthz", raw.admin_port, 10, 3),
        "resources": Value::Object(resources),
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    });
    if let Some(obj) = c.as_object_mut() {
        if let Some(command) = &raw.command {
            obj.insert("command".into(), json!(command));
        }
        if cfg.native_sidecar() {
            obj.insert("restartPolicy".into(), json!("Always"));
        }
    }
    // `null` leaves the ids to the platform (OpenShift's restricted SCC assigns them).
    if let Some(sc) = c.get_mut("securityContext").and_then(Value::as_object_mut) {
        for (key, id) in [
            ("runAsUser", raw.run_as_user),
            ("runAsGroup", raw.run_as_group),
        ] {
            if let Some(id) = id {
                sc.insert(key.into(), json!(id));
            }
        }
    }
    c
}

/// The pod volumes injection adds.
pub(crate) fn volumes(cfg: &InjectConfig, plan: &Plan) -> Vec<Value> {
    let raw = cfg.raw();
    let mut v = vec![
        json!({"name": VOLUME_RUN, "emptyDir": {"sizeLimit": raw.run_size_limit}}),
        data_volume(cfg, &plan.spool_size_limit),
        json!({"name": VOLUME_CONFIG, "configMap": {"name": plan.config_configmap}}),
    ];
    if let Some(name) = &plan.policy_configmap {
        v.push(json!({"name": VOLUME_POLICY, "configMap": {"name": name, "optional": true}}));
    }
    if let Some(name) = &raw.provider_keys_secret {
        v.push(json!({"name": VOLUME_KEYS, "secret": {"secretName": name, "optional": true}}));
    }
    if let Some(name) = &raw.digest_key_secret {
        v.push(json!({"name": VOLUME_DIGEST, "secret": {"secretName": name, "optional": true}}));
    }
    v
}

/// The data volume: an `emptyDir` with a `sizeLimit`, or a generic ephemeral
/// volume whose claim requests that much storage.
fn data_volume(cfg: &InjectConfig, size: &str) -> Value {
    let spool = &cfg.raw().spool_volume;
    match spool.kind {
        SpoolKind::EmptyDir => json!({"name": VOLUME_DATA, "emptyDir": {"sizeLimit": size}}),
        SpoolKind::Ephemeral => {
            let mut spec = json!({
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}},
            });
            if let (Some(class), Some(obj)) = (&spool.storage_class, spec.as_object_mut()) {
                obj.insert("storageClassName".into(), json!(class));
            }
            json!({
                "name": VOLUME_DATA,
                "ephemeral": {"volumeClaimTemplate": {
                    "metadata": {"labels": {"app.kubernetes.io/component": "custody-spool"}},
                    "spec": spec,
                }},
            })
        }
    }
}

/// The shared volume's mount in an app container (read-only: apps connect to the
/// socket and read the CA bundle, they never write there).
pub(crate) fn app_mount() -> Value {
    json!({"name": VOLUME_RUN, "mountPath": RUN_DIR, "readOnly": true})
}

/// The environment of an app container in `mode` (name, value), common first.
pub(crate) fn app_env(cfg: &InjectConfig, mode: Mode) -> Vec<(&str, &str)> {
    let env = &cfg.raw().env;
    let per_mode = match mode {
        Mode::Reverse => &env.reverse,
        Mode::Intercept => &env.intercept,
    };
    env.common
        .iter()
        .filter(|(k, _)| !per_mode.contains_key(*k))
        .chain(per_mode)
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}
