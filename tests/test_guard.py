"""The last-owner guard, reading the organization's owners from the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
import yaml

import sink.hubsim
from sink.auth import HubAuth, token_url_for
from sink.guard import OwnerGuard
from sink.hub import HubReader
from sink.hubsim import Simulator
from sink.model import Request
from sink.transport import make_client
from tests.seed import OAT

DEFAULT_SEED = Path(sink.hubsim.__file__).with_name("default_seed.yaml")
T = TypeVar("T")


pytestmark = pytest.mark.usefixtures("fresh_hub")


def with_guard(url: str, use: Callable[[OwnerGuard], Awaitable[T]],
               template: str = "remove-member") -> T:
    async def main() -> T:
        auth = HubAuth("acme", OAT, token_url=token_url_for(url))
        async with make_client(url, auth, 2, 10.0) as client:
            guard = OwnerGuard.for_template(template, HubReader(client))
            assert guard is not None
            return await use(guard)

    return asyncio.run(main())


def remove(url: str, username: str, org: str = "acme") -> Request:
    return Request("DELETE", f"{url}/v2/orgs/{org}/members/{username}", (), None, (username,),
                   "remove-member")


def set_role(url: str, username: str, role: str) -> Request:
    return Request("PUT", f"{url}/v2/orgs/acme/members/{username}", (),
                   orjson.dumps({"role": role}), (username,), "update-member-role")


def refusals(url: str, requests: list[Request], template: str = "remove-member") -> list[Any]:
    async def use(guard: OwnerGuard) -> list[Any]:
        return [await guard.refusal(request) for request in requests]

    return with_guard(url, use, template)


def member_reads(hub: Simulator) -> list[dict[str, Any]]:
    return [r for r in hub.requests() if r["method"] == "GET" and r["path"].endswith("/members")]


def test_only_member_removing_templates_are_guarded(hub: Simulator) -> None:
    async def none(guard: OwnerGuard) -> None:
        return None

    for template in ("remove-member", "update-member-role"):
        with_guard(hub.url, none, template)
    assert OwnerGuard.for_template("remove-team-member", HubReader(None)) is None  # type: ignore[arg-type]
    assert OwnerGuard.for_template("delete-team", HubReader(None)) is None  # type: ignore[arg-type]


def test_the_last_owner_is_not_removed_nor_demoted(hub: Simulator) -> None:
    # The default seed: alice is acme's only owner; carol a member.
    removal, demotion, other, team = refusals(hub.url, [
        remove(hub.url, "alice"),
        set_role(hub.url, "Alice", "editor"),  # names are case-insensitive on Hub
        remove(hub.url, "carol"),
        Request("DELETE", f"{hub.url}/v2/orgs/acme/groups/owners/members/alice", (), None,
                ("x",), "remove-team-member"),
    ])
    assert removal == (
        "refusing to remove alice: they are the last owner of organization acme, which would "
        "be left without one; make someone else an owner first"
    )
    assert demotion is not None and demotion.startswith("refusing to demote Alice")
    assert other is None
    assert team is None  # not a member route: not this guard's business
    reads = member_reads(hub)
    assert len(reads) == 1  # the owners are read once per run
    assert "role=owner" in reads[0]["query"]


def test_with_two_owners_the_first_removal_passes_and_the_second_is_refused(
    tmp_path: Path,
) -> None:
    seed: dict[str, Any] = yaml.safe_load(DEFAULT_SEED.read_text())
    acme = next(org for org in seed["orgs"] if org["name"] == "acme")
    acme["members"]["carol"] = "owner"
    with Simulator(seed) as two:
        first, second = refusals(two.url, [remove(two.url, "alice"), remove(two.url, "carol")])
    assert first is None
    assert second is not None and "last owner" in second and "carol" in second


def test_an_owner_promoted_in_the_same_run_counts(hub: Simulator) -> None:
    promote, demote_alice, demote_carol = refusals(hub.url, [
        set_role(hub.url, "carol", "Owner"),
        set_role(hub.url, "alice", "member"),
        set_role(hub.url, "carol", "editor"),
    ], "update-member-role")
    assert promote is None and demote_alice is None
    assert demote_carol is not None and "carol" in demote_carol


def test_when_the_owners_cannot_be_read_hub_is_left_to_refuse(hub: Simulator) -> None:
    # acme's token cannot read globex: the guard cannot tell and does not refuse on a guess.
    [answer] = refusals(hub.url, [remove(hub.url, "dave", org="globex")])
    assert answer is None
