"""docs/verify.md is enough to write a verifier: doc_verifier.py, written from it
alone (cryptography for Ed25519, DuckDB for row counts), agrees with `custody
verify` on a trail custody wrote across a restart — clean, and after each kind of
tampering."""
import base64
import datetime
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import time
import urllib.request

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import Custody, _binary

HERE = pathlib.Path(__file__).resolve().parent


def _traffic(custody: Custody, n: int):
    for _ in range(n):
        try:
            urllib.request.urlopen(f"http://{custody.tcp}/openai/v1/models", timeout=5).read()
        except urllib.error.HTTPError:
            pass  # the stub's 404 is a row like any other


def _custody_verify(sink: pathlib.Path, key: pathlib.Path, to: str) -> set[str]:
    out = subprocess.run([str(_binary("CUSTODY_BIN", "custody")), "verify", str(sink), "--public-key", str(key),
                          "--json", "--interval", "1s", "--to", to], capture_output=True, text=True, timeout=60)
    assert out.returncode in (0, 1), out.stderr
    report = json.loads(out.stdout)
    assert (out.returncode == 0) == (not report["findings"])
    return {f["kind"] for f in report["findings"]}


def _doc_verify(sink: pathlib.Path, key: pathlib.Path, to: str) -> set[str]:
    out = subprocess.run([sys.executable, str(HERE / "doc_verifier.py"), str(sink), str(key),
                          "--to", to, "--interval", "1"], capture_output=True, text=True, timeout=120)
    assert out.returncode in (0, 1), out.stdout + out.stderr
    return {kind for kind, _ in json.loads(out.stdout)}


def test_an_independent_verifier_from_the_docs_agrees_with_custody_verify(stub, tmp_path):
    key = tmp_path / "digest.pem"
    subprocess.run([str(_binary("CUSTODY_BIN", "custody")), "keygen", "--out", str(key)], check=True,
                   capture_output=True)
    public = pathlib.Path(f"{key}.pub")
    sink = tmp_path / "sink"
    audit = (f"{{sink: '{sink}', spool: {{dir: '{tmp_path / 'spool'}'}}, roll: {{age: 200ms}}, "
             f"digests: {{interval: 1s, signing_key_file: '{key}'}}}}")
    # A policy in force, changed while custody runs (a reload), and again before
    # the restart: each version custody enforced is stored on the sink and listed
    # by a signed digest.
    policy = tmp_path / "policy.yaml"
    texts = [f"# version {i}\nroles:\n  analyst:\n    grants: [model:standard]\n" for i in range(3)]
    policy.write_text(texts[0])
    extra = f"policy: {{file: '{policy}', reload_interval: 100ms}}\n"
    for run in range(2):
        with Custody(stub, audit=audit, extra=extra) as custody:
            _traffic(custody, 15)
            if run == 0:
                policy.write_text(texts[1])
            time.sleep(1.3)
            _traffic(custody, 15)
            custody.stop()
        policy.write_text(texts[2])
    later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    assert _custody_verify(sink, public, later) == set()
    assert _doc_verify(sink, public, later) == set()
    # Every policy version is there, content-addressed, with the bytes custody read.
    stored_policies = {p.name: p.read_text() for p in (sink / "policies").iterdir()}
    expected = {hashlib.sha256(t.encode()).hexdigest()[:16] + ".yaml": t for t in texts}
    assert stored_policies == expected, sorted(stored_policies)
    listed = [p["key"] for d in sink.rglob("*.json") for p in json.loads(d.read_text()).get("policies", [])]
    assert sorted(set(listed)) == sorted(f"policies/{name}" for name in expected), listed
    out = subprocess.run([str(_binary("CUSTODY_BIN", "custody")), "verify", str(sink), "--public-key", str(public),
                          "--json", "--interval", "1s", "--to", later], capture_output=True, text=True, timeout=60)
    assert json.loads(out.stdout)["policies"] == 3, out.stdout

    files = sorted(p for p in sink.rglob("*.parquet") if ".spool" not in p.parts)
    digests = sorted((p for p in sink.rglob("*.json")), key=lambda p: p.name)
    listing = [p for p in digests if json.loads(p.read_text())["files"]]
    other = Ed25519PrivateKey.generate()

    def delete_file(root):
        (root / files[0].relative_to(sink)).unlink()

    def flip_byte(root):
        path = root / files[1].relative_to(sink)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 1
        path.write_bytes(bytes(data))

    def move_file(root):
        path = root / files[0].relative_to(sink)
        target = root / "dt=2020-01-01" / "hour=00"
        target.mkdir(parents=True)
        path.rename(target / path.name)

    def delete_digest(root):
        path = root / digests[1].relative_to(sink)
        path.unlink()
        pathlib.Path(f"{path}.sig").unlink()

    def edit_digest(root):
        path = root / listing[0].relative_to(sink)
        path.write_text(path.read_text().replace('"rows": ', '"rows": 9', 1))

    def resign_digest(root):
        path = root / listing[0].relative_to(sink)
        digest = json.loads(path.read_text())
        der = other.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        import hashlib
        digest["key_fingerprint"] = "sha256:" + hashlib.sha256(der).hexdigest()
        body = (json.dumps(digest, indent=2) + "\n").encode()
        path.write_bytes(body)
        pathlib.Path(f"{path}.sig").write_text(base64.b64encode(other.sign(body)).decode() + "\n")

    def stolen_key_rewrite(root):
        # Holding the signing key: remove a file, drop it from its digest, re-sign and
        # re-link the whole chain. Only the row numbers show it.
        gone = files[1].relative_to(sink).as_posix()
        (root / gone).unlink()
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
        previous = None
        for p in digests:
            path = root / p.relative_to(sink)
            digest = json.loads(path.read_text())
            digest["files"] = [f for f in digest["files"] if f["key"] != gone]
            if digest["previous"] is not None:
                digest["previous"] = previous
            body = (json.dumps(digest, indent=2) + "\n").encode()
            signature = base64.b64encode(private.sign(body)).decode()
            path.write_bytes(body)
            pathlib.Path(f"{path}.sig").write_text(signature + "\n")
            import hashlib
            previous = {"key": path.relative_to(root).as_posix(), "sha256": hashlib.sha256(body).hexdigest(),
                        "signature": signature}

    policy_file = sorted((sink / "policies").iterdir())[0].relative_to(sink)

    def delete_policy(root):
        (root / policy_file).unlink()

    def edit_policy(root):
        path = root / policy_file
        path.write_text(path.read_text().replace("analyst", "admin"))

    def drop_newest(root):
        path = root / digests[-1].relative_to(sink)
        path.unlink()
        pathlib.Path(f"{path}.sig").unlink()

    cases = [(delete_file, "file_missing"), (flip_byte, "file_modified"), (move_file, "file_moved"),
             (delete_digest, "digest_missing"), (edit_digest, "digest_bad_signature"),
             (resign_digest, "digest_unknown_key"), (stolen_key_rewrite, "row_seq_hole"),
             (drop_newest, "chain_unclosed"), (delete_policy, "policy_missing"),
             (edit_policy, "policy_modified")]
    for i, (tamper, expected) in enumerate(cases):
        root = tmp_path / f"case-{i}"
        shutil.copytree(sink, root)
        tamper(root)
        ours, theirs = _custody_verify(root, public, later), _doc_verify(root, public, later)
        assert expected in ours, (tamper.__name__, ours)
        assert ours == theirs, (tamper.__name__, ours, theirs)
