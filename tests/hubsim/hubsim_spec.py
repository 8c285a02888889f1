"""The official spec (sink/request/spec/openapi.yaml) as JSON Schemas, corrected for its known
defects, and a checker that validates the simulator's answers against it."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import httpx
import jsonschema
import yaml

# Known defects of the stored spec (REFERENCE.md §11) and how the checks correct them.
SPEC_CORRECTIONS = """
members list 200 is an array of paginated objects -> one org_member_paginated object (§11.4)
tag: images is an array (or null), v2 a boolean, status is tag_status (§11.18, newer revision)
image: variant and os_version are null for most images (what Hub returns)
next/previous are typed string but are null on the first/last page (every list; see examples)
org_member.role gains Editor (newer revision)
bulk invite 202 is {invitees: [...]}, not wrapped twice (§11.6)
error.errinfo may be null (newer revision)
"""


def _load_spec() -> dict[str, Any]:
    text = resources.files("sink.request.spec").joinpath("openapi.yaml").read_text("utf-8")
    spec: dict[str, Any] = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    for item in spec["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and "responses" in op:
                op["responses"] = {str(k): v for k, v in op["responses"].items()}
    return spec


def _correct(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    tag = schemas["tag"]["properties"]
    tag["images"] = {
        "type": "array",
        "nullable": True,
        "items": {"$ref": "#/components/schemas/image"},
    }
    tag["v2"] = {"type": "boolean"}
    tag["tag_status"] = {"type": "string", "enum": ["active", "inactive"]}
    for name in ("variant", "os_version"):
        schemas["image"]["properties"][name]["nullable"] = True
    for name in ("getAccessTokensResponse", "getOrgAccessTokensResponse", "org_member_paginated"):
        for key in ("next", "previous"):
            schemas[name]["properties"][key]["nullable"] = True
    schemas["org_member"]["properties"]["role"]["enum"].append("Editor")
    schemas["error"]["properties"]["errinfo"]["nullable"] = True
    paths = spec["paths"]
    members = paths["/v2/orgs/{org_name}/members"]["get"]["responses"]["200"]
    members["content"]["application/json"]["schema"] = {
        "$ref": "#/components/schemas/org_member_paginated"
    }
    for path in ("/v2/orgs/{org_name}/groups", "/v2/orgs/{org_name}/groups/{group_name}/members"):
        props = paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"][
            "properties"
        ]
        for key in ("next", "previous"):
            props[key]["nullable"] = True
    bulk = paths["/v2/invites/bulk"]["post"]["responses"]["202"]["content"]["application/json"]
    bulk["schema"] = {
        "type": "object",
        "required": ["invitees"],
        "properties": {"invitees": schemas["bulk_invite"]["properties"]["invitees"]},
    }


def _to_json_schema(node: Any, spec: dict[str, Any], depth: int = 0) -> Any:
    """OpenAPI 3.0 schema → JSON Schema: ``$ref`` inlined, ``nullable`` → a null type."""
    if depth > 40:
        raise RuntimeError("schema too deep")
    if isinstance(node, list):
        return [_to_json_schema(n, spec, depth + 1) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _to_json_schema(merged, spec, depth + 1)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("example", "examples", "description", "deprecated", "format", "nullable"):
            continue
        if key == "required" and not isinstance(value, list):
            continue  # property-level "required: true" is invalid OpenAPI (§11 / 4.3)
        if key == "properties":
            out[key] = {k: _to_json_schema(v, spec, depth + 1) for k, v in value.items()}
        else:
            out[key] = _to_json_schema(value, spec, depth + 1)
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    if "enum" in out and None in out["enum"] and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


class SpecChecker:
    """Checks answers against the spec; remembers which (method, path, status) it validated."""

    def __init__(self) -> None:
        self.spec = _load_spec()
        _correct(self.spec)
        self.ops: list[tuple[re.Pattern[str], str, str, dict[str, Any]]] = []
        for template, item in self.spec["paths"].items():
            if template.startswith("/v2/scim"):
                continue
            regex = re.sub(r"\\{[a-z_]+\\}", "[^/]+", re.escape(template))
            for method, op in item.items():
                if method in ("get", "post", "put", "patch", "delete", "head"):
                    self.ops.append((re.compile(f"^{regex}/?$"), method.upper(), template, op))
        self.seen: set[tuple[str, str, str]] = set()

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        """The spec template and operation of a request, if the spec has it."""
        for regex, op_method, template, op in self.ops:
            if op_method == method and regex.match(path):
                return template, op
        return None

    def check(self, response: httpx.Response) -> None:
        """Raise ``AssertionError`` if ``response`` does not conform."""
        request = response.request
        path = request.url.path
        if not path.startswith("/v2/"):
            return
        for header in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
            assert header in response.headers, f"{header} missing on {request.method} {path}"
        found = self.operation(request.method, path)
        if found is None:
            return
        template, op = found
        status = str(response.status_code)
        response.read()
        if response.status_code >= 400:
            is_json = "json" in response.headers.get("content-type", "")
            if request.method != "HEAD" and response.status_code < 500 and is_json:
                body = response.json()
                assert isinstance(body.get("message") or body.get("detail"), str), body
            return
        declared = op["responses"].get(status)
        assert declared is not None, f"{request.method} {template}: undeclared status {status}"
        self.seen.add((request.method, template, status))
        if request.method == "HEAD" or response.status_code == 204:
            assert response.content == b"", f"{request.method} {template}: unexpected body"
            return
        while "$ref" in declared:
            target: Any = self.spec
            for part in declared["$ref"].lstrip("#/").split("/"):
                target = target[part]
            declared = target
        content = declared.get("content")
        if not content:
            return
        if "text/csv" in content:
            assert response.headers["content-type"].startswith("text/csv")
            return
        schema = _to_json_schema(content["application/json"]["schema"], self.spec)
        jsonschema.validate(response.json(), schema)
