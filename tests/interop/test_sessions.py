"""Session correlation end to end (issue 7), with the official SDKs: a scripted agent
through custody. The `openai` SDK asks the stub model, which answers with a tool call
(`call_stub_1`, the first tool offered, arguments from its schema); the `mcp` client
executes that tool on the SDK's MCP server (`mcp_server.py`); the tool's result goes
back to the model in a second completion.

DuckDB must then find one session: every row of the conversation (the MCP protocol
calls too) under one `session_id` with its steps in call order and one trace, the MCP
`tools/call` row linked to the model turn that asked for it, and the second turn
linked to the call whose result it returns. Two users sending the same session header
(or the same `traceparent`) at the same time get a session each, and neither's tool
call is ever linked to the other's model turn."""

import asyncio
import json
import pathlib
import re
import sys
import threading
import time

import httpx2
import jwt
import mcp
import openai
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp.client.streamable_http import streamable_http_client

from conftest import Custody, serve

HERE = pathlib.Path(__file__).resolve().parent

TOOL = "search_contacts"
# What the stub's model passes to `search_contacts(query: str, limit: int)`.
STUB_ARGS = {"query": "stub query", "limit": 1}
TOOL_TEXT = "no contacts"
QUESTION = [{"role": "user", "content": "Find Ada in the CRM."}]

ISSUER = "https://idp.sessions.test/"

ROWS_SQL = (
    "SELECT request_id, session_id, session_step, session_source, trace_id, span_id, parent_span_id, "
    "links, action.kind, action.operation, action.tool, action.model_tool_calls, principal.sub, "
    "outcome.status, outcome.error FROM audit ORDER BY session_step"
)
COLUMNS = [
    "request_id", "session_id", "session_step", "session_source", "trace_id", "span_id", "parent_span_id",
    "links", "kind", "operation", "tool", "model_tool_calls", "sub", "status", "error",
]
HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")


@pytest.fixture(scope="session")
def mcp_upstream():
    """The SDK's MCP server on a free loopback port: `127.0.0.1:PORT`."""
    yield from serve([sys.executable, str(HERE / "mcp_server.py")])


def crm_route(upstream: str, identity: str = "") -> str:
    extra = f", identity: {identity}" if identity else ""
    return f"  - {{name: crm, prefix: /crm, upstream: 'http://{upstream}', kind: mcp{extra}}}\n"


class Issuer:
    """An RS256 signing key whose JWKS custody reads from a file; mints user tokens."""

    def __init__(self, directory: pathlib.Path):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid="sessions-test", alg="RS256", use="sig")
        self.jwks = directory / "jwks.json"
        self.jwks.write_text(json.dumps({"keys": [jwk]}))

    def config(self) -> str:
        return (
            "identity:\n  issuers:\n"
            f"    - {{issuer: '{ISSUER}', audiences: [custody], jwks_file: '{self.jwks}', algorithms: [RS256]}}\n"
        )

    def token(self, sub: str) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": "custody", "sub": sub, "iat": now, "exp": now + 600}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "sessions-test"})


class Transcript:
    """What one agent's HTTP clients did, in order: (client, custody's key for the
    request, `x-custody-request-id`: the row's `request_id`)."""

    def __init__(self):
        self.seen: list[tuple[str, str]] = []

    def hook(self, client: str):
        async def on_response(response: httpx2.Response):
            self.seen.append((client, response.headers.get("x-custody-request-id")))

        return on_response

    def ids(self, client: str) -> list[str]:
        return [rid for c, rid in self.seen if c == client]


def openai_tools(tools) -> list[dict]:
    """The MCP server's tools as OpenAI function tools, `search_contacts` first (the
    stub's model always asks for the first tool)."""
    ordered = sorted(tools, key=lambda t: t.name != TOOL)
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description or "", "parameters": t.input_schema}}
        for t in ordered
    ]


async def first_turn(llm: openai.AsyncOpenAI, tools: list[dict], stream: bool) -> dict:
    """The model's first answer as an assistant message (a dict), the tool call's
    arguments accumulated from the deltas when streamed."""
    if not stream:
        completion = await llm.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, tools=tools)
        choice = completion.choices[0]
        assert choice.finish_reason == "tool_calls", completion
        return choice.message.model_dump(exclude_none=True)
    calls: dict[int, dict] = {}
    finish = None
    chunks = await llm.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, tools=tools, stream=True)
    async for chunk in chunks:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"type": "function", "function": {"name": "", "arguments": ""}})
                if delta.id:
                    call["id"] = delta.id
                if delta.function and delta.function.name:
                    call["function"]["name"] += delta.function.name
                if delta.function and delta.function.arguments:
                    call["function"]["arguments"] += delta.function.arguments
    assert finish == "tool_calls", calls
    return {"role": "assistant", "tool_calls": [calls[i] for i in sorted(calls)]}


async def agent(custody: Custody, headers: dict, transcript: Transcript, *, stream: bool, mode: str = "auto",
                pause=None) -> dict:
    """List the MCP tools, ask the model, run the tool it asks for over MCP, give the
    model the result. `pause()` runs (in a thread) between the steps. Returns what the
    agent saw."""
    pause = pause or (lambda: None)
    mcp_http = httpx2.AsyncClient(
        headers=headers,
        timeout=httpx2.Timeout(30.0, read=300.0),
        event_hooks={"response": [transcript.hook("mcp")]},
    )
    llm_http = httpx2.AsyncClient(
        transport=httpx2.AsyncHTTPTransport(uds=custody.socket),
        event_hooks={"response": [transcript.hook("llm")]},
    )
    llm = openai.AsyncOpenAI(
        api_key="sk-test-not-a-real-key",
        base_url="http://localhost/openai/v1",
        http_client=llm_http,
        default_headers=headers,
        max_retries=0,
    )
    url = f"http://{custody.tcp}/crm/mcp"
    async with llm_http, mcp_http, mcp.Client(streamable_http_client(url, http_client=mcp_http), mode=mode) as session:
        tools = openai_tools((await session.list_tools()).tools)
        assert tools[0]["function"]["name"] == TOOL
        await asyncio.to_thread(pause)

        assistant = await first_turn(llm, tools, stream)
        [call] = assistant["tool_calls"]
        await asyncio.to_thread(pause)

        result = await session.call_tool(call["function"]["name"], json.loads(call["function"]["arguments"]))
        text = result.content[0].text
        await asyncio.to_thread(pause)

        messages = QUESTION + [assistant, {"role": "tool", "tool_call_id": call["id"], "content": text}]
        answer = await llm.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
    return {"call": call, "tool_text": text, "tool_error": result.is_error, "answer": answer.choices[0].message.content}


def check_agent(seen: dict):
    assert seen["call"]["id"] == "call_stub_1", seen
    assert seen["call"]["function"]["name"] == TOOL, seen
    assert json.loads(seen["call"]["function"]["arguments"]) == STUB_ARGS, seen
    assert (seen["tool_text"], seen["tool_error"]) == (TOOL_TEXT, False), seen
    assert seen["answer"] == "Hello from the stub.", seen


def read_rows(custody: Custody) -> list[dict]:
    """Stops custody; every row as a dict (in step order), JSON-ready."""
    custody.stop()
    return [dict(zip(COLUMNS, r)) for r in custody.query(ROWS_SQL)]


def dump(rows) -> str:
    return json.dumps(rows, indent=1, default=str)


def check_conversation(rows: list[dict], transcript: Transcript, *, sequential: bool) -> dict:
    """The checks every conversation passes, whatever carried its session: the rows
    are exactly the agent's requests, under one session and one trace, steps 1..n
    (in the client's order when all requests were sequential), the tool call linked
    to the first model turn and the second turn to the tool call. Returns the rows of
    the three key calls and the session's common values."""
    by_id = {r["request_id"]: r for r in rows}
    requested = [rid for _, rid in transcript.seen]
    assert sorted(by_id) == sorted(requested), dump(rows)
    mine = [by_id[rid] for rid in requested]

    [session] = {r["session_id"] for r in mine}
    assert session is not None, dump(mine)
    [trace] = {r["trace_id"] for r in mine}
    assert trace is not None and HEX32.fullmatch(trace), dump(mine)
    assert all(r["span_id"] and HEX16.fullmatch(r["span_id"]) for r in mine), dump(mine)
    assert len({r["span_id"] for r in mine}) == len(mine), dump(mine)

    steps = [r["session_step"] for r in mine]
    assert sorted(steps) == list(range(1, len(mine) + 1)), dump(mine)
    if sequential:
        assert steps == list(range(1, len(mine) + 1)), dump(mine)

    turn1_id, turn2_id = transcript.ids("llm")
    turn1, turn2 = by_id[turn1_id], by_id[turn2_id]
    [tool] = [r for r in mine if r["operation"] == "tools/call"]
    assert (turn1["kind"], turn1["operation"], turn1["status"]) == ("llm", "chat.completions", 200), dump(mine)
    assert (turn2["kind"], turn2["operation"], turn2["status"]) == ("llm", "chat.completions", 200), dump(mine)
    assert (tool["kind"], tool["tool"], tool["status"], tool["error"]) == ("tool", f"crm:{TOOL}", 200, None), dump(mine)
    assert turn1["session_step"] < tool["session_step"] < turn2["session_step"], dump(mine)

    # The model asked for the tool; the MCP call carried it out; the second turn
    # returned its result.
    assert [c["id"] for c in turn1["model_tool_calls"]] == ["call_stub_1"], dump(mine)
    assert [c["name"] for c in turn1["model_tool_calls"]] == [TOOL], dump(mine)
    assert turn2["model_tool_calls"] == [], dump(mine)
    assert tool["links"]["tool_call_id"] == "call_stub_1", dump(mine)
    assert tool["links"]["model_request_id"] == turn1_id, dump(mine)
    assert turn2["links"]["tool_results"] == [{"tool_call_id": "call_stub_1", "model_request_id": turn1_id}], dump(mine)
    # No other row carries a link.
    for r in mine:
        if r is not tool:
            assert (r["links"]["tool_call_id"], r["links"]["model_request_id"]) == (None, None), dump(mine)
        if r is not turn2:
            assert not r["links"]["tool_results"], dump(mine)
    return {"session": session, "trace": trace, "turn1": turn1, "tool": tool, "turn2": turn2, "rows": mine}


@pytest.mark.parametrize(
    "mode,stream",
    [("auto", False), ("auto", True), ("legacy", True)],
    ids=["mcp-auto-json", "mcp-auto-streamed", "mcp-legacy-streamed"],
)
def test_agent_conversation_is_one_linked_session(stub, mcp_upstream, mode, stream):
    """One anonymous agent, `x-custody-session` on every request: one `hdr:anon:`
    session (in legacy MCP mode the header wins over `mcp-session-id`), one trace
    derived from it (the client sent no `traceparent`), links set."""
    conversation = "conv-7f3a9c"
    with Custody(stub, routes=crm_route(mcp_upstream)) as custody:
        transcript = Transcript()
        seen = asyncio.run(agent(custody, {"x-custody-session": conversation}, transcript, stream=stream, mode=mode))
        check_agent(seen)
        rows = read_rows(custody)

    # Legacy mode opens the GET event stream concurrently with the next requests.
    found = check_conversation(rows, transcript, sequential=mode == "auto")
    assert found["session"] == f"hdr:anon:{conversation}", dump(rows)
    assert {r["session_source"] for r in rows} == {"header"}, dump(rows)
    assert all(r["parent_span_id"] is None for r in rows), dump(rows)
    ops = [r["operation"] for r in found["rows"]]
    if mode == "auto":
        assert ops == ["server/discover", "tools/list", "chat.completions", "tools/call", "chat.completions"], ops
    else:
        assert {"initialize", "notifications/initialized", "tools/list", "stream", "session.delete"} <= set(ops), ops


@pytest.mark.parametrize("signal", ["header", "traceparent"])
def test_concurrent_users_with_identical_signals_get_separate_sessions(stub, mcp_upstream, tmp_path, signal):
    """Alice and Bob run the agent at the same time, in lockstep (each step starts
    once both finished the previous one, so both model turns ask for `call_stub_1`
    with the same arguments before either tool runs), sending the same
    `x-custody-session`, or the same W3C `traceparent`: a session each, steps 1..n
    each, and each user's tool call linked to that user's own model turn."""
    issuer = Issuer(tmp_path)
    client_trace, client_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    if signal == "header":
        shared = {"x-custody-session": "conv-shared"}
    else:
        shared = {"traceparent": f"00-{client_trace}-{client_span}-01"}
    users = ["auth0|alice", "auth0|bob"]
    with Custody(stub, routes=crm_route(mcp_upstream, "required"), extra=issuer.config()) as custody:
        transcripts = {u: Transcript() for u in users}
        results, errors = {}, {}
        barrier = threading.Barrier(len(users), timeout=20)

        def run(user: str):
            headers = {**shared, "x-custody-user-token": issuer.token(user)}
            try:
                results[user] = asyncio.run(
                    agent(custody, headers, transcripts[user], stream=user == users[0], pause=barrier.wait)
                )
            except BaseException as e:  # noqa: BLE001 - reported below
                errors[user] = e
                barrier.abort()

        threads = [threading.Thread(target=run, args=(u,)) for u in users]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors, errors
        for user in users:
            check_agent(results[user])
        rows = read_rows(custody)

    found = {}
    for user in users:
        mine = {rid for _, rid in transcripts[user].seen}
        found[user] = check_conversation([r for r in rows if r["request_id"] in mine], transcripts[user], sequential=True)
        assert {r["sub"] for r in found[user]["rows"]} == {user}, dump(rows)
        assert {r["session_source"] for r in found[user]["rows"]} == {signal}, dump(rows)
    assert len(rows) == sum(len(f["rows"]) for f in found.values()), dump(rows)

    alice, bob = (found[u] for u in users)
    assert alice["session"] != bob["session"], dump(rows)
    prefix = "hdr" if signal == "header" else "trace"
    value = "conv-shared" if signal == "header" else client_trace
    subjects = set()
    for f in (alice, bob):
        kind, subject, tail = f["session"].split(":", 2)
        assert (kind, tail) == (prefix, value), f["session"]
        assert HEX16.fullmatch(subject), f["session"]
        subjects.add(subject)
    assert len(subjects) == 2, subjects
    # The two model turns asked for the same call id with the same arguments: each
    # tool call is linked to its own user's turn.
    assert alice["tool"]["links"]["model_request_id"] != bob["tool"]["links"]["model_request_id"]

    if signal == "header":
        # Each session is its own trace.
        assert alice["trace"] != bob["trace"], dump(rows)
        assert all(r["parent_span_id"] is None for r in rows), dump(rows)
    else:
        # The caller's trace continues: every call a child span of the client's span.
        for f in (alice, bob):
            assert f["trace"] == client_trace, dump(f["rows"])
            assert {r["parent_span_id"] for r in f["rows"]} == {client_span}, dump(f["rows"])
            assert client_span not in {r["span_id"] for r in f["rows"]}, dump(f["rows"])


def test_an_mcp_initialize_without_a_session_signal_opens_its_mcp_session(stub, mcp_upstream):
    """The official MCP client in 2025-11-25 (legacy) mode, no session header and no
    `traceparent`: the server names the session in its answer to `initialize`
    (`mcp-session-id`), and every MCP row, `initialize` first (step 1), is in that
    one `mcp:` session; `initialize` forwarded no `traceparent` (none existed yet),
    so its row has the session's trace and no span. The model turns, which carry
    no MCP session id, are in the user's inactivity session."""
    with Custody(stub, routes=crm_route(mcp_upstream)) as custody:
        seen = asyncio.run(agent(custody, {}, Transcript(), stream=False, mode="legacy"))
        check_agent(seen)
        rows = read_rows(custody)
    mcp_rows = [r for r in rows if r["kind"] == "tool"]
    sessions = {r["session_id"] for r in mcp_rows}
    assert len(sessions) == 1, dump(mcp_rows)
    [session] = sessions
    assert session.startswith("mcp:anon:"), dump(mcp_rows)
    assert {r["session_source"] for r in mcp_rows} == {"mcp"}, dump(mcp_rows)
    # Steps 1..n without a hole, `initialize` first.
    steps = sorted(r["session_step"] for r in mcp_rows)
    assert steps == list(range(1, len(mcp_rows) + 1)), dump(mcp_rows)
    [init] = [r for r in mcp_rows if r["operation"] == "initialize"]
    assert init["session_step"] == 1, dump(mcp_rows)
    assert (init["span_id"], init["parent_span_id"]) == (None, None), dump(init)
    assert len({r["trace_id"] for r in mcp_rows}) == 1, dump(mcp_rows)
    others = [r for r in mcp_rows if r["operation"] != "initialize"]
    assert all(HEX16.fullmatch(r["span_id"] or "") for r in others), dump(others)
    llm = [r for r in rows if r["kind"] == "llm"]
    assert llm and all(r["session_source"] == "inactivity" for r in llm), dump(llm)
    assert all(r["session_id"] != session for r in llm), dump(llm)
