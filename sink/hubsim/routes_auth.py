"""Token exchange: ``/v2/auth/token`` and the deprecated ``/v2/users/login``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from sink.hubsim.bodies import LoginRequest, TokenRequest, json_body, parse
from sink.hubsim.errors import HubError
from sink.hubsim.web import Route, hub_of, json, note_credential, route

_LOGIN_FAILED = "Incorrect authentication credentials"


async def auth_token(request: Request) -> Response:
    """``POST /v2/auth/token``: ``{identifier, secret}`` → ``{access_token}``."""
    hub = hub_of(request)
    body = parse(await json_body(request), TokenRequest)
    note_credential(request, f"exchange:{body.identifier}")
    token, credential = hub.exchange(body.identifier, body.secret)
    note_credential(request, credential)
    return json({"access_token": token})


async def users_login(request: Request) -> Response:
    """``POST /v2/users/login`` (deprecated): ``{username, password}`` → ``{token}``.

    Failures use ``PostUsersLoginErrorResponse``: ``{"detail": ...}``.
    """
    hub = hub_of(request)
    try:
        body = parse(await json_body(request), LoginRequest)
        note_credential(request, f"login:{body.username}")
        token, credential = hub.exchange(body.username, body.password)
    except HubError as exc:
        return json({"detail": _LOGIN_FAILED if exc.status == 401 else exc.message}, exc.status)
    note_credential(request, credential)
    return json({"token": token})


async def users_2fa_login(request: Request) -> Response:
    """``POST /v2/users/2fa-login``: no simulated user has 2FA, so every code is refused."""
    return json({"detail": _LOGIN_FAILED}, 401)


ROUTES: list[Route] = [
    route("/v2/auth/token", POST=auth_token),
    route("/v2/users/login", POST=users_login),
    route("/v2/users/2fa-login", POST=users_2fa_login),
]
