"""``sink mcp --agent NAME [--agents FILE]``: the agent gateway as an MCP server over stdio.

Standard output is the MCP channel: everything sink says goes to standard error. The ``mcp``
package is an optional extra, imported only when the command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from sink.errors import ConfigError

if TYPE_CHECKING:
    from sink.cli.main import ExitCode

MISSING_EXTRA = "sink mcp needs the mcp extra: pip install 'sink[mcp]'"
AGENTS_ENV = "SINK_AGENTS"


def add_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``sink mcp`` (its options cost nothing to import)."""
    mcp = commands.add_parser(
        "mcp",
        help="serve Docker Hub tools to an AI agent (Model Context Protocol, stdio)",
        description=(
            "Serve the tools of one agent of an agents file over stdio: reads scoped by its "
            "policy, one write tool per endpoint template it may use, plan/apply over the "
            "desired-state files it lists, two-step writes and applies through the same send "
            "core as `sink run`, every call in the agent's audit log. See "
            "README.md, section `sink mcp`."
        ),
    )
    mcp.add_argument("--agent", required=True, help="the agent's name in the agents file")
    mcp.add_argument(
        "--agents",
        help=f"the agents file (default: ${AGENTS_ENV}, else agents.yaml in this folder)",
    )
    mcp.add_argument(
        "--base-url",
        help="send to this Docker Hub (e.g. a `sink hubsim` URL) instead of the agent's",
    )
    mcp.set_defaults(handler=cmd_mcp)


def cmd_mcp(args: argparse.Namespace) -> ExitCode:
    """Run the MCP server until the client closes standard input."""
    import anyio

    from sink.agent.agents import DEFAULT_AGENTS_FILE, load_agent
    from sink.cli.main import ExitCode

    try:
        from sink.agent.server import serve_stdio
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] in ("mcp", "mcp_types"):
            raise ConfigError(MISSING_EXTRA) from exc
        raise
    from sink.agent.gateway import Gateway

    path = args.agents or os.environ.get(AGENTS_ENV) or DEFAULT_AGENTS_FILE
    agent = load_agent(path, args.agent)

    async def main() -> None:
        async with Gateway(agent, base_url=args.base_url) as gateway:
            tools = len(gateway.tools)
            print(
                f"sink mcp: agent {agent.name!r}, {tools} tools, audit log "
                f"{gateway.paths['audit']}",
                file=sys.stderr,
            )
            await serve_stdio(gateway)

    anyio.run(main)
    return ExitCode.OK
