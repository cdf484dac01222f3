"""The official OpenAI SDK talks to custody over the Unix socket and over TCP,
streaming and not; DuckDB reads the rows custody wrote."""

import re

import httpx2
import openai
import pytest

from conftest import REPO

MESSAGES = [{"role": "user", "content": "What is the pipeline status this quarter?"}]


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
    request_id = raw.headers["x-request-id"]
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
