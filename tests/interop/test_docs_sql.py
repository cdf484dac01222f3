"""Every SQL example in docs/audit-schema.md runs in DuckDB on what custody writes."""

import json
import re
import urllib.request

import duckdb
import httpx2
import openai

from conftest import REPO, Custody


def test_audit_schema_examples_run(stub):
    with Custody(
        stub,
        routes=(
            f"  - name: crm\n    prefix: /crm\n    upstream: '{stub}/echo'\n    kind: http\n"
            "    tools: [{method: POST, path: /contacts/search, tool: 'crm:contacts:search'}]\n"
        ),
    ) as custody:
        client = openai.OpenAI(
            api_key="sk-test",
            base_url="http://localhost/openai/v1",
            http_client=httpx2.Client(transport=httpx2.HTTPTransport(uds=custody.socket)),
            max_retries=0,
        )
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        request = urllib.request.Request(
            f"http://{custody.tcp}/crm/contacts/search",
            data=json.dumps({"query": "pipeline status this quarter"}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        custody.stop()

    doc = (REPO / "docs" / "audit-schema.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", doc, re.S)
    assert len(blocks) >= 3, "the examples were not found"
    results = []
    for block in blocks:
        for statement in filter(str.strip, block.split(";")):
            sql = statement.replace("custody-audit/", f"{custody.audit_dir}/")
            results.append(duckdb.sql(sql).fetchall())
    flat = repr(results)
    assert "crm:contacts:search" in flat and '{"query":"pipeline status this quarter"}' in flat, flat
    assert "gpt-4o-mini" in flat, flat
