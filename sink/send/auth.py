"""Docker Hub authentication as an ``httpx.Auth``: token exchange, caching and refresh.

Docker Hub's management API takes a short-lived JWT as a bearer. It is obtained by posting the
identifier (a username, or an organization name for an organization access token) and the
secret (a password, ``dckr_pat_...`` or ``dckr_oat_...``) to ``POST /v2/auth/token``; the answer
is ``{"access_token": JWT}`` and the JWT lives about ten minutes. There is no refresh endpoint:
the credential is exchanged again.

:class:`HubAuth` exchanges lazily on the first request, caches the JWT, exchanges again
``refresh_margin`` seconds before its ``exp`` and once more when a request is answered 401.
The exchange goes through the client that sends the request (it is yielded from the auth
flow), so it shares the connection pool and the transport. One exchange runs at a time however
many requests are in flight; the others wait for it and reuse its token.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import httpx
import orjson

from sink.errors import CredentialsError, RetryLater, StopRun, Throttled
from sink.origin import url_origin
from sink.outputs.redact import Redactor
from sink.send.pacing import retry_after

# The spec says the JWT expires in ten minutes; used when a token carries no readable ``exp``.
DEFAULT_TOKEN_LIFETIME = 600.0

TOKEN_PATH = "/v2/auth/token"  # noqa: S105 - a URL path, not a password


def token_url_for(base_url: str) -> str:
    """The token exchange URL of a Docker Hub base URL (``https://hub.docker.com``)."""
    return base_url.rstrip("/") + TOKEN_PATH


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a compact JWT, decoded without verifying the signature ({} if unreadable)."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, orjson.JSONDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class HubAuth(httpx.Auth):
    """Bearer authentication for Docker Hub with token exchange, caching and refresh.

    ``clock`` returns the current Unix time (injectable for tests). When the token carries both
    ``iat`` and ``exp``, its expiry is reckoned as its lifetime from the moment it was received,
    so a client clock that is off does not matter; otherwise ``exp`` is taken as it is.
    """

    def __init__(
        self,
        identifier: str,
        secret: str,
        *,
        token_url: str,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.time,
        redactor: Redactor | None = None,
    ) -> None:
        self.identifier = identifier
        self._secret = secret
        self.token_url = token_url
        self._origin = url_origin(httpx.URL(token_url))
        self.refresh_margin = refresh_margin
        self._clock = clock
        self.redactor = redactor if redactor is not None else Redactor()
        self.redactor.add(secret)
        self._token: str | None = None
        self._refresh_at = 0.0
        self.exchanges = 0
        self._thread_lock = threading.Lock()
        self._async_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return (
            f"HubAuth(identifier={self.identifier!r}, secret='***', token_url={self.token_url!r})"
        )

    # -- state ------------------------------------------------------------------------------

    def _current(self) -> str | None:
        """The cached token if it is not yet due for refresh."""
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        return None

    def invalidate(self) -> None:
        """Forget the cached token; the next request exchanges the credential again."""
        self._token = None
        self._refresh_at = 0.0

    def _async_lock(self) -> asyncio.Lock:
        # An asyncio.Lock belongs to one event loop; keep one per loop so that an auth object
        # can serve clients on several loops (tests run one loop each).
        loop = asyncio.get_running_loop()
        lock = self._async_locks.get(loop)
        if lock is None:
            self._async_locks = {
                known: held for known, held in self._async_locks.items() if not known.is_closed()
            }
            lock = self._async_locks[loop] = asyncio.Lock()
        return lock

    # -- the exchange -----------------------------------------------------------------------

    def _exchange_request(self, original: httpx.Request) -> httpx.Request:
        # The spec's body is JSON: a strict server refuses it without its Content-Type (415).
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        agent = original.headers.get("user-agent")
        if agent:
            headers["User-Agent"] = agent
        return httpx.Request(
            "POST",
            self.token_url,
            headers=headers,
            content=orjson.dumps({"identifier": self.identifier, "secret": self._secret}),
            extensions={"timeout": original.extensions.get("timeout", {})},
        )

    def _accept(self, response: httpx.Response) -> str:
        """Read the exchange's answer: cache and return the JWT, or raise."""
        status = response.status_code
        if status == 429:
            found = retry_after(response.headers, self._clock())
            delay, asked = found if found is not None else (None, None)
            said = f" ({asked})" if asked else ""
            raise Throttled(f"the token exchange answered HTTP 429{said}", delay=delay, asked=asked)
        if status >= 500:
            raise RetryLater(f"the token exchange answered HTTP {status}")
        if status != 200:
            reason = self.redactor(_error_text(response))
            raise CredentialsError(
                f"Docker Hub refused the credentials of {self.identifier!r} "
                f"(HTTP {status} from the token exchange: {reason}). Check the identifier (a "
                "username, or the organization name for an organization access token) and "
                "the secret."
            )
        try:
            token = orjson.loads(response.content).get("access_token")
        except (orjson.JSONDecodeError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise CredentialsError(
                "the token exchange answered 200 without an access_token; is the base URL "
                "a Docker Hub API?"
            )
        self.redactor.add(token)
        received = self._clock()
        claims = jwt_claims(token)
        exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
        if exp is not None and iat is not None and exp > iat:
            lifetime = exp - iat
        elif exp is not None:
            lifetime = exp - received
        else:
            lifetime = DEFAULT_TOKEN_LIFETIME
        # A token that lives less than twice the margin is refreshed at half its life instead,
        # so that short-lived tokens are not exchanged again for every request.
        margin = min(self.refresh_margin, max(lifetime, 0.0) / 2)
        self._token = token
        self._refresh_at = received + lifetime - margin
        self.exchanges += 1
        return token

    def _refused(self) -> CredentialsError:
        return CredentialsError(
            f"Docker Hub refused the credentials of {self.identifier!r}: a freshly exchanged "
            "token was answered 401. The secret may have been revoked or may have expired."
        )

    # -- flows ------------------------------------------------------------------------------

    def _check_origin(self, request: httpx.Request) -> None:
        """Refuse to sign a request to anywhere but the token exchange's origin: the bearer
        is as good as the credential, and it goes to Docker Hub only."""
        if url_origin(request.url) != self._origin:
            where = f"{request.url.scheme}://{request.url.netloc.decode('ascii', 'replace')}"
            raise StopRun(
                f"refusing to send the Docker Hub credential to {where}: it goes only to the "
                f"connection's base URL ({self.token_url.removesuffix(TOKEN_PATH)})"
            )

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        self._check_origin(request)
        token = self._current()
        if token is None:
            async with self._async_lock():
                token = self._current()
                if token is None:
                    response = yield self._exchange_request(request)
                    await response.aread()
                    token = self._accept(response)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        async with self._async_lock():
            # Another request may have exchanged already since this one was sent.
            if self._token in (None, token):
                self.invalidate()
                exchange = yield self._exchange_request(request)
                await exchange.aread()
                self._accept(exchange)
            token = self._token or ""
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            raise self._refused()

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        self._check_origin(request)
        token = self._current()
        if token is None:
            with self._thread_lock:
                token = self._current()
                if token is None:
                    response = yield self._exchange_request(request)
                    response.read()
                    token = self._accept(response)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        with self._thread_lock:
            if self._token in (None, token):
                self.invalidate()
                exchange = yield self._exchange_request(request)
                exchange.read()
                self._accept(exchange)
            token = self._token or ""
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            raise self._refused()


def _error_text(response: httpx.Response) -> str:
    """Hub's message from an error body, leniently (``message``, ``detail``, ``text``)."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        for name in ("message", "detail", "text"):
            value = body.get(name)
            if isinstance(value, str) and value:
                return value
    text = response.text.strip()
    return text[:200] if text else (response.reason_phrase or "no message")
