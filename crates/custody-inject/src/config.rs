//! The webhook's settings: [`RawConfig`] as read (YAML, every key optional but
//! `image`), checked by [`RawConfig::validate`] into an [`InjectConfig`], reporting
//! every problem at once.

use crate::names::{check_env, check_key, check_label, check_subdomain};
use crate::quantity;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How applications reach custody, chosen per cluster ([`RawConfig::mode`]) and per
/// pod (`custody.dev/mode`): which environment the app containers get.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// SDK base URLs point at custody's routes (`OPENAI_BASE_URL`, ...).
    #[default]
    Reverse,
    /// `HTTPS_PROXY` points at custody, which terminates TLS with a pod-local CA
    /// whose bundle the app trusts (`SSL_CERT_FILE`, ...).
    Intercept,
}

impl Mode {
    /// `reverse` or `intercept`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Reverse => "reverse",
            Mode::Intercept => "intercept",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Mode> {
        match text {
            "reverse" => Some(Mode::Reverse),
            "intercept" => Some(Mode::Intercept),
            _ => None,
        }
    }
}

/// What to do with a pod that shares the node's network (`hostNetwork: true`),
/// where custody's loopback ports are the node's and collide between such pods.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HostNetwork {
    /// Admit it unchanged, with a warning (default).
    #[default]
    Skip,
    /// Refuse it.
    Deny,
    /// Inject anyway, with a warning.
    Inject,
}

/// The sidecar's `imagePullPolicy`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum PullPolicy {
    /// `IfNotPresent` (default).
    #[default]
    IfNotPresent,
    /// `Always`.
    Always,
    /// `Never`.
    Never,
}

impl PullPolicy {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Always => "Always",
            PullPolicy::Never => "Never",
        }
    }
}

/// CPU, memory and ephemeral-storage quantities (`null` = not set).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Quantities {
    /// CPU, e.g. `50m`.
    pub cpu: Option<String>,
    /// Memory, e.g. `64Mi`.
    pub memory: Option<String>,
    /// Local ephemeral storage (`ephemeral-storage`), e.g. `2Gi`: what the kubelet
    /// counts the `emptyDir` spool against.
    #[serde(rename = "ephemeral-storage", skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<String>,
}

/// The sidecar's resources.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Resources {
    /// Default `{cpu: 50m, memory: 64Mi}`.
    pub requests: Quantities,
    /// Default `{cpu: null, memory: 256Mi}`.
    pub limits: Quantities,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            requests: Quantities {
                cpu: Some("50m".into()),
                memory: Some("64Mi".into()),
                ephemeral_storage: None,
            },
            limits: Quantities {
                cpu: None,
                memory: Some("256Mi".into()),
                ephemeral_storage: None,
            },
        }
    }
}

/// Environment given to every app container, per mode (name → value). An app
/// container that already sets a name keeps its own value.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AppEnv {
    /// In every mode. Default `CUSTODY_SOCKET=/run/custody/custody.sock`.
    pub common: BTreeMap<String, String>,
    /// Mode `reverse`. Default `OPENAI_BASE_URL`, `ANTHROPIC_BASE_URL` on loopback.
    pub reverse: BTreeMap<String, String>,
    /// Mode `intercept`. Default `HTTPS_PROXY`/`https_proxy`, `NO_PROXY`/`no_proxy`,
    /// `SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE`, `NODE_EXTRA_CA_CERTS`.
    pub intercept: BTreeMap<String, String>,
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Default for AppEnv {
    fn default() -> Self {
        let bundle = "/run/custody/ca/bundle.pem";
        let no_proxy = "localhost,127.0.0.1,::1,.svc,.cluster.local";
        AppEnv {
            common: map(&[("CUSTODY_SOCKET", "/run/custody/custody.sock")]),
            reverse: map(&[
                ("OPENAI_BASE_URL", "http://127.0.0.1:15080/openai/v1"),
                ("ANTHROPIC_BASE_URL", "http://127.0.0.1:15080/anthropic"),
            ]),
            intercept: map(&[
                ("HTTPS_PROXY", "http://127.0.0.1:15080"),
                ("https_proxy", "http://127.0.0.1:15080"),
                ("NO_PROXY", no_proxy),
                ("no_proxy", no_proxy),
                ("SSL_CERT_FILE", bundle),
                ("REQUESTS_CA_BUNDLE", bundle),
                ("NODE_EXTRA_CA_CERTS", bundle),
            ]),
        }
    }
}

/// Upper bounds on the resources pod annotations may ask for (`null` = unbounded).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MaxResources {
    /// Bounds on `custody.dev/cpu-request` and `custody.dev/memory-request`.
    pub requests: Quantities,
    /// Bounds on `custody.dev/cpu-limit` and `custody.dev/memory-limit`.
    pub limits: Quantities,
}

/// What the injector does about the pod's `terminationGracePeriodSeconds`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GraceAction {
    /// Raise the pod's grace period so custody keeps `sidecar_seconds` (default).
    #[default]
    Raise,
    /// Leave it; warn when it leaves custody less than `sidecar_seconds`.
    Warn,
}

/// The sidecar's shutdown needs (docs/injection.md has the arithmetic).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TerminationGrace {
    /// What custody needs after the app containers exit (default 30).
    pub sidecar_seconds: u32,
    /// `raise` (default) or `warn`.
    pub action: GraceAction,
}

impl Default for TerminationGrace {
    fn default() -> Self {
        TerminationGrace {
            sidecar_seconds: 30,
            action: GraceAction::Raise,
        }
    }
}

/// The kind of the sidecar's data volume.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum SpoolKind {
    /// `emptyDir` with `sizeLimit: spool_size_limit` (default): on the node's disk,
    /// gone with the pod.
    #[default]
    #[serde(rename = "emptyDir")]
    EmptyDir,
    /// A generic ephemeral volume: a PersistentVolumeClaim (`ReadWriteOnce`,
    /// `storage: spool_size_limit`) made for the pod and deleted with it.
    #[serde(rename = "ephemeral")]
    Ephemeral,
}

/// The sidecar's data volume (`/var/lib/custody`: spool and audit files).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolVolume {
    /// `emptyDir` (default) or `ephemeral`.
    pub kind: SpoolKind,
    /// Kind `ephemeral`: the claim's StorageClass; `null` = the cluster's default.
    pub storage_class: Option<String>,
}

/// The webhook's settings as read from YAML or JSON; every key but `image` has a
/// default (see docs/injection.md for the whole file).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// The sidecar image (required).
    pub image: Option<String>,
    /// `IfNotPresent`, `Always` or `Never`.
    pub image_pull_policy: PullPolicy,
    /// The sidecar's `command` (default: the image's entrypoint, which must be `custody`).
    pub command: Option<Vec<String>>,
    /// The webhook's own namespace, never injected.
    pub namespace: Option<String>,
    /// More namespaces never injected (default `kube-system`, `kube-public`, `kube-node-lease`).
    pub exclude_namespaces: Vec<String>,
    /// Namespaces whose pods cannot opt out: `custody.dev/inject: "false"` is
    /// ignored there (with a warning).
    pub mandatory_namespaces: Vec<String>,
    /// The `custody.dev/` annotations a pod may set (`custody.dev/inject` always
    /// may); `null` (default): every one custody knows.
    pub allowed_annotations: Option<Vec<String>>,
    /// Upper bounds on the resources the annotations ask for (`null`: unbounded).
    pub max_resources: MaxResources,
    /// Upper bound on `custody.dev/spool-size-limit` (`null`: unbounded).
    pub max_spool_size_limit: Option<String>,
    /// Added to the pod's `spec.imagePullSecrets` (a name already there is kept once).
    pub image_pull_secrets: Vec<String>,
    /// The cluster's Kubernetes version (`"1.28"`, `"v1.30.2"`), as the chart saw
    /// it; `null`: unknown.
    #[serde(deserialize_with = "kube_version")]
    pub kube_version: Option<String>,
    /// The sidecar's shutdown needs against the pod's grace period.
    pub termination_grace: TerminationGrace,
    /// The sidecar's data volume.
    pub spool_volume: SpoolVolume,
    /// Opaque, folded into the sidecar hash (the chart passes a digest of
    /// custody's config and policy), so a change there makes injected pods stale.
    pub config_hash: Option<String>,
    /// `true` (default): an init container with `restartPolicy: Always` (Kubernetes
    /// ≥ 1.29); `false`: a regular container, for older clusters.
    pub native_sidecar: bool,
    /// Pods with `hostNetwork: true`.
    pub host_network: HostNetwork,
    /// The default mode.
    pub mode: Mode,
    /// The ConfigMap holding custody's config file (required at pod start).
    pub config_configmap: String,
    /// The key of the config file in that ConfigMap.
    pub config_key: String,
    /// The ConfigMap with the policy, mounted at `/etc/custody/policy` (optional at
    /// pod start); `null` mounts none.
    pub policy_configmap: Option<String>,
    /// The Secret with provider API keys, mounted at `/etc/custody/keys`; `null`: none.
    pub provider_keys_secret: Option<String>,
    /// The Secret with the audit digest signing key, mounted at `/etc/custody/digest`; `null`: none.
    pub digest_key_secret: Option<String>,
    /// `sizeLimit` of the sidecar's data volume (`/var/lib/custody`: spool, audit files).
    pub spool_size_limit: String,
    /// `sizeLimit` of the shared volume (`/run/custody`: socket, CA bundle).
    pub run_size_limit: String,
    /// The sidecar's resources.
    pub resources: Resources,
    /// The sidecar's user id (non-zero); `null` leaves `runAsUser` out (OpenShift
    /// assigns one).
    pub run_as_user: Option<i64>,
    /// The sidecar's group id (non-zero); `null` leaves `runAsGroup` out.
    pub run_as_group: Option<i64>,
    /// Custody's loopback proxy port (as in its config's `listen.tcp`).
    pub proxy_port: u16,
    /// Custody's admin port (as in its config's `listen.admin`, which binds `0.0.0.0`).
    pub admin_port: u16,
    /// Environment given to the app containers.
    pub env: AppEnv,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            image: None,
            image_pull_policy: PullPolicy::default(),
            command: None,
            namespace: None,
            exclude_namespaces: ["kube-system", "kube-public", "kube-node-lease"]
                .map(String::from)
                .to_vec(),
            mandatory_namespaces: Vec::new(),
            allowed_annotations: None,
            max_resources: MaxResources::default(),
            max_spool_size_limit: None,
            image_pull_secrets: Vec::new(),
            kube_version: None,
            termination_grace: TerminationGrace::default(),
            spool_volume: SpoolVolume::default(),
            config_hash: None,
            native_sidecar: true,
            host_network: HostNetwork::default(),
            mode: Mode::default(),
            config_configmap: "custody-config".into(),
            config_key: "custody.yaml".into(),
            policy_configmap: Some("custody-policy".into()),
            provider_keys_secret: Some("custody-provider-keys".into()),
            digest_key_secret: Some("custody-digest-key".into()),
            spool_size_limit: "1Gi".into(),
            run_size_limit: "16Mi".into(),
            resources: Resources::default(),
            run_as_user: Some(65532),
            run_as_group: Some(65532),
            proxy_port: 15080,
            admin_port: 15090,
            env: AppEnv::default(),
        }
    }
}

/// An invalid webhook config: every problem, each with its key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML/JSON of the expected shape (unknown key, wrong type).
    #[error("cannot read the webhook config: {0}")]
    Parse(String),
    /// Read, but some values are invalid.
    #[error("invalid webhook config: {} problem(s)\n  {}", .0.len(), .0.join("\n  "))]
    Invalid(Vec<String>),
}

/// A checked webhook config: built only by [`RawConfig::validate`].
#[derive(Clone, Debug)]
pub struct InjectConfig {
    pub(crate) raw: RawConfig,
    pub(crate) image: String,
    pub(crate) hash: String,
}

impl RawConfig {
    /// Reads YAML (or JSON, which is YAML); unknown keys are errors.
    pub fn from_yaml(text: &str) -> Result<RawConfig, ConfigError> {
        if text.trim().is_empty() {
            return Ok(RawConfig::default());
        }
        serde_yaml_ng::from_str(text).map_err(|e| {
            // A repeated key is reported where it stands, not where its mapping starts.
            let e = custody_core::check_unique_keys(serde_yaml_ng::Deserializer::from_str(text))
                .err()
                .unwrap_or(e);
            ConfigError::Parse(e.to_string())
        })
    }

    /// Checks every value; reports all problems at once.
    pub fn validate(self) -> Result<InjectConfig, ConfigError> {
        let mut problems = Vec::new();
        let mut check = |key: &str, r: Result<(), String>| {
            if let Err(e) = r {
                problems.push(format!("{key}: {e}"));
            }
        };
        let image = self.image.clone().unwrap_or_default();
        check(
            "image",
            if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err("required: the sidecar image, e.g. registry.example/custody:0.1.0".into())
            } else {
                Ok(())
            },
        );
        if let Some(cmd) = &self.command {
            check(
                "command",
                if cmd.is_empty() {
                    Err("must not be empty (leave it out to use the image's entrypoint)".into())
                } else {
                    Ok(())
                },
            );
        }
        if let Some(ns) = &self.namespace {
            check("namespace", check_label(ns));
        }
        for (i, ns) in self.exclude_namespaces.iter().enumerate() {
            check(&format!("exclude_namespaces[{i}]"), check_label(ns));
        }
        check("config_configmap", check_subdomain(&self.config_configmap));
        check("config_key", check_key(&self.config_key));
        for (key, name) in [
            ("policy_configmap", &self.policy_configmap),
            ("provider_keys_secret", &self.provider_keys_secret),
            ("digest_key_secret", &self.digest_key_secret),
        ] {
            if let Some(name) = name {
                check(key, check_subdomain(name));
            }
        }
        check(
            "spool_size_limit",
            quantity::positive(&self.spool_size_limit).map(drop),
        );
        check(
            "run_size_limit",
            quantity::positive(&self.run_size_limit).map(drop),
        );
        for problem in check_resources(&self.resources, "resources") {
            problems.push(problem);
        }
        let mut check = |key: &str, r: Result<(), String>| {
            if let Err(e) = r {
                problems.push(format!("{key}: {e}"));
            }
        };
        for (key, id) in [
            ("run_as_user", self.run_as_user),
            ("run_as_group", self.run_as_group),
        ] {
            let Some(id) = id else { continue };
            check(
                key,
                if (1..=i64::from(i32::MAX)).contains(&id) {
                    Ok(())
                } else {
                    Err(format!(
                        "{id} must be 1..2147483647 (never root; null leaves it to the platform)"
                    ))
                },
            );
        }
        check(
            "admin_port",
            if self.admin_port == 0 || self.admin_port == self.proxy_port {
                Err("must be non-zero and differ from proxy_port".into())
            } else {
                Ok(())
            },
        );
        check(
            "proxy_port",
            if self.proxy_port == 0 {
                Err("must be non-zero".into())
            } else {
                Ok(())
            },
        );
        for (part, env) in [
            ("common", &self.env.common),
            ("reverse", &self.env.reverse),
            ("intercept", &self.env.intercept),
        ] {
            for name in env.keys() {
                check(&format!("env.{part}.{name}"), check_env(name));
            }
        }
        problems.extend(self.check_issue20());
        if problems.is_empty() {
            let hash = crate::hash::compute(&self, &image);
            Ok(InjectConfig {
                raw: self,
                image,
                hash,
            })
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

impl RawConfig {
    /// The admission policy and pod-level keys: mandatory namespaces, the
    /// annotation allow-list and bounds, pull secrets, the Kubernetes version, the
    /// termination grace, the spool volume and the config hash.
    fn check_issue20(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |key: &str, r: Result<(), String>| {
            if let Err(e) = r {
                problems.push(format!("{key}: {e}"));
            }
        };
        for (i, ns) in self.mandatory_namespaces.iter().enumerate() {
            let key = format!("mandatory_namespaces[{i}]");
            check(&key, check_label(ns));
            if self.namespace.as_deref() == Some(ns.as_str()) {
                check(
                    &key,
                    Err(format!(
                        "{ns:?} is the webhook's own namespace, never injected"
                    )),
                );
            }
            if self.exclude_namespaces.contains(ns) {
                check(
                    &key,
                    Err(format!("{ns:?} is also in exclude_namespaces: choose one")),
                );
            }
        }
        for (i, key) in self.allowed_annotations.iter().flatten().enumerate() {
            check(
                &format!("allowed_annotations[{i}]"),
                if crate::annotations::SETTABLE.contains(&key.as_str()) {
                    Ok(())
                } else {
                    Err(format!(
                        "{:?} is not an annotation a pod can set (known: {})",
                        crate::names::shown(key),
                        crate::annotations::SETTABLE.join(", ")
                    ))
                },
            );
        }
        // Bounds: valid quantities, and the webhook's own defaults within them.
        let bounded = [
            (
                "requests",
                &self.max_resources.requests,
                &self.resources.requests,
            ),
            ("limits", &self.max_resources.limits, &self.resources.limits),
        ];
        for (kind, max, default) in bounded {
            if max.ephemeral_storage.is_some() {
                check(
                    &format!("max_resources.{kind}.ephemeral-storage"),
                    Err("no annotation sets it: bound cpu and memory only".into()),
                );
            }
            for (what, bound, value) in [
                ("cpu", &max.cpu, &default.cpu),
                ("memory", &max.memory, &default.memory),
            ] {
                let Some(bound) = bound else { continue };
                let key = format!("max_resources.{kind}.{what}");
                match quantity::positive(bound) {
                    Err(e) => check(&key, Err(e)),
                    Ok(b) => {
                        if let Some(v) = value
                            && quantity::parse(v).is_ok_and(|v| v > b)
                        {
                            check(
                                &format!("resources.{kind}.{what}"),
                                Err(format!("the default {v} is above {key} {bound}")),
                            );
                        }
                    }
                }
            }
        }
        if let Some(bound) = &self.max_spool_size_limit {
            match quantity::positive(bound) {
                Err(e) => check("max_spool_size_limit", Err(e)),
                Ok(b) => {
                    if quantity::parse(&self.spool_size_limit).is_ok_and(|v| v > b) {
                        check(
                            "spool_size_limit",
                            Err(format!(
                                "the default {} is above max_spool_size_limit {bound}",
                                self.spool_size_limit
                            )),
                        );
                    }
                }
            }
        }
        for (i, name) in self.image_pull_secrets.iter().enumerate() {
            check(&format!("image_pull_secrets[{i}]"), check_subdomain(name));
        }
        if let Some(v) = &self.kube_version {
            match kube_minor(v) {
                Err(e) => check("kube_version", Err(e)),
                Ok((major, minor)) => {
                    if self.native_sidecar && (major, minor) < (1, 29) {
                        check(
                            "native_sidecar",
                            Err(format!(
                                "true needs Kubernetes 1.29 or later, but kube_version is {:?}: set native_sidecar: false for this cluster",
                                crate::names::shown(v)
                            )),
                        );
                    }
                }
            }
        }
        if self.termination_grace.sidecar_seconds > MAX_SIDECAR_SECONDS {
            check(
                "termination_grace.sidecar_seconds",
                Err(format!(
                    "{} is more than {MAX_SIDECAR_SECONDS} (one hour)",
                    self.termination_grace.sidecar_seconds
                )),
            );
        }
        if let Some(class) = &self.spool_volume.storage_class {
            check("spool_volume.storage_class", check_subdomain(class));
            if self.spool_volume.kind == SpoolKind::EmptyDir {
                check(
                    "spool_volume.storage_class",
                    Err("only for kind: ephemeral (an emptyDir has no StorageClass)".into()),
                );
            }
        }
        if let Some(hash) = &self.config_hash {
            check(
                "config_hash",
                if hash.is_empty()
                    || hash.len() > 256
                    || hash.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    Err("1 to 256 printable characters without spaces (e.g. a sha256 in hex), or null".into())
                } else {
                    Ok(())
                },
            );
        }
        problems
    }
}

/// The largest `termination_grace.sidecar_seconds`.
const MAX_SIDECAR_SECONDS: u32 = 3600;

/// `kube_version` as a string: a YAML number would turn `1.30` into `1.3`.
fn kube_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<serde_yaml_ng::Value>::deserialize(d)? {
        None | Some(serde_yaml_ng::Value::Null) => Ok(None),
        Some(serde_yaml_ng::Value::String(s)) => Ok(Some(s)),
        Some(serde_yaml_ng::Value::Number(n)) => Err(serde::de::Error::custom(format!(
            "kube_version: write the version as a string, e.g. \"1.30\" (the YAML number {n} loses a trailing zero)"
        ))),
        Some(_) => Err(serde::de::Error::custom(
            "kube_version: expected a string such as \"1.30\" or \"v1.30.2\", or null",
        )),
    }
}

/// Major and minor of a Kubernetes version as `.Capabilities.KubeVersion` shows
/// it: `1.28`, `v1.30.2`, `v1.29.4-eks-036c24b`, `1.28+` (GKE's minor).
pub(crate) fn kube_minor(text: &str) -> Result<(u32, u32), String> {
    let bad = || {
        format!(
            "{:?} is not a Kubernetes version (e.g. \"1.30\" or \"v1.30.2\")",
            crate::names::shown(text)
        )
    };
    let rest = text.strip_prefix('v').unwrap_or(text);
    let mut parts = rest.splitn(3, '.');
    let major = parts.next().ok_or_else(bad)?;
    let minor = parts.next().ok_or_else(bad)?;
    let digits = |s: &str| -> Option<u32> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (d, tail) = s.split_at(end);
        let tail_ok = tail.is_empty() || tail == "+" || tail.starts_with(['-', '+']);
        if d.is_empty() || d.len() > 4 || !tail_ok {
            None
        } else {
            d.parse().ok()
        }
    };
    let major = major
        .parse::<u32>()
        .ok()
        .filter(|m| *m > 0)
        .ok_or_else(bad)?;
    let minor = digits(minor).ok_or_else(bad)?;
    Ok((major, minor))
}

/// Each quantity parses, and a request is not above its limit.
pub(crate) fn check_resources(r: &Resources, path: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (what, req, lim) in [
        ("cpu", &r.requests.cpu, &r.limits.cpu),
        ("memory", &r.requests.memory, &r.limits.memory),
        (
            "ephemeral-storage",
            &r.requests.ephemeral_storage,
            &r.limits.ephemeral_storage,
        ),
    ] {
        let parsed = |kind: &str, v: &Option<String>, problems: &mut Vec<String>| {
            v.as_deref().and_then(|v| match quantity::positive(v) {
                Ok(q) => Some(q),
                Err(e) => {
                    problems.push(format!("{path}.{kind}.{what}: {e}"));
                    None
                }
            })
        };
        let req_v = parsed("requests", req, &mut problems);
        let lim_v = parsed("limits", lim, &mut problems);
        if let (Some(rq), Some(lm), Some(rt), Some(lt)) = (req_v, lim_v, req, lim)
            && rq > lm
        {
            problems.push(format!(
                "{path}.requests.{what}: {rt} is more than the limit {lt}"
            ));
        }
    }
    problems
}

impl InjectConfig {
    /// The sidecar image.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The webhook's own namespace, when known.
    pub fn namespace(&self) -> Option<&str> {
        self.raw.namespace.as_deref()
    }

    /// Namespaces never injected besides the webhook's own.
    pub fn exclude_namespaces(&self) -> &[String] {
        &self.raw.exclude_namespaces
    }

    /// Native sidecar (init container with `restartPolicy: Always`) or regular container.
    pub fn native_sidecar(&self) -> bool {
        self.raw.native_sidecar
    }

    /// The default mode.
    pub fn mode(&self) -> Mode {
        self.raw.mode
    }

    /// The settings as read (defaults filled in).
    pub fn raw(&self) -> &RawConfig {
        &self.raw
    }
}

#[cfg(test)]
mod tests;
