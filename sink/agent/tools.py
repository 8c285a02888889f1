"""The tools an agent sees: read tools over sink's exports, one write tool per endpoint template.

Pure: no I/O, no MCP types (the server turns a :class:`ToolSpec` into an MCP tool).

A write tool's input schema is made from its template and from Docker's request schema in the
spec (:mod:`sink.request.schema`): each record field the template places in the body or the
path takes the schema of the place it goes (type, ``enum``, ``pattern``, ``minLength`` /
``maxLength``, ``format``, items), and it is required where the spec (or the path) requires it.
Settings the agent's file fixes (its organization, its namespace) are not arguments. Every write
tool also takes ``confirm``: see :mod:`sink.agent.confirm`.

Annotations: reads are ``readOnlyHint``; a write is ``destructiveHint`` when its template deletes
or removes something, and ``idempotentHint`` when sending it twice does what sending it once
does (a PUT or DELETE, or a template that says so: :attr:`sink.destination.Destination.idempotent`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sink.model import NON_IDEMPOTENT
from sink.read.export import MEMBER_TYPES, ORDERINGS, ROLES
from sink.request import schema
from sink.request.spec import corrected_spec, resolve_schema
from sink.request.templates import EndpointTemplate

CONFIRM = "confirm"
"""The argument of every write tool that carries a confirmation token."""

_REFERENCE = re.compile(
    r"""^\{\{-?\s*(record|settings)\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*(['"])([^'"\\]*)\3\s*\])\s*-?\}\}$"""
)
_KEPT = (
    "type",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "format",
    "default",
)
_DESCRIPTION_CHARS = 300
MAX_LIMIT = 500


@dataclass(frozen=True)
class Hints:
    """A tool's annotations (MCP ``ToolAnnotations``)."""

    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool = True


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its name, words, input schema and annotations, and what it calls."""

    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    hints: Hints
    kind: Literal["read", "write", "plan", "apply"]
    export: str | None = None
    """A read: the export (:data:`sink.read.export.EXPORTS`) it reads."""
    scope: Literal["namespace", "organization", "account", "user"] = "namespace"
    """A read: what its ``namespace`` argument names (``user``: the connection's own)."""
    template: EndpointTemplate | None = None
    """A write: its endpoint template."""
    settings: tuple[str, ...] = ()
    """A write: the template settings the agent gives as arguments."""
    fixed: Mapping[str, Any] = field(default_factory=dict)
    """A write: the template settings the agents file fixes."""

    @property
    def destructive(self) -> bool:
        """Whether calling it deletes or removes something."""
        return self.hints.destructive


# -- reads ------------------------------------------------------------------------------------


def _string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


_NAME = {"pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$", "minLength": 1, "maxLength": 255}
_PAGING = {
    "limit": {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_LIMIT,
        "default": 50,
        "description": "the most items to return",
    },
    "offset": {
        "type": "integer",
        "minimum": 0,
        "default": 0,
        "description": "items to skip first (paging: the previous answer's next_offset)",
    },
}


def _read(
    name: str,
    title: str,
    description: str,
    export: str,
    properties: dict[str, Any],
    *,
    required: tuple[str, ...] = (),
    scope: Literal["namespace", "organization", "account", "user"] = "namespace",
    paged: bool = True,
) -> ToolSpec:
    props = dict(properties)
    if paged:
        props.update(_PAGING)
    input_schema = {
        "type": "object",
        "properties": props,
        "required": list(required),
        "additionalProperties": False,
    }
    return ToolSpec(
        name,
        title,
        description,
        input_schema,
        Hints(read_only=True, destructive=False, idempotent=True),
        "read",
        export=export,
        scope=scope,
    )


def read_tools(default_org: str | None) -> list[ToolSpec]:
    """The read tools; ``default_org`` is the namespace or organization used when a call
    names none (the agent's ``org`` or ``namespace`` setting, else its identifier)."""
    where = f" (default: {default_org})" if default_org else ""
    namespace = _string(f"the namespace: a user or an organization{where}", **_NAME)
    org = _string(f"the organization{where}", **_NAME)
    repository = _string("the repository's name (without the namespace)", **_NAME)
    return [
        _read(
            "repositories",
            "List repositories",
            "Repositories of a namespace, filtered by name and ordered as asked.",
            "repositories",
            {
                "namespace": namespace,
                "name": _string("only repositories whose name contains this", maxLength=255),
                "ordering": {"type": "string", "enum": list(ORDERINGS)},
            },
        ),
        _read(
            "repository",
            "Get a repository",
            "One repository's details.",
            "repository",
            {"namespace": namespace, "repository": repository},
            required=("repository",),
            paged=False,
        ),
        _read(
            "tags",
            "List tags",
            "Tags of a repository.",
            "tags",
            {"namespace": namespace, "repository": repository},
            required=("repository",),
        ),
        _read(
            "tag",
            "Get a tag",
            "One tag of a repository.",
            "tag",
            {
                "namespace": namespace,
                "repository": repository,
                "tag": _string("the tag", minLength=1, maxLength=128),
            },
            required=("repository", "tag"),
            paged=False,
        ),
        _read(
            "members",
            "List organization members",
            "Members of an organization (status active, or pending for an invitee).",
            "members",
            {
                "org": org,
                "search": _string("only members whose name or e-mail contains this"),
                "role": {"type": "string", "enum": list(ROLES)},
                "type": {"type": "string", "enum": list(MEMBER_TYPES)},
            },
            scope="organization",
        ),
        _read(
            "teams",
            "List teams",
            "Teams of an organization.",
            "teams",
            {"org": org, "search": _string("only teams whose name contains this")},
            scope="organization",
        ),
        _read(
            "team_members",
            "List team members",
            "Members of one team of an organization.",
            "team-members",
            {
                "org": org,
                "team": _string("the team's name", **_NAME),
                "search": _string("only members whose name contains this"),
            },
            required=("team",),
            scope="organization",
        ),
        _read(
            "invites",
            "List pending invites",
            "Pending invites of an organization.",
            "invites",
            {"org": org},
            scope="organization",
        ),
        _read(
            "access_tokens",
            "List personal access tokens",
            "The connection user's personal access tokens: metadata only, never a secret.",
            "tokens",
            {},
            scope="user",
        ),
        _read(
            "org_access_tokens",
            "List organization access tokens",
            "An organization's access tokens: metadata only, never a secret.",
            "org-tokens",
            {"org": org},
            scope="organization",
        ),
        _read(
            "audit_log",
            "Read the audit log",
            "Docker Hub's audit log of an account, by date range and action.",
            "audit-log",
            {
                "account": _string(f"the organization or user{where}", **_NAME),
                "since": _string("from this date or date-time (2025-01-31, RFC 3339)"),
                "until": _string("up to this date (inclusive) or date-time"),
                "action": _string("only this action (e.g. repo.create)"),
                "actor": _string("only actions by this user"),
            },
            scope="account",
        ),
    ]


# -- writes -----------------------------------------------------------------------------------


def tool_name(template: EndpointTemplate) -> str:
    """The write tool of a template: its id with ``_`` for ``-`` (``create_repository``)."""
    return template.id.replace("-", "_")


def write_tool(template: EndpointTemplate, fixed: Mapping[str, Any]) -> ToolSpec:
    """The write tool of ``template``, with the settings in ``fixed`` not among its arguments."""
    fields, settings, required = _fields(template)
    props: dict[str, Any] = {}
    for name, sub in settings.items():
        if name not in fixed:
            props[name] = sub
    given = [name for name in settings if name not in fixed]
    props.update(fields)
    props[CONFIRM] = {
        "type": "string",
        "description": (
            "the confirmation token a first call without it returned; the same arguments "
            "with it send the request"
        ),
        "minLength": 1,
        "maxLength": 200,
    }
    needed = [name for name in props if name in required and name not in fixed]
    input_schema = {
        "type": "object",
        "properties": props,
        "required": needed,
        "additionalProperties": False,
    }
    idempotent = template.idempotent or template.method not in NON_IDEMPOTENT
    words = [template.title + ".", template.description.strip()]
    if fixed:
        words.append(
            "Fixed by the agent's settings: "
            + ", ".join(f"{key} = {value}" for key, value in fixed.items())
            + "."
        )
    words.extend(template.warnings)
    words.append(
        "Two steps: a call without `confirm` sends nothing and answers with the exact request, "
        "what the policy and the guards decided and a confirmation token; the same call with "
        "`confirm` set to that token sends it once."
        + (" A human is asked to approve it first." if template.destructive else "")
    )
    return ToolSpec(
        tool_name(template),
        template.title,
        " ".join(word for word in words if word),
        input_schema,
        Hints(read_only=False, destructive=template.destructive, idempotent=idempotent),
        "write",
        template=template,
        settings=tuple(given),
        fixed=dict(fixed),
    )


def _reference(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, str):
        return None
    found = _REFERENCE.match(value.strip())
    if found is None:
        return None
    return found.group(1), found.group(2) or found.group(4)


def _fields(
    template: EndpointTemplate,
) -> tuple[dict[str, Any], dict[str, Any], set[str]]:
    """The record fields' and settings' schemas, and which of them are required."""
    fields: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    required: set[str] = set()

    def place(value: Any, sub: Mapping[str, Any] | None, needed: bool) -> None:
        found = _reference(value)
        if found is not None:
            root, name = found
            target = fields if root == "record" else settings
            if name not in target:
                target[name] = _clean(sub or {"type": "string"})
            if needed:
                required.add(name)
            return
        if isinstance(value, Mapping):
            props = (sub or {}).get("properties") or {}
            needs = set((sub or {}).get("required") or ())
            for key, item in value.items():
                place(item, props.get(key), needed and key in needs)
        elif isinstance(value, list) and len(value) == 1:
            items = (sub or {}).get("items") if (sub or {}).get("type") == "array" else None
            place(value[0], items, needed)

    operation = schema.find_operation(template.operation)
    place(template.body, operation.body_schema, True)
    parameters = _path_parameters(operation)
    for name, value in template.params.items():
        place(value, parameters.get(name, {"type": "string"}), True)
    for value in template.query.values():
        place(value, {"type": "string"}, False)
    for resolve in template.resolve:
        # A team given by name is looked up (team-id): the id is no longer required, and the
        # name is the usual way to give it.
        if resolve.target is not None:
            required.discard(resolve.target)
            fields.setdefault(resolve.source, {"type": "string"})
            description = fields[resolve.target].get("description", "")
            fields[resolve.target] = {
                **fields[resolve.target],
                "description": f"{description} (or give {resolve.source}: its name)".strip(),
            }
    for name in template.record_fields:
        fields.setdefault(name, {"type": "string"})
    for name in template.settings_fields:
        settings.setdefault(name, {"type": "string"})
    return fields, settings, required


def _path_parameters(operation: schema.Operation) -> dict[str, Any]:
    spec = corrected_spec()
    item = spec["paths"].get(operation.path, {})
    raw = [
        *item.get("parameters", []),
        *item.get(operation.method.lower(), {}).get("parameters", []),
    ]
    out: dict[str, Any] = {}
    for parameter in resolve_schema(raw, spec):
        if isinstance(parameter, dict) and parameter.get("in") == "path":
            sub = dict(parameter.get("schema") or {"type": "string"})
            if parameter.get("description") and "description" not in sub:
                sub["description"] = parameter["description"]
            out[str(parameter.get("name"))] = sub
    return out


def _clean(sub: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a spec schema an input schema keeps (nested objects and items too)."""
    out: dict[str, Any] = {key: sub[key] for key in _KEPT if key in sub}
    description = sub.get("description")
    if isinstance(description, str) and description.strip():
        text = " ".join(description.split())
        out["description"] = text[:_DESCRIPTION_CHARS]
    if isinstance(sub.get("items"), Mapping):
        out["items"] = _clean(sub["items"])
    if isinstance(sub.get("properties"), Mapping):
        out["properties"] = {key: _clean(value) for key, value in sub["properties"].items()}
        if sub.get("required"):
            out["required"] = list(sub["required"])
    if "type" not in out and "enum" not in out:
        out["type"] = "string"
    return out


# -- plans ------------------------------------------------------------------------------------

PLAN_ID_PATTERN = r"^\d{8}T\d{6}-[0-9a-f]{8}$"


def plan_tools(plans: Sequence[str], *, apply: bool) -> list[ToolSpec]:
    """``plan`` over the agent's desired-state files, and ``apply`` (unless read-only)."""
    if not plans:
        return []
    plan = ToolSpec(
        "plan",
        "Plan a desired-state file",
        "Read Docker Hub and compare it with one of this agent's desired-state files: what "
        "would be added, changed or destroyed, and how many calls it takes. Sends nothing. "
        "Steps this agent's policy (or the state file's) refuses are shown refused, with the "
        "rule. Returns a plan id for apply.",
        {
            "type": "object",
            "properties": {
                "state": {
                    "type": "string",
                    "enum": list(plans),
                    "description": "the desired-state file, as the agents file lists it",
                },
                "ensure_grants": {
                    "type": "boolean",
                    "default": False,
                    "description": "plan every team grant again, even those an earlier apply "
                    "ensured (Hub has no read for a grant)",
                },
            },
            "required": ["state"],
            "additionalProperties": False,
        },
        Hints(read_only=True, destructive=False, idempotent=True),
        "plan",
    )
    if not apply:
        return [plan]
    confirm = {
        "type": "string",
        "description": "the confirmation token a first call without it returned",
        "minLength": 1,
        "maxLength": 200,
    }
    applied = ToolSpec(
        "apply",
        "Apply a plan",
        "Make Docker Hub match a plan made by the plan tool, sending only its changes through "
        "sink's send core (ledger, guards, vault). Two steps: a call without `confirm` sends "
        "nothing and answers with what the plan sends and a confirmation token bound to the "
        "plan; the same call with `confirm` sends it. A plan that destroys something needs a "
        "human's approval. If Docker Hub changed what the plan touches since it was made, "
        "nothing is sent and the differences are returned: make a new plan.",
        {
            "type": "object",
            "properties": {
                "plan_id": {
                    "type": "string",
                    "pattern": PLAN_ID_PATTERN,
                    "description": "the id the plan tool returned",
                },
                CONFIRM: confirm,
            },
            "required": ["plan_id"],
            "additionalProperties": False,
        },
        # A plan may delete (prune); applying it again sends only what is not done yet.
        Hints(read_only=False, destructive=True, idempotent=True),
        "apply",
    )
    return [plan, applied]


def tools_for(
    templates: list[EndpointTemplate],
    fixed: Mapping[str, Any],
    default_org: str | None,
    *,
    plans: Sequence[str] = (),
    apply: bool = False,
) -> list[ToolSpec]:
    """Every tool an agent sees: the reads, one write tool per template, then ``plan`` and
    ``apply`` when it has desired-state files."""
    tools = read_tools(default_org)
    for template in templates:
        wanted = {name: fixed[name] for name in template.settings_fields if name in fixed}
        tools.append(write_tool(template, wanted))
    tools.extend(plan_tools(plans, apply=apply))
    return tools


# -- checking arguments -----------------------------------------------------------------------


def argument_problems(spec: ToolSpec, arguments: Mapping[str, Any]) -> list[str]:
    """What is wrong with a call's arguments, by name and rule (never echoing a value)."""
    problems: list[str] = []
    properties = spec.input_schema["properties"]
    for name in arguments:
        if name not in properties:
            problems.append(f"{name}: not an argument of {spec.name}")
    for name in spec.input_schema["required"]:
        if arguments.get(name) in (None, ""):
            problems.append(f"{name}: required")
    for name, value in arguments.items():
        sub = properties.get(name)
        if sub is not None and value is not None:
            problems.extend(_check(name, sub, value))
    return problems


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def _check(where: str, sub: Mapping[str, Any], value: Any) -> list[str]:
    kind = sub.get("type")
    wanted = _TYPES.get(kind) if isinstance(kind, str) else None
    if wanted is not None and isinstance(kind, str):
        wrong = not isinstance(value, wanted) or (
            kind in ("integer", "number") and isinstance(value, bool)
        )
        # A string where the spec wants another type is passed on: sink coerces "true",
        # "42" and JSON text for arrays as it does for CSV values, and says so if it cannot.
        if wrong and not (isinstance(value, str) and kind != "string"):
            return [f"{where}: must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}"]
    problems = []
    if "enum" in sub and value not in sub["enum"]:
        problems.append(f"{where}: must be one of {', '.join(map(str, sub['enum']))}")
    if isinstance(value, str):
        if "minLength" in sub and len(value) < sub["minLength"]:
            problems.append(f"{where}: at least {sub['minLength']} characters")
        if "maxLength" in sub and len(value) > sub["maxLength"]:
            problems.append(f"{where}: at most {sub['maxLength']} characters")
        pattern = sub.get("pattern")
        if kind == "string" and isinstance(pattern, str) and re.search(pattern, value) is None:
            problems.append(f"{where}: must match {pattern}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in sub and value < sub["minimum"]:
            problems.append(f"{where}: at least {sub['minimum']}")
        if "maximum" in sub and value > sub["maximum"]:
            problems.append(f"{where}: at most {sub['maximum']}")
    return problems
