"""Members, teams, invites, settings, audit logs and token management, through real HTTP."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hubsim_pages import walk

from sink.hubsim import Simulator, routes_orgs

Login = Callable[..., dict[str, str]]
INVITE = "c2d7e9d7-75aa-4dae-abe0-589316d10ca9"  # frank@example.com's pending invite to acme


def actions(sim: Simulator) -> list[str]:
    return [e["action"] for e in sim.state()["audit_logs"]]


def org(sim: Simulator, name: str = "acme") -> dict[str, object]:
    return next(o for o in sim.state()["orgs"] if o["name"] == name)


# members
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["alice", "bob", "carol", "erin"]),
        ({"role": "owner"}, ["alice"]),
        ({"role": "editor"}, ["erin"]),
        ({"search": "Builder"}, ["bob"]),
        ({"search": "carol@"}, ["carol"]),
        ({"invites": "true"}, ["alice", "bob", "carol", "erin", ""]),
        ({"type": "invitee"}, [""]),
        ({"type": "member", "invites": "true"}, ["alice", "bob", "carol", "erin"]),
    ],
)
def test_members_list_filters(
    client: httpx.Client, login: Login, params: dict[str, str], expected: list[str]
) -> None:
    response = client.get("/v2/orgs/acme/members", params=params, headers=login("alice"))
    body = response.json()
    assert [m["username"] for m in body["results"]] == expected
    assert body["count"] == len(expected)


def test_members_list_shape_and_pagination(
    sim: Simulator, client: httpx.Client, login: Login
) -> None:
    body = client.get(
        "/v2/orgs/acme/members", params={"page_size": 2, "invites": "true"}, headers=login("alice")
    ).json()
    assert body["count"] == 5
    assert body["next"] == f"{sim.url}/v2/orgs/acme/members?page_size=2&invites=true&page=2"
    alice = body["results"][0]
    assert alice["role"] == "Owner" and alice["groups"] == ["owners"]
    assert len(alice["id"]) == 32 and alice["email"] == "alice@example.com"
    last = client.get(body["next"].replace("page=2", "page=3"), headers=login("alice")).json()
    assert last["results"][0]["role"] == "Invitee"
    assert last["results"][0]["email"] == "frank@example.com"
    assert last["next"] is None
    past = client.get("/v2/orgs/acme/members", params={"page": 9}, headers=login("alice"))
    assert past.status_code == 200 and past.json()["results"] == []


@pytest.mark.parametrize("params", [{"role": "boss"}, {"type": "everyone"}, {"invites": "yes"}])
def test_members_list_rejects_bad_filters(
    client: httpx.Client, login: Login, params: dict[str, str]
) -> None:
    assert (
        client.get("/v2/orgs/acme/members", params=params, headers=login("alice")).status_code
        == 400
    )


def test_members_export_csv(client: httpx.Client, login: Login) -> None:
    response = client.get("/v2/orgs/acme/members/export", headers=login("acme", "oat"))
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment;filename="acme-members-')
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["Username"], r["Type"], r["Permission"]) for r in rows] == [
        ("alice", "User", "Owner"),
        ("bob", "User", "Member"),
        ("carol", "User", "Member"),
        ("erin", "User", "Editor"),
        ("", "Invitee", "Member"),
    ]
    assert rows[1]["Teams"] == "developers"
    assert rows[0]["Date Joined"] == "2021-03-02 09:15:27.481236 +0000 UTC"


def test_role_change_and_last_owner_rules(
    client: httpx.Client, login: Login, sim: Simulator
) -> None:
    alice = login("alice")
    promoted = client.put("/v2/orgs/acme/members/bob", headers=alice, json={"role": "owner"})
    assert promoted.json()["role"] == "Owner"
    assert "owners" in promoted.json()["groups"]
    same = client.put("/v2/orgs/acme/members/bob", headers=alice, json={"role": "owner"})
    assert same.status_code == 200
    assert actions(sim) == ["org.member.role.change"]
    # with two owners alice may step down; then bob is the last owner
    assert (
        client.put(
            "/v2/orgs/acme/members/alice", headers=alice, json={"role": "member"}
        ).status_code
        == 200
    )
    bob = login("bob")
    refused = client.put("/v2/orgs/acme/members/bob", headers=bob, json={"role": "member"})
    assert refused.status_code == 400
    assert "last owner" in refused.json()["message"]
    assert client.delete("/v2/orgs/acme/members/bob", headers=bob).status_code == 400
    assert (
        client.put("/v2/orgs/acme/members/dave", headers=bob, json={"role": "member"}).status_code
        == 404
    )
    assert (
        client.put("/v2/orgs/acme/members/carol", headers=bob, json={"role": "admin"}).status_code
        == 400
    )


def test_remove_member_removes_from_every_team(
    client: httpx.Client, login: Login, sim: Simulator
) -> None:
    response = client.delete("/v2/orgs/acme/members/bob", headers=login("acme", "oat"))
    assert response.status_code == 204
    state_org = org(sim)
    assert "bob" not in state_org["members"]  # type: ignore[operator]
    developers = next(t for t in state_org["teams"] if t["name"] == "developers")  # type: ignore[attr-defined]
    assert developers["members"] == []
    assert actions(sim) == ["org.member.remove"]
    assert client.delete("/v2/orgs/acme/members/bob", headers=login("alice")).status_code == 404


# teams
def test_team_lifecycle(client: httpx.Client, login: Login, sim: Simulator) -> None:
    alice = login("alice")
    created = client.post(
        "/v2/orgs/acme/groups", headers=alice, json={"name": "qa", "description": "testers"}
    )
    assert created.status_code == 201
    team = created.json()
    assert isinstance(team["id"], int) and team["member_count"] == 0
    duplicate = client.post("/v2/orgs/acme/groups", headers=alice, json={"name": "QA"})
    assert duplicate.status_code == 409
    assert "already exists" in duplicate.json()["message"]
    assert client.get("/v2/orgs/acme/groups/qa", headers=alice).json()["description"] == "testers"
    renamed = client.put("/v2/orgs/acme/groups/qa", headers=alice, json={"name": "quality"})
    assert renamed.json() == {**team, "name": "quality", "description": ""}
    assert client.get("/v2/orgs/acme/groups/qa", headers=alice).status_code == 404
    patched = client.patch(
        "/v2/orgs/acme/groups/quality", headers=alice, json={"description": "QA", "role": "editor"}
    )
    assert (patched.json()["description"], patched.json()["role"]) == ("QA", "editor")
    assert (
        client.patch(
            "/v2/orgs/acme/groups/quality", headers=alice, json={"name": "developers"}
        ).status_code
        == 409
    )
    assert (
        client.put(
            "/v2/orgs/acme/groups/quality", headers=alice, json={"description": "no name"}
        ).status_code
        == 400
    )
    listed = client.get("/v2/orgs/acme/groups", headers=alice).json()
    assert [t["name"] for t in listed["results"]] == ["developers", "owners", "quality"]
    assert client.delete("/v2/orgs/acme/groups/quality", headers=alice).status_code == 204
    assert client.delete("/v2/orgs/acme/groups/quality", headers=alice).status_code == 404
    assert actions(sim) == [
        "org.team.create",
        "org.team.update",
        "org.team.update",
        "org.team.delete",
    ]


def test_owners_team_is_protected(client: httpx.Client, login: Login) -> None:
    alice = login("alice")
    assert client.delete("/v2/orgs/acme/groups/owners", headers=alice).status_code == 400
    assert (
        client.patch(
            "/v2/orgs/acme/groups/owners", headers=alice, json={"name": "bosses"}
        ).status_code
        == 400
    )


def test_teams_filtered_by_username_and_search(client: httpx.Client, login: Login) -> None:
    alice = login("alice")
    mine = client.get("/v2/orgs/acme/groups", params={"username": "bob"}, headers=alice).json()
    assert [t["name"] for t in mine["results"]] == ["developers"]
    found = client.get("/v2/orgs/acme/groups", params={"search": "own"}, headers=alice).json()
    assert [t["name"] for t in found["results"]] == ["owners"]


def test_team_members_add_remove_and_silent_cases(
    client: httpx.Client, login: Login, sim: Simulator
) -> None:
    oat = login("acme", "oat")
    path = "/v2/orgs/acme/groups/developers/members"
    added = client.post(path, headers=oat, json={"member": "carol@example.com"})
    assert (added.status_code, added.content) == (200, b"")
    again = client.post(path, headers=oat, json={"member": "carol"})
    assert again.status_code == 200  # already a member: no change, no event
    assert actions(sim) == ["org.team.member.add"]
    assert sim.state()["audit_logs"][0]["name"] == "carol"
    outsider = client.post(path, headers=oat, json={"member": "dave"})
    assert outsider.status_code == 400
    assert "not a member" in outsider.json()["message"]
    assert client.post(path, headers=oat, json={"member": "nobody"}).status_code == 404
    assert client.post(path, headers=oat, json={}).status_code == 400
    listed = client.get(path, headers=login("bob")).json()
    assert [m["username"] for m in listed["results"]] == ["bob", "carol"]
    assert "email" not in listed["results"][0]  # emails are for owners only
    as_owner = client.get(path, params={"search": "carol@"}, headers=login("alice")).json()
    assert [m["email"] for m in as_owner["results"]] == ["carol@example.com"]
    assert client.delete(f"{path}/carol", headers=oat).status_code == 204
    assert client.delete(f"{path}/carol", headers=oat).status_code == 404
    assert actions(sim) == ["org.team.member.add", "org.team.member.remove"]


def test_owners_team_membership_is_the_owner_role(
    client: httpx.Client, login: Login, sim: Simulator
) -> None:
    alice = login("alice")
    path = "/v2/orgs/acme/groups/owners/members"
    assert client.post(path, headers=alice, json={"member": "carol"}).status_code == 200
    assert org(sim)["members"]["carol"] == "owner"  # type: ignore[index]
    assert client.delete(f"{path}/carol", headers=alice).status_code == 204
    assert org(sim)["members"]["carol"] == "member"  # type: ignore[index]
    last = client.delete(f"{path}/alice", headers=alice)
    assert last.status_code == 400


# invites
def test_invites_list_bulk_dry_run_cancel_resend_accept(
    client: httpx.Client, login: Login, sim: Simulator
) -> None:
    alice = login("alice")
    listed = client.get("/v2/orgs/acme/invites", headers=alice).json()
    assert [i["invitee"] for i in listed["data"]] == ["frank@example.com"]
    body = {
        "org": "acme",
        "team": "developers",
        "role": "member",
        "invitees": ["dave", "bob", "not an id!", "frank@example.com", "gina@example.com"],
    }
    dry = client.post("/v2/invites/bulk", headers=alice, json={**body, "dry_run": True})
    assert dry.status_code == 202
    assert [(r["invitee"], r["status"]) for r in dry.json()["invitees"]] == [
        ("dave", "invited"),
        ("bob", "existing_org_member"),
        ("not an id!", "invalid_email_or_docker_id"),
        ("frank@example.com", "already_invited"),
        ("gina@example.com", "invited"),
    ]
    assert len(org(sim)["invites"]) == 1  # type: ignore[arg-type]
    assert actions(sim) == []
    real = client.post("/v2/invites/bulk", headers=alice, json=body).json()["invitees"]
    dave_invite = real[0]["invite"]
    assert dave_invite["inviter_username"] == "alice" and dave_invite["team"] == "developers"
    assert actions(sim) == ["org.member.invite.send", "org.member.invite.send"]
    assert len(client.get("/v2/orgs/acme/invites", headers=alice).json()["data"]) == 3
    assert client.patch(f"/v2/invites/{INVITE}/resend", headers=alice).status_code == 204
    assert client.delete(f"/v2/invites/{INVITE}", headers=alice).status_code == 204
    assert client.delete(f"/v2/invites/{INVITE}", headers=alice).status_code == 404
    accepted = client.post(f"/_sim/invites/{dave_invite['id']}/accept")
    assert accepted.json() == {
        "org": "acme",
        "username": "dave",
        "role": "member",
        "team": "developers",
    }
    assert org(sim)["members"]["dave"] == "member"  # type: ignore[index]
    assert actions(sim)[-2:] == ["org.member.add", "org.team.member.add"]


@pytest.mark.parametrize(
    "body",
    [
        {"org": "acme", "invitees": []},
        {"org": "acme"},
        {"invitees": ["x@example.com"]},
        {"org": "acme", "invitees": ["x@example.com"], "team": "nope"},
        {"org": "acme", "invitees": ["x@example.com"], "role": "king"},
        {"org": "acme", "invitees": "x@example.com"},
    ],
)
def test_bulk_invite_rejects_bad_bodies(
    client: httpx.Client, login: Login, body: dict[str, object]
) -> None:
    response = client.post("/v2/invites/bulk", headers=login("alice"), json=body)
    assert response.status_code == 400


# settings
def test_org_settings_get_and_put(client: httpx.Client, login: Login, sim: Simulator) -> None:
    alice = login("alice")
    assert client.get("/v2/orgs/acme/settings", headers=alice).json() == {
        "restricted_images": {
            "enabled": False,
            "allow_official_images": True,
            "allow_verified_publishers": True,
        }
    }
    new = {"enabled": True, "allow_official_images": False, "allow_verified_publishers": True}
    put = client.put("/v2/orgs/acme/settings", headers=alice, json={"restricted_images": new})
    assert put.json() == {"restricted_images": new}
    assert client.get("/v2/orgs/acme/settings", headers=alice).json()["restricted_images"] == new
    assert actions(sim) == ["org.settings.update"]
    partial = client.put(
        "/v2/orgs/acme/settings", headers=alice, json={"restricted_images": {"enabled": True}}
    )
    assert partial.status_code == 400
    assert client.get("/v2/orgs/nope/settings", headers=alice).status_code == 404


# audit logs
def test_audit_logs_filters_and_actions(client: httpx.Client, login: Login) -> None:
    alice = login("alice")
    for name in ("one", "two"):
        client.post("/v2/orgs/acme/groups", headers=alice, json={"name": name})
    client.post(
        "/v2/namespaces/acme/repositories",
        headers=alice,
        json={"name": "logged", "namespace": "acme"},
    )
    oat = login("acme", "oat")
    logs = client.get("/v2/auditlogs/acme", headers=oat).json()["logs"]
    assert [e["action"] for e in logs] == ["repo.create", "org.team.create", "org.team.create"]
    assert logs[0]["actor"] == "alice" and logs[0]["name"] == "acme/logged"
    only = client.get(
        "/v2/auditlogs/acme", params={"action": "org.team.create", "page_size": 1}, headers=oat
    ).json()["logs"]
    assert [e["data"]["team"] for e in only] == ["two"]
    later = client.get(
        "/v2/auditlogs/acme", params={"from": "2999-01-01T00:00:00Z"}, headers=oat
    ).json()
    assert later == {"logs": []}
    bad = client.get("/v2/auditlogs/acme", params={"from": "yesterday"}, headers=oat)
    assert bad.status_code == 400 and bad.json()["code"] == 3
    catalog = client.get("/v2/auditlogs/acme/actions", headers=oat).json()["actions"]
    assert {a["name"] for a in catalog["org"]["actions"]} >= {"team.create", "member.role.change"}
    denied = client.get("/v2/auditlogs/acme", headers=login("bob"))
    assert denied.status_code == 403 and denied.json()["code"] == 7
    assert client.get("/v2/auditlogs/alice", headers=alice).status_code == 200
    assert client.get("/v2/auditlogs/alice", headers=login("bob")).status_code == 403


# personal access tokens
def test_pat_lifecycle_and_secret_only_on_create(client: httpx.Client, login: Login) -> None:
    alice = login("alice")
    created = client.post(
        "/v2/access-tokens",
        headers=alice,
        json={
            "token_label": "ci",
            "scopes": ["repo:write", "repo:read"],
            "expires_at": "2999-01-01T00:00:00Z",
        },
    )
    assert created.status_code == 201
    pat = created.json()
    assert pat["token"].startswith("dckr_pat_") and len(pat["token"]) == 36
    assert pat["expires_at"] == "2999-01-01T00:00:00Z"
    listed = client.get("/v2/access-tokens", headers=alice).json()
    assert listed["count"] == 3 and listed["active_count"] == 3
    assert {t["token"] for t in listed["results"]} == {""}
    got = client.get(f"/v2/access-tokens/{pat['uuid']}", headers=alice).json()
    assert got["token"] == "" and got["scopes"] == ["repo:write", "repo:read"]
    renamed = client.patch(
        f"/v2/access-tokens/{pat['uuid']}", headers=alice, json={"token_label": "ci-2"}
    )
    assert renamed.json()["token_label"] == "ci-2" and renamed.json()["token"] == ""
    usable = client.post("/v2/auth/token", json={"identifier": "alice", "secret": pat["token"]})
    assert usable.status_code == 200
    # bob cannot see alice's tokens
    assert client.get(f"/v2/access-tokens/{pat['uuid']}", headers=login("bob")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"token_label": "x", "scopes": ["repo:everything"]},
        {"token_label": "", "scopes": []},
        {"scopes": ["repo:read"]},
        {"token_label": "x", "scopes": []},
        {"token_label": "x", "scopes": ["repo:read"], "expires_at": "2001-01-01T00:00:00Z"},
        {"token_label": "x", "scopes": ["repo:read"], "expires_at": "next week"},
    ],
)
def test_pat_create_rejects_bad_bodies(
    client: httpx.Client, login: Login, body: dict[str, object]
) -> None:
    response = client.post("/v2/access-tokens", headers=login("alice"), json=body)
    assert response.status_code == 400
    error = response.json()
    assert error["fields"] and error["text"]  # ValueError shape


def test_pat_cannot_mint_a_wider_pat(client: httpx.Client, login: Login) -> None:
    bob = login("bob", "pat")
    assert (
        client.post(
            "/v2/access-tokens", headers=bob, json={"token_label": "x", "scopes": ["repo:admin"]}
        ).status_code
        == 403
    )
    assert (
        client.post(
            "/v2/access-tokens", headers=bob, json={"token_label": "x", "scopes": ["repo:read"]}
        ).status_code
        == 201
    )


# organization access tokens
def test_oat_lifecycle(client: httpx.Client, login: Login, sim: Simulator) -> None:
    alice = login("alice")
    body = {
        "label": "deployer",
        "description": "pushes images",
        "resources": [
            {"type": "TYPE_REPO", "path": "acme/api", "scopes": ["scope-image-push"]},
            {"type": "TYPE_ORG", "path": "acme", "scopes": ["scope-group-read"]},
        ],
    }
    created = client.post("/v2/orgs/acme/access-tokens", headers=alice, json=body)
    assert created.status_code == 201
    oat = created.json()
    assert oat["token"].startswith("dckr_oat_") and oat["resources"] == body["resources"]
    listed = client.get("/v2/orgs/acme/access-tokens", headers=alice).json()
    assert listed["total"] == 3 and "count" not in listed
    assert all("token" not in t and "resources" not in t for t in listed["results"])
    path = f"/v2/orgs/acme/access-tokens/{oat['id']}"
    got = client.get(path, headers=alice).json()
    assert "token" not in got and got["resources"] == body["resources"]
    patched = client.patch(path, headers=alice, json={"is_active": False, "label": "old"})
    assert (patched.json()["is_active"], patched.json()["label"]) == (False, "old")
    refused = client.post("/v2/auth/token", json={"identifier": "acme", "secret": oat["token"]})
    assert refused.status_code == 401
    assert client.delete(path, headers=alice).status_code == 204
    assert client.get(path, headers=alice).status_code == 404
    assert actions(sim) == [
        "org.access_token.create",
        "org.access_token.update",
        "org.access_token.delete",
    ]


@pytest.mark.parametrize(
    "resources",
    [
        [],
        [{"type": "TYPE_REPO", "path": "acme/missing", "scopes": ["scope-image-pull"]}],
        [{"type": "TYPE_REPO", "path": "globex/*", "scopes": ["scope-image-pull"]}],
        [{"type": "TYPE_ORG", "path": "acme", "scopes": ["scope-image-pull"]}],
        [{"type": "TYPE_USER", "path": "acme", "scopes": ["scope-member-read"]}],
        [{"type": "TYPE_ORG", "path": "acme"}],
    ],
)
def test_oat_create_rejects_bad_resources(
    client: httpx.Client, login: Login, resources: list[object]
) -> None:
    response = client.post(
        "/v2/orgs/acme/access-tokens",
        headers=login("alice"),
        json={"label": "x", "resources": resources},
    )
    assert response.status_code == 400
    assert response.json()["fields"]


def test_oat_revoked_while_in_use(client: httpx.Client, login: Login) -> None:
    oat = login("acme", "oat")
    assert client.get("/v2/orgs/acme/members", headers=oat).status_code == 200
    client.delete(
        "/v2/orgs/acme/access-tokens/c48157fc-3c31-41f9-aa13-2d135a3389e0", headers=login("alice")
    )
    assert client.get("/v2/orgs/acme/members", headers=oat).status_code == 401


# the reads and writes of plan/apply, on a generated state where every list spans pages
def test_page_walk_of_members_invitees_and_filters(
    big_client: httpx.Client, big_login: Login
) -> None:
    oat = big_login("acme", "oat")
    path = "/v2/orgs/acme/members"
    members, pages = walk(big_client, path, oat)
    assert len(pages) == 5 and len(members) == 454
    names = [m["username"] for m in members]
    assert names == sorted(names) and len(set(names)) == 454  # stable order, no repeats
    assert {m["role"] for m in members} == {"Owner", "Editor", "Member"}
    everyone, _ = walk(big_client, path, oat, params={"invites": "true"})
    invitees = [m for m in everyone if m["role"] == "Invitee"]
    assert len(everyone) == 454 + 131 and len(invitees) == 131
    assert everyone[:454] == members  # members first, then the pending invitees
    only, _ = walk(big_client, path, oat, params={"type": "invitee"})
    assert only == invitees
    assert {m["username"] for m in invitees if m["username"]} >= {"guest00000", "guest00001"}
    owners, _ = walk(big_client, path, oat, params={"role": "owner"})
    assert [m["username"] for m in owners] == ["alice", "user00000", "user00001"]
    found, _ = walk(big_client, path, oat, params={"search": "user0012"})
    assert [m["username"] for m in found] == [f"user0012{i}" for i in range(10)]
    team0 = next(m for m in members if m["username"] in _team_members(big_client, oat))
    assert "team-0000" in team0["groups"]


def _team_members(client: httpx.Client, headers: dict[str, str]) -> set[str]:
    found, _ = walk(client, "/v2/orgs/acme/groups/team-0000/members", headers)
    return {m["username"] for m in found}


def test_page_walk_of_teams_and_team_members(
    big: Simulator, big_client: httpx.Client, big_login: Login
) -> None:
    oat = big_login("acme", "oat")
    teams, pages = walk(big_client, "/v2/orgs/acme/groups", oat)
    assert len(pages) == 3 and len(teams) == 232
    state = org(big)
    seeded = {t["name"]: t for t in state["teams"]}  # type: ignore[attr-defined]
    for team in teams:
        assert team["description"] == seeded[team["name"]]["description"]
        assert team["member_count"] == len(seeded[team["name"]]["members"])
    assert next(t for t in teams if t["name"] == "team-0007")["description"] == "Generated team 7"
    members, pages = walk(big_client, "/v2/orgs/acme/groups/team-0000/members", oat)
    assert len(pages) == 2 and len(members) == 150
    assert [m["username"] for m in members] == sorted(seeded["team-0000"]["members"])
    assert all("email" in m for m in members)  # an OAT reads e-mails, as owners do
    over = big_client.get(
        "/v2/orgs/acme/groups/team-0000/members", params={"page_size": 500}, headers=oat
    ).json()
    assert len(over["results"]) == 100  # page_size above 100 is lowered to 100


def test_invites_list_is_not_paginated(big_client: httpx.Client, big_login: Login) -> None:
    body = big_client.get(
        "/v2/orgs/acme/invites", params={"page_size": 10}, headers=big_login("acme", "oat")
    ).json()
    assert set(body) == {"data"} and len(body["data"]) == 131


def test_page_walk_of_personal_and_org_access_tokens(
    big_client: httpx.Client, big_login: Login
) -> None:
    alice = big_login("alice")
    pats, pages = walk(big_client, "/v2/access-tokens", alice)
    assert len(pages) == 2 and len(pats) == 112
    assert pages[0]["active_count"] == sum(1 for p in pats if p["is_active"]) < 112
    assert all(p["token"] == "" and p["token_label"] for p in pats)  # metadata, no secret
    oats, pages = walk(big_client, "/v2/orgs/acme/access-tokens", alice, count_key="total")
    assert len(pages) == 2 and len(oats) == 107
    assert {o["is_active"] for o in oats} == {True, False}
    assert all("resources" not in o and "token" not in o for o in oats)  # as the spec's list
    first = next(o for o in oats if o["label"] == "generated org token 0000")
    one = big_client.get(f"/v2/orgs/acme/access-tokens/{first['id']}", headers=alice).json()
    assert one["resources"][0] == {
        "type": "TYPE_ORG",
        "path": "acme",
        "scopes": ["scope-member-read"],
    }


def test_role_change_is_in_place(
    big: Simulator, big_client: httpx.Client, big_login: Login
) -> None:
    oat = big_login("acme", "oat")
    listed = walk(big_client, "/v2/orgs/acme/members", oat, params={"role": "member"})[0]
    teams = next(m for m in listed if len(m["groups"]) > 1)
    username = teams["username"]
    changed = big_client.put(
        f"/v2/orgs/acme/members/{username}", json={"role": "editor"}, headers=oat
    )
    assert changed.status_code == 200
    assert changed.json()["role"] == "Editor" and changed.json()["groups"] == teams["groups"]
    assert actions(big) == ["org.member.role.change"]  # no remove, no invite
    assert org(big)["members"][username] == "editor"  # type: ignore[index]
    again = big_client.put(
        f"/v2/orgs/acme/members/{username}", json={"role": "editor"}, headers=oat
    )
    assert again.status_code == 200 and actions(big) == ["org.member.role.change"]
    assert (
        big_client.put(
            "/v2/orgs/acme/members/guest00000", json={"role": "editor"}, headers=oat
        ).status_code
        == 404
    )  # a pending invitee is not a member yet


def test_bulk_invite_batch_skips_members_and_pending_invites(
    big: Simulator, big_client: httpx.Client, big_login: Login
) -> None:
    oat = big_login("acme", "oat")
    invitees = [
        "user00005",  # a member
        "user00006@example.com",  # a member, by e-mail
        "guest00000",  # invited already by Docker ID
        "guest00000@example.com",  # the same person by e-mail: still pending
        "invitee00001@example.org",  # invited already by e-mail
        *[f"guest{i:05d}" for i in range(66, 70)],  # not invited yet
        *[f"new{i:03d}@example.net" for i in range(91)],  # new e-mail addresses
    ]
    assert len(invitees) == 100
    answer = big_client.post(
        "/v2/invites/bulk",
        json={"org": "acme", "invitees": invitees, "role": "member"},
        headers=oat,
    )
    assert answer.status_code == 202
    statuses = {r["invitee"]: r["status"] for r in answer.json()["invitees"]}
    assert statuses["user00005"] == statuses["user00006@example.com"] == "existing_org_member"
    assert statuses["guest00000"] == statuses["guest00000@example.com"] == "already_invited"
    assert statuses["invitee00001@example.org"] == "already_invited"
    assert [statuses[f"guest{i:05d}"] for i in range(66, 70)] == ["invited"] * 4
    assert list(statuses.values()).count("invited") == 95
    assert len(org(big)["invites"]) == 131 + 95  # type: ignore[arg-type]
    assert actions(big).count("org.member.invite.send") == 95
    again = big_client.post(
        "/v2/invites/bulk", json={"org": "acme", "invitees": invitees}, headers=oat
    ).json()["invitees"]
    assert "invited" not in {r["status"] for r in again}  # never a second invite
    assert len(org(big)["invites"]) == 131 + 95  # type: ignore[arg-type]


def test_adding_a_non_member_to_a_team_is_refused(
    big: Simulator, big_client: httpx.Client, big_login: Login
) -> None:
    oat = big_login("acme", "oat")
    path = "/v2/orgs/acme/groups/team-0001/members"
    for who in ("guest00050", "guest00000", "guest00000@example.com"):  # outsider; invitee
        refused = big_client.post(path, json={"member": who}, headers=oat)
        assert refused.status_code == 400, who
        assert "not a member of the organization" in refused.json()["message"]
    assert actions(big) == []
    invite = next(
        i
        for i in org(big)["invites"]
        if i["invitee"] == "guest00000"  # type: ignore[attr-defined]
    )
    big_client.post(f"/_sim/invites/{invite['id']}/accept")
    assert big_client.post(path, json={"member": "guest00000"}, headers=oat).status_code == 200


def test_a_members_page_renders_only_its_own_rows(
    big_client: httpx.Client, big_login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered: list[str] = []
    real = routes_orgs.org_member

    def counting(org: Any, user: Any, groups: Any = None) -> dict[str, Any]:
        rendered.append(user.username)
        return real(org, user, groups)

    monkeypatch.setattr(routes_orgs, "org_member", counting)
    page = big_client.get(
        "/v2/orgs/acme/members", params={"page": 3, "page_size": 100}, headers=big_login("alice")
    ).json()
    assert rendered == [m["username"] for m in page["results"]] and len(rendered) == 100


def test_an_org_token_patch_that_changes_nothing_logs_nothing(
    client: httpx.Client, login: Login, sim: Simulator
) -> None:
    alice = login("alice")
    token = client.get("/v2/orgs/acme/access-tokens", headers=alice).json()["results"][0]
    path = f"/v2/orgs/acme/access-tokens/{token['id']}"
    assert client.patch(path, json={"is_active": True}, headers=alice).status_code == 200
    assert actions(sim) == []
    assert client.patch(path, json={"is_active": False}, headers=alice).status_code == 200
    assert actions(sim) == ["org.access_token.update"]
