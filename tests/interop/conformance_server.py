"""An MCP server implementing the tools, resources and prompts the official MCP
conformance suite's server scenarios call (npm `@modelcontextprotocol/conformance`,
see each scenario's "Server Implementation Requirements"), built on the official
Python SDK's low-level `Server` and served over streamable HTTP at `/mcp`, with the
SDK's DNS-rebinding protection (Host / Origin must be localhost) on.

Run: `python conformance_server.py [LOG]` binds a free loopback port, prints
`listening 127.0.0.1:PORT` on stdout and serves until terminated. With LOG, every
request that reaches the server is appended to that file as one line,
`HTTP-METHOD JSON-RPC-METHOD` (`response` for a client's reply, `-` without a body),
so a test can compare what the server received with custody's rows.
"""

import asyncio
import base64
import json
import socket
import sys
from typing import Any

import mcp.types as types
import uvicorn
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server

# A 1x1 red PNG and a tiny WAV (44-byte header, no samples).
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
    "0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082"
)).decode()
WAV = base64.b64encode(
    b"RIFF" + (36).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
    + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (8000).to_bytes(4, "little")
    + (8000).to_bytes(4, "little") + (1).to_bytes(2, "little") + (8).to_bytes(2, "little")
    + b"data" + (0).to_bytes(4, "little")
).decode()

NO_ARGS = {"type": "object", "properties": {}}


def tool(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "description": description, "inputSchema": schema or NO_ARGS}


TOOLS = [
    tool("test_simple_text", "Returns simple text."),
    tool("test_image_content", "Returns an image."),
    tool("test_audio_content", "Returns audio."),
    tool("test_embedded_resource", "Returns an embedded resource."),
    tool("test_multiple_content_types", "Returns text, an image and a resource."),
    tool("test_tool_with_logging", "Logs three messages while it runs."),
    tool("test_tool_with_progress", "Reports progress while it runs."),
    tool("test_error_handling", "Always fails."),
    tool("test_sampling", "Asks the client's LLM.",
         {"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]}),
    tool("test_elicitation", "Asks the user.",
         {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}),
    tool("test_elicitation_sep1034_defaults", "Asks the user, with defaults."),
    tool("test_elicitation_sep1330_enums", "Asks the user, with every kind of enum."),
    tool("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features", {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {"address": {"type": "object", "properties": {
            "street": {"type": "string"}, "city": {"type": "string"}}}},
        "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
        "additionalProperties": False,
    }),
]

DEFAULTS_SCHEMA = {"type": "object", "properties": {
    "name": {"type": "string", "default": "John Doe"},
    "age": {"type": "integer", "default": 30},
    "score": {"type": "number", "default": 95.5},
    "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
    "verified": {"type": "boolean", "default": True},
}}
ENUMS_SCHEMA = {"type": "object", "properties": {
    "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
    "titledSingle": {"type": "string", "oneOf": [
        {"const": "value1", "title": "First Option"}, {"const": "value2", "title": "Second Option"},
        {"const": "value3", "title": "Third Option"}]},
    "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"],
                   "enumNames": ["Option One", "Option Two", "Option Three"]},
    "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
    "titledMulti": {"type": "array", "items": {"anyOf": [
        {"const": "value1", "title": "First Choice"}, {"const": "value2", "title": "Second Choice"},
        {"const": "value3", "title": "Third Choice"}]}},
}}


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def result(*content: dict[str, Any], error: bool = False) -> types.CallToolResult:
    return types.CallToolResult.model_validate({"content": list(content), "isError": error})


async def list_tools(ctx: ServerRequestContext, params: Any) -> types.ListToolsResult:
    return types.ListToolsResult.model_validate({"tools": TOOLS})


async def call_tool(ctx: ServerRequestContext, params: types.CallToolRequestParams) -> types.CallToolResult:
    name, args = params.name, params.arguments or {}
    session = ctx.session
    if name == "test_simple_text":
        return result(text("This is a simple text response for testing."))
    if name == "test_image_content":
        return result({"type": "image", "data": PNG, "mimeType": "image/png"})
    if name == "test_audio_content":
        return result({"type": "audio", "data": WAV, "mimeType": "audio/wav"})
    if name == "test_embedded_resource":
        return result({"type": "resource", "resource": {
            "uri": "test://embedded-resource", "mimeType": "text/plain",
            "text": "This is an embedded resource content."}})
    if name == "test_multiple_content_types":
        return result(text("Multiple content types test:"),
                      {"type": "image", "data": PNG, "mimeType": "image/png"},
                      {"type": "resource", "resource": {
                          "uri": "test://mixed-content-resource", "mimeType": "application/json",
                          "text": json.dumps({"test": "data", "value": 123})}})
    if name == "test_tool_with_logging":
        for i, message in enumerate(["Tool execution started", "Tool processing data", "Tool execution completed"]):
            if i:
                await asyncio.sleep(0.05)
            await session.send_log_message(level="info", data=message, related_request_id=ctx.request_id)
        return result(text("Tool with logging executed successfully"))
    if name == "test_tool_with_progress":
        # A no-op when the request carried no progress token.
        for i, progress in enumerate([0, 50, 100]):
            if i:
                await asyncio.sleep(0.05)
            await session.report_progress(progress, 100)
        return result(text("Tool with progress executed successfully"))
    if name == "test_error_handling":
        return result(text("This tool intentionally returns an error for testing"), error=True)
    if name == "test_sampling":
        answer = await session.create_message(
            messages=[types.SamplingMessage.model_validate(
                {"role": "user", "content": text(str(args.get("prompt", "")))})],
            max_tokens=100, related_request_id=ctx.request_id)
        content = answer.content if not isinstance(answer.content, list) else answer.content[0]
        return result(text(f"LLM response: {getattr(content, 'text', '')}"))
    if name in ("test_elicitation", "test_elicitation_sep1034_defaults", "test_elicitation_sep1330_enums"):
        message, schema = {
            "test_elicitation": (str(args.get("message", "")), {"type": "object", "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"}},
                "required": ["username", "email"]}),
            "test_elicitation_sep1034_defaults": ("Please review and update the form fields with defaults",
                                                  DEFAULTS_SCHEMA),
            "test_elicitation_sep1330_enums": ("Please select options from the enum fields", ENUMS_SCHEMA),
        }[name]
        answer = await session.elicit_form(message, schema, ctx.request_id)
        prefix = "User response" if name == "test_elicitation" else "Elicitation completed"
        return result(text(f"{prefix}: action={answer.action}, content={json.dumps(answer.content)}"))
    raise ValueError(f"unknown tool {name}")


RESOURCES = {
    "test://static-text": ("text/plain", {"text": "This is the content of the static text resource."}),
    "test://static-binary": ("image/png", {"blob": PNG}),
    "test://watched-resource": ("text/plain", {"text": "Watched resource content."}),
}


async def list_resources(ctx: ServerRequestContext, params: Any) -> types.ListResourcesResult:
    return types.ListResourcesResult.model_validate({"resources": [
        {"uri": uri, "name": uri.removeprefix("test://"), "description": f"The {uri} resource",
         "mimeType": mime} for uri, (mime, _) in RESOURCES.items()]})


async def list_templates(ctx: ServerRequestContext, params: Any) -> types.ListResourceTemplatesResult:
    return types.ListResourceTemplatesResult.model_validate({"resourceTemplates": [
        {"uriTemplate": "test://template/{id}/data", "name": "template", "description": "Data by id",
         "mimeType": "application/json"}]})


async def read_resource(ctx: ServerRequestContext, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
    uri = str(params.uri)
    if uri in RESOURCES:
        mime, body = RESOURCES[uri]
        return types.ReadResourceResult.model_validate({"contents": [{"uri": uri, "mimeType": mime, **body}]})
    if uri.startswith("test://template/") and uri.endswith("/data"):
        id_ = uri.removeprefix("test://template/").removesuffix("/data")
        body = json.dumps({"id": id_, "templateTest": True, "data": f"Data for ID: {id_}"})
        return types.ReadResourceResult.model_validate(
            {"contents": [{"uri": uri, "mimeType": "application/json", "text": body}]})
    raise ValueError(f"unknown resource {uri}")


async def subscribe(ctx: ServerRequestContext, params: Any) -> types.EmptyResult:
    return types.EmptyResult()


PROMPTS = [
    {"name": "test_simple_prompt", "description": "A simple prompt."},
    {"name": "test_prompt_with_arguments", "description": "A prompt with arguments.", "arguments": [
        {"name": "arg1", "description": "First test argument", "required": True},
        {"name": "arg2", "description": "Second test argument", "required": True}]},
    {"name": "test_prompt_with_embedded_resource", "description": "A prompt with a resource.", "arguments": [
        {"name": "resourceUri", "description": "URI of the resource to embed", "required": True}]},
    {"name": "test_prompt_with_image", "description": "A prompt with an image."},
]


async def list_prompts(ctx: ServerRequestContext, params: Any) -> types.ListPromptsResult:
    return types.ListPromptsResult.model_validate({"prompts": PROMPTS})


async def get_prompt(ctx: ServerRequestContext, params: types.GetPromptRequestParams) -> types.GetPromptResult:
    args = params.arguments or {}
    user = lambda content: {"role": "user", "content": content}  # noqa: E731
    messages = {
        "test_simple_prompt": lambda: [user(text("This is a simple prompt for testing."))],
        "test_prompt_with_arguments": lambda: [user(text(
            f"Prompt with arguments: arg1='{args.get('arg1')}', arg2='{args.get('arg2')}'"))],
        "test_prompt_with_embedded_resource": lambda: [
            user({"type": "resource", "resource": {"uri": args.get("resourceUri", "test://x"),
                                                   "mimeType": "text/plain",
                                                   "text": "Embedded resource content for testing."}}),
            user(text("Please process the embedded resource above."))],
        "test_prompt_with_image": lambda: [user({"type": "image", "data": PNG, "mimeType": "image/png"}),
                                           user(text("Please analyze the image above."))],
    }[params.name]()
    return types.GetPromptResult.model_validate({"messages": messages})


async def complete(ctx: ServerRequestContext, params: types.CompleteRequestParams) -> types.CompleteResult:
    return types.CompleteResult.model_validate({"completion": {"values": [], "total": 0, "hasMore": False}})


async def set_level(ctx: ServerRequestContext, params: Any) -> types.EmptyResult:
    return types.EmptyResult()


server = Server(
    "custody-conformance", version="1.0.0",
    on_list_tools=list_tools, on_call_tool=call_tool,
    on_list_resources=list_resources, on_list_resource_templates=list_templates,
    on_read_resource=read_resource, on_subscribe_resource=subscribe, on_unsubscribe_resource=subscribe,
    on_list_prompts=list_prompts, on_get_prompt=get_prompt, on_completion=complete,
)
server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)


class RequestLog:
    """ASGI middleware: one line per HTTP request in `path` (see the module doc)."""

    def __init__(self, app, path: str):
        self.app, self.path = app, path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            rpc = json.loads(body) if body else None
            method = "-" if rpc is None else rpc.get("method", "response") if isinstance(rpc, dict) else "batch"
        except ValueError:
            method = "unreadable"
        with open(self.path, "a") as log:
            log.write(f"{scope['method']} {method}\n")
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def main() -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    host, port = sock.getsockname()
    app = server.streamable_http_app(host=host)
    if len(sys.argv) > 1:
        app = RequestLog(app, sys.argv[1])
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    print(f"listening {host}:{port}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
