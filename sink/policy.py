"""The access policy: what a destination may do, checked before every request is sent.

Like a gateway in front of an automation: allowed templates and methods; allowed namespaces,
repositories (globs on ``namespace/name``), organizations and teams; or read-only. Where a
request names one of these (in its path or its body), it must be allowed; a request to a path
that is not an operation of the spec is refused when any of these four rules is set, since what
it names cannot be told. Pure: no I/O.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from sink import schema
from sink.config import PolicyConfig
from sink.model import Request

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NAMESPACE_PARAMS = ("namespace",)
_ORG_PARAMS = ("org_name", "name", "account")
_TEAM_PARAMS = ("group_name",)
_CREATE_REPOSITORY = ("POST", "/v2/namespaces/{namespace}/repositories")
# Operations whose body ``name`` is a team's (new) name: create, replace and update a team.
_TEAM_BODIES = frozenset({
    ("POST", "/v2/orgs/{org_name}/groups"),
    ("PUT", "/v2/orgs/{org_name}/groups/{group_name}"),
    ("PATCH", "/v2/orgs/{org_name}/groups/{group_name}"),
})


def violation(policy: PolicyConfig, request: Request) -> str | None:
    """The rule ``request`` breaks, in words, or None when the policy allows it."""
    method = request.method.upper()
    if policy.read_only and method in WRITES:
        return f"policy is read-only: {method} is not allowed"
    if policy.templates is not None and not _allowed(request.template, policy.templates):
        return f"policy allows templates {', '.join(policy.templates)}, not {request.template}"
    if policy.methods is not None and method not in policy.methods:
        return f"policy allows methods {', '.join(policy.methods)}, not {method}"
    scoped = (policy.namespaces, policy.organizations, policy.teams, policy.repositories)
    if all(rule is None for rule in scoped):
        return None
    path = urlsplit(request.url).path
    operation, params = _path_params(method, path)
    if operation is None:
        # Fail closed: a path outside the spec cannot be told to stay inside the policy.
        return f"policy cannot check {method} {path}: not an operation of Docker Hub's API"
    names = _names(request, method, operation, params)
    checks = (
        ("namespace", names["namespaces"], policy.namespaces),
        ("organization", names["organizations"], policy.organizations),
        ("team", names["teams"], policy.teams),
        ("repository", names["repositories"], policy.repositories),
    )
    for kind, found, allowed in checks:
        if allowed is None:
            continue
        for name in found:
            if not _allowed(name, allowed):
                return f"policy does not allow {kind} {name!r} (allowed: {', '.join(allowed)})"
    return None


def named_resources(request: Request) -> dict[str, list[str]]:
    """The namespaces, organizations, teams and repositories a request names."""
    method = request.method.upper()
    operation, params = _path_params(method, urlsplit(request.url).path)
    return _names(request, method, operation, params)


def _names(
    request: Request, method: str, operation: str | None, params: dict[str, str]
) -> dict[str, list[str]]:
    body = _body(request)
    namespaces = [params[p] for p in _NAMESPACE_PARAMS if p in params]
    organizations = [params[p] for p in _ORG_PARAMS if p in params]
    teams = [params[p] for p in _TEAM_PARAMS if p in params]
    repositories: list[str] = []
    if isinstance(body, dict):
        if isinstance(body.get("namespace"), str):
            namespaces.append(body["namespace"])
        if isinstance(body.get("org"), str):
            organizations.append(body["org"])
        if isinstance(body.get("team"), str):
            teams.append(body["team"])
        if (method, operation) in _TEAM_BODIES and isinstance(body.get("name"), str):
            teams.append(body["name"])
    if "repository" in params:
        repositories.append(f"{params.get('namespace', '')}/{params['repository']}")
    elif (method, operation) == _CREATE_REPOSITORY and isinstance(body, dict):
        namespace = params.get("namespace", body.get("namespace", ""))
        repositories.append(f"{namespace}/{body.get('name', '')}")
    return {
        "namespaces": _unique(namespaces),
        "organizations": _unique(organizations),
        "teams": _unique(teams),
        "repositories": _unique(repositories),
    }


def _path_params(method: str, path: str) -> tuple[str | None, dict[str, str]]:
    """The operation's path template and the values of its parameters in ``path``."""
    operation = schema.match_operation(method, path)
    if operation is None:
        return None, {}
    params = {}
    for pattern, value in zip(operation.path.split("/"), path.split("/"), strict=False):
        if pattern.startswith("{") and pattern.endswith("}"):
            params[pattern[1:-1]] = unquote(value)
    return operation.path, params


def _body(request: Request) -> Any:
    if request.body is None:
        return None
    try:
        return orjson.loads(request.body)
    except orjson.JSONDecodeError:
        return None


def _allowed(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))
