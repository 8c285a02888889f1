"""The HTTP plumbing shared by the routes: a small router, JSON answers and pagination.

Routes match the spec's paths exactly, with or without one trailing slash; an unknown path is a
JSON 404 and a known path with another method a JSON 405. Starlette's ``Request`` and
``Response`` carry each exchange.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sink.hubsim.errors import HubError, Shape

if TYPE_CHECKING:
    from sink.hubsim.hub import Hub

Handler = Callable[[Request], Awaitable[Response]]
_PARAM = re.compile(r"{([a-z_]+)}")


def json(body: Any, status: int = 200) -> Response:
    """A JSON answer."""
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def empty(status: int = 204) -> Response:
    """An answer without a body (204, or 200 with no schema)."""
    return Response(b"", status_code=status)


def hub_of(request: Request) -> Hub:
    """The :class:`Hub` serving this request."""
    hub: Hub = request.scope["hubsim.sim"].hub
    return hub


def sim_of(request: Request) -> Any:
    """The simulator application (``SimApp``) serving this request."""
    return request.scope["hubsim.sim"]


def note_credential(request: Request, credential: str) -> None:
    """Tell the request log which credential made this call."""
    request.scope["hubsim.credential"] = credential


@dataclass(slots=True)
class Route:
    """One spec path with its handlers by method and the error shape of its routes."""

    template: str
    handlers: dict[str, Handler]
    shape: Shape
    pattern: re.Pattern[str]


def route(template: str, shape: Shape = Shape.ERROR, **handlers: Handler) -> Route:
    """A route for ``template`` (``{param}`` segments) served by ``GET=...``, ``POST=...``."""
    regex = _PARAM.sub(
        lambda m: f"(?P<{m.group(1)}>[^/]+)",
        re.escape(template).replace(r"\{", "{").replace(r"\}", "}"),
    )
    return Route(
        template, {m.upper(): h for m, h in handlers.items()}, shape, re.compile(f"^{regex}/?$")
    )


class Router:
    """Dispatch to the first route whose pattern matches; Hub-shaped 404/405 otherwise."""

    def __init__(self, owner: Any, routes: Sequence[Route]) -> None:
        self.owner = owner
        self.routes = list(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        path: str = scope["path"]
        method: str = scope["method"]
        scope["hubsim.sim"] = self.owner
        for r in self.routes:
            match = r.pattern.match(path)
            if match is None:
                continue
            scope["hubsim.route"] = r.template
            handler = r.handlers.get(method)
            if handler is None and method == "HEAD":
                handler = r.handlers.get("GET")
            if handler is None:
                allow = ", ".join(sorted(r.handlers))
                error = HubError(405, f"method {method} not allowed", headers={"Allow": allow})
                await error.response(r.shape)(scope, receive, send)
                return
            scope["path_params"] = match.groupdict()
            request = Request(scope, receive)
            try:
                response = await handler(request)
            except HubError as exc:
                response = exc.response(r.shape)
            await response(scope, receive, send)
            return
        await HubError(404, "not found").response()(scope, receive, send)

    def template_of(self, path: str) -> str | None:
        """The spec path template ``path`` matches (``None``: no route)."""
        return next((r.template for r in self.routes if r.pattern.match(path)), None)


def _int_param(request: Request, name: str, default: int, shape: Shape | None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise HubError(
            400,
            f"{name} must be a positive integer",
            fields={name: ["A valid positive integer is required."]},
            shape=shape,
        )
    return value


def page_params(
    request: Request,
    *,
    default_size: int = 10,
    max_size: int = 100,
    reject_over_max: bool = False,
    shape: Shape | None = None,
) -> tuple[int, int]:
    """``page`` (1-based) and ``page_size`` from the query; 400 when not positive integers.

    Above ``max_size`` the size is refused (``reject_over_max``) or lowered to ``max_size``.
    """
    page = _int_param(request, "page", 1, shape)
    size = _int_param(request, "page_size", default_size, shape)
    if size > max_size:
        if reject_over_max:
            raise HubError(
                400,
                f"page_size must be at most {max_size}",
                fields={"page_size": [f"Ensure this value is less than or equal to {max_size}."]},
                shape=shape,
            )
        size = max_size
    return page, size


def paginate(
    request: Request,
    items: Sequence[Any],
    page: int,
    size: int,
    *,
    count_key: str = "count",
    past_end_is_404: bool = False,
) -> tuple[dict[str, Any], Sequence[Any]]:
    """The page envelope (``count``/``next``/``previous`` with absolute URLs) and its items.

    ``next``/``previous`` are built from the request's own URL, keeping its other parameters.
    """
    total = len(items)
    start = (page - 1) * size
    if past_end_is_404 and page > 1 and start >= total:
        raise HubError(404, "Invalid page.")
    chunk = items[start : start + size]
    url = request.url
    envelope: dict[str, Any] = {
        count_key: total,
        "next": str(url.include_query_params(page=page + 1)) if start + size < total else None,
        "previous": str(url.include_query_params(page=page - 1)) if page > 1 else None,
    }
    return envelope, chunk
