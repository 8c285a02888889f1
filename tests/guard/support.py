"""Helpers shared by the tests of guard/."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import yaml

from sink.config import PolicyConfig
from sink.destination import open_destination
from sink.guard.check import Guard
from sink.hubsim import Simulator
from sink.model import Request
from sink.read.credentials import Credentials
from sink.read.hub import HubReader
from sink.run import RunOptions, RunSummary, run_async
from tests.seed import OAT

HUB = "https://hub.docker.com"

T = TypeVar("T")


class FakeHub:
    """Owners, teams and invites of a fake Hub; counts the reads."""

    def __init__(self, owners: list[str] | None = None) -> None:
        self.owners: dict[str, list[str]] = {"acme": owners if owners is not None else ["alice"]}
        self.teams = {"acme": [("owners", 1000), ("developers", 1001)]}
        self.invites = {"acme": [("e36eca69", "developers")], "globex": [("f00d", None)]}
        self.reads: list[httpx.Request] = []
        self.status = 200

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.reads.append(request)
        if self.status != 200:
            return httpx.Response(self.status, json={"message": "nope"})
        parts = request.url.path.split("/")
        org = parts[3]
        if parts[4] == "members":
            results: list[dict[str, Any]] = [
                {"username": name, "email": f"{name}@example.com", "role": "Owner"}
                for name in self.owners.get(org, [])
            ]
        elif parts[4] == "groups":
            results = [{"name": name, "id": number} for name, number in self.teams.get(org, [])]
        else:
            data = [{"id": i, "team": team, "org": org} for i, team in self.invites.get(org, [])]
            return httpx.Response(200, json={"data": data})
        return httpx.Response(200, json={"count": len(results), "next": None, "results": results})

    def reads_of(self, what: str) -> list[httpx.Request]:
        return [r for r in self.reads if r.url.path.endswith(what)]


def with_guard(
    fake: FakeHub, use: Callable[[Guard], Awaitable[T]], policy: PolicyConfig | None = None
) -> T:
    async def main() -> T:
        transport = httpx.MockTransport(fake.handle)
        async with httpx.AsyncClient(base_url=HUB, transport=transport) as client:
            return await use(Guard(HubReader(client, backoff=0.0), policy))

    return asyncio.run(main())


def req(method: str, path: str, body: Any = None, keys: tuple[str, ...] = ("k",)) -> Request:
    content = None if body is None else orjson.dumps(body)
    return Request(method, HUB + path, (), content, keys, "manual")


def refusals(
    fake: FakeHub, requests: list[Request], policy: PolicyConfig | None = None
) -> list[str | None]:
    async def use(guard: Guard) -> list[str | None]:
        return [await guard.refusal(request) for request in requests]

    return with_guard(fake, use, policy)


def run(
    hub: Simulator, folder: Path, config: dict[str, Any], rows: list[dict[str, Any]]
) -> RunSummary:
    (folder / "records.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    config = {
        "connection": {"identifier": "acme", "secret_env": "SINK_TEST_SECRET"},
        "input": "records.jsonl",
        "allow_destructive": True,
        **config,
    }
    path = folder / "dest.yaml"
    path.write_text(yaml.safe_dump(config))
    destination = open_destination(path, base_url=hub.url)
    credentials = Credentials(hub.url, "acme", OAT, "oat")
    options = RunOptions(folder / "records.jsonl", yes=True)
    return asyncio.run(run_async(destination, credentials, options))


def writes(hub: Simulator) -> list[tuple[str, str]]:
    return [
        (r["method"], r["path"])
        for r in hub.requests()
        if r["method"] not in ("GET", "HEAD") and "/auth/" not in r["path"]
    ]
