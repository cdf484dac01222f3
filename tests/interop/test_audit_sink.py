"""DuckDB reads the uploaded audit files by their Hive partitions: from the local
directory sink (the default, spool hidden beside the files) and from what an
S3-compatible server (s3s-fs) stored."""

import datetime
import json
import os
import subprocess
import time
import urllib.request

import duckdb

from conftest import REPO, Custody, free_port

S3S_FS = os.environ.get("CUSTODY_S3S_FS", str(REPO / ".tools" / "bin" / "s3s-fs"))


def chat(custody: Custody, request_id: str):
    request = urllib.request.Request(
        f"http://{custody.tcp}/openai/v1/chat/completions",
        data=json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"content-type": "application/json", "x-request-id": request_id},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def by_partition(files: str) -> list[tuple]:
    con = duckdb.connect()
    return con.execute(
        f"""
        SELECT dt, hour, count(*) AS n,
               bool_and(strftime(event_time AT TIME ZONE 'UTC', '%Y-%m-%d') = CAST(dt AS VARCHAR)) AS dt_ok,
               bool_and(hour(event_time AT TIME ZONE 'UTC') = hour) AS hour_ok,
               count(DISTINCT request_id) AS ids
        FROM read_parquet('{files}', hive_partitioning = true)
        GROUP BY ALL ORDER BY ALL
        """
    ).fetchall()


def test_duckdb_reads_the_local_sink_by_hive_partition(stub):
    with Custody(stub) as custody:
        for i in range(25):
            chat(custody, f"local-{i}")
        custody.stop()
    assert (custody.audit_dir / ".spool").is_dir(), "the spool lives hidden in the sink"
    parts = by_partition(f"{custody.audit_dir}/**/*.parquet")
    assert sum(p[2] for p in parts) == 25
    assert all(p[3] and p[4] for p in parts), parts
    assert sum(p[5] for p in parts) == 25
    today = datetime.datetime.now(datetime.timezone.utc).date()
    con = duckdb.connect()
    # Partition pruning on the Hive columns: only today's files are read.
    (n,) = con.execute(
        f"SELECT count(*) FROM read_parquet('{custody.audit_dir}/**/*.parquet', hive_partitioning = true) "
        f"WHERE dt = DATE '{today}' OR dt = DATE '{today - datetime.timedelta(days=1)}'"
    ).fetchone()
    assert n == 25


def test_duckdb_reads_what_the_s3_sink_uploaded(stub, tmp_path):
    root = tmp_path / "s3"
    (root / "audit").mkdir(parents=True)
    port = free_port()
    server = subprocess.Popen(
        [S3S_FS, "--host", "127.0.0.1", "--port", str(port),
         "--access-key", "interop", "--secret-key", "interop-secret", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
                    break
            except urllib.error.HTTPError:
                break
            except OSError:
                assert time.monotonic() < deadline, "s3s-fs did not start"
                time.sleep(0.05)
        secret = tmp_path / "secret"
        secret.write_text("interop-secret")
        audit = (
            "{sink: 's3://audit/trail', roll: {rows: 10, age: 200ms}, spool: {dir: '%s'}, "
            "s3: {endpoint: 'http://127.0.0.1:%d', region: us-east-1, path_style: true, "
            "access_key_id: interop, secret_access_key_file: '%s'}}" % (tmp_path / "spool", port, secret)
        )
        with Custody(stub, audit=audit) as custody:
            for i in range(30):
                chat(custody, f"s3-{i}")
            custody.stop()
        parts = by_partition(f"{root}/audit/trail/**/*.parquet")
        assert sum(p[2] for p in parts) == 30, parts
        assert all(p[3] and p[4] for p in parts), parts
        assert sum(p[5] for p in parts) == 30
    finally:
        server.terminate()
        server.wait(timeout=10)
