"""The MCP server: the SDK's low-level ``Server`` with walletd's tools, served over stdio.

The low-level server (not the decorator API) because the schemas are written by hand for a
model (:mod:`wallet_client.mcp.schemas`) rather than derived from Python signatures, and
because every result is shaped here: structured content plus the same JSON as text (for
hosts that read only text), and ``isError`` only for real failures (a pending approval is a
normal result). Arguments are validated against the input schema before a tool runs, since
the SDK leaves that to the server; a refusal is a tool error like any other.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import mcp_types as types
import structlog
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server

from .failures import ToolFailure
from .schemas import TOOLS, ToolSpec, tool_named
from .tools import WalletTools

__all__ = ["build_server", "run_stdio"]

log = structlog.get_logger("walletd_mcp")

SERVER_NAME = "walletd"


def _tool(spec: ToolSpec) -> types.Tool:
    return types.Tool(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        input_schema=spec.input_schema,
        output_schema=spec.output_schema,
        annotations=types.ToolAnnotations(
            title=spec.title,
            read_only_hint=not spec.writes,
            # Nothing walletd-mcp exposes deletes or overwrites anything (delete, rotate,
            # policy and admin operations are not tools), so this is false for every tool.
            destructive_hint=False,
            idempotent_hint=spec.idempotent,
            open_world_hint=False,  # it talks to the local daemon only
        ),
    )


def _text(data: dict[str, Any]) -> list[types.ContentBlock]:
    return [types.TextContent(type="text", text=json.dumps(data, sort_keys=True))]


def _failure(exc: ToolFailure) -> types.CallToolResult:
    body = {"error": exc.body()}
    return types.CallToolResult(content=_text(body), structured_content=body, is_error=True)


def _check_arguments(spec: ToolSpec, args: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(spec.input_schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(args))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "arguments"
        # error.message can quote the offending value (a message, say); name the rule only.
        raise ToolFailure(
            "invalid_argument", f"{where}: does not satisfy the schema's {error.validator!r}"
        )


def build_server(tools: WalletTools, *, version: str = "0.1.0") -> Server[Any]:
    """The MCP server for ``tools`` (no transport yet: see :func:`run_stdio`)."""
    listed = set(tools.listed())

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[_tool(s) for s in TOOLS if s.name in listed])

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        args = dict(params.arguments or {})
        spec = tool_named(params.name)
        try:
            if spec is not None:
                _check_arguments(spec, args)
            result = await tools.call(params.name, args)
        except ToolFailure as exc:
            log.info("tool_failed", tool=params.name[:64], code=exc.code)
            return _failure(exc)
        log.info("tool_called", tool=params.name, status=result.get("status", "ok"))
        return types.CallToolResult(content=_text(result), structured_content=result)

    return Server(
        SERVER_NAME,
        version=version,
        instructions=(
            "walletd holds the wallets' keys; these tools ask it to sign and never reveal a "
            "key. Always give a truthful purpose when signing. When a signature is "
            "pending_approval, tell the person how_to_approve and wait with "
            "wallet_wait_for_approval."
        ),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def run_stdio(server: Server[Any]) -> None:
    """Serve MCP on this process's stdin and stdout until stdin closes."""
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
