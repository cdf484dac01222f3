//! What injection reads from a Pod, taken from its JSON without a full Pod type:
//! only the fields the patch depends on, each checked for the shape the patch
//! assumes. A field the API server would never send in another shape (a
//! `containers` that is not an array, an `env` entry without a name) makes the pod
//! malformed, with the path of every such field.

use serde_json::{Map, Value};

/// A container (or init container) as far as injection is concerned.
#[derive(Debug)]
pub(crate) struct Container<'a> {
    pub(crate) name: &'a str,
    /// Names set in `env`; `None` when `env` is absent or `null`.
    pub(crate) env: Option<Vec<&'a str>>,
    /// `mountPath`s in `volumeMounts`; `None` when absent or `null`.
    pub(crate) mounts: Option<Vec<&'a str>>,
    /// `containerPort`s.
    pub(crate) ports: Vec<i64>,
}

/// A pod's metadata and spec, as far as injection is concerned.
#[derive(Debug)]
pub(crate) struct Pod<'a> {
    /// `metadata` is present (an object).
    pub(crate) has_metadata: bool,
    /// `metadata.annotations`, when present (string values only are read).
    pub(crate) annotations: Option<&'a Map<String, Value>>,
    pub(crate) host_network: bool,
    pub(crate) windows: bool,
    pub(crate) restart_policy: Option<&'a str>,
    /// `spec.terminationGracePeriodSeconds`, when set.
    pub(crate) grace_seconds: Option<i64>,
    /// Names in `spec.imagePullSecrets`; `None` when absent or `null`.
    pub(crate) pull_secrets: Option<Vec<&'a str>>,
    pub(crate) containers: Vec<Container<'a>>,
    /// `None` when `initContainers` is absent or `null`.
    pub(crate) init_containers: Option<Vec<Container<'a>>>,
    /// Volume names; `None` when `volumes` is absent or `null`.
    pub(crate) volumes: Option<Vec<&'a str>>,
}

/// `metadata` and `metadata.annotations` / `labels`, read before the rest of the
/// pod (they decide whether the pod is looked at at all).
#[derive(Debug, Default)]
pub(crate) struct Meta<'a> {
    pub(crate) name: Option<&'a str>,
    pub(crate) generate_name: Option<&'a str>,
    pub(crate) namespace: Option<&'a str>,
    pub(crate) annotations: Option<&'a Map<String, Value>>,
    pub(crate) labels: Option<&'a Map<String, Value>>,
}

fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

/// Reads the metadata; `Err` names each malformed field.
pub(crate) fn meta(object: &Value) -> Result<Meta<'_>, Vec<String>> {
    let mut problems = Vec::new();
    let Some(object) = object.as_object() else {
        return Err(vec!["object: not a JSON object".into()]);
    };
    let Some(metadata) = present(object.get("metadata")) else {
        return Ok(Meta::default());
    };
    let Some(metadata) = metadata.as_object() else {
        return Err(vec!["metadata: not an object".into()]);
    };
    let mut text = |key: &str| match present(metadata.get(key)) {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            problems.push(format!("metadata.{key}: not a string"));
            None
        }
    };
    let (name, generate_name, namespace) = (text("name"), text("generateName"), text("namespace"));
    let mut strings = |key: &str| match present(metadata.get(key)) {
        None => None,
        Some(Value::Object(map)) => {
            for (k, v) in map {
                if !v.is_string() {
                    problems.push(format!("metadata.{key}[{k:?}]: not a string"));
                }
            }
            Some(map)
        }
        Some(_) => {
            problems.push(format!("metadata.{key}: not an object"));
            None
        }
    };
    let annotations = strings("annotations");
    let labels = strings("labels");
    if problems.is_empty() {
        Ok(Meta {
            name,
            generate_name,
            namespace,
            annotations,
            labels,
        })
    } else {
        Err(problems)
    }
}

/// Reads the spec; `Err` names each malformed field.
pub(crate) fn pod<'a>(object: &'a Value, meta: &Meta<'a>) -> Result<Pod<'a>, Vec<String>> {
    let mut problems = Vec::new();
    let has_metadata = present(object.get("metadata")).is_some();
    let Some(spec) = present(object.get("spec")) else {
        return Err(vec!["spec: missing".into()]);
    };
    let Some(spec) = spec.as_object() else {
        return Err(vec!["spec: not an object".into()]);
    };
    let containers = match present(spec.get("containers")) {
        Some(Value::Array(items)) if !items.is_empty() => {
            read_containers(items, "spec.containers", &mut problems)
        }
        _ => {
            problems.push("spec.containers: must be a non-empty array".into());
            Vec::new()
        }
    };
    let init_containers = match present(spec.get("initContainers")) {
        None => None,
        Some(Value::Array(items)) => {
            Some(read_containers(items, "spec.initContainers", &mut problems))
        }
        Some(_) => {
            problems.push("spec.initContainers: not an array".into());
            None
        }
    };
    let volumes = match present(spec.get("volumes")) {
        None => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    let name = v.get("name").and_then(Value::as_str);
                    if name.is_none() {
                        problems.push(format!("spec.volumes[{i}].name: missing or not a string"));
                    }
                    name
                })
                .collect(),
        ),
        Some(_) => {
            problems.push("spec.volumes: not an array".into());
            None
        }
    };
    let flag = |key: &str, problems: &mut Vec<String>| match present(spec.get(key)) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            problems.push(format!("spec.{key}: not a boolean"));
            false
        }
    };
    let host_network = flag("hostNetwork", &mut problems);
    let windows = spec
        .get("os")
        .and_then(|os| os.get("name"))
        .and_then(Value::as_str)
        == Some("windows");
    let restart_policy = spec.get("restartPolicy").and_then(Value::as_str);
    let grace_seconds = match present(spec.get("terminationGracePeriodSeconds")) {
        None => None,
        Some(v) => match v.as_i64() {
            Some(n) if n >= 0 => Some(n),
            _ => {
                problems.push(
                    "spec.terminationGracePeriodSeconds: not a whole number of seconds".into(),
                );
                None
            }
        },
    };
    let pull_secrets = match present(spec.get("imagePullSecrets")) {
        None => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(|s| s.get("name").and_then(Value::as_str))
                .collect(),
        ),
        Some(_) => {
            problems.push("spec.imagePullSecrets: not an array".into());
            None
        }
    };
    if problems.is_empty() {
        Ok(Pod {
            has_metadata,
            annotations: meta.annotations,
            host_network,
            windows,
            restart_policy,
            grace_seconds,
            pull_secrets,
            containers,
            init_containers,
            volumes,
        })
    } else {
        Err(problems)
    }
}

fn read_containers<'a>(
    items: &'a [Value],
    path: &str,
    problems: &mut Vec<String>,
) -> Vec<Container<'a>> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let here = format!("{path}[{i}]");
        let Some(c) = item.as_object() else {
            problems.push(format!("{here}: not an object"));
            continue;
        };
        let Some(name) = c.get("name").and_then(Value::as_str) else {
            problems.push(format!("{here}.name: missing or not a string"));
            continue;
        };
        let env = named_list(c, "env", "name", &here, problems);
        let mounts = named_list(c, "volumeMounts", "mountPath", &here, problems);
        let ports = match present(c.get("ports")) {
            Some(Value::Array(ports)) => ports
                .iter()
                .filter_map(|p| p.get("containerPort").and_then(Value::as_i64))
                .collect(),
            None => Vec::new(),
            Some(_) => {
                problems.push(format!("{here}.ports: not an array"));
                Vec::new()
            }
        };
        out.push(Container {
            name,
            env,
            mounts,
            ports,
        });
    }
    out
}

/// The `key` strings of the objects in the array `c[field]`.
fn named_list<'a>(
    c: &'a Map<String, Value>,
    field: &str,
    key: &str,
    here: &str,
    problems: &mut Vec<String>,
) -> Option<Vec<&'a str>> {
    match present(c.get(field)) {
        None => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let v = item.get(key).and_then(Value::as_str);
                    if v.is_none() {
                        problems.push(format!(
                            "{here}.{field}[{i}].{key}: missing or not a string"
                        ));
                    }
                    v
                })
                .collect(),
        ),
        Some(_) => {
            problems.push(format!("{here}.{field}: not an array"));
            None
        }
    }
}

impl Pod<'_> {
    /// Every container and init container.
    pub(crate) fn all_containers(&self) -> impl Iterator<Item = &Container<'_>> {
        self.containers
            .iter()
            .chain(self.init_containers.iter().flatten())
    }
}
