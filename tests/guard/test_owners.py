"""The last-owner guard (sink/guard/owners.py): every way of removing or demoting an owner."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from sink.guard.check import Guard
from sink.guard.owners import owner_change
from sink.hubsim import Simulator
from sink.model import Request
from tests.guard.support import FakeHub, refusals, req, run, with_guard, writes


def remove(user: str, org: str = "acme") -> Request:
    return req("DELETE", f"/v2/orgs/{org}/members/{user}", keys=(user,))


def role(user: str, new: str, method: str = "PUT") -> Request:
    return req(method, f"/v2/orgs/acme/members/{user}", {"role": new}, keys=(user, new))


def out_of_owners(user: str) -> Request:
    return req("DELETE", f"/v2/orgs/acme/groups/owners/members/{user}", keys=(user,))


@pytest.mark.parametrize(
    ("request_", "kind"),
    [
        (remove("alice"), "remove"),
        (role("alice", "editor"), "remove"),
        (role("alice", "member", "PATCH"), "remove"),  # not a spec route: still a demotion
        (req("PUT", "/v2/orgs/acme/members/alice", {}), "remove"),  # no role: fail closed
        (role("carol", "Owner"), "promote"),
        (out_of_owners("alice"), "remove"),
        (req("DELETE", "/v2/ORGS/acme/Groups/Owners/members/alice/"), "remove"),
        (req("POST", "/v2/orgs/acme/groups/owners/members", {"member": "carol"}), "promote"),
        (req("DELETE", "/v2/orgs/acme/groups/owners"), "all"),
        (req("PATCH", "/v2/orgs/acme/groups/owners", {"name": "former-owners"}), "all"),
        (req("PATCH", "/v2/orgs/acme/groups/owners", {"role": "member"}), "all"),
        (req("DELETE", "/v2/orgs/acme/groups/developers/%2e%2e/%2e%2e/members/alice"), "unclear"),
        (req("DELETE", "/v2/orgs/acme/groups/x%2F..%2F..%2Fmembers%2Falice"), "unclear"),
        (
            req("DELETE", "/v2/orgs/acme/groups/developers/members/alice/../../../members/alice"),
            "unclear",
        ),
        (req("PUT", "/v2/scim/2.0/Users/d80f7c79", {"active": False}), "unclear"),
        (req("PUT", "/v2/scim/2.0/Users/d80f7c79", {"name": {"givenName": "A"}}), "unclear"),
    ],
)
def test_owner_affecting_requests_are_recognised_by_method_and_path(
    request_: Request, kind: str
) -> None:
    change = owner_change(request_)
    assert change is not None and change.kind == kind


@pytest.mark.parametrize(
    "request_",
    [
        req("POST", "/v2/namespaces/acme/repositories", {"name": "x", "namespace": "acme"}),
        req("DELETE", "/v2/orgs/acme/groups/developers/members/alice"),
        req("DELETE", "/v2/orgs/acme/groups/developers"),
        req("PATCH", "/v2/orgs/acme/groups/owners", {"description": "the owners"}),
        req("PUT", "/v2/orgs/acme/groups/owners", {"name": "owners", "description": "x"}),
        req("POST", "/v2/invites/bulk", {"org": "acme", "team": "owners", "invitees": ["x"]}),
        req("PUT", "/v2/scim/2.0/Users/d80f7c79", {"active": True}),
        req("GET", "/v2/orgs/acme/members/alice/../../x"),
    ],
)
def test_other_requests_cost_no_read(request_: Request) -> None:
    fake = FakeHub()
    assert owner_change(request_) is None
    assert refusals(fake, [request_]) == [None]
    assert fake.reads == []


def test_every_way_of_removing_the_last_owner_is_refused() -> None:
    fake = FakeHub()
    answers = refusals(
        fake,
        [
            remove("alice"),
            role("Alice", "editor"),  # names are case-insensitive on Hub
            role("alice", "member", "PATCH"),
            out_of_owners("alice"),
            remove("alice@example.com"),  # an owner named by e-mail address
            remove("carol"),
        ],
    )
    assert answers[0] == (
        "refusing to remove alice from organization acme: they are the last owner of "
        "organization acme, which would be left without one; make someone else an owner first"
    )
    assert all(answer is not None and "last owner" in answer for answer in answers[1:5])
    assert answers[5] is None
    [read] = fake.reads  # read once, for every guarded request of the org
    assert read.url.params["role"] == "owner" and read.url.params["page_size"] == "100"


def test_the_owners_team_itself_and_unclear_paths_are_refused_without_a_read() -> None:
    fake = FakeHub(owners=["alice", "carol"])
    answers = refusals(
        fake,
        [
            req("DELETE", "/v2/orgs/acme/groups/owners"),
            req("PUT", "/v2/orgs/acme/groups/Owners", {"name": "admins"}),
            req("DELETE", "/v2/orgs/acme/groups/developers/%2e%2e/%2e%2e/members/alice"),
            req("PUT", "/v2/scim/2.0/Users/d80f7c79", {"active": False}),
        ],
    )
    assert answers[0] is not None and "every owner" in answer_of(answers, 0)
    assert answers[1] is not None and "every owner" in answer_of(answers, 1)
    assert "ambiguous" in answer_of(answers, 2)
    assert "SCIM" in answer_of(answers, 3)
    assert fake.reads == []


def answer_of(answers: list[str | None], at: int) -> str:
    answer = answers[at]
    assert answer is not None
    return answer


def test_with_two_owners_one_removal_in_flight_counts_as_done() -> None:
    fake = FakeHub(owners=["alice", "carol"])

    async def use(guard: Guard) -> list[str | None]:
        first = await guard.refusal(remove("alice"))
        # Not settled yet: alice counts as gone, so carol is the last owner.
        second = await guard.refusal(out_of_owners("carol"))
        guard.settled(remove("alice"), ok=False)  # Hub refused it: alice is back
        fake.reads.clear()
        third = await guard.refusal(out_of_owners("carol"))
        return [first, second, third]

    first, second, third = with_guard(fake, use)
    assert first is None
    assert second is not None and "last owner" in second and "carol" in second
    assert third is None
    assert len(fake.reads_of("/members")) == 1  # a failure may have reached Hub: read again


def test_two_concurrent_removals_of_the_last_two_owners_cannot_both_pass() -> None:
    fake = FakeHub(owners=["alice", "carol"])

    async def use(guard: Guard) -> list[str | None]:
        return list(
            await asyncio.gather(
                guard.refusal(remove("alice")), guard.refusal(role("carol", "editor"))
            )
        )

    answers = with_guard(fake, use)
    assert sorted(answer is None for answer in answers) == [False, True]
    assert len(fake.reads) == 1  # serialized: the second decision used the first one's read


def test_a_promotion_counts_only_once_hub_confirmed_it() -> None:
    fake = FakeHub()

    async def use(guard: Guard) -> list[str | None]:
        promote = role("carol", "owner")
        answers = [await guard.refusal(promote)]
        answers.append(await guard.refusal(remove("alice")))  # carol is not an owner yet
        guard.settled(promote, ok=False)  # the promotion failed
        answers.append(await guard.refusal(remove("alice")))
        promote_again = role("carol", "owner")
        answers.append(await guard.refusal(promote_again))
        fake.owners["acme"].append("carol")  # Hub applied it ...
        guard.settled(promote_again, ok=True)  # ... and said so
        answers.append(await guard.refusal(remove("alice")))
        return answers

    answers = with_guard(fake, use)
    assert answers[0] is None and answers[3] is None
    assert answers[1] is not None and "last owner" in answers[1]
    assert answers[2] is not None and "last owner" in answers[2]
    assert answers[4] is None
    assert len(fake.reads_of("/members")) == 2  # read again after the confirmed promotion


def test_a_confirmed_removal_is_kept_without_a_read() -> None:
    fake = FakeHub(owners=["alice", "carol", "erin"])

    async def use(guard: Guard) -> list[str | None]:
        first = remove("alice")
        answers = [await guard.refusal(first)]
        guard.settled(first, ok=True)
        fake.owners["acme"].remove("alice")
        answers.append(await guard.refusal(remove("carol")))
        answers.append(await guard.refusal(remove("erin")))
        return answers

    assert with_guard(fake, use)[:2] == [None, None]
    assert len(fake.reads) == 1


@pytest.mark.parametrize("status", [403, 500, 401])
def test_when_the_owners_cannot_be_read_the_request_is_refused(status: int) -> None:
    fake = FakeHub()
    fake.status = status
    [answer] = refusals(fake, [remove("carol")])
    assert answer is not None
    assert "cannot be read from Docker Hub" in answer and "scope-member-read" in answer


def test_an_org_hub_lists_without_owners_is_not_guessed_about() -> None:
    [answer] = refusals(FakeHub(owners=[]), [remove("carol")])
    assert answer is not None and "lists no owner" in answer


def rejects(folder: Path) -> list[dict[str, Any]]:
    path = folder / "out" / "dest-rejects.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def owners_of(hub: Simulator, org: str = "acme") -> list[str]:
    acme = next(o for o in hub.state()["orgs"] if o["name"] == org)
    return sorted(user for user, role in acme["members"].items() if role == "owner")


@pytest.mark.parametrize(
    ("config", "rows"),
    [
        (
            {
                "manual": {
                    "method": "DELETE",
                    "url": "/v2/orgs/acme/members/{{ record.username }}",
                },
                "key_field": "username",
            },
            [{"username": "alice"}],
        ),
        (
            {"template": "remove-team-member", "settings": {"org": "acme"}},
            [{"team": "owners", "username": "alice"}],
        ),
        (
            {
                "manual": {
                    "method": "PUT",
                    "url": "/v2/orgs/acme/members/alice",
                    "body": {"role": "{{ record.role }}"},
                },
                "key_field": "role",
            },
            [{"role": "member"}],
        ),
    ],
)
def test_any_config_that_removes_the_last_owner_is_refused_before_hub(
    fresh_hub: Simulator, tmp_path: Path, config: dict[str, Any], rows: list[dict[str, Any]]
) -> None:
    summary = run(fresh_hub, tmp_path, config, rows)
    assert (summary.counts.ok, summary.counts.rejected) == (0, 1)
    [reject] = rejects(tmp_path)
    assert "last owner of organization acme" in reject["_sink_error"]
    assert writes(fresh_hub) == []  # Hub's own refusal was never needed
    assert owners_of(fresh_hub) == ["alice"]


def test_a_failed_promotion_earlier_in_the_file_does_not_count(
    fresh_hub: Simulator, tmp_path: Path
) -> None:
    # zed is no member of acme: Hub refuses the promotion, so alice stays the only owner.
    config = {
        "template": "update-member-role",
        "settings": {"org": "acme"},
        "key_field": "username",
    }
    summary = run(
        fresh_hub,
        tmp_path,
        config,
        [{"username": "zed", "role": "owner"}, {"username": "alice", "role": "member"}],
    )
    assert summary.counts.ok == 0
    errors = {r["username"]: r["_sink_error"] for r in rejects(tmp_path)}
    assert "last owner" in errors["alice"]
    assert ("PUT", "/v2/orgs/acme/members/alice") not in writes(fresh_hub)
    assert owners_of(fresh_hub) == ["alice"]


def test_a_promotion_counts_once_confirmed(fresh_hub: Simulator, tmp_path: Path) -> None:
    config = {
        "manual": {
            "method": "PUT",
            "url": "/v2/orgs/acme/members/{{ record.username }}",
            "body": {"role": "{{ record.role }}"},
        },
        "key_field": "username",
    }
    rows = [{"username": "carol", "role": "owner"}, {"username": "alice", "role": "member"}]
    first = run(fresh_hub, tmp_path, config, rows)
    # Decided while carol's promotion was not confirmed yet: alice is kept, and told why.
    assert (first.counts.ok, first.counts.rejected) == (1, 1)
    [reject] = rejects(tmp_path)
    assert "promotion of carol in this run counts only once" in reject["_sink_error"]
    assert owners_of(fresh_hub) == ["alice", "carol"]
    # Sent again: Hub now lists carol as an owner, so alice may go.
    again = run(fresh_hub, tmp_path, config, rows)
    assert (again.counts.ok, again.counts.rejected) == (1, 0)
    assert owners_of(fresh_hub) == ["carol"]
