"""The read client through the simulator: pages, list shapes, rate limits, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qs

import httpx
import pytest
import yaml

from sink.auth import HubAuth, token_url_for
from sink.errors import CredentialsError, NeedsOrgToken, RetryLater, StopRun
from sink.hub import HubReader, matches, read_error
from sink.hubsim import Simulator
from sink.hubsim.seed import default_seed_text
from sink.transport import make_client
from tests.seed import ACME_OAT, ALICE_PAT

EVENTS = 50
T = TypeVar("T")


def seed() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(default_seed_text())
    doc["audit_logs"] = [
        {"account": "acme", "action": "repo.push", "name": "acme/api", "actor": "bob",
         "timestamp": f"2025-03-{1 + i // 24:02d}T{i % 24:02d}:00:00.000000Z",
         "data": {"tag": f"v{i}"}}
        for i in range(EVENTS)
    ]
    return doc


@pytest.fixture(scope="module")
def hub() -> Iterator[Simulator]:
    with Simulator(seed()) as simulator:
        yield simulator


pytestmark = pytest.mark.usefixtures("fresh_hub")


@asynccontextmanager
async def reading(hub: Simulator, identifier: str = "acme",
                  secret: str = ACME_OAT) -> AsyncIterator[HubReader]:
    auth = HubAuth(identifier, secret, token_url=token_url_for(hub.url))
    async with make_client(hub.url, auth, concurrency=2) as client:
        yield HubReader(client, backoff=0.01)


def run(hub: Simulator, body: Callable[[HubReader], Awaitable[T]], **who: str) -> T:
    async def main() -> T:
        async with reading(hub, **who) as reader:
            return await body(reader)

    return asyncio.run(main())


async def collect(reader: HubReader, url: str, **options: Any) -> list[dict[str, Any]]:
    return [item async for item in reader.items(url, **options)]


def calls(hub: Simulator, path: str) -> list[dict[str, Any]]:
    return [r for r in hub.requests() if r["path"] == path]


def test_items_follow_next_links_page_by_page(hub: Simulator) -> None:
    found = run(hub, lambda r: collect(r, "/v2/namespaces/acme/repositories", page_size=2))
    assert [repo["name"] for repo in found] == ["api", "ops-tools", "web"]
    pages = calls(hub, "/v2/namespaces/acme/repositories")
    assert [parse_qs(p["query"]).get("page", ["1"]) for p in pages] == [["1"], ["2"]]


def test_page_size_is_capped_at_100_and_limit_stops_early(hub: Simulator) -> None:
    found = run(hub, lambda r: collect(r, "/v2/namespaces/acme/repositories", page_size=500))
    assert len(found) == 3
    assert parse_qs(calls(hub, "/v2/namespaces/acme/repositories")[0]["query"]) == {
        "page_size": ["100"]}
    hub.reset()
    first = run(hub, lambda r: collect(r, "/v2/namespaces/acme/repositories", page_size=1,
                                       limit=1))
    assert [repo["name"] for repo in first] == ["api"]
    assert len(calls(hub, "/v2/namespaces/acme/repositories")) == 1


def test_the_org_token_list_with_total(hub: Simulator) -> None:
    found = run(hub, lambda r: collect(r, f"{hub.url}/v2/orgs/acme/access-tokens", page_size=1),
                identifier="alice", secret="correct-horse-battery")
    assert [t["label"] for t in found] == ["auditor", "sink automation"]
    assert len(calls(hub, "/v2/orgs/acme/access-tokens")) == 2


def test_the_invites_list_is_one_page_of_data(hub: Simulator) -> None:
    found = run(hub, lambda r: collect(r, "/v2/orgs/acme/invites", page_size=1))
    assert [i["invitee"] for i in found] == ["frank@example.com"]
    assert len(calls(hub, "/v2/orgs/acme/invites")) == 1


def test_the_audit_log_is_paged_by_number_until_a_short_page(hub: Simulator) -> None:
    found = run(hub, lambda r: collect(r, "/v2/auditlogs/acme", page_size=20))
    assert len(found) == EVENTS
    assert found[0]["data"] == {"tag": f"v{EVENTS - 1}"}  # newest first
    pages = [parse_qs(c["query"]) for c in calls(hub, "/v2/auditlogs/acme")]
    assert [p.get("page", ["1"]) for p in pages] == [["1"], ["2"], ["3"]]  # 20, 20, 10


def test_the_audit_log_stops_on_an_empty_page(hub: Simulator) -> None:
    found = run(hub, lambda r: collect(r, "/v2/auditlogs/acme", page_size=25))
    assert len(found) == EVENTS
    assert len(calls(hub, "/v2/auditlogs/acme")) == 3  # 25, 25, then an empty page


def test_rate_limits_are_waited_out(hub: Simulator) -> None:
    hub.set_faults({"burst_every": 2, "burst_length": 1, "retry_after": 0})
    found = run(hub, lambda r: collect(r, "/v2/auditlogs/acme", page_size=10))
    assert len(found) == EVENTS
    statuses = [c["status"] for c in calls(hub, "/v2/auditlogs/acme")]
    assert 429 in statuses and statuses[-1] == 200


def test_a_5xx_is_sent_again_then_reported(hub: Simulator) -> None:
    hub.set_faults({"rules": [{"path": "/v2/orgs/acme/groups", "error_rate": 1,
                               "error_statuses": [503]}]})

    async def body(reader: HubReader) -> None:
        with pytest.raises(StopRun, match="HTTP 503"):
            await collect(reader, "/v2/orgs/acme/groups", strict=True)

    run(hub, body)
    assert [c["status"] for c in calls(hub, "/v2/orgs/acme/groups")] == [503, 503, 503]


def test_refused_reads_become_clear_errors(hub: Simulator) -> None:
    async def body(reader: HubReader) -> None:
        with pytest.raises(NeedsOrgToken, match="personal access token is not allowed"):
            await reader.get_json("/v2/orgs/acme/members")

    run(hub, body, identifier="alice", secret=ALICE_PAT)
    request = httpx.Request("GET", "https://hub.example.test/v2/x")
    refused = httpx.Response(401, json={"message": "unauthorized"}, request=request)
    assert isinstance(read_error(refused), CredentialsError)
    missing = httpx.Response(404, json={"message": "object not found"}, request=request)
    assert str(read_error(missing, str(request.url))) == "GET /v2/x: HTTP 404: object not found"


def test_a_next_link_to_another_host_is_refused() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"count": 2, "results": [{"name": "a"}],
                                         "next": "https://evil.example/v2/x?page=2"})

    async def main() -> None:
        async with httpx.AsyncClient(base_url="https://hub.example.test",
                                     transport=httpx.MockTransport(answer)) as client:
            reader = HubReader(client)
            with pytest.raises(RetryLater, match="another host"):
                await collect(reader, "/v2/namespaces/a/repositories")

    asyncio.run(main())


def test_a_dropped_connection_is_retried() -> None:
    attempts: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        if len(attempts) == 1:
            raise httpx.RemoteProtocolError("server disconnected", request=request)
        return httpx.Response(200, json={"results": [{"name": "a"}], "next": None})

    async def main() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url="https://hub.example.test",
                                     transport=httpx.MockTransport(answer)) as client:
            return await collect(HubReader(client, backoff=0.001), "/v2/orgs/a/groups")

    assert asyncio.run(main()) == [{"name": "a"}]
    assert len(attempts) == 2


def test_matches_compares_text_without_case() -> None:
    assert matches({"role": "Owner", "is_private": False}, {"role": "owner",
                                                           "is_private": "false"})
    assert not matches({"role": "Member"}, {"role": "owner"})
