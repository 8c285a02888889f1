"""The Docker Hub endpoint templates: registry, golden requests, spec, encoding, absent values."""

from __future__ import annotations

import csv
import importlib.util
import io
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jsonschema  # type: ignore[import-untyped]
import orjson
import pytest
import yaml

from sink.errors import RenderError, SchemaViolation
from sink.model import Record
from sink.request import schema
from sink.request.batching import batches
from sink.request.render import Batching, for_template
from sink.request.spec import corrected_spec, resolve_schema
from sink.request.templates import (
    PLACEHOLDER,
    EndpointTemplate,
    load_registry,
    references,
    templates_dir,
)

BASE = "https://hub.docker.com"
REGISTRY = load_registry()
TEMPLATES_README = Path(__file__).resolve().parents[2] / "templates" / "README.md"

REQUIRED_IDS = [
    "create-repository",
    "create-personal-access-token",
    "update-personal-access-token",
    "delete-personal-access-token",
    "create-org-access-token",
    "update-org-access-token",
    "delete-org-access-token",
    "create-team",
    "update-team",
    "replace-team",
    "delete-team",
    "add-team-member",
    "remove-team-member",
    "update-member-role",
    "remove-member",
    "bulk-invite",
    "cancel-invite",
    "resend-invite",
    "update-org-settings",
    "grant-team-repository",
    "update-immutable-tags",
    "verify-immutable-tags",
]

PAT_UUID = "b30bbf97-506c-4ecd-aabc-842f3cb484fb"
OAT_ID = "a7a5ef25-8889-43a0-8cc7-f2a94268e861"
INVITE_ID = "e36eca69-4cc8-4f17-9845-ae8c2b832691"

# What each template's own example renders to: method, URL and body, written out literally.
GOLDEN: dict[str, tuple[str, str, Any]] = {
    "create-repository": (
        "POST",
        f"{BASE}/v2/namespaces/acme/repositories",
        {
            "name": "payments-api",
            "namespace": "acme",
            "description": "Payments service image",
            "is_private": True,
        },
    ),
    "create-personal-access-token": (
        "POST",
        f"{BASE}/v2/access-tokens",
        {
            "token_label": "ci-pipeline",
            "scopes": ["repo:read", "repo:write"],
            "expires_at": "2026-12-31T23:59:59Z",
        },
    ),
    "update-personal-access-token": (
        "PATCH",
        f"{BASE}/v2/access-tokens/{PAT_UUID}",
        {"token_label": "ci-pipeline (rotated)", "is_active": False},
    ),
    "delete-personal-access-token": ("DELETE", f"{BASE}/v2/access-tokens/{PAT_UUID}", None),
    "create-org-access-token": (
        "POST",
        f"{BASE}/v2/orgs/acme/access-tokens",
        {
            "label": "ci-pull-push",
            "description": "Token for the CI pipeline",
            "resources": [
                {
                    "type": "TYPE_REPO",
                    "path": "acme/*",
                    "scopes": ["scope-image-pull", "scope-image-push"],
                }
            ],
            "expires_at": "2026-12-31T23:59:59Z",
        },
    ),
    "update-org-access-token": (
        "PATCH",
        f"{BASE}/v2/orgs/acme/access-tokens/{OAT_ID}",
        {
            "description": "Pull only, for the release job",
            "resources": [
                {"type": "TYPE_REPO", "path": "acme/api", "scopes": ["scope-image-pull"]}
            ],
            "is_active": True,
        },
    ),
    "delete-org-access-token": ("DELETE", f"{BASE}/v2/orgs/acme/access-tokens/{OAT_ID}", None),
    "create-team": (
        "POST",
        f"{BASE}/v2/orgs/acme/groups",
        {"name": "platform", "description": "Builds and runs the shared platform"},
    ),
    "update-team": (
        "PATCH",
        f"{BASE}/v2/orgs/acme/groups/developers",
        {"name": "engineering", "description": "Everyone who ships code"},
    ),
    "replace-team": (
        "PUT",
        f"{BASE}/v2/orgs/acme/groups/developers",
        {"name": "engineering", "description": "Everyone who ships code"},
    ),
    "delete-team": ("DELETE", f"{BASE}/v2/orgs/acme/groups/contractors", None),
    "add-team-member": (
        "POST",
        f"{BASE}/v2/orgs/acme/groups/developers/members",
        {"member": "carol"},
    ),
    "remove-team-member": (
        "DELETE",
        f"{BASE}/v2/orgs/acme/groups/developers/members/bob",
        None,
    ),
    "update-member-role": ("PUT", f"{BASE}/v2/orgs/acme/members/bob", {"role": "editor"}),
    "remove-member": ("DELETE", f"{BASE}/v2/orgs/acme/members/dave", None),
    "bulk-invite": (
        "POST",
        f"{BASE}/v2/invites/bulk",
        {
            "org": "acme",
            "team": "developers",
            "role": "member",
            "invitees": ["grace@example.com"],
        },
    ),
    "cancel-invite": ("DELETE", f"{BASE}/v2/invites/{INVITE_ID}", None),
    "resend-invite": ("PATCH", f"{BASE}/v2/invites/{INVITE_ID}/resend", None),
    "update-org-settings": (
        "PUT",
        f"{BASE}/v2/orgs/acme/settings",
        {
            "restricted_images": {
                "enabled": True,
                "allow_official_images": True,
                "allow_verified_publishers": False,
            }
        },
    ),
    "grant-team-repository": (
        "POST",
        f"{BASE}/v2/repositories/acme/api/groups",
        {"group_id": 1001, "permission": "write"},
    ),
    "update-immutable-tags": (
        "PATCH",
        f"{BASE}/v2/namespaces/acme/repositories/api/immutabletags",
        {"immutable_tags": True, "immutable_tags_rules": ["v.*", ".*-RELEASE"]},
    ),
    "verify-immutable-tags": (
        "POST",
        f"{BASE}/v2/namespaces/acme/repositories/api/immutabletags/verify",
        {"regex": "v.*"},
    ),
}

DESTRUCTIVE = {
    "delete-personal-access-token",
    "delete-org-access-token",
    "delete-team",
    "remove-team-member",
    "remove-member",
    "cancel-invite",
}

# REFERENCE.md §2: OATs work on the routes the spec marks with <span class="oat"> and, per the
# newer revision and the docs, on the namespace-style repository routes and the repo-groups
# route. PAT/OAT management and org settings need a user's own credential (§11.14).
ACCEPTS_OAT = {
    "create-repository",
    "create-team",
    "update-team",
    "replace-team",
    "delete-team",
    "add-team-member",
    "remove-team-member",
    "update-member-role",
    "remove-member",
    "bulk-invite",
    "cancel-invite",
    "resend-invite",
    "grant-team-repository",
    "update-immutable-tags",
    "verify-immutable-tags",
}

# Fields a look-up matches on that the stored spec's answer lacks but Hub sends (REFERENCE.md
# §10: the newer revision adds `org_group.role`).
NEWER_FIELDS = {("update-team", "role")}

HOSTILE = ["a/b", "../orgs/x", "x?y#z", "50%", "é ü"]


def template_of(template_id: str) -> EndpointTemplate:
    return REGISTRY.get(template_id)


def render_example(template: EndpointTemplate, record: dict[str, Any] | None = None) -> Any:
    renderer = for_template(template, template.example_settings, BASE)
    data = dict(template.example) if record is None else record
    return renderer.render(Record(0, data))


def raw_operation(method: str, path: str) -> dict[str, Any]:
    operation = corrected_spec()["paths"][path][method.lower()]
    assert isinstance(operation, dict)
    return operation


def success_schema(method: str, path: str) -> dict[str, Any] | None:
    """The JSON schema of the operation's first 2xx answer, references resolved."""
    for code, answer in raw_operation(method, path)["responses"].items():
        if str(code).startswith("2"):
            resolved = resolve_schema(answer)
            content = resolved.get("content") or {}
            json_answer = content.get("application/json")
            return None if json_answer is None else json_answer.get("schema")
    return None


def simple_record_field(value: Any) -> str | None:
    """The record attribute a value reads when it is a plain ``{{ record.x }}`` look-up."""
    if not isinstance(value, str):
        return None
    match = re.fullmatch(r"\{\{ record\.([A-Za-z_][A-Za-z0-9_]*) \}\}", value)
    return match.group(1) if match else None


def segments(url: str) -> list[str]:
    return urlsplit(url).path.split("/")


# --------------------------------------------------------------------------- the registry


def test_registry_holds_exactly_the_required_templates() -> None:
    assert [template.id for template in REGISTRY] == sorted(REQUIRED_IDS)
    assert len(REGISTRY) == 22


def test_every_template_has_a_golden_case() -> None:
    assert set(GOLDEN) == set(REQUIRED_IDS)


@pytest.mark.parametrize("template_id", REQUIRED_IDS)
def test_template_documents_itself(template_id: str) -> None:
    template = template_of(template_id)
    assert template.title and len(template.description) > 40
    assert template.scope and template.credentials
    assert template.example, "a template needs a realistic example record"
    for name in template.settings_fields:
        if name != "dry_run":  # optional: a bulk invite without it is a real invite
            assert name in template.example_settings


def test_templates_readme_documents_every_field() -> None:
    text = TEMPLATES_README.read_text(encoding="utf-8")
    for name in EndpointTemplate.model_fields:
        assert f"`{name}`" in text, f"templates/README.md does not describe `{name}`"
    for template_id in REQUIRED_IDS:
        assert f"| {template_id} |" in text


# --------------------------------------------------------------------------- golden requests


@pytest.mark.parametrize("template_id", REQUIRED_IDS)
def test_golden_request(template_id: str) -> None:
    method, url, body = GOLDEN[template_id]
    template = template_of(template_id)
    request = render_example(template)
    assert request.method == method
    assert request.url == url
    assert request.template == template_id
    if body is None:
        assert request.body is None
        assert request.headers == ()
    else:
        assert request.body is not None
        assert orjson.loads(request.body) == body
        assert ("Content-Type", "application/json") in request.headers
    assert not any(name.lower() == "authorization" for name, _ in request.headers)


@pytest.mark.parametrize("template_id", [key for key, value in GOLDEN.items() if value[2]])
def test_golden_body_satisfies_the_spec_request_schema(template_id: str) -> None:
    template = template_of(template_id)
    operation = schema.find_operation(template.operation)
    assert operation.body_schema is not None
    body = GOLDEN[template_id][2]
    # sink's own checker takes the body as it is (nothing left to coerce) ...
    assert schema.compile_body(operation)(body) == body
    # ... and an independent JSON-schema validator agrees.
    jsonschema.Draft7Validator(operation.body_schema).validate(body)


# --------------------------------------------------------------------------- against the spec


@pytest.mark.parametrize("template_id", REQUIRED_IDS)
def test_method_and_path_are_those_of_the_named_spec_operation(template_id: str) -> None:
    template = template_of(template_id)
    operation = schema.find_operation(template.operation)
    assert (operation.method, operation.path) == (template.method, template.path)
    # Named by operationId where the spec has one, else exactly "METHOD /path".
    expected_name = operation.operation_id or f"{template.method} {template.path}"
    assert template.operation == expected_name


@pytest.mark.parametrize("template_id", REQUIRED_IDS)
def test_body_fields_are_declared_by_the_request_schema(template_id: str) -> None:
    template = template_of(template_id)
    operation = schema.find_operation(template.operation)
    if template.body is None:
        assert operation.body_schema is None or not operation.body_required
        return
    assert operation.body_schema is not None

    def check(body: Any, declared: dict[str, Any], where: str) -> None:
        properties = declared.get("properties") or {}
        for key, value in body.items():
            assert key in properties, f"{where}{key} is not in the request schema"
            if isinstance(value, dict):
                check(value, properties[key], f"{where}{key}.")

    check(template.body, operation.body_schema, "")


@pytest.mark.parametrize("template_id", REQUIRED_IDS)
def test_oat_acceptance_follows_the_reference(template_id: str) -> None:
    template = template_of(template_id)
    assert ("oat" in template.credentials) == (template_id in ACCEPTS_OAT)
    description = raw_operation(template.method, template.path).get("description") or ""
    if 'class="oat"' in description:
        assert "oat" in template.credentials
    assert "password" in template.credentials  # every write endpoint takes an owner's password
    # Hub refuses PAT-derived tokens on org routes with "token issued from personal access token
    # is not allowed"; only repository routes and the calling user's own PATs take a PAT.
    assert ("pat" in template.credentials) == (template_id in ACCEPTS_PAT)


ACCEPTS_PAT = {
    "create-repository",
    "grant-team-repository",
    "update-immutable-tags",
    "verify-immutable-tags",
    "create-personal-access-token",
    "update-personal-access-token",
    "delete-personal-access-token",
}


def test_destructive_flags_are_set_exactly_on_deletes_and_removals() -> None:
    assert {template.id for template in REGISTRY if template.destructive} == DESTRUCTIVE
    for template in REGISTRY:
        assert template.destructive == (template.method == "DELETE")


def test_idempotent_flags_are_set_exactly_where_a_post_or_patch_has_no_look_up() -> None:
    # Such a request with an unknown outcome is sent again without a look-up: only where
    # sending it twice does what sending it once does.
    assert {t.id for t in REGISTRY if t.idempotent} == {
        "grant-team-repository",
        "verify-immutable-tags",
        "resend-invite",
        "update-immutable-tags",
        "update-org-access-token",
    }
    for template in REGISTRY:
        if template.method in ("POST", "PATCH"):
            assert template.idempotent == (template.exists is None), template.id


def test_a_post_without_a_look_up_must_say_it_is_idempotent() -> None:
    data = yaml.safe_load((templates_dir() / "grant-team-repository.yaml").read_text())
    del data["idempotent"]
    with pytest.raises(ValueError, match="must be `idempotent: true`"):
        EndpointTemplate.model_validate(data)


@pytest.mark.parametrize("template_id", REQUIRED_IDS)
def test_secrets_and_resource_id_are_fields_of_the_answer(template_id: str) -> None:
    template = template_of(template_id)
    answer = success_schema(template.method, template.path)
    fields = set((answer or {}).get("properties") or {})
    for name in template.secrets:
        assert name in fields
    if template.resource_id is not None:
        assert template.resource_id in fields


def test_only_token_creation_has_secrets() -> None:
    with_secrets = {template.id: template.secrets for template in REGISTRY if template.secrets}
    assert with_secrets == {
        "create-personal-access-token": ["token"],
        "create-org-access-token": ["token"],
    }


@pytest.mark.parametrize(
    "template_id", [template.id for template in REGISTRY if template.exists is not None]
)
def test_lookup_is_a_spec_read_route_whose_items_have_the_matched_fields(template_id: str) -> None:
    template = template_of(template_id)
    lookup = template.exists
    assert lookup is not None
    operation = schema.find_operation(f"{lookup.method} {lookup.path}")
    assert operation.path == lookup.path
    assert lookup.effect == ("absent" if template.destructive else "present")
    if lookup.list is None:
        assert not lookup.match
        return
    answer = success_schema(lookup.method, lookup.path)
    assert answer is not None
    if answer.get("type") == "array":  # members list: an array of pages by mistake (§11.4)
        answer = answer["items"]
    items = answer["properties"][lookup.list]["items"]["properties"]
    for name in [*lookup.match, *([lookup.id_field] if lookup.id_field else [])]:
        assert name in items or (template_id, name) in NEWER_FIELDS, name
    assert lookup.match, "a list look-up needs something to match"


def test_lookup_requests_render_for_every_example() -> None:
    for template in REGISTRY:
        renderer = for_template(template, template.example_settings, BASE)
        found = renderer.lookup(Record(0, dict(template.example)))
        if template.exists is None:
            assert found is None
            continue
        assert found is not None
        spec, request = found
        assert request.method == spec.method and request.body is None
        assert request.url.startswith(f"{BASE}/v2/")
        if spec.list is not None:
            match = renderer.lookup_match(spec, Record(0, dict(template.example)))
            assert match and all(value not in (None, "") for value in match.values())


def test_lookup_urls_of_member_templates() -> None:
    renderer = for_template(template_of("update-member-role"), {"org": "acme"}, BASE)
    record = Record(0, {"username": "bob", "role": "Owner"})
    found = renderer.lookup(record)
    assert found is not None
    spec, request = found
    assert request.url == f"{BASE}/v2/orgs/acme/members?search=bob"
    assert renderer.lookup_match(spec, record) == {"username": "bob", "role": "Owner"}

    renderer = for_template(template_of("update-team"), {"org": "acme"}, BASE)
    renamed = Record(0, {"team": "developers", "new_name": "engineering"})
    found = renderer.lookup(renamed)
    assert found is not None
    spec = found[0]
    assert renderer.lookup_match(spec, renamed) == {"name": "engineering"}
    kept = Record(0, {"team": "developers", "description": "Ships code"})
    assert renderer.lookup_match(spec, kept) == {"name": "developers", "description": "Ships code"}


# --------------------------------------------------------------------------- encoding


def _record_path_fields(template: EndpointTemplate) -> list[tuple[str, str]]:
    """(placeholder, record field) for every path value read from the record."""
    out = []
    for placeholder, value in template.params.items():
        for name in references(iter([value]), "record"):
            out.append((placeholder, name))
    return out


PATH_CASES = [
    (template.id, placeholder, field, value)
    for template in REGISTRY
    for placeholder, field in _record_path_fields(template)
    for value in HOSTILE
]


def test_path_cases_cover_every_record_valued_placeholder() -> None:
    covered = {(case[0], case[1]) for case in PATH_CASES}
    assert len(covered) == 17
    assert ("remove-team-member", "username") in covered
    assert ("grant-team-repository", "repository") in covered


@pytest.mark.parametrize(("template_id", "placeholder", "field", "value"), PATH_CASES)
def test_record_path_values_stay_in_their_segment(
    template_id: str, placeholder: str, field: str, value: str
) -> None:
    template = template_of(template_id)
    record = dict(template.example)
    record[field] = value
    request = render_example(template, record)
    parts = urlsplit(request.url)
    assert (parts.scheme, parts.netloc, parts.query, parts.fragment) == (
        "https",
        "hub.docker.com",
        "",
        "",
    )
    spec_segments = template.path.split("/")
    got = segments(request.url)
    assert len(got) == len(spec_segments)
    position = spec_segments.index("{" + placeholder + "}")
    assert got[position] == quote(value, safe="")
    for index, part in enumerate(spec_segments):
        if not PLACEHOLDER.fullmatch(part):
            assert got[index] == part  # the literal segments are untouched


@pytest.mark.parametrize("value", HOSTILE)
def test_settings_path_values_are_encoded_too(value: str) -> None:
    template = template_of("create-team")
    request = for_template(template, {"org": value}, BASE).render(Record(0, {"team": "qa"}))
    assert segments(request.url) == ["", "v2", "orgs", quote(value, safe=""), "groups"]


@pytest.mark.parametrize("value", ["", ".", ".."])
def test_empty_or_dot_path_values_reject_the_record(value: str) -> None:
    template = template_of("delete-team")
    with pytest.raises(RenderError):
        render_example(template, {"team": value})


def test_lookup_query_values_are_encoded() -> None:
    renderer = for_template(template_of("remove-member"), {"org": "acme"}, BASE)
    found = renderer.lookup(Record(0, {"username": "x&role=owner#y"}))
    assert found is not None
    assert found[1].url == f"{BASE}/v2/orgs/acme/members?search=x%26role%3Downer%23y"


# --------------------------------------------------------------------------- absent values


def _optional_body_fields(template: EndpointTemplate) -> list[tuple[str, str]]:
    """(body key, record field) for top-level body keys the spec does not require."""
    operation = schema.find_operation(template.operation)
    if not isinstance(template.body, dict) or operation.body_schema is None:
        return []
    required = set(operation.body_schema.get("required") or ())
    out = []
    for key, value in template.body.items():
        field = simple_record_field(value)
        if field is not None and key not in required:
            out.append((key, field))
    return out


ABSENT_CASES = [
    (template.id, key, field, missing)
    for template in REGISTRY
    for key, field in _optional_body_fields(template)
    for missing in ("drop", "", None)
]


def test_absent_cases_cover_the_optional_fields() -> None:
    covered = {(case[0], case[1]) for case in ABSENT_CASES}
    assert ("create-repository", "description") in covered
    assert ("create-personal-access-token", "expires_at") in covered
    assert ("update-team", "name") in covered
    assert ("bulk-invite", "team") in covered
    assert len(covered) >= 20


@pytest.mark.parametrize(("template_id", "key", "field", "missing"), ABSENT_CASES)
def test_absent_optional_fields_are_left_out(
    template_id: str, key: str, field: str, missing: str | None
) -> None:
    template = template_of(template_id)
    record = dict(template.example)
    if missing == "drop":
        record.pop(field, None)
    else:
        record[field] = missing
    request = render_example(template, record)
    body = orjson.loads(request.body or b"{}")
    assert key not in body
    expected = {k: v for k, v in GOLDEN[template_id][2].items() if k != key}
    assert body == expected


def test_absent_settings_leave_optional_fields_out() -> None:
    template = template_of("bulk-invite")
    with_dry_run = for_template(template, {"org": "acme", "dry_run": "true"}, BASE)
    request = with_dry_run.render(Record(0, {"invitee": "bob"}))
    assert orjson.loads(request.body or b"") == {
        "org": "acme",
        "invitees": ["bob"],
        "dry_run": True,
    }
    request = render_example(template, {"invitee": "bob"})
    assert orjson.loads(request.body or b"") == {"org": "acme", "invitees": ["bob"]}


@pytest.mark.parametrize(
    ("template_id", "field"),
    [
        ("create-repository", "name"),
        ("create-personal-access-token", "scopes"),
        ("create-org-access-token", "resources"),
        ("create-team", "team"),
        ("add-team-member", "username"),
        ("update-member-role", "role"),
        ("update-org-settings", "allow_verified_publishers"),
        ("grant-team-repository", "group_id"),
        ("update-immutable-tags", "rules"),
        ("verify-immutable-tags", "regex"),
    ],
)
def test_a_missing_required_field_rejects_the_record(template_id: str, field: str) -> None:
    template = template_of(template_id)
    record = dict(template.example)
    del record[field]
    with pytest.raises((SchemaViolation, RenderError)):
        render_example(template, record)


def test_a_bulk_invite_without_invitee_is_rejected() -> None:
    with pytest.raises(SchemaViolation):
        render_example(template_of("bulk-invite"), {"team": "developers"})


# --------------------------------------------------------------------------- CSV values


def test_replace_team_keeps_the_current_name_when_no_new_name_is_given() -> None:
    request = render_example(template_of("replace-team"), {"team": "qa", "new_name": ""})
    assert orjson.loads(request.body or b"") == {"name": "qa"}
    request = render_example(template_of("replace-team"), {"team": "qa", "new_name": "quality"})
    assert orjson.loads(request.body or b"") == {"name": "quality"}
    assert request.url == f"{BASE}/v2/orgs/acme/groups/qa"


def test_record_values_are_sent_as_text_never_evaluated() -> None:
    template = template_of("replace-team")
    request = render_example(template, {"team": "qa", "new_name": "{{ 7*7 }}"})
    assert orjson.loads(request.body or b"") == {"name": "{{ 7*7 }}"}


@pytest.mark.parametrize(
    ("template_id", "change", "field"),
    [
        ("create-repository", {"name": "Payments"}, "name"),
        ("create-repository", {"description": "x" * 101}, "description"),
        ("create-personal-access-token", {"scopes": "repo:read,repo:everything"}, "scopes[1]"),
        ("create-personal-access-token", {"expires_at": "next year"}, "expires_at"),
        ("create-org-access-token", {"resources": '[{"type": "TYPE_USER"}]'}, "resources[0].type"),
        ("update-member-role", {"role": "boss"}, "role"),
        ("grant-team-repository", {"permission": "delete"}, "permission"),
        ("grant-team-repository", {"group_id": "developers"}, "group_id"),
        ("update-org-settings", {"enabled": "maybe"}, "restricted_images.enabled"),
        ("verify-immutable-tags", {"regex": "v1,v2"}, "regex"),
    ],
)
def test_invalid_values_name_their_field(
    template_id: str, change: dict[str, str], field: str
) -> None:
    template = template_of(template_id)
    with pytest.raises(SchemaViolation) as caught:
        render_example(template, {**template.example, **change})
    assert caught.value.field == field
    assert caught.value.index == 0


def test_member_roles_as_the_members_list_spells_them_are_folded() -> None:
    record = {"username": "bob", "role": "Owner"}
    request = render_example(template_of("update-member-role"), record)
    assert orjson.loads(request.body or b"") == {"role": "owner"}


def test_immutable_tag_rules_given_as_json_text_keep_their_commas() -> None:
    record = {"repository": "api", "enabled": "false", "rules": '["v[0-9]{1,3}"]'}
    request = render_example(template_of("update-immutable-tags"), record)
    assert orjson.loads(request.body or b"") == {
        "immutable_tags": False,
        "immutable_tags_rules": ["v[0-9]{1,3}"],
    }
    record["rules"] = "[]"
    request = render_example(template_of("update-immutable-tags"), record)
    assert orjson.loads(request.body or b"")["immutable_tags_rules"] == []


# --------------------------------------------------------------------------- bulk invites


def test_bulk_invite_batches_invitees_by_team_and_role() -> None:
    template = template_of("bulk-invite")
    assert template.batch is not None and template.batch.property == "invitees"
    renderer = for_template(
        template,
        {"org": "acme"},
        BASE,
        batching=Batching(mode="json_property", size=2, property="invitees"),
    )
    rows = [
        {"invitee": "grace@example.com", "team": "developers", "role": "member"},
        {"invitee": "heidi@example.com", "team": "qa", "role": "member"},
        {"invitee": "ivan@example.com", "team": "developers", "role": "member"},
        {"invitee": "judy@example.com", "team": "developers", "role": "member"},
    ]
    items = [renderer.item(Record(index, row)) for index, row in enumerate(rows)]
    requests = [renderer.request(batch) for batch in batches(items, 2)]
    bodies = [(request.indexes, orjson.loads(request.body or b"")) for request in requests]
    assert bodies == [
        (
            (0, 2),
            {
                "org": "acme",
                "team": "developers",
                "role": "member",
                "invitees": ["grace@example.com", "ivan@example.com"],
            },
        ),
        (
            (1,),
            {"org": "acme", "team": "qa", "role": "member", "invitees": ["heidi@example.com"]},
        ),
        (
            (3,),
            {
                "org": "acme",
                "team": "developers",
                "role": "member",
                "invitees": ["judy@example.com"],
            },
        ),
    ]
    assert {request.url for request in requests} == {f"{BASE}/v2/invites/bulk"}


def test_bulk_invite_result_mapping_follows_the_answer() -> None:
    template = template_of("bulk-invite")
    assert template.batch is not None
    # REFERENCE.md §11.6: the stored spec wraps the 202 twice; Hub sends {"invitees": [...]}.
    answer = success_schema("POST", "/v2/invites/bulk")
    assert answer is not None
    inner = answer["properties"]["invitees"]["properties"]["invitees"]["items"]["properties"]
    assert template.batch.result_list == "invitees"
    assert template.batch.result_match in inner
    assert template.batch.result_status in inner
    assert "invited" in template.batch.ok_statuses
    assert "invalid_email_or_docker_id" not in template.batch.ok_statuses


# --------------------------------------------------------------------------- the samples

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SEED = Path(__file__).resolve().parents[2] / "sink" / "hubsim" / "default_seed.yaml"

# config → (template or "manual", records, requests): every main sample previews clean.
CLEAN_SAMPLES = {
    "repositories.yaml": ("create-repository", 10, 10),
    "repositories-parquet.yaml": ("create-repository", 10, 10),
    "tokens.yaml": ("create-personal-access-token", 4, 4),
    "teams.yaml": ("create-team", 4, 4),
    "team-members.yaml": ("add-team-member", 6, 6),
    "invites.yaml": ("bulk-invite", 5, 2),
    "roles.yaml": ("update-member-role", 3, 3),
    "team-descriptions.yaml": ("manual", 2, 2),
}


def preview_sample(config: str) -> tuple[Any, list[dict[str, Any]]]:
    from sink.destination import open_destination
    from sink.preview import preview

    destination = open_destination(SAMPLES / config)
    out = io.BytesIO()
    source = destination.path(destination.config.input)
    report = preview(destination, source, limit=None, out=out)
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    return report, lines


def test_every_sample_config_is_covered() -> None:
    configs = {path.name for path in SAMPLES.glob("*.yaml")} - {"hubsim-seed.yaml"}
    assert configs == {*CLEAN_SAMPLES, "invalid-repositories.yaml"}


@pytest.mark.parametrize("config", sorted(CLEAN_SAMPLES))
def test_sample_previews_clean(config: str) -> None:
    template_id, records, requests = CLEAN_SAMPLES[config]
    report, lines = preview_sample(config)
    assert [rejected.error for rejected in report.rejected] == []
    assert (report.records, report.requests, len(lines)) == (records, requests, requests)
    for line in lines:
        assert line["url"].startswith(f"{BASE}/v2/")
        assert line["headers"]["Authorization"] == "Bearer ***"
    from sink.config import load_config

    loaded, _ = load_config(SAMPLES / config)
    assert (loaded.template or "manual") == template_id
    assert loaded.connection.secret_env == "SINK_HUB_SECRET"
    assert loaded.connection.base_url == BASE
    for output in (loaded.responses.file if loaded.responses else None, loaded.rejects):
        assert output is not None and output.startswith("out/")
    # Personal endpoints sign in as alice; organization endpoints as acme (an OAT).
    personal = template_id == "create-personal-access-token"
    assert loaded.connection.identifier == ("alice" if personal else "acme")
    if template_id != "manual":
        credential = "pat" if personal else "oat"
        assert credential in template_of(template_id).credentials


def test_invalid_sample_names_each_bad_record_and_renders_the_rest() -> None:
    report, lines = preview_sample("invalid-repositories.yaml")
    bad = [(rejected.index, rejected.field) for rejected in report.rejected]
    assert bad == [(0, "name"), (1, "name"), (2, "name"), (4, "description"), (5, "is_private")]
    assert [line["body"]["name"] for line in lines] == ["good-one"]


def test_parquet_sample_gives_the_same_requests_as_the_csv_one() -> None:
    _, from_csv = preview_sample("repositories.yaml")
    _, from_parquet = preview_sample("repositories-parquet.yaml")
    assert from_parquet == from_csv
    assert [line["body"]["is_private"] for line in from_csv].count(True) == 6
    assert "full_description" not in from_csv[1]["body"]


def test_make_parquet_reproduces_the_committed_file(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    spec = importlib.util.spec_from_file_location("make_parquet", SAMPLES / "make_parquet.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    target = tmp_path / "repositories.parquet"
    assert module.main([str(target)]) == 0
    fresh, committed = pq.read_table(target), pq.read_table(SAMPLES / "repositories.parquet")
    assert fresh.schema.field("is_private").type == "bool"
    assert fresh.equals(committed)


def test_sample_names_fit_the_simulator_seed() -> None:
    seed = yaml.safe_load(SEED.read_text(encoding="utf-8"))
    acme = next(org for org in seed["orgs"] if org["name"] == "acme")
    members = set(acme["members"])
    teams = {team["name"] for team in acme["teams"]} | set(read_column("teams.csv", "team"))
    users = {user["username"] for user in seed["users"]}
    assert set(read_column("team-members.csv", "username")) <= members
    assert set(read_column("team-members.csv", "team")) <= teams
    assert set(read_column("roles.csv", "username")) <= members
    assert set(read_column("team-descriptions.csv", "team")) <= teams
    new_teams = set(read_column("teams.csv", "team"))
    assert not new_teams & {team["name"] for team in acme["teams"]}
    existing = {repo["name"] for repo in seed["repositories"] if repo["namespace"] == "acme"}
    assert not existing & set(read_column("repositories.csv", "name"))
    invitees = set(read_column("invites.csv", "invitee"))
    assert not invitees & members  # invite people who are not in acme yet
    assert "dave" in invitees and "dave" in users
    assert {team for team in read_column("invites.csv", "team") if team} <= {
        team["name"] for team in acme["teams"]
    }


def read_column(name: str, column: str) -> list[str]:
    with (SAMPLES / name).open(newline="", encoding="utf-8") as handle:
        return [row[column] for row in csv.DictReader(handle)]


def test_a_template_takes_the_settings_its_values_read() -> None:
    for template in REGISTRY:
        assert set(template.example_settings) <= set(template.settings_fields), template.id
    invite = REGISTRY.get("bulk-invite")
    assert invite.settings_fields == ("org", "dry_run")


def test_an_unparsable_expression_is_a_config_error() -> None:
    from sink.errors import ConfigError

    with pytest.raises(ConfigError, match="does not parse"):
        references(iter(["{{ record.name "]), "record")


@pytest.mark.parametrize("template_id", REQUIRED_IDS)
def test_required_columns_are_the_fields_without_which_a_record_is_rejected(
    template_id: str, tmp_path: Path
) -> None:
    """What :mod:`sink.source.columns` calls required is what the renderer cannot do without: the
    example record less a required field is rejected, less an optional one renders."""
    from sink.config import parse_config
    from sink.destination import bind
    from sink.source.columns import Columns, check, needs

    template = REGISTRY.get(template_id)
    config = {
        "connection": {"identifier": "acme", "secret_env": "X"},
        "template": template.id,
        "settings": dict(template.example_settings),
    }
    destination = bind(parse_config(config), tmp_path)
    example = dict(template.example)
    assert check(destination, Columns(tuple(example), "the example")).problems == []
    required = {n.name for n in needs(destination) if n.required and not n.alternatives}
    for need in needs(destination):
        if need.name not in example or need.alternatives:
            continue
        record = Record(0, {k: v for k, v in example.items() if k != need.name}, key="k")
        if need.name in required:
            with pytest.raises((RenderError, SchemaViolation)):
                destination.renderer.render(record)
            found = check(destination, Columns(tuple(record.data), "the example"))
            assert any(f"record.{need.name}" in p for p in found.problems), need
        else:
            destination.renderer.render(record)
