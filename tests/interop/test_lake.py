"""The trail in a lakehouse (docs/lakehouse.md): a sink that mixes every schema
version, as a fleet leaves it across upgrades, read by DuckDB, pyarrow, polars and
Spark SQL through the published definitions and options, with the docs' portable
queries giving the same answers in each engine and the answers the generator
expects."""

import datetime
import json
import pathlib
import re
import shutil
import subprocess
import tempfile
import textwrap

import duckdb
import pyarrow.parquet as pq
import polars
import pytest

from conftest import REPO, _binary

DOC = REPO / "docs" / "lakehouse.md"


@pytest.fixture(scope="module")
def lake():
    """A generated two-pod, two-day trail in files of every schema version, and the
    generator's summary of it."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="custody-lake-"))
    sink = root / "custody-audit"
    out = subprocess.run(
        [str(_binary("CUSTODY_LAKEGEN", "custody-lakegen")), "--out", str(sink)],
        check=True, capture_output=True, text=True,
    )
    summary = json.loads(out.stdout)
    yield sink, summary
    shutil.rmtree(root, ignore_errors=True)


def ddl(engine: str, sink, *extra: str) -> str:
    out = subprocess.run(
        [str(_binary("CUSTODY_BIN", "custody")), "lake", "ddl", "--engine", engine, *extra, str(sink)],
        check=True, capture_output=True, text=True,
    )
    return out.stdout


def statements(sql: str) -> list[str]:
    """The statements of a script (no `;` inside strings in what custody prints)."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def portable_queries() -> list[tuple[str, str]]:
    """(title, SQL) of each query in the docs' "Portable queries" section: one
    ```sql block each, its first line a `-- title` comment."""
    text = DOC.read_text()
    section = text.split("## Portable queries", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, re.S)
    assert len(blocks) >= 6, "the portable queries were not found"
    out = []
    for block in blocks:
        title = block.splitlines()[0].removeprefix("--").strip()
        out.append((title, block.strip().rstrip(";")))
    return out


def normalise(rows) -> list[tuple]:
    """Rows as comparable tuples: floats rounded to 6 places, dates and times as
    ISO strings."""
    def value(v):
        if isinstance(v, datetime.datetime) and v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        if isinstance(v, float):
            return round(v, 6)
        if hasattr(v, "isoformat"):
            return v.isoformat()
        if hasattr(v, "as_tuple"):  # Decimal
            return round(float(v), 6)
        return v
    return [tuple(value(v) for v in row) for row in rows]


def duckdb_con(sink):
    con = duckdb.connect()
    for statement in statements(ddl("duckdb", sink)):
        con.execute(statement)
    return con


def declare_in_spark(spark, sink):
    """`custody_audit` in the shared Spark session, over `sink` (another module's
    table of that name dropped first)."""
    spark.sql("DROP TABLE IF EXISTS custody_audit")
    for statement in statements(ddl("spark", sink)):
        spark.sql(statement)


def check_summary(count, summary):
    """Checks an engine's answers against the generator's summary. `count(sql)`
    runs `SELECT key, count FROM custody_audit ...` and returns a dict."""
    assert count("SELECT CAST(schema_version AS STRING), count(*) FROM custody_audit GROUP BY schema_version") \
        == {k: v for k, v in summary["by_version"].items()}
    assert count("SELECT principal.sub, count(*) FROM custody_audit GROUP BY principal.sub") == summary["by_user"]
    assert count("SELECT 'denials', count(*) FROM custody_audit WHERE policy.decision = 'deny'") \
        == {"denials": summary["denials"]}
    assert count("SELECT 'pii', count(*) FROM custody_audit WHERE content_safety.pii_detected") \
        == {"pii": summary["pii_rows"]}
    assert count("SELECT session_id, count(*) FROM custody_audit GROUP BY session_id") == summary["sessions"]
    # A v8 column: only files of version 8 on say which calls were housekeeping.
    assert count("SELECT 'housekeeping', count(*) FROM custody_audit WHERE action.housekeeping") \
        == {"housekeeping": summary["housekeeping"]}


def test_the_generated_sink_holds_every_schema_version(lake):
    sink, summary = lake
    versions = {int(v) for v in summary["by_version"]}
    files = sorted(sink.rglob("*.parquet"))
    seen = {int(pq.read_metadata(f).metadata[b"custody.schema_version"]) for f in files}
    assert seen == versions and min(versions) == 1 and len(versions) >= 7, seen
    # The files of version 1 really lack the later columns: a reader that takes
    # one file's schema loses them (the problem the definitions solve).
    v1 = next(f for f in files if pq.read_metadata(f).metadata[b"custody.schema_version"] == b"1")
    names = pq.read_schema(v1).names
    assert "row_seq" not in names and "session_step" not in names, names


def test_duckdb_reads_every_version_through_the_view(lake):
    sink, summary = lake
    con = duckdb_con(sink)
    check_summary(lambda sql: dict(con.execute(sql).fetchall()), summary)
    # Columns of the newest version are there; older files read them as null.
    nulls = dict(con.execute(
        "SELECT schema_version, count(row_seq IS NULL OR NULL) FROM custody_audit GROUP BY ALL").fetchall())
    assert all(n > 0 for v, n in nulls.items() if v < 7), nulls


def test_the_docs_pyarrow_and_polars_recipes_read_every_version(lake, monkeypatch):
    """Runs docs/lakehouse.md's pyarrow and polars snippets as written, in the
    directory that holds `custody-audit/`."""
    sink, summary = lake
    section = DOC.read_text().split("## Reading files without a table", 1)[1].split("\n## ", 1)[0]
    blocks = [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", section, re.S)]
    assert len(blocks) == 2, "the pyarrow and polars recipes were not found"
    monkeypatch.chdir(sink.parent)
    files = sorted(sink.rglob("*.parquet"))
    newest = max(files, key=lambda f: int(pq.read_metadata(f).metadata[b"custody.schema_version"]))
    scope = {"newest_file": str(newest)}
    exec(blocks[0], scope)  # pyarrow: `table`
    table = scope["table"]
    assert table.num_rows == summary["rows"]
    versions = table.group_by("schema_version").aggregate([("schema_version", "count")]).to_pylist()
    assert {str(r["schema_version"]): r["schema_version_count"] for r in versions} == summary["by_version"]
    assert "row_seq" in table.column_names
    assert "bytes_announced" in table.schema.field("outcome").type.names
    exec(blocks[1], scope)  # polars: `frame`
    frame = scope["frame"]
    assert frame.height == summary["rows"]
    users = frame.group_by(polars.col("principal").struct.field("sub")).len().rows()
    assert dict(users) == summary["by_user"]
    assert frame.filter(polars.col("row_seq").is_null()).height == sum(
        n for v, n in summary["by_version"].items() if int(v) < 7)


def test_spark_sql_reads_every_version_through_the_ddl(lake, spark):
    sink, summary = lake
    declare_in_spark(spark, sink)
    count = lambda sql: {r[0]: r[1] for r in spark.sql(sql).collect()}  # noqa: E731
    check_summary(count, summary)
    assert spark.sql("SELECT count(*) FROM custody_audit WHERE row_seq IS NULL").collect()[0][0] > 0
    # The path-based read the docs give, for a look without a table.
    frame = spark.read.option("mergeSchema", "true").parquet(str(sink))
    assert frame.count() == summary["rows"]
    assert "row_seq" in frame.columns and "raw_path" in frame.schema["action"].dataType.names


def test_the_portable_queries_answer_the_same_in_duckdb_and_spark(lake, spark):
    sink, summary = lake
    con = duckdb_con(sink)
    declare_in_spark(spark, sink)
    for title, sql in portable_queries():
        in_duckdb = normalise(con.execute(sql).fetchall())
        in_spark = normalise(spark.sql(sql).collect())
        assert in_duckdb, f"{title}: no rows"
        assert in_duckdb == in_spark, f"{title}:\nduckdb {in_duckdb}\nspark  {in_spark}"
    spend = dict(normalise(con.execute(
        "SELECT principal.sub, sum(usage.estimated_cost_usd) FROM custody_audit "
        "WHERE usage.estimated_cost_usd IS NOT NULL GROUP BY principal.sub").fetchall()))
    assert spend == {u: round(v, 6) for u, v in summary["spend_usd"].items()}


def test_trino_and_athena_definitions_parse_in_their_dialects(lake):
    sink, _ = lake
    import sqlglot
    for engine, dialect in (("trino", "trino"), ("athena", "athena")):
        sql = ddl(engine, "s3://audit-bucket/custody", "--table", "custody.audit", "--since", "2026-03-01")
        for statement in statements(sql):
            parsed = sqlglot.parse_one(statement, read=dialect)
            assert parsed is not None, statement
        assert "'projection.dt.range' = '2026-03-01,NOW'" in sql or engine == "trino", sql
        create = statements(sql)[0]
        for column in ("event_time", "principal", "row_seq", "dt", "hour"):
            assert column in create, (engine, column)
