"""The send-time guard: the last owner, and the names only Hub knows, for every request.

Unit tests read a fake Hub (httpx.MockTransport); the end-to-end ones run through the simulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import yaml

from sink.config import PolicyConfig
from sink.destination import open_destination
from sink.guard.check import Guard
from sink.guard.owners import OwnerGuard
from sink.hubsim import Simulator
from sink.read.credentials import Credentials
from sink.read.hub import HubReader
from tests.guard.support import FakeHub, refusals, req, writes
from tests.seed import OAT

GRANT = req("POST", "/v2/repositories/acme/api/groups", {"group_id": 1000, "permission": "admin"})


def test_a_team_id_is_named_by_hub_for_the_policy() -> None:
    fake = FakeHub()
    policy = PolicyConfig(teams=["developers"])
    developers = req(
        "POST", "/v2/repositories/acme/api/groups", {"group_id": 1001, "permission": "write"}
    )
    unknown = req(
        "POST", "/v2/repositories/acme/api/groups", {"group_id": 4242, "permission": "write"}
    )
    owners, ok, missing = refusals(fake, [GRANT, developers, unknown], policy)
    assert owners == "policy does not allow team 'owners' (allowed: developers)"
    assert ok is None
    assert missing is not None and "team id '4242'" in missing
    assert len(fake.reads_of("/groups")) == 1
    # Without a team rule, nothing is read.
    fake.reads.clear()
    assert refusals(fake, [GRANT], PolicyConfig(repositories=["acme/*"])) == [None]
    assert fake.reads == []


def test_a_team_id_that_cannot_be_looked_up_is_refused() -> None:
    fake = FakeHub()
    fake.status = 500
    [answer] = refusals(fake, [GRANT], PolicyConfig(teams=["developers"]))
    assert answer is not None and "team id '1000'" in answer


def test_an_invite_id_is_named_by_hub_for_the_policy() -> None:
    fake = FakeHub()
    policy = PolicyConfig(organizations=["acme", "glob*"], teams=["qa"])
    cancel = req("DELETE", "/v2/invites/e36eca69")
    other = req("PATCH", "/v2/invites/f00d/resend")
    answers = refusals(fake, [cancel, other], policy)
    assert answers[0] == "policy does not allow team 'developers' (allowed: qa)"
    # globex matches glob* but a glob names no list to search: it cannot be told, refused.
    assert answers[1] is not None and "invite 'f00d'" in answers[1]
    assert [r.url.path for r in fake.reads] == ["/v2/orgs/acme/invites"]
    assert refusals(FakeHub(), [cancel], PolicyConfig(organizations=["acme"])) == [None]


def test_the_guard_is_one_object_for_every_destination() -> None:
    # No template id decides whether the guard is there: it is built for every run.
    guard = Guard(HubReader(httpx.AsyncClient()), None)
    assert isinstance(guard.owners, OwnerGuard)


def test_a_test_send_is_held_to_the_same_guard(fresh_hub: Simulator, tmp_path: Path) -> None:
    from sink.model import Record
    from sink.pipeline import test_request
    from sink.run import send_one_async

    config = {
        "connection": {"identifier": "acme", "secret_env": "SINK_TEST_SECRET"},
        "template": "remove-member",
        "settings": {"org": "acme"},
        "allow_destructive": True,
    }
    path = tmp_path / "dest.yaml"
    path.write_text(yaml.safe_dump(config))
    destination = open_destination(path, base_url=fresh_hub.url)
    request, records = test_request(destination, Record(0, {"username": "alice"}, "alice"), None)
    credentials = Credentials(fresh_hub.url, "acme", OAT, "oat")
    result = asyncio.run(send_one_async(destination, credentials, (request, records)))
    assert result.outcome is None and result.rejected is not None  # refused before sending
    assert "last owner of organization acme" in result.rejected.error
    assert writes(fresh_hub) == []
