"""The policy example of `docs/policy.md`, loaded from the docs' own block as written,
in front of a real MCP server with the official SDK client in both protocol eras:
a signed-in caller's session — opening (`server/discover`, or the legacy handshake),
the GET event stream, `tools/list`, a tool call with an elicitation round trip, the
closing DELETE — passes without a single refusal, and every row names the rule that
allowed it: `mcp-session` (the `@mcp-housekeeping` group and `tools/list`),
`mcp-replies` (the client's answer to the elicitation) and the tool's own grant."""

import asyncio
import pathlib
import re
import sys

import httpx2
import mcp
import pytest
from mcp.client.streamable_http import streamable_http_client

from conftest import Custody, client_credentials_token, serve

HERE = pathlib.Path(__file__).resolve().parent
POLICY_DOC = HERE.parents[1] / "docs" / "policy.md"
TOOL_RULE = 'tools["search:web"] requires no scope'


def docs_policy() -> str:
    """The first `yaml policy` block of the doc's "A complete example" section."""
    section = POLICY_DOC.read_text().split("## A complete example", 1)[1]
    return re.search(r"```yaml policy\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def web_upstream():
    yield from serve([sys.executable, str(HERE / "mcp_web_server.py")])


EXPECTED = {
    "auto": [
        ("server/discover", "mcp-session"),
        ("tools/list", "mcp-session"),
        # 2026-07-28: the call returns InputRequired; the client calls again with the answer.
        ("tools/call", TOOL_RULE),
        ("tools/call", TOOL_RULE),
    ],
    "legacy": [
        ("initialize", "mcp-session"),
        ("notifications/initialized", "mcp-session"),
        ("stream", "mcp-session"),
        ("tools/list", "mcp-session"),
        ("tools/call", TOOL_RULE),
        ("response", "mcp-replies"),
        ("session.delete", "mcp-session"),
    ],
}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_the_docs_policy_lets_a_signed_in_mcp_session_through(stub, oidc, web_upstream, tmp_path, mode):
    policy = tmp_path / "policy.yaml"
    policy.write_text(docs_policy())
    extra = (
        f"identity:\n  issuers:\n    - issuer: '{oidc}'\n      audiences: [custody]\n"
        f"policy: {{file: '{policy}'}}\n"
    )
    route = f"  - {{name: search, prefix: /search, upstream: 'http://{web_upstream}', kind: mcp}}\n"
    with Custody(stub, routes=route, extra=extra) as custody:
        token = client_credentials_token(oidc)
        statuses = []
        asked = []

        async def on_response(response: httpx2.Response):
            statuses.append((response.request.method, response.status_code))

        async def elicitation(context, params):
            asked.append(params.message)
            return mcp.types.ElicitResult(action="accept", content={"confirm": True})

        async def run():
            client = httpx2.AsyncClient(
                headers={"x-custody-user-token": token},
                timeout=httpx2.Timeout(30.0, read=300.0),
                event_hooks={"response": [on_response]},
            )
            url = f"http://{custody.tcp}/search/mcp"
            async with client, mcp.Client(
                streamable_http_client(url, http_client=client), mode=mode, elicitation_callback=elicitation
            ) as session:
                protocol = session.protocol_version
                await session.list_tools()
                return protocol, await session.call_tool("web", {"query": "weather"})

        protocol, result = asyncio.run(run())
        assert protocol == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        assert result.content[0].text == "3 results for weather" and not result.is_error
        assert asked == ["Search the web for 'weather'?"]
        assert all(status < 400 for _, status in statuses), statuses

        custody.stop()
        rows = custody.query(
            "SELECT action.operation, policy.decision, policy.rule, principal.sub FROM audit ORDER BY event_time"
        )
        assert all(decision == "allow" and sub == "agent-service" for _, decision, _, sub in rows), rows
        # The GET stream's row is written when it closes: compare as multisets.
        got = sorted((operation, rule) for operation, _, rule, _ in rows)
        assert got == sorted(EXPECTED[mode]), rows
