//! Golden tests: every case in `tests/fixtures/cases.json` (real-shaped
//! AdmissionReview v1 objects) answered by `review`, compared with
//! `tests/fixtures/expected/<case>.json` (the response with its patch decoded).
//! `UPDATE_GOLDEN=1 cargo test -p custody-inject --test fixtures` rewrites them.
//! Injected pods are also patched here and checked for what the API server would
//! refuse (duplicate names, mount paths, env names; mounts of missing volumes), and
//! answered again (`already_injected`). tests/interop/test_inject.py applies the
//! same patches with a JSON Patch library and validates the Pods against the
//! Kubernetes schemas.

use base64::Engine as _;
use custody_inject::{InjectConfig, RawConfig, Selected, review};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn config(name: &str) -> InjectConfig {
    let text = std::fs::read_to_string(dir().join(name)).expect("config");
    RawConfig::from_yaml(&text)
        .and_then(RawConfig::validate)
        .expect("valid config")
}

fn selected(path: &str) -> Selected {
    match path {
        "/mutate" => Selected::ByNamespace,
        "/mutate/opt-in" => Selected::ByPod,
        other => panic!("unknown path {other}"),
    }
}

fn decode_patch(response: &Value) -> Option<Value> {
    let encoded = response.get("patch")?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    Some(serde_json::from_slice(&bytes).expect("patch JSON"))
}

/// RFC 6902 `add`, the only operation the webhook emits.
fn apply(doc: &mut Value, patch: &Value) {
    for op in patch.as_array().expect("ops") {
        assert_eq!(op["op"], "add");
        let path = op["path"].as_str().expect("path");
        let mut segments: Vec<String> = path
            .split('/')
            .skip(1)
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        let last = segments.pop().expect("non-root path");
        let mut parent = &mut *doc;
        for s in &segments {
            parent = match parent {
                Value::Array(a) => &mut a[s.parse::<usize>().expect("index")],
                Value::Object(o) => o.get_mut(s).unwrap_or_else(|| panic!("{path}: no {s}")),
                _ => panic!("{path}: {s} is a scalar"),
            };
        }
        let value = op["value"].clone();
        match parent {
            Value::Array(a) if last == "-" => a.push(value),
            Value::Array(a) => a.insert(last.parse().expect("index"), value),
            Value::Object(o) => {
                o.insert(last, value);
            }
            _ => panic!("{path}: parent is a scalar"),
        }
    }
}

fn names<'a>(items: impl IntoIterator<Item = &'a Value>, key: &str, what: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for item in items {
        let name = item[key]
            .as_str()
            .unwrap_or_else(|| panic!("{what} without {key}"));
        assert!(seen.insert(name.to_owned()), "duplicate {what} {name:?}");
    }
    seen
}

/// What the API server's validation would refuse, beyond the schema.
fn check_pod(pod: &Value) {
    let spec = &pod["spec"];
    let empty = vec![];
    let containers = spec["containers"].as_array().expect("containers");
    let inits = spec["initContainers"].as_array().unwrap_or(&empty);
    names(containers.iter().chain(inits), "name", "container");
    let volumes = names(
        spec["volumes"].as_array().unwrap_or(&empty),
        "name",
        "volume",
    );
    for c in containers.iter().chain(inits) {
        names(c["env"].as_array().unwrap_or(&empty), "name", "env var");
        let mounts = c["volumeMounts"].as_array().unwrap_or(&empty);
        names(mounts, "mountPath", "mount path");
        for m in mounts {
            let v = m["name"].as_str().expect("mount name");
            assert!(volumes.contains(v), "mount of a missing volume {v}");
        }
    }
}

fn check_injected(
    case: &str,
    cfg: &InjectConfig,
    selected: Selected,
    request: &Value,
    patch: &Value,
) {
    let mut pod = request["request"]["object"].clone();
    apply(&mut pod, patch);
    check_pod(&pod);
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["custody.dev/injected"], custody_inject::VERSION);
    assert_eq!(annotations["custody.dev/sidecar-image"], cfg.image());
    assert_eq!(
        annotations["custody.dev/sidecar-hash"],
        custody_inject::sidecar_hash(cfg)
    );
    let sidecar = if cfg.native_sidecar() {
        &pod["spec"]["initContainers"][0]
    } else {
        pod["spec"]["containers"]
            .as_array()
            .and_then(|c| c.last())
            .expect("containers")
    };
    assert_eq!(sidecar["name"], "custody", "{case}");
    let security = &sidecar["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    let original = request["request"]["object"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    for i in 0..original.len() {
        let c = &pod["spec"]["containers"][i];
        let mounts = c["volumeMounts"].as_array().expect("mounts");
        assert!(
            mounts
                .iter()
                .any(|m| m["mountPath"] == "/run/custody" && m["readOnly"] == true),
            "{case}: container {i} without the shared volume"
        );
        assert!(c["env"].as_array().is_some_and(|e| !e.is_empty()));
    }
    // Idempotent: the patched pod is left alone.
    let mut again = request.clone();
    again["request"]["object"] = pod;
    let answer = review(again.to_string().as_bytes(), cfg, selected);
    assert_eq!(
        answer.outcome,
        custody_inject::Outcome::Skipped("already_injected"),
        "{case}"
    );
}

#[test]
fn every_case_matches_its_golden_answer() {
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir().join("cases.json")).expect("cases"))
            .expect("cases JSON");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        let cfg = config(case["config"].as_str().unwrap_or("config.yaml"));
        let sel = selected(case["path"].as_str().expect("path"));
        let body =
            std::fs::read(dir().join(case["fixture"].as_str().expect("fixture"))).expect("fixture");
        let answer = review(&body, &cfg, sel);
        assert_eq!(
            answer.outcome.kind(),
            case["expect"],
            "{name}: {:?}",
            answer.outcome
        );
        let mut got: Value = serde_json::from_slice(&answer.body).expect("answer JSON");
        if answer.status == 200 {
            let response = &mut got["response"];
            let request: Value = serde_json::from_slice(&body).expect("request");
            assert_eq!(
                response["uid"], request["request"]["uid"],
                "{name}: uid echoed"
            );
            if let Some(patch) = decode_patch(response) {
                assert_eq!(response["patchType"], "JSONPatch");
                check_injected(name, &cfg, sel, &request, &patch);
                response["patch"] = json!({"decoded": patch});
            }
        }
        let golden = json!({"http_status": answer.status, "body": got});
        let path = dir().join("expected").join(format!("{name}.json"));
        let text = serde_json::to_string_pretty(&golden).expect("json") + "\n";
        if update {
            std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
            std::fs::write(&path, text).expect("write golden");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            failures.push(format!(
                "{name}: differs from {} (UPDATE_GOLDEN=1 rewrites)",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
