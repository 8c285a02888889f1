"""A lean HTTP/1.1 keep-alive transport for ``httpx.AsyncClient``, on asyncio directly.

httpx's default transport (httpcore over anyio) costs most of the ~1 ms of CPU httpx spends on a
request, and its pool rescans every connection for every request (quadratic in the pool size;
DESIGN.md's "a pool of 64 collapsed"). The dispatcher's traffic is simple: HTTP/1.1 with small
bodies on a few keep-alive origins. This transport does exactly that on asyncio directly, with
an O(1) pool, and raises httpx's own exceptions so everything above it is unchanged. It does not
do HTTP/2, proxies or streaming bodies of unbounded size; make_client() falls back to httpx's
transport when a proxy is configured.
"""

from __future__ import annotations

import asyncio
import collections
import http.cookiejar
import os
import ssl
from collections.abc import Mapping
from typing import Any

import httpx

_MAX_HEAD = 64 * 1024
_NO_BODY_STATUS = frozenset({204, 304})


class _Reply:
    """A parsed response: status, reason, raw headers, body, whether the connection is reusable."""

    __slots__ = ("body", "headers", "keep_alive", "reason", "status")

    def __init__(
        self,
        status: int,
        reason: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        keep_alive: bool,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; one request at a time. Parses the response as bytes arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = loop.time()
        self._buffer = bytearray()
        self._waiter: asyncio.Future[_Reply] | None = None
        self._request: httpx.Request | None = None
        self._head_method = False
        self._timeout = 0.0
        self._last_activity = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._mode = ""  # "", "length", "chunked", "close"
        self._remaining = 0
        self._chunks: list[bytes] = []
        self._keep_alive = True
        self._got_bytes = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # nothing was asked: the connection cannot be trusted any more
            return
        self._got_bytes = True
        self._last_activity = self.loop.time()
        self._buffer += data
        try:
            reply = self._parse()
        except httpx.RemoteProtocolError as exc:
            self._fail(exc)
            self.close()
            return
        if reply is not None:
            self._finish(reply)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        request = self._request
        if self._mode == "close":
            self._finish(self._reply(bytes(self._buffer), keep_alive=False))
        elif not self._got_bytes:
            self._fail(
                httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                )
            )
        else:
            self._fail(
                httpx.ReadError(
                    f"the connection was lost mid-response ({exc or 'closed by the server'})",
                    request=request,
                )
            )

    # requests

    def send(
        self, request: httpx.Request, data: bytes, timeout: float | None
    ) -> asyncio.Future[_Reply]:
        assert self.transport is not None
        self._reset()
        self._buffer.clear()
        self._request = request
        self._head_method = request.method == "HEAD"
        waiter = self._waiter = self.loop.create_future()
        if timeout is not None:
            self._timeout = timeout
            self._last_activity = self.loop.time()
            self._timer = self.loop.call_at(self._last_activity + timeout, self._check_timeout)
        self.transport.write(data)
        return waiter

    def _check_timeout(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        due = self._last_activity + self._timeout
        if self.loop.time() < due:
            self._timer = self.loop.call_at(due, self._check_timeout)
            return
        self._fail(httpx.ReadTimeout("timed out waiting for the response", request=self._request))
        self.close()

    def _finish(self, reply: _Reply) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiter, self._waiter = self._waiter, None
        if self._buffer:
            reply.keep_alive = False  # bytes beyond the response: do not reuse
        if not reply.keep_alive:
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    def _fail(self, exc: Exception) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # parsing

    def _reply(self, body: bytes, *, keep_alive: bool) -> _Reply:
        return _Reply(self._status, self._reason, self._headers, body, keep_alive)

    def _parse(self) -> _Reply | None:
        buffer = self._buffer
        while not self._mode:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEAD:
                    raise httpx.RemoteProtocolError(
                        "response head too large", request=self._request
                    )
                return None
            self._parse_head(bytes(buffer[:end]))
            del buffer[: end + 4]
            if 100 <= self._status < 200:
                self._reset()  # an interim response (100 Continue): the real one follows
                self._got_bytes = True
        if self._mode == "length":
            if len(buffer) < self._remaining:
                return None
            body = bytes(buffer[: self._remaining])
            del buffer[: self._remaining]
            return self._reply(body, keep_alive=self._keep_alive)
        if self._mode == "chunked":
            return self._parse_chunks()
        return None  # "close": the body ends with the connection

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise httpx.RemoteProtocolError("malformed status line", request=self._request)
        self._status = status = int(parts[1])
        self._reason = parts[2] if len(parts) == 3 else b""
        keep_alive = parts[0] == b"HTTP/1.1"
        length = -1
        chunked = False
        headers = self._headers
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                raise httpx.RemoteProtocolError("malformed header line", request=self._request)
            name = name.strip()
            value = value.strip()
            headers.append((name, value))
            lowered = name.lower()
            if lowered == b"content-length":
                if not value.isdigit():
                    raise httpx.RemoteProtocolError("bad Content-Length", request=self._request)
                length = int(value)
            elif lowered == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lowered == b"connection":
                token = value.lower()
                if b"close" in token:
                    keep_alive = False
                elif b"keep-alive" in token:
                    keep_alive = True
        self._keep_alive = keep_alive
        if self._head_method or status in _NO_BODY_STATUS or status < 200:
            self._mode, self._remaining = "length", 0
        elif chunked:
            self._mode, self._remaining = "chunked", -1
        elif length >= 0:
            self._mode, self._remaining = "length", length
        else:
            self._mode = "close"

    def _parse_chunks(self) -> _Reply | None:
        buffer = self._buffer
        while True:
            if self._remaining == -1:  # at a chunk-size line
                end = buffer.find(b"\r\n")
                if end < 0:
                    return None
                size_text = bytes(buffer[:end]).split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise httpx.RemoteProtocolError(
                        "bad chunk size", request=self._request
                    ) from None
                del buffer[: end + 2]
                if size == 0:
                    self._remaining = -2
                else:
                    self._remaining = size
            if self._remaining == -2:  # trailers, up to an empty line
                end = buffer.find(b"\r\n")
                if end < 0:
                    return None
                del buffer[: end + 2]
                if end == 0:
                    return self._reply(b"".join(self._chunks), keep_alive=self._keep_alive)
                continue
            if len(buffer) < self._remaining + 2:
                return None
            self._chunks.append(bytes(buffer[: self._remaining]))
            del buffer[: self._remaining + 2]
            self._remaining = -1


class _Pool:
    """Connections to one origin: idle ones reused last-in first-out, O(1) per request."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.idle: list[_Connection] = []
        self.count = 0  # open or opening connections
        self.waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()


class HubTransport(httpx.AsyncBaseTransport):
    """A lean HTTP/1.1 keep-alive transport for ``httpx.AsyncClient`` (see the comment above).

    ``max_connections`` per origin; waiting for a connection has no time limit (the
    dispatcher's concurrency limit is what queues requests). Idle connections older than
    ``keepalive_expiry`` are closed rather than reused (servers close them at about 5 s).
    """

    def __init__(
        self,
        *,
        max_connections: int = 16,
        keepalive_expiry: float = 4.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.max_connections = max(1, max_connections)
        self.keepalive_expiry = keepalive_expiry
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._pools: dict[tuple[bytes, bytes, int], _Pool] = {}
        self._closed = False

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            verify = self._verify
            self._ssl = (
                verify
                if isinstance(verify, ssl.SSLContext)
                else httpx.create_ssl_context(verify=verify)
            )
        return self._ssl

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise httpx.ConnectError("the transport is closed", request=request)
        url = request.url
        scheme = url.raw_scheme
        if scheme not in (b"http", b"https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}", request=request)
        port = url.port or (443 if scheme == b"https" else 80)
        key = (scheme, url.raw_host, port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(self.max_connections)
        timeouts = request.extensions.get("timeout") or {}
        try:
            content = request.content
        except httpx.RequestNotRead:
            content = await request.aread()
        head = [request.method.encode(), b" ", url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        head.append(content)
        data = b"".join(head)
        connection = await self._acquire(pool, key, request, timeouts.get("connect"))
        try:
            reply = await connection.send(request, data, timeouts.get("read"))
        except BaseException:
            connection.close()
            self._release(pool, connection)
            raise
        self._release(pool, connection)
        return httpx.Response(
            reply.status,
            headers=reply.headers,
            content=reply.body,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reply.reason},
        )

    async def _acquire(
        self,
        pool: _Pool,
        key: tuple[bytes, bytes, int],
        request: httpx.Request,
        connect_timeout: float | None,
    ) -> _Connection:
        loop = asyncio.get_running_loop()
        idle = pool.idle
        while idle:
            connection = idle.pop()
            if (
                not connection.closed
                and loop.time() - connection.idle_since < self.keepalive_expiry
            ):
                return connection
            connection.close()
            pool.count -= 1
        if pool.count >= pool.limit:
            waiter: asyncio.Future[_Connection | None] = loop.create_future()
            pool.waiters.append(waiter)
            try:
                handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    self._release(pool, waiter.result())  # type: ignore[arg-type]
                raise
            if handed is not None:
                return handed
        pool.count += 1  # a slot for a new connection
        try:
            return await self._connect(loop, key, request, connect_timeout)
        except BaseException:
            pool.count -= 1
            self._wake(pool)
            raise

    async def _connect(
        self,
        loop: asyncio.AbstractEventLoop,
        key: tuple[bytes, bytes, int],
        request: httpx.Request,
        timeout: float | None,
    ) -> _Connection:
        scheme, raw_host, port = key
        host = raw_host.decode("ascii")
        secure = scheme == b"https"
        try:
            async with asyncio.timeout(timeout):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(loop),
                    host.strip("[]"),
                    port,
                    ssl=self._ssl_context() if secure else None,
                    server_hostname=host.strip("[]") if secure else None,
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(
                f"connecting to {host}:{port} timed out", request=request
            ) from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(
                f"cannot connect to {host}:{port}: {exc}", request=request
            ) from exc
        return protocol

    def _release(self, pool: _Pool, connection: _Connection) -> None:
        if connection.closed or self._closed:
            pool.count -= 1
            self._wake(pool)
            return
        connection.idle_since = connection.loop.time()
        while pool.waiters:
            waiter = pool.waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        pool.idle.append(connection)

    def _wake(self, pool: _Pool) -> None:
        # A connection slot came free: let one waiter open a new connection.
        while pool.waiters:
            waiter = pool.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        """Close every idle connection; busy ones close when their response is in."""
        self._closed = True
        for pool in self._pools.values():
            for connection in pool.idle:
                connection.close()
            pool.idle.clear()


class _NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that keeps nothing. Hub's API does not use cookies, and httpx's cookie
    extraction rebuilds every response's headers as an email message (tens of µs each)."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


_PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "https_proxy",
    "http_proxy",
    "all_proxy",
)


def make_client(
    base_url: str,
    auth: httpx.Auth | None = None,
    concurrency: int = 16,
    timeout: float = 30.0,
    *,
    headers: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for the dispatcher: one keep-alive connection per concurrent
    request on the lean :class:`HubTransport` (httpx's own transport when a proxy is set in
    the environment), a connect timeout shorter than the read timeout, and no pool timeout
    (waiting for a connection is the concurrency limit at work, not a failure)."""
    pool = max(1, concurrency)
    timeouts = httpx.Timeout(timeout, connect=min(timeout, 10.0), pool=None)
    default_headers = {"Accept": "application/json", "User-Agent": "sink/0.1"}
    default_headers.update(headers or {})
    proxied = any(os.environ.get(name) for name in _PROXY_VARIABLES)
    if transport is None and not proxied:
        transport = HubTransport(max_connections=pool)
    # httpx's pool rescans every connection per request: keep it at 32 or fewer (DESIGN.md).
    limits = httpx.Limits(
        max_connections=min(pool, 32), max_keepalive_connections=min(pool, 32), keepalive_expiry=4.0
    )
    return httpx.AsyncClient(
        base_url=base_url,
        auth=auth,
        limits=limits,
        timeout=timeouts,
        headers=default_headers,
        transport=transport,
        follow_redirects=False,
        trust_env=proxied,
        cookies=_NoCookies(),
    )
