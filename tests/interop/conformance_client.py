"""The client command of the MCP conformance suite's client scenarios
(`conformance client --command "python conformance_client.py [--custody DIR]"`):
the suite starts its own test server and runs this with the server's URL as the
last argument and the scenario in `MCP_CONFORMANCE_SCENARIO`.

With `--custody DIR`, custody (`CUSTODY_BIN`) is started first with an `mcp` route
whose upstream is that URL (config, audit files and log in DIR), and the official
Python client (PyPI `mcp`, 2025-11-25 with `initialize`) talks to custody's
loopback TCP listener instead; custody is stopped (SIGTERM, audit flushed) at the
end. Without it, the client talks to the server directly.
"""

import asyncio
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import mcp
from mcp.client.streamable_http import streamable_http_client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_custody(directory: pathlib.Path, upstream: str) -> tuple[subprocess.Popen, str]:
    directory.mkdir(parents=True, exist_ok=True)
    tcp, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    config = directory / "custody.yaml"
    config.write_text(
        f"listen: {{unix: null, tcp: '{tcp}', admin: '{admin}'}}\n"
        f"audit: {{dir: '{directory / 'audit'}', flush_interval: 1h}}\n"
        f"routes:\n  - {{name: mcp, prefix: /mcp, upstream: '{upstream}', kind: mcp}}\n"
    )
    log = open(directory / "custody.log", "ab")
    proc = subprocess.Popen([os.environ["CUSTODY_BIN"], "run", "--log-format", "json", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            sys.exit(f"custody exited: {(directory / 'custody.log').read_text()}")
        try:
            with urllib.request.urlopen(f"http://{admin}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc, f"http://{tcp}/mcp"
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("custody not ready")
            time.sleep(0.05)


def defaults(schema: dict) -> dict:
    """The answer a user who accepts every default gives (SEP-1034)."""
    return {k: p["default"] for k, p in (schema.get("properties") or {}).items() if "default" in p}


async def run(scenario: str, url: str) -> None:
    async def elicitation(context, params):
        return mcp.types.ElicitResult(action="accept", content=defaults(params.requested_schema))

    async with mcp.Client(streamable_http_client(url), mode="legacy", elicitation_callback=elicitation) as session:
        tools = {t.name for t in (await session.list_tools()).tools}
        if scenario == "tools_call":
            await session.call_tool("add_numbers", {"a": 5, "b": 3})
        elif scenario == "elicitation-sep1034-client-defaults":
            await session.call_tool("test_client_elicitation_defaults", {})
        elif scenario == "sse-retry":
            await session.call_tool("test_reconnection", {})
        elif scenario != "initialize":
            sys.exit(f"unknown scenario {scenario} (tools: {sorted(tools)})")


def main() -> None:
    args = sys.argv[1:]
    url = args[-1]
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "initialize")
    custody = None
    if args[0] == "--custody":
        custody, url = start_custody(pathlib.Path(args[1]), url)
    try:
        asyncio.run(run(scenario, url))
    finally:
        if custody:
            custody.send_signal(signal.SIGTERM)
            custody.wait(timeout=30)


if __name__ == "__main__":
    main()
