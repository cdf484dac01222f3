"""`custody report` on a trail the real binary wrote over two days (the first under
libfaketime, a day back): several users and roles under a policy, PII redacted,
blocked and passed on, denials, MCP and LLM calls. Its JSON, CSV and HTML agree
with DuckDB over the same files; the HTML, opened in headless Chromium, shows every
section with those numbers and inline SVG charts, fetches nothing, renders to a
non-blank screenshot and prints to PDF."""

import csv
import datetime
import http.server
import json
import pathlib
import re
import shutil
import subprocess
import threading
import time
import urllib.request
import zlib

import duckdb
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import Custody, _binary

ISSUER = "https://idp.report.test/"
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
POLICY = """format: 1
roles:
  viewer: {grants: [tool:crm:read, model:standard]}
  analyst: {inherits: [viewer], grants: [tool:crm:export]}
tools:
  "crm:contacts_search": [tool:crm:read]
  "crm:contacts_export": [tool:crm:export]
models:
  "gpt-4o-mini*": [model:standard]
  "gpt-4o*": [model:premium]
"""
# (user, role, org)
USERS = {
    "alice": ("analyst", "acme"),
    "bob": ("viewer", "acme"),
    "carol": ("viewer", "globex"),
    "dave": ("viewer", "globex"),
    "erin": ("intern", "acme"),
}


def report_bin() -> pathlib.Path:
    return _binary("CUSTODY_BIN", "custody").parent / "custody-report"


class Trail:
    """Two custody processes ("pods") writing one sink: yesterday (faked), today."""

    def __init__(self, stub: str, work: pathlib.Path):
        self.work = work
        self.sink = work / "sink"
        self.key = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": "report", "alg": "ES256", "use": "sig"})
        (work / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
        (work / "policy.yaml").write_text(POLICY)
        subprocess.run([str(_binary("CUSTODY_BIN", "custody")), "keygen", "--out", str(work / "digest.pem")],
                       check=True, capture_output=True)
        self.stub = stub

    def token(self, user: str) -> str:
        role, org = USERS[user]
        now = int(time.time())
        # Valid for both pods: issued before the faked day, expiring after today's run.
        claims = {"iss": ISSUER, "aud": "custody", "sub": user, "role": role, "org_id": org,
                  "iat": now - 2 * 86400, "exp": now + 3 * 3600}
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": "report"})

    def custody(self, name: str, faked: bool) -> Custody:
        extra = (
            f"identity:\n  issuers:\n    - {{issuer: '{ISSUER}', audiences: [custody], "
            f"jwks_file: '{self.work / 'jwks.json'}', algorithms: [ES256]}}\n"
            f"policy: {{file: '{self.work / 'policy.yaml'}'}}\n"
            "safety: {detectors: {EMAIL: redact, CARD: block, '*': log}}\n"
        )
        audit = (f"{{sink: '{self.sink}', spool: {{dir: '{self.work / name}'}}, roll: {{age: 1s}}, "
                 f"digests: {{interval: 1s, signing_key_file: '{self.work / 'digest.pem'}'}}}}")
        routes = f"  - {{name: crm, prefix: /mcp, upstream: '{self.stub}/echo', kind: mcp}}\n"
        env = {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": "-1d"} if faked else None
        return Custody(self.stub, extra=extra, routes=routes, audit=audit, env=env)


def call(custody: Custody, user: str | None, trail: Trail, path: str, body: dict, session: str) -> int:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
               "x-custody-session": session}
    if user:
        headers["x-custody-user-token"] = trail.token(user)
    request = urllib.request.Request(f"http://{custody.tcp}{path}", data=json.dumps(body).encode(),
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def chat(custody, trail, user, model="gpt-4o-mini", text="summarise the pipeline", session="s"):
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return call(custody, user, trail, "/openai/v1/chat/completions", body, f"{user}-{session}")


def tool(custody, trail, user, name, arguments, session="s"):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
    return call(custody, user, trail, "/mcp/mcp", body, f"{user}-{session}")


@pytest.fixture(scope="module")
def trail(stub, tmp_path_factory):
    if not pathlib.Path(FAKETIME_LIB).exists():
        pytest.fail("libfaketime is missing: scripts/test installs Debian's faketime")
    t = Trail(stub, tmp_path_factory.mktemp("report"))
    with t.custody("spool-yesterday", faked=True) as c:
        for _ in range(3):
            chat(c, t, "alice")
        tool(c, t, "alice", "contacts_search", {"query": "acme"})
        chat(c, t, "bob")
        chat(c, t, "bob")
        tool(c, t, "bob", "contacts_search", {"query": "globex"})
        chat(c, t, "carol")
        chat(c, t, "erin")
        c.stop()
    t.today = time.time()
    with t.custody("spool-today", faked=False) as c:
        chat(c, t, "alice", text="write to ada@example.com about the renewal")
        tool(c, t, "alice", "contacts_export", {"segment": "enterprise"}, session="export")
        for i in range(6):
            tool(c, t, "bob", "contacts_export", {"segment": f"s{i}"}, session="export")
        for i in range(25):
            chat(c, t, "carol", session=f"burst{i // 10}")
        chat(c, t, "dave")
        chat(c, t, "dave", text="call me at +1 415 555 0134")
        chat(c, t, "erin", model="gpt-4o")
        chat(c, t, "bob", text="card 4111 1111 1111 1111 please")
        call(c, None, t, "/openai/v1/chat/completions", {"model": "gpt-4o-mini", "messages": []}, "anon")
        c.stop()
    days = sorted(p.name for p in t.sink.glob("dt=*"))
    assert len(days) == 2, days
    yield t


def period(t: Trail) -> tuple[str, str]:
    at = datetime.datetime.fromtimestamp(t.today, datetime.timezone.utc)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return ((at - datetime.timedelta(hours=12)).strftime(fmt), (at + datetime.timedelta(hours=12)).strftime(fmt))


def run_report(t: Trail, fmt: str, out: pathlib.Path, *extra: str) -> subprocess.CompletedProcess:
    start, end = period(t)
    return subprocess.run(
        [str(_binary("CUSTODY_BIN", "custody")), "report", "--sink", str(t.sink), "--from", start, "--to", end,
         "--format", fmt, "--out", str(out), "--public-key", str(t.work / "digest.pem.pub"),
         "--digest-interval", "1s", *extra],
        capture_output=True, text=True, timeout=120,
    )


def duck(t: Trail):
    start, end = period(t)
    con = duckdb.connect()
    con.execute(
        f"CREATE VIEW audit AS SELECT * FROM read_parquet('{t.sink}/**/*.parquet', hive_partitioning = true, "
        f"union_by_name = true) WHERE event_time >= TIMESTAMPTZ '{start}' AND event_time < TIMESTAMPTZ '{end}'"
    )
    return con


def expected(t: Trail) -> dict:
    """The report's figures, computed by DuckDB over the same files."""
    con = duck(t)
    q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
    user = "coalesce(principal.sub, '(anonymous)')"
    target = "coalesce(action.tool, CASE WHEN action.kind = 'llm' THEN coalesce(action.model, usage.model, '(none)') END)"
    return {
        "rows": q("SELECT count(*) FROM audit")[0][0],
        "pairs": {(u, tg): (a, d) for u, tg, a, d in q(
            f"SELECT {user}, {target}, count(*) FILTER (policy.decision = 'allow'), "
            f"count(*) FILTER (policy.decision = 'deny') FROM audit WHERE {target} IS NOT NULL GROUP BY ALL")},
        "denials_by_rule": dict(q("SELECT policy.rule, count(*) FROM audit WHERE policy.decision = 'deny' GROUP BY ALL")),
        "denials_by_user": dict(q(f"SELECT {user}, count(*) FROM audit WHERE policy.decision = 'deny' GROUP BY ALL")),
        "findings_by_kind": dict(q("SELECT f.kind, sum(f.count) FROM (SELECT unnest(content_safety.redactions) AS f "
                                   "FROM audit) GROUP BY ALL")),
        "handling": dict(q("SELECT content_safety.handling, count(*) FROM audit "
                           "WHERE content_safety.handling IS NOT NULL GROUP BY ALL")),
        "unredacted": q("SELECT count(*) FROM audit WHERE policy.decision = 'allow' AND len(list_filter("
                        "content_safety.redactions, lambda f: f.side = 'request' AND f.handling = 'logged')) > 0")[0][0],
        "sessions": q("SELECT count(DISTINCT session_id) FROM audit")[0][0],
        "cost_by_user": {u: round(c, 8) for u, c in q(
            f"SELECT {user}, sum(coalesce(usage.estimated_cost_usd, 0)) FROM audit WHERE action.kind = 'llm' GROUP BY ALL")},
        "anomalies_by_signal": dict(q("SELECT a.signal, count(*) FROM (SELECT unnest(anomalies) AS a FROM audit) "
                                      "GROUP BY ALL")),
        "rows_flagged": q("SELECT count(*) FROM audit WHERE len(anomalies) > 0")[0][0],
        "rows_observed": q("SELECT count(*) FROM audit WHERE anomalies IS NOT NULL")[0][0],
        "flagged_by_user": dict(q(f"SELECT {user}, count(*) FROM audit WHERE len(anomalies) > 0 GROUP BY ALL")),
    }


def test_report_json_agrees_with_duckdb(trail, tmp_path):
    out = tmp_path / "report.json"
    result = run_report(trail, "json", out)
    assert result.returncode == 0, result.stderr
    r = json.loads(out.read_text())
    e = expected(trail)
    assert r["coverage"]["rows"] == e["rows"]
    assert r["coverage"]["integrity"]["checked"] and r["coverage"]["integrity"]["verifies"], r["coverage"]
    pairs = {(p["user"], p["target"]): (p["allowed"], p["denied"]) for p in r["access"]["users_targets"]}
    assert pairs == e["pairs"]
    assert {c["key"]: c["count"] for c in r["access"]["denials_by_rule"]} == e["denials_by_rule"]
    assert {c["key"]: c["count"] for c in r["access"]["denials_by_user"]} == e["denials_by_user"]
    assert {k["kind"]: k["findings"] for k in r["data_protection"]["by_kind"]} == e["findings_by_kind"]
    assert {c["key"]: c["count"] for c in r["data_protection"]["handling"]} == e["handling"]
    assert r["data_protection"]["unredacted_upstream_total"] == e["unredacted"] >= 1
    assert r["incidents"]["sessions_total"] == e["sessions"]
    assert {c["key"]: c["cost_usd"] for c in r["cost"]["by_user"]} == pytest.approx(e["cost_by_user"])
    # Monitoring: what the sidecars flagged, as the rows' `anomalies` say. Bob's six
    # denied exports within a minute are a denial burst.
    m = r["monitoring"]
    assert {c["key"]: c["count"] for c in m["by_signal"]} == e["anomalies_by_signal"]
    assert e["anomalies_by_signal"].get("denial_burst", 0) >= 1, e["anomalies_by_signal"]
    assert (m["rows_flagged"], m["rows_observed"]) == (e["rows_flagged"], e["rows_observed"])
    assert {u["user"]: u["flagged"] for u in m["users"]} == e["flagged_by_user"]
    assert all(f["request_id"] for f in m["flagged"]) and len(m["flagged"]) == e["rows_flagged"]
    assert any(f["user"] == "alice" and f["target"] == "crm:contacts_export" for f in r["access"]["first_use"])
    # Every session shown can be replayed with its command.
    first = r["incidents"]["sessions"][0]
    replay = subprocess.run(first["command"].replace("custody ", f"{_binary('CUSTODY_BIN', 'custody')} ", 1),
                            shell=True, capture_output=True, text=True, timeout=60)
    assert replay.returncode == 0 and first["session_id"] in replay.stdout, replay.stderr
    assert len(r["access"]["policy_versions"]) == 1


def test_report_csv_carries_the_same_numbers(trail, tmp_path):
    out = tmp_path / "csv"
    result = run_report(trail, "csv", out)
    assert result.returncode == 0, result.stderr
    e = expected(trail)
    summary = dict(csv.reader((out / "summary.csv").open()))
    assert int(summary["coverage.rows"]) == e["rows"]
    assert int(summary["incidents.sessions_total"]) == e["sessions"]
    with (out / "access_denials_by_rule.csv").open() as f:
        assert {row["key"]: int(row["count"]) for row in csv.DictReader(f)} == e["denials_by_rule"]
    with (out / "data_protection_by_kind.csv").open() as f:
        assert {row["kind"]: int(row["findings"]) for row in csv.DictReader(f)} == e["findings_by_kind"]


def test_top_n_keeps_the_totals(trail, tmp_path):
    out = tmp_path / "top.json"
    assert run_report(trail, "json", out, "--top", "2").returncode == 0
    r = json.loads(out.read_text())
    e = expected(trail)
    rows = r["access"]["users_targets"]
    assert len(rows) == 3 and rows[-1]["user"] == "(others)"
    assert sum(p["allowed"] + p["denied"] for p in rows) == sum(a + d for a, d in e["pairs"].values())


class Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        Counter.hits.append(self.requestline)
        self.send_response(404)
        self.end_headers()

    do_CONNECT = do_POST = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


def chromium(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is missing: scripts/test installs Debian's chromium")
    return subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", *args],
        capture_output=True, text=True, timeout=120,
    )


def png_is_blank(data: bytes) -> bool:
    """Whether a PNG's filtered scanlines are (almost) all the same byte."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    return sum(1 for b in raw if b != 0) < len(raw) // 200


def test_html_in_chromium(trail, tmp_path):
    page = tmp_path / "report.html"
    result = run_report(trail, "html", page, "--tz", "Europe/Berlin")
    assert result.returncode == 0, result.stderr
    text = page.read_text()
    # Self-contained: no script, no external reference.
    assert "<script" not in text.lower()
    assert not re.search(r"""(?:src|href)\s*=|url\(|@import""", text, re.I), "an external reference"
    e = expected(trail)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = f"--proxy-server=http://127.0.0.1:{server.server_address[1]}"
    profile = tmp_path / "profile"
    dom = chromium(proxy, f"--user-data-dir={profile}", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr
    html = dom.stdout
    for section in ["coverage", "access", "monitoring", "data_protection", "incidents", "cost"]:
        assert f'<section id="{section}">' in html, section
    assert html.count("<svg") >= 4
    figure = lambda name: re.search(rf'data-figure="{name}">([^<]*)<', html).group(1)  # noqa: E731
    assert int(figure("rows")) == e["rows"]
    assert int(figure("sessions_total")) == e["sessions"]
    assert int(figure("unredacted_upstream_total")) == e["unredacted"]
    assert "verified" in figure("integrity")
    rules = dict(re.findall(r'<tr><td data-col="key">([^<]*)</td><td data-col="count" class="n">(\d+)</td></tr>',
                            html.split('data-table="denials_by_rule"', 1)[1].split("</table>", 1)[0]))
    assert {k.replace("&gt;", ">").replace("&#39;", "'"): int(v) for k, v in rules.items()} == e["denials_by_rule"]

    shot = tmp_path / "shot.png"
    result = chromium(proxy, f"--user-data-dir={profile}", "--window-size=1200,1800", f"--screenshot={shot}",
                      page.as_uri())
    assert result.returncode == 0 and shot.exists(), result.stderr
    assert not png_is_blank(shot.read_bytes())
    pdf = tmp_path / "report.pdf"
    result = chromium(proxy, f"--user-data-dir={profile}", f"--print-to-pdf={pdf}", page.as_uri())
    assert result.returncode == 0 and pdf.read_bytes()[:5] == b"%PDF-", result.stderr
    assert pdf.stat().st_size > 10_000
    server.shutdown()
    # Chromium calls home on its own (time, accounts) whatever the page: those
    # hosts are left out; anything else went out for the page.
    own = re.compile(r"^[A-Z]+ (?:https?://)?[a-z0-9.-]*\b(?:google\.com|googleapis\.com|gstatic\.com|gvt1\.com)[:/ ]")
    page_requests = [h for h in Counter.hits if not own.match(h)]
    assert page_requests == [], "the page made network requests"
