"""docs/auditor-queries.md: every query runs where the doc says it ran — DuckDB and
Spark SQL on a generated multi-user week (custody-auditgen, written with custody's
own writer), the Trino and Athena forms parsed by sqlglot in their dialects and,
transpiled, run on DuckDB — and each gives the answers the generator tallied as it
wrote the rows, not merely some answer. The Athena and Trino DDL in the doc is what
`custody lake ddl` prints."""

import json
import pathlib
import re
import shutil
import subprocess
import tempfile

import duckdb
import pytest
import sqlglot

from conftest import REPO, _binary
from test_lake import ddl, declare_in_spark, normalise, statements

DOC = REPO / "docs" / "auditor-queries.md"
ANOMALIES_DOC = REPO / "docs" / "anomalies.md"
ENGINES = {"duckdb", "spark", "trino", "athena"}
TODAY = "2026-03-12"  # a Thursday: last week's Tuesday is 2026-03-03


def blocks() -> list[tuple[str, list[str], str]]:
    """(section heading, tags, SQL) of every ```sql block, in order."""
    out = []
    for section in DOC.read_text().split("\n## ")[1:]:
        heading = section.splitlines()[0]
        for tags, sql in re.findall(r"```sql ([^\n]*)\n(.*?)```", section, re.S):
            out.append((heading, tags.split(), sql.strip().rstrip(";")))
    return out


@pytest.fixture(scope="module")
def week():
    root = pathlib.Path(tempfile.mkdtemp(prefix="custody-auditor-"))
    sink = root / "custody-audit"
    out = subprocess.run([str(_binary("CUSTODY_AUDITGEN", "custody-auditgen")), "--out", str(sink)],
                         check=True, capture_output=True, text=True)
    yield sink, json.loads(out.stdout)
    shutil.rmtree(root, ignore_errors=True)


def check(heading: str, tags: list[str], sql: str, rows: list[tuple], s: dict):
    """Asserts `rows` (normalised) are the answer the generator tallied."""
    where = f"{heading} [{' '.join(tags)}]"
    if "lasttuesday" in tags:
        assert [str(rows[0][0])[:10]] == ["2026-03-03"], (where, rows)
    elif heading.startswith("1."):
        got = {(role, tool): [a, d] for role, tool, a, d in rows}
        want = {(role, tool): v for role, tools in s["access"].items() for tool, v in tools.items()}
        assert got == want, where
    elif heading.startswith("2."):
        got = {(dt, u): [c, d, usd] for dt, u, c, d, usd, _, _ in rows}
        want = {(dt, u): v for dt, users in s["daily"].items() for u, v in users.items()}
        assert {k: v[:2] for k, v in got.items()} == {k: v[:2] for k, v in want.items()}, where
        # Spend: the generator sums each row's micro-dollars, the query rounds the sum.
        assert {k: v[2] for k, v in got.items()} == pytest.approx({k: v[2] for k, v in want.items()}, abs=3e-6)
        assert {(dt, u) for dt, u, *_, flag in rows if flag == "spike"} == {(s["spike"]["dt"], s["spike"]["user"])}
    elif heading.startswith("3.") and "findings" in sql:
        got = {(k, h): n for k, h, n in rows}
        want = {(k, h): n for k, hs in s["findings"].items() for h, n in hs.items()}
        assert got == want, where
    elif heading.startswith("3."):
        assert dict(rows) == s["unredacted"], where
    elif heading.startswith("4.") and "LIMIT 5" in sql:
        spike = max(s["sessions"], key=s["sessions"].get)
        assert rows[0][0] == spike and rows[0][2] == s["sessions"][spike], (where, rows[0])
        assert all(s["sessions"][r[0]] == r[2] for r in rows), where
    elif heading.startswith("4."):
        session = re.search(r"session_id = '([^']+)'", sql).group(1)
        assert [r[0] for r in rows] == list(range(1, s["sessions"][session] + 1)), where
        assert {r[2] for r in rows} == {s["spike"]["user"]}
    elif heading.startswith("5."):
        assert {e: [r, d] for e, _, r, d, _ in rows} == s["patients_tuesday"], where
    else:
        raise AssertionError(f"no expected answer for {where}")


def declared(sink, spark) -> duckdb.DuckDBPyConnection:
    """The trail at `sink` as `custody_audit`, in Spark and in the DuckDB
    connection returned, by the DDL `custody lake ddl` prints."""
    con = duckdb.connect()
    for statement in statements(ddl("duckdb", sink)):
        con.execute(statement)
    declare_in_spark(spark, sink)
    return con


def test_the_doc_has_every_question():
    headings = {h.split(".")[0] for h, _, _ in blocks() if h[0].isdigit()}
    assert headings == {"1", "2", "3", "4", "5"}
    for heading, tags, _ in blocks():
        assert set(tags) & ENGINES or tags[0].endswith("-ddl"), (heading, tags)


def test_every_query_answers_right_in_duckdb_spark_and_transpiled_trino(week, spark):
    sink, summary = week
    con = declared(sink, spark)
    ran = {"duckdb": 0, "spark": 0, "trino": 0, "athena": 0}
    for heading, tags, sql in blocks():
        if not set(tags) & ENGINES:
            continue
        if "duckdb" in tags:
            rows = normalise(con.execute(sql.replace("current_date", f"DATE '{TODAY}'")).fetchall())
            assert rows, heading
            check(heading, tags, sql, rows, summary)
            ran["duckdb"] += 1
        if "spark" in tags:
            rows = normalise(spark.sql(sql.replace("current_date()", f"DATE'{TODAY}'")).collect())
            check(heading, tags, sql, rows, summary)
            ran["spark"] += 1
        for dialect in ("trino", "athena"):
            if dialect not in tags:
                continue
            assert sqlglot.parse_one(sql, read=dialect) is not None, (heading, dialect)
            if "notranspile" in tags:
                continue
            duck = sqlglot.transpile(sql.replace("current_date", f"DATE '{TODAY}'"), read=dialect,
                                     write="duckdb")[0]
            check(heading, tags, sql, normalise(con.execute(duck).fetchall()), summary)
            ran[dialect] += 1
    assert ran["duckdb"] >= 8 and ran["spark"] >= 8 and ran["trino"] >= 6, ran


def test_the_ddl_in_the_doc_is_what_custody_prints():
    found = {tags[0]: sql for _, tags, sql in blocks() if tags[0].endswith("-ddl")}
    athena = ddl("athena", "s3://acme-ai-audit/custody", "--table", "custody_audit", "--since", "2026-01-01")
    trino = ddl("trino", "s3://acme-ai-audit/custody", "--table", "hive.custody.custody_audit")
    assert found["athena-ddl"] == athena.strip().rstrip(";")
    assert found["trino-ddl"] == trino.strip().rstrip(";")
    for dialect, text in (("athena", athena), ("trino", trino)):
        for statement in statements(text):
            assert sqlglot.parse_one(statement, read=dialect) is not None, statement


def fleet_blocks() -> list[tuple[str, str]]:
    """(signal, SQL) of docs/anomalies.md's fleet-wide queries."""
    return re.findall(r"```sql duckdb spark fleet-(\w+)\n(.*?)```", ANOMALIES_DOC.read_text(), re.S)


def check_fleet(signal: str, rows: list[tuple], s: dict):
    """The injected patterns of the generated week, and nothing else."""
    day = lambda v: str(v)[:10]  # noqa: E731
    spike = (s["spike"]["user"], s["spike"]["dt"])
    if signal == "rate_spike":
        assert [(r[0], day(r[1])) for r in rows] == [spike], rows
    elif signal == "first_use":
        want = sorted((u, t) for u, ts in s["first_use"]["2026-03-03"].items() for t in ts)
        assert [(r[0], r[1]) for r in rows] == want, rows
    elif signal == "denial_burst":
        assert [(r[0], day(r[1])) for r in rows] == [(s["denial_burst"]["user"], s["denial_burst"]["dt"])], rows
    elif signal == "pii_burst":
        # The spike user's chats that day carry an e-mail address too.
        want = sorted([spike, (s["pii_burst"]["user"], s["pii_burst"]["dt"])])
        assert sorted((r[0], day(r[1])) for r in rows) == want, rows
    elif signal == "long_session":
        spike_session = max(s["sessions"], key=s["sessions"].get)
        assert [(r[0], r[1], r[2]) for r in rows] == [(spike[0], spike_session, s["sessions"][spike_session])], rows
    elif signal in ("cost_rate", "off_hours", "sessions_per_user"):
        assert rows == [], (signal, rows)
    else:
        raise AssertionError(f"no expected answer for {signal}")


def test_fleet_anomaly_queries_find_the_injected_patterns_in_duckdb_and_spark(week, spark):
    sink, summary = week
    con = declared(sink, spark)
    found = fleet_blocks()
    assert {signal for signal, _ in found} == {"rate_spike", "first_use", "denial_burst", "pii_burst",
                                               "cost_rate", "long_session", "off_hours", "sessions_per_user"}
    assert summary["pods"] == 3
    for signal, sql in found:
        in_duckdb = normalise(con.execute(sql).fetchall())
        check_fleet(signal, in_duckdb, summary)
        in_spark = normalise(spark.sql(sql).collect())
        assert in_spark == in_duckdb, (signal, in_duckdb, in_spark)
