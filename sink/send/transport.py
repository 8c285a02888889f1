"""A lean HTTP/1.1 keep-alive transport for ``httpx.AsyncClient``, on asyncio directly.

httpx's default transport (httpcore over anyio) costs most of the ~1 ms of CPU httpx spends on a
request, and its pool rescans every connection for every request (quadratic in the pool size;
DESIGN.md's "a pool of 64 collapsed"). The dispatcher's traffic is simple: HTTP/1.1 with small
bodies on a few keep-alive origins. This transport does exactly that on asyncio directly, with
an O(1) pool, and raises httpx's own exceptions so everything above it is unchanged. It does not
do HTTP/2, proxies or streaming bodies; make_client() falls back to httpx's transport when a
proxy is configured (wrapped so the same deadline and size cap hold there).

Every request is bounded: a total deadline (connect + write + read, not the wait for a pool
slot) on top of httpx's inactivity timeouts, and a cap on the response body, encoded and
decoded. Responses are parsed by llhttp (Node.js's parser, through ``httptools``) in its strict
mode, which refuses ``Transfer-Encoding`` with ``Content-Length``, repeated or malformed
lengths, malformed chunks, bare CR or LF, and control bytes or obs-fold in a head. sink checks
itself what llhttp lets through or cannot be told: a transfer coding other than ``chunked`` (or
given twice), a version other than HTTP/1.0 and 1.1, a status under 100 or an unasked 101, TE
with CL again (so a lenient llhttp could not read it as chunked), the end of a response to HEAD
(only its head is given to llhttp, which cannot be told there is no body), the end of a body
delimited by the close (httptools has no call for the end of input), bytes beyond the response,
and bytes that make no progress (a head or trailer that never ends). A repeat of the same
``Content-Length``, which llhttp refuses and h11 keeps once, is parsed again without the repeat.
Anything refused raises :class:`httpx.RemoteProtocolError` and closes the connection. Header
names and values that would change the request's framing (CR, LF, NUL) are refused with
:class:`httpx.LocalProtocolError` before anything is sent. An idle connection the server has
closed is never reused (its socket is polled first, as httpcore does); a reused connection that
dies before any byte of the answer is retried once, on a fresh one, for GET, HEAD, OPTIONS and
TRACE only: anything else may have been processed, and the dispatcher decides.

tests/test_transport.py runs the same requests through this transport and httpx's own against
uvicorn (h11 and httptools), hypercorn and nginx on loopback.
"""

from __future__ import annotations

import asyncio
import collections
import http.cookiejar
import os
import re
import select
import ssl
import zlib
from collections.abc import Mapping
from typing import Any

import httptools
import httpx

DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""The default cap on a response body (16 MiB), before and after content decoding."""

# Bytes received without the response moving on (a head, a chunk line, a trailer section not
# ending): llhttp streams them, but httptools holds a header or a trailer whole, so bound them.
_MAX_HEAD = 64 * 1024
# Methods that cannot change anything: a reused connection that dies before any answer is
# retried on a fresh one only for these (a POST may have been processed; the dispatcher decides).
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_OWS = b" \t"
_VERSIONS = {"1.1": b"HTTP/1.1", "1.0": b"HTTP/1.0"}
_DUPLICATE_LENGTH = "Duplicate Content-Length"  # llhttp's reason, also for equal repeats


class ResponseTooLarge(httpx.RemoteProtocolError):
    """The response body, as sent or once decoded, is larger than ``max_response_bytes``.

    A :class:`httpx.RemoteProtocolError` (so a :class:`httpx.TransportError`): the request was
    sent and may have taken effect, and the dispatcher treats it so. The connection is closed,
    never returned to the pool.
    """


def _too_large(
    limit: int, request: httpx.Request | None, decoded: bool = False
) -> ResponseTooLarge:
    what = "once decoded " if decoded else ""
    return ResponseTooLarge(
        f"the response body is {what}larger than the limit of {limit:,} bytes "
        "(max_response_bytes); the connection was closed",
        request=request,
    )


class _Beyond(Exception):
    """Raised in a parser callback: bytes follow the end of the response."""


class _Reply:
    """A parsed response: status, reason, raw headers, body, whether the connection is reusable."""

    __slots__ = ("body", "encoding", "headers", "keep_alive", "reason", "status", "version")

    def __init__(
        self,
        status: int,
        reason: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        keep_alive: bool,
        encoding: bytes,
        version: bytes,
    ) -> None:
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.encoding = encoding


def _without_repeated_lengths(head: bytes) -> bytes:
    """``head`` without the Content-Length lines that repeat its first one's value (h11 keeps
    such a repeat once; llhttp refuses it). Different values are left for llhttp to refuse."""
    first: bytes | None = None
    kept = []
    for line in head.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if colon and len(name) == 14 and name.lower() == b"content-length":
            value = value.strip(_OWS)
            if value == first:
                continue
            if first is None:
                first = value
        kept.append(line)
    return b"\r\n".join(kept)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; one request at a time. The response is parsed as bytes arrive,
    by llhttp (``httptools``), one parser per request; the ``on_*`` methods are its callbacks."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.loop = loop
        self.limit = limit
        self.transport: asyncio.Transport | None = None
        self.fileno = -1
        self.closed = False
        self.idle_since = loop.time()
        self._waiter: asyncio.Future[_Reply] | None = None
        self._request: httpx.Request | None = None
        self._head_method = False
        self._timeout: float | None = None
        self._deadline: float | None = None
        self._total = 0.0
        self._last_activity = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.answered = False  # any byte of a response to the current request
        self._start()
        self.on_message_begin()

    def _start(self) -> None:
        """State for a new response; the parser's callbacks fill it."""
        self._parser = httptools.HttpResponseParser(self)
        self._buffer = bytearray()  # HEAD: bytes not yet given to the parser
        self._raw: list[bytes] = []  # bytes received until the final head is parsed
        self._keep_raw = True
        self._recovering = False
        self._chunks: list[bytes] = []
        self._body_size = 0
        self._trailer_size = 0
        self._idle = 0  # bytes received without progress
        self._progress = False
        self._final = False  # the head of the final (not 1xx) response is parsed
        self._until_close = False  # the body ends with the connection
        self._done = False
        self._beyond = False  # bytes after the response: do not reuse the connection
        self._problem: Exception | None = None  # raised in a callback, re-raised after

    # the parser's callbacks

    def on_message_begin(self) -> None:
        if self._done:
            raise _Beyond
        self._status = 0
        self._reason = b""
        self._version = b"HTTP/1.1"
        self._headers: list[tuple[bytes, bytes]] = []
        self._length = -1
        self._chunked = False
        self._close = False
        self._encoding = b""
        self._headers_done = False
        self._keep_alive = False

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._headers_done:  # a trailer: checked by llhttp, dropped (as httpx does)
            self._trailer_size += len(name) + len(value)
            if self._trailer_size > _MAX_HEAD:
                raise self._refuse("trailers too large")
            return
        value = value.rstrip(_OWS)  # llhttp drops the leading whitespace only
        size = len(name)
        if size == 14 or size == 17 or size == 16 or size == 10:
            lowered = name.lower()
            if lowered == b"content-length":
                self._length = int(value)  # digits only: llhttp checked
            elif lowered == b"transfer-encoding":
                # llhttp takes any coding list ending in chunked, and reads a response with
                # another coding to the close: neither is what the server meant for sure.
                if self._chunked:
                    raise self._refuse("more than one Transfer-Encoding header")
                value = value.lower()  # as h11 gives it
                if value != b"chunked":
                    raise self._refuse(f"unsupported Transfer-Encoding {value[:40]!r}")
                self._chunked = True
            elif lowered == b"connection":
                # HTTP/1.0's "keep-alive" is not honoured (as h11): the connection closes
                if b"close" in [token.strip(_OWS) for token in value.lower().split(b",")]:
                    self._close = True
            elif lowered == b"content-encoding":
                coding = value.lower()
                self._encoding = coding if not self._encoding else self._encoding + b"," + coding
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = self._progress = True
        parser = self._parser
        status = parser.get_status_code()
        if status == 101:
            raise self._refuse("unexpected 101 Switching Protocols (no upgrade was asked)")
        version = _VERSIONS.get(parser.get_http_version())
        if version is None or status < 100:  # llhttp takes HTTP/0.9 and 2.0, and 000 to 099
            raise self._refuse("malformed status line")
        if self._chunked and self._length >= 0:
            # llhttp refuses this too, unless made lenient: never rely on that alone
            raise self._refuse(
                "the response has both Transfer-Encoding and Content-Length (refused: a "
                "request-smuggling vector)"
            )
        self._status = status
        self._version = version
        if status < 200:
            return  # an interim response (100 Continue): llhttp ends it, the real one follows
        self._final = True
        self._keep_raw = False
        self._raw.clear()
        self._keep_alive = version == b"HTTP/1.1" and not self._close
        if self._head_method:
            self._done = True  # llhttp cannot be told: the head only is fed (_feed_head)
        elif status == 204 or status == 304 or self._chunked:
            pass  # llhttp knows these have no body, or where it ends
        elif self._length >= 0:
            if self._length > self.limit:
                raise self._keep(_too_large(self.limit, self._request))
        else:
            self._until_close = True
            self._keep_alive = False

    def on_body(self, body: bytes) -> None:
        self._progress = True
        self._body_size += len(body)
        if self._body_size > self.limit:
            raise self._keep(_too_large(self.limit, self._request))
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self._final:
            self._done = True

    def _refuse(self, message: str) -> httpx.RemoteProtocolError:
        return self._keep(httpx.RemoteProtocolError(message, request=self._request))

    def _keep(self, exc: httpx.RemoteProtocolError) -> httpx.RemoteProtocolError:
        self._problem = exc  # httptools wraps what a callback raises: this is re-raised
        return exc

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self.fileno = sock.fileno()

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # nothing was asked: the connection cannot be trusted any more
            return
        self.answered = True
        self._last_activity = self.loop.time()
        self._progress = False
        try:
            self._feed(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if not self._done:
                problem = self._problem or httpx.RemoteProtocolError(
                    f"malformed response ({exc})", request=self._request
                )
                self._fail(problem)
                self.close()
                return
            self._beyond = True  # the response is whole; what follows is not for us
        if self._done:
            self._finish(self._reply())
        elif self._progress:
            self._idle = 0
        else:
            self._idle += len(data)
            if self._idle > _MAX_HEAD:
                self._fail(
                    httpx.RemoteProtocolError(
                        "response head, chunk line or trailers too large", request=self._request
                    )
                )
                self.close()

    def _feed(self, data: bytes) -> None:
        if self._keep_raw:
            self._raw.append(data)
        try:
            if self._recovering:
                self._recover()
            elif self._head_method:
                self._feed_head(data)
            else:
                self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self._recovering or self._problem is not None or str(exc) != _DUPLICATE_LENGTH:
                raise
            self._recovering = True
            self._recover()

    def _feed_head(self, data: bytes) -> None:
        """A response to HEAD: its headers describe a body that is not sent, and httptools
        cannot tell llhttp so (llhttp would wait for it). Give llhttp the head only: up to the
        first empty line, where it ends for a parser that allows no bare CR or LF."""
        buffer = self._buffer
        buffer += data
        while not self._done:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[: end + 4])
            del buffer[: end + 4]
            self._parser.feed_data(head)
        if buffer:
            self._beyond = True

    def _recover(self) -> None:
        """llhttp refused a repeated Content-Length; h11 (so httpx) keeps a repeat of the same
        value once. Parse all that came again, heads without such repeats, on a new parser."""
        raw = b"".join(self._raw)
        self._parser = httptools.HttpResponseParser(self)
        self._buffer = bytearray()
        self._progress = False
        self.on_message_begin()
        start = 0
        while not self._final:
            end = raw.find(b"\r\n\r\n", start)
            if end < 0:
                return  # the head is not all here: parsed again with the next bytes
            self._parser.feed_data(_without_repeated_lengths(raw[start : end + 4]))
            start = end + 4
        self._recovering = False
        rest = raw[start:]
        if self._head_method:
            self._beyond = bool(rest)
        elif rest:
            self._parser.feed_data(rest)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        request = self._request
        if self._until_close and exc is None:
            # httptools has no call for the end of the input: the body is what came
            self._finish(self._reply())
        elif not self.answered:
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

    def stale(self) -> bool:
        """Whether an idle connection was closed (or spoken on) by the server: the socket is
        readable although nothing was asked. Catches a close the event loop has not seen yet."""
        if self.closed:
            return True
        if self.fileno < 0:
            return False
        poller = select.poll()
        poller.register(self.fileno, select.POLLIN)
        try:
            return bool(poller.poll(0))
        except OSError:
            return True

    def send(
        self,
        request: httpx.Request,
        data: bytes,
        timeout: float | None,
        deadline: float | None,
        total: float,
    ) -> asyncio.Future[_Reply]:
        """Write the request; the future gets the reply. ``timeout`` bounds inactivity,
        ``deadline`` (loop time) the whole exchange."""
        assert self.transport is not None
        self._start()
        self.answered = False
        self._request = request
        self._head_method = request.method == "HEAD"
        waiter = self._waiter = self.loop.create_future()
        self._timeout = timeout
        self._deadline = deadline
        self._total = total
        now = self._last_activity = self.loop.time()
        due = self._due(now)
        if due is not None:
            self._timer = self.loop.call_at(due, self._check_timeout)
        self.transport.write(data)
        return waiter

    def _due(self, last_activity: float) -> float | None:
        due = None if self._timeout is None else last_activity + self._timeout
        deadline = self._deadline
        if deadline is not None and (due is None or deadline < due):
            due = deadline
        return due

    def _check_timeout(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        now = self.loop.time()
        if self._deadline is not None and now >= self._deadline:
            message = (
                f"no complete response within {self._total:g} s, the request's total deadline "
                "(the server was still sending, or silent)"
            )
        else:
            due = self._due(self._last_activity)
            if due is not None and now < due:
                self._timer = self.loop.call_at(due, self._check_timeout)
                return
            message = f"timed out waiting for the response (no data for {self._timeout:g} s)"
        self._fail(httpx.ReadTimeout(message, request=self._request))
        self.close()

    def _finish(self, reply: _Reply) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiter, self._waiter = self._waiter, None
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

    def _reply(self) -> _Reply:
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return _Reply(
            self._status,
            self._reason,
            self._headers,
            body,
            self._keep_alive and not self._beyond,
            self._encoding,
            self._version,
        )


def _decoded_within(body: bytes, encoding: bytes, limit: int) -> bool:
    """Whether ``body``, once httpx decodes its Content-Encoding (gzip, deflate, stacked), is at
    most ``limit`` bytes. Decodes with a bounded output; undecodable data is left to httpx."""
    data = body
    for coding in reversed(encoding.split(b",")):
        coding = coding.strip(_OWS)
        if coding == b"gzip":
            attempts = [zlib.MAX_WBITS | 16]
        elif coding == b"deflate":
            attempts = [zlib.MAX_WBITS, -zlib.MAX_WBITS]  # as httpx: zlib-wrapped, else raw
        else:
            continue  # identity, or one httpx does not decode
        for wbits in attempts:
            try:
                data = zlib.decompressobj(wbits).decompress(data, limit + 1)
                break
            except zlib.error:
                continue
        else:
            return True  # httpx raises its DecodingError
        if len(data) > limit:
            return False
    return True


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

    ``deadline``: seconds a request may take in all, connect + write + read (from the moment it
    has a pool slot); ``None`` applies the request's read timeout as the total. Exceeded, it
    raises :class:`httpx.ReadTimeout` (:class:`httpx.ConnectTimeout` while connecting).
    ``max_response_bytes``: the largest response body accepted, as sent and once decoded;
    larger raises :class:`ResponseTooLarge` and closes the connection.
    """

    def __init__(
        self,
        *,
        max_connections: int = 16,
        keepalive_expiry: float = 4.0,
        verify: ssl.SSLContext | bool = True,
        deadline: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.max_connections = max(1, max_connections)
        self.keepalive_expiry = keepalive_expiry
        self.deadline = deadline
        self.max_response_bytes = max(0, max_response_bytes)
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._pools: dict[tuple[bytes, bytes, int], _Pool] = {}
        self._closed = False
        self._good_names: set[bytes] = set()

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            verify = self._verify
            context = (
                verify
                if isinstance(verify, ssl.SSLContext)
                else httpx.create_ssl_context(verify=verify)
            )
            context.set_alpn_protocols(["http/1.1"])  # as httpcore does: never h2 here
            self._ssl = context
        return self._ssl

    def _encode(self, request: httpx.Request, content: bytes) -> bytes:
        url = request.url
        method = request.method.encode()
        good = self._good_names
        if method not in good:
            if not _TOKEN.fullmatch(method):
                raise httpx.LocalProtocolError(f"invalid method {method!r}", request=request)
            good.add(method)
        head = [method, b" ", url.raw_path, b" HTTP/1.1\r\n"]
        chunked = False
        raw = request.headers.raw
        for name, value in raw:
            if name not in good:
                if not _TOKEN.fullmatch(name):
                    raise httpx.LocalProtocolError(
                        f"invalid header name {name[:40]!r}", request=request
                    )
                if len(good) < 256:
                    good.add(name)
            if len(name) == 17 and name.lower() == b"transfer-encoding":
                chunked = True
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        data = b"".join(head)
        lines = len(raw) + 2  # the request line, the headers, the empty line
        if data.count(b"\n") != lines or data.count(b"\r") != lines or b"\x00" in data:
            raise httpx.LocalProtocolError(
                "CR, LF or NUL in a header value or the request line (refused: it would "
                "change the request's framing)",
                request=request,
            )
        if chunked:  # a streamed body, read whole: send it framed as its header says
            if content:
                return b"%s%x\r\n%s\r\n0\r\n\r\n" % (data, len(content), content)
            return data + b"0\r\n\r\n"
        return data + content

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
        data = self._encode(request, content)
        read_timeout = timeouts.get("read")
        total = self.deadline if self.deadline is not None else read_timeout
        loop = asyncio.get_running_loop()
        connection, reused, started = await self._acquire(
            pool, key, request, timeouts.get("connect"), total
        )
        deadline = None if total is None else started + total
        while True:
            try:
                reply = await connection.send(request, data, read_timeout, deadline, total or 0)
                break
            except (httpx.RemoteProtocolError, httpx.ReadError):
                if reused and not connection.answered and request.method in _SAFE_METHODS:
                    pass  # below: once more, on a fresh connection
                else:
                    connection.close()
                    self._release(pool, connection)
                    raise
            except BaseException:
                connection.close()
                self._release(pool, connection)
                raise
            # A kept-alive connection the server closed as the request went out, before any
            # answer: a safe method goes once more, on a fresh connection in the same slot.
            connection.close()
            reused = False
            connect = timeouts.get("connect")
            if deadline is not None:
                remaining = max(0.0, deadline - loop.time())
                connect = remaining if connect is None else min(connect, remaining)
            try:
                connection = await self._connect(loop, key, request, connect)
            except BaseException:
                pool.count -= 1
                self._wake(pool)
                raise
        limit = self.max_response_bytes
        if reply.encoding and reply.body and not _decoded_within(reply.body, reply.encoding, limit):
            connection.close()
            self._release(pool, connection)
            raise _too_large(limit, request, decoded=True)
        self._release(pool, connection)
        # stream=, not content=: httpx would add a Content-Length header beside the server's own
        return httpx.Response(
            reply.status,
            headers=reply.headers,
            stream=httpx.ByteStream(reply.body),
            extensions={"http_version": reply.version, "reason_phrase": reply.reason},
        )

    async def _acquire(
        self,
        pool: _Pool,
        key: tuple[bytes, bytes, int],
        request: httpx.Request,
        connect_timeout: float | None,
        total: float | None,
    ) -> tuple[_Connection, bool, float]:
        """A connection, whether it was reused, and the loop time its pool slot was had."""
        loop = asyncio.get_running_loop()
        idle = pool.idle
        while idle:
            connection = idle.pop()
            if (
                loop.time() - connection.idle_since < self.keepalive_expiry
                and not connection.stale()
            ):
                return connection, True, loop.time()
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
                return handed, True, loop.time()
        pool.count += 1  # a slot for a new connection
        started = loop.time()
        if total is not None:
            connect_timeout = total if connect_timeout is None else min(connect_timeout, total)
        try:
            return await self._connect(loop, key, request, connect_timeout), False, started
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
        limit = self.max_response_bytes
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    lambda: _Connection(loop, limit),
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
        if secure:
            ssl_object = transport.get_extra_info("ssl_object")
            alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
            if alpn not in (None, "http/1.1"):
                protocol.close()
                raise httpx.ConnectError(
                    f"{host}:{port} chose {alpn!r}; this transport speaks HTTP/1.1 only",
                    request=request,
                )
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


class _Bounded(httpx.AsyncBaseTransport):
    """httpx's own transport (used with a proxy) under the same total deadline and body cap
    as :class:`HubTransport`: the body is read here, within the deadline, up to the cap."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, *, deadline: float | None, max_response_bytes: int
    ) -> None:
        self.inner = inner
        self.deadline = deadline
        self.max_response_bytes = max(0, max_response_bytes)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout") or {}
        total = self.deadline if self.deadline is not None else timeouts.get("read")
        limit = self.max_response_bytes
        try:
            async with asyncio.timeout(total) as scope:
                response = await self.inner.handle_async_request(request)
                try:
                    length = response.headers.get("content-length", "")
                    if length.isdigit() and int(length) > limit:
                        raise _too_large(limit, request)
                    body = bytearray()
                    async for part in response.stream:  # type: ignore[union-attr]
                        body += part
                        if len(body) > limit:
                            raise _too_large(limit, request)
                finally:
                    await response.aclose()
        except TimeoutError as exc:
            if not scope.expired():
                raise
            raise httpx.ReadTimeout(
                f"no complete response within {total:g} s, the request's total deadline",
                request=request,
            ) from exc
        encoding = response.headers.get("content-encoding", "").lower().encode("latin-1")
        if encoding and body and not _decoded_within(bytes(body), encoding, limit):
            raise _too_large(limit, request, decoded=True)
        extensions = {k: v for k, v in response.extensions.items() if k != "network_stream"}
        return httpx.Response(
            response.status_code,
            headers=response.headers.raw,
            stream=httpx.ByteStream(bytes(body)),
            extensions=extensions,
        )

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self.inner.aclose()


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
    deadline: float | None = None,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for the dispatcher: one keep-alive connection per concurrent
    request on the lean :class:`HubTransport` (httpx's own transport when a proxy is set in
    the environment), a connect timeout shorter than the read timeout, and no pool timeout
    (waiting for a connection is the concurrency limit at work, not a failure). Redirects are
    never followed (a credential goes to the base URL's origin only).

    ``timeout`` bounds each wait for the server; ``deadline`` bounds a whole request (connect
    + write + read) and defaults to ``timeout``, so a response trickling in byte by byte still
    ends at ``timeout`` seconds with :class:`httpx.ReadTimeout`. ``max_response_bytes`` caps a
    response body, as sent and once decoded (default :data:`DEFAULT_MAX_RESPONSE_BYTES`,
    16 MiB); a larger one raises :class:`ResponseTooLarge`. Both hold on the proxy path too; a
    ``transport`` given by the caller is used as it is."""
    pool = max(1, concurrency)
    timeouts = httpx.Timeout(timeout, connect=min(timeout, 10.0), pool=None)
    default_headers = {"Accept": "application/json", "User-Agent": "sink/0.1"}
    default_headers.update(headers or {})
    proxied = any(os.environ.get(name) for name in _PROXY_VARIABLES)
    total = timeout if deadline is None else deadline
    # httpx's pool rescans every connection per request: keep it at 32 or fewer (DESIGN.md).
    limits = httpx.Limits(
        max_connections=min(pool, 32), max_keepalive_connections=min(pool, 32), keepalive_expiry=4.0
    )
    mounts: dict[str, httpx.AsyncBaseTransport | None] | None = None
    if transport is None and not proxied:
        transport = HubTransport(
            max_connections=pool, deadline=total, max_response_bytes=max_response_bytes
        )
    elif transport is None:
        # httpx builds its proxy transports from the environment; wrap each the same way.
        probe = httpx.AsyncClient(limits=limits, trust_env=True)
        mounts = {
            pattern.pattern: _Bounded(inner, deadline=total, max_response_bytes=max_response_bytes)
            for pattern, inner in probe._mounts.items()
            if inner is not None
        }
        transport = _Bounded(
            probe._transport, deadline=total, max_response_bytes=max_response_bytes
        )
    return httpx.AsyncClient(
        base_url=base_url,
        auth=auth,
        limits=limits,
        timeout=timeouts,
        headers=default_headers,
        transport=transport,
        mounts=mounts,
        follow_redirects=False,
        trust_env=proxied,
        cookies=_NoCookies(),
    )
