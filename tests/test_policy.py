"""The access policy: every rule, with names found in the path and in the body."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sink.config import PolicyConfig
from sink.model import Request
from sink.policy import named_resources, violation

HUB = "https://hub.docker.com"


def request(method: str, path: str, body: Any = None, template: str = "manual") -> Request:
    content = None if body is None else orjson.dumps(body)
    return Request(method, HUB + path, (), content, ("k",), template)


CREATE_REPO = request("POST", "/v2/namespaces/acme/repositories",
                      {"name": "svc-api", "namespace": "acme"}, "create-repository")
ADD_MEMBER = request("POST", "/v2/orgs/acme/groups/developers/members", {"member": "carol"},
                     "add-team-member")
DELETE_TEAM = request("DELETE", "/v2/orgs/acme/groups/ops", template="delete-team")
INVITE = request("POST", "/v2/invites/bulk",
                 {"org": "globex", "team": "qa", "invitees": ["x@example.com"]}, "bulk-invite")
IMMUTABLE = request("PATCH", "/v2/namespaces/acme/repositories/web/immutabletags",
                    {"immutable_tags": True}, "update-immutable-tags")


def test_no_rule_allows_everything() -> None:
    for item in (CREATE_REPO, ADD_MEMBER, DELETE_TEAM, INVITE, IMMUTABLE):
        assert violation(PolicyConfig(), item) is None


def test_read_only_refuses_every_write() -> None:
    policy = PolicyConfig(read_only=True)
    for item in (CREATE_REPO, ADD_MEMBER, DELETE_TEAM, IMMUTABLE):
        assert violation(policy, item) == f"policy is read-only: {item.method} is not allowed"
    lowercase = request("delete", "/v2/orgs/acme/groups/ops")
    assert violation(policy, lowercase) == "policy is read-only: DELETE is not allowed"


def test_templates_are_globs() -> None:
    policy = PolicyConfig(templates=["create-*", "add-team-member"])
    assert violation(policy, CREATE_REPO) is None
    assert violation(policy, ADD_MEMBER) is None
    assert violation(policy, DELETE_TEAM) == (
        "policy allows templates create-*, add-team-member, not delete-team"
    )


def test_methods() -> None:
    policy = PolicyConfig(methods=["POST", "PATCH"])
    assert violation(policy, CREATE_REPO) is None
    assert violation(policy, IMMUTABLE) is None
    assert violation(policy, DELETE_TEAM) == "policy allows methods POST, PATCH, not DELETE"


def test_namespaces_in_the_path_and_in_the_body() -> None:
    policy = PolicyConfig(namespaces=["acme"])
    assert violation(policy, CREATE_REPO) is None
    assert violation(policy, IMMUTABLE) is None
    other = request("POST", "/v2/namespaces/globex/repositories", {"name": "x",
                                                                    "namespace": "globex"})
    assert violation(policy, other) == "policy does not allow namespace 'globex' (allowed: acme)"
    # The body may name another namespace than the path: both must be allowed.
    smuggled = request("POST", "/v2/namespaces/acme/repositories", {"name": "x",
                                                                     "namespace": "globex"})
    assert violation(policy, smuggled) is not None


def test_repositories_are_globs_on_namespace_and_name() -> None:
    policy = PolicyConfig(repositories=["acme/svc-*", "acme/web"])
    assert violation(policy, CREATE_REPO) is None
    assert violation(policy, IMMUTABLE) is None
    api = request("PATCH", "/v2/namespaces/acme/repositories/api/immutabletags",
                  {"immutable_tags": True})
    assert violation(policy, api) == (
        "policy does not allow repository 'acme/api' (allowed: acme/svc-*, acme/web)"
    )
    # A create is checked on the name in its body, whatever the template is called.
    manual = request("POST", "/v2/namespaces/acme/repositories",
                     {"name": "payments", "namespace": "acme"})
    assert named_resources(manual)["repositories"] == ["acme/payments"]
    assert violation(policy, manual) is not None
    grant = request("POST", "/v2/repositories/acme/svc-db/groups", {"group_id": 1001})
    assert violation(policy, grant) is None


def test_organizations_in_the_path_and_in_the_body() -> None:
    policy = PolicyConfig(organizations=["acme"])
    assert violation(policy, ADD_MEMBER) is None
    assert violation(policy, DELETE_TEAM) is None
    assert violation(policy, INVITE) == (
        "policy does not allow organization 'globex' (allowed: acme)"
    )
    settings = request("PUT", "/v2/orgs/globex/settings", {"restricted_images": {}})
    assert named_resources(settings)["organizations"] == ["globex"]
    assert violation(policy, settings) is not None
    token = request("POST", "/v2/orgs/globex/access-tokens", {"label": "x"})
    assert violation(policy, token) is not None


def test_teams_in_the_path_and_in_the_body() -> None:
    policy = PolicyConfig(teams=["developers", "qa*"])
    assert violation(policy, ADD_MEMBER) is None
    assert violation(policy, INVITE) is None
    assert violation(policy, DELETE_TEAM) == (
        "policy does not allow team 'ops' (allowed: developers, qa*)"
    )
    remove = request("DELETE", "/v2/orgs/acme/groups/owners/members/alice")
    assert violation(policy, remove) is not None
    # Creating a team, or renaming one, names the team in the body.
    create = request("POST", "/v2/orgs/acme/groups", {"name": "evil"}, "create-team")
    assert named_resources(create)["teams"] == ["evil"]
    assert violation(policy, create) is not None
    assert violation(policy, request("POST", "/v2/orgs/acme/groups", {"name": "qa-eu"})) is None
    rename = request("PATCH", "/v2/orgs/acme/groups/developers", {"name": "admins"})
    assert named_resources(rename)["teams"] == ["developers", "admins"]
    assert violation(policy, rename) is not None


def test_percent_encoded_names_are_checked_decoded() -> None:
    policy = PolicyConfig(teams=["developers"])
    sneaky = request("DELETE", "/v2/orgs/acme/groups/ops%20team")
    assert named_resources(sneaky)["teams"] == ["ops team"]
    assert violation(policy, sneaky) is not None


def test_a_path_outside_the_spec_is_refused_when_names_are_restricted() -> None:
    unknown = request("POST", "/v2/somewhere/else", {"namespace": "acme"})
    assert violation(PolicyConfig(methods=["POST"]), unknown) is None
    refusal = violation(PolicyConfig(namespaces=["acme"]), unknown)
    assert refusal is not None and "/v2/somewhere/else" in refusal


@pytest.mark.parametrize(
    ("policy", "broken"),
    [
        (PolicyConfig(read_only=True, templates=["x"]), "read-only"),
        (PolicyConfig(templates=["add-*"], methods=["DELETE"]), "methods"),
        (PolicyConfig(methods=["POST"], organizations=["globex"]), "organization"),
    ],
)
def test_the_first_rule_broken_is_named(policy: PolicyConfig, broken: str) -> None:
    refusal = violation(policy, ADD_MEMBER)
    assert refusal is not None and broken in refusal


def test_a_body_that_is_not_json_names_nothing() -> None:
    raw = Request("POST", HUB + "/v2/orgs/acme/groups", (), b"not json", ("k",), "manual")
    assert named_resources(raw) == {"namespaces": [], "organizations": ["acme"], "teams": [],
                                    "repositories": []}
