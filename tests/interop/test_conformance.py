"""The official MCP conformance suite (npm `@modelcontextprotocol/conformance`,
pinned in tests/interop/conformance/package.json) run directly and through custody.

- Server scenarios: against `conformance_server.py` (the official Python SDK), once
  directly and once through custody's `mcp` route on loopback TCP. Every scenario
  that passes directly must pass through custody, and custody must write one row per
  request it forwarded, carrying the request's operation (compared with what the
  server received), plus one row per request it refused itself
  (`dns-rebinding-protection`'s rebound Host: `integrity:host`).
- Client scenarios: the suite starts its own server and runs
  `conformance_client.py` with its URL, directly and with `--custody` (custody
  started with that URL as the `mcp` route's upstream, the official Python client
  talking to custody).

Scenarios that cannot pass through a proxy by design are listed in docs/interop.md
(none today).
"""

import json
import os
import pathlib
import subprocess
import sys

import duckdb
import pytest

from conftest import Custody, _binary, serve

HERE = pathlib.Path(__file__).parent
SUITE = HERE / "conformance" / "node_modules" / ".bin" / "conformance"
CLIENT_SCENARIOS = ["initialize", "tools_call", "elicitation-sep1034-client-defaults", "sse-retry"]


def suite(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    if not SUITE.exists():
        pytest.fail(f"{SUITE} missing: run npm ci --prefix tests/interop/conformance (scripts/test does)")
    env = {**os.environ, "CUSTODY_BIN": str(_binary("CUSTODY_BIN", "custody"))}
    return subprocess.run([str(SUITE), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def outcomes(directory: pathlib.Path, prefix: str) -> dict[str, list[dict]]:
    """scenario → its checks, from the suite's `-o` directory
    (`<prefix><scenario>-<time>/checks.json`; the time has six dashes)."""
    out = {}
    for checks in directory.glob(f"{prefix}*/checks.json"):
        scenario = checks.parent.name.removeprefix(prefix).rsplit("-", 6)[0]
        out[scenario] = json.loads(checks.read_text())
    return out


def passed(checks: list[dict]) -> bool:
    return bool(checks) and all(c["status"] in ("SUCCESS", "INFO") for c in checks)


def failures(checks: list[dict]) -> list[str]:
    return [f"{c['id']}: {c.get('errorMessage') or c['status']}" for c in checks if c["status"] not in ("SUCCESS", "INFO")]


def test_server_scenarios_pass_through_custody(tmp_path):
    log = tmp_path / "server-requests.log"
    for addr in serve([sys.executable, str(HERE / "conformance_server.py"), str(log)]):
        direct = outcomes(_run_server_suite(f"http://{addr}/mcp", tmp_path / "direct"), "server-")
        received_directly = len(log.read_text().splitlines())
        with Custody("http://127.0.0.1:9", routes=f"  - {{name: mcp, prefix: /mcp, upstream: 'http://{addr}/mcp', kind: mcp}}\n") as custody:
            proxied = outcomes(_run_server_suite(f"http://{custody.tcp}/mcp", tmp_path / "proxied"), "server-")
            custody.stop()
            rows = custody.query(
                'SELECT "action"."method", "action"."operation", "policy"."rule", "outcome"."status" FROM audit'
            )
        received = sorted(tuple(line.split(" ", 1)) for line in log.read_text().splitlines()[received_directly:])
    passing = {s for s, checks in direct.items() if passed(checks)}
    # Not vacuous: the SDK server passes the suite's core scenarios directly.
    assert {"server-initialize", "tools-call-simple-text", "tools-call-elicitation", "tools-call-sampling",
            "resources-read-text", "prompts-get-with-args", "dns-rebinding-protection"} <= passing, {
        s: failures(c) for s, c in direct.items() if s not in passing}
    broken = {s: failures(proxied.get(s, [])) for s in passing if not passed(proxied.get(s, []))}
    assert not broken, broken
    # One row per request: what the server received, with its operation, and the
    # rebound requests custody refused itself (never forwarded).
    refused = [r for r in rows if (r[2] or "").startswith("integrity:")]
    assert refused and {(r[2], r[3]) for r in refused} == {("integrity:host", 421)}, refused
    forwarded = sorted((method, operation) for method, operation, rule, _ in rows
                       if not (rule or "").startswith("integrity:"))
    expected = sorted((m, {"-": "stream" if m == "GET" else "session.delete"}.get(op, op)) for m, op in received)
    assert forwarded == expected
    assert {"initialize", "tools/call", "resources/read", "prompts/get", "completion/complete",
            "resources/subscribe", "logging/setLevel", "ping", "response"} <= {op for _, op in forwarded}


def _run_server_suite(url: str, out: pathlib.Path) -> pathlib.Path:
    result = suite("server", "--url", url, "-o", str(out), cwd=HERE / "conformance")
    assert out.is_dir(), result.stdout + result.stderr
    return out


@pytest.mark.parametrize("scenario", CLIENT_SCENARIOS)
def test_client_scenarios_pass_through_custody(tmp_path, scenario):
    client = f"{sys.executable} {HERE / 'conformance_client.py'}"
    results = {}
    for how, command in [("direct", client), ("custody", f"{client} --custody {tmp_path / 'custody'}")]:
        out = tmp_path / how
        run = suite("client", "--command", command, "--scenario", scenario, "-o", str(out), cwd=HERE / "conformance")
        results[how] = outcomes(out, "").get(scenario, [])
        assert results[how], run.stdout + run.stderr
    assert passed(results["direct"]), failures(results["direct"])
    assert passed(results["custody"]), failures(results["custody"])
    # One row per MCP request custody relayed, each with its operation.
    rows = duckdb.connect().execute(
        'SELECT "action"."method", "action"."operation", "outcome"."error" FROM read_parquet('
        f"'{tmp_path / 'custody' / 'audit'}/**/*.parquet', hive_partitioning = true)").fetchall()
    operations = {op for _, op, _ in rows}
    assert rows and None not in operations, rows
    assert "initialize" in operations, rows
