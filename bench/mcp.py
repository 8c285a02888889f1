"""The agent gateway's cost a tool call: one read through MCP beside the same read through sink.

Three ways to read one repository (``GET /v2/namespaces/acme/repositories/api``) from the
simulator in its own process at 50 ms latency, one call after the other:

- library: ``sink.read.export.records(reader, "repository", ...)`` on a signed-in client;
- gateway: ``Gateway.call("repository", ...)`` (argument check, read policy, audit line,
  redaction), no MCP;
- MCP: the SDK's own client calling the ``repository`` tool of ``sink mcp``'s server in-process
  (so the client's JSON-RPC work is counted too: an upper bound of the server's).

Prints wall time and this process's CPU per call for each, and the overheads against the
library (target: MCP overhead under 2 ms CPU a call). Then ``--writes`` confirmed writes
(``create_repository``, two calls each, through MCP) and the token exchanges they made: the
gateway keeps one session per agent, so it is one sign-in for the reads and every write
(before, each confirmed write signed in again). Figures, not a test.

    .venv/bin/python bench/mcp.py [--calls N] [--writes N] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

# Run as `python bench/mcp.py`, this file's folder comes first on sys.path and its name would
# hide the `mcp` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from sink.agent.agents import Agent, parse_agents  # noqa: E402
from sink.agent.gateway import Gateway  # noqa: E402
from sink.hubsim import start_process  # noqa: E402

ACME_OAT = "dckr_oat_mGUb8viwoTjRp7goKqWQNFHBziuPKlbZ"  # the simulator's default seed


async def measure(call: Callable[[], Awaitable[Any]], calls: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds a call, after a warm-up call."""
    await call()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        await call()
    return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls


def agent_in(folder: Path, base_url: str) -> Agent:
    secret = folder / "oat"
    secret.write_text(ACME_OAT)
    os.chmod(secret, 0o600)
    config = {
        "connection": {"base_url": base_url, "identifier": "acme", "secret_file": str(secret)},
        "settings": {"namespace": "acme"},
        "policy": {
            "templates": ["create-repository"],
            "read": {"namespaces": ["acme"]},
            "write": {"namespaces": ["acme"], "repositories": ["acme/bench-*"]},
        },
    }
    return Agent("bench", parse_agents({"agents": {"bench": config}}).agents["bench"], folder)


def exchanges(hub: Any) -> int:
    return sum(1 for r in hub.requests() if r["path"] == "/v2/auth/token")


async def main(calls: int, writes: int, latency_ms: float) -> None:
    from mcp import Client

    from sink.agent.server import build_server
    from sink.read.export import ExportOptions, records

    arguments = {"namespace": "acme", "repository": "api"}
    with start_process(latency_ms=latency_ms) as hub, tempfile.TemporaryDirectory() as folder:
        agent = agent_in(Path(folder), hub.url)
        async with Gateway(agent) as gateway:
            reader = gateway.reader
            options = ExportOptions(namespace="acme", repository="api")

            async def library() -> None:
                reader.invalidate()
                [item async for item in records(reader, "repository", "acme", options)]

            async def direct() -> None:
                result = await gateway.call("repository", arguments)
                assert not result.is_error, result.payload

            async with Client(build_server(gateway)) as client:

                async def over_mcp() -> None:
                    result = await client.call_tool("repository", arguments)
                    assert not result.is_error

                rows = [
                    ("library", await measure(library, calls)),
                    ("gateway", await measure(direct, calls)),
                    ("MCP", await measure(over_mcp, calls)),
                ]
                names = iter(range(writes + 1))

                async def confirmed_write() -> None:
                    name = {"name": f"bench-{next(names)}"}
                    first = await client.call_tool("create_repository", name)
                    token = first.structured_content["confirm"]
                    sent = await client.call_tool("create_repository", {**name, "confirm": token})
                    assert not sent.is_error, sent.structured_content

                signed_in = exchanges(hub)
                write = await measure(confirmed_write, writes)
                write_exchanges = exchanges(hub) - signed_in
    base_wall, base_cpu = rows[0][1]
    print(f"{calls} reads of one repository each, simulator latency {latency_ms:.0f} ms")
    print(f"{'path':<10}{'wall/call':>12}{'CPU/call':>12}{'CPU over library':>20}")
    for name, (wall, cpu) in rows:
        over = (cpu - base_cpu) * 1000
        print(f"{name:<10}{wall * 1000:>10.2f}ms{cpu * 1000:>10.2f}ms{over:>18.2f}ms")
    mcp_wall, mcp_cpu = rows[2][1]
    print(
        f"MCP overhead: {(mcp_cpu - base_cpu) * 1000:.2f} ms CPU a call (target < 2 ms), "
        f"{(mcp_wall - base_wall) * 1000:.2f} ms wall; wall ratio {mcp_wall / base_wall:.3f}"
    )
    print(
        f"{writes} confirmed writes through MCP (2 calls each, after {3 * (calls + 1)} reads): "
        f"{write[0] * 1000:.2f} ms wall, {write[1] * 1000:.2f} ms CPU a write; "
        f"token exchanges for them: {write_exchanges} (one session per agent: 0 after its "
        "first sign-in)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    options = parser.parse_args()
    asyncio.run(main(options.calls, options.writes, options.latency_ms))
