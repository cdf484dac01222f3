"""`custody webhook` over HTTPS: every AdmissionReview fixture of crates/custody-inject
answered as its golden file says; each patch applied with the `jsonpatch` library and
the Pod validated against the Kubernetes 1.30 schemas (`kubernetes-validate`, strict)
and the rules the API server adds (unique names and mount paths, mounts of existing
volumes); a huge pod, an oversized body, certificate rotation through a Secret-style
`..data` symlink swap, and SIGTERM."""

import base64
import copy
import datetime
import json
import os
import pathlib
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import jsonpatch
import kubernetes_validate
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import REPO, _binary, free_port

FIXTURES = REPO / "crates" / "custody-inject" / "tests" / "fixtures"
CASES = json.loads((FIXTURES / "cases.json").read_text())
# The policy the chart installs by default (values.yaml's policy.content).
STARTER_POLICY = yaml.safe_load((REPO / "helm" / "custody" / "values.yaml").read_text())["policy"]["content"]
K8S = "1.30.0"


def make_pair(common_name: str) -> tuple[bytes, bytes]:
    """A self-signed serving certificate for 127.0.0.1 and its key (PEM)."""
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class SecretDir:
    """A directory laid out like a mounted Secret: tls.crt and tls.key are symlinks
    through `..data`, which each update swaps atomically."""

    def __init__(self):
        self.path = pathlib.Path(tempfile.mkdtemp(prefix="custody-webhook-tls-"))
        self.version = 0
        self.cert_pem = b""

    def write(self, cert_pem: bytes, key_pem: bytes):
        self.version += 1
        version = self.path / f"..v{self.version}"
        version.mkdir()
        (version / "tls.crt").write_bytes(cert_pem)
        (version / "tls.key").write_bytes(key_pem)
        tmp = self.path / "..data_tmp"
        tmp.symlink_to(version.name)
        os.replace(tmp, self.path / "..data")
        for name in ("tls.crt", "tls.key"):
            link = self.path / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
        self.cert_pem = cert_pem
        (self.path / "ca.pem").write_bytes(cert_pem)


class Webhook:
    def __init__(self, secret: SecretDir, config: str):
        self.secret = secret
        self.addr = ("127.0.0.1", free_port())
        self.url = f"https://127.0.0.1:{self.addr[1]}"
        self.log_path = secret.path.parent / f"{secret.path.name}-{config}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [
                str(_binary("CUSTODY_BIN", "custody")), "--log-format", "json", "webhook",
                "--listen", f"127.0.0.1:{self.addr[1]}",
                "--cert-file", str(secret.path / "tls.crt"),
                "--key-file", str(secret.path / "tls.key"),
                "--config", str(FIXTURES / config),
                "--cert-reload-interval", "100ms",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        deadline = time.monotonic() + 20
        while True:
            assert self.proc.poll() is None, self.read_log()
            try:
                if self.get("/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "webhook not up:\n" + self.read_log()
            time.sleep(0.05)

    def read_log(self) -> str:
        return self.log_path.read_text()

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.secret.path / "ca.pem"))

    def request(self, method: str, path: str, body: bytes | None = None):
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self.context(), timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, body: bytes):
        return self.request("POST", path, body)

    def served_certificate(self) -> bytes:
        """The certificate a new TLS handshake presents (DER); no verification."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(self.addr, timeout=5) as raw:
            with ctx.wrap_socket(raw) as tls:
                return tls.getpeercert(binary_form=True)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def webhooks():
    secret = SecretDir()
    secret.write(*make_pair("custody-webhook.custody-system.svc"))
    configs = sorted({c.get("config", "config.yaml") for c in CASES})
    started = {name: Webhook(secret, name) for name in configs}
    yield started
    for w in started.values():
        w.kill()


def check_pod_rules(pod: dict):
    """What the API server's validation refuses beyond the OpenAPI schema."""
    spec = pod["spec"]
    containers = spec["containers"] + spec.get("initContainers", [])
    names = [c["name"] for c in containers]
    assert len(names) == len(set(names)), names
    volumes = [v["name"] for v in spec.get("volumes", [])]
    assert len(volumes) == len(set(volumes)), volumes
    for c in containers:
        env = [e["name"] for e in c.get("env", [])]
        assert len(env) == len(set(env)), (c["name"], env)
        mounts = c.get("volumeMounts", [])
        paths = [m["mountPath"] for m in mounts]
        assert len(paths) == len(set(paths)), (c["name"], paths)
        for m in mounts:
            assert m["name"] in volumes, (c["name"], m["name"])


def check_injected(case: dict, review: dict, response: dict) -> dict:
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    pod = jsonpatch.apply_patch(review["request"]["object"], ops)
    kubernetes_validate.validate(pod, K8S, strict=True)
    check_pod_rules(pod)
    assert pod["metadata"]["annotations"]["custody.dev/injected"]
    legacy = case.get("config") == "config-legacy.yaml"
    sidecar = pod["spec"]["containers"][-1] if legacy else pod["spec"]["initContainers"][0]
    assert sidecar["name"] == "custody"
    assert ("restartPolicy" in sidecar) is not legacy
    sc = sidecar["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert {e["name"] for e in sidecar["env"]} >= {"POD_NAME", "POD_NAMESPACE", "POD_UID", "NODE_NAME"}
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"
    spool = next(v for v in pod["spec"]["volumes"] if v["name"] == "custody-spool")
    if case.get("config") == "config-hardened.yaml":
        # A generic ephemeral volume; ids left to the platform; the private registry's secrets once each.
        claim = spool["ephemeral"]["volumeClaimTemplate"]["spec"]
        assert claim["accessModes"] == ["ReadWriteOnce"] and claim["storageClassName"] == "fast-ssd"
        assert claim["resources"]["requests"]["storage"]
        assert "runAsUser" not in sc and "runAsGroup" not in sc
        secrets = [s["name"] for s in pod["spec"]["imagePullSecrets"]]
        assert sorted(secrets) == ["registry-credentials", "shared-pull"]
    else:
        assert spool["emptyDir"]["sizeLimit"]
        assert sc["runAsUser"] == 65532
    annotations = pod["metadata"]["annotations"]
    assert annotations["custody.dev/sidecar-image"] == sidecar["image"]
    assert len(annotations["custody.dev/sidecar-hash"]) == 16
    # Termination grace (docs/injection.md): native sidecars get the pod's grace plus
    # theirs (config.yaml: 30 s), a regular container at least its 30 s; `warn` leaves it.
    before = review["request"]["object"]["spec"].get("terminationGracePeriodSeconds", 30)
    after = pod["spec"]["terminationGracePeriodSeconds"]
    if case.get("config") == "config-hardened.yaml":
        assert after == before
    elif legacy:
        assert after == max(before, 30)
    else:
        assert after == before + 30
    apps = pod["spec"]["containers"][:-1] if legacy else pod["spec"]["containers"]
    for c in apps:
        assert {"name": "custody-run", "mountPath": "/run/custody", "readOnly": True} in c["volumeMounts"]
    return pod


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_fixture_answered_as_golden_and_patched_pod_is_valid(webhooks, case):
    webhook = webhooks[case.get("config", "config.yaml")]
    body = (FIXTURES / case["fixture"]).read_bytes()
    status, raw = webhook.post(case["path"], body)
    answer = json.loads(raw)
    golden = json.loads((FIXTURES / "expected" / f"{case['name']}.json").read_text())
    assert status == golden["http_status"]
    if status != 200:
        assert case["expect"] == "rejected"
        assert answer == golden["body"]
        return
    review = json.loads(body)
    response = answer["response"]
    assert response["uid"] == review["request"]["uid"]
    expected = golden["body"]["response"]
    if case["expect"] == "injected":
        check_injected(case, review, response)
        assert json.loads(base64.b64decode(response["patch"])) == expected["patch"]["decoded"]
        response = {k: v for k, v in response.items() if k != "patch"}
        expected = {k: v for k, v in expected.items() if k != "patch"}
    elif case["expect"] == "skipped":
        assert response["allowed"] is True and "patch" not in response
    else:
        assert response["allowed"] is False
        assert response["status"]["message"].startswith("custody: cannot inject the sidecar:")
    assert response == expected


def test_a_huge_pod_is_injected_and_an_oversized_body_is_413(webhooks):
    webhook = webhooks["config.yaml"]
    review = json.loads((FIXTURES / "multi-container.json").read_text())
    pod = review["request"]["object"]
    template = pod["spec"]["containers"][0]
    pod["spec"]["containers"] = [dict(copy.deepcopy(template), name=f"worker-{i}") for i in range(100)]
    pod["metadata"]["annotations"]["example.com/blob"] = "x" * (3 * 1024 * 1024)
    body = json.dumps(review).encode()
    assert 3 * 1024 * 1024 < len(body) < 4 * 1024 * 1024
    status, raw = webhook.post("/mutate", body)
    assert status == 200
    response = json.loads(raw)["response"]
    assert response["allowed"] is True
    patched = jsonpatch.apply_patch(pod, json.loads(base64.b64decode(response["patch"])))
    kubernetes_validate.validate(patched, K8S, strict=True)
    check_pod_rules(patched)
    assert len(patched["spec"]["containers"]) == 100
    assert all(
        any(m["mountPath"] == "/run/custody" for m in c["volumeMounts"]) for c in patched["spec"]["containers"]
    )

    pod["metadata"]["annotations"]["example.com/blob"] = "x" * (5 * 1024 * 1024)
    status, raw = webhook.post("/mutate", json.dumps(review).encode())
    assert status == 413
    assert json.loads(raw)["error"]["type"] == "body_too_large"
    # Still serving.
    assert webhook.get("/healthz")[0] == 200
    status, _ = webhook.post("/mutate", (FIXTURES / "bare-pod.json").read_bytes())
    assert status == 200


def test_wrong_methods_and_paths(webhooks):
    webhook = webhooks["config.yaml"]
    assert webhook.get("/mutate")[0] == 405
    status, raw = webhook.post("/nope", b"{}")
    assert status == 404 and json.loads(raw)["error"]["type"] == "not_found"
    assert webhook.get("/readyz")[0] == 200


def test_certificate_rotation_is_served_to_new_handshakes():
    secret = SecretDir()
    first_pem, first_key = make_pair("first")
    secret.write(first_pem, first_key)
    webhook = Webhook(secret, "config.yaml")
    try:
        first = x509.load_pem_x509_certificate(first_pem).public_bytes(serialization.Encoding.DER)
        assert webhook.served_certificate() == first
        # A key that does not match the certificate is refused; the old pair stays.
        second_pem, _ = make_pair("second")
        _, wrong_key = make_pair("wrong")
        secret.write(second_pem, wrong_key)
        deadline = time.monotonic() + 10
        while "not reloaded" not in webhook.read_log():
            assert time.monotonic() < deadline, webhook.read_log()
            time.sleep(0.05)
        assert webhook.served_certificate() == first
        # A good pair is served to the next handshake.
        third_pem, third_key = make_pair("third")
        secret.write(third_pem, third_key)
        third = x509.load_pem_x509_certificate(third_pem).public_bytes(serialization.Encoding.DER)
        deadline = time.monotonic() + 10
        while webhook.served_certificate() != third:
            assert time.monotonic() < deadline, webhook.read_log()
            time.sleep(0.05)
        status, _ = webhook.post("/mutate", (FIXTURES / "bare-pod.json").read_bytes())
        assert status == 200
        assert webhook.stop() == 0
        log = [json.loads(line) for line in webhook.read_log().splitlines()]
        assert any(e["message"] == "serving certificate reloaded" for e in log)
        reviews = [e for e in log if e["message"] == "admission review"]
        assert reviews and reviews[-1]["decision"] == "injected"
        # Env values of the pods never reach the log.
        assert "python" not in webhook.read_log()
    finally:
        webhook.kill()


def test_check_and_usage_errors():
    secret = SecretDir()
    secret.write(*make_pair("check"))
    base = [str(_binary("CUSTODY_BIN", "custody")), "webhook",
            "--cert-file", str(secret.path / "tls.crt"), "--key-file", str(secret.path / "tls.key")]
    env = {k: v for k, v in os.environ.items() if k != "POD_NAMESPACE"}
    ok = subprocess.run(base + ["--config", str(FIXTURES / "config.yaml"), "--check"],
                        capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "webhook config is valid" in ok.stdout
    no_ns = subprocess.run(base + ["--image", "custody:1", "--check"], capture_output=True, text=True, env=env)
    assert no_ns.returncode == 2 and "own namespace" in no_ns.stderr
    bad = pathlib.Path(secret.path.parent / f"{secret.path.name}-bad.yaml")
    bad.write_text("image: x\nnamespace: custody-system\nmode: sidecar\n")
    typo = subprocess.run(base + ["--config", str(bad), "--check"], capture_output=True, text=True, env=env)
    assert typo.returncode == 2 and "mode" in typo.stderr


def test_the_examples_in_docs_injection_md_are_valid():
    import re

    import yaml

    doc = (REPO / "docs" / "injection.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    webhook_configuration = next(b for b in blocks if "kind: MutatingWebhookConfiguration" in b)
    kubernetes_validate.validate(yaml.safe_load(webhook_configuration), K8S, strict=True)

    secret = SecretDir()
    secret.write(*make_pair("docs"))
    binary = str(_binary("CUSTODY_BIN", "custody"))
    webhook_config = next(b for b in blocks if "native_sidecar:" in b)
    path = secret.path.parent / f"{secret.path.name}-webhook.yaml"
    path.write_text(webhook_config)
    check = subprocess.run(
        [binary, "webhook", "--cert-file", str(secret.path / "tls.crt"), "--key-file", str(secret.path / "tls.key"),
         "--config", str(path), "--namespace", "custody-system", "--check"],
        capture_output=True, text=True,
    )
    assert check.returncode == 0, check.stderr

    sidecar_config = next(b for b in blocks if "listen:" in b)
    # `config check` reads the files the config names, as the sidecar would at
    # start: the pod's key mounts, under a directory of the test's.
    pod = secret.path.parent / f"{secret.path.name}-pod"
    for named in sorted(set(re.findall(r"(/etc/custody/[\w./-]+)", sidecar_config))):
        target = pod / named.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        # The policy the chart installs by default, or a key standing in for a Secret.
        target.write_text(STARTER_POLICY if named.endswith("policy.yaml") else "sk-test-key\n")
    sidecar_config = sidecar_config.replace("/etc/custody/", f"{pod}/etc/custody/")
    path = secret.path.parent / f"{secret.path.name}-custody.yaml"
    path.write_text(sidecar_config)
    check = subprocess.run([binary, "config", "check", "--config", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "/run/custody/custody.sock" in check.stdout


# `custody inject`: the webhook's decisions, offline, on manifests.

def inject_cmd(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(_binary("CUSTODY_BIN", "custody")), "inject", *args],
                          input=stdin, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("case", [c for c in CASES if c["path"] == "/mutate" and c["expect"] != "rejected"],
                         ids=lambda c: c["name"])
def test_inject_command_decides_as_the_webhook(case):
    """Each fixture's pod, given to `custody inject` as a Pod document, comes out as
    the webhook's golden patch makes it (or unchanged when skipped; exit 1 naming it
    when denied)."""
    config = str(FIXTURES / case.get("config", "config.yaml"))
    review = json.loads((FIXTURES / case["fixture"]).read_text())
    request = review["request"]
    if not isinstance(request.get("object"), dict) or request["kind"]["kind"] != "Pod" \
            or request.get("subResource") or request["operation"] != "CREATE":
        pytest.skip("not a pod being created: nothing for a manifest")
    pod = dict(request["object"], apiVersion="v1", kind="Pod")
    golden = json.loads((FIXTURES / "expected" / f"{case['name']}.json").read_text())["body"]["response"]
    ran = inject_cmd("--config", config, "--namespace", request["namespace"], stdin=json.dumps(pod))
    if case["expect"] == "denied":
        assert ran.returncode == 1 and ran.stdout == ""
        assert golden["status"]["message"] in ran.stderr
        assert f"Pod {request['namespace']}/" in ran.stderr
        return
    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout)
    if case["expect"] == "injected":
        assert out == jsonpatch.apply_patch(pod, golden["patch"]["decoded"])
        kubernetes_validate.validate(out, K8S, strict=True)
    else:
        assert out == pod
    for warning in golden.get("warnings", []):
        assert warning.removeprefix("custody: ") in ran.stderr


WORKLOADS = """\
# Every kind with a pod template, a bare Pod, and objects that pass through.
apiVersion: apps/v1
kind: Deployment
metadata: {name: support-agent, namespace: agents}
spec:
  replicas: 2
  selector: {matchLabels: {app: support-agent}}
  template:
    metadata: {labels: {app: support-agent}}
    spec:
      terminationGracePeriodSeconds: 5
      imagePullSecrets: [{name: shared-pull}]
      containers:
        - {name: agent, image: "registry.example/support-agent:2.3.1", ports: [{containerPort: 8080}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: memory}
spec:
  serviceName: memory
  selector: {matchLabels: {app: memory}}
  template:
    metadata: {labels: {app: memory}, annotations: {custody.dev/mode: intercept}}
    spec:
      containers: [{name: memory, image: "registry.example/memory:1"}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-agent}
spec:
  selector: {matchLabels: {app: node-agent}}
  template:
    metadata: {labels: {app: node-agent}}
    spec:
      containers: [{name: node-agent, image: "registry.example/node-agent:1"}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: legacy-rs}
spec:
  selector: {matchLabels: {app: legacy-rs}}
  template:
    metadata: {labels: {app: legacy-rs}, annotations: {custody.dev/inject: "false"}}
    spec:
      containers: [{name: app, image: "registry.example/app:1"}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: backfill}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: backfill, image: "registry.example/backfill:1"}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: nightly, image: "registry.example/nightly:1"}]
---
apiVersion: v1
kind: Pod
metadata: {name: debug}
spec:
  containers: [{name: shell, image: "registry.example/shell:1"}]
---
apiVersion: v1
kind: Service
metadata: {name: support-agent, namespace: agents}
spec: {selector: {app: support-agent}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: custody-config, namespace: agents}
data: {custody.yaml: "listen: {unix: /run/custody/custody.sock}\\n"}
"""


def template_of(obj: dict) -> dict | None:
    if obj["kind"] == "Pod":
        return obj
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]
    return obj.get("spec", {}).get("template")


def test_inject_command_injects_every_workload_kind_and_passes_the_rest(tmp_path):
    import yaml

    source = tmp_path / "app.yaml"
    source.write_text(WORKLOADS)
    out = tmp_path / "injected.yaml"
    config = str(FIXTURES / "config-hardened.yaml")
    ran = inject_cmd("--config", config, "-f", str(source), "-o", str(out), "--namespace", "team")
    assert ran.returncode == 0, ran.stderr
    before = list(yaml.safe_load_all(WORKLOADS))
    after = list(yaml.safe_load_all(out.read_text()))
    assert [o["kind"] for o in after] == [o["kind"] for o in before]
    for old, new in zip(before, after):
        kubernetes_validate.validate(new, K8S, strict=True)
        template = template_of(new)
        if template is None:
            assert new == old, new["kind"]
            continue
        if new["kind"] == "ReplicaSet":  # opted out
            assert new == old
            continue
        spec = template["spec"]
        check_pod_rules(dict(template, spec=spec))
        assert spec["initContainers"][0]["name"] == "custody", new["kind"]
        annotations = template["metadata"]["annotations"]
        assert annotations["custody.dev/sidecar-image"] == "registry.example/custody:0.1.0"
        assert sorted(s["name"] for s in spec["imagePullSecrets"]) == ["registry-credentials", "shared-pull"]
        spool = next(v for v in spec["volumes"] if v["name"] == "custody-spool")
        assert spool["ephemeral"]["volumeClaimTemplate"]["spec"]["storageClassName"] == "fast-ssd"
        # Only additions: the original template is still all there.
        assert jsonpatch.make_patch(template_of(old), template).patch, new["kind"]
        assert all(op["op"] in ("add", "replace") for op in jsonpatch.make_patch(template_of(old), template))
    statefulset = template_of(after[1])
    assert any(e["name"] == "HTTPS_PROXY" for e in statefulset["spec"]["containers"][0]["env"])
    # Warnings and what was decided reach stderr, naming each object.
    assert "Deployment agents/support-agent: injected (reverse mode)" in ran.stderr
    assert "CronJob team/nightly: injected" in ran.stderr
    assert "ReplicaSet team/legacy-rs: not injected (opted_out)" in ran.stderr
    assert "warning: Deployment agents/support-agent: terminationGracePeriodSeconds 5 (the pod's) leaves custody" in ran.stderr
    # Its own output is left as it is (templates already injected).
    again = inject_cmd("--config", config, "-f", str(out))
    assert again.returncode == 0, again.stderr
    assert list(yaml.safe_load_all(again.stdout)) == after
    assert "not injected (already_injected)" in again.stderr


def test_inject_command_refuses_a_denied_template_and_a_bad_config(tmp_path):
    bad = WORKLOADS.replace("annotations: {custody.dev/mode: intercept}", "annotations: {custody.dev/mode: sidecar}")
    ran = inject_cmd("--config", str(FIXTURES / "config.yaml"), stdin=bad)
    assert ran.returncode == 1 and ran.stdout == ""
    assert "custody: StatefulSet -/memory: custody: cannot inject the sidecar: custody.dev/mode" in ran.stderr
    assert "nothing written" in ran.stderr
    # The hardened config's allow-list and bounds, offline too.
    over = WORKLOADS.replace("annotations: {custody.dev/mode: intercept}",
                             "annotations: {custody.dev/memory-limit: 4Gi, custody.dev/cpu-limit: '8'}")
    ran = inject_cmd("--config", str(FIXTURES / "config-hardened.yaml"), stdin=over)
    assert ran.returncode == 1
    assert '"custody.dev/cpu-limit" not allowed' in ran.stderr
    assert 'custody.dev/memory-limit: "4Gi" is above the bound 1Gi (max_resources.limits.memory)' in ran.stderr
    config = tmp_path / "inject.yaml"
    config.write_text("image: x\nkube_version: '1.28'\n")
    ran = inject_cmd("--config", str(config), stdin=WORKLOADS)
    assert ran.returncode == 2
    assert "native_sidecar: true needs Kubernetes 1.29 or later, but kube_version is \"1.28\"" in ran.stderr
    ran = inject_cmd("--config", str(FIXTURES / "config.yaml"), stdin="kind: [unclosed\n")
    assert ran.returncode == 2 and "standard input" in ran.stderr


def test_stale_lists_pods_whose_sidecar_hash_is_not_the_configs(tmp_path):
    injected = inject_cmd("--config", str(FIXTURES / "config.yaml"), stdin=WORKLOADS)
    assert injected.returncode == 0, injected.stderr
    import yaml

    docs = list(yaml.safe_load_all(injected.stdout))
    template = template_of(docs[0])

    def pod(name: str, t: dict, owner: str | None = None) -> dict:
        p = copy.deepcopy(t)
        p.update(apiVersion="v1", kind="Pod")
        p["metadata"].update(name=name, namespace="agents")
        if owner:
            p["metadata"]["ownerReferences"] = [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": "u", "controller": True}]
        return p

    current = pod("support-agent-7d9c5b6f4-aaaaa", template, "support-agent-7d9c5b6f4")
    old = pod("support-agent-5c4b3a291-bbbbb", template, "support-agent-5c4b3a291")
    old["metadata"]["annotations"]["custody.dev/sidecar-hash"] = "0123456789abcdef"
    old["metadata"]["annotations"]["custody.dev/sidecar-image"] = "registry.example/custody:0.0.9"
    unhashed = pod("before-hashes", template)
    del unhashed["metadata"]["annotations"]["custody.dev/sidecar-hash"]
    claim = pod("claims-only", template_of(list(yaml.safe_load_all(WORKLOADS))[0]))
    claim["metadata"]["annotations"] = {"custody.dev/injected": "0.1.0"}
    plain = pod("not-injected", template_of(list(yaml.safe_load_all(WORKLOADS))[0]))
    pods = {"apiVersion": "v1", "kind": "List", "items": [current, old, unhashed, claim, plain]}
    listing = tmp_path / "pods.json"
    listing.write_text(json.dumps(pods))

    ran = inject_cmd("--config", str(FIXTURES / "config.yaml"), "--stale", "-f", str(listing))
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("agents/support-agent-5c4b3a291-bbbbb (owner: ReplicaSet support-agent-5c4b3a291): "
                               "custody.dev/sidecar-hash 0123456789abcdef, current ")
    assert "image registry.example/custody:0.0.9 -> registry.example/custody:0.1.0" in lines[0]
    assert lines[1].startswith("agents/before-hashes: no custody.dev/sidecar-hash")
    assert lines[2].startswith("agents/claims-only: custody.dev/injected") and "runs without custody" in lines[2]
    assert "3 of 4 injected pod(s) stale" in ran.stderr and "kubectl rollout restart" in ran.stderr

    # A config change (here the hardened config) or a new image makes every injected pod stale.
    ran = inject_cmd("--config", str(FIXTURES / "config-hardened.yaml"), "--stale", stdin=json.dumps(pods))
    assert ran.returncode == 0 and len(ran.stdout.splitlines()) == 4
    ran = inject_cmd("--config", str(FIXTURES / "config.yaml"), "--image", "registry.example/custody:0.2.0",
                     "--stale", stdin=json.dumps(pods))
    assert ran.returncode == 0 and len(ran.stdout.splitlines()) == 4
    assert "image registry.example/custody:0.1.0 -> registry.example/custody:0.2.0" in ran.stdout.splitlines()[0]
