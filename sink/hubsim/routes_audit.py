"""Audit logs: ``/v2/auditlogs/{account}`` and its action catalog (errors as ``rpcStatus``)."""

from __future__ import annotations

import functools
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sink.hubsim.access import Principal, check_org
from sink.hubsim.errors import PAT_NOT_ALLOWED, Shape, bad_request, forbidden, not_found
from sink.hubsim.hub import Hub
from sink.hubsim.state import AuditEvent, parse_time
from sink.hubsim.web import Route, hub_of, json, page_params, route
from sink.request.spec import load_spec

_ACTIONS_PATH = "/v2/auditlogs/{account}/actions"


@functools.cache
def action_catalog() -> dict[str, Any]:
    """Hub's action catalog, as the spec's example answer of the actions route gives it."""
    spec = load_spec()
    example = spec["paths"][_ACTIONS_PATH]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["examples"]["response"]["value"]
    catalog: dict[str, Any] = example
    return catalog


def _check(hub: Hub, who: Principal, account: str) -> None:
    org = hub.state.org(account)
    if org is not None:
        check_org(who, org, role="owner", oat_scope="scope-activity-read")
        return
    if hub.state.user(account) is None:
        raise not_found(f"account {account!r} not found")
    if who.kind == "pat":
        raise forbidden(PAT_NOT_ALLOWED)
    if who.user is None or who.user.username != account.lower():
        raise forbidden("you can only read your own account's activity")


def _view(event: AuditEvent) -> dict[str, Any]:
    return {
        "account": event.account,
        "action": event.action,
        "name": event.name,
        "actor": event.actor,
        "data": dict(event.data),
        "timestamp": event.timestamp,
        "action_description": event.description,
    }


def _time(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return parse_time(raw)
    except ValueError as exc:
        raise bad_request(
            f"{name}: not a date-time", {name: ["must be an RFC 3339 date-time"]}
        ) from exc


async def list_logs(request: Request) -> Response:
    """``GET /v2/auditlogs/{account}``: ``{"logs": [...]}``, newest first, no counts."""
    hub = hub_of(request)
    who = hub.principal(request.headers.get("authorization"))
    account = request.path_params["account"].lower()
    _check(hub, who, account)
    page, size = page_params(request, default_size=25, shape=Shape.RPC)
    action = request.query_params.get("action")
    name = request.query_params.get("name")
    actor = request.query_params.get("actor")
    start, end = _time(request, "from"), _time(request, "to")
    events = []
    for event in reversed(hub.state.audit):
        if event.account != account:
            continue
        if (
            (action and event.action != action)
            or (name and event.name != name)
            or (actor and event.actor != actor)
        ):
            continue
        if start is not None or end is not None:
            when = parse_time(event.timestamp)
            if (start is not None and when < start) or (end is not None and when > end):
                continue
        events.append(event)
    chunk = events[(page - 1) * size : page * size]
    return json({"logs": [_view(e) for e in chunk]})


async def list_actions(request: Request) -> Response:
    """``GET /v2/auditlogs/{account}/actions``."""
    hub = hub_of(request)
    who = hub.principal(request.headers.get("authorization"))
    _check(hub, who, request.path_params["account"].lower())
    return json(action_catalog())


ROUTES: list[Route] = [
    route(_ACTIONS_PATH, Shape.RPC, GET=list_actions),
    route("/v2/auditlogs/{account}", Shape.RPC, GET=list_logs),
]
