"""docs/sdk.md as written: every Python and TypeScript block tagged
`sdk-recipe=<way>` runs (Python in its own interpreter, TypeScript as an ES module
under Node.js with tests/interop/sdk-ts's SDKs), against a custody configured as that way's YAML block says (the
upstreams are the stub provider and the MCP server, the key files the test's own),
with the user's token from a real OpenID provider. Each call's row names that user.
Then the wrong ways the page lists: the refusal names where custody looked and what
it found instead, never the token."""

import json
import os
import pathlib
import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from conftest import Custody, client_credentials_token, serve

HERE = pathlib.Path(__file__).resolve().parent
DOC = HERE.parents[1] / "docs" / "sdk.md"
BLOCK = re.compile(r"^```(python|typescript) sdk-recipe=(\w+)\n(.*?)^```$", re.S | re.M)
TS = HERE / "sdk-ts"


def recipes(way: str) -> list[tuple[str, str]]:
    """(language, code) of each block of `way`, Python and TypeScript both present."""
    found = [(lang, code) for lang, w, code in BLOCK.findall(DOC.read_text()) if w == way]
    assert {lang for lang, _ in found} == {"python", "typescript"}, f"sdk-recipe={way} blocks in {DOC}: {found}"
    return found


@pytest.fixture(scope="module")
def mcp_upstream():
    yield from serve([sys.executable, str(HERE / "mcp_server.py")])


def start(stub, oidc, mcp_upstream, tmp_path, way: str) -> Custody:
    tmp_path.mkdir(parents=True, exist_ok=True)
    key = tmp_path / "provider-key"
    key.write_text("sk-held-by-custody\n")
    token_from = ", token_from: authorization" if way == "authorization" else ""
    options = {
        "openai": f"credentials: {{header: authorization, prefix: 'Bearer ', value_file: '{key}'}}{token_from}",
        "anthropic": f"credentials: {{header: x-api-key, value_file: '{key}'}}{token_from}",
    }
    crm = f"  - {{name: crm, prefix: /crm, upstream: 'http://{mcp_upstream}', kind: mcp}}\n"
    extra = f"identity:\n  issuers:\n    - issuer: '{oidc}'\n      audiences: [custody]\n"
    return Custody(stub, routes=crm, extra=extra, route_options=options)


def run(lang: str, code: str, custody: Custody, token: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUSTODY_SOCKET": custody.socket, "CUSTODY_URL": f"http://{custody.tcp}",
           "USER_TOKEN": token}
    if lang == "python":
        command = [sys.executable, "-c", code]
    else:
        if not (TS / "node_modules" / "openai").exists():
            pytest.exit(f"run `npm ci --prefix {TS}` first (scripts/test does)", 2)
        # An ES module beside the SDKs it imports (Node resolves from the file).
        module = TS / f".recipe-{os.getpid()}.mjs"
        module.write_text(code)
        command = ["node", str(module)]
    try:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    finally:
        if lang != "python":
            module.unlink()


@pytest.mark.parametrize("way", ["header", "authorization"])
def test_each_recipe_runs_as_written_and_names_the_user(stub, oidc, mcp_upstream, tmp_path, way):
    with start(stub, oidc, mcp_upstream, tmp_path / way, way) as custody:
        token = client_credentials_token(oidc)
        blocks = recipes(way)
        for lang, code in blocks:
            done = run(lang, code, custody, token)
            assert done.returncode == 0, f"{code}\n---\n{done.stderr}\n{custody.read_log()}"
            assert done.stdout.strip(), code
        custody.stop()
        rows = custody.query(
            "SELECT action.route, principal.sub, policy.decision, outcome.status FROM audit ORDER BY event_time"
        )
        routes = [r[0] for r in rows]
        # Each route once per language (MCP: several requests a session).
        for route in ("openai", "anthropic") + (("crm",) if way == "header" else ()):
            assert routes.count(route) >= 2, rows
        assert all(sub == "agent-service" and decision == "allow" and status < 400
                   for _, sub, decision, status in rows), rows
        for path in custody.audit_dir.rglob("*.parquet"):
            assert token.encode() not in path.read_bytes()


def refusal(custody: Custody, path: str, headers: dict) -> dict:
    request = urllib.request.Request(
        f"http://{custody.tcp}{path}",
        data=json.dumps({"model": "gpt-4o-mini", "max_tokens": 8,
                         "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"content-type": "application/json", **headers},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    return json.load(refused.value)["error"]


def test_a_token_in_the_wrong_place_is_named_in_the_refusal(stub, oidc, mcp_upstream, tmp_path):
    token = client_credentials_token(oidc)
    openai = "/openai/v1/chat/completions"
    anthropic = "/anthropic/v1/messages"
    cases = {
        "header": [
            (openai, {"authorization": f"Bearer {token}"}, "an Authorization bearer token shaped like a JWT is present"),
            (anthropic, {"x-api-key": token}, "an x-api-key header shaped like a JWT is present"),
            (openai, {"authorization": "Bearer sk-proj-abc123"}, "a provider credential (Authorization or x-api-key) that is not a JWT"),
            (openai, {}, "(looked in the x-custody-user-token header)"),
        ],
        "authorization": [
            (openai, {"x-custody-user-token": token}, "the x-custody-user-token header is set, but this route reads"),
            (anthropic, {"x-api-key": token}, "pass the user's token as auth_token"),
        ],
        "authorization-malformed": [
            (openai, {"authorization": "Bearer sk-proj-abc123"}, "not a bearer JWT"),
            (anthropic, {"authorization": "sk-ant-abc123"}, "not a bearer JWT"),
        ],
    }
    for case, calls in cases.items():
        way = case.split("-")[0]
        reason = "malformed" if case.endswith("malformed") else "missing"
        with start(stub, oidc, mcp_upstream, tmp_path / case, way) as custody:
            for path, headers, expected in calls:
                error = refusal(custody, path, headers)
                assert error["type"] == "unauthenticated", error
                assert error["message"].startswith(f"identity: {reason}: "), error
                assert "(looked in " in error["message"], error
                assert expected in error["message"], (way, headers.keys(), error)
                assert token not in error["message"] and "sk-proj" not in error["message"]
            custody.stop()
            rows = custody.query("SELECT policy.rule, outcome.error FROM audit")
            assert len(rows) == len(calls)
            assert all(rule == f"identity:{reason}" and "looked in" in err for rule, err in rows), rows
            assert not any(token in err for _, err in rows)
