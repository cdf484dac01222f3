"""An independent verifier of custody's digests, written only from docs/verify.md
("Verifying: the procedure"), with PyPI's `cryptography` for Ed25519 and DuckDB to
count a file's rows. It shares no code with custody; test_verify.py runs it beside
`custody verify` over the same trails.

    python doc_verifier.py SINK_DIR PUBLIC_KEY.pem [--to RFC3339] [--interval SECONDS]
"""
import base64
import datetime
import hashlib
import json
import pathlib
import sys

import duckdb
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def fingerprint(key: Ed25519PublicKey) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def when(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def verify(sink: pathlib.Path, keys: list[Ed25519PublicKey], to: datetime.datetime,
           interval: datetime.timedelta) -> list[tuple[str, str]]:
    findings = []
    trusted_keys = {fingerprint(k): k for k in keys}
    # 1. List.
    objects = {p.relative_to(sink).as_posix() for p in sink.rglob("*") if p.is_file()
               and not any(part.startswith(".") for part in p.relative_to(sink).parts)}
    files = {k for k in objects if k.endswith(".parquet") and not k.startswith("digests/")}
    digests = sorted(k for k in objects if k.startswith("digests/") and k.endswith(".json"))
    stored = {}
    trusted = []
    # 2. Each digest.
    for key in digests:
        body = (sink / key).read_bytes()
        sig_key = key + ".sig"
        signature = (sink / sig_key).read_text().strip() if sig_key in objects else ""
        stored[key] = (hashlib.sha256(body).hexdigest(), signature)
        if not signature:
            findings.append(("digest_unsigned", key))
            continue
        try:
            digest = json.loads(body)
            assert digest["digest_version"] in (1, 2)
        except Exception:
            findings.append(("digest_unreadable", key))
            continue
        public = trusted_keys.get(digest["key_fingerprint"])
        if public is None:
            findings.append(("digest_unknown_key", key))
            continue
        try:
            public.verify(base64.b64decode(signature), body)
        except (InvalidSignature, ValueError):
            findings.append(("digest_bad_signature", key))
            continue
        expected = (f"digests/dt={digest['period_end'][:10]}/{digest['instance']}-{digest['spool_id']}-"
                    f"{digest['start_id']}-{digest['sequence']:06d}.json")
        if expected != key:
            findings.append(("digest_misplaced", key))
            continue
        trusted.append((key, digest))
    # 3. Chains.
    chains: dict[tuple, list] = {}
    named_by: dict[str, str] = {}
    for key, d in trusted:
        chains.setdefault((d["instance"], d["spool_id"]), []).append(d)
        link = d["previous"]
        if link is not None:
            if link["key"] not in stored:
                findings.append(("digest_missing", link["key"]))
            elif stored[link["key"]] != (link["sha256"], link["signature"]):
                findings.append(("digest_modified", link["key"]))
            other = named_by.setdefault(link["key"], d["start_id"])
            if other != d["start_id"]:
                findings.append(("chain_fork", link["key"]))
        elif d["chain_start"] is None:
            findings.append(("chain_break", key))
    newest = {}
    for chain, members in chains.items():
        last = max(members, key=lambda d: (d["start_id"], d["sequence"]))
        newest[chain] = last
        if last["kind"] != "shutdown" and when(last["period_end"]) < to - interval:
            findings.append(("chain_unclosed", chain[0] + "-" + chain[1]))
    # 4. Files.
    covered = set()
    rows = 0
    numbers: dict[tuple, list] = {}

    def chain_of(key: str) -> tuple:
        instance, spool, _segment = key.rsplit("/", 1)[-1][: -len(".parquet")].rsplit("-", 2)
        return instance, spool

    def note_numbers(key: str):
        seqs = [r[0] for r in duckdb.connect().execute(
            f"SELECT row_seq FROM read_parquet('{sink / key}')").fetchall()]
        numbers.setdefault(chain_of(key), []).extend(seqs)
    for key, d in trusted:
        for entry in d["files"]:
            covered.add(entry["key"])
            if entry["key"] not in files:
                name = entry["key"].rsplit("/", 1)[-1]
                moved = any(f.rsplit("/", 1)[-1] == name for f in files)
                findings.append(("file_moved" if moved else "file_missing", entry["key"]))
                continue
            data = (sink / entry["key"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                findings.append(("file_modified", entry["key"]))
                continue
            counted = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{sink / entry['key']}')").fetchall()[0][0]
            assert counted == entry["rows"], (entry, counted)
            rows += counted
            note_numbers(entry["key"])
    # 4b. Policy files (digest version 2).
    checked = set()
    for key, d in trusted:
        for entry in d.get("policies", []):
            if entry["key"] in checked:
                continue
            checked.add(entry["key"])
            if entry["key"] not in objects:
                findings.append(("policy_missing", entry["key"]))
            elif hashlib.sha256((sink / entry["key"]).read_bytes()).hexdigest() != entry["sha256"]:
                findings.append(("policy_modified", entry["key"]))
    pending = 0
    for f in sorted(files - covered):
        last = newest.get(chain_of(f))
        if last is not None and last["kind"] != "shutdown":
            pending += 1
            note_numbers(f)
        else:
            findings.append(("file_not_covered", f))
    # 5. Rows: 1, 2, 3, … per chain.
    for chain, seqs in numbers.items():
        if any(n is None for n in seqs):
            continue
        expected = 1
        for i, n in enumerate(sorted(seqs)):
            if n > expected:
                findings.append(("row_seq_hole", chain[0] + "-" + chain[1]))
            elif n < expected and i > 0:
                findings.append(("row_seq_duplicate", chain[0] + "-" + chain[1]))
            expected = max(expected, n + 1)
    return sorted(findings)


def main(argv: list[str]) -> int:
    sink, key = pathlib.Path(argv[1]), pathlib.Path(argv[2])
    to = datetime.datetime.now(datetime.timezone.utc)
    interval = datetime.timedelta(hours=1)
    rest = argv[3:]
    while rest:
        flag, value, *rest = rest
        if flag == "--to":
            to = when(value)
        elif flag == "--interval":
            interval = datetime.timedelta(seconds=float(value))
    public = serialization.load_pem_public_key(key.read_bytes())
    findings = verify(sink, [public], to, interval)
    print(json.dumps([list(f) for f in findings]))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
