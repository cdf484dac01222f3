"""The official Anthropic SDK talks to custody over the Unix socket and over TCP:
messages, JSON and streamed (with the SDK's stream helper), tool use, prompt-cache
tokens and errors; DuckDB reads the rows custody wrote.

The stub upstream (tests/src/stub/anthropic.rs) always reports prompt caching:
25 uncached input tokens, 2048 read from the cache and 256 written to it. Anthropic
counts those apart; custody's `usage.input_tokens` is all of them."""

import anthropic
import httpx2
import pytest

from conftest import assert_ok, audit_rows, cost

MESSAGES = [{"role": "user", "content": "Which deals in the pipeline close this quarter?"}]
UNCACHED, CACHE_READ, CACHE_WRITE = 25, 2048, 256
ALL_INPUT = UNCACHED + CACHE_READ + CACHE_WRITE
GET_PIPELINE = {
    "name": "get_pipeline",
    "description": "Get the sales pipeline of one account for a quarter.",
    "input_schema": {
        "type": "object",
        "properties": {"account": {"type": "string"}, "quarter": {"type": "string"}},
        "required": ["account", "quarter"],
    },
}
# What the stub's model passes to a tool: each property a plain value of its type.
PIPELINE_INPUT = {"account": "stub account", "quarter": "stub quarter"}


def unix_client(custody) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key="sk-ant-test-not-a-real-key",
        base_url="http://localhost/anthropic",
        http_client=httpx2.Client(transport=httpx2.HTTPTransport(uds=custody.socket)),
        max_retries=0,
    )


def tcp_client(custody) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key="sk-ant-test-not-a-real-key",
        base_url=f"http://{custody.tcp}/anthropic",
        http_client=httpx2.Client(),
        max_retries=0,
    )


def haiku_cost(output_tokens: int) -> float:
    return cost(
        "claude-haiku-4-5", ALL_INPUT, output_tokens, cached=CACHE_READ, cache_write=CACHE_WRITE
    )


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_message_json_and_streamed(custody, transport):
    """Anthropic's usage (input without cache reads and writes) is normalised: the
    row's input is all input tokens, cached and cache-write tokens are recorded
    apart and priced at their own rates. A stream's input side comes from
    `message_start`, its output from the last `message_delta`."""
    client = unix_client(custody) if transport == "unix" else tcp_client(custody)

    message = client.messages.create(model="claude-haiku-4-5", max_tokens=256, messages=MESSAGES)
    assert message.content[0].text == "Hello from the stub."
    assert message.stop_reason == "end_turn"
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (
        UNCACHED, CACHE_READ, CACHE_WRITE,
    )

    # The provider reports a dated snapshot of the model asked for.
    with client.messages.stream(
        model="claude-haiku-4-5", max_tokens=256, messages=MESSAGES,
        extra_headers={"x-stub-model": "claude-haiku-4-5-20251001"},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from the stub."
    assert final.model == "claude-haiku-4-5-20251001"
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens, final.usage.output_tokens) == (
        UNCACHED, CACHE_READ, 4,
    )

    rows = audit_rows(custody)
    assert len(rows) == 2, rows
    for row, model in zip(rows, ["claude-haiku-4-5", "claude-haiku-4-5-20251001"]):
        assert_ok(row, "messages", model)
        assert (row["input"], row["output"], row["cached"], row["cache_write"]) == (
            ALL_INPUT, 4, CACHE_READ, CACHE_WRITE,
        )
        assert row["tool_calls"] == []
        assert row["cost"] == pytest.approx(haiku_cost(4), rel=1e-9)
    # Against prices.yaml's claude-haiku-4-5 line as of this test: $1 in, $0.10
    # cache read, $1.25 cache write, $5 out per million tokens.
    assert rows[0]["cost"] == pytest.approx(
        (UNCACHED * 1.00 + CACHE_READ * 0.10 + CACHE_WRITE * 1.25 + 4 * 5.00) / 1e6, rel=1e-9
    )


def test_tool_use_json_and_streamed(custody):
    """`tool_use` blocks, whole or streamed as `input_json_delta`s, land in
    `action.model_tool_calls`; the turn carrying the `tool_result` gets text back."""
    client = unix_client(custody)

    message = client.messages.create(
        model="claude-opus-4-1", max_tokens=256, messages=MESSAGES, tools=[GET_PIPELINE]
    )
    assert message.stop_reason == "tool_use"
    text, tool_use = message.content
    assert text.type == "text"
    assert (tool_use.type, tool_use.id, tool_use.name, tool_use.input) == (
        "tool_use", "toolu_stub_1", "get_pipeline", PIPELINE_INPUT,
    )

    with client.messages.stream(
        model="claude-opus-4-1", max_tokens=256, messages=MESSAGES, tools=[GET_PIPELINE]
    ) as stream:
        partial = [e.partial_json for e in stream if e.type == "input_json"]
        final = stream.get_final_message()
    assert len([p for p in partial if p]) == 3, partial
    streamed = final.content[1]
    assert (streamed.id, streamed.name, streamed.input) == ("toolu_stub_1", "get_pipeline", PIPELINE_INPUT)
    assert final.stop_reason == "tool_use"

    answer = client.messages.create(
        model="claude-opus-4-1", max_tokens=256, tools=[GET_PIPELINE],
        messages=MESSAGES + [
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": tool_use.id, "content": "2 deals, 1.2M EUR"}
            ]},
        ],
    )
    assert answer.content[0].text == "Hello from the stub."

    rows = audit_rows(custody)
    assert len(rows) == 3, rows
    call = ("toolu_stub_1", "get_pipeline")
    assert [r["tool_calls"] for r in rows] == [[call], [call], []]
    # Output: two text pieces and three pieces of tool input; then the four-piece answer.
    assert [r["output"] for r in rows] == [5, 5, 4]
    for row in rows:
        assert_ok(row, "messages", "claude-opus-4-1")
        assert (row["input"], row["cached"], row["cache_write"]) == (ALL_INPUT, CACHE_READ, CACHE_WRITE)
        expected = cost(
            "claude-opus-4-1", ALL_INPUT, row["output"], cached=CACHE_READ, cache_write=CACHE_WRITE
        )
        assert row["cost"] == pytest.approx(expected, rel=1e-9)


def test_provider_error_message_lands_in_the_row(custody):
    """A provider error response reaches the SDK as its typed exception and the row
    as `outcome.error` (`<type>: <message>`)."""
    client = unix_client(custody)
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(
            model="claude-nope", max_tokens=16, messages=MESSAGES, extra_headers={"x-stub-error": "404"}
        )
    assert info.value.body["error"] == {"type": "not_found_error", "message": "model: claude-nope"}
    [row] = audit_rows(custody)
    assert (row["operation"], row["model"], row["status"]) == ("messages", "claude-nope", 404)
    assert row["error"] == "not_found_error: model: claude-nope"
    assert (row["input"], row["cost"], row["tool_calls"]) == (None, None, None)


def test_error_event_in_a_stream_lands_in_the_row(custody):
    """An `error` event in the middle of a 200 stream (the API's overloaded case)
    makes the SDK raise, and the row carries the error next to the input usage
    `message_start` already reported."""
    client = unix_client(custody)
    with pytest.raises(anthropic.APIStatusError) as info:
        with client.messages.stream(
            model="claude-haiku-4-5", max_tokens=256, messages=MESSAGES,
            extra_headers={"x-stub-stream-error": "1"},
        ) as stream:
            for _ in stream:
                pass
    assert info.value.body["error"]["type"] == "overloaded_error"
    [row] = audit_rows(custody)
    assert (row["operation"], row["model"], row["status"]) == ("messages", "claude-haiku-4-5", 200)
    assert row["error"] == "overloaded_error: Overloaded"
    assert (row["input"], row["cached"], row["cache_write"]) == (ALL_INPUT, CACHE_READ, CACHE_WRITE)
