"""The official Docker Hub OpenAPI document, shipped inside the package.

- ``load_spec()``: the document as published, read from the installed package (editable install
  or wheel) on first use and kept for the rest of the process. Nothing is read at import time.
- ``corrected_spec()``: the same with its known request-schema defects corrected to what Hub
  really does (REFERENCE.md section 11), each correction commented.
- ``resolve_schema()``: a schema with ``$ref`` inlined and ``allOf`` merged.
"""

from __future__ import annotations

import copy
import functools
from importlib import resources
from typing import Any

from sink.errors import ConfigError

SPEC_FILE = "openapi.yaml"


@functools.cache
def load_spec() -> dict[str, Any]:
    """Return the parsed spec, loading it once per process.

    The document is shared: callers must not change it. Unquoted status keys such as ``200:``
    come back as ints, exactly as YAML reads them.
    """
    from sink import yamltext  # imported here so that importing sink stays cheap

    try:
        text = resources.files(__name__).joinpath(SPEC_FILE).read_bytes()
        document = yamltext.load(text)
    except (OSError, yamltext.YAMLError) as exc:
        raise ConfigError(f"cannot read the packaged Docker Hub spec {SPEC_FILE}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        raise ConfigError(f"the packaged Docker Hub spec {SPEC_FILE} has no paths")
    return document


REPO_SCOPES = ["repo:admin", "repo:write", "repo:read", "repo:public_read"]


@functools.cache
def corrected_spec() -> dict[str, Any]:
    """Return the spec with its known request-schema defects corrected (REFERENCE.md §11).

    Each correction follows what Docker Hub really does (the newer upstream revision, or the
    docs) and says so beside it. The document is shared: callers must not change it.
    """
    spec = copy.deepcopy(load_spec())
    schemas = spec["components"]["schemas"]
    paths = spec["paths"]

    # createOrgAccessTokenRequest marks `label` with a property-level `required: true`, which
    # is not OpenAPI. The newer revision (and Hub) require both the label and at least one
    # resource: `required: [label, resources]`, `resources.minItems: 1`.
    oat_create = schemas["createOrgAccessTokenRequest"]
    oat_create["properties"]["label"].pop("required", None)
    oat_create["required"] = ["label", "resources"]
    oat_create["properties"]["resources"]["minItems"] = 1

    # orgAccessTokenResource carries the same invalid `required: true` on type, path and
    # scopes; Hub needs all three on every resource.
    resource = schemas["orgAccessTokenResource"]
    for name in ("type", "path", "scopes"):
        resource["properties"][name].pop("required", None)
    resource["required"] = ["type", "path", "scopes"]

    # The verify `regex` pattern is a Docker-path pattern that rejects the spec's own example
    # `v.*`. Hub takes a Go regular expression without commas; the newer revision says
    # `^[^,]*$`.
    schemas["immutable_tags_verify_request"]["properties"]["regex"]["pattern"] = r"^[^,]*$"

    # PAT scopes are listed only in prose ("Valid scopes: ..."); Hub rejects any other value,
    # so the four scopes become an enum.
    schemas["createAccessTokenRequest"]["properties"]["scopes"]["items"]["enum"] = list(REPO_SCOPES)

    # Creating or replacing a team without a body cannot work (the schema requires `name`),
    # yet POST and PUT do not mark their request bodies as required.
    group = paths["/v2/orgs/{org_name}/groups/{group_name}"]
    paths["/v2/orgs/{org_name}/groups"]["post"]["requestBody"]["required"] = True
    group["put"]["requestBody"]["required"] = True

    # Team PATCH also takes `role` on Hub (newer revision): a core role or the name of a
    # custom role, so any non-empty string.
    patch_props = group["patch"]["requestBody"]["content"]["application/json"]["schema"]
    patch_props["properties"]["role"] = {
        "type": "string",
        "minLength": 1,
        "description": "Role of the team: owner, editor, member or a custom role name",
    }

    # The token exchange cannot work without its body (identifier and secret are required),
    # yet its request body is not marked required.
    paths["/v2/auth/token"]["post"]["requestBody"]["required"] = True

    # The spec requires `invitees` but sets no lower bound. A bulk invite with no invitee is a
    # mistake (an empty list column), not something to send: our choice, one at least.
    bulk = spec["components"]["requestBodies"]["bulk_invite_request"]
    bulk["content"]["application/json"]["schema"]["properties"]["invitees"]["minItems"] = 1

    # Kept as the stored spec has them, on purpose:
    # - the member-role PUT enum is lowercase owner/editor/member, which is what Hub takes for
    #   the core roles; the members list answers with capitalised roles ("Owner"), which the
    #   validator folds to the enum's case. (The newer revision also accepts custom role
    #   names there; until custom roles are supported they are rejected here, loudly.)
    # - the bulk-invite `role` is a free string: the docs use values such as
    #   `distributor_member`, so no enum is imposed.

    # scim_user_schemas puts `minItems: 1` on its string items, where it means nothing; it
    # belongs to the array.
    scim_schemas = schemas["scim_user_schemas"]
    scim_schemas["items"].pop("minItems", None)
    scim_schemas["minItems"] = 1
    return spec


_LOWER_BOUNDS = ("minLength", "minimum", "minItems", "minProperties")
_UPPER_BOUNDS = ("maxLength", "maximum", "maxItems", "maxProperties")


def resolve_schema(node: Any, spec: dict[str, Any] | None = None) -> Any:
    """Return ``node`` with every ``$ref`` inlined and every ``allOf`` merged into one schema.

    ``spec`` defaults to :func:`corrected_spec`. The result is a fresh tree (the spec is not
    changed). A property-level ``required: true`` (invalid OpenAPI) is dropped; the corrections
    above state what Hub really requires. A ``$ref`` cycle or a dangling ``$ref`` is a
    :class:`ConfigError`.
    """
    return _resolve(node, corrected_spec() if spec is None else spec, ())


def _resolve(node: Any, spec: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, spec, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        if ref in seen:
            raise ConfigError(f"the Docker Hub spec has a $ref cycle through {ref}")
        return _resolve(follow_ref(ref, spec), spec, (*seen, ref))
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "allOf":
            continue
        if key == "required" and not isinstance(value, list):
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {name: _resolve(sub, spec, seen) for name, sub in value.items()}
        else:
            out[key] = _resolve(value, spec, seen)
    for part in node.get("allOf") or ():
        out = merge_schemas(out, _resolve(part, spec, seen))
    return out


def follow_ref(ref: str, spec: dict[str, Any]) -> Any:
    """Return the node a local ``$ref`` (``#/components/...``) points at, unresolved."""
    if not ref.startswith("#/"):
        raise ConfigError(f"the Docker Hub spec refers outside itself: {ref}")
    node: Any = spec
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"the Docker Hub spec refers to a missing {ref}")
        node = node[part]
    return node


def merge_schemas(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Merge two resolved schemas as ``allOf: [first, second]`` would apply them.

    Properties merge by name, ``required`` lists join, bounds take the stricter value, enums
    intersect; for any other keyword (description, example, format) the first one wins.
    """
    out = dict(first)
    for key, value in second.items():
        if key not in out:
            out[key] = value
            continue
        mine = out[key]
        if key == "properties":
            merged = dict(mine)
            for name, sub in value.items():
                merged[name] = merge_schemas(merged[name], sub) if name in merged else sub
            out[key] = merged
        elif key == "required":
            out[key] = [*mine, *(name for name in value if name not in mine)]
        elif key == "type" and mine != value:
            raise ConfigError(f"the Docker Hub spec merges a {mine} with a {value} (allOf)")
        elif key == "items" and isinstance(mine, dict) and isinstance(value, dict):
            out[key] = merge_schemas(mine, value)
        elif key == "enum":
            out[key] = [item for item in mine if item in value]
        elif key in _LOWER_BOUNDS:
            out[key] = max(mine, value)
        elif key in _UPPER_BOUNDS:
            out[key] = min(mine, value)
        elif key in ("nullable", "additionalProperties") and value is False:
            out[key] = False
    return out
