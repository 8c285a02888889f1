"""Repositories, tags, immutable tags and repository groups, through real HTTP."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from hubsim_pages import walk

from sink.hubsim import Simulator

Login = Callable[..., dict[str, str]]


def audit_actions(sim: Simulator) -> list[tuple[str, str]]:
    return [(e["action"], e["name"]) for e in sim.state()["audit_logs"]]


def test_create_repository_answers_repository_info_and_logs_it(
    client: httpx.Client, login: Login, sim: Simulator
) -> None:
    response = client.post(
        "/v2/namespaces/acme/repositories",
        headers=login("alice", "pat"),
        json={
            "name": "build-cache",
            "namespace": "acme",
            "description": "cache",
            "full_description": "# cache",
            "registry": "docker.io",
            "is_private": True,
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["namespace"], body["name"], body["is_private"]) == ("acme", "build-cache", True)
    assert body["immutable_tags_settings"] == {"enabled": False, "rules": []}
    assert body["permissions"] == {"read": True, "write": True, "admin": True}
    assert audit_actions(sim) == [("repo.create", "acme/build-cache")]
    got = client.get("/v2/namespaces/acme/repositories/build-cache", headers=login("alice"))
    assert got.json()["description"] == "cache"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "A-Upper", "namespace": "acme"}, "name"),
        ({"name": "x", "namespace": "acme"}, "name"),
        ({"name": "ends-", "namespace": "acme"}, "name"),
        ({"namespace": "acme"}, "name"),
        ({"name": "ok-name"}, "namespace"),
        ({"name": "ok-name", "namespace": "acme", "description": "d" * 101}, "description"),
        ({"name": "ok-name", "namespace": "acme", "is_private": "true"}, "is_private"),
        ({"name": "ok-name", "namespace": "acme", "description": None}, "description"),
        ({"name": "ok-name", "namespace": "alice"}, "namespace"),
    ],
)
def test_create_repository_rejects_bad_bodies(
    client: httpx.Client, login: Login, sim: Simulator, body: dict[str, object], field: str
) -> None:
    headers = login("alice")
    response = client.post("/v2/namespaces/acme/repositories", json=body, headers=headers)
    assert response.status_code == 400
    error = response.json()
    assert field in error["errinfo"]["fields"]
    assert error["message"] == error["detail"]
    assert sim.state()["audit_logs"] == []


def test_create_repository_rejects_non_json(client: httpx.Client, login: Login) -> None:
    json_type = {**login("alice"), "Content-Type": "application/json"}
    response = client.post("/v2/namespaces/acme/repositories", content=b"name=x", headers=json_type)
    assert response.status_code == 400
    assert "JSON" in response.json()["message"]
    # Without the JSON content type, a strict Hub refuses the body before reading it.
    response = client.post(
        "/v2/namespaces/acme/repositories", content=b"name=x", headers=login("alice")
    )
    assert response.status_code == 415


def test_duplicate_repository_is_409_already_exists(
    client: httpx.Client, login: Login, sim: Simulator
) -> None:
    headers = login("alice")
    response = client.post(
        "/v2/namespaces/acme/repositories",
        headers=headers,
        json={"name": "api", "namespace": "acme"},
    )
    assert response.status_code == 409
    assert "already exists" in response.json()["message"]
    assert sim.state()["audit_logs"] == []


def test_unknown_namespace_is_404(client: httpx.Client, login: Login) -> None:
    response = client.post(
        "/v2/namespaces/nobody/repositories",
        headers=login("alice"),
        json={"name": "x1", "namespace": "nobody"},
    )
    assert response.status_code == 404
    assert client.get("/v2/namespaces/nobody/repositories").status_code == 404


def test_trailing_slash_is_accepted(client: httpx.Client, login: Login) -> None:
    headers = login("alice")
    assert client.get("/v2/namespaces/acme/repositories/", headers=headers).status_code == 200
    created = client.post(
        "/v2/namespaces/acme/repositories/",
        headers=headers,
        json={"name": "slashed", "namespace": "acme"},
    )
    assert created.status_code == 201


def test_head_checks_existence_without_body(client: httpx.Client, login: Login) -> None:
    headers = login("alice")
    found = client.head("/v2/namespaces/acme/repositories/api", headers=headers)
    assert (found.status_code, found.content) == (200, b"")
    assert client.head("/v2/namespaces/acme/repositories/nope", headers=headers).status_code == 404


def _fill(client: httpx.Client, headers: dict[str, str], count: int) -> None:
    for i in range(count):
        assert (
            client.post(
                "/v2/namespaces/alice/repositories",
                headers=headers,
                json={"name": f"bulk-{i:02d}", "namespace": "alice"},
            ).status_code
            == 201
        )


def test_repository_list_paginates_with_absolute_urls(
    sim: Simulator, client: httpx.Client, login: Login
) -> None:
    headers = login("alice")
    _fill(client, headers, 23)  # + hello-world + notes = 25
    first = client.get(
        "/v2/namespaces/alice/repositories",
        params={"page_size": 10, "name": "bulk"},
        headers=headers,
    ).json()
    assert first["count"] == 23
    assert first["previous"] is None
    assert first["next"] == (
        f"{sim.url}/v2/namespaces/alice/repositories?page_size=10&name=bulk&page=2"
    )
    seen = [r["name"] for r in first["results"]]
    url = first["next"]
    while url:
        page = client.get(url, headers=headers).json()
        assert page["previous"].startswith(sim.url)
        seen += [r["name"] for r in page["results"]]
        url = page["next"]
    assert seen == [f"bulk-{i:02d}" for i in range(23)]
    past = client.get(
        "/v2/namespaces/alice/repositories",
        params={"page": 4, "page_size": 10, "name": "bulk"},
        headers=headers,
    )
    assert past.status_code == 404
    empty_first = client.get(
        "/v2/namespaces/alice/repositories", params={"name": "zzz"}, headers=headers
    )
    assert empty_first.json() == {"count": 0, "next": None, "previous": None, "results": []}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"ordering": "stars"}, "ordering"),
        ({"page_size": 101}, "page_size"),
        ({"page": 0}, "page"),
        ({"page_size": "ten"}, "page_size"),
    ],
)
def test_repository_list_rejects_bad_parameters(
    client: httpx.Client, params: dict[str, object], field: str
) -> None:
    response = client.get("/v2/namespaces/acme/repositories", params=params)
    assert response.status_code == 400
    body = response.json()
    assert field in body["fields"]  # ValueError-shaped, as the spec's example
    assert body["text"] and body["message"]


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("name", ["api", "ops-tools", "web"]),
        ("-name", ["web", "ops-tools", "api"]),
        ("pull_count", ["ops-tools", "web", "api"]),
        ("-pull_count", ["api", "web", "ops-tools"]),
        ("-last_updated", ["web", "api", "ops-tools"]),
    ],
)
def test_repository_list_ordering(
    client: httpx.Client, login: Login, ordering: str, expected: list[str]
) -> None:
    response = client.get(
        "/v2/namespaces/acme/repositories", params={"ordering": ordering}, headers=login("alice")
    )
    assert [r["name"] for r in response.json()["results"]] == expected


def test_tags_list_get_and_head(sim: Simulator, client: httpx.Client, login: Login) -> None:
    headers = login("bob", "pat")
    listed = client.get(
        "/v2/namespaces/acme/repositories/api/tags", params={"page_size": 2}, headers=headers
    ).json()
    assert listed["count"] == 3
    assert [t["name"] for t in listed["results"]] == ["latest", "v1.1.0"]
    assert listed["next"] == (
        f"{sim.url}/v2/namespaces/acme/repositories/api/tags?page_size=2&page=2"
    )
    tag = client.get("/v2/namespaces/acme/repositories/api/tags/v1.0.0", headers=headers).json()
    assert tag["name"] == "v1.0.0" and tag["v2"] is True and tag["tag_status"] == "active"
    assert tag["images"][0]["digest"].startswith("sha256:")
    assert (
        client.head("/v2/namespaces/acme/repositories/api/tags/v1.0.0", headers=headers).status_code
        == 200
    )
    assert (
        client.head("/v2/namespaces/acme/repositories/api/tags/v9", headers=headers).status_code
        == 404
    )
    assert (
        client.head("/v2/namespaces/acme/repositories/api/tags", headers=headers).status_code == 200
    )
    assert (
        client.head(
            "/v2/namespaces/acme/repositories/ops-tools/tags", headers=login("alice")
        ).status_code
        == 404
    )
    assert (
        client.get(
            "/v2/namespaces/acme/repositories/api/tags",
            params={"page": 3, "page_size": 2},
            headers=headers,
        ).status_code
        == 404
    )
    # public tags are readable without a token
    assert client.get("/v2/namespaces/acme/repositories/web/tags").status_code == 200


def test_immutable_tags_update_and_verify(
    client: httpx.Client, login: Login, sim: Simulator
) -> None:
    headers = login("alice", "pat")
    path = "/v2/namespaces/acme/repositories/api/immutabletags"
    updated = client.patch(
        path, headers=headers, json={"immutable_tags": True, "immutable_tags_rules": ["v.*"]}
    )
    assert updated.status_code == 200
    assert updated.json()["immutable_tags_settings"] == {"enabled": True, "rules": ["v.*"]}
    assert audit_actions(sim) == [("repo.immutable.tags.updated", "acme/api")]
    # the same settings again change nothing and log nothing
    client.patch(
        path, headers=headers, json={"immutable_tags": True, "immutable_tags_rules": ["v.*"]}
    )
    assert len(audit_actions(sim)) == 1
    verified = client.post(path + "/verify", headers=headers, json={"regex": r"v1\..*"})
    assert verified.json() == {"tags": ["v1.0.0", "v1.1.0"]}


@pytest.mark.parametrize(
    ("suffix", "body"),
    [
        ("", {"immutable_tags": True, "immutable_tags_rules": ["v(.*"]}),
        ("", {"immutable_tags": True, "immutable_tags_rules": []}),
        ("", {"immutable_tags": "yes", "immutable_tags_rules": []}),
        ("", {"immutable_tags": True}),
        ("/verify", {"regex": "a,b"}),
        ("/verify", {"regex": "(["}),
        ("/verify", {}),
    ],
)
def test_immutable_tags_reject_bad_bodies(
    client: httpx.Client, login: Login, suffix: str, body: dict[str, object]
) -> None:
    response = client.request(
        "POST" if suffix else "PATCH",
        f"/v2/namespaces/acme/repositories/api/immutabletags{suffix}",
        headers=login("alice"),
        json=body,
    )
    assert response.status_code == 400


def test_group_grant_regrant_and_errors(client: httpx.Client, login: Login, sim: Simulator) -> None:
    headers = login("alice")
    path = "/v2/repositories/acme/ops-tools/groups"
    first = client.post(path, headers=headers, json={"group_id": 1001, "permission": "read"})
    assert first.status_code == 200
    again = client.post(path, headers=headers, json={"group_id": 1001, "permission": "read"})
    assert again.status_code == 200
    changed = client.post(path, headers=headers, json={"group_id": 1001, "permission": "admin"})
    assert changed.json()["permission"] == "admin"
    repo = next(r for r in sim.state()["repositories"] if r["name"] == "ops-tools")
    assert repo["teams"] == {"developers": "admin"}
    assert [a for a, _ in audit_actions(sim)] == ["repo.update", "repo.update"]
    bob = login("bob")
    assert (
        client.get("/v2/namespaces/acme/repositories/ops-tools", headers=bob).json()["permissions"][
            "admin"
        ]
        is True
    )
    assert (
        client.post(
            path, headers=headers, json={"group_id": 999999, "permission": "read"}
        ).status_code
        == 404
    )
    assert (
        client.post(
            path, headers=headers, json={"group_id": 1001, "permission": "owner"}
        ).status_code
        == 400
    )
    assert (
        client.post(
            path, headers=headers, json={"group_id": "1001", "permission": "read"}
        ).status_code
        == 400
    )
    # a team of another organization is not found here
    globex_team = client.post(
        "/v2/orgs/globex/groups", headers=login("dave"), json={"name": "ops"}
    ).json()["id"]
    assert (
        client.post(
            path, headers=headers, json={"group_id": globex_team, "permission": "read"}
        ).status_code
        == 404
    )
    # repositories of users have no teams
    user_repo = client.post(
        "/v2/repositories/alice/notes/groups",
        headers=headers,
        json={"group_id": 1001, "permission": "read"},
    )
    assert user_repo.status_code == 400


def test_page_walk_of_an_organization_s_repositories(
    big: Simulator, big_client: httpx.Client, big_login: Login
) -> None:
    repos, pages = walk(big_client, "/v2/namespaces/acme/repositories", big_login("acme", "oat"))
    assert len(pages) == 3 and len(repos) == 253
    assert [r["name"] for r in repos] == sorted(r["name"] for r in repos)
    seeded = {r["name"]: r for r in big.state()["repositories"] if r["namespace"] == "acme"}
    for repo in repos:
        assert repo["description"] == seeded[repo["name"]]["description"]
        assert repo["is_private"] == seeded[repo["name"]]["is_private"]
        assert "immutable_tags_settings" not in repo  # the list entry has none (the spec's)
    as_owner, _ = walk(big_client, "/v2/namespaces/acme/repositories", big_login("alice"))
    assert as_owner == repos
    past = big_client.get("/v2/namespaces/acme/repositories", params={"page": 4, "page_size": 100})
    assert past.status_code == 404  # Hub's "Invalid page." past the end of this list


def test_a_repository_read_shows_its_immutable_tags(
    big: Simulator, big_client: httpx.Client, big_login: Login
) -> None:
    seeded = [r for r in big.state()["repositories"] if r["name"].startswith("repo-")]
    locked = next(r for r in seeded if r["immutable_tags"]["enabled"])
    info = big_client.get(
        f"/v2/namespaces/acme/repositories/{locked['name']}", headers=big_login("acme", "oat")
    ).json()
    assert info["immutable_tags_settings"] == {"enabled": True, "rules": ["v.*"]}
    assert info["description"] == locked["description"]
    assert info["is_private"] == locked["is_private"]


def test_granting_a_team_is_idempotent(
    big: Simulator, big_client: httpx.Client, big_login: Login
) -> None:
    oat = big_login("acme", "oat")
    before = next(r for r in big.state()["repositories"] if r["name"] == "repo-00010")
    already = before["teams"].get("team-0003") == "write"
    team = big_client.get("/v2/orgs/acme/groups/team-0003", headers=oat).json()
    path = "/v2/repositories/acme/repo-00010/groups"
    grant = {"group_id": team["id"], "permission": "write"}
    first = big_client.post(path, json=grant, headers=oat)
    second = big_client.post(path, json=grant, headers=oat)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == {**grant, "group_name": "team-0003"}
    repo = next(r for r in big.state()["repositories"] if r["name"] == "repo-00010")
    assert repo["teams"]["team-0003"] == "write"
    logged = [e for e in big.state()["audit_logs"] if e["action"] == "repo.update"]
    assert len(logged) == (0 if already else 1)  # a change is logged once, a repeat never
