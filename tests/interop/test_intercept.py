"""Forward-proxy mode with the official SDKs, unchanged: default base URLs
(https://api.openai.com, https://api.anthropic.com), only HTTPS_PROXY and
SSL_CERT_FILE=<custody's bundle.pem>. custody intercepts by host and forwards to the
routes' upstream, a local stub served over TLS with a test CA; the rows, read with
DuckDB, match the rows of the same calls in reverse-proxy mode. curl --proxy too."""

import json
import os
import pathlib
import shutil
import subprocess
import tempfile

import anthropic
import httpx2
import openai
import pytest

from conftest import SCHEMA_VERSION, Custody, _binary, serve

MESSAGES = [{"role": "user", "content": "What is the pipeline status this quarter?"}]
# Proxy settings the machine may export; each test sets exactly what it needs.
PROXY_VARS = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
              "NO_PROXY", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"]


@pytest.fixture(scope="module")
def tls_stub():
    """The stub upstream over HTTPS; yields (url, test CA file)."""
    ca = pathlib.Path(tempfile.mkdtemp(prefix="custody-stub-ca-")) / "ca.pem"
    for addr in serve([str(_binary("CUSTODY_STUB", "custody-stub")), "--tls-ca-out", str(ca)]):
        yield "https://localhost:" + addr.rsplit(":", 1)[1], ca


@pytest.fixture
def intercepting(tls_stub):
    url, ca = tls_stub
    export = pathlib.Path(tempfile.mkdtemp(prefix="custody-ca-"))
    extra = f"upstream_tls: {{extra_ca_file: '{ca}'}}\nintercept: {{ca: {{export_dir: '{export}'}}}}\n"
    with Custody(url, extra=extra, hosts=True) as custody:
        custody.export = export
        yield custody


@pytest.fixture
def proxy_env(intercepting, monkeypatch):
    """Only HTTPS_PROXY and SSL_CERT_FILE, as an app in intercept mode gets them."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://{intercepting.tcp}")
    monkeypatch.setenv("SSL_CERT_FILE", str(intercepting.export / "bundle.pem"))
    return intercepting


COLUMNS = ("request_id, client_request_id, intercepted_host, action.kind, action.route, action.method, action.path, "
           "action.upstream, action.operation, action.inspected, usage.model, usage.input_tokens, "
           "usage.output_tokens, usage.cached_input_tokens, usage.cache_creation_input_tokens, "
           "usage.estimated_cost_usd, policy.decision, policy.rule, outcome.status, outcome.error, "
           "schema_version")


def rows_by_id(custody) -> dict:
    """The rows by key (`request_id`, what `x-custody-request-id` answered)."""
    custody.stop()
    names = [c.strip().split(".")[-1] for c in COLUMNS.split(",")]
    return {r[0]: dict(zip(names, r)) for r in custody.query(f"SELECT {COLUMNS} FROM audit")}


def same_call(reverse: dict, intercepted: dict, host: str):
    """The intercepted row is the reverse row plus intercepted_host, with the path the
    client sent (no route prefix)."""
    assert reverse["intercepted_host"] is None
    assert intercepted["intercepted_host"] == host
    assert reverse["path"].endswith(intercepted["path"]) and reverse["path"] != intercepted["path"]
    skip = {"request_id", "client_request_id", "intercepted_host", "path"}
    assert {k: v for k, v in intercepted.items() if k not in skip} == \
        {k: v for k, v in reverse.items() if k not in skip}


def test_openai_sdk_unchanged_json_and_stream(proxy_env):
    custody = proxy_env
    reverse = openai.OpenAI(api_key="sk-test", base_url=f"http://{custody.tcp}/openai/v1", max_retries=0)
    app = openai.OpenAI(api_key="sk-test", max_retries=0)  # default base URL, env only
    assert str(app.base_url).startswith("https://api.openai.com")

    ids = {}
    for mode, client in [("reverse", reverse), ("intercepted", app)]:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
        assert raw.parse().choices[0].message.content == "Hello from the stub."
        ids[mode, "json"] = raw.headers["x-custody-request-id"]
        with client.chat.completions.with_streaming_response.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ) as response:
            ids[mode, "stream"] = response.headers["x-custody-request-id"]
            chunks = list(response.parse())
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].usage.total_tokens > 0

    rows = rows_by_id(custody)
    assert len(rows) == 4, rows
    for kind in ["json", "stream"]:
        r, i = rows[ids["reverse", kind]], rows[ids["intercepted", kind]]
        same_call(r, i, "api.openai.com:443")
        assert i["schema_version"] == SCHEMA_VERSION and i["status"] == 200 and i["error"] is None
        assert i["path"] == "/v1/chat/completions" and i["operation"] == "chat.completions"
        assert i["input_tokens"] > 0 and i["estimated_cost_usd"] > 0


def test_anthropic_sdk_unchanged_json_and_stream(proxy_env):
    custody = proxy_env
    reverse = anthropic.Anthropic(api_key="sk-ant-test", base_url=f"http://{custody.tcp}/anthropic", max_retries=0)
    app = anthropic.Anthropic(api_key="sk-ant-test", max_retries=0)
    assert str(app.base_url).startswith("https://api.anthropic.com")

    ids = {}
    for mode, client in [("reverse", reverse), ("intercepted", app)]:
        raw = client.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=256, messages=MESSAGES)
        assert raw.parse().content[0].text
        ids[mode, "json"] = raw.headers["x-custody-request-id"]
        with client.messages.stream(model="claude-haiku-4-5", max_tokens=256, messages=MESSAGES) as stream:
            text = "".join(stream.text_stream)
            ids[mode, "stream"] = stream.response.headers["x-custody-request-id"]
        assert text

    rows = rows_by_id(custody)
    assert len(rows) == 4, rows
    for kind in ["json", "stream"]:
        r, i = rows[ids["reverse", kind]], rows[ids["intercepted", kind]]
        same_call(r, i, "api.anthropic.com:443")
        assert i["path"] == "/v1/messages" and i["operation"] == "messages" and i["status"] == 200
        assert i["kind"] == "llm" and i["model"].startswith("claude-haiku-4-5")


def test_sdk_that_does_not_trust_the_ca_forwards_nothing(intercepting, monkeypatch):
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://{intercepting.tcp}")
    monkeypatch.setenv("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")  # system roots only
    app = openai.OpenAI(api_key="sk-test", max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        app.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    intercepting.stop()
    rows = intercepting.query("SELECT action.method, action.upstream, outcome.error FROM audit")
    assert rows and all(m == "CONNECT" and up is None and "handshake" in err for m, up, err in rows), rows


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_proxy(intercepting):
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    out = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "--proxy", f"http://{intercepting.tcp}",
         "--cacert", str(intercepting.export / "ca.pem"),
         "-H", "content-type: application/json", "-H", "x-request-id: curl-1",
         "--data", json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES}),
         "https://api.openai.com/v1/chat/completions"],
        env=env, capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert json.loads(out.stdout)["choices"][0]["message"]["content"] == "Hello from the stub."
    rows = rows_by_id(intercepting)
    # The client's x-request-id is its client_request_id; the key is custody's own.
    (curl,) = [r for r in rows.values() if r["client_request_id"] == "curl-1"]
    assert curl["request_id"] != "curl-1"
    assert curl["intercepted_host"] == "api.openai.com:443"
    assert curl["upstream"].startswith("https://localhost:")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("allow", [None, "'*'"])
def test_curl_cannot_tunnel_to_unlisted_or_internal_hosts(tls_stub, allow):
    """An app's HTTPS call to a host no route claims goes through a blind tunnel only
    when intercept.tunnel.allow lists the host (default: nothing), and never to
    custody's own admin port or the metadata address, even with `allow: ['*']`."""
    url, ca = tls_stub
    export = pathlib.Path(tempfile.mkdtemp(prefix="custody-ca-"))
    tunnel = f", tunnel: {{allow: [{allow}]}}" if allow else ""
    extra = (f"upstream_tls: {{extra_ca_file: '{ca}'}}\n"
             f"intercept: {{ca: {{export_dir: '{export}'}}{tunnel}}}\n")
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    with Custody(url, extra=extra, hosts=True) as custody:
        targets = {custody.admin: f"https://{custody.admin}/metrics",
                   "169.254.169.254:443": "https://169.254.169.254/latest/meta-data/"}
        if allow is None:  # refused before any lookup: no network needed
            targets["example.com:443"] = "https://example.com/"
        for target in targets.values():
            out = subprocess.run(["curl", "-sS", "--max-time", "10", "--proxy", f"http://{custody.tcp}", target],
                                 env=env, capture_output=True, text=True, timeout=30)
            assert out.returncode != 0 and "403" in out.stderr, out.stderr
        custody.stop()
        rows = {up: (decision, rule, status) for up, decision, rule, status in custody.query(
            "SELECT action.upstream, policy.decision, policy.rule, outcome.status FROM audit "
            "WHERE action.kind = 'tunnel'")}
    assert set(rows) == set(targets)
    if allow is None:
        assert set(rows.values()) == {("deny", "integrity:tunnel_not_allowed", 403)}
    else:
        assert set(rows.values()) == {("deny", "integrity:tunnel_target", 403)}
