"""The access policy: what a destination may do, checked before every request is sent.

Like a gateway in front of an automation: allowed templates and methods; allowed namespaces,
repositories (``namespace/name``), organizations and teams; or read-only. Pure: no I/O.

How names are judged (the values Docker Hub will act on, not the text of the request):

- The URL path is split on ``/`` and each segment is percent-decoded once, as a server does. A
  path whose meaning depends on how a server normalizes it is refused whenever a scoped rule is
  set: an empty segment, a ``.`` or ``..`` segment (literal or encoded, ``%2e%2e``), a segment
  that decodes to ``/``, ``\\`` or a control character, or one that would decode differently a
  second time (``%252F``). A path that is not an operation of the spec is refused too: what it
  names cannot be told.
- Every value that names a resource is checked, in the path and in the body: the body's
  ``namespace``, ``org`` and ``team``, a team's new ``name``, a created repository's ``name``,
  every ``resources[].path`` of an organization access token (``TYPE_REPO`` against namespaces
  and repositories, ``TYPE_ORG`` against organizations), a team given by its numeric
  ``group_id`` and an invite given by its id. The last two are known only to Docker Hub: the
  caller (:mod:`sink.guard.check`) looks them up and passes the names to :func:`violation`; an id it
  could not look up is refused when the rule it would be checked against is set.
- A name is one segment: it must not be empty, ``.`` or ``..``, nor hold ``/``, ``\\``, ``%``
  or a control character. Patterns are globs matched segment by segment (``acme/team-*``: a
  ``*`` never crosses a ``/``; a repository pattern has exactly two segments).
- Case: Docker Hub names are lowercase and Hub resolves organization, namespace, repository and
  team names without regard to ASCII case (``ACME`` is ``acme``), so both sides are compared
  with ASCII letters folded to lowercase. Other characters are compared as they are: folding
  them (``ß`` → ``ss``) could make a name match a pattern Hub would not equate it with.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from sink.config import PolicyConfig
from sink.model import Request
from sink.request import schema

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NAMESPACE_PARAMS = ("namespace",)
_ORG_PARAMS = ("org_name", "name", "account")
_TEAM_PARAMS = ("group_name",)
_CREATE_REPOSITORY = ("POST", "/v2/namespaces/{namespace}/repositories")
# Operations whose body ``name`` is a team's (new) name: create, replace and update a team.
_TEAM_BODIES = frozenset(
    {
        ("POST", "/v2/orgs/{org_name}/groups"),
        ("PUT", "/v2/orgs/{org_name}/groups/{group_name}"),
        ("PATCH", "/v2/orgs/{org_name}/groups/{group_name}"),
    }
)
# Operations that act on an invite given only by its id: its organization and team are Hub's.
_INVITE_ROUTES = frozenset(
    {
        ("DELETE", "/v2/invites/{id}"),
        ("PATCH", "/v2/invites/{id}/resend"),
    }
)
# SCIM acts on the organization of the SCIM token: nothing in the request names it.
_SCIM_PREFIX = "/v2/scim/"
_GLOB = frozenset("*?[")
_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ALL_PUBLIC = "*/*/public"

KINDS = ("namespaces", "organizations", "teams", "repositories")
_SINGULAR = {
    "namespaces": "namespace",
    "organizations": "organization",
    "teams": "team",
    "repositories": "repository",
}

Reference = tuple[str, str, str]
"""A resource a request names by id only: ``("team", org, group_id)`` or ``("invite", "", id)``."""

Resolved = Mapping[Reference, Mapping[str, Sequence[str]]]
"""What :mod:`sink.guard.check` looked up for references: kind (``teams``, ...) → names."""


def violation(
    policy: PolicyConfig, request: Request, resolved: Resolved | None = None
) -> str | None:
    """The rule ``request`` breaks, in words, or None when the policy allows it.

    ``resolved`` holds the names of what the request names by id only (see :func:`references`);
    a reference missing from it is refused when a rule it must be checked against is set.
    """
    method = request.method.upper()
    if policy.read_only and method in WRITES:
        return f"policy is read-only: {method} is not allowed"
    if policy.templates is not None and not _any_glob(request.template, policy.templates):
        return f"policy allows templates {', '.join(policy.templates)}, not {request.template}"
    if policy.methods is not None and method not in policy.methods:
        return f"policy allows methods {', '.join(policy.methods)}, not {method}"
    if not _scoped(policy):
        return None
    parsed = parse(request)
    if parsed.problem is not None:
        return f"policy cannot check {method} {parsed.raw_path}: {parsed.problem}"
    if parsed.operation is None:
        # Fail closed: a path outside the spec cannot be told to stay inside the policy.
        return (
            f"policy cannot check {method} {parsed.raw_path}: not an operation of Docker Hub's API"
        )
    names = parsed.names
    for reference in parsed.references:
        kinds = _reference_kinds(reference)
        if not any(getattr(policy, kind) is not None for kind in kinds):
            continue
        found = (resolved or {}).get(reference)
        if found is None:
            return f"policy cannot check {_describe(reference)}: {_unknown(reference)}"
        for kind in kinds:
            names[kind].extend(found.get(kind, ()))
    if parsed.implicit_org and (policy.organizations is not None or policy.teams is not None):
        return (
            f"policy cannot check {method} {parsed.raw_path}: the organization it acts on is "
            "not named in the request (it is the SCIM token's)"
        )
    for kind in KINDS:
        allowed = getattr(policy, kind)
        if allowed is None:
            continue
        for name in _unique(names[kind]):
            if not _clean(name):
                return f"policy refuses {_SINGULAR[kind]} {name!r}: {_UNCLEAN}"
            if not matches(name, allowed):
                return (
                    f"policy does not allow {_SINGULAR[kind]} {name!r} "
                    f"(allowed: {', '.join(allowed)})"
                )
    for kind, path in parsed.resource_globs:
        allowed = getattr(policy, kind)
        if allowed is not None and not any(covers(pattern, path) for pattern in allowed):
            return (
                f"policy does not allow the token resource {path!r}: no {_SINGULAR[kind]} "
                f"pattern covers everything it names (allowed: {', '.join(allowed)})"
            )
    if parsed.resource_problem is not None:
        return f"policy cannot check an access token resource: {parsed.resource_problem}"
    return None


def references(policy: PolicyConfig, request: Request) -> list[Reference]:
    """The ids ``request`` names whose names the policy needs (none when no rule needs them)."""
    if policy.teams is None and policy.organizations is None:
        return []
    parsed = parse(request)
    return [
        reference
        for reference in parsed.references
        if any(getattr(policy, kind) is not None for kind in _reference_kinds(reference))
    ]


def named_resources(request: Request) -> dict[str, list[str]]:
    """The namespaces, organizations, teams and repositories a request names (decoded)."""
    names = parse(request).names
    return {kind: _unique(names[kind]) for kind in KINDS}


# --------------------------------------------------------------------------- parsing


@dataclass
class Parsed:
    """A request as the policy sees it: its path, operation and the names it carries."""

    raw_path: str
    segments: list[str] | None
    """The decoded path segments (without the leading empty one), None when ``problem``."""
    problem: str | None = None
    operation: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    names: dict[str, list[str]] = field(default_factory=dict)
    references: list[Reference] = field(default_factory=list)
    resource_globs: list[tuple[str, str]] = field(default_factory=list)
    """(kind, glob) pairs of token resources with wildcards: a pattern must cover each."""
    resource_problem: str | None = None
    implicit_org: bool = False


def parse(request: Request) -> Parsed:
    """Parse ``request``: its decoded path, its spec operation and every name it carries."""
    method = request.method.upper()
    raw_path = urlsplit(request.url).path
    segments, problem = decode_path(raw_path)
    parsed = Parsed(raw_path, segments, problem)
    parsed.names = {kind: [] for kind in KINDS}
    if segments is None:
        return parsed
    operation = schema.match_operation(method, raw_path)
    if operation is None:
        return parsed
    parsed.operation = operation.path
    parts = operation.path.strip("/").split("/")
    for pattern, value in zip(parts, segments, strict=False):
        if pattern.startswith("{") and pattern.endswith("}"):
            parsed.params[pattern[1:-1]] = value
    parsed.body = request.json_body()
    _collect(parsed, method)
    return parsed


def decode_path(raw_path: str) -> tuple[list[str] | None, str | None]:
    """The path's segments, each decoded once; or None and why the path is ambiguous.

    One trailing slash is allowed (the spec's routes ignore it); any other empty segment, a dot
    segment, or a segment whose decoded value holds ``/``, ``\\``, a control character or
    another percent-escape is a problem: a server or proxy may resolve it to another resource.
    """
    if not raw_path.startswith("/"):
        return None, "the path does not start with /"
    raw = raw_path[1:].split("/")
    if len(raw) > 1 and raw[-1] == "":
        raw.pop()
    segments = []
    for part in raw:
        if _unsafe_chars(part) or "\\" in part:
            return None, f"path segment {part!r} holds a backslash or a control character"
        try:
            value = unquote(part, errors="strict")
        except UnicodeDecodeError:
            return None, f"path segment {part!r} is not valid percent-encoded UTF-8"
        if value in ("", ".", ".."):
            return None, f"path segment {part!r} is empty or a dot segment"
        if "/" in value or "\\" in value or _unsafe_chars(value):
            return None, f"path segment {part!r} decodes to a slash, backslash or control character"
        if unquote(value) != value:
            return None, f"path segment {part!r} would decode differently a second time"
        segments.append(value)
    return segments, None


def _collect(parsed: Parsed, method: str) -> None:
    params, body, names = parsed.params, parsed.body, parsed.names
    operation = parsed.operation
    names["namespaces"] += [params[p] for p in _NAMESPACE_PARAMS if p in params]
    names["organizations"] += [params[p] for p in _ORG_PARAMS if p in params]
    names["teams"] += [params[p] for p in _TEAM_PARAMS if p in params]
    if "repository" in params:
        names["repositories"].append(f"{params.get('namespace', '')}/{params['repository']}")
    if isinstance(body, dict):
        for key, kind in (("namespace", "namespaces"), ("org", "organizations"), ("team", "teams")):
            if key in body and body[key] is not None:
                names[kind].append(_text(body[key]))
        if (method, operation) in _TEAM_BODIES and body.get("name") is not None:
            names["teams"].append(_text(body["name"]))
        if (method, operation) == _CREATE_REPOSITORY:
            namespace = params.get("namespace", _text(body.get("namespace", "")))
            names["repositories"].append(f"{namespace}/{_text(body.get('name', ''))}")
        if "group_id" in body:
            org = params.get("namespace", "")
            parsed.references.append(("team", org.translate(_FOLD), _text(body["group_id"])))
        if "resources" in body:
            _resources(parsed, body["resources"])
    if (method, operation) in _INVITE_ROUTES:
        parsed.references.append(("invite", "", params.get("id", "")))
    if operation is not None and operation.startswith(_SCIM_PREFIX):
        parsed.implicit_org = True


def _resources(parsed: Parsed, resources: Any) -> None:
    """The names an organization access token's ``resources`` give access to."""
    if resources is None:
        return
    if not isinstance(resources, list):
        parsed.resource_problem = f"resources must be a list, not {_show(resources)}"
        return
    for resource in resources:
        path = resource.get("path") if isinstance(resource, dict) else None
        kind = resource.get("type") if isinstance(resource, dict) else None
        if not isinstance(path, str):
            parsed.resource_problem = f"{_show(resource)} has no path"
            return
        if kind == "TYPE_ORG":
            _resource_name(parsed, "organizations", path)
        elif kind == "TYPE_REPO":
            if path == _ALL_PUBLIC:
                # Every public repository of every namespace: only "*" patterns cover it.
                parsed.resource_globs += [("namespaces", "*"), ("repositories", "*/*")]
                continue
            parts = path.split("/")
            if len(parts) != 2:
                parsed.resource_problem = (
                    f"resource path {path!r} is not namespace/repository (nor {_ALL_PUBLIC})"
                )
                return
            _resource_name(parsed, "namespaces", parts[0])
            _resource_name(parsed, "repositories", path)
        else:
            parsed.resource_problem = f"resource type {kind!r} is not TYPE_REPO or TYPE_ORG"
            return


def _resource_name(parsed: Parsed, kind: str, path: str) -> None:
    if any(char in _GLOB for char in path):
        parsed.resource_globs.append((kind, path))
    else:
        parsed.names[kind].append(path)


# --------------------------------------------------------------------------- matching


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether ``name`` matches one of ``patterns``, segment by segment (see the module doc)."""
    parts = name.translate(_FOLD).split("/")
    for pattern in patterns:
        pattern_parts = pattern.translate(_FOLD).split("/")
        if len(pattern_parts) == len(parts) and all(
            fnmatch.fnmatchcase(part, glob) for part, glob in zip(parts, pattern_parts, strict=True)
        ):
            return True
    return False


def covers(pattern: str, glob: str) -> bool:
    """Whether every name ``glob`` can match also matches ``pattern`` (segment by segment).

    Sound, not complete: a segment is covered by ``*``, by the same text, by a pattern that
    matches it when it has no wildcard, or by ``prefix*`` when the glob's text before its first
    wildcard starts with ``prefix``. Anything else is taken as not covered (fail closed).
    """
    pattern_parts = pattern.translate(_FOLD).split("/")
    glob_parts = glob.translate(_FOLD).split("/")
    if len(pattern_parts) != len(glob_parts):
        return False
    return all(_covers_segment(p, g) for p, g in zip(pattern_parts, glob_parts, strict=True))


def _covers_segment(pattern: str, glob: str) -> bool:
    if not _clean(glob):
        return False
    if pattern == "*" or pattern == glob:
        return True
    if not any(char in _GLOB for char in glob):
        return fnmatch.fnmatchcase(glob, pattern)
    prefix = pattern[:-1]
    if pattern.endswith("*") and not any(char in _GLOB for char in prefix):
        literal = glob[: min(glob.index(c) for c in _GLOB if c in glob)]
        return literal.startswith(prefix)
    return False


def _any_glob(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _clean(name: str) -> bool:
    """Whether each ``/``-separated part of ``name`` is one plain segment."""
    return all(
        part not in ("", ".", "..")
        and "\\" not in part
        and "%" not in part
        and not _unsafe_chars(part)
        for part in name.split("/")
    )


_UNCLEAN = (
    "a name must not be empty, . or .., nor hold /, \\, % or a control character "
    "(a repository is namespace/name)"
)


def _unsafe_chars(text: str) -> bool:
    return any(ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F for char in text)


def _scoped(policy: PolicyConfig) -> bool:
    return not (
        policy.namespaces is None
        and policy.organizations is None
        and policy.teams is None
        and policy.repositories is None
    )


def _reference_kinds(reference: Reference) -> tuple[str, ...]:
    return ("teams",) if reference[0] == "team" else ("organizations", "teams")


def _describe(reference: Reference) -> str:
    kind, org, ident = reference
    if kind == "team":
        return f"team id {ident!r} of {org or 'an unnamed namespace'}"
    return f"invite {ident!r}"


def _unknown(reference: Reference) -> str:
    if reference[0] == "team":
        return "Docker Hub's team list does not name it (or could not be read)"
    return (
        "its organization and team could not be looked up (it is not a pending invite of an "
        "organization the policy names literally)"
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _show(value: Any) -> str:
    text = _text(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))
