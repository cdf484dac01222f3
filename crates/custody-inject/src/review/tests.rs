//! The rules one by one, on small pods; the golden fixtures in `tests/` cover
//! real-shaped ones.

use super::*;
use crate::config::RawConfig;

fn cfg(extra: &str) -> InjectConfig {
    RawConfig::from_yaml(&format!(
        "image: registry.example/custody:1\nnamespace: custody-system\n{extra}"
    ))
    .and_then(RawConfig::validate)
    .expect("config")
}

fn request(pod: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "agents",
            "operation": "CREATE",
            "object": pod,
        }
    })
}

fn pod() -> Value {
    json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}})
}

fn answer(cfg: &InjectConfig, review_json: &Value, selected: Selected) -> (Answer, Value) {
    let a = review(review_json.to_string().as_bytes(), cfg, selected);
    let body: Value = serde_json::from_slice(&a.body).expect("JSON body");
    (a, body)
}

fn patch_ops(body: &Value) -> Vec<Value> {
    let encoded = body["response"]["patch"].as_str().expect("patch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("ops")
}

#[test]
fn a_pod_without_metadata_or_annotations_gets_them_whole() {
    let c = cfg("");
    let mut p = pod();
    p.as_object_mut().expect("object").remove("metadata");
    let (a, body) = answer(&c, &request(p), Selected::ByNamespace);
    assert_eq!(a.outcome.kind(), "injected");
    let ops = patch_ops(&body);
    assert_eq!(ops[0]["path"], "/metadata");
    assert_eq!(
        ops[0]["value"]["annotations"]["custody.dev/injected"],
        crate::VERSION
    );

    let mut p = pod();
    p["metadata"]["annotations"] = Value::Null;
    let (_, body) = answer(&c, &request(p), Selected::ByNamespace);
    assert_eq!(patch_ops(&body)[0]["path"], "/metadata/annotations");
}

#[test]
fn the_opt_in_path_injects_only_pods_that_ask() {
    let c = cfg("");
    let (a, _) = answer(&c, &request(pod()), Selected::ByPod);
    assert_eq!(a.outcome, Outcome::Skipped("not_opted_in"));
    let mut p = pod();
    p["metadata"]["labels"] = json!({"custody.dev/inject": "true"});
    let (a, _) = answer(&c, &request(p.clone()), Selected::ByPod);
    assert_eq!(a.outcome.kind(), "injected");
    // The annotation wins over the label.
    p["metadata"]["annotations"] = json!({"custody.dev/inject": "false"});
    let (a, _) = answer(&c, &request(p), Selected::ByPod);
    assert_eq!(a.outcome, Outcome::Skipped("opted_out"));
}

#[test]
fn an_inject_value_other_than_true_or_false_is_denied() {
    let mut p = pod();
    p["metadata"]["annotations"] = json!({"custody.dev/inject": "yes"});
    let (a, body) = answer(&cfg(""), &request(p), Selected::ByNamespace);
    assert_eq!(a.outcome.kind(), "denied");
    assert_eq!(body["response"]["allowed"], false);
    assert_eq!(body["response"]["status"]["code"], 400);
    let message = body["response"]["status"]["message"]
        .as_str()
        .expect("message");
    assert!(
        message.contains("must be \"true\" or \"false\""),
        "{message}"
    );
}

#[test]
fn the_own_namespace_is_read_from_the_object_when_the_request_lacks_it() {
    let mut r = request(pod());
    r["request"]
        .as_object_mut()
        .expect("request")
        .remove("namespace");
    r["request"]["object"]["metadata"]["namespace"] = json!("custody-system");
    let (a, _) = answer(&cfg(""), &r, Selected::ByNamespace);
    assert_eq!(a.outcome, Outcome::Skipped("own_namespace"));
    assert_eq!(a.namespace.as_deref(), Some("custody-system"));
}

#[test]
fn host_network_follows_the_config() {
    let mut p = pod();
    p["spec"]["hostNetwork"] = json!(true);
    let (a, body) = answer(&cfg(""), &request(p.clone()), Selected::ByNamespace);
    assert_eq!(a.outcome, Outcome::Skipped("host_network"));
    assert!(body["response"]["warnings"][0].as_str().is_some());
    assert!(body["response"].get("patch").is_none());
    let (a, _) = answer(
        &cfg("host_network: deny\n"),
        &request(p.clone()),
        Selected::ByNamespace,
    );
    assert_eq!(a.outcome.kind(), "denied");
    let (a, body) = answer(
        &cfg("host_network: inject\n"),
        &request(p),
        Selected::ByNamespace,
    );
    assert_eq!(a.outcome.kind(), "injected");
    assert!(
        body["response"]["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("node's network"))
    );
}

#[test]
fn windows_pods_are_skipped_with_a_warning() {
    let mut p = pod();
    p["spec"]["os"] = json!({"name": "windows"});
    let (a, body) = answer(&cfg(""), &request(p), Selected::ByNamespace);
    assert_eq!(a.outcome, Outcome::Skipped("windows"));
    assert!(body["response"]["warnings"].is_array());
}

#[test]
fn annotations_override_the_defaults() {
    let mut p = pod();
    p["metadata"]["annotations"] = json!({
        "custody.dev/mode": "intercept",
        "custody.dev/config-configmap": "team-custody",
        "custody.dev/memory-request": "128Mi",
        "custody.dev/cpu-limit": "1",
    });
    let (a, body) = answer(&cfg(""), &request(p), Selected::ByNamespace);
    assert_eq!(
        a.outcome,
        Outcome::Injected {
            mode: Mode::Intercept,
            ops: 9
        }
    );
    let ops = patch_ops(&body);
    let volumes = ops
        .iter()
        .find(|o| o["path"] == "/spec/volumes")
        .expect("volumes");
    assert_eq!(volumes["value"][2]["configMap"]["name"], "team-custody");
    let env = ops
        .iter()
        .find(|o| o["path"] == "/spec/containers/0/env")
        .expect("env");
    let names: Vec<&str> = env["value"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(names.contains(&"HTTPS_PROXY") && names.contains(&"SSL_CERT_FILE"));
    assert!(!names.contains(&"OPENAI_BASE_URL"));
    let sidecar = &ops.last().expect("sidecar")["value"][0];
    assert_eq!(sidecar["resources"]["requests"]["memory"], "128Mi");
    assert_eq!(sidecar["resources"]["limits"]["cpu"], "1");
}

#[test]
fn a_request_above_its_limit_is_denied() {
    let mut p = pod();
    p["metadata"]["annotations"] = json!({"custody.dev/memory-request": "1Gi"});
    let (a, _) = answer(&cfg(""), &request(p), Selected::ByNamespace);
    let Outcome::Denied(message) = a.outcome else {
        panic!("not denied: {:?}", a.outcome)
    };
    assert!(
        message.contains("1Gi is more than the limit 256Mi"),
        "{message}"
    );
}

#[test]
fn port_and_mount_conflicts_are_denied() {
    let mut p = pod();
    p["spec"]["containers"][0]["ports"] = json!([{"containerPort": 15080}]);
    p["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "x", "mountPath": "/run/custody"}]);
    p["spec"]["volumes"] =
        json!([{"name": "x", "emptyDir": {}}, {"name": "custody-run", "emptyDir": {}}]);
    let (a, _) = answer(&cfg(""), &request(p), Selected::ByNamespace);
    let Outcome::Denied(message) = a.outcome else {
        panic!("not denied: {:?}", a.outcome)
    };
    for needle in [
        "port 15080",
        "already mounts /run/custody",
        "\"custody-run\"",
    ] {
        assert!(message.contains(needle), "{needle} not in {message}");
    }
}

#[test]
fn init_containers_present_get_the_sidecar_first() {
    let mut p = pod();
    p["spec"]["initContainers"] = json!([{"name": "migrate", "image": "m:1"}]);
    let (_, body) = answer(&cfg(""), &request(p), Selected::ByNamespace);
    let last = patch_ops(&body).pop().expect("op");
    assert_eq!(last["path"], "/spec/initContainers/0");
    assert_eq!(last["value"]["restartPolicy"], "Always");
}

#[test]
fn delete_and_connect_are_allowed_unchanged() {
    for op in ["DELETE", "CONNECT", "UPDATE"] {
        let mut r = request(pod());
        r["request"]["operation"] = json!(op);
        let (a, body) = answer(&cfg(""), &r, Selected::ByNamespace);
        assert_eq!(a.outcome, Outcome::Skipped("not_create"));
        assert_eq!(body["response"]["allowed"], true);
        assert_eq!(body["response"]["uid"], "u-1");
    }
}

#[test]
fn envelopes_without_a_uid_are_http_400() {
    let c = cfg("");
    for body in [
        &b"not json"[..],
        b"[]",
        b"{}",
        br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}"#,
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}"#,
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":""}}"#,
    ] {
        let a = review(body, &c, Selected::ByNamespace);
        assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(body));
        let e: Value = serde_json::from_slice(&a.body).expect("JSON error");
        assert_eq!(e["error"]["type"], "bad_request");
    }
    let deep = "[".repeat(100_000);
    assert_eq!(
        review(deep.as_bytes(), &c, Selected::ByNamespace).status,
        400
    );
    assert_eq!(too_large(10).status, 413);
}

#[test]
fn a_pod_with_a_thousand_containers_is_answered() {
    let mut p = pod();
    p["spec"]["containers"] = (0..1000)
        .map(|i| json!({"name": format!("c{i}"), "image": "app:1", "env": [{"name": "A", "value": "b"}]}))
        .collect();
    let (a, body) = answer(&cfg(""), &request(p), Selected::ByNamespace);
    assert_eq!(a.outcome.kind(), "injected");
    assert!(patch_ops(&body).len() > 3000);
}

/// Every part of a pod replaced by every other JSON type: never a panic, always an
/// AdmissionReview answer (the envelope is intact).
#[test]
fn any_shape_of_pod_is_answered_without_panicking() {
    let mut p = pod();
    p["metadata"]["annotations"] = json!({"custody.dev/mode": "intercept"});
    p["metadata"]["labels"] = json!({"app": "x"});
    p["spec"]["initContainers"] =
        json!([{"name": "i", "image": "i", "env": [], "volumeMounts": []}]);
    p["spec"]["volumes"] = json!([{"name": "v", "emptyDir": {}}]);
    p["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "b"}]);
    p["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
    let replacements = [
        Value::Null,
        json!(true),
        json!(-1),
        json!(1.5),
        json!("s"),
        json!([]),
        json!([null]),
        json!({}),
    ];
    let mut paths = Vec::new();
    collect_paths(&p, String::new(), &mut paths);
    let c = cfg("");
    let mut answered = 0;
    for path in &paths {
        for r in &replacements {
            let mut variant = p.clone();
            if let Some(slot) = variant.pointer_mut(path) {
                *slot = r.clone();
            }
            let a = review(
                request(variant).to_string().as_bytes(),
                &c,
                Selected::ByNamespace,
            );
            assert_eq!(a.status, 200, "{path} = {r}");
            answered += 1;
        }
    }
    assert!(answered > 100, "{answered}");
}

fn collect_paths(v: &Value, here: String, out: &mut Vec<String>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                collect_paths(
                    v,
                    format!("{here}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                collect_paths(v, format!("{here}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_injected_annotation_alone_does_not_skip_a_pod() {
    let c = cfg("");
    let mut p = pod();
    p["metadata"]["annotations"] = json!({"custody.dev/injected": "anything"});
    let (a, body) = answer(&c, &request(p.clone()), Selected::ByNamespace);
    assert_eq!(a.outcome.kind(), "injected");
    let warning = body["response"]["warnings"][0].as_str().expect("warning");
    assert!(warning.contains("\"anything\" is false"), "{warning}");
    // With the container (in either list), the claim holds.
    for list in ["containers", "initContainers"] {
        let mut q = p.clone();
        let sidecar = json!({"name": "custody", "image": "registry.example/custody:1"});
        match q["spec"][list].as_array_mut() {
            Some(items) => items.push(sidecar),
            None => q["spec"][list] = json!([sidecar]),
        }
        let (a, body) = answer(&c, &request(q.clone()), Selected::ByNamespace);
        assert_eq!(a.outcome, Outcome::Skipped("already_injected"), "{list}");
        // Without the current sidecar hash (a template injected offline under other
        // settings), the answer says so.
        let warning = body["response"]["warnings"][0].as_str().expect("warning");
        assert!(warning.contains("sidecar-hash missing"), "{warning}");
        q["metadata"]["annotations"]["custody.dev/sidecar-hash"] = json!(crate::sidecar_hash(&c));
        let (_, body) = answer(&c, &request(q), Selected::ByNamespace);
        assert!(body["response"].get("warnings").is_none(), "{list}");
    }
}

#[test]
fn mandatory_namespaces_ignore_opt_outs() {
    let c = cfg("mandatory_namespaces: [agents]\n");
    let mut p = pod();
    p["metadata"]["labels"] = json!({"custody.dev/inject": "false"});
    let (a, body) = answer(&c, &request(p.clone()), Selected::ByNamespace);
    assert_eq!(a.outcome.kind(), "injected");
    assert_eq!(
        body["response"]["warnings"][0],
        "custody: custody.dev/inject: \"false\" is not allowed in mandatory namespace agents (the sidecar is injected)"
    );
    // On the opt-in path too, and a pod that says nothing.
    let (a, _) = answer(&c, &request(pod()), Selected::ByPod);
    assert_eq!(a.outcome.kind(), "injected");
    // Pods custody cannot run in are refused there, not let through.
    for (key, value) in [
        ("hostNetwork", json!(true)),
        ("os", json!({"name": "windows"})),
    ] {
        let mut q = pod();
        q["spec"][key] = value;
        let (a, _) = answer(&c, &request(q.clone()), Selected::ByNamespace);
        assert!(
            matches!(&a.outcome, Outcome::Denied(m) if m.contains("mandatory")),
            "{key}: {:?}",
            a.outcome
        );
        let (a, _) = answer(&cfg(""), &request(q), Selected::ByNamespace);
        assert_eq!(a.outcome.kind(), "skipped", "{key}");
    }
    // Elsewhere the opt-out holds.
    let (a, _) = answer(
        &cfg("mandatory_namespaces: [other]\n"),
        &request(p),
        Selected::ByNamespace,
    );
    assert_eq!(a.outcome, Outcome::Skipped("opted_out"));
}

#[test]
fn annotations_outside_the_allow_list_or_above_the_bounds_are_denied() {
    let c = cfg(
        "allowed_annotations: [custody.dev/memory-limit]\nmax_resources: {limits: {memory: 1Gi, cpu: '2'}}\n",
    );
    let mut p = pod();
    p["metadata"]["annotations"] = json!({
        "custody.dev/inject": "true",
        "custody.dev/config-configmap": "elsewhere",
        "custody.dev/memory-limit": "2Gi",
    });
    let (a, _) = answer(&c, &request(p.clone()), Selected::ByNamespace);
    let Outcome::Denied(message) = a.outcome else {
        panic!("not denied: {:?}", a.outcome)
    };
    assert!(
        message.contains("annotation(s) \"custody.dev/config-configmap\" not allowed"),
        "{message}"
    );
    assert!(
        message.contains(
            "custody.dev/memory-limit: \"2Gi\" is above the bound 1Gi (max_resources.limits.memory)"
        ),
        "{message}"
    );
    p["metadata"]["annotations"] = json!({"custody.dev/memory-limit": "1Gi"});
    let (a, _) = answer(&c, &request(p), Selected::ByNamespace);
    assert_eq!(a.outcome.kind(), "injected");
}

fn grace_after(c: &InjectConfig, grace: Option<i64>) -> (Option<Value>, Vec<String>) {
    let mut p = pod();
    if let Some(g) = grace {
        p["spec"]["terminationGracePeriodSeconds"] = json!(g);
    }
    let (a, body) = answer(c, &request(p), Selected::ByNamespace);
    assert_eq!(a.outcome.kind(), "injected");
    let set = patch_ops(&body)
        .into_iter()
        .find(|o| o["path"] == "/spec/terminationGracePeriodSeconds")
        .map(|o| o["value"].clone());
    let warnings = body["response"]["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w.as_str().map(String::from))
        .collect();
    (set, warnings)
}

#[test]
fn the_grace_period_is_raised_for_the_sidecar_or_checked() {
    // Native: the pod's (or the default 30) plus sidecar_seconds.
    let native = cfg("");
    assert_eq!(grace_after(&native, None).0, Some(json!(60)));
    let (set, warnings) = grace_after(&native, Some(5));
    assert_eq!(set, Some(json!(35)));
    assert!(
        warnings[0].contains("raised from 5 (the pod's) to 35"),
        "{warnings:?}"
    );
    // Legacy: stopped with the apps, so at least sidecar_seconds.
    let legacy = cfg("native_sidecar: false\ntermination_grace: {sidecar_seconds: 40}\n");
    assert_eq!(grace_after(&legacy, Some(5)).0, Some(json!(40)));
    assert_eq!(grace_after(&legacy, Some(120)), (None, vec![]));
    // Warn: unchanged, a warning when shorter than what custody needs.
    let warn = cfg("termination_grace: {action: warn}\n");
    let (set, warnings) = grace_after(&warn, Some(5));
    assert_eq!(set, None);
    assert!(
        warnings[0].contains(
            "terminationGracePeriodSeconds 5 (the pod's) leaves custody less than the 30 s"
        ),
        "{warnings:?}"
    );
    assert_eq!(grace_after(&warn, Some(30)), (None, vec![]));
    assert_eq!(
        grace_after(&cfg("termination_grace: {sidecar_seconds: 0}\n"), None),
        (None, vec![])
    );
}

#[test]
fn pull_secrets_ids_and_the_sidecar_annotations() {
    let c = cfg(
        "image_pull_secrets: [regcred, other, regcred]\nrun_as_user: null\nrun_as_group: null\nconfig_hash: v2\n",
    );
    let mut p = pod();
    p["spec"]["imagePullSecrets"] = json!([{"name": "other"}]);
    let (_, body) = answer(&c, &request(p), Selected::ByNamespace);
    let ops = patch_ops(&body);
    let secrets: Vec<&Value> = ops
        .iter()
        .filter(|o| {
            o["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/spec/imagePullSecrets"))
        })
        .collect();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0]["path"], "/spec/imagePullSecrets/-");
    assert_eq!(secrets[0]["value"], json!({"name": "regcred"}));
    let sidecar = &ops.last().expect("sidecar")["value"][0];
    let sc = sidecar["securityContext"]
        .as_object()
        .expect("securityContext");
    assert!(!sc.contains_key("runAsUser") && !sc.contains_key("runAsGroup"));
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(ops[0]["path"], "/metadata/annotations");
    let annotations = &ops[0]["value"];
    assert_eq!(
        annotations["custody.dev/sidecar-image"],
        "registry.example/custody:1"
    );
    assert_eq!(
        annotations["custody.dev/sidecar-hash"],
        crate::sidecar_hash(&c)
    );
    assert_ne!(crate::sidecar_hash(&c), crate::sidecar_hash(&cfg("")));
}
