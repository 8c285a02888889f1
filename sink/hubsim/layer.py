"""The ASGI layer in front of the Hub routes: rate-limit headers, faults, the request log.

Control routes (``/_sim/...``) pass straight through: no faults, no headers, no log entry.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sink.hubsim.faults import Decision, Faults

if TYPE_CHECKING:
    from sink.hubsim.hub import Hub

CONTROL_PREFIX = "/_sim"
LOG = logging.getLogger("sink.hubsim")
"""One quiet line (INFO) per client that left before its request was read; `sink hubsim`
prints them."""
_JSON = (b"content-type", b"application/json")
_HTML = (b"content-type", b"text/html; charset=utf-8")
_THROTTLED = orjson.dumps(
    {
        "message": "Rate limit exceeded",
        "errinfo": None,
        "detail": "Rate limit exceeded",
        "error": False,
    }
)
_ERROR_BODIES = {
    500: (
        _JSON,
        orjson.dumps({"message": "internal error", "errinfo": None, "detail": "internal error"}),
    ),
    502: (
        _HTML,
        b"<html><head><title>502 Bad Gateway</title></head><body><center>"
        b"<h1>502 Bad Gateway</h1></center></body></html>\n",
    ),
    503: (
        _HTML,
        b"<html><head><title>503 Service Temporarily Unavailable</title></head><body>"
        b"<center><h1>503 Service Temporarily Unavailable</h1></center></body></html>\n",
    ),
}


class RequestLog:
    """The last ``size`` Hub requests: method, path, status, credential name, faults applied."""

    def __init__(self, size: int = 100_000) -> None:
        self._entries: collections.deque[tuple[Any, ...]] = collections.deque(maxlen=size)

    def add(self, *entry: Any) -> None:
        """Append ``(time, method, path, query, status, credential, faults, route)``."""
        self._entries.append(entry)

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()

    def entries(self) -> list[dict[str, Any]]:
        """The log, oldest first; ``status`` is ``None`` for a dropped connection."""
        return [
            {
                "time": t,
                "method": m,
                "path": p,
                "query": q,
                "status": s,
                "credential": c,
                "faults": list(f),
                "route": r,
            }
            for t, m, p, q, s, c, f, r in list(self._entries)
        ]

    def counts(self, method: str | None = None) -> dict[str, Any]:
        """Requests per route: ``{"total": n, "routes": {"GET /v2/orgs/{org_name}/members":
        k, ...}}``, keyed by method and the spec's path template (a path no route serves is
        keyed by itself), only ``method``'s requests when given. Throttled, failed and dropped
        requests count: each one is a request Hub would have counted."""
        wanted = method.upper() if method else None
        routes: collections.Counter[str] = collections.Counter()
        for entry in list(self._entries):
            m, p, r = entry[1], entry[2], entry[7]
            if wanted is None or m == wanted:
                routes[f"{m} {r or p}"] += 1
        return {"total": sum(routes.values()), "routes": dict(sorted(routes.items()))}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class HubLayer:
    """Wraps the router: decides faults, adds ``X-RateLimit-*`` headers, logs every request."""

    def __init__(
        self,
        app: ASGIApp,
        hub_ref: Callable[[], Hub],
        faults_ref: Callable[[], Faults],
        log: RequestLog,
        route_of: Callable[[str], str | None] = lambda path: None,
    ) -> None:
        self.app = app
        self.hub_ref = hub_ref
        self.faults_ref = faults_ref
        self.log = log
        self.route_of = route_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        now = time.time()
        hub = self.hub_ref()
        credential = hub.credential_of(_header(scope, b"authorization"))
        if credential is None:
            client = scope.get("client")
            credential = f"ip:{client[0] if client else '?'}"
        decision = self.faults_ref().decide(method, path, credential, now)
        extra = (
            [
                (b"x-ratelimit-limit", str(decision.limit).encode()),
                (b"x-ratelimit-remaining", str(decision.remaining).encode()),
                (b"x-ratelimit-reset", str(decision.reset).encode()),
            ]
            if decision.quota_headers
            else []
        )
        labels = decision.labels
        try:
            status = await self._serve(scope, receive, send, decision, extra)
        except ClientDisconnect:
            client_left(scope)
            status = None
            labels = (*labels, "client_left")  # its request was never read whole: no effect
        named = scope.get("hubsim.credential") or (
            credential if not credential.startswith("ip:") else "anonymous"
        )
        self.log.add(
            now,
            method,
            path,
            scope.get("query_string", b"").decode("latin-1"),
            status,
            named,
            labels,
            scope.get("hubsim.route") or self.route_of(path),
        )

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        decision: Decision,
        extra: list[tuple[bytes, bytes]],
    ) -> int | None:
        if decision.delay:
            await asyncio.sleep(decision.delay)
        if decision.throttle is not None:
            quota = [extra[0], (b"x-ratelimit-remaining", b"0"), extra[2]] if extra else []
            headers = [*quota, (b"retry-after", str(int(decision.throttle)).encode()), _JSON]
            await _answer(send, 429, headers, _THROTTLED)
            return 429
        failing = decision.drop or decision.error is not None
        if failing and not decision.apply_first:
            return await self._fail(send, decision, extra)
        if not decision.slow and not failing:
            status = 0

            async def send_with_headers(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = [*message.get("headers", []), *extra]
                await send(message)

            await self.app(scope, receive, send_with_headers)
            return status
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        if failing:
            return await self._fail(send, decision, extra)
        await asyncio.sleep(decision.slow)
        for message in held:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)
        return int(held[0]["status"]) if held else None

    async def _fail(
        self, send: Send, decision: Decision, extra: list[tuple[bytes, bytes]]
    ) -> int | None:
        if decision.drop:
            await drop_connection(send)
            return None
        status = decision.error or 500
        content_type, body = _ERROR_BODIES.get(status, _ERROR_BODIES[500])
        await _answer(send, status, [*extra, content_type], body)
        return status


def client_left(scope: Scope) -> None:
    """Log, in one line and without a traceback, a client that left before its request was
    read whole (its timeout, a Ctrl-C): there is no one to answer."""
    client = scope.get("client")
    who = f"{client[0]}:{client[1]}" if client else "a client"
    LOG.info("%s left before its request was read: %s %s", who, scope["method"], scope["path"])


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def drop_connection(send: Send) -> None:
    """Close the client's connection without an answer.

    uvicorn's ``send`` is a bound method of the request cycle, which holds the transport: abort
    it, then yield so uvicorn sees the disconnection before the app returns. Under another
    server, announce a body, send part of it and fail, which leaves an incomplete response.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        transport.abort()
        for _ in range(3):
            await asyncio.sleep(0)
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"1024"), _JSON],
        }
    )
    await send({"type": "http.response.body", "body": b'{"', "more_body": True})
    raise ConnectionAbortedError("hubsim dropped the connection")
