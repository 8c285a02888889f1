"""The resolve stage (sink/guard/resolve.py): team ids and organization membership looked up
before rendering, once per organization, against a fake Hub (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest

from sink.config import parse_config
from sink.destination import Destination, bind
from sink.errors import ConfigError, RejectRecord
from sink.guard.resolve import PREVIEW_ID, Resolver, resolver_for
from sink.model import Record
from sink.read.hub import HubReader
from sink.request.templates import load_registry

HUB = "https://hub.docker.com"
T = TypeVar("T")


class FakeHub:
    """acme's teams and members; counts the listings."""

    def __init__(self) -> None:
        self.teams: list[dict[str, Any]] = [
            {"name": "owners", "id": 1000},
            {"name": "Developers", "id": 1001},
        ]
        self.members: list[dict[str, Any]] = [
            {"username": "alice", "email": "alice@example.com", "role": "Owner"},
            {"username": "carol", "email": "carol@example.com", "role": "Member"},
            {"username": "dave", "email": "dave@example.com", "role": "Invitee"},
        ]
        self.reads: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "GET"
        self.reads.append(request.url.path)
        if request.url.path == "/v2/orgs/acme/groups":
            results = self.teams
        elif request.url.path == "/v2/orgs/acme/members":
            assert request.url.params["type"] == "member"
            results = self.members
        else:
            return httpx.Response(404, json={"message": "not found"})
        return httpx.Response(200, json={"count": len(results), "next": None, "results": results})


def destination(tmp_path: Path, template: str, settings: dict[str, Any]) -> Destination:
    config = parse_config(
        {
            "connection": {"identifier": "acme", "secret_env": "SINK_TEST_SECRET"},
            "template": template,
            "settings": settings,
        }
    )
    return bind(config, tmp_path)


def grant(tmp_path: Path) -> Destination:
    return destination(tmp_path, "grant-team-repository", {"namespace": "acme"})


def add_member(tmp_path: Path) -> Destination:
    return destination(tmp_path, "add-team-member", {"org": "acme"})


def with_reader(fake: FakeHub, use: Callable[[HubReader], Awaitable[T]]) -> T:
    async def main() -> T:
        transport = httpx.MockTransport(fake.handle)
        async with httpx.AsyncClient(base_url=HUB, transport=transport) as client:
            return await use(HubReader(client, backoff=0.0))

    return asyncio.run(main())


def test_a_template_without_look_ups_has_no_resolver(tmp_path: Path) -> None:
    repo = destination(tmp_path, "create-repository", {"namespace": "acme"})
    assert resolver_for(repo, None) is None
    manual = bind(
        parse_config(
            {
                "connection": {"identifier": "acme", "secret_env": "SINK_TEST_SECRET"},
                "manual": {"method": "DELETE", "url": "/v2/repositories/acme/{{ record.name }}"},
            }
        ),
        tmp_path,
    )
    assert resolver_for(manual, None) is None


def test_team_names_become_ids_before_rendering_with_one_listing(tmp_path: Path) -> None:
    fake = FakeHub()
    dest = grant(tmp_path)
    rows = [
        {"repository": "api", "team": "Developers", "permission": "write"},
        {"repository": "web", "team": "developers", "permission": "read"},  # case folded
        {"repository": "ops", "team": " owners ", "permission": "admin"},
    ]
    records = [Record(i, row, key=row["repository"]) for i, row in enumerate(rows)]

    async def use(reader: HubReader) -> None:
        resolver = resolver_for(dest, reader)
        assert isinstance(resolver, Resolver) and resolver
        for record in records:
            await resolver.apply(record)

    with_reader(fake, use)
    assert [record.data["group_id"] for record in records] == [1001, 1001, 1000]
    assert fake.reads == ["/v2/orgs/acme/groups"]  # looked up once for the run
    assert "group_id" not in rows[0]  # the record's new values, not the input's dict changed
    request = dest.renderer.render(records[0])
    assert request.url == f"{HUB}/v2/repositories/acme/api/groups"
    assert orjson.loads(request.body or b"") == {"group_id": 1001, "permission": "write"}


def test_a_given_id_or_a_missing_team_is_left_alone_without_a_listing(tmp_path: Path) -> None:
    fake = FakeHub()
    given = Record(0, {"repository": "api", "team": "nope", "group_id": "2002"}, key="api")
    absent = Record(1, {"repository": "web", "team": "", "permission": "read"}, key="web")

    async def use(reader: HubReader) -> None:
        resolver = resolver_for(grant(tmp_path), reader)
        assert resolver is not None
        await resolver.apply(given)
        await resolver.apply(absent)

    with_reader(fake, use)
    assert given.data["group_id"] == "2002" and "group_id" not in absent.data
    assert fake.reads == []


def test_an_unknown_team_rejects_the_record_and_names_the_field(tmp_path: Path) -> None:
    record = Record(0, {"repository": "api", "team": "qa", "permission": "read"}, key="api")

    async def use(reader: HubReader) -> None:
        resolver = resolver_for(grant(tmp_path), reader)
        assert resolver is not None
        await resolver.apply(record)

    with pytest.raises(RejectRecord) as raised:
        with_reader(FakeHub(), use)
    assert raised.value.message == "team 'qa' does not exist in organization acme"
    assert raised.value.field == "team"


def test_members_pass_and_others_are_rejected_before_rendering(tmp_path: Path) -> None:
    fake = FakeHub()
    dest = add_member(tmp_path)
    outcomes: list[str | None] = []

    async def use(reader: HubReader) -> None:
        resolver = resolver_for(dest, reader)
        assert resolver is not None
        for user in ("carol", "ALICE@example.com", "dave", "erin"):
            record = Record(0, {"team": "developers", "username": user}, key=user)
            try:
                await resolver.apply(record)
            except RejectRecord as exc:
                outcomes.append(exc.message)
                assert exc.field == "member"
            else:
                outcomes.append(None)
                assert record.data == {"team": "developers", "username": user}

    with_reader(fake, use)
    assert outcomes[:2] == [None, None]  # by username, or by e-mail address without case
    assert outcomes[2] == (
        "'dave' is not a member of the organization acme, and adding them to the team "
        "'developers' does not invite them: invite them first (bulk invites) and add them to "
        "the team once they have accepted"
    )  # an invitee is not a member yet
    assert outcomes[3] is not None and outcomes[3].startswith("'erin' is not a member")
    assert fake.reads == ["/v2/orgs/acme/members"]


def test_a_preview_fills_ids_with_a_placeholder_and_counts_them(tmp_path: Path) -> None:
    resolver = resolver_for(grant(tmp_path), None)
    assert resolver is not None
    named = Record(0, {"repository": "api", "team": "developers", "permission": "read"})
    given = Record(1, {"repository": "web", "group_id": 7, "permission": "read"})
    resolver.preview(named)
    resolver.preview(given)
    assert named.data["group_id"] == PREVIEW_ID and given.data["group_id"] == 7
    assert resolver.deferred == 1


def test_a_preview_s_resolver_does_no_look_ups(tmp_path: Path) -> None:
    resolver = resolver_for(add_member(tmp_path), None)
    assert resolver is not None
    record = Record(0, {"team": "developers", "username": "erin"})
    resolver.preview(record)  # membership is not checked in a preview
    assert resolver.deferred == 0
    with pytest.raises(RuntimeError, match="can only preview"):
        asyncio.run(resolver.apply(record))


def test_a_look_up_needs_its_organization_set() -> None:
    template = load_registry().get("add-team-member")
    with pytest.raises(ConfigError, match="template add-team-member: resolve needs"):
        Resolver(template, {}, None)
