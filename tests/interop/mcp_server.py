"""A small CRM MCP server built with the official SDK (PyPI `mcp`), served over
streamable HTTP at `/mcp`. The interop tests route custody to it.

Run: `python mcp_server.py` binds a free loopback port, prints
`listening 127.0.0.1:PORT` on stdout and serves until terminated. Both protocol
eras are served on the same endpoint: 2026-07-28 (stateless, plain JSON replies)
and 2025-11-25 (initialize, `mcp-session-id`, SSE replies).
"""

import socket
import sys
from typing import Annotated

import uvicorn
from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

CONTACTS = [
    {"id": "c-1", "name": "Ada Lovelace", "company": "Analytical Engines"},
    {"id": "c-2", "name": "Alan Turing", "company": "Bletchley Park"},
    {"id": "c-3", "name": "Grace Hopper", "company": "US Navy"},
]

server = MCPServer("crm", version="1.0.0")


@server.tool()
def search_contacts(query: str, limit: int) -> str:
    """Contacts whose name or company contains `query`, at most `limit`."""
    q = query.lower()
    hits = [c for c in CONTACTS if q in c["name"].lower() or q in c["company"].lower()]
    return "; ".join(f"{c['id']} {c['name']}" for c in hits[:limit]) or "no contacts"


@server.tool()
def add_note(contact_id: str, text: str) -> str:
    """Attaches a note to a contact."""
    return f"note added to {contact_id}: {len(text)} characters"


@server.tool()
def delete_contact(contact_id: str) -> str:
    """Always fails: the result carries isError."""
    raise ToolError(f"contact {contact_id} is protected")


class MergeConfirmation(BaseModel):
    confirm: bool


def ask_merge(source: str, target: str) -> Elicit[MergeConfirmation]:
    return Elicit(f"Merge {source} into {target}?", MergeConfirmation)


@server.tool()
async def merge_contacts(
    source: str, target: str, answer: Annotated[MergeConfirmation, Resolve(ask_merge)], ctx: Context
) -> str:
    """Merges two contacts once the user confirms. 2025-11-25: the server asks with an
    `elicitation/create` request inside the call's SSE reply and the client answers
    with a POST of its own; 2026-07-28: the call returns an `InputRequiredResult` and
    the client calls again with the answer. Reports progress, so the final reply is
    an SSE stream in both eras."""
    await ctx.report_progress(1, 1, "merged")
    return f"merged {source} into {target}" if answer.confirm else "not merged"


@server.resource("crm://pipeline/summary", mime_type="text/plain")
def pipeline_summary() -> str:
    """The quarter's pipeline."""
    return "Q3 pipeline: 12 open deals, 340k EUR"


@server.prompt()
def follow_up(contact_id: str, tone: str = "friendly") -> str:
    """A follow-up e-mail for a contact."""
    return f"Write a {tone} follow-up e-mail to contact {contact_id}."


def main() -> None:
    run(server)


def run(app_server: MCPServer) -> None:
    """Serves `app_server` over streamable HTTP on a free loopback port, printing
    `listening 127.0.0.1:PORT` once bound."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    host, port = sock.getsockname()
    app = app_server.streamable_http_app(host=host)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    print(f"listening {host}:{port}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
