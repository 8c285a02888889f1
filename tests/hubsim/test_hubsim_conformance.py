"""Every operation the simulator serves answers as the spec says (corrected for its known
defects): a tour that gets a success from each one, each answer validated by the client's
spec checker (see hubsim_spec.py)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import jsonschema
import pytest
from hubsim_spec import SPEC_CORRECTIONS, SpecChecker

Login = Callable[..., dict[str, str]]

# Every non-SCIM operation of the spec with its success status. 2fa-login is left out: no
# simulated account has two-factor authentication, so it can only answer 401.
EXPECTED = {
    ("POST", "/v2/users/login", "200"),
    ("POST", "/v2/auth/token", "200"),
    ("POST", "/v2/access-tokens", "201"),
    ("GET", "/v2/access-tokens", "200"),
    ("GET", "/v2/access-tokens/{uuid}", "200"),
    ("PATCH", "/v2/access-tokens/{uuid}", "200"),
    ("DELETE", "/v2/access-tokens/{uuid}", "204"),
    ("GET", "/v2/auditlogs/{account}/actions", "200"),
    ("GET", "/v2/auditlogs/{account}", "200"),
    ("GET", "/v2/orgs/{name}/settings", "200"),
    ("PUT", "/v2/orgs/{name}/settings", "200"),
    ("POST", "/v2/orgs/{name}/access-tokens", "201"),
    ("GET", "/v2/orgs/{name}/access-tokens", "200"),
    ("GET", "/v2/orgs/{org_name}/access-tokens/{access_token_id}", "200"),
    ("PATCH", "/v2/orgs/{org_name}/access-tokens/{access_token_id}", "200"),
    ("DELETE", "/v2/orgs/{org_name}/access-tokens/{access_token_id}", "204"),
    ("GET", "/v2/namespaces/{namespace}/repositories/{repository}/tags", "200"),
    ("HEAD", "/v2/namespaces/{namespace}/repositories/{repository}/tags", "200"),
    ("GET", "/v2/namespaces/{namespace}/repositories/{repository}/tags/{tag}", "200"),
    ("HEAD", "/v2/namespaces/{namespace}/repositories/{repository}/tags/{tag}", "200"),
    ("PATCH", "/v2/namespaces/{namespace}/repositories/{repository}/immutabletags", "200"),
    ("POST", "/v2/namespaces/{namespace}/repositories/{repository}/immutabletags/verify", "200"),
    ("POST", "/v2/repositories/{namespace}/{repository}/groups", "200"),
    ("GET", "/v2/namespaces/{namespace}/repositories", "200"),
    ("POST", "/v2/namespaces/{namespace}/repositories", "201"),
    ("GET", "/v2/namespaces/{namespace}/repositories/{repository}", "200"),
    ("HEAD", "/v2/namespaces/{namespace}/repositories/{repository}", "200"),
    ("GET", "/v2/orgs/{org_name}/members", "200"),
    ("GET", "/v2/orgs/{org_name}/members/export", "200"),
    ("PUT", "/v2/orgs/{org_name}/members/{username}", "200"),
    ("DELETE", "/v2/orgs/{org_name}/members/{username}", "204"),
    ("GET", "/v2/orgs/{org_name}/invites", "200"),
    ("GET", "/v2/orgs/{org_name}/groups", "200"),
    ("POST", "/v2/orgs/{org_name}/groups", "201"),
    ("GET", "/v2/orgs/{org_name}/groups/{group_name}", "200"),
    ("PUT", "/v2/orgs/{org_name}/groups/{group_name}", "200"),
    ("PATCH", "/v2/orgs/{org_name}/groups/{group_name}", "200"),
    ("DELETE", "/v2/orgs/{org_name}/groups/{group_name}", "204"),
    ("GET", "/v2/orgs/{org_name}/groups/{group_name}/members", "200"),
    ("POST", "/v2/orgs/{org_name}/groups/{group_name}/members", "200"),
    ("DELETE", "/v2/orgs/{org_name}/groups/{group_name}/members/{username}", "204"),
    ("DELETE", "/v2/invites/{id}", "204"),
    ("PATCH", "/v2/invites/{id}/resend", "204"),
    ("POST", "/v2/invites/bulk", "202"),
}


def test_expected_covers_every_non_scim_operation(spec_checker: SpecChecker) -> None:
    operations = {(m, t) for _, m, t, _ in spec_checker.ops}
    assert {(m, t) for m, t, _ in EXPECTED} == operations - {("POST", "/v2/users/2fa-login")}
    assert SPEC_CORRECTIONS.strip().count("\n") >= 6


def test_every_operation_answers_as_the_spec_says(
    client: httpx.Client, login: Login, spec_checker: SpecChecker
) -> None:
    c, alice = client, login("alice")
    oat = login("acme", "oat")
    assert c.post(
        "/v2/users/login", json={"username": "alice", "password": "correct-horse-battery"}
    ).is_success
    # personal access tokens
    pat = c.post(
        "/v2/access-tokens", headers=alice, json={"token_label": "tour", "scopes": ["repo:read"]}
    ).json()
    c.get("/v2/access-tokens", headers=alice)
    c.get(f"/v2/access-tokens/{pat['uuid']}", headers=alice)
    c.patch(f"/v2/access-tokens/{pat['uuid']}", headers=alice, json={"is_active": False})
    c.delete(f"/v2/access-tokens/{pat['uuid']}", headers=alice)
    # repositories and tags
    c.get("/v2/namespaces/acme/repositories", headers=alice)
    c.post(
        "/v2/namespaces/acme/repositories",
        headers=alice,
        json={"name": "tour", "namespace": "acme"},
    )
    c.get("/v2/namespaces/acme/repositories/api", headers=alice)
    c.head("/v2/namespaces/acme/repositories/api", headers=alice)
    c.get("/v2/namespaces/acme/repositories/api/tags", headers=alice)
    c.head("/v2/namespaces/acme/repositories/api/tags", headers=alice)
    c.get("/v2/namespaces/acme/repositories/api/tags/latest", headers=alice)
    c.head("/v2/namespaces/acme/repositories/api/tags/latest", headers=alice)
    c.patch(
        "/v2/namespaces/acme/repositories/api/immutabletags",
        headers=alice,
        json={"immutable_tags": True, "immutable_tags_rules": ["v.*"]},
    )
    c.post(
        "/v2/namespaces/acme/repositories/api/immutabletags/verify",
        headers=alice,
        json={"regex": "v.*"},
    )
    c.post(
        "/v2/repositories/acme/api/groups",
        headers=alice,
        json={"group_id": 1001, "permission": "read"},
    )
    # organization access tokens and settings
    created = c.post(
        "/v2/orgs/acme/access-tokens",
        headers=alice,
        json={
            "label": "tour",
            "resources": [
                {"type": "TYPE_REPO", "path": "*/*/public", "scopes": ["scope-image-pull"]}
            ],
        },
    ).json()
    c.get("/v2/orgs/acme/access-tokens", headers=alice)
    c.get(f"/v2/orgs/acme/access-tokens/{created['id']}", headers=alice)
    c.patch(
        f"/v2/orgs/acme/access-tokens/{created['id']}", headers=alice, json={"description": "d"}
    )
    c.delete(f"/v2/orgs/acme/access-tokens/{created['id']}", headers=alice)
    c.get("/v2/orgs/acme/settings", headers=alice)
    c.put(
        "/v2/orgs/acme/settings",
        headers=alice,
        json={
            "restricted_images": {
                "enabled": True,
                "allow_official_images": True,
                "allow_verified_publishers": False,
            }
        },
    )
    # members, teams, invites
    c.get("/v2/orgs/acme/members", headers=oat, params={"invites": "true"})
    c.get("/v2/orgs/acme/members/export", headers=oat)
    c.put("/v2/orgs/acme/members/erin", headers=oat, json={"role": "member"})
    c.get("/v2/orgs/acme/groups", headers=oat)
    c.post("/v2/orgs/acme/groups", headers=oat, json={"name": "tour"})
    c.get("/v2/orgs/acme/groups/tour", headers=oat)
    c.put("/v2/orgs/acme/groups/tour", headers=oat, json={"name": "tour", "description": "x"})
    c.patch("/v2/orgs/acme/groups/tour", headers=oat, json={"description": "y"})
    c.post("/v2/orgs/acme/groups/tour/members", headers=oat, json={"member": "carol"})
    c.get("/v2/orgs/acme/groups/tour/members", headers=oat)
    c.delete("/v2/orgs/acme/groups/tour/members/carol", headers=oat)
    c.delete("/v2/orgs/acme/groups/tour", headers=oat)
    c.delete("/v2/orgs/acme/members/erin", headers=oat)
    bulk = c.post(
        "/v2/invites/bulk",
        headers=oat,
        json={"org": "acme", "invitees": ["dave", "tour@example.com"]},
    ).json()
    c.get("/v2/orgs/acme/invites", headers=oat)
    c.patch(f"/v2/invites/{bulk['invitees'][0]['invite']['id']}/resend", headers=oat)
    c.delete(f"/v2/invites/{bulk['invitees'][1]['invite']['id']}", headers=oat)
    # audit logs
    c.get("/v2/auditlogs/acme", headers=oat)
    c.get("/v2/auditlogs/acme/actions", headers=oat)
    missing = EXPECTED - spec_checker.seen
    assert not missing, sorted(missing)


def test_the_checker_rejects_answers_off_the_spec(spec_checker: SpecChecker) -> None:
    request = httpx.Request("GET", "http://hub.test/v2/orgs/acme/groups/developers")
    headers = {"x-ratelimit-limit": "1", "x-ratelimit-remaining": "1", "x-ratelimit-reset": "1"}
    good = httpx.Response(
        200, json={"id": 1, "name": "developers"}, headers=headers, request=request
    )
    spec_checker.check(good)
    wrong_type = httpx.Response(200, json={"id": "one"}, headers=headers, request=request)
    with pytest.raises(jsonschema.ValidationError):
        spec_checker.check(wrong_type)
    no_headers = httpx.Response(200, json={"id": 1}, request=request)
    with pytest.raises(AssertionError):
        spec_checker.check(no_headers)
    undeclared = httpx.Response(201, json={}, headers=headers, request=request)
    with pytest.raises(AssertionError):
        spec_checker.check(undeclared)
