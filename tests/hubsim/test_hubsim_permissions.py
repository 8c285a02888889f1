"""PAT vs OAT, PAT scopes, OAT resource scopes and org roles, through real HTTP."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from sink.hubsim import Simulator

Login = Callable[..., dict[str, str]]
PAT_REFUSED = "token issued from personal access token is not allowed"
OAT_REFUSED = "token issued from organization access token is not allowed"

# (method, path, body) of org-level routes a PAT may not call
ORG_ROUTES = [
    ("GET", "/v2/orgs/acme/members", None),
    ("GET", "/v2/orgs/acme/members/export", None),
    ("PUT", "/v2/orgs/acme/members/bob", {"role": "editor"}),
    ("DELETE", "/v2/orgs/acme/members/carol", None),
    ("GET", "/v2/orgs/acme/groups", None),
    ("POST", "/v2/orgs/acme/groups", {"name": "qa"}),
    ("GET", "/v2/orgs/acme/groups/developers", None),
    ("PATCH", "/v2/orgs/acme/groups/developers", {"description": "x"}),
    ("DELETE", "/v2/orgs/acme/groups/developers", None),
    ("GET", "/v2/orgs/acme/groups/developers/members", None),
    ("POST", "/v2/orgs/acme/groups/developers/members", {"member": "carol"}),
    ("DELETE", "/v2/orgs/acme/groups/developers/members/bob", None),
    ("GET", "/v2/orgs/acme/invites", None),
    ("POST", "/v2/invites/bulk", {"org": "acme", "invitees": ["zed@example.com"]}),
    ("DELETE", "/v2/invites/c2d7e9d7-75aa-4dae-abe0-589316d10ca9", None),
    ("PATCH", "/v2/invites/c2d7e9d7-75aa-4dae-abe0-589316d10ca9/resend", None),
    ("GET", "/v2/orgs/acme/access-tokens", None),
    (
        "POST",
        "/v2/orgs/acme/access-tokens",
        {
            "label": "x",
            "resources": [{"type": "TYPE_ORG", "path": "acme", "scopes": ["scope-member-read"]}],
        },
    ),
    ("GET", "/v2/orgs/acme/access-tokens/c48157fc-3c31-41f9-aa13-2d135a3389e0", None),
    ("GET", "/v2/orgs/acme/settings", None),
    (
        "PUT",
        "/v2/orgs/acme/settings",
        {
            "restricted_images": {
                "enabled": True,
                "allow_official_images": True,
                "allow_verified_publishers": True,
            }
        },
    ),
    ("GET", "/v2/auditlogs/acme", None),
    ("GET", "/v2/auditlogs/acme/actions", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ORG_ROUTES)
def test_pat_is_refused_on_org_routes(
    client: httpx.Client, login: Login, sim: Simulator, method: str, path: str, body: object
) -> None:
    headers = login("alice", "pat")
    before = sim.state()
    response = client.request(method, path, json=body, headers=headers)
    assert response.status_code == 403
    assert response.json()["message"] == PAT_REFUSED
    assert sim.state() == before


@pytest.mark.parametrize(("method", "path", "body"), ORG_ROUTES)
def test_owner_password_may_call_org_routes(
    client: httpx.Client, login: Login, method: str, path: str, body: object
) -> None:
    response = client.request(method, path, json=body, headers=login("alice"))
    assert response.status_code < 300, response.text


def test_repository_group_grant_stays_pat_callable(client: httpx.Client, login: Login) -> None:
    response = client.post(
        "/v2/repositories/acme/web/groups",
        headers=login("alice", "pat"),
        json={"group_id": 1001, "permission": "read"},
    )
    assert response.status_code == 200
    assert response.json() == {"group_name": "developers", "permission": "read", "group_id": 1001}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v2/orgs/acme/access-tokens", None),
        ("GET", "/v2/orgs/acme/settings", None),
        ("GET", "/v2/access-tokens", None),
        ("POST", "/v2/access-tokens", {"token_label": "x", "scopes": ["repo:read"]}),
    ],
)
def test_oat_is_refused_on_user_and_oat_management_routes(
    client: httpx.Client, login: Login, method: str, path: str, body: object
) -> None:
    response = client.request(method, path, json=body, headers=login("acme", "oat"))
    assert response.status_code == 403
    assert response.json()["message"] == OAT_REFUSED


@pytest.mark.parametrize(
    ("who", "kind", "status"),
    [
        ("alice-read", "pat", 403),  # repo:read cannot create
        ("bob", "pat", 403),  # repo:write, but only a member of acme
        ("alice", "pat", 201),  # repo:admin, owner
        ("erin", "password", 201),  # editor
        ("carol", "password", 403),  # member
        ("dave", "password", 403),  # not in acme
        ("acme", "oat", 201),  # scope-repository-create
        ("acme-auditor", "oat", 403),  # no scope-repository-create
    ],
)
def test_who_may_create_an_org_repository(
    client: httpx.Client, login: Login, who: str, kind: str, status: int
) -> None:
    response = client.post(
        "/v2/namespaces/acme/repositories",
        headers=login(who, kind),
        json={"name": "made-by-test", "namespace": "acme"},
    )
    assert response.status_code == status, response.text


def test_pat_scope_hierarchy_on_own_namespace(client: httpx.Client, login: Login) -> None:
    body = {"name": "mine", "namespace": "bob"}
    assert (
        client.post(
            "/v2/namespaces/bob/repositories", json=body, headers=login("bob", "pat")
        ).status_code
        == 201
    )
    # repo:write may not change settings (repo:admin)
    settings = client.patch(
        "/v2/namespaces/bob/repositories/mine/immutabletags",
        headers=login("bob", "pat"),
        json={"immutable_tags": True, "immutable_tags_rules": ["v.*"]},
    )
    assert settings.status_code == 403
    assert "repo:admin" in settings.json()["message"]
    # repo:read may read private repositories, repo:write may not be needed
    assert (
        client.get(
            "/v2/namespaces/alice/repositories/notes", headers=login("alice-read", "pat")
        ).status_code
        == 200
    )
    refused = client.post(
        "/v2/namespaces/alice/repositories",
        json={"name": "nope", "namespace": "alice"},
        headers=login("alice-read", "pat"),
    )
    assert refused.status_code == 403
    assert "repo:write" in refused.json()["message"]


def test_public_read_pat_sees_only_public_repositories(client: httpx.Client, login: Login) -> None:
    created = client.post(
        "/v2/access-tokens",
        headers=login("alice"),
        json={"token_label": "public", "scopes": ["repo:public_read"]},
    )
    secret = created.json()["token"]
    token = client.post("/v2/auth/token", json={"identifier": "alice", "secret": secret})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    listed = client.get("/v2/namespaces/alice/repositories", headers=headers).json()
    assert [r["name"] for r in listed["results"]] == ["hello-world"]
    private = client.get("/v2/namespaces/alice/repositories/notes", headers=headers)
    assert private.status_code == 403
    assert "repo:read" in private.json()["message"]


def test_team_grant_gives_members_access(client: httpx.Client, login: Login) -> None:
    bob = login("bob", "pat")
    assert client.get("/v2/namespaces/acme/repositories/api", headers=bob).json()[
        "permissions"
    ] == {"read": True, "write": True, "admin": False}
    assert client.get("/v2/namespaces/acme/repositories/ops-tools", headers=bob).status_code == 404
    names = {
        r["name"]
        for r in client.get("/v2/namespaces/acme/repositories", headers=bob).json()["results"]
    }
    assert names == {"api", "web"}
    # bob may read api but not administer it
    grant = client.post(
        "/v2/repositories/acme/api/groups",
        headers=bob,
        json={"group_id": 1001, "permission": "admin"},
    )
    assert grant.status_code == 403


def test_oat_without_repository_list_sees_only_public(client: httpx.Client, login: Login) -> None:
    auditor = client.get("/v2/namespaces/acme/repositories", headers=login("acme-auditor", "oat"))
    assert auditor.status_code == 200
    assert {r["name"] for r in auditor.json()["results"]} == {"web"}
    full = client.get("/v2/namespaces/acme/repositories", headers=login("acme", "oat"))
    assert {r["name"] for r in full.json()["results"]} == {"api", "ops-tools", "web"}


def test_oat_org_scopes_are_enforced(client: httpx.Client, login: Login) -> None:
    auditor = login("acme-auditor", "oat")
    assert client.get("/v2/orgs/acme/members", headers=auditor).status_code == 200
    assert client.get("/v2/orgs/acme/groups", headers=auditor).status_code == 200
    assert client.get("/v2/auditlogs/acme", headers=auditor).status_code == 200
    denied = client.post("/v2/orgs/acme/groups", headers=auditor, json={"name": "qa"})
    assert denied.status_code == 403
    assert "scope-group-edit" in denied.json()["message"]
    assert (
        client.put(
            "/v2/orgs/acme/members/bob", headers=auditor, json={"role": "editor"}
        ).status_code
        == 403
    )
    # an OAT acts on its own organization only
    assert client.get("/v2/orgs/globex/members", headers=login("acme", "oat")).status_code == 403


def test_oat_repository_scopes_are_enforced(client: httpx.Client, login: Login) -> None:
    auditor = login("acme-auditor", "oat")
    assert client.get("/v2/namespaces/acme/repositories/api", headers=auditor).status_code == 404
    assert client.get("/v2/namespaces/acme/repositories/web", headers=auditor).status_code == 200
    oat = login("acme", "oat")
    assert client.get("/v2/namespaces/acme/repositories/api/tags", headers=oat).status_code == 200
    assert (
        client.patch(
            "/v2/namespaces/acme/repositories/api/immutabletags",
            headers=oat,
            json={"immutable_tags": False, "immutable_tags_rules": []},
        ).status_code
        == 200
    )
    other_org = client.patch(
        "/v2/namespaces/globex/repositories/site/immutabletags",
        headers=oat,
        json={"immutable_tags": False, "immutable_tags_rules": []},
    )
    assert other_org.status_code == 403


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 200), ("erin", 403), ("bob", 403), ("dave", 403)],
)
def test_only_owners_change_roles(
    client: httpx.Client, login: Login, who: str, status: int
) -> None:
    response = client.put(
        "/v2/orgs/acme/members/carol", headers=login(who), json={"role": "editor"}
    )
    assert response.status_code == status


@pytest.mark.parametrize(("who", "status"), [("bob", 200), ("erin", 200), ("dave", 403)])
def test_members_may_read_teams_but_outsiders_may_not(
    client: httpx.Client, login: Login, who: str, status: int
) -> None:
    assert client.get("/v2/orgs/acme/groups", headers=login(who)).status_code == status
    assert client.get("/v2/orgs/acme/members", headers=login(who)).status_code == status


def test_members_may_not_manage_teams_or_invites(client: httpx.Client, login: Login) -> None:
    bob = login("bob")
    assert client.post("/v2/orgs/acme/groups", headers=bob, json={"name": "qa"}).status_code == 403
    assert client.get("/v2/orgs/acme/invites", headers=bob).status_code == 403
    assert (
        client.post(
            "/v2/invites/bulk", headers=bob, json={"org": "acme", "invitees": ["x@example.com"]}
        ).status_code
        == 403
    )
    assert client.get("/v2/orgs/acme/settings", headers=bob).status_code == 403


def test_the_list_filter_agrees_with_can_see_for_every_caller_and_repository() -> None:
    # The repository list checks visibility with what depends on the caller worked out once
    # (access.lister); it must answer as can_see does, repository by repository.
    from sink.hubsim.access import ANONYMOUS, Principal, can_see, lister
    from sink.hubsim.seed import load_state

    state = load_state(None)
    callers = [ANONYMOUS]
    for user in state.users.values():
        callers.append(Principal("password", user.username, "pw", ("repo:admin",), user=user))
        callers.append(Principal("pat", user.username, "pat", ("repo:public_read",), user=user))
    for org in state.orgs.values():
        callers += [Principal("oat", org.name, "oat", token=t) for t in org.tokens.values()]
    repos = [repo for found in state.repos.values() for repo in found.values()]
    assert any(c.kind == "oat" for c in callers) and any(r.is_private for r in repos)
    for caller in callers:
        visible = lister(state, caller)
        assert [visible(r) for r in repos] == [can_see(state, caller, r) for r in repos]
