"""Look-ups through the simulator: team ids and organization membership, resolved once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from sink.errors import NeedsOrgToken, RejectRecord
from sink.guard.lookups import Membership, TeamIds
from sink.hubsim import Simulator
from sink.read.hub import HubReader
from sink.send.auth import HubAuth, token_url_for
from sink.send.transport import make_client
from tests.seed import ACME_OAT, ALICE_PAT

T = TypeVar("T")


pytestmark = pytest.mark.usefixtures("fresh_hub")


def run(
    hub: Simulator,
    body: Callable[[HubReader], Awaitable[T]],
    secret: str = ACME_OAT,
    identifier: str = "acme",
) -> T:
    async def main() -> T:
        auth = HubAuth(identifier, secret, token_url=token_url_for(hub.url))
        async with make_client(hub.url, auth, concurrency=4) as client:
            return await body(HubReader(client))

    return asyncio.run(main())


def listings(hub: Simulator, path: str) -> int:
    return sum(1 for r in hub.requests() if r["path"] == path and r["method"] == "GET")


def test_team_names_resolve_to_ids_with_one_listing(hub: Simulator) -> None:
    async def body(reader: HubReader) -> list[int]:
        ids = TeamIds(reader, "acme")
        together = await asyncio.gather(*(ids.id_of("developers") for _ in range(5)))
        return [*together, await ids.id_of("owners"), await ids.id_of("Developers")]

    assert run(hub, body) == [1001] * 5 + [1000, 1001]
    assert listings(hub, "/v2/orgs/acme/groups") == 1


def test_an_unknown_team_rejects_the_record(hub: Simulator) -> None:
    async def body(reader: HubReader) -> None:
        ids = TeamIds(reader, "acme")
        for _ in range(2):
            with pytest.raises(RejectRecord) as excinfo:
                await ids.id_of("x")
            assert str(excinfo.value) == "team 'x' does not exist in organization acme"
            assert excinfo.value.field == "team"
        assert await ids.id_of("developers") == 1001

    run(hub, body)
    assert listings(hub, "/v2/orgs/acme/groups") == 1


def test_forget_lists_the_teams_again(hub: Simulator) -> None:
    async def body(reader: HubReader) -> tuple[int, int]:
        ids = TeamIds(reader, "acme")
        await ids.id_of("owners")
        response = await reader.client.post("/v2/orgs/acme/groups", json={"name": "qa"})
        assert response.status_code == 201
        ids.forget()
        return await ids.id_of("qa"), response.json()["id"]

    resolved, created = run(hub, body)
    assert resolved == created
    assert listings(hub, "/v2/orgs/acme/groups") == 2


def test_membership_is_checked_once_and_cached(hub: Simulator) -> None:
    async def body(reader: HubReader) -> list[bool]:
        members = Membership(reader, "acme")
        names = ["bob", "BOB", "bob@example.com", "dave", "frank@example.com", "erin", "zed"]
        return [await members.is_member(name) for name in names]

    assert run(hub, body) == [True, True, True, False, False, True, False]
    assert listings(hub, "/v2/orgs/acme/members") == 1


def test_a_user_outside_the_organization_is_rejected_with_a_reason(hub: Simulator) -> None:
    async def body(reader: HubReader) -> None:
        members = Membership(reader, "acme")
        await members.require("carol", "developers")
        with pytest.raises(RejectRecord) as excinfo:
            await members.require("dave", "developers")
        assert str(excinfo.value) == (
            "'dave' is not a member of the organization acme, and adding them to the team "
            "'developers' does not invite them: invite them first (bulk invites) and add them "
            "to the team once they have accepted"
        )

    run(hub, body)


def test_membership_needs_an_organization_token(hub: Simulator) -> None:
    async def body(reader: HubReader) -> None:
        with pytest.raises(NeedsOrgToken):
            await Membership(reader, "acme").is_member("bob")

    run(hub, body, secret=ALICE_PAT, identifier="alice")
