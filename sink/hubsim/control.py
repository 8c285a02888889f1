"""The test-only control API under ``/_sim``: state, faults, request log, reset.

Not part of Docker Hub: no auth, no faults, no rate-limit headers. Turn it off with
``Simulator(control=False)``.
"""

from __future__ import annotations

import orjson
import pydantic
from starlette.requests import Request
from starlette.responses import Response

from sink.errors import ConfigError
from sink.hubsim.errors import bad_request
from sink.hubsim.faults import fault_config
from sink.hubsim.routes_invites import accept_invite
from sink.hubsim.web import Route, empty, json, route, sim_of


def _body(raw: bytes) -> object:
    try:
        return orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"not JSON: {exc}") from exc


async def get_state(request: Request) -> Response:
    """``GET /_sim/state``: the whole state, in the seed format."""
    return json(sim_of(request).snapshot())


async def get_faults(request: Request) -> Response:
    """``GET /_sim/faults``."""
    return json(sim_of(request).faults.config.model_dump())


async def put_faults(request: Request) -> Response:
    """``PUT /_sim/faults``: replace the fault settings (counters and RNG start over)."""
    data = _body(await request.body())
    if not isinstance(data, dict):
        raise bad_request("fault settings must be a JSON object")
    try:
        config = fault_config(data)
    except ConfigError as exc:
        raise bad_request(str(exc)) from exc
    sim_of(request).set_faults(config)
    return json(config.model_dump())


async def get_requests(request: Request) -> Response:
    """``GET /_sim/requests``: the request log, oldest first."""
    return json(sim_of(request).log.entries())


async def count_requests(request: Request) -> Response:
    """``GET /_sim/requests/counts[?method=GET]``: requests per route (see
    :meth:`~sink.hubsim.layer.RequestLog.counts`)."""
    return json(sim_of(request).log.counts(request.query_params.get("method")))


async def clear_requests(request: Request) -> Response:
    """``DELETE /_sim/requests``."""
    sim_of(request).log.clear()
    return empty()


async def reset(request: Request) -> Response:
    """``POST /_sim/reset``: state back to the seed, faults back to the start, log cleared."""
    sim_of(request).reset()
    return empty()


class _ConfigBody(pydantic.BaseModel):
    jwt_ttl: float = pydantic.Field(gt=0)


async def get_config(request: Request) -> Response:
    """``GET /_sim/config``: ``{"jwt_ttl": seconds}``."""
    return json({"jwt_ttl": sim_of(request).hub.jwt_ttl})


async def put_config(request: Request) -> Response:
    """``PUT /_sim/config``: change the lifetime of JWTs issued from now on."""
    try:
        body = _ConfigBody.model_validate(_body(await request.body()))
    except pydantic.ValidationError as exc:
        raise bad_request(str(exc)) from exc
    sim_of(request).hub.jwt_ttl = body.jwt_ttl
    return json({"jwt_ttl": body.jwt_ttl})


async def accept(request: Request) -> Response:
    """``POST /_sim/invites/{id}/accept`` (``{"username": ...}`` optional): the invitee joins."""
    data = _body(await request.body())
    username = data.get("username") if isinstance(data, dict) else None
    result = accept_invite(
        sim_of(request).hub, request.path_params["id"], str(username) if username else None
    )
    return json(result)


async def health(request: Request) -> Response:
    """``GET /_sim/health``."""
    return json({"ok": True})


ROUTES: list[Route] = [
    route("/_sim/state", GET=get_state),
    route("/_sim/faults", GET=get_faults, PUT=put_faults),
    route("/_sim/requests", GET=get_requests, DELETE=clear_requests),
    route("/_sim/requests/counts", GET=count_requests),
    route("/_sim/reset", POST=reset),
    route("/_sim/config", GET=get_config, PUT=put_config),
    route("/_sim/invites/{id}/accept", POST=accept),
    route("/_sim/health", GET=health),
]
