"""Request-body validation and coercion against the official spec (sink.request.schema)."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import enum
import subprocess
import sys
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sink.errors import ConfigError, SchemaViolation
from sink.request.schema import (
    Operation,
    compile_body,
    find_operation,
    match_operation,
    operations,
)
from sink.request.spec import corrected_spec, load_spec, resolve_schema

CREATE_REPO = "CreateRepository"
PAT_CREATE = "POST /v2/access-tokens"
PAT_PATCH = "PATCH /v2/access-tokens/{uuid}"
OAT_CREATE = "POST /v2/orgs/{name}/access-tokens"
OAT_PATCH = "PATCH /v2/orgs/{org_name}/access-tokens/{access_token_id}"
GROUP_CREATE = "POST /v2/orgs/{org_name}/groups"
GROUP_PUT = "PUT /v2/orgs/{org_name}/groups/{group_name}"
GROUP_PATCH = "PATCH /v2/orgs/{org_name}/groups/{group_name}"
GROUP_MEMBER_ADD = "POST /v2/orgs/{org_name}/groups/{group_name}/members"
MEMBER_ROLE = "PUT /v2/orgs/{org_name}/members/{username}"
BULK_INVITE = "POST /v2/invites/bulk"
ORG_SETTINGS = "PUT /v2/orgs/{name}/settings"
REPO_GROUP = "CreateRepositoryGroup"
IMMUTABLE_TAGS = "UpdateRepositoryImmutableTags"
IMMUTABLE_VERIFY = "VerifyRepositoryImmutableTags"

VALID_BODIES: dict[str, dict[str, Any]] = {
    CREATE_REPO: {
        "name": "payments-api",
        "namespace": "acme",
        "description": "Payments service image",
        "full_description": "# Payments\nBuilt nightly.",
        "registry": "docker.io",
        "is_private": True,
    },
    PAT_CREATE: {
        "token_label": "ci read-only",
        "scopes": ["repo:read"],
        "expires_at": "2026-10-28T18:30:19.520861Z",
    },
    PAT_PATCH: {"token_label": "renamed", "is_active": False},
    OAT_CREATE: {
        "label": "ci pipeline",
        "description": "Pushes nightly builds",
        "resources": [
            {"type": "TYPE_REPO", "path": "acme/*", "scopes": ["scope-image-push"]},
            {"type": "TYPE_ORG", "path": "acme", "scopes": ["scope-member-read"]},
        ],
        "expires_at": None,
    },
    OAT_PATCH: {
        "label": "ci pipeline v2",
        "is_active": True,
        "resources": [{"type": "TYPE_REPO", "path": "acme/app", "scopes": ["scope-image-pull"]}],
    },
    GROUP_CREATE: {"name": "platform", "description": "Platform engineers"},
    GROUP_PUT: {"name": "platform", "description": "Platform and SRE"},
    GROUP_PATCH: {"description": "Only the description changes"},
    GROUP_MEMBER_ADD: {"member": "jonsnow"},
    MEMBER_ROLE: {"role": "editor"},
    BULK_INVITE: {
        "org": "acme",
        "team": "platform",
        "role": "member",
        "invitees": ["jonsnow", "arya@example.com"],
        "dry_run": True,
    },
    ORG_SETTINGS: {
        "restricted_images": {
            "enabled": True,
            "allow_official_images": True,
            "allow_verified_publishers": False,
        }
    },
    REPO_GROUP: {"group_id": 12345, "permission": "write"},
    IMMUTABLE_TAGS: {"immutable_tags": True, "immutable_tags_rules": ["v.*", ".*-RELEASE"]},
    IMMUTABLE_VERIFY: {"regex": "v.*"},
}


def problem(operation: str | Operation, body: Any) -> SchemaViolation:
    """Run the checker on a body that must fail and return the error."""
    with pytest.raises(SchemaViolation) as info:
        compile_body(operation)(body)
    return info.value


def with_(operation: str, **changes: Any) -> dict[str, Any]:
    """A copy of the valid body of ``operation`` with some fields replaced."""
    body = copy.deepcopy(VALID_BODIES[operation])
    body.update(changes)
    return body


def without(operation: str, name: str) -> dict[str, Any]:
    body = copy.deepcopy(VALID_BODIES[operation])
    del body[name]
    return body


# --------------------------------------------------------------------------- loading, look-up


def test_importing_does_not_load_the_spec() -> None:
    code = (
        "import sink.request.schema, sink.request.spec as s; "
        "print(s.load_spec.cache_info().currsize, s.corrected_spec.cache_info().currsize)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["0", "0"]


def test_spec_is_loaded_once_and_corrections_leave_the_original_alone() -> None:
    assert load_spec() is load_spec()
    original = load_spec()["components"]["schemas"]["immutable_tags_verify_request"]
    corrected = corrected_spec()["components"]["schemas"]["immutable_tags_verify_request"]
    assert original["properties"]["regex"]["pattern"].startswith("^[a-z0-9]+")
    assert corrected["properties"]["regex"]["pattern"] == "^[^,]*$"


def test_find_operation_by_operation_id() -> None:
    op = find_operation("CreateRepository")
    assert (op.method, op.path) == ("POST", "/v2/namespaces/{namespace}/repositories")
    assert op.operation_id == "CreateRepository"
    assert op.summary == "Create a new repository"
    assert op.body_required is True
    # `201:` is an unquoted status key in the spec, loaded by YAML as an int.
    assert op.success_codes == (201,)
    assert op.content_type == "application/json"
    assert op.deprecated is False


def test_find_operation_by_method_and_path() -> None:
    op = find_operation("POST /v2/access-tokens")
    assert op.operation_id is None
    assert op.name == op.key == "POST /v2/access-tokens"
    assert op.success_codes == (201,)
    assert find_operation("post  /v2/access-tokens") is op
    assert find_operation("createrepository") is find_operation(CREATE_REPO)


def test_find_operation_reads_other_fields() -> None:
    assert find_operation("PostUsersLogin").deprecated is True
    assert find_operation(IMMUTABLE_TAGS).success_codes == (200,)
    assert find_operation(BULK_INVITE).success_codes == (202,)
    delete = find_operation("DELETE /v2/access-tokens/{uuid}")
    assert (delete.body_schema, delete.body_required, delete.success_codes) == (None, False, (204,))
    assert find_operation("POST /v2/scim/2.0/Users").content_type == "application/scim+json"


def test_find_operation_unknown_suggests_close_names() -> None:
    with pytest.raises(ConfigError, match="did you mean CreateRepository"):
        find_operation("CreateRepo")
    with pytest.raises(ConfigError, match="no operation 'GET /v3/nothing'"):
        find_operation("GET /v3/nothing")


def test_operations_lists_every_operation_once() -> None:
    ops = operations()
    assert len(ops) == 54
    assert len({op.key for op in ops}) == 54
    assert all(isinstance(op, Operation) for op in ops)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("PUT", "/v2/orgs/acme/groups/dev%20ops", "PUT /v2/orgs/{org_name}/groups/{group_name}"),
        (
            "post",
            "/v2/namespaces/acme/repositories",
            "POST /v2/namespaces/{namespace}/repositories",
        ),
        ("GET", "/v2/orgs/acme/members/export", "GET /v2/orgs/{org_name}/members/export"),
        ("GET", "/v2/orgs/acme/members/jonsnow", None),
        ("PUT", "/v2/orgs/acme/members/jonsnow", "PUT /v2/orgs/{org_name}/members/{username}"),
        (
            "DELETE",
            "/v2/orgs/acme/members/jonsnow/",
            "DELETE /v2/orgs/{org_name}/members/{username}",
        ),
        ("GET", "/v2/access-tokens?page=2", "GET /v2/access-tokens"),
        (
            "POST",
            "https://hub.docker.com/v2/repositories/acme/app/groups",
            "POST /v2/repositories/{namespace}/{repository}/groups",
        ),
        (
            "HEAD",
            "/v2/namespaces/acme/repositories/app",
            "HEAD /v2/namespaces/{namespace}/repositories/{repository}",
        ),
        ("GET", "/v2/auditlogs/acme/actions", "GET /v2/auditlogs/{account}/actions"),
        ("GET", "/v2/auditlogs/acme", "GET /v2/auditlogs/{account}"),
        ("POST", "/v2/orgs/acme/groups/a/b/members", None),
        ("POST", "/v2/orgs//groups", None),
        ("PATCH", "/v2/namespaces/acme/repositories", None),
    ],
)
def test_match_operation(method: str, path: str, expected: str | None) -> None:
    op = match_operation(method, path)
    assert (op.key if op else None) == expected


# --------------------------------------------------------------------------- valid bodies


@pytest.mark.parametrize("operation", list(VALID_BODIES))
def test_valid_body_passes_unchanged(operation: str) -> None:
    body = copy.deepcopy(VALID_BODIES[operation])
    result = compile_body(operation)(body)
    assert result == VALID_BODIES[operation]
    assert result is body  # nothing to coerce: no copy made


def test_checker_is_compiled_once() -> None:
    assert compile_body(CREATE_REPO) is compile_body(find_operation(CREATE_REPO))


# --------------------------------------------------------------------------- rules


def test_required_field() -> None:
    error = problem(PAT_CREATE, without(PAT_CREATE, "token_label"))
    assert str(error) == "token_label: required"
    assert error.field == "token_label"


def test_pattern_names_the_rule_in_plain_words() -> None:
    error = problem(CREATE_REPO, with_(CREATE_REPO, name="My_App"))
    assert str(error) == (
        'name: "My_App" does not match the pattern ^[a-z0-9]+(?:[._-][a-z0-9]+)*$ '
        "(lowercase letters, digits, and . _ - between them)"
    )
    assert error.field == "name"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a", "name: shorter than 2 characters (1)"),
        ("a" * 256, "name: longer than 255 characters (256)"),
        ("a..b", 'name: "a..b" does not match the pattern'),
        ("-ab", 'name: "-ab" does not match the pattern'),
    ],
)
def test_repository_name_rules(name: str, message: str) -> None:
    assert str(problem(CREATE_REPO, with_(CREATE_REPO, name=name))).startswith(message)


def test_pattern_end_is_the_very_end() -> None:
    # Python's `$` also matches before a final newline; the spec's (ECMA) `$` does not.
    error = problem(CREATE_REPO, with_(CREATE_REPO, name="payments-api\n"))
    assert error.field == "name"
    assert "does not match the pattern" in str(error)


def test_only_ascii_digits_are_numbers() -> None:
    error = problem(REPO_GROUP, with_(REPO_GROUP, group_id="\u0664\u0662"))
    assert str(error) == 'group_id: expected an integer, got "\u0664\u0662"'


def test_repository_name_bounds_pass() -> None:
    check = compile_body(CREATE_REPO)
    for name in ("ab", "a" * 255, "a.b_c-d", "0-9"):
        assert check(with_(CREATE_REPO, name=name))["name"] == name


def test_max_length() -> None:
    error = problem(CREATE_REPO, with_(CREATE_REPO, description="x" * 120))
    assert str(error) == "description: longer than 100 characters (120)"
    assert compile_body(CREATE_REPO)(with_(CREATE_REPO, description="x" * 100))


def test_min_length_one_means_not_empty() -> None:
    assert str(problem(PAT_PATCH, {"token_label": ""})) == "token_label: must not be empty"


def test_enum() -> None:
    error = problem(MEMBER_ROLE, {"role": "admin"})
    assert str(error) == 'role: "admin" is not one of owner, editor, member'
    assert error.field == "role"


def test_enum_in_nested_items_names_the_position() -> None:
    error = problem(PAT_CREATE, with_(PAT_CREATE, scopes=["repo:read", "repo:delete"]))
    assert str(error) == (
        'scopes[1]: "repo:delete" is not one of repo:admin, repo:write, repo:read, repo:public_read'
    )
    assert error.field == "scopes[1]"


def test_nested_object_in_array() -> None:
    body = with_(OAT_CREATE, resources=[{"type": "TYPE_REPO", "path": "acme/*", "scopes": 7}])
    error = problem(OAT_CREATE, body)
    assert str(error) == "resources[0].scopes: expected a list, got 7"
    assert error.field == "resources[0].scopes"


def test_nested_object_fields_required() -> None:
    body = with_(ORG_SETTINGS, restricted_images={"enabled": True})
    assert str(problem(ORG_SETTINGS, body)) == (
        "restricted_images.allow_official_images: required; "
        "restricted_images.allow_verified_publishers: required"
    )


@pytest.mark.parametrize(
    ("operation", "field", "value", "message"),
    [
        (CREATE_REPO, "is_private", "maybe", 'is_private: expected true or false, got "maybe"'),
        (CREATE_REPO, "is_private", 2, "is_private: expected true or false, got 2"),
        (CREATE_REPO, "name", True, "name: expected a string, got true"),
        (CREATE_REPO, "name", ["a"], "name: expected a string, got a list"),
        (CREATE_REPO, "name", None, "name: expected a string, got null"),
        (REPO_GROUP, "group_id", "4.2", 'group_id: expected an integer, got "4.2"'),
        (REPO_GROUP, "group_id", 4.2, "group_id: expected an integer, got 4.2"),
        (REPO_GROUP, "group_id", False, "group_id: expected an integer, got false"),
        (
            REPO_GROUP,
            "group_id",
            2**63,
            "group_id: 9223372036854775808 does not fit in a 64-bit integer",
        ),
        (PAT_CREATE, "scopes", {"a": 1}, "scopes: expected a list, got an object"),
        (
            ORG_SETTINGS,
            "restricted_images",
            "yes",
            'restricted_images: expected an object, got "yes"',
        ),
        (
            ORG_SETTINGS,
            "restricted_images",
            "{not json",
            'restricted_images: "{not json" is not valid JSON',
        ),
        (PAT_CREATE, "scopes", "[1,", 'scopes: "[1," is not valid JSON'),
    ],
)
def test_type_rules(operation: str, field: str, value: Any, message: str) -> None:
    error = problem(operation, with_(operation, **{field: value}))
    assert str(error).startswith(message)
    assert error.field == field


def test_unknown_field_is_rejected() -> None:
    error = problem(CREATE_REPO, with_(CREATE_REPO, colour="blue"))
    assert str(error) == (
        "colour: unknown field (allowed: name, namespace, description, full_description, "
        "registry, is_private)"
    )
    assert error.field == "colour"


def test_unknown_field_in_nested_object() -> None:
    body = with_(OAT_PATCH, resources=[{"type": "TYPE_REPO", "path": "a/b", "scopes": [], "x": 1}])
    error = problem(OAT_PATCH, body)
    assert str(error) == "resources[0].x: unknown field (allowed: type, path, scopes)"


def test_every_problem_is_reported_and_field_is_the_first() -> None:
    body = {"name": "My_App", "description": "x" * 101, "is_private": "maybe", "extra": 1}
    error = problem(CREATE_REPO, body)
    assert error.field == "name"
    assert error.message.split("; ") == [
        'name: "My_App" does not match the pattern ^[a-z0-9]+(?:[._-][a-z0-9]+)*$ '
        "(lowercase letters, digits, and . _ - between them)",
        "description: longer than 100 characters (101)",
        'is_private: expected true or false, got "maybe"',
        "extra: unknown field (allowed: name, namespace, description, full_description, "
        "registry, is_private)",
        "namespace: required",
    ]


def test_many_problems_are_counted_not_listed() -> None:
    body = with_(BULK_INVITE, invitees=[["x"]] * 25)
    error = problem(BULK_INVITE, body)
    assert error.message.count("expected a string, got a list") == 10
    assert error.message.endswith("; and 15 more problems")
    assert error.field == "invitees[0]"


def test_hand_built_operation_gets_its_own_checker() -> None:
    spec_op = find_operation(GROUP_MEMBER_ADD)
    schema = {"type": "object", "properties": {"member": {"type": "string", "minLength": 3}}}
    custom = dataclasses.replace(spec_op, body_schema=schema)
    assert str(problem(custom, {"member": "jo"})) == "member: shorter than 3 characters (2)"
    assert compile_body(GROUP_MEMBER_ADD)({"member": "jo"}) == {"member": "jo"}


def test_body_that_is_not_an_object() -> None:
    error = problem(CREATE_REPO, ["payments-api"])
    assert str(error) == "request body: expected an object, got a list"
    assert error.field is None


def test_missing_body() -> None:
    assert str(problem(CREATE_REPO, None)) == "CreateRepository needs a request body"
    # PATCH of a team does not require a body.
    assert compile_body(GROUP_PATCH)(None) is None


def test_operation_without_body() -> None:
    check = compile_body("DELETE /v2/access-tokens/{uuid}")
    assert check(None) is None
    with pytest.raises(SchemaViolation, match="takes no request body"):
        check({"x": 1})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-10-28", "is not an ISO-8601 date-time"),
        ("tomorrow", "is not an ISO-8601 date-time"),
        ("2026-13-01T00:00:00Z", "is not a valid date-time"),
        ("2026-02-30T00:00:00Z", "is not a valid date-time"),
        ("2026-01-01T00:00:00+25:00", "is not a valid date-time"),
        ("2026-10-28T18:30:19", "has no time zone"),
    ],
)
def test_date_time_is_validated(value: str, message: str) -> None:
    error = problem(PAT_CREATE, with_(PAT_CREATE, expires_at=value))
    assert message in str(error)
    assert error.field == "expires_at"


def test_date_time_forms_that_pass() -> None:
    check = compile_body(PAT_CREATE)
    for value in (
        "2026-10-28T18:30:19Z",
        "2026-10-28T18:30:19.5+02:00",
        "2026-10-28T18:30:19-07:00",
    ):
        assert check(with_(PAT_CREATE, expires_at=value))["expires_at"] == value


def test_nullable() -> None:
    check = compile_body(OAT_CREATE)
    assert check(with_(OAT_CREATE, expires_at=None))["expires_at"] is None
    # PAT expiry is not nullable: leave it out instead.
    error = problem(PAT_CREATE, with_(PAT_CREATE, expires_at=None))
    assert str(error) == "expires_at: expected a string, got null"


# --------------------------------------------------------------------------- coercion


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        (" Yes ", True),
        ("1", True),
        (1, True),
        ("false", False),
        ("No", False),
        ("0", False),
        (0, False),
    ],
)
def test_boolean_coercion(text: Any, expected: bool) -> None:
    result = compile_body(CREATE_REPO)(with_(CREATE_REPO, is_private=text))
    assert result["is_private"] is expected


def test_coercion_returns_a_new_body_and_leaves_the_input_alone() -> None:
    body = with_(CREATE_REPO, is_private="true")
    result = compile_body(CREATE_REPO)(body)
    assert result["is_private"] is True
    assert body["is_private"] == "true"
    assert result is not body


@pytest.mark.parametrize(("text", "expected"), [("42", 42), (" -7 ", -7), ("+3", 3), (12.0, 12)])
def test_integer_coercion(text: Any, expected: int) -> None:
    result = compile_body(REPO_GROUP)({"group_id": text, "permission": "read"})
    assert result["group_id"] == expected
    assert type(result["group_id"]) is int


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repo:read,repo:write", ["repo:read", "repo:write"]),
        (" repo:read , repo:write ,", ["repo:read", "repo:write"]),
        ("repo:admin", ["repo:admin"]),
        ('["repo:read", "repo:public_read"]', ["repo:read", "repo:public_read"]),
        (("repo:read",), ["repo:read"]),
    ],
)
def test_list_coercion(text: Any, expected: list[str]) -> None:
    assert compile_body(PAT_CREATE)(with_(PAT_CREATE, scopes=text))["scopes"] == expected


def test_list_string_items_are_checked_after_splitting() -> None:
    error = problem(PAT_CREATE, with_(PAT_CREATE, scopes="repo:read,repo:delete"))
    assert error.field == "scopes[1]"


def test_json_string_for_nested_objects() -> None:
    resources = (
        '[{"type": "TYPE_REPO", "path": "acme/*", "scopes": "scope-image-pull,scope-image-push"}]'
    )
    result = compile_body(OAT_CREATE)(with_(OAT_CREATE, resources=resources))
    assert result["resources"] == [
        {"type": "TYPE_REPO", "path": "acme/*", "scopes": ["scope-image-pull", "scope-image-push"]}
    ]
    settings_json = (
        '{"enabled": "true", "allow_official_images": "no", "allow_verified_publishers": 1}'
    )
    result = compile_body(ORG_SETTINGS)({"restricted_images": settings_json})
    assert result == {
        "restricted_images": {
            "enabled": True,
            "allow_official_images": False,
            "allow_verified_publishers": True,
        }
    }


def test_numbers_become_strings_for_string_fields() -> None:
    result = compile_body(CREATE_REPO)(with_(CREATE_REPO, name=2024, description=1.5))
    assert (result["name"], result["description"]) == ("2024", "1.5")


def test_str_subclasses_are_strings() -> None:
    class Role(enum.StrEnum):
        OWNER = "owner"

    result = compile_body(MEMBER_ROLE)({"role": Role.OWNER})
    assert result == {"role": "owner"}
    assert type(result["role"]) is str


def test_enum_case_is_folded() -> None:
    # The members list answers with capitalised roles; a re-imported export must still work.
    assert compile_body(MEMBER_ROLE)({"role": "Owner"}) == {"role": "owner"}
    assert compile_body(REPO_GROUP)({"group_id": 1, "permission": "ADMIN"})["permission"] == "admin"


def test_datetime_values_become_rfc3339_strings() -> None:
    check = compile_body(PAT_CREATE)
    naive = dt.datetime(2026, 10, 28, 18, 30, 19)
    aware = dt.datetime(2026, 10, 28, 18, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert check(with_(PAT_CREATE, expires_at=naive))["expires_at"] == "2026-10-28T18:30:19Z"
    assert check(with_(PAT_CREATE, expires_at=aware))["expires_at"] == "2026-10-28T18:30:00+02:00"
    assert check(with_(PAT_CREATE, expires_at="2026-10-28 18:30:19z"))["expires_at"] == (
        "2026-10-28T18:30:19Z"
    )
    error = problem(PAT_CREATE, with_(PAT_CREATE, expires_at=dt.date(2026, 10, 28)))
    assert "without a time" in str(error)


# --------------------------------------------------------------------------- spec corrections


def test_oat_create_requires_label_and_resources() -> None:
    # Stored spec: property-level `required: true` (invalid); Hub requires both.
    assert str(problem(OAT_CREATE, without(OAT_CREATE, "label"))) == "label: required"
    assert str(problem(OAT_CREATE, without(OAT_CREATE, "resources"))) == "resources: required"


def test_oat_create_needs_at_least_one_resource() -> None:
    assert (
        str(problem(OAT_CREATE, with_(OAT_CREATE, resources=[]))) == "resources: must not be empty"
    )
    # An empty CSV cell splits into no resources at all.
    assert (
        str(problem(OAT_CREATE, with_(OAT_CREATE, resources=""))) == "resources: must not be empty"
    )


def test_oat_resource_fields_are_required() -> None:
    error = problem(OAT_PATCH, {"resources": [{"path": "acme/*"}]})
    assert str(error) == "resources[0].type: required; resources[0].scopes: required"


def test_oat_resource_type_enum() -> None:
    body = with_(OAT_CREATE, resources=[{"type": "TYPE_X", "path": "a", "scopes": []}])
    assert str(problem(OAT_CREATE, body)) == (
        'resources[0].type: "TYPE_X" is not one of TYPE_REPO, TYPE_ORG'
    )


def test_immutable_tags_verify_takes_a_regex_without_commas() -> None:
    # Stored spec: a Docker-path pattern that rejects its own example `v.*`.
    check = compile_body(IMMUTABLE_VERIFY)
    for regex in ("v.*", ".*-RELEASE", "^v[0-9]+\\.[0-9]+$"):
        assert check({"regex": regex}) == {"regex": regex}
    error = problem(IMMUTABLE_VERIFY, {"regex": "v1,v2"})
    assert str(error) == 'regex: "v1,v2" does not match the pattern ^[^,]*$ (no commas)'


def test_bulk_invite_role_is_free_form() -> None:
    body = with_(BULK_INVITE, role="distributor_member")
    assert compile_body(BULK_INVITE)(body)["role"] == "distributor_member"
    assert str(problem(BULK_INVITE, without(BULK_INVITE, "invitees"))) == "invitees: required"


def test_bulk_invite_needs_one_invitee() -> None:
    assert (
        str(problem(BULK_INVITE, with_(BULK_INVITE, invitees=""))) == "invitees: must not be empty"
    )


def test_member_role_enum_is_lowercase_core_roles() -> None:
    check = compile_body(MEMBER_ROLE)
    assert [check({"role": role})["role"] for role in ("owner", "editor", "member")] == [
        "owner",
        "editor",
        "member",
    ]
    assert str(problem(MEMBER_ROLE, {})) == "role: required"
    assert str(problem(MEMBER_ROLE, {"role": "distributor_member"})).startswith(
        'role: "distributor_member" is not one of'
    )


def test_pat_scopes_enum_comes_from_the_prose() -> None:
    schema = find_operation(PAT_CREATE).body_schema
    assert schema is not None
    assert schema["properties"]["scopes"]["items"]["enum"] == [
        "repo:admin",
        "repo:write",
        "repo:read",
        "repo:public_read",
    ]


def test_team_patch_takes_a_role() -> None:
    check = compile_body(GROUP_PATCH)
    assert check({"role": "my_custom_role"}) == {"role": "my_custom_role"}
    assert str(problem(GROUP_PATCH, {"role": ""})) == "role: must not be empty"


def test_team_create_and_replace_need_a_body() -> None:
    for operation in (GROUP_CREATE, GROUP_PUT):
        assert find_operation(operation).body_required is True
        assert "needs a request body" in str(problem(operation, None))
        assert str(problem(operation, {"description": "d"})) == "name: required"


def test_group_member_body_is_member_name() -> None:
    assert str(problem(GROUP_MEMBER_ADD, {})) == "member: required"
    assert str(problem(GROUP_MEMBER_ADD, {"username": "x"})).startswith("username: unknown field")


def test_org_settings_all_flags_required_via_all_of() -> None:
    schema = find_operation(ORG_SETTINGS).body_schema
    assert schema is not None
    inner = schema["properties"]["restricted_images"]
    assert inner["required"] == ["enabled", "allow_official_images", "allow_verified_publishers"]
    assert "allOf" not in inner


def test_auth_token_body_required() -> None:
    assert find_operation("AuthCreateAccessToken").body_required is True
    body = {"identifier": "acme", "secret": "dckr_oat_7f3kQ9xZ2mLp8RtV"}
    assert compile_body("AuthCreateAccessToken")(body) is body


def test_scim_schemas_need_one_item() -> None:
    error = problem("POST /v2/scim/2.0/Users", {"schemas": [], "userName": "a@example.com"})
    assert str(error) == "schemas: must not be empty"


def test_resolved_schemas_hold_no_refs_or_all_of() -> None:
    for op in operations():
        text = orjson.dumps(op.body_schema).decode()
        assert "$ref" not in text and "allOf" not in text, op.key
        assert '"required":true' not in text, op.key


def test_resolve_merges_all_of_bounds_and_required() -> None:
    node = {
        "allOf": [
            {"type": "object", "required": ["a"], "properties": {"a": {"maxLength": 10}}},
            {"required": ["b"], "properties": {"a": {"maxLength": 5, "minLength": 1}, "b": {}}},
        ]
    }
    merged = resolve_schema(node, {})
    assert merged["required"] == ["a", "b"]
    assert merged["properties"]["a"] == {"maxLength": 5, "minLength": 1}


def test_resolve_reports_dangling_and_cyclic_refs() -> None:
    with pytest.raises(ConfigError, match="missing"):
        resolve_schema({"$ref": "#/components/schemas/nope"}, {"components": {"schemas": {}}})
    spec = {"components": {"schemas": {"a": {"items": {"$ref": "#/components/schemas/a"}}}}}
    with pytest.raises(ConfigError, match="cycle"):
        resolve_schema({"$ref": "#/components/schemas/a"}, spec)


# --------------------------------------------------------------------------- properties

BODY_OPERATIONS = [op for op in operations() if op.body_schema is not None]
RFC3339 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"
INT64 = (-(2**63), 2**63 - 1)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["true", "0", "42", "4.2", "a,b", "[1]", '{"a": 1}', "[", "{", "repo:read"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def schema_values(schema: dict[str, Any], mix: bool) -> st.SearchStrategy[Any]:
    """Values that fit ``schema`` (exactly typed or as CSV strings); with ``mix``, any field
    may instead hold an arbitrary JSON value."""
    kind = schema.get("type") or ("object" if "properties" in schema else None)
    if "enum" in schema:
        values = schema["enum"]
        made = st.sampled_from(values) | st.sampled_from([str(v).upper() for v in values])
    elif kind == "object":
        props = {
            name: schema_values(sub, mix) | json_values if mix else schema_values(sub, mix)
            for name, sub in schema.get("properties", {}).items()
        }
        required = {name: props[name] for name in schema.get("required", ()) if name in props}
        optional = {name: value for name, value in props.items() if name not in required}
        made = st.fixed_dictionaries(required, optional=optional)
    elif kind == "array":
        low, high = schema.get("minItems", 0), min(schema.get("maxItems", 4), 4)
        made = st.lists(schema_values(schema.get("items", {}), mix), min_size=low, max_size=high)
    elif kind == "string" and schema.get("format") == "date-time":
        moments = st.datetimes(timezones=st.just(dt.UTC))
        made = moments | moments.map(lambda m: m.isoformat().replace("+00:00", "Z"))
    elif kind == "string":
        low, high = schema.get("minLength", 0), min(schema.get("maxLength", 40), 40)
        if "pattern" in schema:
            made = st.from_regex(schema["pattern"], fullmatch=True)
            made = made.filter(lambda text: low <= len(text) <= high)
        else:
            made = st.text(min_size=low, max_size=high)
    elif kind == "integer":
        low, high = INT64 if schema.get("format") == "int64" else (None, None)
        numbers = st.integers(low, high)
        made = numbers | numbers.map(str)
    elif kind == "boolean":
        made = st.booleans() | st.sampled_from(["true", "False", "YES", "no", "1", "0"])
    else:
        made = json_values
    return made | st.none() if schema.get("nullable") else made


def strict_json_schema(node: Any) -> Any:
    """The resolved schema in JSON Schema terms, as strict as the checker means it:
    `nullable` as a type union, unknown fields refused, int64 bounds and RFC 3339 date-times."""
    if isinstance(node, list):
        return [strict_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict_json_schema(value) for key, value in node.items() if key != "nullable"}
    if "properties" in node:
        out.setdefault("type", "object")
        out.setdefault("additionalProperties", False)
    if node.get("format") == "int64":
        out["minimum"], out["maximum"] = INT64
    if node.get("format") == "date-time":
        out["pattern"] = RFC3339
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


@pytest.mark.parametrize("op", BODY_OPERATIONS, ids=lambda op: op.name)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_checker_agrees_with_json_schema(op: Operation, data: st.DataObject) -> None:
    assert op.body_schema is not None
    body = data.draw(
        schema_values(op.body_schema, mix=False)
        | schema_values(op.body_schema, mix=True)
        | json_values
    )
    check = compile_body(op)
    exact = jsonschema.Draft202012Validator(strict_json_schema(op.body_schema)).is_valid(body)
    try:
        result = check(body)
    except SchemaViolation as error:
        assert error.message
        assert not exact, "a body valid under the spec was rejected"
        return
    if result is None:  # "no body", allowed when the spec does not require one
        assert body is None and not op.body_required
        return
    # A coerced body is final: checking it again changes nothing, and it serialises.
    assert check(result) == result
    orjson.dumps(result)
    assert jsonschema.Draft202012Validator(strict_json_schema(op.body_schema)).is_valid(result)
    # The checker hands back the very object when it had nothing to coerce (an integral
    # float such as 0.0, which JSON Schema counts as an integer, it sends as 0).
    if exact and orjson.dumps(result) == orjson.dumps(body):
        assert result is body
