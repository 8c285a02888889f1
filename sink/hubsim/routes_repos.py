"""Repositories, tags, immutable tags and repository groups."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from sink.hubsim.access import (
    ADMIN,
    OAT_REPO_GROUPS,
    OAT_REPO_READ,
    OAT_REPO_SETTINGS,
    READ,
    Principal,
    check_repo,
    lister,
    oat_org_scopes,
)
from sink.hubsim.bodies import (
    ImmutableTagsUpdate,
    ImmutableTagsVerify,
    RepoCreate,
    RepoGroupCreate,
    json_body,
    parse,
)
from sink.hubsim.errors import (
    HubError,
    Shape,
    bad_request,
    conflict,
    forbidden,
    not_found,
)
from sink.hubsim.hub import Hub
from sink.hubsim.state import Repository, now_iso
from sink.hubsim.views import repository_entry, repository_info, tag_view
from sink.hubsim.web import Route, empty, hub_of, json, page_params, paginate, route

ORDERINGS = ("name", "-name", "last_updated", "-last_updated", "pull_count", "-pull_count")


def _who(request: Request, *, optional: bool = False) -> Principal:
    return hub_of(request).principal(request.headers.get("authorization"), optional=optional)


def _repo(hub: Hub, request: Request) -> Repository:
    params = request.path_params
    repo = hub.state.repo(params["namespace"], params["repository"])
    if repo is None:
        raise not_found("object not found")
    return repo


async def list_repositories(request: Request) -> Response:
    """``GET /v2/namespaces/{namespace}/repositories``."""
    hub = hub_of(request)
    who = _who(request, optional=True)
    namespace = request.path_params["namespace"]
    ordering = request.query_params.get("ordering") or "name"
    if ordering not in ORDERINGS:
        raise HubError(
            400,
            "Invalid ordering value",
            fields={
                "ordering": ["Invalid ordering value. Must be one of: " + ", ".join(ORDERINGS)]
            },
            shape=Shape.VALUE,
        )
    page, size = page_params(request, reject_over_max=True, shape=Shape.VALUE)
    if not hub.state.namespace_exists(namespace):
        raise not_found(f"namespace {namespace!r} not found")
    state = hub.state
    wanted = (request.query_params.get("name") or "").lower()
    visible = lister(state, who)
    repos = [
        r
        for r in state.repos.get(namespace.lower(), {}).values()
        if (not wanted or wanted in r.name) and visible(r)
    ]
    key = ordering.lstrip("-")
    if key == "name":
        repos.sort(key=lambda r: r.name, reverse=ordering.startswith("-"))
    else:
        repos.sort(key=lambda r: r.name)
        repos.sort(key=lambda r: getattr(r, key), reverse=ordering.startswith("-"))
    envelope, chunk = paginate(request, repos, page, size, past_end_is_404=True)
    envelope["results"] = [repository_entry(r) for r in chunk]
    return json(envelope)


async def get_repository(request: Request) -> Response:
    """``GET``/``HEAD /v2/namespaces/{namespace}/repositories/{repository}``."""
    hub = hub_of(request)
    who = _who(request, optional=True)
    repo = _repo(hub, request)
    check_repo(hub.state, who, repo, READ, OAT_REPO_READ)
    return json(repository_info(hub.state, who, repo))


async def create_repository(request: Request) -> Response:
    """``POST /v2/namespaces/{namespace}/repositories``."""
    hub = hub_of(request)
    who = _who(request)
    namespace = request.path_params["namespace"].lower()
    body = parse(await json_body(request), RepoCreate)
    if body.namespace.lower() != namespace:
        raise bad_request(
            "namespace in the body must match the namespace in the path",
            {"namespace": [f"must be {namespace!r}, the namespace in the path"]},
        )
    state = hub.state
    org = state.org(namespace)
    if org is None and namespace not in state.users:
        raise not_found(f"namespace {namespace!r} not found")
    if who.kind == "oat":
        assert who.token is not None
        if org is None or org.name != who.name:
            raise forbidden("access token does not belong to this namespace")
        if "scope-repository-create" not in oat_org_scopes(who.token, org.name):
            raise forbidden("access token is missing the scope scope-repository-create")
    else:
        user = who.user
        assert user is not None
        if org is None:
            if namespace != user.username:
                raise forbidden("you cannot create repositories in another user's namespace")
        elif org.roles.get(user.username) not in ("owner", "editor"):
            raise forbidden("only organization owners and editors may create repositories")
        if who.pat_rank() < 3:
            raise forbidden("insufficient scope: this operation needs repo:write")
    if state.repo(namespace, body.name) is not None:
        raise conflict(f"Repository {namespace}/{body.name} already exists.")
    stamp = now_iso()
    repo = Repository(
        id=state.next_repo_id(),
        namespace=namespace,
        name=body.name,
        date_registered=stamp,
        last_updated=stamp,
        description=body.description,
        full_description=body.full_description,
        is_private=body.is_private,
        registry=body.registry,
    )
    state.add_repo(repo)
    hub.record(
        namespace,
        "repo.create",
        f"{namespace}/{body.name}",
        who,
        f"created the repository {namespace}/{body.name}",
        {"is_private": str(body.is_private).lower()},
    )
    return json(repository_info(state, who, repo), 201)


async def list_tags(request: Request) -> Response:
    """``GET /v2/namespaces/{namespace}/repositories/{repository}/tags``."""
    hub = hub_of(request)
    who = _who(request, optional=True)
    repo = _repo(hub, request)
    check_repo(hub.state, who, repo, READ, OAT_REPO_READ)
    page, size = page_params(request)
    tags = sorted(repo.tags.values(), key=lambda t: t.name)
    tags.sort(key=lambda t: t.last_updated, reverse=True)
    envelope, chunk = paginate(request, tags, page, size, past_end_is_404=True)
    envelope["results"] = [tag_view(repo, t) for t in chunk]
    return json(envelope)


async def head_tags(request: Request) -> Response:
    """``HEAD .../tags``: 200 when the repository has tags."""
    hub = hub_of(request)
    who = _who(request, optional=True)
    repo = _repo(hub, request)
    check_repo(hub.state, who, repo, READ, OAT_REPO_READ)
    if not repo.tags:
        raise not_found("the repository has no tags")
    return empty(200)


async def get_tag(request: Request) -> Response:
    """``GET``/``HEAD .../tags/{tag}``."""
    hub = hub_of(request)
    who = _who(request, optional=True)
    repo = _repo(hub, request)
    check_repo(hub.state, who, repo, READ, OAT_REPO_READ)
    tag = repo.tags.get(request.path_params["tag"])
    if tag is None:
        raise not_found("tag not found")
    return json(tag_view(repo, tag))


def _rule_errors(rules: list[str]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for i, rule in enumerate(rules):
        problem = _regex_problem(rule)
        if problem:
            errors[f"immutable_tags_rules.{i}"] = [problem]
    return errors


def _regex_problem(rule: str) -> str | None:
    if not rule:
        return "must not be empty"
    if "," in rule:
        return "must not contain a comma"
    try:
        re.compile(rule)
    except re.error as exc:
        return f"not a valid regular expression: {exc}"
    return None


async def update_immutable_tags(request: Request) -> Response:
    """``PATCH .../immutabletags``."""
    hub = hub_of(request)
    who = _who(request)
    repo = _repo(hub, request)
    check_repo(hub.state, who, repo, ADMIN, OAT_REPO_SETTINGS)
    body = parse(await json_body(request), ImmutableTagsUpdate)
    errors = _rule_errors(body.immutable_tags_rules)
    if errors:
        raise bad_request("invalid immutable tag rule", errors)
    if body.immutable_tags and not body.immutable_tags_rules:
        raise bad_request(
            "immutable tags need at least one rule",
            {"immutable_tags_rules": ["at least one rule is required"]},
        )
    changed = (repo.immutable_tags, repo.immutable_rules) != (
        body.immutable_tags,
        body.immutable_tags_rules,
    )
    repo.immutable_tags = body.immutable_tags
    repo.immutable_rules = list(body.immutable_tags_rules)
    if changed:
        repo.last_modified = now_iso()
        hub.record(
            repo.namespace,
            "repo.immutable.tags.updated",
            f"{repo.namespace}/{repo.name}",
            who,
            f"updated tag immutability of {repo.namespace}/{repo.name}",
            {
                "enabled": str(body.immutable_tags).lower(),
                "rules": ",".join(body.immutable_tags_rules),
            },
        )
    return json(repository_info(hub.state, who, repo))


async def verify_immutable_tags(request: Request) -> Response:
    """``POST .../immutabletags/verify``: the existing tags that ``regex`` matches in full."""
    hub = hub_of(request)
    who = _who(request)
    repo = _repo(hub, request)
    check_repo(hub.state, who, repo, ADMIN, OAT_REPO_SETTINGS)
    body = parse(await json_body(request), ImmutableTagsVerify)
    problem = _regex_problem(body.regex)
    if problem:
        raise bad_request(f"regex: {problem}", {"regex": [problem]})
    pattern = re.compile(body.regex)
    return json({"tags": sorted(t for t in repo.tags if pattern.fullmatch(t))})


async def grant_group(request: Request) -> Response:
    """``POST /v2/repositories/{namespace}/{repository}/groups`` (PAT-callable)."""
    hub = hub_of(request)
    who = _who(request)
    repo = _repo(hub, request)
    state = hub.state
    check_repo(state, who, repo, ADMIN, OAT_REPO_GROUPS)
    body = parse(await json_body(request), RepoGroupCreate)
    org = state.org(repo.namespace)
    if org is None:
        raise bad_request("teams can only be granted on an organization's repositories")
    found = state.teams_by_id.get(body.group_id)
    if found is None or found[0] is not org:
        raise not_found(f"group {body.group_id} not found in organization {org.name}")
    team = found[1]
    if repo.team_permissions.get(team.id) != body.permission:
        repo.team_permissions[team.id] = body.permission
        hub.record(
            repo.namespace,
            "repo.update",
            f"{repo.namespace}/{repo.name}",
            who,
            f"granted the team {team.name} {body.permission} access to "
            f"{repo.namespace}/{repo.name}",
            {"team": team.name, "permission": body.permission},
        )
    return json({"group_name": team.name, "permission": body.permission, "group_id": team.id})


ROUTES: list[Route] = [
    route("/v2/namespaces/{namespace}/repositories", GET=list_repositories, POST=create_repository),
    route("/v2/namespaces/{namespace}/repositories/{repository}", GET=get_repository),
    route(
        "/v2/namespaces/{namespace}/repositories/{repository}/tags", GET=list_tags, HEAD=head_tags
    ),
    route("/v2/namespaces/{namespace}/repositories/{repository}/tags/{tag}", GET=get_tag),
    route(
        "/v2/namespaces/{namespace}/repositories/{repository}/immutabletags",
        PATCH=update_immutable_tags,
    ),
    route(
        "/v2/namespaces/{namespace}/repositories/{repository}/immutabletags/verify",
        POST=verify_immutable_tags,
    ),
    route("/v2/repositories/{namespace}/{repository}/groups", POST=grant_group),
]
