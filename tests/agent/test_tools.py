"""Tool specs: input schemas from the templates and the spec, annotations, argument checks."""

from __future__ import annotations

from sink.agent.tools import argument_problems, read_tools, tool_name, write_tool
from sink.request.templates import load_registry


def _tool(template_id: str, **fixed: object):  # type: ignore[no-untyped-def]
    return write_tool(load_registry().get(template_id), fixed)


def test_every_template_makes_a_tool_with_a_closed_schema() -> None:
    for template in load_registry():
        spec = write_tool(template, {})
        schema = spec.input_schema
        assert spec.name == tool_name(template) == template.id.replace("-", "_")
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert set(schema["required"]) <= set(schema["properties"])
        assert set(template.record_fields) <= set(schema["properties"])
        assert spec.hints.destructive is template.destructive
        assert spec.hints.read_only is False


def test_enums_patterns_and_lengths_come_from_the_spec() -> None:
    role = _tool("update-member-role", org="acme").input_schema["properties"]["role"]
    assert role["enum"] == ["owner", "editor", "member"]
    grant = _tool("grant-team-repository", namespace="acme").input_schema
    assert grant["properties"]["permission"]["enum"] == ["read", "write", "admin"]
    assert grant["properties"]["group_id"]["type"] == "integer"
    assert "group_id" not in grant["required"]  # a team by name is looked up
    pat = _tool("create-personal-access-token").input_schema["properties"]["token_label"]
    assert (pat["minLength"], pat["maxLength"]) == (1, 100)
    regex = _tool("verify-immutable-tags", namespace="acme").input_schema["properties"]["regex"]
    assert regex["pattern"] == "^[^,]*$"


def test_fixed_settings_are_not_arguments_and_others_are_required() -> None:
    fixed = _tool("create-team", org="acme").input_schema
    assert "org" not in fixed["properties"]
    free = _tool("create-team").input_schema
    assert "org" in free["properties"] and "org" in free["required"]


def test_idempotent_hints() -> None:
    assert _tool("delete-team").hints.idempotent  # DELETE
    assert _tool("replace-team").hints.idempotent  # PUT
    assert _tool("update-org-access-token").hints.idempotent  # the template says so
    assert not _tool("create-repository").hints.idempotent  # POST


def test_read_tools_are_read_only_and_idempotent() -> None:
    tools = read_tools("acme")
    assert all(t.hints.read_only and t.hints.idempotent and not t.destructive for t in tools)
    assert "default: acme" in tools[0].input_schema["properties"]["namespace"]["description"]


def test_argument_problems_name_fields_and_rules_never_values() -> None:
    spec = _tool("create-repository", namespace="acme")
    problems = argument_problems(
        spec, {"name": "Secret Value", "description": "x" * 101, "extra": 1, "is_private": []}
    )
    text = "; ".join(problems)
    assert "extra: not an argument" in text
    assert "name: must match" in text
    assert "description: at most 100 characters" in text
    assert "is_private: must be a boolean" in text
    assert "Secret Value" not in text
    assert argument_problems(spec, {}) == ["name: required"]
    # A string for a boolean is sink's usual coercion, left to the spec check.
    assert argument_problems(spec, {"name": "team-a", "is_private": "true"}) == []


def test_plan_and_apply_tools() -> None:
    from sink.agent.tools import plan_tools

    assert plan_tools([], apply=True) == []
    only = plan_tools(["acme.yaml"], apply=False)
    assert [spec.name for spec in only] == ["plan"]
    plan, apply = plan_tools(["acme.yaml", "globex.yaml"], apply=True)
    assert plan.hints.read_only and not plan.hints.destructive and plan.kind == "plan"
    assert plan.input_schema["properties"]["state"]["enum"] == ["acme.yaml", "globex.yaml"]
    assert argument_problems(plan, {"state": "other.yaml"}) == [
        "state: must be one of acme.yaml, globex.yaml"
    ]
    assert apply.kind == "apply" and apply.hints.destructive and apply.hints.idempotent
    assert not apply.hints.read_only
    assert argument_problems(apply, {"plan_id": "20260101T120000-0a1b2c3d"}) == []
    assert argument_problems(apply, {"plan_id": "../../etc/passwd"}) == [
        r"plan_id: must match ^\d{8}T\d{6}-[0-9a-f]{8}$"
    ]
