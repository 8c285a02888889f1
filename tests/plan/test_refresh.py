"""Refresh against the simulator: bulk reads, page 1 then the other pages at once, counted."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import httpx
import pytest

from sink.hubsim import Simulator
from sink.hubsim.seed import large_seed
from sink.plan.refresh import Wanted, refresh
from sink.read.hub import HubReader
from tests.seed import OAT


@pytest.fixture(scope="module")
def big() -> Iterator[Simulator]:
    seed = large_seed(
        members=250,
        teams=3,
        team_members=5,
        big_team_members=120,
        repositories=230,
        invites=7,
        outsiders=0,
        personal_tokens=0,
        org_tokens=0,
        grants=0,
    )
    with Simulator(seed) as simulator:
        yield simulator


async def _read(hub: Simulator, wanted: Wanted):  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(
        base_url=hub.url, headers={"Authorization": f"Bearer {await _jwt(hub)}"}
    ) as client:
        return await refresh(HubReader(client), "acme", "acme", wanted, concurrency=4)


async def _jwt(hub: Simulator) -> str:
    async with httpx.AsyncClient(base_url=hub.url) as client:
        answer = await client.post("/v2/auth/token", json={"identifier": "acme", "secret": OAT})
        return str(answer.json()["access_token"])


def test_every_list_is_read_at_the_minimum_of_reads(big: Simulator) -> None:
    current = asyncio.run(
        _read(big, Wanted(members=True, teams=True, team_members=["team-0000"], repositories=True))
    )
    assert current.members is not None and current.teams is not None
    assert current.repositories is not None and current.team_members is not None
    members, teams, repos = len(current.members), len(current.teams), len(current.repositories)
    assert members > 250 and repos >= 230  # the default seed's too
    big_team = len(current.team_members["team-0000"])
    expected = (
        math.ceil(members / 100)
        + 1
        + math.ceil(teams / 100)
        + math.ceil(repos / 100)
        + math.ceil(big_team / 100)
    )
    assert current.minimum == expected
    assert current.reads == expected  # nothing read twice
    assert current.invites is not None and len(current.invites) >= 7
    paths = [r for r in big.requests() if r["path"].startswith("/v2/orgs/acme/members")]
    assert all("page_size=100" in r["query"] for r in paths)


def test_only_what_is_wanted_is_read_and_rules_are_read_per_repository(big: Simulator) -> None:
    current = asyncio.run(_read(big, Wanted(repositories=True, immutable_tags=["api", "missing"])))
    assert current.members is None and current.teams is None
    assert current.repositories is not None
    assert current.repositories["api"]["immutable_tags"] == []
    assert "immutable_tags" not in current.repositories["web"]
    assert current.reads == math.ceil(len(current.repositories) / 100) + 1  # not "missing"
