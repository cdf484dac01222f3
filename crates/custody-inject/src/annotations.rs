//! The pod annotations custody reads (all under `custody.dev/`), and the per-pod
//! plan they make from the webhook's defaults. An unknown `custody.dev/` key or a bad
//! value is a denial naming it: a typo never silently falls back to a default.

use crate::config::{InjectConfig, Mode, Resources, check_resources};
use crate::names::{check_subdomain, shown};
use crate::quantity;
use serde_json::{Map, Value};

/// `"true"` injects (the opt-in path requires it), `"false"` opts out. Read from the
/// pod's annotations, else from its labels (labels can be matched by the webhook
/// configuration's `objectSelector`; annotations cannot).
pub const INJECT: &str = "custody.dev/inject";
/// Set by the webhook on every pod it injects, to the webhook's version; a pod that
/// has it is never injected again.
pub const INJECTED: &str = "custody.dev/injected";
/// `reverse` or `intercept`: the environment the app containers get.
pub const MODE: &str = "custody.dev/mode";
/// The ConfigMap with custody's config file (key as configured, `custody.yaml`).
pub const CONFIG_CONFIGMAP: &str = "custody.dev/config-configmap";
/// The ConfigMap with the policy.
pub const POLICY_CONFIGMAP: &str = "custody.dev/policy-configmap";
/// The sidecar's CPU request.
pub const CPU_REQUEST: &str = "custody.dev/cpu-request";
/// The sidecar's CPU limit.
pub const CPU_LIMIT: &str = "custody.dev/cpu-limit";
/// The sidecar's memory request.
pub const MEMORY_REQUEST: &str = "custody.dev/memory-request";
/// The sidecar's memory limit.
pub const MEMORY_LIMIT: &str = "custody.dev/memory-limit";
/// The `sizeLimit` of the sidecar's data volume (spool and audit files).
pub const SPOOL_SIZE_LIMIT: &str = "custody.dev/spool-size-limit";

/// Set by the webhook on every pod it injects: the sidecar's image.
pub const SIDECAR_IMAGE: &str = "custody.dev/sidecar-image";
/// Set by the webhook on every pod it injects: [`crate::sidecar_hash`] of its
/// config, which `custody inject --stale` compares with the current one.
pub const SIDECAR_HASH: &str = "custody.dev/sidecar-hash";

/// Every annotation key custody knows.
pub const KNOWN: [&str; 12] = [
    INJECT,
    INJECTED,
    SIDECAR_IMAGE,
    SIDECAR_HASH,
    MODE,
    CONFIG_CONFIGMAP,
    POLICY_CONFIGMAP,
    CPU_REQUEST,
    CPU_LIMIT,
    MEMORY_REQUEST,
    MEMORY_LIMIT,
    SPOOL_SIZE_LIMIT,
];

/// The annotations a pod sets to ask for something (the others are the
/// webhook's, overwritten on injection): what `allowed_annotations` may list.
pub const SETTABLE: [&str; 9] = [
    INJECT,
    MODE,
    CONFIG_CONFIGMAP,
    POLICY_CONFIGMAP,
    CPU_REQUEST,
    CPU_LIMIT,
    MEMORY_REQUEST,
    MEMORY_LIMIT,
    SPOOL_SIZE_LIMIT,
];

/// What the pod says about injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Choice {
    Unset,
    Yes,
    No,
}

fn get<'a>(map: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a str> {
    map.and_then(|m| m.get(key)).and_then(Value::as_str)
}

/// `custody.dev/inject` from the annotations, else the labels.
pub(crate) fn choice(
    annotations: Option<&Map<String, Value>>,
    labels: Option<&Map<String, Value>>,
) -> Result<Choice, String> {
    let (value, from) = match get(annotations, INJECT) {
        Some(v) => (v, "annotation"),
        None => match get(labels, INJECT) {
            Some(v) => (v, "label"),
            None => return Ok(Choice::Unset),
        },
    };
    match value {
        "true" => Ok(Choice::Yes),
        "false" => Ok(Choice::No),
        other => Err(format!(
            "{from} {INJECT}: {:?} must be \"true\" or \"false\"",
            shown(other)
        )),
    }
}

/// The per-pod settings: the webhook's defaults with the pod's annotations applied.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) mode: Mode,
    pub(crate) config_configmap: String,
    pub(crate) policy_configmap: Option<String>,
    pub(crate) resources: Resources,
    pub(crate) spool_size_limit: String,
}

/// Applies the annotations; `Err` lists every bad or unknown one.
pub(crate) fn plan(
    cfg: &InjectConfig,
    annotations: Option<&Map<String, Value>>,
) -> Result<Plan, Vec<String>> {
    let raw = cfg.raw();
    let mut problems = Vec::new();
    let mut plan = Plan {
        mode: raw.mode,
        config_configmap: raw.config_configmap.clone(),
        policy_configmap: raw.policy_configmap.clone(),
        resources: raw.resources.clone(),
        spool_size_limit: raw.spool_size_limit.clone(),
    };
    let mut unknown: Vec<String> = annotations
        .into_iter()
        .flat_map(|m| m.keys())
        .filter(|k| k.starts_with("custody.dev/") && !KNOWN.contains(&k.as_str()))
        .map(|k| format!("{:?}", shown(k)))
        .collect();
    if !unknown.is_empty() {
        unknown.sort();
        problems.push(format!(
            "unknown annotation(s) {} (known: {})",
            unknown.join(", "),
            KNOWN.join(", ")
        ));
    }
    if let Some(allowed) = &raw.allowed_annotations {
        let is_allowed = |k: &str| k == INJECT || allowed.iter().any(|a| a == k);
        let refused: Vec<String> = annotations
            .into_iter()
            .flat_map(|m| m.keys())
            .filter(|k| SETTABLE.contains(&k.as_str()) && !is_allowed(k))
            .map(|k| format!("{k:?}"))
            .collect();
        if !refused.is_empty() {
            let mut listed: Vec<&str> = vec![INJECT];
            listed.extend(allowed.iter().map(String::as_str).filter(|a| *a != INJECT));
            problems.push(format!(
                "annotation(s) {} not allowed in this cluster (allowed_annotations: {})",
                refused.join(", "),
                listed.join(", ")
            ));
        }
    }
    if let Some(v) = get(annotations, MODE) {
        match Mode::parse(v) {
            Some(mode) => plan.mode = mode,
            None => problems.push(format!(
                "{MODE}: {:?} must be \"reverse\" or \"intercept\"",
                shown(v)
            )),
        }
    }
    for (key, slot) in [
        (CONFIG_CONFIGMAP, &mut plan.config_configmap),
        (SPOOL_SIZE_LIMIT, &mut plan.spool_size_limit),
    ] {
        if let Some(v) = get(annotations, key) {
            let checked = if key == SPOOL_SIZE_LIMIT {
                quantity::positive(v).map(drop)
            } else {
                check_subdomain(v)
            };
            let bound = raw
                .max_spool_size_limit
                .as_deref()
                .filter(|_| key == SPOOL_SIZE_LIMIT);
            match checked.and_then(|()| within(v, bound, "max_spool_size_limit")) {
                Ok(()) => *slot = v.to_owned(),
                Err(e) => problems.push(format!("{key}: {e}")),
            }
        }
    }
    if let Some(v) = get(annotations, POLICY_CONFIGMAP) {
        match check_subdomain(v) {
            Ok(()) => plan.policy_configmap = Some(v.to_owned()),
            Err(e) => problems.push(format!("{POLICY_CONFIGMAP}: {e}")),
        }
    }
    for (key, is_request, is_cpu) in [
        (CPU_REQUEST, true, true),
        (MEMORY_REQUEST, true, false),
        (CPU_LIMIT, false, true),
        (MEMORY_LIMIT, false, false),
    ] {
        let Some(v) = get(annotations, key) else {
            continue;
        };
        let (kind, what) = match (is_request, is_cpu) {
            (true, true) => ("requests", "cpu"),
            (true, false) => ("requests", "memory"),
            (false, true) => ("limits", "cpu"),
            (false, false) => ("limits", "memory"),
        };
        let max = if is_request {
            &raw.max_resources.requests
        } else {
            &raw.max_resources.limits
        };
        let bound = if is_cpu { &max.cpu } else { &max.memory };
        let bound_key = format!("max_resources.{kind}.{what}");
        if let Err(e) = quantity::positive(v).and_then(|_| within(v, bound.as_deref(), &bound_key))
        {
            problems.push(format!("{key}: {e}"));
            continue;
        }
        let target = if is_request {
            &mut plan.resources.requests
        } else {
            &mut plan.resources.limits
        };
        let slot = if is_cpu {
            &mut target.cpu
        } else {
            &mut target.memory
        };
        *slot = Some(v.to_owned());
    }
    if problems.is_empty() {
        // Values are valid one by one; a request above its limit names the keys.
        for p in check_resources(&plan.resources, "resources") {
            problems.push(format!(
                "{p} (set with the {CPU_REQUEST}, {CPU_LIMIT}, {MEMORY_REQUEST}, {MEMORY_LIMIT} annotations or the webhook's defaults)"
            ));
        }
    }
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(problems)
    }
}

/// `value` is not above `bound` (the config key `key`), when there is one.
fn within(value: &str, bound: Option<&str>, key: &str) -> Result<(), String> {
    let Some(bound) = bound else { return Ok(()) };
    match (quantity::parse(value), quantity::parse(bound)) {
        (Ok(v), Ok(b)) if v > b => Err(format!(
            "{:?} is above the bound {bound} ({key})",
            shown(value)
        )),
        _ => Ok(()),
    }
}
