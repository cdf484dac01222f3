"""`custody webhook` as an operator runs it: `--check` shows every setting that
decides what a pod gets, and under SIGTERM and on `/metrics`: a terminating replica keeps
answering AdmissionReviews for `--drain-delay` while `/readyz` is 503 (so the API
server, which still routes to it for a moment, never finds a closed port and rejects
a pod under `failurePolicy: Fail`), then stops; every review is counted by path and
decision."""

import re
import signal
import subprocess
import time

from conftest import _binary, free_port
from test_inject import FIXTURES, SecretDir, make_pair
from test_metrics import DOCS, documented
import ssl
import urllib.error
import urllib.request


class Replica:
    def __init__(self, secret: SecretDir, drain_delay: str):
        self.secret = secret
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.log = secret.path.parent / f"{secret.path.name}-drain.log"
        self.proc = subprocess.Popen(
            [
                str(_binary("CUSTODY_BIN", "custody")), "--log-format", "json", "webhook",
                "--listen", f"127.0.0.1:{self.port}",
                "--cert-file", str(secret.path / "tls.crt"),
                "--key-file", str(secret.path / "tls.key"),
                "--config", str(FIXTURES / "config.yaml"),
                "--drain-delay", drain_delay,
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "wb"),
        )
        deadline = time.monotonic() + 20
        while self.request("GET", "/healthz")[0] != 200:
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def request(self, method: str, path: str, body: bytes | None = None):
        ctx = ssl.create_default_context(cafile=str(self.secret.path / "ca.pem"))
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError:
            return None, b""

    def metrics(self) -> dict[str, float]:
        status, body = self.request("GET", "/metrics")
        assert status == 200
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                out[key] = float(value)
        return out


def review(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_sigterm_drains_then_stops_and_reviews_are_counted():
    secret = SecretDir()
    secret.write(*make_pair("custody-webhook.custody-system.svc"))
    replica = Replica(secret, "2s")
    try:
        assert replica.request("GET", "/readyz")[0] == 200
        assert replica.request("POST", "/mutate", review("bare-pod.json"))[0] == 200
        assert replica.request("POST", "/mutate", review("opted-out.json"))[0] == 200
        assert replica.request("POST", "/mutate/opt-in", review("not-opted-in.json"))[0] == 200
        assert replica.request("POST", "/mutate", b"not json")[0] == 400
        m = replica.metrics()
        assert m['custody_webhook_reviews_total{path="/mutate",decision="injected"}'] == 1
        assert m['custody_webhook_reviews_total{path="/mutate",decision="skipped"}'] == 1
        assert m['custody_webhook_reviews_total{path="/mutate/opt-in",decision="skipped"}'] == 1
        assert m['custody_webhook_reviews_total{path="/mutate",decision="error"}'] == 1
        assert m['custody_webhook_reviews_total{path="/mutate",decision="denied"}'] == 0
        assert m['custody_webhook_review_duration_seconds_count'] == 4
        assert m['custody_webhook_review_duration_seconds_bucket{le="+Inf"}'] == 4
        assert m["custody_webhook_ready"] == 1
        # docs/metrics.md's injector section lists exactly what is served, typed.
        status, text = replica.request("GET", "/metrics")
        served = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text.decode(), re.M))
        assert documented(injector=True) == set(served)
        doc = DOCS.read_text()
        for name, kind in served.items():
            assert re.search(rf"^\| `{name}(\{{[^`]*\}})?` \| {kind} \|", doc, re.M), name

        signalled = time.monotonic()
        replica.proc.send_signal(signal.SIGTERM)
        # Not ready at once...
        deadline = signalled + 1
        while replica.request("GET", "/readyz")[0] != 503:
            assert time.monotonic() < deadline, replica.log.read_text()
            time.sleep(0.02)
        # ...but still answering reviews, on new connections, through the delay.
        answered = 0
        while time.monotonic() - signalled < 1.5:
            status, body = replica.request("POST", "/mutate", review("bare-pod.json"))
            assert status == 200, (status, body, replica.log.read_text())
            assert b'"allowed":true' in body
            answered += 1
        assert answered >= 3
        assert replica.metrics()["custody_webhook_ready"] == 0
        # Then it stops by itself, cleanly, and the port is closed.
        assert replica.proc.wait(timeout=15) == 0, replica.log.read_text()
        assert time.monotonic() - signalled >= 2
        assert replica.request("GET", "/healthz")[0] is None
        log = replica.log.read_text()
        assert "draining" in log and "drain delay over" in log
    finally:
        if replica.proc.poll() is None:
            replica.proc.kill()


def test_a_second_signal_ends_the_drain_early():
    secret = SecretDir()
    secret.write(*make_pair("custody-webhook.custody-system.svc"))
    replica = Replica(secret, "60s")
    try:
        started = time.monotonic()
        replica.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert replica.proc.poll() is None, "still draining"
        replica.proc.send_signal(signal.SIGINT)
        assert replica.proc.wait(timeout=15) == 0
        assert time.monotonic() - started < 10
        assert re.search(r'"after":"SIGINT"', replica.log.read_text())
    finally:
        if replica.proc.poll() is None:
            replica.proc.kill()


def test_check_prints_each_namespace_once_and_the_production_settings():
    secret = SecretDir()
    secret.write(*make_pair("custody-webhook.custody-system.svc"))
    config = secret.path.parent / f"{secret.path.name}-check.yaml"
    config.write_text(
        "image: registry.example/custody:0.1.0\n"
        "namespace: custody-system\n"
        "exclude_namespaces: [kube-system, custody-system, kube-system, cert-manager]\n"
        "mandatory_namespaces: [payments]\n"
        "image_pull_secrets: [regcred]\n"
        "termination_grace: {sidecar_seconds: 40, action: warn}\n"
        "spool_volume: {kind: ephemeral, storage_class: fast}\n"
    )
    out = subprocess.run(
        [str(_binary("CUSTODY_BIN", "custody")), "webhook", "--check",
         "--cert-file", str(secret.path / "tls.crt"), "--key-file", str(secret.path / "tls.key"),
         "--config", str(config)],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in out.stdout.splitlines() if ":" in line}
    assert lines["never injected"] == "custody-system (own), kube-system, cert-manager"
    assert lines["mandatory"] == "payments (no opt-out)"
    assert lines["pull secrets"] == "regcred"
    assert lines["grace period"].startswith("warn, the sidecar needs 40 s")
    assert lines["spool volume"].startswith("ephemeral, storage class fast")
    assert re.fullmatch(r"[0-9a-f]{16}", lines["sidecar hash"])
