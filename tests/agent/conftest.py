"""Agents against the simulator: an agents file per test, a started gateway, an MCP client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from sink.agent.agents import Agent, parse_agents
from sink.agent.gateway import Gateway
from sink.hubsim import Simulator
from tests.seed import ACME_OAT

WRITER_POLICY: dict[str, Any] = {
    "templates": ["create-repository", "create-team", "delete-team", "create-org-access-token"],
    "methods": ["POST", "DELETE"],
    "read": {"namespaces": ["acme"]},
    "write": {"namespaces": ["acme"], "repositories": ["acme/team-*"]},
    "teams": ["team-*"],
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_agent(
    folder: Path,
    hub: Simulator,
    *,
    name: str = "bot",
    policy: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    identifier: str = "acme",
    secret: str = ACME_OAT,
    budget: dict[str, Any] | None = None,
    plans: list[str] | None = None,
) -> Agent:
    """An agent whose secret is in a 0600 file, its state in ``folder``."""
    secret_file = folder / f"{name}.secret"
    secret_file.write_text(secret + "\n")
    os.chmod(secret_file, 0o600)
    config: dict[str, Any] = {
        "connection": {
            "base_url": hub.url,
            "identifier": identifier,
            "secret_file": str(secret_file),
        },
        "settings": settings if settings is not None else {"namespace": "acme", "org": "acme"},
        "policy": policy if policy is not None else WRITER_POLICY,
    }
    if budget is not None:
        config["budget"] = budget
    if plans is not None:
        config["plans"] = plans
    agents = parse_agents({"agents": {name: config}})
    return Agent(name, agents.agents[name], folder)


@asynccontextmanager
async def client_for(agent: Agent, **options: Any) -> AsyncIterator[tuple[Any, Gateway]]:
    """The SDK's own client connected in-process to the agent's MCP server."""
    from mcp import Client

    from sink.agent.server import build_server

    async with Gateway(agent) as gateway, Client(build_server(gateway), **options) as client:
        yield client, gateway


def audit_lines(agent: Agent) -> list[dict[str, Any]]:
    """The agent's audit log."""
    import orjson

    path = agent.state / "audit.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]
