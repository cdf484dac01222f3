"""Fixtures that run the real custody binary and the stub upstream as processes."""

import os
import re
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import duckdb
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
PRICES = REPO / "crates" / "custody-inspect" / "data" / "prices.yaml"
# The audit schema version this checkout writes (custody-audit's SCHEMA_VERSION).
SCHEMA_VERSION = int(re.search(
    r"pub const SCHEMA_VERSION: i32 = (\d+);",
    (REPO / "crates" / "custody-audit" / "src" / "schema.rs").read_text(),
).group(1))


def _binary(env_name: str, name: str) -> pathlib.Path:
    path = pathlib.Path(os.environ.get(env_name, REPO / "target" / "debug" / name))
    if not path.exists():
        pytest.exit(f"{path} not found: run `cargo build --workspace --bins` first (or set {env_name})", 2)
    return path


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """`n` distinct free loopback ports: every socket stays bound until all are
    chosen, so the kernel cannot hand out one port twice (two separate
    `free_port()` calls can, and custody then refuses its config)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def serve(command: list[str]):
    """Runs a test server that prints `listening ADDR` once it accepts; yields ADDR
    and stops the server afterwards (for session fixtures)."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().strip()
    assert line.startswith("listening "), line
    yield line.split(" ", 1)[1]
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def stub():
    for addr in serve([str(_binary("CUSTODY_STUB", "custody-stub"))]):
        yield "http://" + addr


def wait_ready(proc: subprocess.Popen, admin: str, log, seconds: float = 20):
    """Waits until custody's `/readyz` at `admin` answers 200; `log()` says why a
    process that exited first, or never got ready, failed."""
    deadline = time.monotonic() + seconds
    while True:
        assert proc.poll() is None, log()
        try:
            with urllib.request.urlopen(f"http://{admin}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, "custody not ready:\n" + log()
        time.sleep(0.02)


class Custody:
    """A custody process with its own socket, ports and audit directory."""

    def __init__(self, stub_url: str, extra: str = "", routes: str = "", audit: str | None = None,
                 hosts: bool = False, env: dict | None = None, route_options: dict | None = None,
                 default_socket: bool = False):
        """`routes`: more route entries (YAML list items, each line indented by two
        spaces) after the default `openai` and `anthropic` routes to the stub.
        `route_options`: more keys for those two (route name → flow-mapping text,
        e.g. `{"openai": "token_from: authorization"}`).
        `audit`: the `audit` section's body (flow mapping) instead of the default
        local directory flushed at shutdown. `hosts`: the two routes claim
        api.openai.com and api.anthropic.com (forward-proxy mode). `env`: more
        environment variables for the process. `default_socket`: no `listen.unix`,
        so custody picks its default socket, under TMPDIR set to this directory."""
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="custody-interop-"))
        self.socket = str(self.dir / "custody.sock")
        if default_socket:
            self.socket = str(self.dir / f"custody-{os.getuid()}" / "custody.sock")
            env = {**(env or {}), "TMPDIR": str(self.dir)}
        tcp_port, admin_port = free_ports(2)
        self.tcp = f"127.0.0.1:{tcp_port}"
        self.admin = f"127.0.0.1:{admin_port}"
        self.audit_dir = self.dir / "audit"
        config = self.dir / "custody.yaml"

        def more(route: str) -> str:
            return f", {route_options[route]}" if route_options and route in route_options else ""

        config.write_text(
            "listen: {" + ("" if default_socket else f"unix: '{self.socket}', ")
            + f"tcp: '{self.tcp}', admin: '{self.admin}'}}\n"
            f"routes:\n"
            f"  - {{name: openai, prefix: /openai, upstream: '{stub_url}', kind: openai"
            + (", hosts: [api.openai.com]" if hosts else "") + more("openai") + "}\n"
            f"  - {{name: anthropic, prefix: /anthropic, upstream: '{stub_url}', kind: anthropic"
            + (", hosts: [api.anthropic.com]" if hosts else "") + more("anthropic") + "}\n"
            + routes
            + (f"audit: {audit}\n" if audit else f"audit: {{dir: '{self.audit_dir}', flush_interval: 1h}}\n")
            + extra
        )
        self.log = open(self.dir / "custody.log", "wb")
        self.proc = subprocess.Popen(
            [str(_binary("CUSTODY_BIN", "custody")), "run", "--log-format", "json", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            env={**os.environ, **env} if env else None,
        )
        wait_ready(self.proc, self.admin, self.read_log)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()

    def kill(self):
        """Kills custody if it still runs (a test that failed before `stop`)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def read_log(self) -> str:
        return (self.dir / "custody.log").read_text()

    def stop(self):
        """SIGTERM: custody drains, flushes the audit rows and exits 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(timeout=30) == 0, self.read_log()

    def query(self, sql: str):
        """Runs `sql` in DuckDB with `audit` bound to the audit files."""
        con = duckdb.connect()
        con.execute(
            f"CREATE VIEW audit AS SELECT * FROM read_parquet('{self.audit_dir}/**/*.parquet', hive_partitioning = true)"
        )
        return con.execute(sql).fetchall()


@pytest.fixture
def custody(stub):
    with Custody(stub) as c:
        yield c


IDP_DIR = pathlib.Path(__file__).resolve().parent / "idp"


@pytest.fixture(scope="session")
def oidc():
    """A real OpenID provider (npm oidc-provider) issuing RS256 JWT access tokens."""
    if not (IDP_DIR / "node_modules" / "oidc-provider").exists():
        pytest.exit(f"run `npm ci --prefix {IDP_DIR}` first (scripts/test does)", 2)
    yield from serve(["node", str(IDP_DIR / "server.mjs"), str(free_port())])


def client_credentials_token(issuer: str) -> str:
    """An access token for the `agent-service` client, from the provider's token endpoint."""
    import base64
    import json
    import urllib.parse

    basic = base64.b64encode(b"agent-service:agent-service-secret").decode()
    body = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": "tool:crm:read"}).encode()
    request = urllib.request.Request(
        f"{issuer}/token", data=body, headers={"authorization": f"Basic {basic}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["access_token"]


# Audit rows and the expected costs, shared by the SDK tests.


def price(model: str) -> dict:
    """The per-million-token prices of `model` in prices.yaml (a flow mapping per
    line, `name: { input: 0.15, output: 0.60, cached_input: 0.075 }`): read without
    a YAML library, so the test does not share custody's parser."""
    for line in PRICES.read_text().splitlines():
        m = re.fullmatch(r"\s+([\w.\-]+):\s*\{(.*)\}\s*(#.*)?", line)
        if m and m.group(1) == model:
            return {k.strip(): float(v) for k, v in (kv.split(":") for kv in m.group(2).split(","))}
    raise KeyError(model)


def cost(model: str, input_tokens: int, output_tokens: int = 0, cached: int = 0, cache_write: int = 0) -> float:
    """USD for a call, as documented in prices.yaml: uncached input at `input`, cache
    reads at `cached_input`, cache writes at `cache_write` (both default `input`),
    output at `output`."""
    p = price(model)
    uncached = input_tokens - cached - cache_write
    return (
        uncached * p["input"]
        + cached * p.get("cached_input", p["input"])
        + cache_write * p.get("cache_write", p["input"])
        + output_tokens * p["output"]
    ) / 1e6


ROW = {
    "operation": "action.operation",
    "inspected": "action.inspected",
    "model": "usage.model",
    "input": "usage.input_tokens",
    "output": "usage.output_tokens",
    "cached": "usage.cached_input_tokens",
    "cache_write": "usage.cache_creation_input_tokens",
    "cost": "usage.estimated_cost_usd",
    "tool_calls": "action.model_tool_calls",
    "status": "outcome.status",
    "error": "outcome.error",
}


def audit_rows(custody) -> list[dict]:
    """Stops custody and returns its rows in request order, keyed as in `ROW`, with
    `tool_calls` as (id, name) pairs."""
    custody.stop()
    cols = ", ".join(ROW.values())
    rows = [dict(zip(ROW, r)) for r in custody.query(f"SELECT {cols} FROM audit ORDER BY event_time")]
    for row in rows:
        if row["tool_calls"] is not None:
            row["tool_calls"] = [(c["id"], c["name"]) for c in row["tool_calls"]]
    return rows


def assert_ok(row: dict, operation: str, model: str):
    assert (row["operation"], row["model"], row["inspected"]) == (operation, model, True), row
    assert (row["status"], row["error"]) == (200, None), row


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole run (its start-up takes a while);
    modules declare their tables in it (drop them first: the names are shared)."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.fail("Spark needs a Java runtime: scripts/test installs openjdk-17-jre-headless")
    from pyspark.sql import SparkSession
    warehouse = tempfile.mkdtemp(prefix="custody-spark-")
    session = (
        SparkSession.builder.master("local[1]")
        .appName("custody-lake-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.warehouse.dir", warehouse)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    shutil.rmtree(warehouse, ignore_errors=True)
