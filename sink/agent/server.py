"""``sink mcp``: the agent gateway as a Model Context Protocol server (the ``mcp`` package's
``MCPServer``, over stdio).

Each :class:`~sink.agent.tools.ToolSpec` becomes an MCP tool with its own input schema (made from
the template and Docker's spec, not from a Python signature) and annotations. The arguments go
to :meth:`Gateway.call <sink.agent.gateway.Gateway.call>` as they came: the gateway checks them
against that schema, so no SDK validation message (which quotes values) reaches the agent.

A destructive call asks the human through MCP elicitation, in whichever way the client's
protocol does it: a server-to-client ``elicitation/create`` request (up to 2025-11-25), or an
``input_required`` result the client answers on its retry of the call (2026-07-28; the answer is
bound to the question by the SDK's sealed ``request_state``). A client that declared no
elicitation capability cannot be asked (see :attr:`AgentPolicy.unattended_destructive
<sink.agent.agents.AgentPolicy.unattended_destructive>`).

Requires the ``mcp`` extra: ``pip install 'sink[mcp]'``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.shared.exceptions import MCPError
from mcp_types import (
    CallToolResult,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    InputRequiredResult,
    TextContent,
    ToolAnnotations,
)
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field

from sink.agent.gateway import Answer, Approver, Gateway, Pending
from sink.agent.tools import ToolSpec

_INPUT_REQUIRED_VERSION = "2026-07-28"
"""The first protocol revision whose tool calls elicit through ``input_required`` results."""
_APPROVAL = "sink-approval"
_APPROVAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approve": {
            "type": "boolean",
            "title": "Approve",
            "description": "true to let this request be sent",
        }
    },
    "required": ["approve"],
}


class _Approval(BaseModel):
    approve: bool = Field(description="true to let this request be sent")


class _RawArguments(FuncMetadata):
    """Hands the tool its arguments as they came: the gateway checks them against the tool's
    input schema itself, naming fields and rules only."""

    def validate_arguments(self, arguments_to_validate: dict[str, Any]) -> dict[str, Any]:
        return {"arguments": dict(arguments_to_validate)}


def build_server(gateway: Gateway) -> MCPServer[Any]:
    """An ``MCPServer`` whose tools are ``gateway``'s (the gateway must be started)."""
    agent = gateway.agent
    tools = [_tool(gateway, spec) for spec in gateway.tools.values()]
    writes = sum(spec.kind == "write" for spec in gateway.tools.values())
    instructions = (
        f"Docker Hub tools of the agent {agent.name!r}, each call checked against its policy "
        "and logged. "
        + (
            "Writes take two calls: the first (without confirm) sends nothing and returns the "
            "exact request, the decision and a confirmation token; the same call with "
            "confirm=<token> sends it once. Destructive calls need a human's approval."
            if writes
            else "This agent is read-only."
        )
    )
    return _AgentServer(
        gateway,
        name="sink",
        title="sink: Docker Hub gateway",
        instructions=instructions,
        version=_version(),
        tools=tools,
        log_level="WARNING",
    )


class _AgentServer(MCPServer[Any]):
    """An ``MCPServer`` that hands a call of a tool it does not have to the gateway too, so
    that the refusal names the rule (a template the policy leaves out) and is audited."""

    def __init__(self, gateway: Gateway, **options: Any) -> None:
        super().__init__(**options)
        self._gateway = gateway

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        if name in self._gateway.tools or context is None:
            return await super().call_tool(name, arguments, context)
        return await _call(self._gateway, name, arguments, context)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sink")
    except PackageNotFoundError:
        return "0"


def _tool(gateway: Gateway, spec: ToolSpec) -> Tool:
    name = spec.name

    async def run(ctx: Context[Any, Any], arguments: dict[str, Any]) -> Any:
        return await _call(gateway, name, arguments, ctx)

    hints = spec.hints
    return Tool(
        fn=run,
        name=name,
        title=spec.title,
        description=spec.description,
        parameters=spec.input_schema,
        fn_metadata=_RawArguments(arg_model=ArgModelBase),
        is_async=True,
        context_kwarg="ctx",
        annotations=ToolAnnotations(
            title=spec.title,
            read_only_hint=hints.read_only,
            destructive_hint=hints.destructive,
            idempotent_hint=hints.idempotent,
            open_world_hint=hints.open_world,
        ),
    )


async def _call(
    gateway: Gateway, name: str, arguments: dict[str, Any], ctx: Context[Any, Any]
) -> CallToolResult | InputRequiredResult:
    try:
        result = await gateway.call(name, arguments, _approver(ctx))
    except Pending as pending:
        answer: InputRequiredResult = pending.result
        return answer
    text = orjson.dumps(result.payload, option=orjson.OPT_INDENT_2).decode()
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=result.payload,
        is_error=result.is_error,
    )


def _approver(ctx: Context[Any, Any]) -> Approver:
    async def approve(message: str) -> Answer:
        capabilities = ctx.client_capabilities
        elicitation = capabilities.elicitation if capabilities is not None else None
        # A bare `elicitation: {}` (before modes existed) is form support; url-only is not.
        if elicitation is None or (elicitation.form is None and elicitation.url is not None):
            return "unsupported"
        version = ctx.protocol_version
        if version is not None and is_version_at_least(version, _INPUT_REQUIRED_VERSION):
            return _answered(ctx, message)
        try:
            outcome = await ctx.elicit(message, _Approval)
        except MCPError:
            return "unsupported"
        except ValueError:  # accepted without an answer, or one that is not a boolean
            return "decline"
        if outcome.action == "accept":
            data = getattr(outcome, "data", None)
            return "accept" if isinstance(data, _Approval) and data.approve else "decline"
        return "cancel" if outcome.action == "cancel" else "decline"

    return approve


def _answered(ctx: Context[Any, Any], message: str) -> Answer:
    """The human's answer on a retried call (2026-07-28), or :class:`Pending` to ask it."""
    state = "approval:" + hashlib.sha256(message.encode()).hexdigest()
    answer = (ctx.input_responses or {}).get(_APPROVAL)
    if answer is None or ctx.request_state != state:
        request = ElicitRequest(
            params=ElicitRequestFormParams(message=message, requested_schema=_APPROVAL_SCHEMA)
        )
        raise Pending(InputRequiredResult(input_requests={_APPROVAL: request}, request_state=state))
    if not isinstance(answer, ElicitResult):
        return "decline"
    if answer.action == "accept":
        content = answer.content or {}
        return "accept" if content.get("approve") is True else "decline"
    return "cancel" if answer.action == "cancel" else "decline"


async def serve_stdio(
    gateway: Gateway, *, ready: Callable[[MCPServer[Any]], Awaitable[None]] | None = None
) -> None:
    """Serve ``gateway``'s tools over stdio until the client closes the connection."""
    server = build_server(gateway)
    if ready is not None:
        await ready(server)
    await server.run_stdio_async()
