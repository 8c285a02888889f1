"""The read client: Docker Hub's paginated lists and look-ups.

Used to look a request's effect up (is the repository there? was the token created?), by health
checks, look-ups and exports. It follows ``next`` URLs (on the connection's host only),
understands Hub's list shapes (``results`` with ``count``, the org-token list's ``total``, the
invites list's ``data``, the audit log's ``logs`` that has no ``next`` and is paged by
incrementing ``page``), waits as ``Retry-After`` says when it is rate limited, and sends a read
again after a 5xx or a dropped connection (reads are idempotent).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from sink.classify import OAT_NOT_ALLOWED, PAT_NOT_ALLOWED, hub_message, parse_body
from sink.errors import CredentialsError, NeedsOrgToken, RetryLater, StopRun
from sink.model import Request
from sink.pacing import backoff_delay, parse_retry_after
from sink.templates import Lookup

LIST_KEYS = ("results", "data", "logs")
"""Where Hub puts a list's items, in the order they are tried."""

MAX_PAGES = 10_000
MAX_PAGE_SIZE = 100
"""The largest ``page_size`` Hub documents (repositories, tags); other lists accept it too."""

PAGED_BY_NUMBER = frozenset({"logs"})
"""List keys whose pages carry no ``next`` link: the next page is ``page + 1`` until a short or
empty page (the audit log)."""

_RETRIED_STATUSES = frozenset({500, 502, 503, 504})


def segment(value: str) -> str:
    """One path segment, percent-encoded (a name from a user never changes the path)."""
    return quote(value, safe="")


def _origin(client: httpx.AsyncClient, url: str) -> httpx.URL:
    target = httpx.URL(url)
    return target if target.is_absolute_url else client.base_url


class HubReader:
    """Reads from Docker Hub on an existing client (which carries the authentication).

    ``max_waits`` bounds the 429 answers waited out per request; ``max_retries`` the sends
    again after a 5xx or a transport failure (with full-jitter backoff from ``backoff``
    seconds). ``requests`` counts the HTTP requests made (429s and retries included).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        max_waits: int = 5,
        max_retries: int = 2,
        backoff: float = 0.5,
    ) -> None:
        self.client = client
        self.max_waits = max_waits
        self.max_retries = max_retries
        self.backoff = backoff
        self.requests = 0

    async def get(
        self, url: str, *, params: Mapping[str, Any] | None = None, method: str = "GET"
    ) -> httpx.Response:
        """One request, waiting out 429s (at most ``max_waits`` times) and sending again after
        a 5xx or a dropped connection (at most ``max_retries`` times)."""
        waits = failures = 0
        while True:
            self.requests += 1
            try:
                response = await self.client.request(method, url, params=params)
            except httpx.TransportError:
                if failures >= self.max_retries:
                    raise
                failures += 1
                await asyncio.sleep(self._backoff(failures))
                continue
            if response.status_code == 429:
                if waits >= self.max_waits:
                    raise RetryLater(f"still rate limited after {self.max_waits} waits: {url}")
                waits += 1
                delay = parse_retry_after(response.headers, time.time())
                await asyncio.sleep(min(delay if delay is not None else 1.0, 60.0))
                continue
            if response.status_code in _RETRIED_STATUSES and failures < self.max_retries:
                failures += 1
                await asyncio.sleep(self._backoff(failures))
                continue
            return response

    def _backoff(self, failures: int) -> float:
        return backoff_delay(failures - 1, self.backoff, 10.0, random.uniform)

    async def get_json(self, url: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """The parsed JSON body of a GET; a non-2xx answer raises (see :func:`read_error`)."""
        response = await self.get(url, params=params)
        if not response.is_success:
            raise read_error(response, url)
        return parse_body(response)

    async def items(
        self,
        url: str,
        *,
        list_key: str | None = None,
        params: Mapping[str, Any] | None = None,
        page_size: int | None = None,
        limit: int | None = None,
        strict: bool = False,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a (paginated) list, following ``next`` on the same host.

        ``page_size`` is capped at 100; ``limit`` stops after that many items (fetching no
        further page). The audit log (``logs``) is paged by number. A non-2xx answer raises
        ``httpx.HTTPStatusError``, or with ``strict`` the exception :func:`read_error` gives.
        """
        origin = _origin(self.client, url)
        query = dict(params or {})
        if page_size is not None:
            query["page_size"] = max(1, min(page_size, MAX_PAGE_SIZE))
        number = int(query.get("page", 1))
        next_url: str | None = url
        yielded = 0
        for _ in range(MAX_PAGES):
            if next_url is None:
                return
            response = await self.get(next_url, params=query or None)
            if response.status_code == 404 and (next_url != url or number > 1):
                return  # Hub answers 404 for a page past the end of the repository list
            if not response.is_success:
                if strict:
                    raise read_error(response, next_url)
                response.raise_for_status()
            page = orjson.loads(response.content) if response.content else {}
            key, found = _page_items(page, list_key)
            for item in found:
                yield item
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            if key in PAGED_BY_NUMBER:
                size = int(query.get("page_size", 0) or 0)
                if not found or (size and len(found) < size):
                    return
                number += 1
                query["page"] = number
                continue
            next_url = page.get("next") if isinstance(page, dict) else None
            query = {}  # the next URL carries its own query
            if next_url is not None and httpx.URL(next_url).host != origin.host:
                raise RetryLater(f"refusing to follow a next link to another host: {next_url}")

    async def effect_present(
        self, lookup: Lookup, request: Request, match: Mapping[str, Any]
    ) -> bool | None:
        """Whether the looked-up thing is there: True, False, or None when it cannot be told.

        Without ``lookup.list`` the status decides (2xx present, 404 absent). With it, an item
        of the list whose ``match`` fields all equal the given values (case-insensitively for
        text: Hub answers roles capitalised) means present.
        """
        try:
            if lookup.list is None:
                response = await self.get(request.url, method=lookup.method)
                if response.is_success:
                    return True
                return False if response.status_code == 404 else None
            async for item in self.items(request.url, list_key=lookup.list):
                if matches(item, match):
                    return True
            return False
        except (httpx.HTTPError, RetryLater, orjson.JSONDecodeError, ValueError):
            return None


def read_error(response: httpx.Response, url: str = "") -> StopRun:
    """The exception for a read that Hub refused, with Hub's message.

    401 → :class:`CredentialsError`; a personal access token where an organization access
    token is needed → :class:`NeedsOrgToken`; anything else → :class:`StopRun`.
    """
    message = hub_message(response)
    where = f"GET {httpx.URL(url).path}: " if url else ""
    if response.status_code == 401:
        return CredentialsError(f"{where}Docker Hub refused the credentials ({message})")
    if response.status_code == 403 and PAT_NOT_ALLOWED in message:
        return NeedsOrgToken(
            f"{where}{message}. This read needs an organization access token: use an "
            "organization connection (organization name + dckr_oat_ token)"
        )
    if response.status_code == 403 and OAT_NOT_ALLOWED in message:
        return StopRun(
            f"{where}{message}. This read needs a user's credential: use a personal or "
            "password connection"
        )
    return StopRun(f"{where}{message}")


def matches(item: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether every wanted field of ``item`` equals its value.

    Scalars compare as text without case: values from CSV are text (``"false"`` must match
    ``false``) and Hub answers roles capitalised (``owner`` must match ``Owner``).
    """
    return all(_comparable(item.get(name)) == _comparable(value) for name, value in wanted.items())


def _comparable(value: Any) -> Any:
    if isinstance(value, str | bool | int | float):
        return str(value).casefold()
    return value


def _page_items(page: Any, list_key: str | None) -> tuple[str | None, list[dict[str, Any]]]:
    """The list key a page used and its items."""
    if isinstance(page, list):
        return None, [item for item in page if isinstance(item, dict)]
    if not isinstance(page, dict):
        return None, []
    keys = (list_key,) if list_key else LIST_KEYS
    for key in keys:
        value = page.get(key)
        if isinstance(value, list):
            return key, [item for item in value if isinstance(item, dict)]
    return None, []
