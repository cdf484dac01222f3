"""The official MCP SDK (PyPI `mcp`) on both ends: its client talks to a real MCP
server (`mcp_server.py`) through custody's `kind: mcp` route, over TCP and over the
Unix socket, in both protocol eras:

- the SDK's default (`mode="auto"`): `server/discover`, then 2026-07-28 stateless
  POSTs with `mcp-method` / `mcp-name` headers and plain JSON replies;
- `mode="legacy"`: 2025-11-25 with `initialize`, `notifications/initialized`, the
  GET event stream, SSE replies and a DELETE on close.

The client must see exactly what it sees without custody, and DuckDB must find one
audit row per HTTP request, saying what the request did."""

import asyncio
import json
import pathlib
import re
import socket
import sys
import threading

import httpx2
import mcp
import pytest
from mcp.client.streamable_http import streamable_http_client

from conftest import Custody, serve

HERE = pathlib.Path(__file__).resolve().parent

SEARCH_ARGS = {"query": "a", "limit": 2}
NOTE_ARGS = {"contact_id": "c-2", "text": "Called about the renewal; wants a quote by Friday."}
DELETE_ARGS = {"contact_id": "c-9"}
RESOURCE_URI = "crm://pipeline/summary"
MISSING_URI = "crm://nope"
PROMPT_ARGS = {"contact_id": "c-1", "tone": "formal"}

SEARCH_TEXT = "c-1 Ada Lovelace; c-2 Alan Turing"
NOTE_TEXT = f"note added to c-2: {len(NOTE_ARGS['text'])} characters"
DELETE_TEXT = "Error executing tool delete_contact: contact c-9 is protected"
MISSING_TEXT = f"Unknown resource: {MISSING_URI}"

MERGE_ARGS = {"source": "c-1", "target": "c-2"}


ROWS_SQL = (
    "SELECT request_id, action.kind, action.route, action.method, action.path, action.operation, "
    "action.tool, action.parameters, action.inspected, outcome.status, outcome.error, "
    "action.housekeeping FROM audit"
)

# MCP protocol set-up and discovery, as the specification names it: rows an analyst
# filters out with `NOT action.housekeeping` to see the work.
HOUSEKEEPING = {"initialize", "server/discover", "notifications/initialized", "tools/list",
                "resources/list", "prompts/list", "ping", "stream", "session.delete"}


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@pytest.fixture(scope="session")
def mcp_upstream():
    """The SDK's MCP server on a free loopback port: `127.0.0.1:PORT`."""
    yield from serve([sys.executable, str(HERE / "mcp_server.py")])


@pytest.fixture
def crm(stub, mcp_upstream):
    """custody with the `crm` MCP route to the SDK server."""
    with Custody(stub, routes=f"  - {{name: crm, prefix: /crm, upstream: 'http://{mcp_upstream}', kind: mcp}}\n") as c:
        yield c


class Exchanges:
    """Every HTTP request the SDK client makes, in order, with custody's key for it
    (`x-custody-request-id`, the row's `request_id`)."""

    def __init__(self):
        self.seen = []

    async def on_response(self, response: httpx2.Response):
        request = response.request
        self.seen.append(
            {
                "request_id": response.headers.get("x-custody-request-id"),
                "http": request.method,
                "status": response.status_code,
                "sse": response.headers.get("content-type", "").startswith("text/event-stream"),
            }
        )


def http_client(exchanges: Exchanges, uds: str | None = None) -> httpx2.AsyncClient:
    # The SDK's own timeouts (create_mcp_http_client): a long read timeout for the
    # GET event stream, so it is never reopened during a test.
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(30.0, read=300.0),
        transport=httpx2.AsyncHTTPTransport(uds=uds) if uds else None,
        event_hooks={"response": [exchanges.on_response]},
    )


def dump(result) -> dict:
    return result.model_dump(mode="json", by_alias=True)


async def scenario(url: str, mode: str, client: httpx2.AsyncClient) -> dict:
    """List, call (ok and failing), read (ok and missing), get a prompt; returns what
    the client got, as plain data."""
    async with client, mcp.Client(streamable_http_client(url, http_client=client), mode=mode) as session:
        out = {"protocol": session.protocol_version}
        out["tools"] = dump(await session.list_tools())
        out["search"] = dump(await session.call_tool("search_contacts", SEARCH_ARGS))
        out["note"] = dump(await session.call_tool("add_note", NOTE_ARGS))
        out["delete"] = dump(await session.call_tool("delete_contact", DELETE_ARGS))
        out["resource"] = dump(await session.read_resource(RESOURCE_URI))
        with pytest.raises(mcp.MCPError) as missing:
            await session.read_resource(MISSING_URI)
        out["missing"] = {"code": missing.value.code, "message": missing.value.message}
        out["prompt"] = dump(await session.get_prompt("follow_up", PROMPT_ARGS))
    return out


def check_results(out: dict, mode: str):
    assert out["protocol"] == ("2025-11-25" if mode == "legacy" else "2026-07-28")
    tools = {t["name"]: t for t in out["tools"]["tools"]}
    assert sorted(tools) == ["add_note", "delete_contact", "merge_contacts", "search_contacts"]
    assert tools["search_contacts"]["inputSchema"]["required"] == ["query", "limit"]
    assert out["search"]["content"][0]["text"] == SEARCH_TEXT and not out["search"]["isError"]
    assert out["note"]["content"][0]["text"] == NOTE_TEXT and not out["note"]["isError"]
    assert out["delete"]["isError"] is True
    assert out["delete"]["content"][0]["text"] == DELETE_TEXT
    assert out["resource"]["contents"][0]["text"] == "Q3 pipeline: 12 open deals, 340k EUR"
    assert out["missing"] == {"code": -32602, "message": MISSING_TEXT}
    assert out["prompt"]["messages"][0]["content"]["text"] == "Write a formal follow-up e-mail to contact c-1."


@pytest.fixture(scope="session")
def direct_results(mcp_upstream):
    """What the client gets straight from the server, without custody, per mode."""
    results = {}
    for mode in ("auto", "legacy"):
        results[mode] = asyncio.run(scenario(f"http://{mcp_upstream}/mcp", mode, http_client(Exchanges())))
        check_results(results[mode], mode)
    return results


def audit_rows(custody: Custody, exchanges: Exchanges) -> list[tuple]:
    """Stops custody; the row of each request the client made, in the client's order:
    (HTTP method, operation, tool, parameters, inspected, status, error), with the
    legacy GET stream (opened concurrently with the next requests) moved last."""
    custody.stop()
    rows = {r[0]: r[1:] for r in custody.query(ROWS_SQL)}
    # Exactly one row per HTTP request, under the key the client was given.
    assert sorted(rows) == sorted(e["request_id"] for e in exchanges.seen), (rows, exchanges.seen)
    out = []
    for e in sorted(exchanges.seen, key=lambda e: e["http"] == "GET"):
        (kind, route, method, path, operation, tool, parameters, inspected, status, error,
         housekeeping) = rows[e["request_id"]]
        assert (kind, route, method, path, status) == ("tool", "crm", e["http"], "/crm/mcp", e["status"])
        assert housekeeping == (operation in HOUSEKEEPING), (operation, housekeeping)
        out.append((method, operation, tool, parameters, inspected, status, error))
    return out


def assert_rows(got: list[tuple], expected: list[tuple]):
    assert len(got) == len(expected), "\n".join(map(repr, got))
    assert got == expected, "\n".join(map(repr, got))


# The handshake rows, and the rows at the end of a session, per mode.
OPENING = {
    "auto": [("POST", "server/discover", None, None, True, 200, None)],
    "legacy": [
        ("POST", "initialize", None, None, True, 200, None),
        ("POST", "notifications/initialized", None, None, True, 202, None),
    ],
}
CLOSING = {
    "auto": [],
    "legacy": [
        ("DELETE", "session.delete", None, None, True, 200, None),
        ("GET", "stream", None, None, True, 200, None),
    ],
}


def scenario_rows(mode: str) -> list[tuple]:
    """The rows of `scenario`, after the handshake."""
    # A JSON-RPC error: 2026-07-28 answers it with HTTP 400, 2025-11-25 in an SSE 200.
    error_status = 400 if mode == "auto" else 200
    return [
        ("POST", "tools/list", None, None, True, 200, None),
        ("POST", "tools/call", "crm:search_contacts", canonical(SEARCH_ARGS), True, 200, None),
        ("POST", "tools/call", "crm:add_note", canonical(NOTE_ARGS), True, 200, None),
        ("POST", "tools/call", "crm:delete_contact", canonical(DELETE_ARGS), True, 200, f"tool error: {DELETE_TEXT}"),
        ("POST", "resources/read", None, canonical({"uri": RESOURCE_URI}), True, 200, None),
        (
            "POST", "resources/read", None, canonical({"uri": MISSING_URI}), True, error_status,
            f"jsonrpc error -32602: {MISSING_TEXT}",
        ),
        ("POST", "prompts/get", None, canonical({"arguments": PROMPT_ARGS, "name": "follow_up"}), True, 200, None),
    ]


@pytest.mark.parametrize("transport", ["tcp", "unix"])
@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_sdk_client_and_server_through_custody(crm, direct_results, mode, transport):
    exchanges = Exchanges()
    if transport == "unix":
        client = http_client(exchanges, uds=crm.socket)
        url = "http://localhost/crm/mcp"
    else:
        client = http_client(exchanges)
        url = f"http://{crm.tcp}/crm/mcp"

    out = asyncio.run(scenario(url, mode, client))
    check_results(out, mode)
    # custody forwards the bytes unchanged: the client sees what it sees without it.
    assert out == direct_results[mode]

    assert_rows(audit_rows(crm, exchanges), OPENING[mode] + scenario_rows(mode) + CLOSING[mode])


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_elicitation_round_trip_through_custody(crm, mode):
    """A tool that asks the user before it acts. 2025-11-25: the server's
    `elicitation/create` request rides the call's SSE reply and the client's answer
    is a POST of a JSON-RPC *response* (operation `response`); 2026-07-28: the call
    returns an `InputRequiredResult` and the client calls again, the answer in
    `params.inputResponses`. Either way the user's answer is not in the parameters."""
    exchanges = Exchanges()
    asked = []
    progress = []

    async def elicitation(context, params):
        asked.append(params.message)
        return mcp.types.ElicitResult(action="accept", content={"confirm": True})

    async def on_progress(done, total, message):
        progress.append((done, total, message))

    async def run():
        client = http_client(exchanges)
        url = f"http://{crm.tcp}/crm/mcp"
        async with client, mcp.Client(
            streamable_http_client(url, http_client=client), mode=mode, elicitation_callback=elicitation
        ) as session:
            await session.list_tools()
            return await session.call_tool("merge_contacts", MERGE_ARGS, progress_callback=on_progress)

    result = asyncio.run(run())
    assert result.content[0].text == "merged c-1 into c-2" and not result.is_error
    assert asked == ["Merge c-1 into c-2?"]
    assert progress == [(1, 1, "merged")]

    merge = ("POST", "tools/call", "crm:merge_contacts", canonical(MERGE_ARGS), True, 200, None)
    if mode == "legacy":
        calls = [merge, ("POST", "response", None, None, True, 202, None)]
    else:
        calls = [merge, merge]
    list_tools = ("POST", "tools/list", None, None, True, 200, None)
    assert_rows(audit_rows(crm, exchanges), OPENING[mode] + [list_tools] + calls + CLOSING[mode])


def test_reply_bytes_unchanged_and_headers_disagreeing_with_body(crm, mcp_upstream):
    """Raw HTTP: the same request straight to the server and through custody gets the
    same bytes back; a header that disagrees with the body is refused by custody as the
    server refuses it (HTTP 400, -32020), and the row names the body's tool."""
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": "search_contacts",
            "arguments": {"limit": 1, "query": "Grace"},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": "search_contacts",
    }
    direct = httpx2.post(f"http://{mcp_upstream}/mcp", json=body, headers=headers, timeout=10)
    via = httpx2.post(f"http://{crm.tcp}/crm/mcp", json=body, headers=headers, timeout=10)
    assert direct.status_code == via.status_code == 200
    assert via.headers["content-type"] == direct.headers["content-type"]
    assert via.content == direct.content
    assert json.loads(via.content)["result"]["content"][0]["text"] == "c-3 Grace Hopper"

    # The server refuses a header that disagrees with the body (-32020, HTTP 400);
    # custody answers the same itself, before anything is forwarded, and records
    # the body's tool and that the headers disagreed.
    lying = httpx2.post(
        f"http://{crm.tcp}/crm/mcp", json=body, headers={**headers, "mcp-name": "add_note"}, timeout=10
    )
    assert lying.status_code == 400
    assert json.loads(lying.content)["error"]["code"] == -32020
    crm.stop()
    rows = {r[0]: r[1:] for r in crm.query(ROWS_SQL)}
    assert len(rows) == 2
    (_, _, _, _, operation, tool, parameters, inspected, status, error, _) = rows[via.headers["x-custody-request-id"]]
    assert (operation, tool, parameters, inspected, status, error) == (
        "tools/call", "crm:search_contacts", '{"limit":1,"query":"Grace"}', True, 200, None,
    )
    (_, _, _, _, operation, tool, _, inspected, status, error, _) = rows[lying.headers["x-custody-request-id"]]
    assert (operation, tool, inspected, status) == ("tools/call", "crm:search_contacts", False, lying.status_code)
    assert error.startswith('refused: the mcp-name header "add_note" does not match'), error


class HeldSseUpstream:
    """A bare HTTP/1.1 upstream that answers one POST with an SSE reply carrying the
    JSON-RPC response, then holds the stream open until its peer goes away. A real
    server's end of stream races with the SDK client's close (the SDK's
    `_handle_sse_response` calls `response.aclose()` as soon as it holds the
    response); holding the stream makes the client's close always come first."""

    def __init__(self, reply: dict):
        self.reply = reply
        self.request = None
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.address = "%s:%d" % self.sock.getsockname()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.sock.accept()
        with conn, self.sock:
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, body = data.split(b"\r\n\r\n", 1)
            length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
            while len(body) < length:
                body += conn.recv(65536)
            self.request = json.loads(body)
            event = b"event: message\r\ndata: " + json.dumps(self.reply).encode() + b"\r\n\r\n"
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                b"transfer-encoding: chunked\r\n\r\n" + b"%x\r\n" % len(event) + event + b"\r\n"
            )
            try:
                while conn.recv(65536):
                    pass
            except OSError:
                pass


def test_mcp_sse_reply_closed_after_the_response_is_no_error(stub):
    """What the SDK does in legacy mode, made deterministic: the client reads the
    `tools/call` response from the SSE reply and closes it before the server ends the
    stream. The call is complete: the row must say what the response said."""
    reply = {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {"content": [{"type": "text", "text": "contact c-9 is protected"}], "isError": True},
    }
    upstream = HeldSseUpstream(reply)
    route = f"  - {{name: crm, prefix: /crm, upstream: 'http://{upstream.address}', kind: mcp}}\n"
    with Custody(stub, routes=route) as custody:
        params = {"name": "delete_contact", "arguments": DELETE_ARGS}
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
        headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}
        with httpx2.Client(timeout=10) as client:
            with client.stream("POST", f"http://{custody.tcp}/crm/mcp", json=body, headers=headers) as response:
                assert response.status_code == 200
                data = next(line for line in response.iter_lines() if line.startswith("data:"))
        assert json.loads(data[5:]) == reply
        upstream.thread.join(timeout=10)
        assert upstream.request == body
        custody.stop()
        [(operation, tool, parameters, status, error)] = custody.query(
            "SELECT action.operation, action.tool, action.parameters, outcome.status, outcome.error FROM audit"
        )
        assert (operation, tool, parameters, status) == (
            "tools/call", "crm:delete_contact", canonical(DELETE_ARGS), 200,
        )
        assert error == "tool error: contact c-9 is protected"


POLICY = """
format: 1
tools:
  "crm:search_contacts": []
rules:
  - name: mcp-housekeeping
    effect: allow
    when:
      action: {kind: tool, operation: [server/discover, initialize, "notifications/*", tools/list, stream, session.delete]}
  - name: no-deletes
    effect: deny
    when:
      action: {tool: "crm:delete_contact"}
"""


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_policy_denials_reach_the_sdk_as_jsonrpc_errors(stub, mcp_upstream, tmp_path, mode):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    route = f"  - {{name: crm, prefix: /crm, upstream: 'http://{mcp_upstream}', kind: mcp}}\n"
    with Custody(stub, routes=route, extra=f"policy: {{file: '{policy}'}}\n") as custody:
        async def session():
            client = http_client(Exchanges())
            url = f"http://{custody.tcp}/crm/mcp"
            async with client, mcp.Client(streamable_http_client(url, http_client=client), mode=mode) as s:
                found = dump(await s.call_tool("search_contacts", SEARCH_ARGS))
                with pytest.raises(mcp.MCPError) as denied:
                    await s.call_tool("delete_contact", DELETE_ARGS)
                with pytest.raises(mcp.MCPError) as unlisted:
                    await s.call_tool("add_note", NOTE_ARGS)
                return found, denied.value, unlisted.value

        found, denied, unlisted = asyncio.run(session())
        assert found["content"][0]["text"] == SEARCH_TEXT
        assert denied.code == -32001 and "no-deletes" in denied.message, denied
        assert unlisted.code == -32001 and "default:deny" in unlisted.message, unlisted
        custody.stop()
        rows = custody.query(
            "SELECT action.tool, policy.decision, policy.rule, policy.version, outcome.status FROM audit "
            "WHERE action.operation = 'tools/call' ORDER BY event_time"
        )
        assert [r[:3] for r in rows] == [
            ("crm:search_contacts", "allow", 'tools["crm:search_contacts"] requires no scope'),
            ("crm:delete_contact", "deny", "no-deletes"),
            ("crm:add_note", "deny", "default:deny"),
        ], rows
        assert all(r[3].startswith("sha256:") and r[4] == 200 for r in rows), rows
