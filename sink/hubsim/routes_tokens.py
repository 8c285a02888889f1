"""Personal access tokens (``/v2/access-tokens``) and organization access tokens."""

from __future__ import annotations

import secrets
import string
import time

from starlette.requests import Request
from starlette.responses import Response

from sink.hubsim.access import (
    ORG_SCOPES,
    PAT_SCOPES,
    REPO_SCOPES,
    Principal,
    check_org,
    require_org,
    require_user,
)
from sink.hubsim.bodies import (
    OatCreate,
    OatPatch,
    OatResource,
    PatCreate,
    PatPatch,
    json_body,
    parse,
)
from sink.hubsim.errors import HubError, Shape, forbidden, not_found
from sink.hubsim.hub import Hub
from sink.hubsim.state import Org, OrgToken, PersonalToken, new_uuid, now_iso, parse_time
from sink.hubsim.views import oat_view, pat_view
from sink.hubsim.web import Route, empty, hub_of, json, page_params, paginate, route

_PAT_ALPHABET = string.ascii_letters + string.digits + "-_"
_OAT_ALPHABET = string.ascii_letters + string.digits


def _who(request: Request) -> Principal:
    return hub_of(request).principal(request.headers.get("authorization"))


def _value_error(field: str, message: str) -> HubError:
    return HubError(400, f"{field}: {message}", fields={field: [message]}, shape=Shape.VALUE)


def _future(field: str, value: str | None) -> None:
    if value is not None and parse_time(value) <= time.time():
        raise _value_error(field, "must be in the future")


# personal access tokens
def _own_pat(hub: Hub, who: Principal, uuid: str) -> PersonalToken:
    user = require_user(who)
    pat = hub.state.pats.get(uuid)
    if pat is None or pat.username != user.username:
        raise not_found("access token not found")
    return pat


async def create_pat(request: Request) -> Response:
    """``POST /v2/access-tokens``: the secret is in this answer only."""
    hub = hub_of(request)
    who = _who(request)
    user = require_user(who)
    body = parse(await json_body(request), PatCreate, Shape.VALUE)
    if not body.scopes:
        raise _value_error("scopes", "at least one scope is required")
    unknown = [s for s in body.scopes if s not in PAT_SCOPES]
    if unknown:
        valid = ", ".join(PAT_SCOPES)
        raise _value_error("scopes", f"invalid scope {unknown[0]!r}; valid: {valid}")
    _future("expires_at", body.expires_at)
    wanted = max(PAT_SCOPES.index(s) + 1 for s in body.scopes)
    if who.kind == "pat" and wanted > who.pat_rank():
        raise forbidden("a personal access token cannot create a token with wider scopes")
    pat = PersonalToken(
        uuid=new_uuid(),
        username=user.username,
        token="dckr_pat_" + "".join(secrets.choice(_PAT_ALPHABET) for _ in range(27)),
        label=body.token_label,
        scopes=list(dict.fromkeys(body.scopes)),
        created_at=now_iso(),
        expires_at=body.expires_at,
        creator_ip=request.client.host if request.client else "",
        creator_ua=request.headers.get("user-agent", ""),
    )
    hub.state.add_pat(pat)
    return json(pat_view(pat, with_secret=True), 201)


async def list_pats(request: Request) -> Response:
    """``GET /v2/access-tokens``: ``{count, next, previous, active_count, results}``."""
    hub = hub_of(request)
    user = require_user(_who(request))
    page, size = page_params(request, shape=Shape.VALUE)
    mine = [p for p in hub.state.pats.values() if p.username == user.username]
    mine.sort(key=lambda p: p.created_at, reverse=True)
    envelope, chunk = paginate(request, mine, page, size)
    envelope["active_count"] = sum(1 for p in mine if p.is_active)
    envelope["results"] = [pat_view(p) for p in chunk]
    return json(envelope)


async def get_pat(request: Request) -> Response:
    """``GET /v2/access-tokens/{uuid}`` (``token`` is ``""``)."""
    hub = hub_of(request)
    return json(pat_view(_own_pat(hub, _who(request), request.path_params["uuid"])))


async def patch_pat(request: Request) -> Response:
    """``PATCH /v2/access-tokens/{uuid}``: rename or enable/disable."""
    hub = hub_of(request)
    pat = _own_pat(hub, _who(request), request.path_params["uuid"])
    body = parse(await json_body(request), PatPatch, Shape.VALUE)
    if body.token_label is not None:
        pat.label = body.token_label
    if body.is_active is not None:
        pat.is_active = body.is_active
    return json(pat_view(pat))


async def delete_pat(request: Request) -> Response:
    """``DELETE /v2/access-tokens/{uuid}``: for good."""
    hub = hub_of(request)
    pat = _own_pat(hub, _who(request), request.path_params["uuid"])
    hub.state.remove_pat(pat)
    return empty()


# organization access tokens
def _owner_org(request: Request, key: str) -> tuple[Hub, Principal, Org]:
    hub = hub_of(request)
    who = _who(request)
    org = require_org(hub.state, request.path_params[key])
    check_org(who, org, role="owner", oat_scope=None)
    return hub, who, org


def _check_resources(hub: Hub, org: Org, resources: list[OatResource]) -> None:
    for i, res in enumerate(resources):
        where = f"resources.{i}"
        if res.type == "TYPE_ORG":
            if res.path.lower() != org.name:
                raise _value_error(f"{where}.path", f"must be the organization name {org.name!r}")
            allowed = ORG_SCOPES
        else:
            ns, _, rest = res.path.partition("/")
            if res.path != "*/*/public":
                if ns.lower() != org.name or not rest:
                    raise _value_error(
                        f"{where}.path",
                        f"must be {org.name}/<repository>, a glob such as {org.name}/* "
                        "or */*/public",
                    )
                if not any(c in rest for c in "*?[") and hub.state.repo(org.name, rest) is None:
                    raise _value_error(f"{where}.path", f"repository {res.path!r} does not exist")
            allowed = REPO_SCOPES
        bad = [s for s in res.scopes if s not in allowed]
        if bad:
            raise _value_error(f"{where}.scopes", f"invalid scope {bad[0]!r} for {res.type}")


def _oat(org: Org, token_id: str) -> OrgToken:
    oat = org.tokens.get(token_id)
    if oat is None:
        raise not_found("access token not found")
    return oat


async def create_oat(request: Request) -> Response:
    """``POST /v2/orgs/{name}/access-tokens``: the secret is in this answer only."""
    hub, who, org = _owner_org(request, "name")
    body = parse(await json_body(request), OatCreate, Shape.VALUE)
    _check_resources(hub, org, body.resources)
    _future("expires_at", body.expires_at)
    oat = OrgToken(
        id=new_uuid(),
        org=org.name,
        label=body.label,
        token="dckr_oat_" + "".join(secrets.choice(_OAT_ALPHABET) for _ in range(32)),
        resources=[r.model_dump() for r in body.resources],
        created_by=who.name,
        created_at=now_iso(),
        description=body.description,
        expires_at=body.expires_at,
    )
    hub.state.add_oat(org, oat)
    hub.record(
        org.name,
        "org.access_token.create",
        org.name,
        who,
        f"created the access token {oat.label!r}",
        {"token_id": oat.id, "label": oat.label},
    )
    return json(oat_view(oat, with_secret=True), 201)


async def list_oats(request: Request) -> Response:
    """``GET /v2/orgs/{name}/access-tokens``: ``{total, next, previous, results}``."""
    _, _, org = _owner_org(request, "name")
    page, size = page_params(request)
    tokens = sorted(org.tokens.values(), key=lambda t: t.created_at, reverse=True)
    envelope, chunk = paginate(request, tokens, page, size, count_key="total")
    envelope["results"] = [oat_view(t, with_resources=False) for t in chunk]
    return json(envelope)


async def get_oat(request: Request) -> Response:
    """``GET /v2/orgs/{org_name}/access-tokens/{access_token_id}``."""
    _, _, org = _owner_org(request, "org_name")
    return json(oat_view(_oat(org, request.path_params["access_token_id"])))


async def patch_oat(request: Request) -> Response:
    """``PATCH /v2/orgs/{org_name}/access-tokens/{access_token_id}``."""
    hub, who, org = _owner_org(request, "org_name")
    oat = _oat(org, request.path_params["access_token_id"])
    body = parse(await json_body(request), OatPatch, Shape.VALUE)
    before = (oat.resources, oat.label, oat.description, oat.is_active)
    if body.resources is not None:
        _check_resources(hub, org, body.resources)
        oat.resources = [r.model_dump() for r in body.resources]
    if body.label is not None:
        oat.label = body.label
    if body.description is not None:
        oat.description = body.description
    if body.is_active is not None:
        oat.is_active = body.is_active
    if (oat.resources, oat.label, oat.description, oat.is_active) != before:
        hub.record(
            org.name,
            "org.access_token.update",
            org.name,
            who,
            f"updated the access token {oat.label!r}",
            {"token_id": oat.id},
        )
    return json(oat_view(oat))


async def delete_oat(request: Request) -> Response:
    """``DELETE /v2/orgs/{org_name}/access-tokens/{access_token_id}``."""
    hub, who, org = _owner_org(request, "org_name")
    oat = _oat(org, request.path_params["access_token_id"])
    hub.state.remove_oat(org, oat)
    hub.record(
        org.name,
        "org.access_token.delete",
        org.name,
        who,
        f"deleted the access token {oat.label!r}",
        {"token_id": oat.id},
    )
    return empty()


ROUTES: list[Route] = [
    route("/v2/access-tokens", GET=list_pats, POST=create_pat),
    route("/v2/access-tokens/{uuid}", GET=get_pat, PATCH=patch_pat, DELETE=delete_pat),
    route("/v2/orgs/{name}/access-tokens", GET=list_oats, POST=create_oat),
    route(
        "/v2/orgs/{org_name}/access-tokens/{access_token_id}",
        GET=get_oat,
        PATCH=patch_oat,
        DELETE=delete_oat,
    ),
]
