"""docs/trail.md: every SQL example runs in DuckDB on a session custody really wrote
(the official OpenAI SDK asks for a tool, the agent carries it out over MCP, the
result goes back, an unasked REST tool call, a tool call never carried out), and it
tells the same story as `custody trail`."""

import json
import re
import subprocess
import urllib.request

import duckdb
import httpx2
import openai

from conftest import REPO, Custody, _binary

SESSION = "hdr:anon:conv-42"
TOOLS = [{"type": "function", "function": {"name": "search_contacts", "parameters": {
    "type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}}}}]


def post(custody: Custody, path: str, body: dict, request_id: str) -> int:
    request = urllib.request.Request(
        f"http://{custody.tcp}{path}",
        data=json.dumps(body).encode(),
        headers={
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "x-custody-session": "conv-42",
            "x-request-id": request_id,
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def run_session(custody: Custody):
    """Five steps of session `conv-42`: turn-1 asks for search_contacts, tool-1
    carries it out (MCP), turn-2 returns its result, tool-2 is a REST tool call no
    model asked for, turn-3 asks for a call that is never made."""
    client = openai.OpenAI(
        api_key="sk-test",
        base_url="http://localhost/openai/v1",
        http_client=httpx2.Client(transport=httpx2.HTTPTransport(uds=custody.socket)),
        max_retries=0,
        default_headers={"x-custody-session": "conv-42"},
    )
    messages = [{"role": "user", "content": "find ada@example.com"}]
    asked = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=TOOLS, extra_headers={"x-request-id": "turn-1"}
    )
    call = asked.choices[0].message.tool_calls[0]
    assert call.id == "call_stub_1", call
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": call.function.name, "arguments": json.loads(call.function.arguments)}}
    assert post(custody, "/mcp/mcp", rpc, "tool-1") == 200
    messages += [
        {"role": "assistant", "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "Ada Lovelace"},
    ]
    client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=TOOLS, extra_headers={"x-request-id": "turn-2"}
    )
    assert post(custody, "/billing/invoices/search", {"customer": "Ada Lovelace"}, "tool-2") == 200
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "and her invoices?"}],
        tools=TOOLS,
        extra_headers={"x-request-id": "turn-3"},
    )


def test_trail_examples_run_and_agree_with_custody_trail(stub):
    with Custody(
        stub,
        routes=(
            f"  - {{name: crm, prefix: /mcp, upstream: '{stub}/echo', kind: mcp}}\n"
            f"  - name: billing\n    prefix: /billing\n    upstream: '{stub}/echo'\n    kind: http\n"
            "    tools: [{method: POST, path: /invoices/search, tool: 'billing:invoices:search'}]\n"
        ),
    ) as custody:
        run_session(custody)
        custody.stop()

    doc = (REPO / "docs" / "trail.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", doc, re.S)
    assert len(blocks) >= 2, "the examples were not found"
    results = {}
    for block in blocks:
        for statement in filter(str.strip, block.split(";")):
            sql = statement.replace("custody-audit/", f"{custody.audit_dir}/")
            relation = duckdb.sql(sql)
            columns = relation.columns
            rows = [dict(zip(columns, row)) for row in relation.fetchall()]
            results[frozenset(columns)] = rows

    def result_with(column: str):
        found = [rows for columns, rows in results.items() if column in columns]
        assert len(found) == 1, f"one example with a {column} column: {list(results)}"
        return found[0]

    # The timeline: steps in order, links resolved by the self-join. The clients'
    # x-request-id is client_request_id; request_id is custody's own key.
    timeline = result_with("asked_at_step")
    assert [r["client_request_id"] for r in timeline] == ["turn-1", "tool-1", "turn-2", "tool-2", "turn-3"], timeline
    assert [r["step"] for r in timeline] == [1, 2, 3, 4, 5]
    keys = {r["client_request_id"]: r["request_id"] for r in timeline}
    assert len(set(keys.values())) == 5 and not set(keys.values()) & set(keys), keys
    by_id = {r["client_request_id"]: r for r in timeline}
    assert by_id["turn-1"]["asked_for"] == ["search_contacts (call_stub_1)"]
    assert by_id["turn-1"]["findings"] == ["EMAIL at $.messages[0].content (log)"]
    assert by_id["turn-1"]["usd"] > 0 and by_id["turn-1"]["model"] == "gpt-4o-mini"
    assert (by_id["tool-1"]["carries_out"], by_id["tool-1"]["asked_at_step"]) == ("call_stub_1", 1)
    assert by_id["turn-2"]["returns_results_of"] == "call_stub_1 (step 1)"
    assert by_id["tool-2"]["carries_out"] is None

    # Tool calls no model asked for; calls asked for and never made.
    unasked = result_with("parameters")
    assert [(r["client_request_id"], r["request_id"]) for r in unasked] == [("tool-2", keys["tool-2"])], unasked
    never = result_with("result_returned")
    assert [(r["client_request_id"], r["request_id"], r["tool_call_id"], r["result_returned"]) for r in never] == [
        ("turn-3", keys["turn-3"], "call_stub_1", False)
    ], never

    sessions = {r["session_id"]: r for r in result_with("first_call")}
    assert sessions[SESSION]["calls"] == 5 and sessions[SESSION]["any_pii"], sessions

    # `custody trail` tells the same story.
    trail = [str(_binary("CUSTODY_BIN", "custody")), "trail", "--session", SESSION, "--sink", str(custody.audit_dir)]
    out = subprocess.run(trail + ["--format", "json"], capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["request_id"] for r in rows] == [r["request_id"] for r in timeline]
    assert [r["client_request_id"] for r in rows] == [r["client_request_id"] for r in timeline]
    assert [r["session_step"] for r in rows] == [r["step"] for r in timeline]
    text = subprocess.run(trail, capture_output=True, text=True, check=True).stdout
    turn1 = keys["turn-1"]
    assert f"request {turn1} (client id turn-1)," in text, text
    assert f"carries out call_stub_1 asked at step 1 (req {turn1})" in text, text
    assert f"returns results of call_stub_1 asked at step 1 (req {turn1}), carried out at step 2" in text, text
    assert "asked for: search_contacts (call_stub_1, not carried out in this session)" in text, text
