//! Offline injection (`custody inject`, like `istioctl kube-inject`): the Pods and
//! pod templates of a manifest go through the very same [`review()`] as the webhook's
//! AdmissionReviews (wrapped in one, the answer's JSON patch applied), so the command
//! and the webhook decide identically. And the stale check: injected pods whose
//! `custody.dev/sidecar-hash` is not the current config's.

use crate::annotations::{INJECTED, SIDECAR_HASH, SIDECAR_IMAGE};
use crate::config::InjectConfig;
use crate::review::{Outcome, Selected, review};
use crate::{patch, sidecar};
use base64::Engine as _;
use serde::Deserialize as _;
use serde_json::{Value, json};

/// A manifest as read: its documents, and whether it was JSON (written back as JSON).
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The documents, in order (empty YAML documents dropped).
    pub documents: Vec<Value>,
    /// The input was JSON.
    pub json: bool,
}

impl Manifest {
    /// Reads multi-document YAML, or JSON (one value or several, one after the other).
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let json = text.trim_start().starts_with(['{', '[']);
        let mut documents = Vec::new();
        if json {
            // serde_json keeps the last of repeated keys silently; a repeat is refused.
            for (i, doc) in serde_json::Deserializer::from_str(text)
                .into_iter::<custody_core::UniqueKeys>()
                .enumerate()
            {
                doc.map_err(|e| format!("JSON value {}: {e}", i + 1))?;
            }
            for (i, doc) in serde_json::Deserializer::from_str(text)
                .into_iter::<Value>()
                .enumerate()
            {
                documents.push(doc.map_err(|e| format!("JSON value {}: {e}", i + 1))?);
            }
        } else {
            for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
                // Read into a JSON value, the last of repeated keys would win
                // silently; a repeat is refused here, with its line and column.
                custody_core::check_unique_keys(doc)
                    .map_err(|e| format!("YAML document {}: {e}", i + 1))?;
            }
            for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
                let value =
                    Value::deserialize(doc).map_err(|e| format!("YAML document {}: {e}", i + 1))?;
                if !value.is_null() {
                    documents.push(value);
                }
            }
        }
        Ok(Manifest { documents, json })
    }

    /// The documents as text, in the input's format: YAML documents separated by
    /// `---`, or pretty JSON values.
    pub fn render(&self) -> Result<String, String> {
        let mut out = String::new();
        for (i, doc) in self.documents.iter().enumerate() {
            if self.json {
                out += &serde_json::to_string_pretty(doc).map_err(|e| e.to_string())?;
                out.push('\n');
            } else {
                if i > 0 {
                    out += "---\n";
                }
                out += &serde_yaml_ng::to_string(doc).map_err(|e| e.to_string())?;
            }
        }
        Ok(out)
    }
}

/// What happened to one Pod or pod template.
#[derive(Clone, Debug)]
pub struct Report {
    /// The object, e.g. `Deployment agents/support-agent` (`-` when it has no namespace).
    pub object: String,
    /// The decision (as the webhook's).
    pub outcome: Outcome,
    /// The answer's warnings.
    pub warnings: Vec<String>,
}

/// Where a kind keeps its pod template.
fn template_path(api_version: &str, kind: &str) -> Option<&'static [&'static str]> {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    match (group, kind) {
        ("", "Pod") => Some(&[]),
        ("", "ReplicationController")
        | ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job") => Some(&["spec", "template"]),
        ("batch", "CronJob") => Some(&["spec", "jobTemplate", "spec", "template"]),
        _ => None,
    }
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
}

/// Injects the Pods and pod templates among `documents` (and in the `items` of
/// Lists) in place, as the webhook would on `/mutate` (a namespace that opted in):
/// every pod unless it opts out. `namespace` stands for objects that name none.
/// Other objects are left as they are. One report per Pod or template.
pub fn inject(documents: &mut [Value], cfg: &InjectConfig, namespace: Option<&str>) -> Vec<Report> {
    let mut reports = Vec::new();
    for doc in documents {
        inject_one(doc, cfg, namespace, &mut reports);
    }
    reports
}

fn inject_one(
    doc: &mut Value,
    cfg: &InjectConfig,
    namespace: Option<&str>,
    reports: &mut Vec<Report>,
) {
    let api_version = text(doc, &["apiVersion"]).unwrap_or_default().to_owned();
    let kind = text(doc, &["kind"]).unwrap_or_default().to_owned();
    if kind.ends_with("List") {
        if let Some(items) = doc.get_mut("items").and_then(Value::as_array_mut) {
            for item in items {
                inject_one(item, cfg, namespace, reports);
            }
        }
        return;
    }
    let Some(path) = template_path(&api_version, &kind) else {
        return;
    };
    let ns = text(doc, &["metadata", "namespace"])
        .or(namespace)
        .map(str::to_owned);
    let name = text(doc, &["metadata", "name"])
        .or_else(|| text(doc, &["metadata", "generateName"]))
        .unwrap_or("(no name)");
    let object = format!("{kind} {}/{name}", ns.as_deref().unwrap_or("-"));
    let template = path
        .iter()
        .try_fold(&mut *doc, |v, k| v.get_mut(*k))
        .filter(|t| t.is_object());
    let (outcome, warnings) = match template {
        None => (
            Outcome::Denied(format!(
                "custody: cannot inject the sidecar: {}: missing or not an object",
                path.join(".")
            )),
            Vec::new(),
        ),
        Some(template) => inject_pod(template, cfg, ns.as_deref()),
    };
    reports.push(Report {
        object,
        outcome,
        warnings,
    });
}

/// Runs one pod (or pod template) through [`review()`] and applies the patch in place.
pub fn inject_pod(
    pod: &mut Value,
    cfg: &InjectConfig,
    namespace: Option<&str>,
) -> (Outcome, Vec<String>) {
    let mut request = json!({
        "uid": "custody-inject",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "object": pod.clone(),
    });
    if let (Some(ns), Some(r)) = (namespace, request.as_object_mut()) {
        r.insert("namespace".into(), json!(ns));
    }
    let body = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request,
    });
    let answer = review(body.to_string().as_bytes(), cfg, Selected::ByNamespace);
    let response: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let response = &response["response"];
    let warnings = response["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w.as_str().map(String::from))
        .collect();
    let mut outcome = answer.outcome;
    if let Some(encoded) = response["patch"].as_str() {
        let applied = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()))
            .and_then(|ops| {
                let mut patched = pod.clone();
                patch::apply(&mut patched, &ops).map(|()| patched)
            });
        match applied {
            Ok(patched) => *pod = patched,
            Err(e) => outcome = Outcome::Rejected(format!("the patch did not apply: {e}")),
        }
    }
    (outcome, warnings)
}

/// An injected pod whose sidecar is not what the current config injects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stale {
    /// The pod's namespace (`-` when unknown).
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// Its controller, e.g. `ReplicaSet support-agent-7d9c5b6f4`, when it has one.
    pub owner: Option<String>,
    /// Why it is stale.
    pub reason: String,
}

/// The pods among `documents` (and the `items` of Lists, as `kubectl get pods -A -o
/// json` prints them) that custody injected, or that claim it, whose sidecar differs
/// from what `cfg` injects: no or another `custody.dev/sidecar-hash`, or
/// `custody.dev/injected` without a custody container.
pub fn stale(documents: &[Value], cfg: &InjectConfig) -> (usize, Vec<Stale>) {
    let current = crate::sidecar_hash(cfg);
    let mut pods = Vec::new();
    for doc in documents {
        collect_pods(doc, &mut pods);
    }
    let mut injected = 0;
    let mut out = Vec::new();
    for pod in pods {
        let annotation = |key: &str| text(pod, &["metadata", "annotations", key]);
        let has_container = ["containers", "initContainers"].iter().any(|list| {
            pod["spec"][list]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["name"] == sidecar::CONTAINER))
        });
        let claimed = annotation(INJECTED);
        if claimed.is_none() && !has_container {
            continue;
        }
        injected += 1;
        let reason = if !has_container {
            format!(
                "{INJECTED}: {:?} but no {:?} container: runs without custody",
                claimed.unwrap_or_default(),
                sidecar::CONTAINER
            )
        } else {
            match annotation(SIDECAR_HASH) {
                Some(h) if h == current => continue,
                Some(h) => {
                    let mut r = format!("{SIDECAR_HASH} {h}, current {current}");
                    match annotation(SIDECAR_IMAGE) {
                        Some(image) if image != cfg.image() => {
                            r += &format!("; image {image} -> {}", cfg.image());
                        }
                        _ => {}
                    }
                    r
                }
                None => format!(
                    "no {SIDECAR_HASH} (injected by custody {} or by hand), current {current}",
                    claimed.unwrap_or("?")
                ),
            }
        };
        let owner = pod["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["controller"] == true)
            .and_then(|o| Some(format!("{} {}", o["kind"].as_str()?, o["name"].as_str()?)));
        out.push(Stale {
            namespace: text(pod, &["metadata", "namespace"])
                .unwrap_or("-")
                .to_owned(),
            name: text(pod, &["metadata", "name"])
                .unwrap_or("(no name)")
                .to_owned(),
            owner,
            reason,
        });
    }
    (injected, out)
}

fn collect_pods<'a>(doc: &'a Value, out: &mut Vec<&'a Value>) {
    let kind = text(doc, &["kind"]).unwrap_or_default();
    if kind == "Pod" {
        out.push(doc);
    } else if kind.ends_with("List")
        && let Some(items) = doc["items"].as_array()
    {
        for item in items {
            collect_pods(item, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;

    fn cfg(extra: &str) -> InjectConfig {
        RawConfig::from_yaml(&format!(
            "image: registry.example/custody:1\nnamespace: custody-system\n{extra}"
        ))
        .and_then(RawConfig::validate)
        .expect("config")
    }

    const MANIFEST: &str = "\
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: agent, namespace: agents}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: app, image: 'agent:1'}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: '0 3 * * *'
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: job, image: 'job:1'}]
---
apiVersion: v1
kind: Service
metadata: {name: agent}
spec: {ports: [{port: 80}]}
---
";

    #[test]
    fn a_duplicate_key_is_refused_with_its_place() {
        let yaml = "apiVersion: v1\nkind: Pod\n---\nkind: Pod\nmetadata: {name: a}\nkind: Pod\n";
        let err = Manifest::parse(yaml).expect_err("duplicate");
        assert!(
            err.contains("YAML document 2")
                && err.contains("duplicate key `kind` at line 6 column 1"),
            "{err}"
        );
        let err = Manifest::parse("{\"kind\": \"Pod\", \"kind\": \"Service\"}").expect_err("json");
        assert!(err.contains("JSON value 1: duplicate key `kind`"), "{err}");
    }

    #[test]
    fn templates_are_injected_as_the_webhook_would_and_the_rest_passes_through() {
        let c = cfg("");
        let mut m = Manifest::parse(MANIFEST).expect("parse");
        assert_eq!(m.documents.len(), 3);
        let service = m.documents[2].clone();
        let reports = inject(&mut m.documents, &c, Some("batch"));
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].object, "Deployment agents/agent");
        assert_eq!(reports[1].object, "CronJob batch/nightly");
        assert!(reports.iter().all(|r| r.outcome.kind() == "injected"));
        let template = &m.documents[0]["spec"]["template"];
        assert_eq!(template["spec"]["initContainers"][0]["name"], "custody");
        assert_eq!(
            template["metadata"]["annotations"][SIDECAR_HASH],
            crate::sidecar_hash(&c)
        );
        let job = &m.documents[1]["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(job["initContainers"][0]["name"], "custody");
        assert_eq!(m.documents[2], service);
        // Injecting the output again changes nothing.
        let once = m.documents.clone();
        let again = inject(&mut m.documents, &c, Some("batch"));
        assert!(
            again
                .iter()
                .all(|r| r.outcome == Outcome::Skipped("already_injected"))
        );
        assert_eq!(m.documents, once);
        // The same decision as an AdmissionReview of the same pod.
        let rendered = m.render().expect("render");
        assert!(rendered.contains("---\n"));
        assert_eq!(Manifest::parse(&rendered).expect("again").documents, once);
    }

    #[test]
    fn json_in_json_out_lists_and_denials() {
        let c = cfg("");
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "agents",
              "annotations": {"custody.dev/mode": "sidecar"}},
             "spec": {"containers": [{"name": "app", "image": "a"}]}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "q", "namespace": "kube-system"},
             "spec": {"containers": [{"name": "app", "image": "a"}]}},
        ]});
        let mut m = Manifest::parse(&list.to_string()).expect("json");
        assert!(m.json);
        let reports = inject(&mut m.documents, &c, None);
        assert_eq!(reports[0].object, "Pod agents/p");
        assert!(
            matches!(&reports[0].outcome, Outcome::Denied(m) if m.contains("custody.dev/mode")),
            "{:?}",
            reports[0].outcome
        );
        assert_eq!(reports[1].outcome, Outcome::Skipped("excluded_namespace"));
        assert!(m.render().expect("render").starts_with('{'));
    }

    #[test]
    fn stale_pods_are_those_with_another_hash_or_a_false_claim() {
        let c = cfg("");
        let mut m = Manifest::parse(MANIFEST).expect("parse");
        inject(&mut m.documents, &c, None);
        let template = m.documents[0]["spec"]["template"].clone();
        let pod = |name: &str, t: &Value| {
            let mut p = t.clone();
            p["apiVersion"] = json!("v1");
            p["kind"] = json!("Pod");
            p["metadata"]["name"] = json!(name);
            p["metadata"]["namespace"] = json!("agents");
            p
        };
        let current = pod("current", &template);
        let mut old = pod("old", &template);
        old["metadata"]["annotations"][SIDECAR_HASH] = json!("0000000000000000");
        old["metadata"]["annotations"][SIDECAR_IMAGE] = json!("registry.example/custody:0");
        old["metadata"]["ownerReferences"] =
            json!([{"kind": "ReplicaSet", "name": "agent-5d8f", "controller": true}]);
        let mut fake = pod("fake", &json!({"spec": {"containers": [{"name": "app"}]}}));
        fake["metadata"]["annotations"] = json!({INJECTED: "0.1.0"});
        let plain = pod("plain", &json!({"spec": {"containers": [{"name": "app"}]}}));
        let list = json!({"kind": "List", "items": [current, old, fake, plain]});
        let (injected, found) = stale(&[list], &c);
        assert_eq!(injected, 3);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].name, "old");
        assert_eq!(found[0].owner.as_deref(), Some("ReplicaSet agent-5d8f"));
        assert!(
            found[0]
                .reason
                .contains("image registry.example/custody:0 -> registry.example/custody:1"),
            "{}",
            found[0].reason
        );
        assert_eq!(found[1].name, "fake");
        assert!(found[1].reason.contains("runs without custody"));
        // Another config makes every injected pod stale.
        let (_, all) = stale(
            &[json!({"kind": "List", "items": [pod("current", &template)]})],
            &cfg("config_hash: new\n"),
        );
        assert_eq!(all.len(), 1);
    }
}
