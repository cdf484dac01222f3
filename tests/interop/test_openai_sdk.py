"""The official OpenAI SDK talks to custody over the Unix socket and over TCP,
streaming and not; DuckDB reads the rows custody wrote.

The stub upstream (tests/src/stub/openai.rs) answers chat completions, the Responses
API and embeddings as the API reference documents them; the rows must carry the
operation, the model, the token counts (cached ones too), the estimated cost, the
tool calls the model asked for and the provider's error message."""

import json
import re

import httpx2
import openai
import pytest

from conftest import REPO, Custody, assert_ok, audit_rows, cost

MESSAGES = [{"role": "user", "content": "What is the pipeline status this quarter?"}]
SEARCH_CONTACTS = {
    "type": "function",
    "function": {
        "name": "search_contacts",
        "description": "Search CRM contacts by free text.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["query"],
        },
    },
}
# What the stub's model passes to a tool: each property a plain value of its type.
SEARCH_ARGS = {"limit": 1, "query": "stub query"}


def unix_client(custody) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="sk-test-not-a-real-key",
        base_url="http://localhost/openai/v1",
        http_client=httpx2.Client(transport=httpx2.HTTPTransport(uds=custody.socket)),
        max_retries=0,
    )


def tcp_client(custody) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test-not-a-real-key", base_url=f"http://{custody.tcp}/openai/v1", max_retries=0)


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_chat_completion_json_and_stream(custody, transport):
    client = unix_client(custody) if transport == "unix" else tcp_client(custody)

    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    request_id = raw.headers["x-custody-request-id"]
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from the stub."
    assert completion.usage.prompt_tokens == 12

    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    text = ""
    usage = None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text == "part0 part1 part2 "
    assert usage is not None and usage.completion_tokens == 3

    custody.stop()
    rows = custody.query(
        "SELECT request_id, action.kind, action.route, action.path, usage.model, outcome.status, "
        "outcome.error, outcome.bytes_out, dt, hour FROM audit ORDER BY event_time"
    )
    assert len(rows) == 2, rows
    (rid, kind, route, path, model, status, error, bytes_out, dt, hour) = rows[0]
    assert rid == request_id
    assert (kind, route, path, model, status, error) == (
        "llm", "openai", "/openai/v1/chat/completions", "gpt-4o-mini", 200, None,
    )
    assert bytes_out > 0
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(dt)) and 0 <= int(hour) <= 23
    assert rows[1][4] == "gpt-4o"
    assert rows[1][5] == 200 and rows[1][6] is None

    json_row, stream_row = audit_rows(custody)
    for row, model in [(json_row, "gpt-4o-mini"), (stream_row, "gpt-4o")]:
        assert_ok(row, "chat.completions", model)
        assert (row["input"], row["output"], row["cached"], row["cache_write"]) == (12, 3, None, None)
        assert row["tool_calls"] == []
        assert row["cost"] == pytest.approx(cost(model, 12, 3), rel=1e-9)


def test_cached_prompt_tokens_and_the_reported_model_make_the_cost(custody):
    """The model the provider reports (a dated snapshot) is recorded and priced, and
    cached prompt tokens are priced at the cached rate."""
    client = unix_client(custody)
    headers = {"x-stub-cached": "1024", "x-stub-model": "gpt-4o-2024-08-06"}
    completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=headers)
    assert completion.model == "gpt-4o-2024-08-06"
    assert completion.usage.prompt_tokens == 1036
    assert completion.usage.prompt_tokens_details.cached_tokens == 1024

    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True},
        extra_headers=headers,
    )
    usage = [chunk.usage for chunk in stream if chunk.usage]
    assert [u.prompt_tokens_details.cached_tokens for u in usage] == [1024]

    rows = audit_rows(custody)
    assert len(rows) == 2, rows
    for row in rows:
        assert_ok(row, "chat.completions", "gpt-4o-2024-08-06")
        assert (row["input"], row["output"], row["cached"]) == (1036, 3, 1024)
        # prices.yaml has no entry for the dated name: custody prices it as gpt-4o.
        assert row["cost"] == pytest.approx(cost("gpt-4o", 1036, 3, cached=1024), rel=1e-9)
        assert row["cost"] < cost("gpt-4o", 1036, 3)


FORCED_ROUTE = (
    "  - {{name: openai-usage, prefix: /openai-usage, upstream: '{stub}', kind: openai}}\n"
    "  - {{name: openai-plain, prefix: /openai-plain, upstream: '{stub}', kind: openai, force_stream_usage: false}}\n"
)


def test_forced_stream_usage_hides_the_usage_chunk_but_records_the_tokens(stub):
    """On an OpenAI route custody asks for stream usage the client did not ask for
    (`force_stream_usage`, on by default): the client's stream is what it asked
    for (no usage-only chunk), the row has the tokens. The same request on a route
    that turned it off records no tokens."""
    with Custody(stub, routes=FORCED_ROUTE.format(stub=stub)) as custody:
        chunks = {}
        for prefix in ["openai-usage", "openai-plain"]:
            client = openai.OpenAI(
                api_key="sk-test-not-a-real-key",
                base_url=f"http://localhost/{prefix}/v1",
                http_client=httpx2.Client(transport=httpx2.HTTPTransport(uds=custody.socket)),
                max_retries=0,
            )
            stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            chunks[prefix] = list(stream)
        for prefix, seen in chunks.items():
            assert "".join(c.choices[0].delta.content or "" for c in seen) == "part0 part1 part2 ", prefix
            assert all(c.choices and c.usage is None for c in seen), (prefix, seen)
            assert seen[-1].choices[0].finish_reason == "stop"
        assert len(chunks["openai-usage"]) == len(chunks["openai-plain"])

        forced, plain = audit_rows(custody)
        assert_ok(forced, "chat.completions", "gpt-4o-mini")
        assert (forced["input"], forced["output"]) == (12, 3)
        assert forced["cost"] == pytest.approx(cost("gpt-4o-mini", 12, 3), rel=1e-9)
        assert_ok(plain, "chat.completions", "gpt-4o-mini")
        assert (plain["input"], plain["output"], plain["cost"]) == (None, None, None)


def test_forced_stream_usage_leaves_responses_api_requests_alone(stub):
    """The Responses API always reports usage in `response.completed`: a
    `force_stream_usage` route must send its requests unchanged."""
    with Custody(stub, routes=FORCED_ROUTE.format(stub=stub)) as custody:
        client = openai.OpenAI(
            api_key="sk-test-not-a-real-key",
            base_url="http://localhost/openai-usage/v1",
            http_client=httpx2.Client(transport=httpx2.HTTPTransport(uds=custody.socket)),
            max_retries=0,
        )
        with client.responses.stream(model="gpt-5-mini", input="What is the pipeline status?") as stream:
            final = stream.get_final_response()
        assert final.output_text == "Hello from the stub."
        [row] = audit_rows(custody)
        assert_ok(row, "responses", "gpt-5-mini")
        assert (row["input"], row["output"]) == (12, 4)


def test_chat_tool_calls_json_and_streamed(custody):
    """The tool calls the model asked for land in `action.model_tool_calls`, whether
    the answer was one JSON body or deltas spread over several chunks; the follow-up
    carrying the tool's result gets a text answer and an empty list."""
    client = unix_client(custody)

    completion = client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, tools=[SEARCH_CONTACTS])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert (call.id, call.function.name) == ("call_stub_1", "search_contacts")
    assert json.loads(call.function.arguments) == SEARCH_ARGS

    # The SDK's stream helper accumulates the deltas into the final message.
    with client.chat.completions.stream(
        model="gpt-4.1-mini", messages=MESSAGES, tools=[SEARCH_CONTACTS], stream_options={"include_usage": True}
    ) as stream:
        pieces = [e.arguments_delta for e in stream if e.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()
    assert len([p for p in pieces if p]) == 3, pieces
    [streamed] = final.choices[0].message.tool_calls
    assert (streamed.id, streamed.function.name) == ("call_stub_1", "search_contacts")
    assert json.loads(streamed.function.arguments) == SEARCH_ARGS
    assert final.choices[0].finish_reason == "tool_calls"

    follow_up = MESSAGES + [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '[{"name": "Ada"}]'},
    ]
    answer = client.chat.completions.create(model="gpt-4.1-mini", messages=follow_up, tools=[SEARCH_CONTACTS])
    assert answer.choices[0].message.content == "Hello from the stub."

    rows = audit_rows(custody)
    assert len(rows) == 3, rows
    for row in rows:
        assert_ok(row, "chat.completions", "gpt-4.1-mini")
        assert (row["input"], row["output"]) == (12, 3)
        assert row["cost"] == pytest.approx(cost("gpt-4.1-mini", 12, 3), rel=1e-9)
    assert [r["tool_calls"] for r in rows] == [
        [("call_stub_1", "search_contacts")],
        [("call_stub_1", "search_contacts")],
        [],
    ]


def test_responses_api_json_and_streamed(custody):
    client = unix_client(custody)

    response = client.responses.create(model="gpt-5-mini", input="What is the pipeline status?")
    assert response.output_text == "Hello from the stub."
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 4)

    # The SDK's stream helper checks the event sequence as it accumulates it.
    with client.responses.stream(
        model="gpt-5-mini", input="What is the pipeline status?", extra_headers={"x-stub-cached": "1024"}
    ) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == final.output_text == "Hello from the stub."
    assert final.usage.input_tokens_details.cached_tokens == 1024

    tools = [{"type": "function", **SEARCH_CONTACTS["function"]}]
    called = client.responses.create(model="gpt-5-mini", input="Find Ada.", tools=tools)
    [call] = called.output
    assert (call.type, call.call_id, call.name) == ("function_call", "call_stub_1", "search_contacts")
    assert json.loads(call.arguments) == SEARCH_ARGS

    events = list(client.responses.create(model="gpt-5-mini", input="Find Ada.", tools=tools, stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert events[-1].response.output[0].call_id == "call_stub_1"

    rows = audit_rows(custody)
    assert len(rows) == 4, rows
    for row in rows:
        assert_ok(row, "responses", "gpt-5-mini")
    assert [(r["input"], r["output"], r["cached"]) for r in rows] == [
        (12, 4, 0), (1036, 4, 1024), (12, 3, 0), (12, 3, 0),
    ]
    call = ("call_stub_1", "search_contacts")
    assert [r["tool_calls"] for r in rows] == [[], [], [call], [call]]
    for row in rows:
        expected = cost("gpt-5-mini", row["input"], row["output"], cached=row["cached"])
        assert row["cost"] == pytest.approx(expected, rel=1e-9)
    assert rows[1]["cost"] == pytest.approx(
        (12 * 0.25 + 1024 * 0.025 + 4 * 2.00) / 1e6, rel=1e-9
    ), "gpt-5-mini prices in prices.yaml changed?"


def test_embeddings(custody):
    client = unix_client(custody)
    # The SDK asks for base64 and decodes it to floats.
    result = client.embeddings.create(model="text-embedding-3-small", input=["pipeline status", "open deals this quarter"])
    assert [len(d.embedding) for d in result.data] == [8, 8]
    assert all(isinstance(x, float) for x in result.data[0].embedding)
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (6, 6)
    floats = client.embeddings.create(
        model="text-embedding-3-small", input="pipeline status", dimensions=4, encoding_format="float"
    )
    assert floats.data[0].embedding == result.data[0].embedding[:4]

    rows = audit_rows(custody)
    assert len(rows) == 2, rows
    for row, tokens in zip(rows, [6, 2]):
        assert_ok(row, "embeddings", "text-embedding-3-small")
        assert (row["input"], row["output"], row["cached"]) == (tokens, None, None)
        assert row["cost"] == pytest.approx(cost("text-embedding-3-small", tokens), rel=1e-9)
        assert row["tool_calls"] == []


@pytest.mark.parametrize("stream", [False, True])
def test_provider_error_message_lands_in_the_row(custody, stream):
    """A provider error (429, OpenAI's JSON error body, also for a streamed request)
    reaches the SDK as its typed exception and the row as `outcome.error`."""
    client = unix_client(custody)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=stream, extra_headers={"x-stub-error": "429"}
        )
    message = info.value.body["message"]
    assert message.startswith("Rate limit reached for gpt-4o-mini")
    [row] = audit_rows(custody)
    assert (row["operation"], row["model"], row["status"]) == ("chat.completions", "gpt-4o-mini", 429)
    assert row["error"] == f"requests: {message}"
    assert (row["input"], row["output"], row["cost"], row["tool_calls"]) == (None, None, None, None)


def test_custody_errors_reach_the_sdk_as_api_errors(custody):
    client = openai.OpenAI(
        api_key="sk-test",
        base_url="http://localhost/not-a-route/v1",
        http_client=httpx2.Client(transport=httpx2.HTTPTransport(uds=custody.socket)),
        max_retries=0,
    )
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.body["type"] == "route_not_found"
    custody.stop()
    [(status, error, route)] = custody.query("SELECT outcome.status, outcome.error, action.route FROM audit")
    assert status == 404 and "no route" in error and route is None


def test_no_api_key_or_prompt_text_in_the_audit_files(custody):
    client = unix_client(custody)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    custody.stop()
    for path in custody.audit_dir.rglob("*.parquet"):
        data = path.read_bytes()
        assert b"sk-test-not-a-real-key" not in data
    [(params,)] = custody.query("SELECT action.parameters FROM audit")
    assert params is None


def test_readme_duckdb_query_runs(custody):
    """The query the README shows analysts works on what custody writes."""
    client = unix_client(custody)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    custody.stop()
    readme = (REPO / "README.md").read_text()
    sql = re.search(r"```sql\n(.*?)```", readme, re.S).group(1)
    sql = sql.replace("custody-audit/", f"{custody.audit_dir}/")
    import duckdb

    rows = duckdb.sql(sql).fetchall()
    assert len(rows) == 1, rows
    assert "gpt-4o-mini" in [str(v) for v in rows[0]]


def test_pii_in_a_prompt_is_redacted_before_the_model_sees_it(stub):
    """safety: EMAIL redacted, CARD logged: the stub (echoing the prompt it received)
    answers with the redacted text; the row names kinds and paths, never values."""
    with Custody(stub, extra="safety: {detectors: {EMAIL: redact, CARD: log}}\n") as custody:
        client = unix_client(custody)
        prompt = "Mail ada.lovelace@example.org about card 4111 1111 1111 1111."
        completion = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": prompt}],
            extra_headers={"x-stub-echo": "1"},
        )
        answer = completion.choices[0].message.content
        assert answer == "Mail [REDACTED:EMAIL] about card 4111 1111 1111 1111.", answer
        custody.stop()
        [(pii, redactions)] = custody.query("SELECT content_safety.pii_detected, content_safety.redactions FROM audit")
        assert pii is True
        found = {(r["kind"], r["path"], r["action"]) for r in redactions}
        assert ("EMAIL", "$.messages[0].content", "redact") in found, found
        assert ("CARD", "$.messages[0].content", "log") in found, found
        # The answer is a JSON document: the card is placed at the message it is in.
        assert ("CARD", "response.choices[0].message.content", "log") in found, found
