"""The read client: Docker Hub's paginated lists and look-ups.

Used to look a request's effect up (is the repository there? was the token created?), by health
checks, look-ups and exports. It follows ``next`` URLs only on the connection's own origin
(scheme, host and port; the bearer token goes nowhere else), understands Hub's list shapes
(``results`` with ``count``, the org-token list's ``total``, the invites list's ``data``, the
audit log's ``logs`` that has no ``next`` and is paged by incrementing ``page``), waits as
``Retry-After`` says when it is rate limited, and sends a read again after an answer
:func:`~sink.send.classify.classify` says to retry (a 5xx, a 408) or a dropped connection
(reads are idempotent). Every read takes a slot of the credential's
:class:`~sink.send.pacing.Pacer`, the one its writes take (see :mod:`sink.send.session`).

Effect look-ups read a list once per run, at the largest page size: :meth:`HubReader.effect_present`
keeps each list it read (one read shared by the look-ups that ask at the same time) until a
write through the same client may have changed Docker Hub's state (see
:meth:`HubReader.invalidate`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote, unquote

import httpx
import orjson

from sink.errors import CredentialsError, NeedsOrgToken, RejectRecord, RetryLater, StopRun
from sink.model import Request
from sink.origin import url_origin
from sink.request.templates import Lookup
from sink.send.classify import (
    OAT_NOT_ALLOWED,
    PAT_NOT_ALLOWED,
    VerdictKind,
    classify,
    hub_message,
    overloaded,
    parse_body,
)
from sink.send.pacing import (
    MIN_THROTTLE_WAIT,
    Pacer,
    backoff_delay,
    retry_after,
    too_long,
    wait_limit,
)

LIST_KEYS = ("results", "data", "logs")
"""Where Hub puts a list's items, in the order they are tried."""

MAX_PAGES = 10_000
MAX_PAGE_SIZE = 100
"""The largest ``page_size`` Hub documents (repositories, tags); other lists accept it too."""

PAGED_BY_NUMBER = frozenset({"logs"})
"""List keys whose pages carry no ``next`` link: the next page is ``page + 1`` until a short or
empty page (the audit log)."""

MAX_CACHED_LISTS = 512
"""Lists an effect look-up keeps at most (the oldest goes first)."""

_READS = frozenset({"GET", "HEAD", "OPTIONS"})

ListKey = tuple[str, str | None]
"""A cached list: the look-up URL (with its query) and the list key."""


def segment(value: str) -> str:
    """One path segment, percent-encoded (a name from a user never changes the path)."""
    return quote(value, safe="")


def _origin(client: httpx.AsyncClient, url: str) -> httpx.URL:
    """Where this connection's requests may go: the client's base URL (else the first URL's)."""
    base = client.base_url
    return base if base.is_absolute_url else httpx.URL(url)


def same_origin(one: httpx.URL, other: httpx.URL) -> bool:
    """Whether two URLs have the same scheme, host and port (a default port equals none)."""
    return url_origin(one) == url_origin(other)


def _shown(url: httpx.URL) -> str:
    """A URL for a message: no userinfo, no query (either may hold a secret)."""
    if not url.is_absolute_url:
        return url.path
    return f"{_origin_text(url)}{url.path}"


def _origin_text(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"


class HubReader:
    """Reads from Docker Hub on an existing client (which carries the authentication).

    ``max_waits`` bounds the 429 answers waited out per request; ``max_retries`` the sends
    again after a 5xx or a transport failure (with full-jitter backoff from ``backoff``
    seconds). ``requests`` counts the HTTP requests made (429s and retries included).
    ``pacer`` is the credential's :class:`~sink.send.pacing.Pacer`, shared with its writes (a run
    passes the dispatcher's); by default one of the reader's own.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        max_waits: int = 5,
        max_retries: int = 2,
        backoff: float = 0.5,
        pacer: Pacer | None = None,
    ) -> None:
        self.client = client
        self.pacer = pacer or Pacer()
        self.max_waits = max_waits
        self.max_retries = max_retries
        self.backoff = backoff
        self.requests = 0
        self._lists: dict[ListKey, list[dict[str, Any]] | RejectRecord] = {}
        self._loading: dict[ListKey, asyncio.Task[list[dict[str, Any]]]] = {}
        self._generation = 0  # how many times the cached lists were dropped
        self._watching = False

    async def get(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        method: str = "GET",
        json: Any = None,
        auth: httpx.Auth | None = None,
    ) -> httpx.Response:
        """One request, waiting out 429s (at most ``max_waits`` times) and sending again what
        :func:`~sink.send.classify.classify` says to retry (a 5xx, a 408) or a dropped
        connection (at most ``max_retries`` times). Every send takes a slot of the pacer, and a
        429 is waited as the dispatcher waits one: at least a second, never longer than the
        pacer's limit, ended at once by :meth:`~sink.send.pacing.Pacer.stop`. Any other answer
        is returned as it is. ``json`` and ``auth`` go to the request (the token exchange's
        check posts the credential without the client's sign-in)."""
        pacer = self.pacer
        waits = failures = 0
        while True:
            await pacer.wait()
            self.requests += 1
            try:
                response = await self.client.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    auth=httpx.USE_CLIENT_DEFAULT if auth is None else auth,
                )
            except BaseException as exc:
                pacer.complete(None)
                if not isinstance(exc, httpx.TransportError) or failures >= self.max_retries:
                    raise
                failures += 1
                await pacer.pause(self._backoff(failures))
                continue
            status = response.status_code
            throttled = status == 429
            pacer.complete(
                response.headers if status < 500 and not throttled else None,
                throttled=throttled,
                overloaded=overloaded(status, response.headers),
            )
            if status < 300 or classify(response).kind is not VerdictKind.RETRY:
                return response
            if throttled:
                if waits >= self.max_waits:
                    raise RetryLater(f"still rate limited after {self.max_waits} waits: {url}")
                waits += 1
                asked = retry_after(response.headers, time.time())
                if asked is not None and asked[0] > wait_limit(pacer.max_wait):
                    raise RetryLater(too_long(asked[0], asked[1], f"on {url}", pacer.max_wait))
                delay = max(MIN_THROTTLE_WAIT, asked[0] if asked is not None else 0.0)
                if not pacer.throttled(delay):
                    await pacer.pause(delay)  # only this read waits
                continue
            if failures >= self.max_retries:
                return response
            failures += 1
            await pacer.pause(self._backoff(failures))

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
        """Every item of a (paginated) list, following ``next`` on the connection's origin.

        ``page_size`` is capped at 100; ``limit`` stops after that many items (fetching no
        further page). The audit log (``logs``) is paged by number. A non-2xx answer raises
        ``httpx.HTTPStatusError``, or with ``strict`` the exception :func:`read_error` gives.
        A ``next`` link (resolved against the page it came on) is followed only when its
        scheme, host and port are the connection's and it carries no userinfo; any other
        raises :class:`~sink.errors.StopRun`, as does a link back to a page already read.
        """
        origin = _origin(self.client, url)
        first = httpx.URL(url)
        if first.is_absolute_url and not same_origin(first, origin):
            raise StopRun(
                f"refusing to read {_shown(first)}: it is not on {_origin_text(origin)}, "
                "where this connection's credentials go"
            )
        query = dict(params or {})
        if page_size is not None:
            query["page_size"] = max(1, min(page_size, MAX_PAGE_SIZE))
        number = int(query.get("page", 1))
        next_url: str | None = url
        seen: set[str] = set()
        yielded = 0
        for _ in range(MAX_PAGES):
            if next_url is None:
                return
            # Merged into the URL's own query: ``params=`` alone would replace it (a look-up's
            # ``search`` would be lost).
            target = str(httpx.URL(next_url).copy_merge_params(query)) if query else next_url
            response = await self.get(target)
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
            seen.add(str(response.request.url))
            link = page.get("next") if isinstance(page, dict) else None
            next_url = _next_link(link, response.request.url, origin, seen)
            query = {}  # the next URL carries its own query

    async def effect_present(
        self,
        lookup: Lookup,
        request: Request,
        match: Mapping[str, Any],
        *,
        fresh: bool = True,
    ) -> bool | None:
        """Whether the looked-up thing is there: True, False, or None when it cannot be told.

        Without ``lookup.list`` the status decides (2xx present, 404 absent). With it, an item
        of the list whose ``match`` fields all equal the given values (case-insensitively for
        text: Hub answers roles capitalised) means present. Lists are read at the largest page
        size.

        ``fresh`` (the default) reads the list now: the answer must show what Hub holds after
        a write whose fate is unknown. ``fresh=False`` may answer from the list as it was last
        read in this run (a look-up of what an earlier run did: many records, one read);
        concurrent look-ups of one list share one read.

        A list whose first page answers 404 means its parent (the team, organization,
        namespace or repository in its path) does not exist: that settles the record, and
        :class:`~sink.errors.RejectRecord` says which parent is missing. A refused ``next``
        link raises :class:`~sink.errors.StopRun`.
        """
        try:
            if lookup.list is None:
                response = await self.get(request.url, method=lookup.method)
                if response.is_success:
                    return True
                return False if response.status_code == 404 else None
            if fresh:
                self.invalidate()  # what a write of unknown fate may have changed
                async for item in self.items(
                    request.url, list_key=lookup.list, page_size=MAX_PAGE_SIZE
                ):
                    if matches(item, match):
                        return True
                return False
            listed = await self.listed(request.url, lookup.list)
            return any(matches(item, match) for item in listed)
        except httpx.HTTPStatusError as exc:
            missing = _missing_parent(exc.response, request.url)
            if missing is not None:
                raise missing from exc
            return None
        except (httpx.HTTPError, RetryLater, orjson.JSONDecodeError, ValueError):
            return None

    # -- the lists effect look-ups read once -----------------------------------------------

    async def listed(self, url: str, list_key: str | None = None) -> list[dict[str, Any]]:
        """Every item of the list at ``url`` (read at the largest page size), from this run's
        cache when it holds the list; look-ups asking at the same time share one read.

        A missing parent (404 on the first page) is remembered too and raises
        :class:`~sink.errors.RejectRecord` each time; other failures are not remembered.
        """
        self._watch()
        key = (url, list_key)
        hit = self._lists.get(key)
        if isinstance(hit, RejectRecord):
            raise RejectRecord(hit.message, field=hit.field, status=hit.status)
        if hit is not None:
            return hit
        task = self._loading.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._load(key))
            task.add_done_callback(_retrieved)
            self._loading[key] = task
        # Shielded: one caller cancelled does not cancel the read the others wait for.
        return await asyncio.shield(task)

    async def _load(self, key: ListKey) -> list[dict[str, Any]]:
        url, list_key = key
        generation = self._generation
        try:
            items = [
                item async for item in self.items(url, list_key=list_key, page_size=MAX_PAGE_SIZE)
            ]
        except httpx.HTTPStatusError as exc:
            missing = _missing_parent(exc.response, url)
            if missing is None:
                raise
            self._keep(key, missing, generation)
            raise missing from exc
        finally:
            if self._loading.get(key) is asyncio.current_task():
                del self._loading[key]
        self._keep(key, items, generation)
        return items

    def _keep(
        self, key: ListKey, value: list[dict[str, Any]] | RejectRecord, generation: int
    ) -> None:
        # A read that a write overlapped may predate the write's effect: not kept.
        if generation != self._generation:
            return
        while len(self._lists) >= MAX_CACHED_LISTS:
            del self._lists[next(iter(self._lists))]
        self._lists[key] = value

    def invalidate(self) -> None:
        """Forget every list read so far: the next look-up reads again.

        Called on any answer to a write sent through this client that may have changed
        Docker Hub's state (anything but a 4xx: a 2xx, and a 5xx or other answer whose effect
        is unknown), and before every fresh look-up (a write that got no answer at all has no
        response to be told about). Every list is dropped, not only the written one: one
        write can change several lists (removing a member empties their team memberships;
        a bulk invite is posted to ``/v2/invites/bulk`` and listed under the organization).
        Reads already under way finish for those that waited on them, but are not kept.
        """
        self._generation += 1
        self._lists.clear()
        self._loading.clear()

    def _watch(self) -> None:
        """Hear of this client's writes (once): they drop the cached lists."""
        if not self._watching:
            self._watching = True
            self.client.event_hooks["response"].append(self._on_response)

    async def _on_response(self, response: httpx.Response) -> None:
        request = response.request
        if request.method in _READS or request.url.path.startswith("/v2/auth/"):
            return
        if not 400 <= response.status_code < 500:  # a 4xx is a refusal: nothing changed
            self.invalidate()


def _retrieved(task: asyncio.Task[Any]) -> None:
    """Mark a shared read's failure as seen when every caller that waited was cancelled."""
    if not task.cancelled():
        task.exception()


def _next_link(link: Any, current: httpx.URL, origin: httpx.URL, seen: set[str]) -> str | None:
    """The next page's URL, or None at the end; raises :class:`StopRun` for a link the
    connection's credentials must not follow."""
    if link is None or link == "":
        return None
    where = f"Docker Hub's list at {current.path}"
    if not isinstance(link, str):
        raise StopRun(f"{where} gave a next link that is not a URL ({type(link).__name__})")
    try:
        target = current.join(link)
    except httpx.InvalidURL as exc:
        raise StopRun(f"{where} gave a next link that is not a valid URL") from exc
    if target.userinfo or not same_origin(target, origin):
        raise StopRun(
            f"{where} gave a next link to {_shown(target)}, which is not on "
            f"{_origin_text(origin)}; refused: this connection's credentials go there only"
        )
    if str(target) in seen:
        raise StopRun(f"{where} gave a next link back to a page already read ({target.path})")
    return str(target)


PARENT_KINDS = {
    "orgs": "organization",
    "groups": "team",
    "namespaces": "namespace",
    "repositories": "repository",
    "users": "user",
    "auditlogs": "account",
}
"""What a path segment names, for saying which parent of a list does not exist."""


def missing_parent(url: str) -> str | None:
    """The sentence for a list at ``url`` whose first page answered 404: its parent is gone.

    ``/v2/orgs/acme/groups/devs/members`` → ``the team 'devs' does not exist in the
    organization acme``. None when the path names no parent (``/v2/access-tokens``).
    """
    parts = [unquote(part) for part in httpx.URL(url).path.split("/") if part]
    if parts[:1] == ["v2"]:
        parts = parts[1:]
    parent = parts[:-1]  # the last segment is the list itself
    named: list[tuple[str, str]] = []
    at = 0
    while at + 1 < len(parent):
        kind, name = parent[at], parent[at + 1]
        step = 2
        if kind == "repositories" and not named and at + 2 < len(parent):
            name, step = f"{name}/{parent[at + 2]}", 3  # /v2/repositories/{ns}/{repo}/...
        elif kind == "repositories" and named and named[-1][0] == "namespaces":
            name = f"{named[-1][1]}/{name}"  # /v2/namespaces/{ns}/repositories/{repo}/...
            named.pop()
        named.append((kind, name))
        at += step
    if not named:
        return None
    kind, name = named[-1]
    sentence = f"the {PARENT_KINDS.get(kind, kind)} {name!r} does not exist"
    if len(named) > 1:
        outer_kind, outer = named[-2]
        sentence += f" in the {PARENT_KINDS.get(outer_kind, outer_kind)} {outer}"
    return sentence


def _missing_parent(response: httpx.Response, url: str) -> RejectRecord | None:
    """A :class:`RejectRecord` for a list look-up whose first page answered 404."""
    if response.status_code != 404:
        return None
    sentence = missing_parent(url)
    if sentence is None:
        return None
    path = httpx.URL(url).path
    return RejectRecord(f"{sentence} (GET {path}: {hub_message(response)})", status=404)


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
