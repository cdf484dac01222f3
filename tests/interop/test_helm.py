"""The Helm chart (helm/custody) and the deployment material (deploy/), offline.

Helm's own Go SDK (PyPI helm-python-sdk) lints and renders the chart; the rendered
manifests and deploy/examples are validated against the Kubernetes 1.30 OpenAPI
schemas (PyPI kubernetes-validate, strict: unknown fields are errors) and yamllint;
then the objects are checked for what the chart promises: the webhook's opt-in
selectors, certificates, the injector's availability and hardening, the sidecar's
inject.yaml and a custody.yaml that uses only keys docs/configuration.md documents.

The custody binary is optional here: when CUSTODY_BIN (or target/debug/custody)
exists, the rendered custody.yaml and policy also go through `custody config check`
and `custody policy check`; otherwise those two tests are skipped.
"""

import base64
import copy
import datetime
import functools
import json
import os
import pathlib
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import helm_python as helm
import jsonpatch
from helm_python import _native as helm_native
import kubernetes_validate
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding
from yamllint import linter as yamllint_linter
from yamllint.config import YamlLintConfig

REPO = pathlib.Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "custody"
DEPLOY = REPO / "deploy"
K8S_VERSION = "1.30.0"
RELEASE = "custody"
NAMESPACE = "custody-system"

# Custom resources: kubernetes-validate has no schema for them (their CRDs are not
# part of Kubernetes); they are skipped there and checked structurally below.
CRD_KINDS = {
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "Certificate"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}

def merged(base: dict, extra: dict) -> dict:
    """Helm's merge of values: maps key by key, everything else replaced."""
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


# What every install must say: the image (none is published) and, with the chart's
# local default sink, that keeping audit files in the pod is acknowledged.
BASE = {"image": {"repository": "registry.example.com/custody"}, "config": {"allowLocalSink": True}}
MONITORING = {"monitoring": {"labels": {"release": "kube-prometheus-stack"},
                             "podMonitor": {"enabled": True},
                             "serviceMonitor": {"enabled": True},
                             "prometheusRule": {"enabled": True}}}
CERT_MANAGER = {"tls": {"certManager": {"enabled": True}}}
VALUE_SETS = {
    "default": BASE,
    "cert-manager": merged(BASE, CERT_MANAGER),
    "monitoring": merged(BASE, MONITORING),
    "typical": yaml.safe_load((DEPLOY / "values-typical.yaml").read_text()),
    "everything": {
        **BASE,
        "workloadNamespaces": ["agents", "bots"],
        "providerKeys": {"create": True, "keys": {"openai": "sk-test", "anthropic": "sk-ant-test"}},
        "digestKey": {"create": True, "key": "digest-key-material"},
        "tls": {"certManager": {"enabled": True,
                                "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}},
        "webhook": {"podOptIn": "annotation", "namespaceEntry": {"failurePolicy": "Ignore"}, "timeoutSeconds": 3,
                    "reinvocationPolicy": "IfNeeded", "mandatoryNamespaces": ["regulated"]},
        "sidecar": {"nativeSidecar": False, "mode": "intercept",
                    "image": {"repository": "registry.example.com/custody", "tag": "dev"},
                    "imagePullSecrets": [{"name": "regcred"}, "corp-registry"],
                    "runAsUser": None, "runAsGroup": None, "hostNetwork": "deny",
                    "spool": {"volume": "ephemeral", "storageClass": "retained-ssd", "retain": True},
                    "terminationGrace": {"action": "warn", "marginSeconds": 10},
                    "allowedAnnotations": ["custody.dev/mode"],
                    "maxResources": {"requests": {"cpu": None, "memory": "512Mi"},
                                     "limits": {"cpu": None, "memory": "1Gi"}},
                    "maxSpoolSizeLimit": None,
                    "appEnv": {"common": {"CUSTODY_SOCKET": "/run/custody/custody.sock"}},
                    "configHash": "release-42"},
        "image": {"repository": "registry.example.com/custody", "digest": "sha256:" + "ab" * 32},
        "injector": {"replicas": 3, "antiAffinity": "hard", "priorityClassName": "system-cluster-critical",
                     "extraEnv": [{"name": "RUST_BACKTRACE", "value": "1"}],
                     "podAnnotations": {"example.com/team": "platform"}},
        "serviceAccount": {"annotations": {"example.com/owner": "platform"}},
        **MONITORING,
    },
    # Compaction on: an S3-compatible sink, the chart's digest key, credentials from a
    # Secret, and the scheduling knobs.
    "compaction": merged(BASE, {
        "config": {"allowLocalSink": False,
                   "custody": {"audit": {"sink": "s3://acme-ai-audit/custody",
                                         "s3": {"endpoint": "http://minio.storage:9000", "region": "eu-west-1",
                                                "path_style": True}}}},
        "workloadNamespaces": ["agents"],
        "digestKey": {"create": True, "key": "digest-key-material"},
        "imagePullSecrets": [{"name": "regcred"}],
        "compaction": {
            "enabled": True,
            "env": [{"name": "AWS_ACCESS_KEY_ID",
                     "valueFrom": {"secretKeyRef": {"name": "minio-compaction", "key": "access-key-id"}}},
                    {"name": "AWS_SECRET_ACCESS_KEY",
                     "valueFrom": {"secretKeyRef": {"name": "minio-compaction", "key": "secret-access-key"}}}],
            "envFrom": [{"configMapRef": {"name": "compaction-extra"}}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [
                    {"key": "node-role", "operator": "In", "values": ["batch"]}]}}]}},
        },
    }),
    "single-replica": {**BASE,
                       "injector": {"replicas": 1, "antiAffinity": "none"},
                       "config": {"create": False, "existingConfigMap": "my-custody-config"},
                       "policy": {"create": False, "existingConfigMap": "my-custody-policy"},
                       "serviceAccount": {"create": False, "name": "custody-injector"}},
}


# --- rendering -------------------------------------------------------------


@functools.cache
def _chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def render_files(values: dict, namespace: str = NAMESPACE, kube_version: str = K8S_VERSION) -> dict[str, str]:
    """`helm template --kube-version`: the SDK's Chart.render has no kube_version
    argument, but its native render takes one (it sets .Capabilities.KubeVersion)."""
    opts = {"name": RELEASE, "namespace": namespace, "is_install": True, "kube_version": "v" + kube_version}
    return json.loads(helm_native.call_string("helm_render", _chart()._raw(), json.dumps(values), json.dumps(opts)))


@functools.cache
def _render_set(name: str) -> tuple:
    return tuple(manifests(render_files(VALUE_SETS[name])))


def manifests(files: dict[str, str]) -> list[dict]:
    """The objects `helm template` would print, NOTES.txt aside."""
    out = []
    for path, text in sorted(files.items()):
        if path.endswith(".yaml"):
            out.extend(d for d in yaml.safe_load_all(text) if d)
    return out


def objects(name_or_values, kind: str) -> list[dict]:
    docs = (_render_set(name_or_values) if isinstance(name_or_values, str)
            else manifests(render_files(merged(BASE, name_or_values))))
    return [d for d in docs if d["kind"] == kind]


def one(name_or_values, kind: str) -> dict:
    found = objects(name_or_values, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def helm_template_text(files: dict[str, str]) -> str:
    """The rendered stream as `helm template` prints it."""
    parts = [f"---\n# Source: {path}\n{text}\n" for path, text in sorted(files.items())
             if path.endswith(".yaml") and text.strip()]
    return "".join(parts).rstrip("\n") + "\n"


def config_file(name_or_values, key: str) -> dict:
    """A file of the release-namespace ConfigMap that holds `key`, parsed."""
    for cm in objects(name_or_values, "ConfigMap"):
        if cm["metadata"]["namespace"] == NAMESPACE and key in cm.get("data", {}):
            return yaml.safe_load(cm["data"][key])
    raise AssertionError(f"no ConfigMap with {key}")


def webhooks(name_or_values) -> dict[str, dict]:
    mwc = one(name_or_values, "MutatingWebhookConfiguration")
    return {w["name"]: w for w in mwc["webhooks"]}


def injector(name_or_values) -> dict:
    return one(name_or_values, "Deployment")


# --- lint, schemas, yamllint -----------------------------------------------


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_lint_strict_is_clean(value_set):
    report = helm.lint(CHART, copy.deepcopy(VALUE_SETS[value_set]), strict=True,
                       namespace=NAMESPACE, kube_version="v" + K8S_VERSION)
    assert report["errors"] == []
    # Severity 1 is informational ("icon is recommended"); 2 (warning) fails --strict.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_rendered_manifests_pass_kubernetes_schemas(value_set):
    docs = _render_set(value_set)
    assert docs
    checked = 0
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        checked += 1
    assert checked >= 5  # Deployment, Service, Secret, inject ConfigMap, webhook at least


def test_schema_validation_is_strict():
    """The validator above is not vacuous: a typo in a Deployment is an error."""
    bad = copy.deepcopy(injector("default"))
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_kubernetes_validate_command_line(tmp_path):
    """The command line, as SREs run it, on the default render and deploy/examples."""
    rendered = tmp_path / "rendered.yaml"
    plain = [d for d in _render_set("typical") if (d["apiVersion"], d["kind"]) not in CRD_KINDS]
    rendered.write_text(yaml.safe_dump_all(plain))
    examples = sorted(str(p) for p in (DEPLOY / "examples").glob("*.yaml"))
    assert examples
    tool = pathlib.Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run([str(tool), "--strict", "-k", K8S_VERSION, "--quiet", str(rendered), *examples],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("value_set", ["default", "everything", "compaction"])
def test_rendered_output_passes_yamllint(value_set):
    conf = YamlLintConfig(
        "extends: default\n"
        "rules:\n"
        "  line-length: disable\n"  # base64 certificates
        "  indentation: {spaces: consistent, indent-sequences: whatever}\n")
    text = helm_template_text(render_files(VALUE_SETS[value_set]))
    problems = [f"{p.line}: {p.rule}: {p.desc}" for p in yamllint_linter.run(text, conf) if p.level == "error"]
    assert problems == []


def test_deploy_files_pass_yamllint():
    conf = YamlLintConfig("extends: default\nrules:\n  line-length: {max: 120}\n  document-start: disable\n")
    for path in [*(DEPLOY / "examples").glob("*.yaml"), DEPLOY / "values-typical.yaml", CHART / "values.yaml"]:
        problems = [f"{path.name}:{p.line}: {p.rule}: {p.desc}"
                    for p in yamllint_linter.run(path.read_text(), conf) if p.level == "error"]
        assert problems == []


@pytest.mark.parametrize("values, where", [
    ({"injector": {"replicas": "2"}}, "/injector/replicas"),
    ({"injector": {"replicas": 0}}, "/injector/replicas"),
    ({"sidecar": {"mode": "sideways"}}, "/sidecar/mode"),
    ({"webhook": {"failurePolicy": "Maybe"}}, "/webhook/failurePolicy"),
    ({"webhook": {"timeoutSeconds": 31}}, "/webhook/timeoutSeconds"),
    ({"webhook": {"podOptIn": "everything"}}, "/webhook/podOptIn"),
    ({"injector": {"antiAffinity": "strict"}}, "/injector/antiAffinity"),
    ({"replicas": 2}, "replicas"),  # a typo at the top level
    ({"image": {"digest": "sha256:nothex"}}, "/image/digest"),
    ({"workloadNamespaces": ["Not_A_Namespace"]}, "/workloadNamespaces/0"),
    ({"config": {"create": False}}, "/config/existingConfigMap"),
    ({"providerKeys": {"create": True}}, "/providerKeys/keys"),
    ({"tls": {"certManager": {"duration": "one year"}}}, "/tls/certManager/duration"),
    ({"monitoring": {"podMonitor": {"portName": "a-port-name-longer-than-15"}}}, "/monitoring/podMonitor/portName"),
])
def test_values_schema_rejects_bad_values(values, where):
    with pytest.raises(helm.HelmValuesError) as err:
        _chart().validate_schema(values)
    assert where in str(err.value)
    # Rendering enforces the schema as well.
    with pytest.raises(helm.HelmValuesError):
        render_files(values)


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_values_schema_accepts_the_value_sets(value_set):
    _chart().validate_schema(copy.deepcopy(VALUE_SETS[value_set]))


def test_secrets_need_workload_namespaces():
    with pytest.raises(helm.HelmError, match="workloadNamespaces"):
        render_files(merged(BASE, {"providerKeys": {"create": True, "keys": {"openai": "k"}}}))


# --- the webhook -------------------------------------------------------------


def _ca_and_leaf(value_set="default"):
    secret = next(s for s in objects(value_set, "Secret") if s["metadata"]["name"].endswith("-webhook-tls"))
    assert secret["type"] == "kubernetes.io/tls"
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    return secret, data


def test_webhook_has_ca_bundle_of_the_generated_ca():
    secret, data = _ca_and_leaf()
    ca = x509.load_pem_x509_certificate(data["ca.crt"])
    leaf = x509.load_pem_x509_certificate(data["tls.crt"])
    for name, hook in webhooks("default").items():
        bundle = base64.b64decode(hook["clientConfig"]["caBundle"])
        assert bundle == data["ca.crt"]
        path = {"namespace.inject.custody.dev": "/mutate", "pod.inject.custody.dev": "/mutate/opt-in"}[name]
        assert hook["clientConfig"]["service"] == {
            "name": "custody-injector", "namespace": NAMESPACE, "path": path, "port": 443}
    # The serving certificate is signed by that CA and names the Service.
    ca.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, padding.PKCS1v15(),
                           leaf.signature_hash_algorithm)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert f"custody-injector.{NAMESPACE}.svc" in names
    assert f"custody-injector.{NAMESPACE}.svc.cluster.local" in names
    assert leaf.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc) > datetime.timedelta(days=3000)
    # The injector mounts exactly this Secret.
    volumes = {v["name"]: v for v in injector("default")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["webhook-tls"]["secret"]["secretName"] == secret["metadata"]["name"]


def test_generated_certificate_is_reused_on_upgrade():
    """webhook.yaml hands what `lookup` finds (nothing offline) to custody.webhookTLS;
    that helper's behaviour with an existing Secret is tested in
    test_generated_certificate_rotation_keeps_the_old_ca."""
    source = (CHART / "templates" / "webhook.yaml").read_text()
    assert re.search(r'lookup "v1" "Secret" \.Release\.Namespace \$secretName', source)
    assert 'include "custody.webhookTLS" (dict "root" . "existing" $existing)' in source


def test_failure_policy_and_timeout_come_from_values():
    for hook in webhooks("default").values():
        assert hook["failurePolicy"] == "Fail"  # label opt-in: only opted-in pods reach it
        assert hook["timeoutSeconds"] == 10
        assert hook["sideEffects"] == "None"
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["rules"] == [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                  "resources": ["pods"], "scope": "Namespaced"}]
    policies = {name: (h["failurePolicy"], h["timeoutSeconds"], h["reinvocationPolicy"])
                for name, h in webhooks("everything").items()}
    assert policies == {"namespace.inject.custody.dev": ("Ignore", 3, "IfNeeded"),
                        "pod.inject.custody.dev": ("Ignore", 3, "IfNeeded"),
                        "mandatory.inject.custody.dev": ("Fail", 3, "IfNeeded")}


def _matches(selector: dict, labels: dict) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    for k, v in selector.get("matchLabels", {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions", []):
        key, op, values = e["key"], e["operator"], e.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _called_by(hooks: dict, namespace: str, ns_labels: dict, pod_labels: dict) -> list[str]:
    ns_labels = {**ns_labels, "kubernetes.io/metadata.name": namespace}
    return [name for name, h in hooks.items()
            if _matches(h["namespaceSelector"], ns_labels) and _matches(h.get("objectSelector", {}), pod_labels)]


# The chart's documented default list (helm/custody/README.md, docs/kubernetes.md).
DEFAULT_EXCLUDED = ["kube-system", "kube-public", "kube-node-lease", "cert-manager", "ingress-nginx",
                    "calico-system", "calico-apiserver", "tigera-operator", "cilium", "gatekeeper-system",
                    "kyverno", "istio-system", "linkerd", "monitoring", "prometheus", "external-secrets",
                    "openshift-monitoring"]
NS_ENABLED = {"custody.dev/inject": "enabled"}
NS_DISABLED = {"custody.dev/inject": "disabled"}
POD_TRUE = {"app": "a", "custody.dev/inject": "true"}
POD_FALSE = {"app": "a", "custody.dev/inject": "false"}
POD_PLAIN = {"app": "a"}


@pytest.mark.parametrize("namespace, ns_labels, pod_labels, label_mode, annotation_mode", [
    # namespace opt-in: every pod but those labelled "false"
    ("agents", NS_ENABLED, POD_PLAIN, ["namespace"], ["namespace"]),
    ("agents", NS_ENABLED, POD_TRUE, ["namespace"], ["namespace"]),
    ("agents", NS_ENABLED, POD_FALSE, [], []),
    # pod opt-in elsewhere: by label; in annotation mode every pod goes to the webhook,
    # which reads the annotation
    ("apps", {}, POD_TRUE, ["pod"], ["pod"]),
    ("apps", {}, POD_PLAIN, [], ["pod"]),
    ("apps", {}, POD_FALSE, [], []),
    # a namespace labelled disabled wins over the pod
    ("apps", NS_DISABLED, POD_TRUE, [], []),
    # never: the release namespace and the excluded namespaces, whatever their labels
    (NAMESPACE, NS_ENABLED, POD_TRUE, [], []),
    ("kube-system", NS_ENABLED, POD_TRUE, [], []),
    ("kube-node-lease", {}, POD_TRUE, [], []),
])
def test_opt_in_selectors(namespace, ns_labels, pod_labels, label_mode, annotation_mode):
    """Kubernetes ANDs a webhook's namespaceSelector and objectSelector, so the chart
    has two entries; at most one of them ever matches a pod (no double injection)."""
    for values, expected in (({}, label_mode), ({"webhook": {"podOptIn": "annotation"}}, annotation_mode)):
        hooks = webhooks(values)
        called = _called_by(hooks, namespace, ns_labels, pod_labels)
        assert [c.split(".")[0] for c in called] == expected, (values, called)


def test_webhook_excludes_its_own_namespace():
    for namespace in (NAMESPACE, "security"):
        files = render_files(BASE, namespace=namespace)
        mwc = next(d for d in manifests(files) if d["kind"] == "MutatingWebhookConfiguration")
        for hook in mwc["webhooks"]:
            exclusion = [e for e in hook["namespaceSelector"]["matchExpressions"]
                         if e["key"] == "kubernetes.io/metadata.name"]
            assert exclusion == [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                  "values": [namespace, *DEFAULT_EXCLUDED]}]


def test_cert_manager_issues_the_certificate():
    docs = _render_set("cert-manager")
    assert not [d for d in docs if d["kind"] == "Secret"], "no Helm-generated Secret with cert-manager"
    mwc = one("cert-manager", "MutatingWebhookConfiguration")
    ref = mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert all("caBundle" not in h["clientConfig"] for h in mwc["webhooks"])
    certs = {c["metadata"]["name"]: c for c in objects("cert-manager", "Certificate")}
    issuers = {i["metadata"]["name"]: i for i in objects("cert-manager", "Issuer")}
    ns, name = ref.split("/")
    assert ns == NAMESPACE and name in certs
    serving = certs[name]["spec"]
    volumes = {v["name"]: v for v in injector("cert-manager")["spec"]["template"]["spec"]["volumes"]}
    assert serving["secretName"] == volumes["webhook-tls"]["secret"]["secretName"]
    assert f"custody-injector.{NAMESPACE}.svc" in serving["dnsNames"]
    assert "server auth" in serving["usages"]
    # The chart's own CA: selfSigned -> CA Certificate -> CA Issuer -> serving Certificate.
    ca_issuer = issuers[serving["issuerRef"]["name"]]
    assert serving["issuerRef"]["kind"] == "Issuer"
    ca_cert = next(c["spec"] for c in certs.values() if c["spec"].get("isCA"))
    assert ca_issuer["spec"]["ca"]["secretName"] == ca_cert["secretName"]
    assert "selfSigned" in issuers[ca_cert["issuerRef"]["name"]]["spec"]
    for obj in [*certs.values(), *issuers.values()]:
        assert obj["apiVersion"] == "cert-manager.io/v1"
        assert obj["metadata"]["namespace"] == NAMESPACE


def test_cert_manager_with_an_existing_issuer():
    assert objects("everything", "Issuer") == []
    cert = one("everything", "Certificate")
    assert cert["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}


# --- the injector ----------------------------------------------------------------


def test_injector_is_highly_available():
    deploy = injector("default")
    spec = deploy["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod_labels = spec["template"]["metadata"]["labels"]
    assert _matches(spec["selector"], pod_labels)
    terms = spec["template"]["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert terms[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert _matches(terms[0]["podAffinityTerm"]["labelSelector"], pod_labels)
    pdb = one("default", "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert _matches(pdb["spec"]["selector"], pod_labels)
    # hard anti-affinity, and no PDB that would block every drain with one replica
    hard = injector("everything")["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in hard
    assert objects("single-replica", "PodDisruptionBudget") == []
    assert "affinity" not in injector("single-replica")["spec"]["template"]["spec"]


def test_injector_probes_and_command():
    container = injector("default")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == [
        "webhook", "--listen", "0.0.0.0:8443",
        "--cert-file", "/etc/custody/webhook/tls.crt", "--key-file", "/etc/custody/webhook/tls.key",
        "--config", "/etc/custody/inject/inject.yaml", "--drain-delay", "10s", "--shutdown-grace", "10s"]
    assert container["ports"] == [{"name": "webhook", "containerPort": 8443, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        path = "/readyz" if probe == "readinessProbe" else "/healthz"
        assert container[probe]["httpGet"] == {"path": path, "port": "webhook", "scheme": "HTTPS"}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert set(mounts) == {"/etc/custody/webhook", "/etc/custody/inject"}
    assert all(m["readOnly"] for m in mounts.values())
    assert container["resources"]["limits"]["memory"]
    service = one("default", "Service")
    assert service["spec"]["ports"] == [{"name": "webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"}]
    assert service["spec"]["selector"] == injector("default")["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("value_set", ["default", "everything"])
def test_injector_is_hardened(value_set):
    pod = injector(value_set)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True
        assert isinstance(sc["runAsUser"], int) and sc["runAsUser"] > 0
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_service_account_and_no_rbac():
    sa = one("default", "ServiceAccount")
    assert sa["automountServiceAccountToken"] is False
    assert injector("default")["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    kinds = {d["kind"] for name in VALUE_SETS for d in _render_set(name)}
    assert not kinds & {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}
    assert objects("single-replica", "ServiceAccount") == []
    assert injector("single-replica")["spec"]["template"]["spec"]["serviceAccountName"] == "custody-injector"


# --- what the webhook injects: inject.yaml, custody.yaml, policy, Secrets --------------

# The keys of docs/injection.md's config file (`custody webhook` refuses unknown keys).
INJECT_KEYS = {"image", "image_pull_policy", "namespace", "exclude_namespaces", "native_sidecar", "mode",
               "resources", "config_configmap", "config_key", "policy_configmap", "provider_keys_secret",
               "digest_key_secret", "spool_size_limit",
               # the sidecar, its volumes and ports; policy on what workloads may ask for:
               "command", "host_network", "run_size_limit", "run_as_user", "run_as_group", "proxy_port",
               "admin_port",
               "mandatory_namespaces", "allowed_annotations", "max_resources", "max_spool_size_limit",
               "image_pull_secrets", "kube_version", "termination_grace", "spool_volume", "config_hash"}


def test_inject_yaml_defaults():
    inject = config_file("default", "inject.yaml")
    assert set(inject) == INJECT_KEYS
    container = injector("default")["spec"]["template"]["spec"]["containers"][0]
    assert inject["image"] == container["image"] == "registry.example.com/custody:0.1.0"
    assert inject["image_pull_policy"] == "IfNotPresent"
    assert inject["namespace"] == NAMESPACE
    assert inject["native_sidecar"] is True
    assert inject["exclude_namespaces"] == [NAMESPACE, *DEFAULT_EXCLUDED]
    assert inject["mode"] == "reverse"
    assert inject["resources"]["limits"]["memory"] == "256Mi"
    assert (inject["config_configmap"], inject["config_key"]) == ("custody-config", "custody.yaml")
    assert inject["policy_configmap"] == "custody-policy"
    assert inject["provider_keys_secret"] is None and inject["digest_key_secret"] is None
    assert inject["spool_size_limit"] == "2Gi"
    # The injector restarts when inject.yaml changes.
    annotations = injector("default")["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/inject-config"])


def test_inject_yaml_follows_values():
    inject = config_file("everything", "inject.yaml")
    assert inject["image"] == "registry.example.com/custody:dev"
    assert injector("everything")["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "registry.example.com/custody@sha256:" + "ab" * 32
    assert set(inject) == INJECT_KEYS | {"env"}
    assert (inject["native_sidecar"], inject["mode"]) == (False, "intercept")
    assert inject["provider_keys_secret"] == "custody-provider-keys"
    assert inject["digest_key_secret"] == "custody-digest-key"
    typical = config_file("typical", "inject.yaml")
    assert typical["provider_keys_secret"] == "llm-provider-keys"
    assert (typical["config_configmap"], typical["policy_configmap"]) == ("custody-config", "custody-policy")
    single = manifests(render_files(VALUE_SETS["single-replica"]))
    inject = next(yaml.safe_load(d["data"]["inject.yaml"]) for d in single if "inject.yaml" in d.get("data", {}))
    assert (inject["config_configmap"], inject["policy_configmap"]) == ("my-custody-config", "my-custody-policy")
    assert not [d for d in single if d["kind"] == "ConfigMap" and {"custody.yaml", "policy.yaml"} & set(d["data"])]


def test_per_namespace_objects_go_to_every_workload_namespace():
    by_ns = {}
    for d in _render_set("everything"):
        if d["kind"] in ("ConfigMap", "Secret"):
            by_ns.setdefault(d["metadata"]["namespace"], set()).add(d["metadata"]["name"])
    sidecar_objects = {"custody-config", "custody-policy", "custody-provider-keys", "custody-digest-key"}
    assert sidecar_objects <= by_ns["agents"] and sidecar_objects <= by_ns["bots"]
    # Keys are not copied where nothing uses them.
    assert not {"custody-provider-keys", "custody-digest-key"} & by_ns[NAMESPACE]
    secret = next(s for s in objects("everything", "Secret")
                  if s["metadata"]["name"] == "custody-provider-keys" and s["metadata"]["namespace"] == "agents")
    assert base64.b64decode(secret["data"]["openai"]) == b"sk-test"


def _section_tables(doc: str, heading: str) -> list[str]:
    """First-column `names` of the markdown tables between `heading` and the next ##."""
    body = doc.split(heading, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", body, re.M)


@functools.cache
def documented_keys() -> dict:
    """The keys docs/configuration.md documents, as a tree; None = not descended into
    (documented elsewhere or free-form)."""
    doc = (REPO / "docs" / "configuration.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    whole = yaml.safe_load(blocks[0])
    identity = next(yaml.safe_load(b) for b in blocks if b.startswith("identity:"))["identity"]
    policy = next(yaml.safe_load(b) for b in blocks if b.startswith("policy:"))["policy"]

    def tree(value):
        if isinstance(value, dict):
            return {k: tree(v) for k, v in value.items()}
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return [{k: tree(v) for item in value for k, v in item.items()}]
        return None

    keys = tree(whole)
    keys["identity"] = tree(identity)
    keys["policy"] = tree(policy)
    intercept = next(yaml.safe_load(b) for b in blocks if b.startswith("intercept:"))["intercept"]
    keys["intercept"] = tree(intercept)
    # The audit section's table documents dotted keys beyond the example (s3.region, ...).
    audit_body = doc.split("## `audit`", 1)[1].split("\n## ", 1)[0]
    for row in re.findall(r"^\| (`[^|]*) \|", audit_body, re.M):
        for dotted in re.findall(r"`([a-z0-9_]+(?:\.[a-z0-9_]+)*)`", row):
            node = keys["audit"]
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else None
                if node is None:
                    break
            if node is not None:
                node.setdefault(leaf, None)
    # `listen.unix` is a comment in the whole file (its default depends on the user).
    for name in _section_tables(doc, "## `listen`"):
        keys["listen"].setdefault(name, None)
    route = keys["routes"][0]
    per_route = doc.split("Per route (in `routes[]`):", 1)[1].split("\n## ", 1)[0]
    for name in _section_tables(doc, "## `routes`") + re.findall(r"^\| `([a-z_]+)` \|", per_route, re.M):
        route.setdefault(name, None)
    return keys


def undocumented(config, keys, path="") -> list[str]:
    if keys is None:
        return []
    if isinstance(keys, list):
        assert isinstance(config, list), path
        return [p for i, item in enumerate(config) for p in undocumented(item, keys[0], f"{path}[{i}]")]
    assert isinstance(config, dict), f"{path}: expected a mapping"
    out = []
    for k, v in config.items():
        where = f"{path}.{k}" if path else k
        out += [where] if k not in keys else undocumented(v, keys[k], where)
    return out


def test_documented_keys_are_read_from_the_docs():
    keys = documented_keys()
    assert {"listen", "routes", "audit", "policy", "identity", "shutdown", "sessions"} <= set(keys)
    assert set(keys["listen"]) == {"unix", "tcp", "admin", "allowed_hosts", "allowed_origins"}
    assert {"name", "prefix", "upstream", "kind", "tools", "credentials", "identity", "hosts"} <= set(keys["routes"][0])
    assert set(keys["intercept"]) == {"ca", "others", "tunnel", "leaf_cache_size", "leaf_lifetime"}
    assert set(keys["intercept"]["tunnel"]) == {"allow", "allow_internal"}
    assert {"sink", "spool", "roll"} <= set(keys["audit"])
    assert undocumented({"listen": {"admin": "x", "adnim": "y"}}, keys) == ["listen.adnim"]


@pytest.mark.parametrize("value_set", ["default", "typical"])
def test_sidecar_config_uses_only_documented_keys(value_set):
    config = config_file(value_set, "custody.yaml")
    # What the webhook and the chart rely on.
    assert config["listen"] == {"unix": "/run/custody/custody.sock", "tcp": "127.0.0.1:15080",
                                "admin": "0.0.0.0:15090"}
    assert config["policy"]["file"] == "/etc/custody/policy/policy.yaml"
    # On the data volume the webhook mounts at /var/lib/custody (docs/injection.md);
    # the typical values ship to object storage.
    assert config["audit"]["sink"] == {"default": "/var/lib/custody/audit",
                                       "typical": "s3://acme-ai-audit/custody"}[value_set]
    assert config["audit"]["spool"]["dir"] == "/var/lib/custody/spool"
    assert config["audit"]["spool"]["ephemeral"] is True  # an emptyDir
    assert [r["name"] for r in config["routes"]][:2] == ["openai", "anthropic"]
    missing = undocumented(config, documented_keys())
    assert missing == []


def test_a_digest_key_secret_turns_signed_digests_on():
    # Without a digest key: no digests.
    assert "digests" not in config_file("default", "custody.yaml")["audit"]
    # With one (rendered, or existing): signed with the key the webhook mounts.
    for values in ({"workloadNamespaces": ["agents"], "digestKey": {"create": True, "key": "k"}},
                   {"digestKey": {"existingSecret": "corp-digest-key"}}):
        cms = [c for c in objects(values, "ConfigMap") if "custody.yaml" in c.get("data", {})]
        assert cms
        for cm in cms:
            config = yaml.safe_load(cm["data"]["custody.yaml"])
            assert config["audit"]["digests"] == {"signing_key_file": "/etc/custody/digest/key"}
            assert config["audit"]["sink"] == "/var/lib/custody/audit"
    # An explicit audit.digests in the values wins.
    values = {"digestKey": {"existingSecret": "k"},
              "config": {"custody": {"audit": {"digests": {"interval": "10m",
                                                           "signing_key_file": "/other/key"}}}}}
    cm = next(c for c in objects(values, "ConfigMap") if "custody.yaml" in c.get("data", {}))
    assert yaml.safe_load(cm["data"]["custody.yaml"])["audit"]["digests"]["interval"] == "10m"


def test_starter_policy_parses():
    policy = config_file("default", "policy.yaml")
    assert policy["format"] == 1
    assert [r["name"] for r in policy["rules"]] == ["starter-allow-all"]


def _custody_bin() -> pathlib.Path | None:
    path = pathlib.Path(os.environ.get("CUSTODY_BIN", REPO / "target" / "debug" / "custody"))
    return path if path.exists() else None


@pytest.mark.parametrize("value_set", ["default", "typical"])
def test_custody_accepts_the_rendered_config_and_policy(value_set, tmp_path):
    binary = _custody_bin()
    if binary is None:
        pytest.skip("no custody binary (set CUSTODY_BIN or build target/debug/custody)")
    for cm in objects(value_set, "ConfigMap"):
        for name, text in cm.get("data", {}).items():
            (tmp_path / name).write_text(text)
    # `config check` reads every file the config names, as the sidecar would at
    # start: the pod's mounts, under tmp_path (the policy from its ConfigMap, keys
    # standing in for the Secrets).
    config = (tmp_path / "custody.yaml").read_text()
    root = tmp_path / "pod"
    for path in sorted(set(re.findall(r"(/etc/custody/[\w./-]+)", config))):
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.endswith("policy.yaml"):
            target.write_text((tmp_path / "policy.yaml").read_text())
        else:
            target.write_text("sk-test-key\n")
    (tmp_path / "custody.yaml").write_text(config.replace("/etc/custody/", f"{root}/etc/custody/"))
    check = subprocess.run([str(binary), "config", "check", "--config", str(tmp_path / "custody.yaml")],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "policy:" in check.stdout and "(read;" in check.stdout, check.stdout
    check = subprocess.run([str(binary), "policy", "check", str(tmp_path / "policy.yaml")],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


# --- the chart and `custody webhook` agree --------------------------------------


def _require_bin() -> pathlib.Path:
    binary = _custody_bin()
    if binary is None:
        pytest.skip("no custody binary (set CUSTODY_BIN or build target/debug/custody)")
    return binary


def _write_inject_files(value_set: str, tmp_path: pathlib.Path) -> dict[str, pathlib.Path]:
    """The rendered inject.yaml, and a serving certificate (the default render's
    generated one; the cert-manager renders have no Secret)."""
    cm = next(c for c in objects(value_set, "ConfigMap") if "inject.yaml" in c.get("data", {}))
    files = {"config": tmp_path / "inject.yaml", "cert": tmp_path / "tls.crt", "key": tmp_path / "tls.key"}
    files["config"].write_text(cm["data"]["inject.yaml"])
    _, data = _ca_and_leaf("default")
    files["cert"].write_bytes(data["tls.crt"])
    files["key"].write_bytes(data["tls.key"])
    return files


@pytest.mark.parametrize("value_set", ["default", "typical", "everything", "single-replica"])
def test_webhook_accepts_the_rendered_inject_yaml(value_set, tmp_path):
    """`custody webhook --check` refuses unknown keys and bad values (exit 2)."""
    binary = _require_bin()
    files = _write_inject_files(value_set, tmp_path)
    check = subprocess.run([str(binary), "webhook", "--check", "--config", str(files["config"]),
                            "--cert-file", str(files["cert"]), "--key-file", str(files["key"])],
                           capture_output=True, text=True, timeout=30,
                           env={k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_WEBHOOK_")})
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("value_set", ["default", "typical"])
def test_injector_args_are_flags_of_custody_webhook(value_set):
    binary = _require_bin()
    help_text = subprocess.run([str(binary), "webhook", "--help"], capture_output=True, text=True,
                               timeout=30, check=True).stdout
    known = set(re.findall(r"(?m)^\s+(?:-\w, )?(--[a-z][a-z-]*)", help_text))
    assert {"--listen", "--cert-file", "--key-file", "--config", "--check"} <= known
    container = injector(value_set)["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[0] == "webhook"
    flags = [a.split("=", 1)[0] for a in args[1:] if a.startswith("-")]
    assert flags and set(flags) <= known, set(flags) - known
    # Every flag here takes a value: flags and values alternate.
    assert args[1::2] == flags and len(args[1:]) == 2 * len(flags)
    # The files the args name are the mounted ones.
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    for flag in ("--cert-file", "--key-file", "--config"):
        value = args[args.index(flag) + 1]
        assert any(value.startswith(m + "/") for m in mounts), (flag, value)
    assert args[args.index("--listen") + 1].endswith(f":{container['ports'][0]['containerPort']}")


def _review(uid: str, namespace: str, annotations: dict | None = None) -> bytes:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "agent", "namespace": namespace, **({"annotations": annotations} if annotations else {})},
           "spec": {"containers": [{"name": "agent", "image": "agent:1"}]}}
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                                   "resource": {"group": "", "version": "v1", "resource": "pods"},
                                   "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                                   "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                                   "name": "agent", "namespace": namespace, "operation": "CREATE",
                                   "userInfo": {"username": "test"}, "object": pod, "dryRun": False}}).encode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_webhook_serves_the_paths_the_chart_calls(tmp_path):
    """The injector, run with the chart's args and inject.yaml, answers on both
    webhook entries' paths and the probes' paths; what it injects carries the label
    and port name the PodMonitor selects."""
    binary = _require_bin()
    files = _write_inject_files("default", tmp_path)
    container = injector("default")["spec"]["template"]["spec"]["containers"][0]
    args = list(container["args"])
    port = _free_port()
    rewrite = {"--listen": f"127.0.0.1:{port}", "--cert-file": str(files["cert"]),
               "--key-file": str(files["key"]), "--config": str(files["config"])}
    for i, a in enumerate(args):
        if a in rewrite:
            args[i + 1] = rewrite[a]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_WEBHOOK_")}
    env.update({"POD_NAMESPACE": NAMESPACE, "CUSTODY_LOG_FORMAT": "json"})
    proc = subprocess.Popen([str(binary), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    base = f"https://127.0.0.1:{port}"

    def call(path: str, body: bytes | None = None) -> tuple[int, dict | None]:
        req = urllib.request.Request(base + path, data=body, method="POST" if body else "GET",
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
                raw = resp.read()
                return resp.status, (json.loads(raw) if body else None)
        except urllib.error.HTTPError as err:
            return err.code, None

    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if call("/healthz")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the webhook did not start"
            time.sleep(0.1)
        # The probes' paths.
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert call(container[probe]["httpGet"]["path"])[0] == 200, probe
        # The ServiceMonitor's endpoint: /metrics on the webhook port, over its TLS,
        # with the metric families the alerts use.
        (endpoint,) = one("monitoring", "ServiceMonitor")["spec"]["endpoints"]
        with urllib.request.urlopen(base + endpoint["path"], context=ctx, timeout=5) as resp:
            metrics = resp.read().decode()
        served = set(re.findall(r"^# TYPE (\S+) ", metrics, re.M))
        webhook_metrics = _rule_metrics() - _rule_metrics(sidecar_only=True)
        assert webhook_metrics and webhook_metrics <= served, webhook_metrics - served
        assert call("/no-such-path")[0] == 404
        hooks = webhooks("default")
        paths = {name: h["clientConfig"]["service"]["path"] for name, h in hooks.items()}
        assert paths == {"namespace.inject.custody.dev": "/mutate", "pod.inject.custody.dev": "/mutate/opt-in"}
        pm = one("monitoring", "PodMonitor")
        for name, path in paths.items():
            status, answer = call(path, _review(f"uid-{name}", "apps"))
            assert status == 200, (name, path, status)
            response = answer["response"]
            assert response["uid"] == f"uid-{name}" and response["allowed"] is True
            # /mutate injects a plain pod of an opted-in namespace; /mutate/opt-in
            # leaves a pod that did not say "true" alone (podOptIn=annotation sends it).
            assert ("patch" in response) == (path == "/mutate"), (path, response)
        status, answer = call(paths["pod.inject.custody.dev"],
                              _review("uid-annotated", "apps", {"custody.dev/inject": "true"}))
        assert status == 200
        ops = json.loads(base64.b64decode(answer["response"]["patch"]))
        patched = jsonpatch.apply_patch(json.loads(_review("x", "apps", {"custody.dev/inject": "true"}))
                                        ["request"]["object"], ops)
        # The PodMonitor's selector and port name match the injected pod.
        for key, value in pm["spec"]["selector"]["matchLabels"].items():
            assert patched["metadata"]["labels"].get(key) == value, key
        sidecar = next(c for c in patched["spec"].get("initContainers", []) + patched["spec"]["containers"]
                       if c["name"] == "custody")
        assert pm["spec"]["podMetricsEndpoints"][0]["port"] in [p.get("name") for p in sidecar["ports"]]
        # Kubelet sends Host: <pod IP>:<port> for these probes; the admin listener
        # answers it (test_sidecar_probes_pass_the_host_check).
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert "httpHeaders" not in sidecar[probe]["httpGet"], probe
        # The default custody.yaml's files are on the volumes the patch mounts.
        config = config_file("default", "custody.yaml")
        mounts = {m["mountPath"]: m for m in sidecar["volumeMounts"]}
        assert config["audit"]["sink"].startswith("/var/lib/custody/") and "/var/lib/custody" in mounts
        assert config["audit"]["spool"]["dir"].startswith("/var/lib/custody/")
        assert not mounts["/var/lib/custody"].get("readOnly")
        assert config["policy"]["file"].startswith("/etc/custody/policy/") and "/etc/custody/policy" in mounts
        assert config["listen"]["unix"].startswith("/run/custody/") and "/run/custody" in mounts
        # Intercept mode: the bundle the app's SSL_CERT_FILE names is where custody exports it.
        assert config["intercept"]["ca"]["export_dir"] == "/run/custody/ca"
        # Tunnels to hosts no route claims: none unless listed (docs/interception.md).
        assert config["intercept"]["others"] == "tunnel"
        assert config["intercept"]["tunnel"] == {"allow": [], "allow_internal": []}
        assert not mounts["/run/custody"].get("readOnly")
        assert sidecar["args"][-1] == "/etc/custody/config/" + yaml.safe_load(
            files["config"].read_text())["config_key"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- monitoring ---------------------------------------------------------------


def test_monitoring_is_off_by_default():
    kinds = {d["kind"] for d in _render_set("default")}
    assert not kinds & {"PodMonitor", "PrometheusRule", "ServiceMonitor", "Certificate", "Issuer"}


def test_pod_monitor_scrapes_the_sidecars():
    pm = one("monitoring", "PodMonitor")
    assert pm["apiVersion"] == "monitoring.coreos.com/v1"
    assert pm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert pm["spec"]["selector"] == {"matchLabels": {"custody.dev/injected": "true"}}
    assert pm["spec"]["namespaceSelector"] == {"any": True}
    (endpoint,) = pm["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["scheme"]) == ("custody-admin", "/metrics", "http")
    limited = one({**MONITORING, "monitoring": {**MONITORING["monitoring"],
                                                "podMonitor": {"enabled": True, "namespaces": ["agents"]}}},
                  "PodMonitor")
    assert limited["spec"]["namespaceSelector"] == {"matchNames": ["agents"]}


def test_prometheus_rules():
    rule = one("monitoring", "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {"CustodyAuditBacklogGrowing", "CustodyAuditUploadsFailing",
                           "CustodyIdentityKeysUnusable", "CustodyDenialSpike", "CustodyAnomalousUsage",
                           "CustodyInjectorUnavailable", "CustodyWebhookRejections",
                           "CustodyWebhookFailOpen", "CustodyInjectorErrors"}
    assert "custody_audit_backlog_bytes > 268435456" in alerts["CustodyAuditBacklogGrowing"]["expr"]
    assert 'custody_audit_uploads_total{result="failed"}' in alerts["CustodyAuditUploadsFailing"]["expr"]
    assert 'custody_requests_total{decision="deny"}' in alerts["CustodyDenialSpike"]["expr"]
    assert "increase(custody_anomalies_total[10m])" in alerts["CustodyAnomalousUsage"]["expr"]
    assert 'deployment="custody-injector"' in alerts["CustodyInjectorUnavailable"]["expr"]
    for alert in alerts.values():
        assert re.fullmatch(r"[0-9]+[smh]", alert["for"])
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        # Prometheus templates survive Helm's templating.
        assert "{{ $labels" in alert["annotations"]["description"] or alert["alert"] == "CustodyInjectorUnavailable"
        assert alert["expr"].count("(") == alert["expr"].count(")")


def test_alerts_on_webhook_rejections_and_injector_errors():
    """The API server's view of the custody webhooks (refused pods; pods admitted
    without the sidecar under failurePolicy Ignore) and the injector's own count of
    denied and failed reviews."""
    rule = one("monitoring", "PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    names = {h for h in webhooks("everything")}
    rejections = alerts["CustodyWebhookRejections"]["expr"]
    match = re.search(r'apiserver_admission_webhook_rejection_count\{name=~"([^"]+)"\}', rejections)
    # PromQL strings unescape like Go's: "\\." is the regex \.
    pattern = match.group(1).replace("\\\\", "\\")
    assert all(re.fullmatch(pattern, n) for n in names), (pattern, names)
    assert not re.fullmatch(pattern, "inject.custodyXdev") and not re.fullmatch(pattern, "validate.gatekeeper.sh")
    fail_open = alerts["CustodyWebhookFailOpen"]
    assert "apiserver_admission_webhook_fail_open_count" in fail_open["expr"]
    assert fail_open["labels"]["severity"] == "critical"
    assert 'custody_webhook_reviews_total{decision=~"error|denied"}' in alerts["CustodyInjectorErrors"]["expr"]
    off = one({**MONITORING, "monitoring": {**MONITORING["monitoring"],
                                            "prometheusRule": {"enabled": True, "webhookRejections": False}}},
              "PrometheusRule")
    assert "custody.webhook" not in [g["name"] for g in off["spec"]["groups"]]


def test_service_monitor_scrapes_the_injector_over_https():
    sm = one("monitoring", "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    service = one("monitoring", "Service")
    assert _matches(sm["spec"]["selector"], service["metadata"]["labels"])
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = sm["spec"]["endpoints"]
    # The webhook's own port: /metrics is served there, over the same TLS.
    assert (endpoint["port"], endpoint["path"], endpoint["scheme"]) == ("webhook", "/metrics", "https")
    assert [p["name"] for p in service["spec"]["ports"]] == ["webhook"]
    tls = endpoint["tlsConfig"]
    assert tls["serverName"] == f"custody-injector.{NAMESPACE}.svc"
    secret = next(s for s in objects("monitoring", "Secret") if s["metadata"]["name"].endswith("-webhook-tls"))
    assert tls["ca"]["secret"] == {"name": secret["metadata"]["name"], "key": "ca-bundle.crt"}
    assert tls["ca"]["secret"]["key"] in secret["data"]
    cm = one(merged(CERT_MANAGER, MONITORING), "ServiceMonitor")
    assert cm["spec"]["endpoints"][0]["tlsConfig"]["ca"]["secret"]["key"] == "ca.crt"
    assert not [d for d in _render_set("default") if d["kind"] == "ServiceMonitor"]



def _rule_metrics(sidecar_only: bool = False) -> set[str]:
    """The custody metric names the PrometheusRule's expressions use (histogram
    series suffixes cut); sidecar_only: those `custody run` serves (not the injector's
    custody_webhook_*)."""
    rule = one("monitoring", "PrometheusRule")
    names = set()
    for group in rule["spec"]["groups"]:
        if sidecar_only and group["name"] == "custody.webhook":
            continue
        for r in group["rules"]:
            names |= set(re.findall(r"\b(custody_[a-z_]+)", r["expr"]))
    return {re.sub(r"(_seconds)_(bucket|sum|count)$", r"\1", n) for n in names}


def test_every_alerted_metric_is_documented():
    names = _rule_metrics()
    assert names >= {"custody_requests_total", "custody_audit_backlog_bytes", "custody_audit_uploads_total"}
    doc = (REPO / "docs" / "metrics.md").read_text()
    documented = set(re.findall(r"^\| `(custody_[a-z_]+)", doc, re.M))
    assert names <= documented, names - documented
    # The labels the alerts select on are the documented ones.
    rule = one("monitoring", "PrometheusRule")
    exprs = "\n".join(r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
    assert 'custody_requests_total{decision="deny"}' in exprs
    assert "`decision`: the row's `policy.decision`: `allow`, `deny`" in doc
    assert 'custody_audit_uploads_total{result="failed"}' in exprs
    assert '`custody_audit_uploads_total{result="failed"}`' in doc


def test_every_alerted_metric_is_served(tmp_path):
    """A live scrape of the real binary has a `# TYPE` line for each metric the
    alerts use (series with labels appear with their first request; the family is
    always announced)."""
    binary = _require_bin()
    admin = f"127.0.0.1:{_free_port()}"
    config = tmp_path / "custody.yaml"
    # An issuer (keys from a file) so the identity metrics are served too.
    from cryptography.hazmat.primitives.asymmetric import ec
    numbers = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    b64 = lambda n: base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
         "x": b64(numbers.x), "y": b64(numbers.y)}]}))
    config.write_text(f"listen: {{unix: '{tmp_path}/c.sock', admin: '{admin}'}}\n"
                      f"audit: {{dir: '{tmp_path}/audit', flush_interval: 1h}}\n"
                      f"identity: {{issuers: [{{issuer: 'https://idp.example/', audiences: [custody], "
                      f"jwks_file: '{tmp_path}/jwks.json'}}]}}\n")
    proc = subprocess.Popen([str(binary), "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, "custody exited"
            try:
                with urllib.request.urlopen(f"http://{admin}/metrics", timeout=1) as r:
                    text = r.read().decode()
                    break
            except OSError:
                assert time.monotonic() < deadline, "no /metrics"
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    served = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    assert _rule_metrics(sidecar_only=True) <= served, _rule_metrics(sidecar_only=True) - served


def _get_as(connect_host: str, port: int, path: str, host_header: str) -> int:
    """The status of `GET path` sent to connect_host:port with `Host: host_header`."""
    with socket.create_connection((connect_host, port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return int(data.split(b" ", 2)[1])


def test_sidecar_probes_pass_the_host_check(tmp_path):
    """Kubelet's httpGet probes and Prometheus send `Host: <pod IP>:<port>`, not a
    loopback name: the sidecar's admin listener (the chart's `listen.admin`, on every
    address) answers the address a connection arrived at, and refuses other names
    (docs/security.md, "Loopback listeners"). 127.0.0.2 stands in for the pod IP."""
    binary = _require_bin()
    chart = config_file("default", "custody.yaml")["listen"]
    assert chart["admin"] == "0.0.0.0:15090"
    port = _free_port()
    config = tmp_path / "custody.yaml"
    config.write_text(f"listen: {{unix: '{tmp_path}/c.sock', tcp: null, admin: '0.0.0.0:{port}'}}\n"
                      f"audit: {{dir: '{tmp_path}/audit', flush_interval: 1h}}\n")
    proc = subprocess.Popen([str(binary), "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, "custody exited"
            try:
                if _get_as("127.0.0.1", port, "/healthz", "localhost") == 200:
                    break
            except OSError:
                assert time.monotonic() < deadline, "no /healthz"
                time.sleep(0.05)
        pod_ip = f"127.0.0.2:{port}"
        # The injected probes' paths (no httpHeaders: checked in
        # test_webhook_serves_the_paths_the_chart_calls) and Prometheus's.
        for path in ("/healthz", "/readyz", "/metrics"):
            assert _get_as("127.0.0.2", port, path, pod_ip) == 200, path
        assert _get_as("127.0.0.2", port, "/healthz", f"127.0.0.3:{port}") == 421
        assert _get_as("127.0.0.2", port, "/metrics", f"evil.example:{port}") == 421
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_sidecar_session_caps_bound_memory():
    """The chart's default caps are the ones crates/custody-session/tests/flood_sidecar.rs
    measures (worst case documented in docs/sessions.md and the chart README)."""
    config = config_file("default", "custody.yaml")
    assert config["sessions"] == {"max_sessions": 10000, "max_subjects": 10000, "max_pending_total": 40000}
    flood = (REPO / "crates" / "custody-session" / "tests" / "flood_sidecar.rs").read_text()
    for key, value in config["sessions"].items():
        assert f"{key}: {value:_}," in flood, key


# --- deploy/ ----------------------------------------------------------------------


def test_demo_agent_opts_in():
    docs = [d for d in yaml.safe_load_all((DEPLOY / "examples" / "demo-agent.yaml").read_text()) if d]
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    template = deploy["spec"]["template"]
    assert template["metadata"]["labels"]["custody.dev/inject"] == "true"
    hooks = webhooks({"workloadNamespaces": ["agents"]})
    assert [h.split(".")[0] for h in _called_by(hooks, deploy["metadata"]["namespace"], {},
                                                 template["metadata"]["labels"])] == ["pod"]
    annotations = set(template["metadata"]["annotations"])
    assert annotations <= {"custody.dev/inject", "custody.dev/mode", "custody.dev/policy-configmap",
                           "custody.dev/config-configmap", "custody.dev/cpu-request", "custody.dev/memory-limit"}
    env = {e["name"]: e["value"] for e in template["spec"]["containers"][0]["env"]}
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:15080/openai/v1"


def _dockerfile_stages() -> list[dict]:
    lines = []
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        if raw.strip().startswith("#") or not raw.strip():
            continue
        if lines and lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1] + " " + raw.strip()
        else:
            lines.append(raw.strip())
    args, stages = {}, []
    for line in lines:
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif instr == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest.split()[0])
            stages.append({"image": image, "name": rest.split()[-1] if " AS " in rest.upper() else None,
                           "lines": []})
        else:
            stages[-1]["lines"].append((instr, rest))
    return stages


def test_dockerfile():
    stages = _dockerfile_stages()
    assert len(stages) >= 2, "multi-stage"
    build, final = stages[0], stages[-1]
    # Base images pinned by a version tag or a digest, never a floating tag.
    for stage in stages:
        image = stage["image"]
        assert "@sha256:" in image or re.search(r":[^:/]*[0-9][^:/]*$|:nonroot$", image), image
        assert not image.endswith(":latest")
    assert re.match(r"rust:1\.95(\.\d+)?-", build["image"])
    runs = " ".join(rest for instr, rest in build["lines"] if instr == "RUN")
    assert re.search(r"cargo build --release --locked -p custody", runs)
    # The workspace's build settings (the allocator's) reach the build.
    assert any(instr == "COPY" and rest.split()[0] == ".cargo" for instr, rest in build["lines"])
    # So does every program those settings name (the linker): the build fails without it.
    named = re.findall(r'^linker\s*=\s*"([^"]+)"', (REPO / ".cargo/config.toml").read_text(), re.M)
    assert named, "the workspace's linker setting"
    for program in named:
        assert any(instr == "COPY" and rest.split()[0] == program for instr, rest in build["lines"]), program
    # The final image: distroless (or scratch), the binary copied from the build stage,
    # a numeric non-root user, no shell needed anywhere.
    assert final["image"].startswith(("gcr.io/distroless/", "scratch"))
    instrs = {}
    for instr, rest in final["lines"]:
        instrs.setdefault(instr, []).append(rest)
    assert "RUN" not in instrs, "the final stage runs nothing (distroless has no shell)"
    assert any(rest.startswith(f"--from={build['name']} ") for rest in instrs["COPY"])
    (user,) = instrs["USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    exposed = {int(p) for rest in instrs["EXPOSE"] for p in rest.split()}
    assert exposed == {8443, 15080, 15090}
    (entrypoint,) = instrs["ENTRYPOINT"]
    assert entrypoint.startswith("[") and entrypoint.endswith('/custody"]'), "exec form, no shell"
    assert instrs["CMD"] == ['["run", "--config", "/etc/custody/config/custody.yaml"]']
    ignore = (REPO / ".dockerignore").read_text().split()
    assert {"target", ".git", ".venv"} <= set(ignore)


# --- docs -----------------------------------------------------------------------


def _leaf_paths(values: dict, prefix="") -> list[str]:
    out = []
    for k, v in values.items():
        path = f"{prefix}.{k}" if prefix else k
        # Free-form maps are documented as one value.
        if isinstance(v, dict) and v and path not in ("config.custody", "injector.resources", "sidecar.maxResources",
                                                      "sidecar.resources", "injector.podSecurityContext",
                                                      "injector.securityContext", "injector.livenessProbe",
                                                      "injector.readinessProbe", "injector.startupProbe",
                                                      "compaction.resources"):
            out += _leaf_paths(v, path)
        else:
            out.append(path)
    return out


def test_chart_readme_documents_every_value():
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", readme, re.M))
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = [p for p in _leaf_paths(values) if p not in documented]
    assert missing == []
    schema_top = set(_chart().schema["properties"]) - {"global"}
    assert schema_top == set(values)


# --- issue 20: Kubernetes in production ---------------------------------------------


def _inject(values) -> dict:
    return config_file(values, "inject.yaml")


def _render_error(values, kube_version: str = K8S_VERSION) -> str:
    with pytest.raises(helm.HelmError) as err:
        render_files(values, kube_version=kube_version)
    return str(err.value)


def _notes(values, kube_version: str = K8S_VERSION) -> str:
    files = render_files(values, kube_version=kube_version)
    return next(text for path, text in files.items() if path.endswith("NOTES.txt"))


def test_spool_volume_choices():
    """Item 1: the data volume is an emptyDir (lost with the pod: the sidecar is told
    its spool is ephemeral) or a generic ephemeral volume; only a StorageClass that
    retains the volume makes the spool outlive the pod."""
    default = _inject("default")
    assert default["spool_volume"] == {"kind": "emptyDir", "storage_class": None}
    assert default["spool_size_limit"] == "2Gi"
    assert config_file("default", "custody.yaml")["audit"]["spool"]["ephemeral"] is True
    # A generic ephemeral volume of the default class: still deleted with the pod.
    plain = merged(BASE, {"sidecar": {"spool": {"volume": "ephemeral"}}})
    assert _inject(plain)["spool_volume"] == {"kind": "ephemeral", "storage_class": None}
    assert config_file(plain, "custody.yaml")["audit"]["spool"]["ephemeral"] is True
    # ... of a class with reclaimPolicy Retain: the rows can be handed over.
    everything = _inject("everything")
    assert everything["spool_volume"] == {"kind": "ephemeral", "storage_class": "retained-ssd"}
    for cm in objects("everything", "ConfigMap"):
        if "custody.yaml" in cm["data"]:
            assert yaml.safe_load(cm["data"]["custody.yaml"])["audit"]["spool"]["ephemeral"] is False
    # An explicit audit.spool.ephemeral wins.
    explicit = merged(BASE, {"config": {"custody": {"audit": {"spool": {"ephemeral": False}}}}})
    assert config_file(explicit, "custody.yaml")["audit"]["spool"] == {
        "dir": "/var/lib/custody/spool", "max_bytes": "1GiB", "ephemeral": False}
    # storageClass / retain mean nothing for an emptyDir.
    for bad in ({"storageClass": "ssd"}, {"retain": True}):
        with pytest.raises(helm.HelmValuesError):
            _chart().validate_schema(merged(BASE, {"sidecar": {"spool": bad}}))
    with pytest.raises(helm.HelmValuesError, match="/sidecar/spool/volume"):
        _chart().validate_schema(merged(BASE, {"sidecar": {"spool": {"volume": "hostPath"}}}))


def test_emptydir_spool_requests_ephemeral_storage():
    """Item 3: the emptyDir counts against the node's ephemeral storage: the sidecar
    requests it, so the scheduler places the pod where the spool fits."""
    resources = _inject("default")["resources"]
    assert resources["requests"]["ephemeral-storage"] == "2Gi"
    assert resources["requests"]["cpu"] == "50m" and resources["limits"] == {"memory": "256Mi"}
    assert _inject(merged(BASE, {"sidecar": {"spoolSizeLimit": "5Gi"}}))["resources"]["requests"][
        "ephemeral-storage"] == "5Gi"
    own = merged(BASE, {"sidecar": {"resources": {"requests": {"ephemeral-storage": "3Gi"}}}})
    assert _inject(own)["resources"]["requests"]["ephemeral-storage"] == "3Gi"
    # A PVC-backed spool is not node ephemeral storage.
    assert "ephemeral-storage" not in _inject("everything")["resources"].get("requests", {})


def _seconds(duration: str) -> int:
    total = 0.0
    for num, unit in re.findall(r"([0-9.]+)(ms|h|m|s)", duration):
        total += float(num) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return int(-(-total // 1))


@pytest.mark.parametrize("grace_period, margin, expected", [
    ("25s", 5, 30), ("1m30s", 5, 95), ("500ms", 0, 1), ("2m", 10, 130), ("1h", 0, 3600)])
def test_termination_grace_follows_the_shutdown_grace_period(grace_period, margin, expected):
    """Item 2: the injector is told what custody needs after the app containers exit:
    shutdown.grace_period plus a margin, so the two can never disagree."""
    values = merged(BASE, {"config": {"custody": {"shutdown": {"grace_period": grace_period}}},
                           "sidecar": {"terminationGrace": {"marginSeconds": margin}}})
    assert _seconds(grace_period) + margin == expected
    assert _inject(values)["termination_grace"] == {"sidecar_seconds": expected, "action": "raise"}


def test_termination_grace_defaults_and_comments():
    assert _inject("default")["termination_grace"] == {"sidecar_seconds": 30, "action": "raise"}
    assert config_file("default", "custody.yaml")["shutdown"]["grace_period"] == "25s"
    assert _inject("everything")["termination_grace"] == {"sidecar_seconds": 35, "action": "warn"}
    assert "not a duration" in _render_error(merged(BASE, {"config": {"custody": {"shutdown": {"grace_period": "soon"}}}}))
    # No file still claims custody gets the pod's whole 30 s.
    for path in (CHART / "values.yaml", DEPLOY / "custody.yaml", DEPLOY / "values-typical.yaml"):
        text = path.read_text()
        assert "Below the pod's terminationGracePeriodSeconds" not in text, path
    assert "## Shutdown budget" in (REPO / "docs" / "kubernetes.md").read_text()


def test_typical_values_ship_to_object_storage():
    """Item 3 and item 10: the production values send the audit files to S3 with a
    roll that writes a handful of objects per pod and hour, not 8,640 a day."""
    config = config_file("typical", "custody.yaml")
    assert config["audit"]["sink"].startswith("s3://")
    assert config["audit"]["s3"]["object_lock"] is True
    roll = config["audit"]["roll"]
    assert _seconds(roll["age"]) >= 60, roll
    assert 86400 / _seconds(roll["age"]) <= 1440
    assert roll["bytes"] == "64MiB"
    # The chart's own default as well.
    assert _seconds(config_file("default", "custody.yaml")["audit"]["roll"]["age"]) >= 60
    typical = VALUE_SETS["typical"]
    assert "allowLocalSink" not in typical.get("config", {})
    assert "local directory" not in _notes(typical)


def test_a_local_sink_needs_an_acknowledgement():
    """Item 3: the local sink has no retention; the chart refuses it unless the
    values acknowledge it, and NOTES.txt warns whenever it is used."""
    unacknowledged = {"image": {"repository": "registry.example.com/custody"}}
    message = _render_error(unacknowledged)
    assert "config.allowLocalSink=true" in message and "/var/lib/custody/audit" in message
    for sink in ("file:///var/lib/custody/audit", "./custody-audit"):
        assert "allowLocalSink" in _render_error(merged(unacknowledged, {"config": {"custody": {"audit": {"sink": sink}}}}))
    s3 = merged(unacknowledged, {"config": {"custody": {"audit": {"sink": "gs://bucket/prefix"}}}})
    assert config_file(s3, "custody.yaml")["audit"]["sink"] == "gs://bucket/prefix"
    notes = _notes(BASE)
    assert "WARNING: the audit sink is the local directory /var/lib/custody/audit" in notes
    assert "lost" in notes
    # A ConfigMap the chart does not render is not checked.
    assert objects(merged(unacknowledged, {"config": {"create": False, "existingConfigMap": "mine"}}), "Deployment")


def test_webhook_entries_have_their_own_failure_policies():
    """Item 6: the namespace entry fails closed; the pod entry fails closed only
    when it sees opted-in pods alone (label), and open when it sees every pod
    (annotation); a legacy single failurePolicy is refused with the new names."""
    def policies(values):
        return {name.split(".")[0]: h["failurePolicy"] for name, h in webhooks(values).items()}
    assert policies({}) == {"namespace": "Fail", "pod": "Fail"}
    assert policies({"webhook": {"podOptIn": "annotation"}}) == {"namespace": "Fail", "pod": "Ignore"}
    assert policies({"webhook": {"podOptIn": "annotation", "podEntry": {"failurePolicy": "Fail"}}}) == \
        {"namespace": "Fail", "pod": "Fail"}
    assert policies({"webhook": {"namespaceEntry": {"failurePolicy": "Ignore"}}}) == \
        {"namespace": "Ignore", "pod": "Fail"}
    message = _render_error(merged(BASE, {"webhook": {"failurePolicy": "Fail"}}))
    assert "webhook.namespaceEntry.failurePolicy" in message and "webhook.podEntry.failurePolicy" in message
    # The default exclusions keep the cluster's own services away from the injector.
    hooks = webhooks({"webhook": {"podOptIn": "annotation"}})
    for namespace in ("cert-manager", "ingress-nginx", "calico-system", "tigera-operator", "gatekeeper-system"):
        assert _called_by(hooks, namespace, {}, POD_TRUE) == [], namespace
    assert _called_by(hooks, "apps", {}, POD_PLAIN) == ["pod.inject.custody.dev"]
    readme = (CHART / "README.md").read_text()
    docs = (REPO / "docs" / "kubernetes.md").read_text()
    for namespace in DEFAULT_EXCLUDED:
        assert f"`{namespace}`" in readme, namespace
    assert "excludeNamespaces" in docs


MANDATORY = {"webhook": {"mandatoryNamespaces": ["regulated", "payments"]}}


@pytest.mark.parametrize("namespace, ns_labels, pod_labels, expected", [
    # every pod of a mandatory namespace, whatever it says, through the mandatory entry only
    ("regulated", {}, POD_PLAIN, ["mandatory"]),
    ("regulated", {}, POD_FALSE, ["mandatory"]),
    ("regulated", NS_DISABLED, POD_FALSE, ["mandatory"]),
    ("payments", NS_ENABLED, POD_TRUE, ["mandatory"]),
    # elsewhere nothing changes
    ("agents", NS_ENABLED, POD_PLAIN, ["namespace"]),
    ("apps", {}, POD_TRUE, ["pod"]),
    ("apps", {}, POD_FALSE, []),
    ("kube-system", {}, POD_PLAIN, []),
])
def test_mandatory_namespaces(namespace, ns_labels, pod_labels, expected):
    """Item 8 (chart part): a third entry for namespaces where no pod may opt out."""
    for opt_in in ("label", "annotation"):
        hooks = webhooks(merged(MANDATORY, {"webhook": {"podOptIn": opt_in}}))
        assert [c.split(".")[0] for c in _called_by(hooks, namespace, ns_labels, pod_labels)] == expected
        mandatory = hooks["mandatory.inject.custody.dev"]
        assert mandatory["failurePolicy"] == "Fail"
        assert mandatory["clientConfig"]["service"]["path"] == "/mutate"
        assert "objectSelector" not in mandatory


def test_mandatory_namespaces_in_inject_yaml():
    assert _inject("default")["mandatory_namespaces"] == []
    assert "mandatory.inject.custody.dev" not in webhooks("default")
    assert _inject(MANDATORY)["mandatory_namespaces"] == ["regulated", "payments"]
    assert "regulated" not in _inject(MANDATORY)["exclude_namespaces"]
    for clash in ("kube-system", NAMESPACE):
        message = _render_error(merged(BASE, {"webhook": {"mandatoryNamespaces": [clash]}}))
        assert f'"{clash}"' in message and "mandatory" in message
    assert "Mandatory namespaces" in _notes(merged(BASE, MANDATORY))


@pytest.mark.parametrize("kube_version", ["1.27.16", "1.28.15"])
def test_native_sidecar_needs_kubernetes_1_29(kube_version):
    """Item 7: the chart refuses nativeSidecar on a cluster that cannot run native
    sidecars (every opted-in pod would be refused) and tells what to do."""
    message = _render_error(BASE, kube_version=kube_version)
    assert "sidecar.nativeSidecar=false" in message and f"v{kube_version}" in message
    legacy = merged(BASE, {"sidecar": {"nativeSidecar": False}})
    files = render_files(legacy, kube_version=kube_version)
    inject = next(yaml.safe_load(d["data"]["inject.yaml"]) for d in manifests(files)
                  if "inject.yaml" in d.get("data", {}))
    assert inject["kube_version"] == kube_version.rsplit(".", 1)[0]
    assert inject["native_sidecar"] is False
    assert "Job's pod then" in _notes(legacy, kube_version=kube_version)
    report = helm.lint(CHART, legacy, strict=True, namespace=NAMESPACE, kube_version="v" + kube_version)
    assert report["errors"] == []


def test_kube_version_is_rendered():
    assert _inject("default")["kube_version"] == "1.30"
    # Managed clusters report versions like v1.29.8-eks-a737599 (minor "29+").
    files = render_files(BASE, kube_version="1.29.8-eks-a737599")
    inject = next(yaml.safe_load(d["data"]["inject.yaml"]) for d in manifests(files)
                  if "inject.yaml" in d.get("data", {}))
    assert (inject["kube_version"], inject["native_sidecar"]) == ("1.29", True)
    # Below the chart's floor Helm itself refuses.
    chart_meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart_meta["kubeVersion"] == ">=1.25.0-0"
    assert "Kubernetes 1.25 or later" in _render_error(merged(BASE, {"sidecar": {"nativeSidecar": False}}),
                                                       kube_version="1.24.17")


def test_annotation_allow_list_and_bounds():
    """Item 8 (chart part): workloads may set the mode and resource annotations
    within bounds, not point the sidecar at another config or policy."""
    inject = _inject("default")
    allowed = set(inject["allowed_annotations"])
    assert allowed == {"custody.dev/mode", "custody.dev/cpu-request", "custody.dev/cpu-limit",
                       "custody.dev/memory-request", "custody.dev/memory-limit", "custody.dev/spool-size-limit"}
    assert not allowed & {"custody.dev/config-configmap", "custody.dev/policy-configmap"}
    assert inject["max_resources"] == {"requests": {"cpu": "1", "memory": "1Gi"},
                                       "limits": {"cpu": "2", "memory": "2Gi"}}
    assert inject["max_spool_size_limit"] == "8Gi"
    everything = _inject("everything")
    assert everything["allowed_annotations"] == ["custody.dev/mode"]
    assert everything["max_resources"] == {"requests": {"cpu": None, "memory": "512Mi"},
                                           "limits": {"cpu": None, "memory": "1Gi"}}
    assert everything["max_spool_size_limit"] is None
    with pytest.raises(helm.HelmValuesError, match="/sidecar/allowedAnnotations/0"):
        _chart().validate_schema(merged(BASE, {"sidecar": {"allowedAnnotations": ["custody.dev/injected"]}}))
    # The demo agent only uses annotations the default allows.
    docs = [d for d in yaml.safe_load_all((DEPLOY / "examples" / "demo-agent.yaml").read_text()) if d]
    template = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]
    used = set(template["metadata"].get("annotations", {})) - {"custody.dev/inject"}
    assert used <= allowed, used - allowed
    # The typical values' own list is within what the injector knows.
    typical = _inject("typical")
    assert set(typical["allowed_annotations"]) <= allowed


def test_sidecar_pull_secrets_user_and_the_rest_of_inject_yaml():
    """What SREs expect: pull secrets for a private sidecar image, no fixed uid on
    OpenShift, and every inject.yaml setting reachable from values."""
    default = _inject("default")
    assert default["image_pull_secrets"] == []
    assert (default["run_as_user"], default["run_as_group"]) == (65532, 65532)
    assert (default["host_network"], default["command"], default["run_size_limit"]) == ("skip", None, "16Mi")
    assert (default["proxy_port"], default["admin_port"]) == (15080, 15090)
    assert "env" not in default
    everything = _inject("everything")
    assert everything["image_pull_secrets"] == ["regcred", "corp-registry"]
    assert (everything["run_as_user"], everything["run_as_group"]) == (None, None)
    assert everything["host_network"] == "deny"
    assert everything["env"] == {"common": {"CUSTODY_SOCKET": "/run/custody/custody.sock"}}
    # The ports follow the sidecar's listen addresses.
    moved = merged(BASE, {"config": {"custody": {"listen": {"tcp": "127.0.0.1:16080", "admin": "0.0.0.0:16090"}}}})
    assert (_inject(moved)["proxy_port"], _inject(moved)["admin_port"]) == (16080, 16090)
    assert _inject(merged(BASE, {"sidecar": {"command": ["/usr/local/bin/custody"]}}))["command"] == \
        ["/usr/local/bin/custody"]


def test_openshift_injector_security_context():
    values = merged(BASE, {"injector": {
        "podSecurityContext": {"runAsUser": None, "runAsGroup": None, "fsGroup": None},
        "securityContext": {"runAsUser": None, "runAsGroup": None}}})
    deploy = one(values, "Deployment")
    kubernetes_validate.validate(deploy, K8S_VERSION, strict=True)
    pod = deploy["spec"]["template"]["spec"]
    assert not {"runAsUser", "runAsGroup", "fsGroup"} & set(pod["securityContext"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    sc = pod["containers"][0]["securityContext"]
    assert not {"runAsUser", "runAsGroup"} & set(sc)
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}


def test_config_hash_tracks_the_sidecar_config_and_policy():
    """The injected pods' sidecar hash folds in config_hash: a changed custody.yaml
    or policy makes running pods stale."""
    base = _inject("default")["config_hash"]
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert _inject("default")["config_hash"] == base
    policy = merged(BASE, {"policy": {"content": "format: 1\nrules: []\n"}})
    config = merged(BASE, {"config": {"custody": {"audit": {"roll": {"age": "10m"}}}}})
    assert len({base, _inject(policy)["config_hash"], _inject(config)["config_hash"]}) == 3
    # The image and replica count are not the sidecar's config.
    assert _inject(merged(BASE, {"injector": {"replicas": 3}}))["config_hash"] == base
    assert _inject("everything")["config_hash"] == "release-42"


def test_image_repository_is_required():
    """Item 10: no public image exists; a missing repository fails the render saying so."""
    assert yaml.safe_load((CHART / "values.yaml").read_text())["image"]["repository"] == ""
    message = _render_error({"config": {"allowLocalSink": True}})
    assert "image.repository is required" in message and "deploy/Dockerfile" in message


def test_hard_anti_affinity_rolls_without_a_surge():
    """Item 10: with hard anti-affinity a surge pod needs a node without an injector;
    with exactly `replicas` eligible nodes the rollout would hang."""
    hard = one(merged(BASE, {"injector": {"antiAffinity": "hard"}}), "Deployment")["spec"]
    assert hard["strategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}
    assert "requiredDuringSchedulingIgnoredDuringExecution" in hard["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert one("typical", "Deployment")["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}
    soft = injector("default")["spec"]
    assert soft["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    # The PDB still keeps one replica through drains.
    assert one("typical", "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_critical_priority_gets_a_resource_quota():
    """Item 10: system-cluster-critical pods outside kube-system need a ResourceQuota
    covering that class (GKE): the chart renders one."""
    quota = one("typical", "ResourceQuota")
    assert injector("typical")["spec"]["template"]["spec"]["priorityClassName"] == "system-cluster-critical"
    assert quota["metadata"]["namespace"] == NAMESPACE
    assert quota["spec"]["scopeSelector"]["matchExpressions"] == [
        {"scopeName": "PriorityClass", "operator": "In", "values": ["system-cluster-critical"]}]
    assert int(quota["spec"]["hard"]["pods"]) >= injector("typical")["spec"]["replicas"] + 1
    kubernetes_validate.validate(quota, K8S_VERSION, strict=True)
    assert objects("default", "ResourceQuota") == []
    assert objects(merged(VALUE_SETS["typical"], {"injector": {"criticalPriorityQuota": False}}), "ResourceQuota") == []
    in_kube_system = manifests(render_files(VALUE_SETS["typical"], namespace="kube-system"))
    assert not [d for d in in_kube_system if d["kind"] == "ResourceQuota"]


def test_injector_drains_before_it_stops():
    """Item 5 (chart part): the injector keeps serving for drainDelay after SIGTERM;
    the pod's grace period covers it."""
    deploy = injector("default")["spec"]["template"]["spec"]
    args = deploy["containers"][0]["args"]
    assert args[args.index("--drain-delay") + 1] == "10s"
    assert args[args.index("--shutdown-grace") + 1] == "10s"
    # The API server waits at most timeoutSeconds for a review in flight.
    assert _seconds("10s") >= webhooks("default")["namespace.inject.custody.dev"]["timeoutSeconds"]
    assert deploy["terminationGracePeriodSeconds"] >= _seconds("10s") + _seconds("10s")
    message = _render_error(merged(BASE, {"injector": {"drainDelay": "25s", "terminationGracePeriodSeconds": 30}}))
    assert "injector.drainDelay" in message and "terminationGracePeriodSeconds" in message
    assert one(merged(BASE, {"injector": {"drainDelay": "20s", "terminationGracePeriodSeconds": 30}}), "Deployment")


def _tls_render(tmp_path, existing: dict | None, values: dict) -> dict:
    """custody.webhookTLS, the helper webhook.yaml feeds with what `lookup` finds,
    called with a Secret as an upgrade would find it (lookup is empty offline)."""
    chart = tmp_path / "custody"
    import shutil
    shutil.copytree(CHART, chart)
    (chart / "templates" / "zz-tls-probe.yaml").write_text(
        "{{- $existing := `" + json.dumps(existing or {}) + "` | fromJson }}\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tls-probe\ndata:\n"
        "  out: {{ include \"custody.webhookTLS\" (dict \"root\" . \"existing\" $existing) | quote }}\n")
    loaded = helm.Chart.load(chart)
    opts = {"name": RELEASE, "namespace": NAMESPACE, "is_install": False, "is_upgrade": True,
            "kube_version": "v" + K8S_VERSION}
    files = json.loads(helm_native.call_string("helm_render", loaded._raw(), json.dumps(merged(BASE, values)),
                                               json.dumps(opts)))
    probe = next(d for d in manifests(files) if d["metadata"]["name"] == "tls-probe")
    return json.loads(probe["data"]["out"])


def _pems(b64: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(base64.b64decode(b64))


def test_generated_certificate_rotation_keeps_the_old_ca(tmp_path):
    """Item 9: rotating the generated certificate puts the new CA into the caBundle
    next to the old one, so the API server trusts the certificate the injectors still
    serve (until their Secret volume refreshes) and the new one."""
    _, data = _ca_and_leaf("default")
    old = {k: base64.b64encode(v).decode() for k, v in data.items()}
    far = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=3000)).strftime("%Y-%m-%dT%H:%M:%SZ")
    secret = {"metadata": {"annotations": {"custody.dev/not-after": far}}, "data": old}
    # An upgrade: reused as is.
    kept = _tls_render(tmp_path / "a", secret, {})
    assert (kept["crt"], kept["key"], kept["ca"], kept["rotated"]) == (old["tls.crt"], old["tls.key"], old["ca.crt"], False)
    assert kept["bundle"] == old["ca-bundle.crt"] and kept["notAfter"] == far
    # A Secret of an older chart (no bundle, no expiry annotation): reused, bundle = its CA.
    legacy = _tls_render(tmp_path / "b", {"data": {k: old[k] for k in ("tls.crt", "tls.key", "ca.crt")}}, {})
    assert legacy["bundle"] == old["ca.crt"] and legacy["rotated"] is False
    # Asked to rotate: a new CA and leaf, the bundle holds both CAs, new first.
    old_ca = x509.load_pem_x509_certificate(data["ca.crt"])
    for values, existing in (({"tls": {"generated": {"rotate": True}}}, secret),
                             # ... or the certificate expires within rotateBeforeDays.
                             ({}, {**secret, "metadata": {"annotations": {"custody.dev/not-after": (
                                 datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=10)
                             ).strftime("%Y-%m-%dT%H:%M:%SZ")}}})):
        rotated = _tls_render(tmp_path / f"r{len(values)}", existing, values)
        assert rotated["rotated"] is True
        assert rotated["crt"] != old["tls.crt"] and rotated["ca"] != old["ca.crt"]
        bundle = _pems(rotated["bundle"])
        new_ca = x509.load_pem_x509_certificate(base64.b64decode(rotated["ca"]))
        assert [c.fingerprint(c.signature_hash_algorithm) for c in bundle] == [
            new_ca.fingerprint(new_ca.signature_hash_algorithm), old_ca.fingerprint(old_ca.signature_hash_algorithm)]
        # The old leaf (still served) and the new one both verify against the bundle.
        for leaf_pem, issuer in ((data["tls.crt"], old_ca), (base64.b64decode(rotated["crt"]), new_ca)):
            leaf = x509.load_pem_x509_certificate(leaf_pem)
            issuer.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, padding.PKCS1v15(),
                                       leaf.signature_hash_algorithm)
        assert rotated["notAfter"] > far[:4] or rotated["notAfter"]
    # With rotateBeforeDays 0 an expiring certificate is left alone.
    soon = {**secret, "metadata": {"annotations": {"custody.dev/not-after": (
        datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}}}
    assert _tls_render(tmp_path / "z", soon, {"tls": {"generated": {"rotateBeforeDays": 0}}})["rotated"] is False


def test_generated_secret_carries_bundle_and_expiry():
    secret, data = _ca_and_leaf("default")
    assert data["ca-bundle.crt"] == data["ca.crt"]  # a fresh install: one CA
    not_after = datetime.datetime.strptime(secret["metadata"]["annotations"]["custody.dev/not-after"],
                                           "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    leaf = x509.load_pem_x509_certificate(data["tls.crt"])
    assert abs((leaf.not_valid_after_utc - not_after).total_seconds()) < 3600
    for hook in webhooks("default").values():
        assert base64.b64decode(hook["clientConfig"]["caBundle"]) == data["ca-bundle.crt"]


def test_cert_manager_ca_renews_without_a_gap():
    """Item 9, cert-manager: the chart's CA keeps its key across renewals, so the
    certificates it signed stay valid under the renewed CA certificate that
    cainjector puts into the caBundle; the serving certificate rotates its key."""
    certs = {c["metadata"]["name"]: c["spec"] for c in objects("cert-manager", "Certificate")}
    ca = next(c for c in certs.values() if c.get("isCA"))
    serving = next(c for c in certs.values() if not c.get("isCA"))
    assert ca["privateKey"]["rotationPolicy"] == "Never"
    assert serving["privateKey"]["rotationPolicy"] == "Always"
    assert "## Certificate rotation" in (REPO / "docs" / "kubernetes.md").read_text()


def test_docs_match_the_chart():
    """Item 10: the docs name the chart's webhook entries and never recommend
    --reuse-values (it ignores new chart defaults on upgrade)."""
    names = set(webhooks(merged(BASE, MANDATORY)))
    for path in (REPO / "docs" / "kubernetes.md", CHART / "README.md", DEPLOY / "README.md",
                 DEPLOY / "values-typical.yaml"):
        text = path.read_text()
        for line in text.replace("--reset-then-reuse-values", "").splitlines():
            if "--reuse-values" in line:
                assert re.search(r"\b(not|never|ignores)\b", line), (path, line)
        for found in re.findall(r"\b([a-z]+\.inject\.custody\.dev)\b", text):
            assert found in names, (path, found)
    docs = (REPO / "docs" / "kubernetes.md").read_text()
    for heading in ("## When a dependency is down", "## IAM for the audit bucket", "## Where the spool lives",
                    "## Shutdown budget"):
        assert heading in docs, heading


def test_injection_doc_names_the_chart_webhooks():
    """docs/injection.md (the injector's documentation) shows a webhook configuration:
    its entry names must be the chart's."""
    names = set(webhooks(merged(BASE, MANDATORY)))
    found = set(re.findall(r"\b([a-z]+\.inject\.custody\.dev)\b", (REPO / "docs" / "injection.md").read_text()))
    assert found <= names, found - names


def test_iam_policy_in_the_docs_is_put_only():
    docs = (REPO / "docs" / "kubernetes.md").read_text()
    section = docs.split("## IAM for the audit bucket", 1)[1].split("\n## ", 1)[0]
    policies = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", section, re.S)]
    assert policies
    role = policies[0]
    actions = {a for st in role["Statement"] if st["Effect"] == "Allow"
               for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])}
    assert actions <= {"s3:PutObject", "s3:GetObject", "s3:ListBucket"}, actions
    assert "s3:PutObject" in actions
    assert not any("Delete" in a or a.endswith("*") for a in actions)
    assert "COMPLIANCE" in section and "IRSA" in section


# --- compaction: a CronJob running `custody compact` --------------------------------

COMPACTION_S3 = merged(BASE, {"config": {"allowLocalSink": False,
                                          "custody": {"audit": {"sink": "s3://acme-ai-audit/custody"}}},
                               "digestKey": {"existingSecret": "corp-digest-key"},
                               "compaction": {"enabled": True}})


def _compaction_pod(name_or_values) -> dict:
    return one(name_or_values, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def test_compaction_is_off_by_default():
    assert yaml.safe_load((CHART / "values.yaml").read_text())["compaction"]["enabled"] is False
    for name in VALUE_SETS:
        if name != "compaction":
            assert objects(name, "CronJob") == [], name
    # An object-store sink and a digest key alone do not turn it on.
    assert objects({**COMPACTION_S3, "compaction": {"enabled": False}}, "CronJob") == []


def test_compaction_cronjob():
    cronjob = one("compaction", "CronJob")
    assert cronjob["apiVersion"] == "batch/v1"
    assert cronjob["metadata"]["name"] == "custody-compaction"
    assert cronjob["metadata"]["namespace"] == NAMESPACE
    assert cronjob["metadata"]["labels"]["app.kubernetes.io/component"] == "compaction"
    spec = cronjob["spec"]
    assert spec["schedule"] == "17 * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 3)
    job = spec["jobTemplate"]["spec"]
    assert (job["activeDeadlineSeconds"], job["backoffLimit"]) == (3000, 1)
    # Runs never pile up: a run ends before the next hourly one starts.
    assert job["activeDeadlineSeconds"] < 3600
    pod = job["template"]["spec"]
    assert job["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "compaction"
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == one("compaction", "ServiceAccount")["metadata"]["name"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "batch"
    assert "nodeAffinity" in pod["affinity"]
    (container,) = pod["containers"]
    assert container["image"] == injector("compaction")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert container["args"] == ["compact", "--sink", "s3://acme-ai-audit/custody",
                                 "--signing-key", "/etc/custody/digest/key",
                                 "--previous-hours", "3", "--max-rows", "200000"]
    # The sidecars' S3 settings, then the values' own entries.
    env = container["env"]
    assert env[:4] == [{"name": "AWS_ENDPOINT_URL", "value": "http://minio.storage:9000"},
                       {"name": "AWS_ALLOW_HTTP", "value": "true"},
                       {"name": "AWS_REGION", "value": "eu-west-1"},
                       {"name": "AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "value": "false"}]
    assert [e["name"] for e in env[4:]] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    assert container["envFrom"] == [{"configMapRef": {"name": "compaction-extra"}}]
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    # The key Secret, read-only at the path the args name; /tmp on an emptyDir.
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/custody/digest"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    key = volumes[mounts["/etc/custody/digest"]["name"]]["secret"]
    assert key["secretName"] == "custody-digest-key"
    assert key["items"] == [{"key": "key", "path": "key"}]
    assert key["defaultMode"] & 0o007 == 0  # not world-readable
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    # The chart-created key is also rendered into the release namespace, where the Job runs.
    secrets = [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in objects("compaction", "Secret")]
    assert (NAMESPACE, "custody-digest-key") in secrets and ("agents", "custody-digest-key") in secrets
    assert len(secrets) == len(set(secrets))


def test_compaction_is_hardened():
    pod = _compaction_pod("compaction")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["enableServiceLinks"] is False
    # No token unless the ServiceAccount mounts one (the chart's does not).
    assert "automountServiceAccountToken" not in pod
    assert one("compaction", "ServiceAccount")["automountServiceAccountToken"] is False
    sc = pod["containers"][0]["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # OpenShift: the injector's null keys apply here too.
    openshift = _compaction_pod(merged(COMPACTION_S3, {"injector": {
        "podSecurityContext": {"runAsUser": None, "runAsGroup": None, "fsGroup": None},
        "securityContext": {"runAsUser": None, "runAsGroup": None}}}))
    assert not {"runAsUser", "runAsGroup", "fsGroup"} & set(openshift["securityContext"])
    assert not {"runAsUser", "runAsGroup"} & set(openshift["containers"][0]["securityContext"])


def test_compaction_values_and_key_secret():
    # An existing digest key: used as it is, no copy rendered.
    pod = _compaction_pod(COMPACTION_S3)
    (container,) = pod["containers"]
    assert container["args"][:3] == ["compact", "--sink", "s3://acme-ai-audit/custody"]
    assert "env" not in container and "envFrom" not in container
    assert {v["name"]: v for v in pod["volumes"]}["digest-key"]["secret"]["secretName"] == "corp-digest-key"
    assert not [s for s in objects(COMPACTION_S3, "Secret") if "digest" in s["metadata"]["name"]]
    # compaction.keySecret, the schedule, the flags, the sink and the ServiceAccount.
    values = merged(COMPACTION_S3, {"compaction": {
        "keySecret": "compaction-key", "schedule": "5 */2 * * *", "previousHours": 6, "maxRows": 50000,
        "sink": "gs://other-bucket/audit", "serviceAccountName": "custody-compaction",
        "env": [{"name": "GOOGLE_SERVICE_ACCOUNT_PATH", "value": "/var/run/gcp/key.json"}]}})
    cronjob = one(values, "CronJob")
    assert cronjob["spec"]["schedule"] == "5 */2 * * *"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "custody-compaction"
    assert pod["containers"][0]["args"] == ["compact", "--sink", "gs://other-bucket/audit",
                                            "--signing-key", "/etc/custody/digest/key",
                                            "--previous-hours", "6", "--max-rows", "50000"]
    # No S3 settings for a gs:// sink.
    assert pod["containers"][0]["env"] == [{"name": "GOOGLE_SERVICE_ACCOUNT_PATH", "value": "/var/run/gcp/key.json"}]
    assert {v["name"]: v for v in pod["volumes"]}["digest-key"]["secret"]["secretName"] == "compaction-key"
    # A variable named in compaction.env replaces the derived one (no duplicate names).
    own = merged(VALUE_SETS["compaction"], {"compaction": {"env": [{"name": "AWS_REGION", "value": "us-east-2"}]}})
    env = one(own, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    names = [e["name"] for e in env]
    assert len(names) == len(set(names)) and {"name": "AWS_REGION", "value": "us-east-2"} in env
    # path_style false: virtual-hosted requests, as the sidecars make them.
    hosted = merged(COMPACTION_S3, {"config": {"custody": {"audit": {"s3": {"path_style": False}}}}})
    env = one(hosted, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "value": "true"}]
    # The release namespace among the workload namespaces: the key is rendered there once.
    both = merged(VALUE_SETS["compaction"], {"workloadNamespaces": ["agents", NAMESPACE]})
    keys = [s["metadata"]["namespace"] for s in objects(both, "Secret") if s["metadata"]["name"] == "custody-digest-key"]
    assert sorted(keys) == sorted(["agents", NAMESPACE])
    # With config.create false the sink comes from compaction.sink.
    external = merged(COMPACTION_S3, {"config": {"create": False, "existingConfigMap": "mine"},
                                      "compaction": {"sink": "az://audit/custody"}})
    assert _compaction_pod(external)["containers"][0]["args"][2] == "az://audit/custody"


def test_compaction_render_failures():
    # A local sink lives in each pod.
    local = merged(BASE, {"digestKey": {"existingSecret": "k"}, "compaction": {"enabled": True}})
    message = _render_error(local)
    assert "object-store sink" in message and "/var/lib/custody/audit" in message
    # Write-once retention forbids the deletes.
    locked = merged(COMPACTION_S3, {"config": {"custody": {"audit": {"s3": {"object_lock": True}}}}})
    message = _render_error(locked)
    assert "object_lock" in message and "deletes" in message
    assert objects(merged(locked, {"compaction": {"enabled": False}}), "Deployment")
    # No key to sign the records with.
    message = _render_error(merged(COMPACTION_S3, {"digestKey": {"existingSecret": ""}}))
    assert "compaction.keySecret" in message and "digestKey" in message
    # A key for the Job, but the sidecars sign no digests: nothing would ever be merged.
    message = _render_error(merged(COMPACTION_S3, {"digestKey": {"existingSecret": ""},
                                                   "compaction": {"keySecret": "compaction-key"}}))
    assert "sign no digests" in message
    # The sidecars' config is not the chart's: the sink must be given.
    message = _render_error(merged(COMPACTION_S3, {"config": {"create": False, "existingConfigMap": "mine"}}))
    assert "compaction.sink" in message


def test_compaction_values_schema():
    _chart().validate_schema(copy.deepcopy(VALUE_SETS["compaction"]))
    for bad, where in (({"previousHours": 0}, "/compaction/previousHours"),
                       ({"maxRows": "many"}, "/compaction/maxRows"),
                       ({"sink": "/var/lib/custody/audit"}, "/compaction/sink"),
                       ({"keySecret": "Not_A_Name"}, "/compaction/keySecret"),
                       ({"env": [{"value": "x"}]}, "/compaction/env/0"),
                       ({"suspend": True}, "compaction")):
        with pytest.raises(helm.HelmValuesError) as err:
            _chart().validate_schema(merged(BASE, {"compaction": bad}))
        assert where in str(err.value), (bad, str(err.value))


def test_compaction_args_run_custody_compact(tmp_path):
    """The CronJob's args are `custody compact` flags, and the binary runs with them
    (the sink swapped for an empty local directory: nothing to do, exit 0)."""
    binary = _require_bin()
    help_text = subprocess.run([str(binary), "compact", "--help"], capture_output=True, text=True,
                               timeout=30, check=True).stdout
    known = set(re.findall(r"(?m)^\s+(?:-\w, )?(--[a-z][a-z-]*)", help_text))
    container = _compaction_pod("compaction")["containers"][0]
    args = container["args"]
    assert args[0] == "compact"
    flags = [a for a in args[1:] if a.startswith("-")]
    assert set(flags) <= known, set(flags) - known
    assert args[1::2] == flags and len(args[1:]) == 2 * len(flags)
    key_file = args[args.index("--signing-key") + 1]
    assert any(key_file.startswith(m["mountPath"] + "/") for m in container["volumeMounts"])
    subprocess.run([str(binary), "keygen", "--out", str(tmp_path / "key.pem")], capture_output=True,
                   timeout=30, check=True)
    (tmp_path / "sink").mkdir()
    run = list(args)
    run[run.index("--sink") + 1] = str(tmp_path / "sink")
    run[run.index("--signing-key") + 1] = str(tmp_path / "key.pem")
    result = subprocess.run([str(binary), *run], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compaction_is_documented():
    docs = (REPO / "docs" / "kubernetes.md").read_text()
    assert "\n## Compaction\n" in docs
    section = docs.split("\n## Compaction\n", 1)[1].split("\n## ", 1)[0]
    for needed in ("compaction.enabled", "object_lock", "lakehouse.md#compaction", "custody verify",
                   "s3:DeleteObject", "kubectl -n custody-system logs"):
        assert needed in section, needed
    for path in (REPO / "docs" / "lakehouse.md",):
        assert "kubernetes.md#compaction" in path.read_text()
