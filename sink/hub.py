"""The read client: Docker Hub's paginated lists and look-ups.

Used to look a request's effect up (is the repository there? was the token created?), by health
checks, and by exports. It follows ``next`` URLs (on the connection's host only), understands
Hub's list shapes (``results``, the org-token list's ``total``, the invites list's ``data``, the
audit log's ``logs``), and waits as ``Retry-After`` says when it is rate limited.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import orjson

from sink.errors import RetryLater
from sink.model import Request
from sink.pacing import parse_retry_after
from sink.templates import Lookup

LIST_KEYS = ("results", "data", "logs")
"""Where Hub puts a list's items, in the order they are tried."""

MAX_PAGES = 10_000


class HubReader:
    """Reads from Docker Hub on an existing client (which carries the authentication)."""

    def __init__(self, client: httpx.AsyncClient, *, max_waits: int = 5) -> None:
        self.client = client
        self.max_waits = max_waits

    async def get(
        self, url: str, *, params: Mapping[str, Any] | None = None, method: str = "GET"
    ) -> httpx.Response:
        """One request, waiting out 429s (at most ``max_waits`` times)."""
        for _ in range(self.max_waits + 1):
            response = await self.client.request(method, url, params=params)
            if response.status_code != 429:
                return response
            delay = parse_retry_after(response.headers, time.time())
            await asyncio.sleep(min(delay if delay is not None else 1.0, 60.0))
        raise RetryLater(f"still rate limited after {self.max_waits} waits: {url}")

    async def items(
        self,
        url: str,
        *,
        list_key: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a (paginated) list, following ``next`` on the same host."""
        origin = httpx.URL(url)
        next_url: str | None = url
        query = dict(params or {})
        for _ in range(MAX_PAGES):
            if next_url is None:
                return
            response = await self.get(next_url, params=query or None)
            query = {}  # the next URL carries its own query
            if response.status_code == 404 and next_url != url:
                return  # Hub answers 404 for a page past the end of the repository list
            response.raise_for_status()
            page = orjson.loads(response.content) if response.content else {}
            for item in _page_items(page, list_key):
                yield item
            next_url = page.get("next") if isinstance(page, dict) else None
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


def _page_items(page: Any, list_key: str | None) -> list[dict[str, Any]]:
    if isinstance(page, list):
        return [item for item in page if isinstance(item, dict)]
    if not isinstance(page, dict):
        return []
    keys = (list_key,) if list_key else LIST_KEYS
    for key in keys:
        value = page.get(key)
        if isinstance(value, list):
            return [item for item in value if isinstance(item, dict)]
    return []
