"""The access policy: every rule, with names found in the path and in the body."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

import sink.guard.policy
from sink.config import PolicyConfig, parse_config
from sink.errors import ConfigError
from sink.guard.policy import named_resources, references, violation
from sink.model import Record, Request
from sink.request.render import for_template
from sink.request.templates import load_registry

HUB = "https://hub.docker.com"


def request(method: str, path: str, body: Any = None, template: str = "manual") -> Request:
    content = None if body is None else orjson.dumps(body)
    return Request(method, HUB + path, (), content, ("k",), template)


CREATE_REPO = request(
    "POST",
    "/v2/namespaces/acme/repositories",
    {"name": "svc-api", "namespace": "acme"},
    "create-repository",
)
ADD_MEMBER = request(
    "POST", "/v2/orgs/acme/groups/developers/members", {"member": "carol"}, "add-team-member"
)
DELETE_TEAM = request("DELETE", "/v2/orgs/acme/groups/ops", template="delete-team")
INVITE = request(
    "POST",
    "/v2/invites/bulk",
    {"org": "globex", "team": "qa", "invitees": ["x@example.com"]},
    "bulk-invite",
)
IMMUTABLE = request(
    "PATCH",
    "/v2/namespaces/acme/repositories/web/immutabletags",
    {"immutable_tags": True},
    "update-immutable-tags",
)


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
    other = request(
        "POST", "/v2/namespaces/globex/repositories", {"name": "x", "namespace": "globex"}
    )
    assert violation(policy, other) == "policy does not allow namespace 'globex' (allowed: acme)"
    # The body may name another namespace than the path: both must be allowed.
    smuggled = request(
        "POST", "/v2/namespaces/acme/repositories", {"name": "x", "namespace": "globex"}
    )
    assert violation(policy, smuggled) is not None


def test_repositories_are_globs_on_namespace_and_name() -> None:
    policy = PolicyConfig(repositories=["acme/svc-*", "acme/web"])
    assert violation(policy, CREATE_REPO) is None
    assert violation(policy, IMMUTABLE) is None
    api = request(
        "PATCH", "/v2/namespaces/acme/repositories/api/immutabletags", {"immutable_tags": True}
    )
    assert violation(policy, api) == (
        "policy does not allow repository 'acme/api' (allowed: acme/svc-*, acme/web)"
    )
    # A create is checked on the name in its body, whatever the template is called.
    manual = request(
        "POST", "/v2/namespaces/acme/repositories", {"name": "payments", "namespace": "acme"}
    )
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
    assert named_resources(raw) == {
        "namespaces": [],
        "organizations": ["acme"],
        "teams": [],
        "repositories": [],
    }


# --------------------------------------------------------------------------- segments


TEAM_REPOS = PolicyConfig(repositories=["acme/team-*"])


def tags(repository: str, namespace: str = "acme") -> Request:
    return request(
        "PATCH",
        f"/v2/namespaces/{namespace}/repositories/{repository}/immutabletags",
        {"immutable_tags": True, "immutable_tags_rules": []},
        "update-immutable-tags",
    )


@pytest.mark.parametrize(
    "repository",
    [
        "team-x%2F..%2F..%2Fglobex%2Fsite",  # what the renderer makes of team-x/../../globex/site
        "team-x%2f..%2f..%2fglobex%2fsite",
        "team-x%5C..%5Cglobex",  # backslashes
        "team-x\\..\\globex",
        "team-x%252F..%252Fglobex",  # decodes to %2F: a second decoding would change it
        "team-x%00",
        "team-x%0A",
        "..",
        "%2e%2e",
        "%2E%2E",
        ".",
        "%2e",
        "team-x/..",  # a manual URL with a literal dot segment
        "team-x//",
    ],
)
def test_a_path_a_server_could_resolve_elsewhere_is_refused(repository: str) -> None:
    refusal = violation(TEAM_REPOS, tags(repository))
    assert refusal is not None and refusal.startswith("policy cannot check PATCH")


def test_a_star_never_crosses_a_segment() -> None:
    assert violation(TEAM_REPOS, tags("team-x")) is None
    assert violation(TEAM_REPOS, tags("team-x", "globex")) is not None
    # The same check on names given in a body: one segment each.
    smuggled = request(
        "POST",
        "/v2/namespaces/acme/repositories",
        {"name": "team-x/../../globex/site", "namespace": "acme"},
    )
    refusal = violation(TEAM_REPOS, smuggled)
    assert refusal is not None and "team-x/../../globex/site" in refusal
    assert violation(PolicyConfig(teams=["dev*"]), ADD_MEMBER) is None
    team = request("POST", "/v2/invites/bulk", {"org": "acme", "team": "dev/../owners"})
    assert violation(PolicyConfig(teams=["dev*"]), team) is not None
    org = request("POST", "/v2/invites/bulk", {"org": "acme/x", "invitees": ["a@example.com"]})
    assert violation(PolicyConfig(organizations=["acme*"]), org) is not None


@pytest.mark.parametrize("name", ["", ".", "..", "a%2Fb", "50%", "a\\b", "a\tb", "a\x7fb"])
def test_a_body_name_must_be_one_clean_segment(name: str) -> None:
    body = {"org": "acme", "team": name, "invitees": ["a@example.com"]}
    refusal = violation(PolicyConfig(teams=["*"]), request("POST", "/v2/invites/bulk", body))
    assert refusal is not None and "policy refuses team" in refusal


def test_names_are_compared_without_ascii_case() -> None:
    # Hub resolves ACME as acme: a case-sensitive allow-list would refuse what Hub allows and a
    # deny-by-pattern could be walked around; only ASCII letters fold.
    assert violation(TEAM_REPOS, tags("TEAM-X", "ACME")) is None
    assert violation(PolicyConfig(organizations=["ACME"]), ADD_MEMBER) is None
    assert violation(PolicyConfig(repositories=["acme/ss"]), tags("%C3%9F")) is not None  # ß


def test_a_trailing_slash_is_the_same_operation() -> None:
    policy = PolicyConfig(teams=["ops"])
    assert violation(policy, request("DELETE", "/v2/orgs/acme/groups/ops/")) is None
    assert violation(policy, request("DELETE", "/v2/orgs/acme/groups/dev/")) is not None


def test_patterns_must_have_the_shape_of_the_names_they_match() -> None:
    base = {"connection": {"identifier": "acme", "secret_env": "X"}, "template": "delete-team"}
    for policy in (
        {"repositories": ["acme"]},
        {"repositories": ["acme/*/*"]},
        {"teams": ["acme/dev"]},
        {"namespaces": [""]},
    ):
        with pytest.raises(ConfigError, match="glob matches within one segment"):
            parse_config({**base, "policy": policy})


# --------------------------------------------------------------------------- ids Hub knows


GRANT = request(
    "POST",
    "/v2/repositories/acme/api/groups",
    {"group_id": 1000, "permission": "admin"},
    "grant-team-repository",
)


def test_a_team_given_by_id_is_checked_by_the_name_hub_gives_it() -> None:
    policy = PolicyConfig(teams=["developers"])
    assert references(policy, GRANT) == [("team", "acme", "1000")]
    unknown = violation(policy, GRANT)
    assert unknown is not None and "team id '1000'" in unknown  # fail closed
    owners = {("team", "acme", "1000"): {"teams": ["owners"]}}
    assert violation(policy, GRANT, owners) == (
        "policy does not allow team 'owners' (allowed: developers)"
    )
    developers = {("team", "acme", "1000"): {"teams": ["developers"]}}
    assert violation(policy, GRANT, developers) is None
    # No team rule: nothing to look up.
    assert references(PolicyConfig(repositories=["acme/*"]), GRANT) == []
    assert violation(PolicyConfig(repositories=["acme/*"]), GRANT) is None


def test_an_invite_given_by_id_is_checked_by_its_organization_and_team() -> None:
    cancel = request("DELETE", "/v2/invites/e36eca69", template="cancel-invite")
    resend = request("PATCH", "/v2/invites/e36eca69/resend", template="resend-invite")
    policy = PolicyConfig(organizations=["acme"], teams=["developers"])
    reference = ("invite", "", "e36eca69")
    for item in (cancel, resend):
        assert references(policy, item) == [reference]
        assert violation(policy, item) is not None
        assert (
            violation(
                policy, item, {reference: {"organizations": ["acme"], "teams": ["developers"]}}
            )
            is None
        )
        assert (
            violation(policy, item, {reference: {"organizations": ["globex"], "teams": []}})
            is not None
        )
    assert violation(PolicyConfig(namespaces=["acme"]), cancel) is None


def test_scim_names_no_organization() -> None:
    scim = request("PUT", "/v2/scim/2.0/Users/d80f7c79", {"active": False})
    refusal = violation(PolicyConfig(organizations=["acme"]), scim)
    assert refusal is not None and "SCIM" in refusal


def oat(*resources: dict[str, Any], method: str = "POST") -> Request:
    path = "/v2/orgs/acme/access-tokens" + ("/a7a5ef25" if method == "PATCH" else "")
    return request(method, path, {"label": "ci", "resources": list(resources)})


def repo(path: str) -> dict[str, Any]:
    return {"type": "TYPE_REPO", "path": path, "scopes": ["scope-image-pull"]}


@pytest.mark.parametrize(
    ("patterns", "path", "allowed"),
    [
        (["acme/api"], "acme/api", True),
        (["acme/api"], "acme/web", False),
        (["acme/api"], "globex/site", False),
        (["acme/svc-*"], "acme/svc-db", True),
        (["acme/svc-*"], "acme/*", False),  # broader than the policy
        (["acme/svc-*"], "acme/svc-*", True),  # the same glob
        (["acme/svc-*"], "acme/svc-eu-*", True),  # narrower
        (["acme/svc-*"], "acme/sv*", False),
        (["acme/svc-*"], "acme/[s]vc-x", False),  # cannot be told narrower: refused
        (["acme/*"], "acme/*", True),
        (["acme/*"], "acme/?pi", True),
        (["acme/*"], "*/*/public", False),  # every public repository of every namespace
        (["*/*"], "*/*/public", True),
        (["acme/*"], "acme/x/../../globex/site", False),
        (["acme/*"], "acme", False),
        (["acme/*"], "acme/%2e%2e", False),
        (["acme/*"], "ACME/API", True),
    ],
)
def test_token_resources_are_checked_against_repositories(
    patterns: list[str], path: str, allowed: bool
) -> None:
    policy = PolicyConfig(repositories=patterns)
    for method in ("POST", "PATCH"):
        refusal = violation(policy, oat(repo(path), method=method))
        assert (refusal is None) is allowed, refusal


def test_token_resources_are_checked_against_namespaces_and_organizations() -> None:
    org = {"type": "TYPE_ORG", "path": "globex", "scopes": ["scope-member-edit"]}
    assert violation(PolicyConfig(organizations=["acme"]), oat(org)) is not None
    own = {**org, "path": "acme"}
    assert violation(PolicyConfig(organizations=["acme"]), oat(own)) is None
    assert violation(PolicyConfig(namespaces=["acme"]), oat(repo("globex/site"))) is not None
    assert violation(PolicyConfig(namespaces=["acme"]), oat(repo("acme/*"))) is None
    # One resource out of bounds is enough.
    assert (
        violation(PolicyConfig(repositories=["acme/*"]), oat(repo("acme/api"), repo("globex/site")))
        is not None
    )


@pytest.mark.parametrize(
    "resources",
    [
        "acme/*",
        [{"type": "TYPE_WHATEVER", "path": "acme/api"}],
        [{"type": "TYPE_REPO"}],
        ["acme/api"],
    ],
)
def test_token_resources_that_cannot_be_read_are_refused(resources: Any) -> None:
    body = {"label": "ci", "resources": resources}
    item = request("POST", "/v2/orgs/acme/access-tokens", body)
    refusal = violation(PolicyConfig(repositories=["acme/*"]), item)
    assert refusal is not None and "access token resource" in refusal


# --------------------------------------------------------------------------- every template


REGISTRY = load_registry()

# What each template's example names: (namespaces, organizations, teams, repositories), and
# the ids only Hub can name. Adding a template without a row here fails the first test below.
NAMED: dict[str, tuple[list[str], list[str], list[str], list[str], list[Any]]] = {
    "add-team-member": ([], ["acme"], ["developers"], [], []),
    "bulk-invite": ([], ["acme"], ["developers"], [], []),
    "cancel-invite": ([], [], [], [], [("invite", "", "e36eca69-4cc8-4f17-9845-ae8c2b832691")]),
    "create-org-access-token": (["acme"], ["acme"], [], [], []),  # + the glob acme/*
    "create-personal-access-token": ([], [], [], [], []),
    "create-repository": (["acme"], [], [], ["acme/payments-api"], []),
    "create-team": ([], ["acme"], ["platform"], [], []),
    "delete-org-access-token": ([], ["acme"], [], [], []),
    "delete-personal-access-token": ([], [], [], [], []),
    "delete-team": ([], ["acme"], ["contractors"], [], []),
    "grant-team-repository": (["acme"], [], [], ["acme/api"], [("team", "acme", "1001")]),
    "remove-member": ([], ["acme"], [], [], []),
    "remove-team-member": ([], ["acme"], ["developers"], [], []),
    "replace-team": ([], ["acme"], ["developers", "engineering"], [], []),
    "resend-invite": ([], [], [], [], [("invite", "", "e36eca69-4cc8-4f17-9845-ae8c2b832691")]),
    "update-immutable-tags": (["acme"], [], [], ["acme/api"], []),
    "update-member-role": ([], ["acme"], [], [], []),
    "update-org-access-token": (["acme"], ["acme"], [], ["acme/api"], []),
    "update-org-settings": ([], ["acme"], [], [], []),
    "update-personal-access-token": ([], [], [], [], []),
    "update-team": ([], ["acme"], ["developers", "engineering"], [], []),
    "verify-immutable-tags": (["acme"], [], [], ["acme/api"], []),
}
# Templates that name no namespace, organization, team or repository: a user's own tokens.
UNSCOPED = {
    "create-personal-access-token",
    "delete-personal-access-token",
    "update-personal-access-token",
}
ELSEWHERE = PolicyConfig(
    namespaces=["globex"], organizations=["globex"], teams=["qa"], repositories=["globex/*"]
)
ACME = PolicyConfig(
    namespaces=["acme"],
    organizations=["acme"],
    teams=["developers", "engineering", "platform", "contractors"],
    repositories=["acme/*"],
)


def example(template_id: str) -> Request:
    template = REGISTRY.get(template_id)
    renderer = for_template(template, template.example_settings, HUB)
    return renderer.render(Record(0, dict(template.example)))


def test_every_template_has_a_row() -> None:
    assert set(NAMED) == {template.id for template in REGISTRY}


@pytest.mark.parametrize("template_id", sorted(NAMED))
def test_every_template_names_what_it_acts_on(template_id: str) -> None:
    item = example(template_id)
    namespaces, organizations, teams, repositories, ids = NAMED[template_id]
    assert named_resources(item) == {
        "namespaces": namespaces,
        "organizations": organizations,
        "teams": teams,
        "repositories": repositories,
    }
    every_rule = PolicyConfig(organizations=["*"], teams=["*"])
    assert references(every_rule, item) == ids


@pytest.mark.parametrize("template_id", sorted(NAMED))
def test_every_template_is_refused_outside_the_policy(template_id: str) -> None:
    item = example(template_id)
    refusal = violation(ELSEWHERE, item)
    if template_id in UNSCOPED:
        assert refusal is None
    else:
        assert refusal is not None, f"{template_id} walked around the policy"
    # Inside the policy, with what Hub would name the ids it carries.
    resolved = {
        reference: {"teams": ["developers"]}
        if reference[0] == "team"
        else {"organizations": ["acme"], "teams": ["developers"]}
        for reference in references(ACME, item)
    }
    assert violation(ACME, item, resolved) is None


def test_no_scoped_rule_never_parses_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any) -> Any:
        raise AssertionError("parsed without a scoped rule")

    monkeypatch.setattr(sink.guard.policy, "parse", boom)
    for template_id in NAMED:
        assert (
            violation(
                PolicyConfig(methods=["POST", "PUT", "PATCH", "DELETE"]), example(template_id)
            )
            is None
        )
        assert references(PolicyConfig(namespaces=["acme"]), example(template_id)) == []
