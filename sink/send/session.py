"""One credential's connection to Docker Hub: the client, its authentication and its pacer.

Every caller that talks to Hub (a run and ``sink test``, ``sink preview --online``, the health
checks, exports) gets its client from :func:`hub_client`, the one client factory (the
signed-in ``httpx.AsyncClient``: :class:`~sink.send.auth.HubAuth` on the lean transport of
:func:`~sink.send.transport.make_client`), most through a :class:`HubSession`: that client,
the credential's one
:class:`~sink.send.pacing.Pacer` and the :class:`~sink.read.hub.HubReader` on both. The
dispatcher of a run is given the same client and pacer, so the credential's reads and writes
share one budget: one probe of the quota, one hold after a dense run of 429s, one fixed rate.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

import httpx

from sink.outputs.redact import Redactor
from sink.read.credentials import Credentials
from sink.read.hub import HubReader
from sink.send.auth import HubAuth, token_url_for
from sink.send.pacing import Pacer
from sink.send.transport import DEFAULT_MAX_RESPONSE_BYTES, make_client

if TYPE_CHECKING:
    from sink.config import DestinationConfig


def hub_client(
    credentials: Credentials,
    *,
    concurrency: int = 2,
    timeout: float = 30.0,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    redactor: Redactor | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    auth: HubAuth | None = None,
) -> httpx.AsyncClient:
    """The client factory: an ``httpx.AsyncClient`` signed in with ``credentials`` (JWTs it
    sees go to ``redactor``), ``concurrency`` keep-alive connections, ``timeout`` seconds for
    each wait for the server and each request's total deadline, responses capped at
    ``max_response_bytes`` (see :func:`~sink.send.transport.make_client`). ``auth``: a sign-in
    to reuse (its JWT), e.g. across an engine worker's tasks."""
    auth = auth or HubAuth(
        credentials.identifier,
        credentials.secret,
        token_url=token_url_for(credentials.base_url),
        redactor=redactor if redactor is not None else Redactor([credentials.secret]),
    )
    return make_client(
        credentials.base_url,
        auth,
        concurrency,
        timeout,
        transport=transport,
        max_response_bytes=max_response_bytes,
    )


class HubSession:
    """A credential's client, authentication, pacer and read client (see the module).

    ``concurrency`` keep-alive connections, ``timeout`` seconds for each wait for the server
    (and each request's total deadline), responses capped at ``max_response_bytes``; the pacer
    keeps to ``rate`` requests a second (``None``: no fixed rate) and waits at most
    ``max_wait`` seconds in one go. JWTs the exchange returns go to ``redactor`` (by default one
    that knows the secret). ``max_retries`` bounds the reader's sends again of one read.
    Use it as an async context manager, or call :meth:`aclose`.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        concurrency: int = 2,
        timeout: float = 30.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        rate: float | None = None,
        max_wait: float | None = None,
        redactor: Redactor | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_retries: int = 2,
    ) -> None:
        self.credentials = credentials
        self.redactor = redactor if redactor is not None else Redactor([credentials.secret])
        self.client = hub_client(
            credentials,
            concurrency=concurrency,
            timeout=timeout,
            max_response_bytes=max_response_bytes,
            redactor=self.redactor,
            transport=transport,
        )
        self.pacer = Pacer(rate, max_wait=max_wait)
        self.reader = HubReader(self.client, pacer=self.pacer, max_retries=max_retries)

    @classmethod
    def for_destination(
        cls,
        credentials: Credentials,
        config: DestinationConfig,
        *,
        concurrency: int | None = None,
        redactor: Redactor | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> HubSession:
        """A session with a destination's settings: its concurrency (unless given), timeout,
        response cap, rate limit and longest wait (``retry.max_seconds``)."""
        return cls(
            credentials,
            concurrency=config.concurrency if concurrency is None else concurrency,
            timeout=config.timeout,
            max_response_bytes=config.max_response_bytes,
            rate=config.rate_limit,
            max_wait=config.retry.max_seconds,
            redactor=redactor,
            transport=transport,
        )

    async def aclose(self) -> None:
        """Close the client and its connections."""
        await self.client.aclose()

    async def __aenter__(self) -> HubSession:
        await self.client.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.client.__aexit__(exc_type, exc, traceback)
