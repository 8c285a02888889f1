"""Refresh against the simulator and a fake Hub: bulk reads, page 1 then the other pages at once,
counted; a team's members read as its page of teams comes in; first pages first."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import httpx
import pytest

from sink.errors import StopRun
from sink.hubsim import Simulator
from sink.hubsim.seed import large_seed
from sink.plan.refresh import FIRST, LATER, Wanted, _Slots, refresh
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


class FakeHub:
    """A Hub of ``teams`` teams (two pages of teams), each with one member, 250 members and no
    repositories, behind an ``httpx.MockTransport``: counts reads per URL and reads in flight.
    ``hold_teams_page_2`` keeps page 2 of the teams list unanswered until the members of a team
    on page 1 have been asked for."""

    def __init__(self, teams: int = 150, hold_teams_page_2: bool = False) -> None:
        self.teams = [f"team-{i:03d}" for i in range(teams)]
        self.hold = hold_teams_page_2
        self.asked_team_members = asyncio.Event()
        self.urls: list[str] = []
        self.in_flight = self.most_in_flight = 0
        self.refuse: str | None = None

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url="https://hub.test", transport=httpx.MockTransport(self.handle)
        )

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            for _ in range(3):  # the others get to send meanwhile
                await asyncio.sleep(0)
            return await self.answer(request)
        finally:
            self.in_flight -= 1

    async def answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        page = int(request.url.params.get("page", "1"))
        quota = {"X-RateLimit-Limit": "10000", "X-RateLimit-Remaining": "9000"}
        quota["X-RateLimit-Reset"] = "4102444800"
        if self.refuse and str(request.url).endswith(self.refuse):
            return httpx.Response(403, json={"message": "forbidden by the test"}, headers=quota)
        if path.endswith("/groups"):
            if page == 2 and self.hold:
                await asyncio.wait_for(self.asked_team_members.wait(), 30)
            names = self.teams[(page - 1) * 100 : page * 100]
            rows = [{"id": i, "name": n, "description": ""} for i, n in enumerate(names)]
            return httpx.Response(200, json={"count": len(self.teams), "results": rows})
        if "/groups/" in path:
            self.asked_team_members.set()
            team = path.split("/")[-2]
            return httpx.Response(200, json={"count": 1, "results": [{"username": f"u-{team}"}]})
        if path.endswith("/members"):
            rows = [{"username": f"m{n}", "role": "member"} for n in range(100)]
            return httpx.Response(200, json={"count": 250, "results": rows}, headers=quota)
        if path.endswith("/invites"):
            return httpx.Response(200, json={"data": []}, headers=quota)
        return httpx.Response(404, json={"message": "not found"})


async def _fake_refresh(hub: FakeHub, wanted: Wanted, concurrency: int = 4):  # type: ignore[no-untyped-def]
    async with hub.client() as client:
        return await refresh(HubReader(client), "acme", "acme", wanted, concurrency=concurrency)


def test_a_teams_members_are_read_as_its_page_of_teams_comes_in_not_after_the_list() -> None:
    # Page 2 of the teams is answered only once a team's members have been asked for: a
    # refresh that waited for the whole teams list would never get there.
    hub = FakeHub(hold_teams_page_2=True)
    current = asyncio.run(_fake_refresh(hub, Wanted(teams=True, team_members=hub.teams)))
    assert current.teams is not None and len(current.teams) == 150
    assert current.team_members == {name: [f"u-{name}"] for name in sorted(hub.teams)}
    page_2 = next(i for i, url in enumerate(hub.urls) if "/groups?" in url and "page=2" in url)
    assert any("/groups/team-0" in url for url in hub.urls[:page_2])


def test_every_list_once_pages_concurrently_within_the_budget() -> None:
    hub = FakeHub()
    wanted = Wanted(members=True, teams=True, team_members=[*hub.teams, "not-a-team"])
    current = asyncio.run(_fake_refresh(hub, wanted, concurrency=4))
    assert len(hub.urls) == len(set(hub.urls))  # nothing read twice
    assert current.reads == current.minimum == len(hub.urls) == 3 + 1 + 2 + 150
    assert hub.most_in_flight == 4  # concurrently, never more than the budget
    assert not any("not-a-team" in url for url in hub.urls)  # only teams that exist
    assert all("page_size=100" in url for url in hub.urls if "invites" not in url)
    assert current.first_answer > 0
    assert "first_answer" not in current.data()


@pytest.mark.parametrize("refused", ["/groups/team-007/members?page_size=100&page=1", "page=2"])
def test_a_refused_read_stops_the_others_and_is_raised(refused: str) -> None:
    hub = FakeHub()
    hub.refuse = refused  # a team's members; page 2 of the members and of the teams

    async def run() -> None:
        with pytest.raises(StopRun, match="forbidden by the test"):
            await _fake_refresh(hub, Wanted(members=True, teams=True, team_members=hub.teams))
        assert asyncio.all_tasks() == {asyncio.current_task()}  # none left reading

    asyncio.run(run())
    assert len(hub.urls) < 3 + 1 + 2 + 150


def test_slots_serve_first_pages_before_later_ones_and_skip_the_cancelled() -> None:
    async def run() -> list[str]:
        slots = _Slots(1)
        order: list[str] = []
        await slots.acquire(FIRST)  # held

        async def wait(name: str, priority: int) -> None:
            await slots.acquire(priority)
            order.append(name)
            slots.release()

        later = asyncio.create_task(wait("later", LATER))
        gone = asyncio.create_task(wait("cancelled", FIRST))
        first = asyncio.create_task(wait("first", FIRST))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        slots.release()
        await asyncio.gather(later, first)
        assert slots.free == 1
        return order

    assert asyncio.run(run()) == ["first", "later"]
