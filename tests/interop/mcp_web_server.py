"""A one-tool MCP server built with the official SDK (PyPI `mcp`), for the test that
runs the policy example of `docs/policy.md` as written: its tool `web` is the
example's `search:web` (open to every caller) when custody's route is named `search`,
and it asks the user before it searches (an elicitation round trip).

Run: `python mcp_web_server.py` binds a free loopback port, prints
`listening 127.0.0.1:PORT` on stdout and serves until terminated.
"""

import sys
from typing import Annotated

from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve
from pydantic import BaseModel

from mcp_server import run

server = MCPServer("search", version="1.0.0")


class Confirmation(BaseModel):
    confirm: bool


def ask(query: str) -> Elicit[Confirmation]:
    return Elicit(f"Search the web for {query!r}?", Confirmation)


@server.tool()
async def web(query: str, answer: Annotated[Confirmation, Resolve(ask)], ctx: Context) -> str:
    """Searches the web once the user confirms."""
    await ctx.report_progress(1, 1, "searched")
    return f"3 results for {query}" if answer.confirm else "not searched"


if __name__ == "__main__":
    sys.exit(run(server))
