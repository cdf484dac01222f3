"""docs/sdk.md as written: every Python block tagged `sdk-recipe=<way>` runs, in its
own interpreter, against a custody configured as that way's YAML block says (the
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
BLOCK = re.compile(r"^```python sdk-recipe=(\w+)\n(.*?)^```$", re.S | re.M)


def recipes(way: str) -> list[str]:
    found = [code for w, code in BLOCK.findall(DOC.read_text()) if w == way]
    assert found, f"no sdk-recipe={way} blocks in {DOC}"
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


def run(code: str, socket: str, token: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUSTODY_SOCKET": socket, "USER_TOKEN": token}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("way", ["header", "authorization"])
def test_each_recipe_runs_as_written_and_names_the_user(stub, oidc, mcp_upstream, tmp_path, way):
    with start(stub, oidc, mcp_upstream, tmp_path / way, way) as custody:
        token = client_credentials_token(oidc)
        blocks = recipes(way)
        for code in blocks:
            done = run(code, custody.socket, token)
            assert done.returncode == 0, f"{code}\n---\n{done.stderr}\n{custody.read_log()}"
            assert done.stdout.strip(), code
        custody.stop()
        rows = custody.query(
            "SELECT action.route, principal.sub, policy.decision, outcome.status FROM audit ORDER BY event_time"
        )
        routes = {r[0] for r in rows}
        assert routes >= ({"openai", "anthropic", "crm"} if way == "header" else {"openai", "anthropic"}), rows
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
