//! One AdmissionReview in, one answer out: the rules of the crate's `//!` table,
//! applied in order.

use crate::annotations::{self, Choice, INJECT, INJECTED, Plan, SIDECAR_HASH, SIDECAR_IMAGE};
use crate::config::{GraceAction, HostNetwork, InjectConfig, Mode};
use crate::names::shown;
use crate::patch::{Patch, Pointer};
use crate::pod::{self, Pod};
use crate::sidecar;
use base64::Engine as _;
use serde_json::{Map, Value, json};

/// How the request reached the webhook: which pods it injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selected {
    /// `POST /mutate`: the pod's namespace opted in (the webhook configuration's
    /// `namespaceSelector`); every pod is injected unless it says `"false"`.
    ByNamespace,
    /// `POST /mutate/opt-in`: only pods that say `custody.dev/inject: "true"`
    /// (annotation or label) are injected.
    ByPod,
}

/// What the webhook decided, for logs and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed with a patch that adds the sidecar.
    Injected {
        /// The mode the app containers were set up for.
        mode: Mode,
        /// JSON Patch operations.
        ops: usize,
    },
    /// Allowed unchanged, for the reason named (`not_a_pod`, `not_create`,
    /// `own_namespace`, `excluded_namespace`, `opted_out`, `not_opted_in`,
    /// `already_injected`, `host_network`, `windows`).
    Skipped(&'static str),
    /// Refused (`allowed: false`) with this message.
    Denied(String),
    /// No AdmissionReview could be answered: an HTTP error with this message.
    Rejected(String),
}

impl Outcome {
    /// `injected`, `skipped`, `denied` or `rejected`.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Injected { .. } => "injected",
            Outcome::Skipped(_) => "skipped",
            Outcome::Denied(_) => "denied",
            Outcome::Rejected(_) => "rejected",
        }
    }
}

/// The HTTP answer to one request, and what it was about (for the log line; never
/// the pod's spec).
#[derive(Clone, Debug)]
pub struct Answer {
    /// 200 for every AdmissionReview answer; 400 or 413 otherwise.
    pub status: u16,
    /// JSON.
    pub body: Vec<u8>,
    /// The decision.
    pub outcome: Outcome,
    /// The request's `uid`, when it could be read.
    pub uid: Option<String>,
    /// The pod's namespace, when known.
    pub namespace: Option<String>,
    /// The pod's name (or `generateName` followed by `*`), when known.
    pub pod: Option<String>,
}

/// An HTTP error answer with a JSON body `{"error":{"type","message"}}`.
pub fn http_error(status: u16, kind: &str, message: &str) -> Answer {
    let body = json!({"error": {"type": kind, "message": message}});
    Answer {
        status,
        body: body.to_string().into_bytes(),
        outcome: Outcome::Rejected(message.to_owned()),
        uid: None,
        namespace: None,
        pod: None,
    }
}

/// The answer to a request body larger than `limit` bytes: HTTP 413.
pub fn too_large(limit: usize) -> Answer {
    http_error(
        413,
        "body_too_large",
        &format!("AdmissionReview larger than {limit} bytes"),
    )
}

/// Answers one AdmissionReview v1 (the request body). Never panics; see the
/// crate's rules table for which input gets which answer.
pub fn review(body: &[u8], cfg: &InjectConfig, selected: Selected) -> Answer {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad_request(&format!("the body is not JSON: {e}")),
    };
    let Some(request) = envelope(&value) else {
        return bad_request(
            "expected an AdmissionReview: apiVersion admission.k8s.io/v1, kind AdmissionReview, request.uid",
        );
    };
    let Some(uid) = request
        .get("uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty() && u.len() <= 256)
    else {
        return bad_request("request.uid is missing or not a string of 1 to 256 characters");
    };
    let mut facts = Facts::default();
    let decision = decide(request, cfg, selected, &mut facts);
    let body = response(uid, &decision).to_string().into_bytes();
    Answer {
        status: 200,
        body,
        outcome: decision.outcome,
        uid: Some(shown(uid)),
        namespace: facts.namespace,
        pod: facts.pod,
    }
}

fn bad_request(message: &str) -> Answer {
    http_error(400, "bad_request", message)
}

fn envelope(value: &Value) -> Option<&Map<String, Value>> {
    let review = value.as_object()?;
    let ok = review.get("apiVersion").and_then(Value::as_str) == Some("admission.k8s.io/v1")
        && review.get("kind").and_then(Value::as_str) == Some("AdmissionReview");
    ok.then(|| review.get("request").and_then(Value::as_object))
        .flatten()
}

/// What is known about the pod, for the log line.
#[derive(Default)]
struct Facts {
    namespace: Option<String>,
    pod: Option<String>,
}

struct Decision {
    outcome: Outcome,
    patch: Option<Value>,
    warnings: Vec<String>,
}

impl Decision {
    fn skip(reason: &'static str) -> Decision {
        Decision {
            outcome: Outcome::Skipped(reason),
            patch: None,
            warnings: Vec::new(),
        }
    }

    /// The warnings gathered before this decision come first.
    fn after(mut self, mut earlier: Vec<String>) -> Decision {
        earlier.append(&mut self.warnings);
        self.warnings = earlier;
        self
    }

    fn warn(mut self, warning: String) -> Decision {
        self.warnings.push(warning);
        self
    }

    fn deny(problems: &[String]) -> Decision {
        let mut shown_problems: Vec<&str> = problems.iter().map(String::as_str).take(10).collect();
        let more = problems.len().saturating_sub(10);
        let tail = format!("... and {more} more");
        if more > 0 {
            shown_problems.push(&tail);
        }
        Decision {
            outcome: Outcome::Denied(format!(
                "custody: cannot inject the sidecar: {}",
                shown_problems.join("; ")
            )),
            patch: None,
            warnings: Vec::new(),
        }
    }
}

fn is(v: Option<&Value>, group: &str, version: &str, key: &str, name: &str) -> bool {
    v.is_some_and(|v| {
        v.get("group").and_then(Value::as_str) == Some(group)
            && v.get("version").and_then(Value::as_str) == Some(version)
            && v.get(key).and_then(Value::as_str) == Some(name)
    })
}

fn decide(
    request: &Map<String, Value>,
    cfg: &InjectConfig,
    selected: Selected,
    facts: &mut Facts,
) -> Decision {
    // 1. Only pods being created, never a subresource.
    let sub = request
        .get("subResource")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !is(request.get("kind"), "", "v1", "kind", "Pod")
        || !is(request.get("resource"), "", "v1", "resource", "pods")
        || !sub.is_empty()
    {
        return Decision::skip("not_a_pod");
    }
    if request.get("operation").and_then(Value::as_str) != Some("CREATE") {
        return Decision::skip("not_create");
    }
    // 2. Never the webhook's own namespace nor an excluded one.
    let request_ns = request
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    if let Some(skip) = request_ns.and_then(|ns| namespace_rule(cfg, ns)) {
        facts.namespace = request_ns.map(shown);
        return Decision::skip(skip);
    }
    let Some(object) = request.get("object").filter(|o| !o.is_null()) else {
        return Decision::deny(&["request.object: missing".into()]);
    };
    let meta = match pod::meta(object) {
        Ok(m) => m,
        Err(problems) => return Decision::deny(&problems),
    };
    let namespace = request_ns.or(meta.namespace);
    facts.namespace = namespace.map(shown);
    facts.pod = meta
        .name
        .filter(|n| !n.is_empty())
        .map(shown)
        .or_else(|| meta.generate_name.map(|g| format!("{}*", shown(g))));
    if let Some(skip) = namespace.and_then(|ns| namespace_rule(cfg, ns)) {
        return Decision::skip(skip);
    }
    // 3. The pod's own choice (not in a mandatory namespace), then idempotency.
    let mut warnings = Vec::new();
    let mandatory = namespace.filter(|ns| cfg.raw().mandatory_namespaces.iter().any(|m| m == ns));
    match (annotations::choice(meta.annotations, meta.labels), selected) {
        (Err(problem), _) => return Decision::deny(&[problem]),
        (Ok(Choice::No), _) => match mandatory {
            Some(ns) => warnings.push(format!(
                "custody: {INJECT}: \"false\" is not allowed in mandatory namespace {} (the sidecar is injected)",
                shown(ns)
            )),
            None => return Decision::skip("opted_out"),
        },
        (Ok(Choice::Unset), Selected::ByPod) if mandatory.is_none() => {
            return Decision::skip("not_opted_in");
        }
        (Ok(_), _) => {}
    }
    let pod = match pod::pod(object, &meta) {
        Ok(p) => p,
        Err(problems) => return Decision::deny(&problems),
    };
    // The claim is checked against the spec: an annotation alone is no way out.
    if let Some(claimed) = meta.annotations.and_then(|a| a.get(INJECTED)) {
        if pod.all_containers().any(|c| c.name == sidecar::CONTAINER) {
            // Made from a template injected offline (`custody inject`) under another config?
            let current = crate::sidecar_hash(cfg);
            let hash = meta
                .annotations
                .and_then(|a| a.get(SIDECAR_HASH))
                .and_then(Value::as_str);
            let skip = Decision::skip("already_injected").after(warnings);
            return match hash {
                Some(h) if h == current => skip,
                other => skip.warn(format!(
                    "custody: already injected, but not with the current settings ({SIDECAR_HASH} {}, current {current}): inject the template again (custody inject)",
                    other.map_or_else(|| "missing".to_owned(), |h| format!("{:?}", shown(h)))
                )),
            };
        }
        warnings.push(format!(
            "custody: the annotation {INJECTED}: {:?} is false: the pod has no {:?} container; the sidecar is injected",
            shown(claimed.as_str().unwrap_or_default()),
            sidecar::CONTAINER
        ));
    }
    // 4. A platform and network where custody can run.
    // In a mandatory namespace a pod custody cannot run in is refused, not let through.
    if pod.windows {
        if let Some(ns) = mandatory {
            return Decision::deny(&[format!(
                "Windows pods cannot run custody, and namespace {} is mandatory (mandatory_namespaces)",
                shown(ns)
            )]);
        }
        return Decision::skip("windows")
            .after(warnings)
            .warn("custody: sidecar not injected: Windows pods are not supported".into());
    }
    if pod.host_network {
        let ports = format!("{} and {}", cfg.raw().proxy_port, cfg.raw().admin_port);
        match cfg.raw().host_network {
            HostNetwork::Skip if mandatory.is_some() => {
                return Decision::deny(&[format!(
                    "hostNetwork pods are refused in mandatory namespace {} (host_network: skip would leave it unaudited): custody's ports {ports} would be the node's",
                    shown(mandatory.unwrap_or_default())
                )]);
            }
            HostNetwork::Skip => {
                return Decision::skip("host_network").after(warnings).warn(format!(
                    "custody: sidecar not injected: a hostNetwork pod would share ports {ports} with the node"
                ));
            }
            HostNetwork::Deny => {
                return Decision::deny(&[format!(
                    "hostNetwork pods are refused: custody's ports {ports} would be the node's"
                )]);
            }
            HostNetwork::Inject => warnings.push(format!(
                "custody: hostNetwork pod: custody's ports {ports} are open on the node's network"
            )),
        }
    }
    // 5. The pod's annotations over the defaults, then nothing in the way.
    let plan = match annotations::plan(cfg, meta.annotations) {
        Ok(p) => p,
        Err(problems) => return Decision::deny(&problems),
    };
    let conflicts = conflicts(&pod, cfg);
    if !conflicts.is_empty() {
        return Decision::deny(&conflicts);
    }
    // 6. The patch.
    let patch = build(cfg, &pod, meta.labels.is_some(), &plan, &mut warnings);
    warnings.truncate(10);
    Decision {
        outcome: Outcome::Injected {
            mode: plan.mode,
            ops: patch.len(),
        },
        patch: Some(patch.into_value()),
        warnings,
    }
}

fn namespace_rule(cfg: &InjectConfig, ns: &str) -> Option<&'static str> {
    if cfg.namespace() == Some(ns) {
        Some("own_namespace")
    } else if cfg.exclude_namespaces().iter().any(|n| n == ns) {
        Some("excluded_namespace")
    } else {
        None
    }
}

fn conflicts(pod: &Pod<'_>, cfg: &InjectConfig) -> Vec<String> {
    let mut problems = Vec::new();
    let ports = [cfg.raw().proxy_port, cfg.raw().admin_port].map(i64::from);
    for c in pod.all_containers() {
        if c.name == sidecar::CONTAINER {
            problems.push(format!(
                "a container is already named {:?} (a pod that runs custody itself opts out with {}: \"false\")",
                sidecar::CONTAINER,
                annotations::INJECT
            ));
        }
        for p in c.ports.iter().filter(|p| ports.contains(p)) {
            problems.push(format!(
                "container {:?} declares port {p}, which custody listens on",
                shown(c.name)
            ));
        }
    }
    for v in pod.volumes.iter().flatten() {
        if sidecar::VOLUMES.contains(v) {
            problems.push(format!("a volume is already named {v:?}"));
        }
    }
    for c in &pod.containers {
        if c.mounts.iter().flatten().any(|m| *m == sidecar::RUN_DIR) {
            problems.push(format!(
                "container {:?} already mounts {}",
                shown(c.name),
                sidecar::RUN_DIR
            ));
        }
    }
    problems
}

fn build(
    cfg: &InjectConfig,
    pod: &Pod<'_>,
    has_labels: bool,
    plan: &Plan,
    warnings: &mut Vec<String>,
) -> Patch {
    let mut patch = Patch::default();
    let root = Pointer::root();
    let version = json!(crate::VERSION);
    let metadata = root.at("metadata");
    // The annotations carry the version (with the container, they make injection
    // idempotent), the image and the sidecar hash (`custody inject --stale`); the
    // label `custody.dev/injected: "true"` is what label selectors (the chart's
    // PodMonitor) can match.
    let annotations = [
        (INJECTED, version),
        (SIDECAR_IMAGE, json!(cfg.image())),
        (SIDECAR_HASH, json!(crate::sidecar_hash(cfg))),
    ];
    if pod.has_metadata {
        let exists = pod.annotations.is_some();
        patch.set_members(&metadata.at("annotations"), exists, &annotations);
        patch.set_member(&metadata.at("labels"), has_labels, INJECTED, json!("true"));
    } else {
        let annotations: Map<String, Value> = annotations
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        patch.add(
            &metadata,
            json!({"annotations": annotations, "labels": {INJECTED: "true"}}),
        );
    }
    let spec = root.at("spec");
    grace(cfg, pod, &spec, &mut patch, warnings);
    let volumes = sidecar::volumes(cfg, plan);
    patch.extend(&spec.at("volumes"), pod.volumes.is_some(), volumes);
    let present = pod.pull_secrets.as_deref().unwrap_or_default();
    let mut secrets: Vec<&str> = Vec::new();
    for name in &cfg.raw().image_pull_secrets {
        if !present.contains(&name.as_str()) && !secrets.contains(&name.as_str()) {
            secrets.push(name);
        }
    }
    let secrets = secrets.into_iter().map(|n| json!({"name": n})).collect();
    patch.extend(
        &spec.at("imagePullSecrets"),
        pod.pull_secrets.is_some(),
        secrets,
    );
    let env = sidecar::app_env(cfg, plan.mode);
    for (i, c) in pod.containers.iter().enumerate() {
        let here = spec.at("containers").at(i.to_string());
        let own = c.env.as_deref().unwrap_or_default();
        let (kept, added): (Vec<_>, Vec<_>) = env.iter().partition(|(k, _)| own.contains(k));
        if !kept.is_empty() {
            let names: Vec<&str> = kept.iter().map(|(k, _)| *k).collect();
            warnings.push(format!(
                "custody: container {:?} keeps its own {}",
                shown(c.name),
                names.join(", ")
            ));
        }
        let added = added
            .into_iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        patch.extend(&here.at("env"), c.env.is_some(), added);
        let mounts = vec![sidecar::app_mount()];
        patch.extend(&here.at("volumeMounts"), c.mounts.is_some(), mounts);
    }
    let container = sidecar::container(cfg, plan);
    if cfg.native_sidecar() {
        // First, so that it runs before the other init containers and the apps.
        let init = spec.at("initContainers");
        match pod.init_containers {
            Some(_) => patch.add(&init.at("0"), container),
            None => patch.add(&init, json!([container])),
        }
    } else {
        // Last, so `kubectl logs` and `exec` still pick the app by default.
        patch.add(&spec.at("containers").end(), container);
        if let Some(policy @ ("Never" | "OnFailure")) = pod.restart_policy {
            warnings.push(format!(
                "custody: restartPolicy {policy}: this pod will not complete while the custody container runs; enable native sidecars (Kubernetes 1.29 or later)"
            ));
        }
    }
    patch
}

/// The pod's default `terminationGracePeriodSeconds`.
pub(crate) const DEFAULT_GRACE_SECONDS: i64 = 30;

/// The pod's grace period against custody's shutdown needs (docs/injection.md,
/// "Shutdown and the grace period"). A native sidecar gets SIGTERM only once the
/// app containers have exited, within the pod's one grace period: `raise` adds
/// `sidecar_seconds` to it; a regular container is stopped with the apps, so it
/// needs only `sidecar_seconds` in all. `warn` leaves it and warns when it is
/// shorter than `sidecar_seconds`.
fn grace(
    cfg: &InjectConfig,
    pod: &Pod<'_>,
    spec: &Pointer,
    patch: &mut Patch,
    warnings: &mut Vec<String>,
) {
    let tg = &cfg.raw().termination_grace;
    let need = i64::from(tg.sidecar_seconds);
    let current = pod.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
    let whose = if pod.grace_seconds.is_some() {
        "the pod's"
    } else {
        "the default"
    };
    match tg.action {
        GraceAction::Raise => {
            let (target, why) = if cfg.native_sidecar() {
                (
                    current.saturating_add(need),
                    "custody, a native sidecar, gets SIGTERM only after the app containers exit",
                )
            } else {
                (current.max(need), "custody stops with the app containers")
            };
            if target != current {
                patch.add(&spec.at("terminationGracePeriodSeconds"), json!(target));
                warnings.push(format!(
                    "custody: terminationGracePeriodSeconds raised from {current} ({whose}) to {target}: {why} and needs {need} s to ship its audit rows (termination_grace)"
                ));
            }
        }
        GraceAction::Warn => {
            if current < need {
                let fix = if cfg.native_sidecar() {
                    format!("{need} s more than the app containers need to stop")
                } else {
                    format!("{need}")
                };
                warnings.push(format!(
                    "custody: terminationGracePeriodSeconds {current} ({whose}) leaves custody less than the {need} s it needs to ship its audit rows at shutdown; rows not shipped are lost with the pod (set it to at least {fix})"
                ));
            }
        }
    }
}

fn response(uid: &str, d: &Decision) -> Value {
    let mut r = Map::new();
    r.insert("uid".into(), json!(uid));
    let allowed = !matches!(d.outcome, Outcome::Denied(_));
    r.insert("allowed".into(), json!(allowed));
    if let Some(patch) = &d.patch {
        let bytes = patch.to_string();
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        r.insert("patchType".into(), json!("JSONPatch"));
        r.insert("patch".into(), json!(encoded));
    }
    if let Outcome::Denied(message) = &d.outcome {
        r.insert("status".into(), json!({"code": 400, "message": message}));
    }
    if !d.warnings.is_empty() {
        r.insert("warnings".into(), json!(d.warnings));
    }
    let decision = match &d.outcome {
        Outcome::Skipped(reason) => format!("skipped: {reason}"),
        other => other.kind().to_owned(),
    };
    r.insert("auditAnnotations".into(), json!({"decision": decision}));
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": Value::Object(r),
    })
}

#[cfg(test)]
mod tests;
