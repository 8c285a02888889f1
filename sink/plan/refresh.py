"""Refresh: Docker Hub's current state of every managed kind, in bulk, paginated reads.

Each list is read at ``page_size=100``: its first page says how many items there are, and the
other pages are then read concurrently (at most ``concurrency`` reads at once, each taking a
slot of the credential's pacer, so within the rate budget; first pages before later ones).
The reads that depend on a list start as each of its pages comes in: a team's members as soon
as a page of the teams list shows the team. Only what the state manages is read: members and
pending invites for ``members``; the teams for ``teams`` (and to know which teams exist); each
managed team's members for ``team_members``; the repositories of the namespace for
``repositories`` (one read per repository whose immutable-tag rules are managed, as the list
does not show them). A repository's team grants have no documented read.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import itertools
import math
import time
import urllib.parse
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from sink.read.hub import MAX_PAGE_SIZE, HubReader, read_error, segment


@dataclass
class Current:
    """What Hub holds, per kind read (None: not read). Keys as :mod:`sink.plan.state` keys."""

    members: dict[str, dict[str, Any]] | None = None
    """username (casefolded) → ``{username, email, role}`` (role lowercase)."""
    invites: dict[str, dict[str, Any]] | None = None
    """invitee (casefolded) → ``{id, invitee, role, team}``: pending invites."""
    teams: dict[str, dict[str, Any]] | None = None
    """team name → ``{id, description}``."""
    team_members: dict[str, list[str]] | None = None
    """team name → its members' usernames (casefolded, sorted); only the teams read."""
    repositories: dict[str, dict[str, Any]] | None = None
    """repository name → ``{description, private}`` (and ``immutable_tags`` when read)."""
    access_tokens: dict[str, list[dict[str, Any]]] | None = None
    """label → the user's personal access tokens with it: ``{id, active}`` (``active``: live,
    i.e. active and not expired)."""
    org_access_tokens: dict[str, list[dict[str, Any]]] | None = None
    """label → the organization's access tokens with it, as ``access_tokens``."""
    reads: int = 0
    """HTTP reads the refresh made."""
    minimum: int = 0
    """The fewest reads that could have read the same lists: the sum of ceil(n/100)."""
    first_answer: float = 0.0
    """Seconds from the refresh's start to its first answer: the sign-in, then one read alone
    (the pacer's probe: the others wait until Hub's rate-limit headers are known)."""

    def data(self) -> dict[str, Any]:
        """The state as plain data (what is hashed), without the read counts and times."""
        data = asdict(self)
        del data["reads"], data["minimum"], data["first_answer"]
        return data

    def digest(self) -> str:
        """A hash of :meth:`data`."""
        import hashlib

        text = orjson.dumps(self.data(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(text).hexdigest()


@dataclass
class Wanted:
    """What to read."""

    members: bool = False
    teams: bool = False
    team_members: Iterable[str] = ()
    """The teams whose members are read (those that exist)."""
    repositories: bool = False
    immutable_tags: Iterable[str] = ()
    """Repositories whose immutable-tag rules are read (those that exist)."""
    access_tokens: bool = False
    org_access_tokens: bool = False


class _Slots:
    """At most ``size`` reads at once; a waiting list's first page before any later page.

    A first page says how many pages a list has and which teams (or repositories) it holds, so
    reading first pages first puts every read the refresh will make in the queue as early as it
    can be: the slots stay full to the end instead of a big list's last page starting alone.
    Within a priority, first come, first served.
    """

    def __init__(self, size: int) -> None:
        self.free = max(1, size)
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def acquire(self, priority: int) -> None:
        """Wait for a slot (``priority`` 0 before 1)."""
        if self.free > 0 and not self._waiting:
            self.free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed a slot, then cancelled: pass it on
            raise

    def release(self) -> None:
        """Give the slot to the first waiting read (a cancelled one is skipped)."""
        while self._waiting:
            future = heapq.heappop(self._waiting)[2]
            if not future.done():
                future.set_result(None)
                return
        self.free += 1


FIRST, LATER = 0, 1  # a list's first page, its other pages


@dataclass
class _Reads:
    reader: HubReader
    slots: _Slots
    minimum: int = 0
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    first_answer: float | None = None

    def start(self, read: Coroutine[Any, Any, None]) -> None:
        """Run ``read`` beside the others; :meth:`finish` waits for it."""
        self.tasks.append(asyncio.create_task(read))

    async def finish(self) -> None:
        """Wait for every read started, those they start included; the first failure stops
        the others and is raised."""
        try:
            while pending := [task for task in self.tasks if not task.done()]:
                await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                for task in self.tasks:
                    error = task.exception() if task.done() and not task.cancelled() else None
                    if error is not None:
                        raise error
        finally:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def url(self, path: str, params: dict[str, Any]) -> str:
        """``path`` and its query as one URL on the client's base URL: httpx then parses it
        once, not three times (base, path and params merged), a sixth of a read's CPU."""
        base = str(self.reader.client.base_url).rstrip("/")
        query = urllib.parse.urlencode(params)
        return f"{base}{path}?{query}" if query else f"{base}{path}"

    async def page(self, path: str, params: dict[str, Any], priority: int = FIRST) -> Any:
        await self.slots.acquire(priority)
        try:
            response = await self.reader.get(self.url(path, params))
        finally:
            self.slots.release()
        if self.first_answer is None:
            self.first_answer = time.monotonic() - self.started
        if not response.is_success:
            raise read_error(response, path)
        return orjson.loads(response.content) if response.content else {}

    async def all(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        each: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Every item of a paged list: page 1, then the others at once. ``each`` is called
        with every page's items as the page comes in (to start the reads that depend on it)."""
        query = {**(params or {}), "page_size": MAX_PAGE_SIZE}
        first = await self.page(path, {**query, "page": 1})
        items = _items(first)
        if each is not None:
            each(items)
        total = first.get("count", first.get("total")) if isinstance(first, dict) else None
        pages = math.ceil(int(total) / MAX_PAGE_SIZE) if isinstance(total, int) else 1
        self.minimum += max(1, pages)
        if pages > 1:

            async def later(number: int) -> list[dict[str, Any]]:
                found = _items(await self.page(path, {**query, "page": number}, LATER))
                if each is not None:
                    each(found)
                return found

            tasks = [asyncio.create_task(later(n)) for n in range(2, pages + 1)]
            self.tasks.extend(tasks)  # so that a failure elsewhere stops them too
            for found in await asyncio.gather(*tasks):
                items.extend(found)
        elif isinstance(first, dict) and first.get("next") and total is None:
            # No count to plan the pages by: follow the links, one page after another.
            rest: list[dict[str, Any]] = []
            async for item in self.reader.items(str(first["next"])):
                rest.append(item)
            if each is not None:
                each(rest)
            items.extend(rest)
        return items


@contextlib.contextmanager
def _young_only() -> Iterator[None]:
    """Leave what exists before the reads (the desired state's rows, every module) out of the
    garbage collector while they run: a full collection walks all of it, 70-160 ms with a
    5,000-member state, and every read in flight waits for it. What was garbage before is
    collected after (unfreezing hands everything back); objects someone else froze are left
    frozen (then nothing is frozen here)."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _items(page: Any) -> list[dict[str, Any]]:
    if isinstance(page, dict):
        for key in ("results", "data"):
            if isinstance(page.get(key), list):
                return [item for item in page[key] if isinstance(item, dict)]
    return []


async def refresh(
    reader: HubReader, org: str, namespace: str, wanted: Wanted, *, concurrency: int = 16
) -> Current:
    """Read what ``wanted`` names (see the module)."""
    reads = _Reads(reader, _Slots(concurrency))
    before = reader.requests
    current = Current()
    orgpath = f"/v2/orgs/{segment(org)}"
    repopath = f"/v2/namespaces/{segment(namespace)}/repositories"
    teams_wanted = set(wanted.team_members)
    tags_wanted = set(wanted.immutable_tags)
    team_members: dict[str, list[str]] = {}
    tags: dict[str, list[Any]] = {}

    async def members() -> None:
        listed = await reads.all(f"{orgpath}/members")
        current.members = {
            str(item["username"]).casefold(): {
                "username": item["username"],
                "email": (item.get("email") or None),
                "role": str(item.get("role") or "").lower(),
            }
            for item in listed
            if item.get("username")
        }

    async def invites() -> None:
        page = await reads.page(f"{orgpath}/invites", {})
        reads.minimum += 1
        current.invites = {
            str(item["invitee"]).casefold(): {
                "id": item.get("id"),
                "invitee": item["invitee"],
                "role": str(item.get("role") or "member").lower(),
                "team": item.get("team") or None,
            }
            for item in _items(page)
            if item.get("invitee")
        }

    def members_of_listed(page: list[dict[str, Any]]) -> None:
        # Each managed team's members are read as soon as a page of the teams list shows the
        # team exists, not after the whole list.
        for item in page:
            name = str(item.get("name") or "")
            if name in teams_wanted and name not in team_members:
                team_members[name] = []
                reads.start(members_of(name))

    async def teams() -> None:
        listed = await reads.all(f"{orgpath}/groups", each=members_of_listed)
        current.teams = {
            str(item["name"]): {"id": item.get("id"), "description": item.get("description") or ""}
            for item in listed
            if item.get("name")
        }

    def rules_of_listed(page: list[dict[str, Any]]) -> None:
        for item in page:
            name = str(item.get("name") or "")
            if name in tags_wanted and name not in tags:
                tags[name] = []
                reads.start(rules(name))

    async def repositories() -> None:
        listed = await reads.all(repopath, each=rules_of_listed)
        current.repositories = {
            str(item["name"]): {
                "description": item.get("description") or "",
                "private": bool(item.get("is_private")),
            }
            for item in listed
            if item.get("name")
        }

    async def members_of(name: str) -> None:
        listed = await reads.all(f"{orgpath}/groups/{segment(name)}/members")
        names = {str(item["username"]).casefold() for item in listed if item.get("username")}
        team_members[name] = sorted(names)

    async def rules(name: str) -> None:
        info = await reads.page(f"{repopath}/{segment(name)}", {})
        reads.minimum += 1
        settings = info.get("immutable_tags_settings") if isinstance(info, dict) else None
        enabled = isinstance(settings, dict) and bool(settings.get("enabled"))
        found = list(settings.get("rules") or []) if enabled and isinstance(settings, dict) else []
        tags[name] = found

    async def tokens(path: str, id_field: str, label_field: str) -> dict[str, list[dict[str, Any]]]:
        from datetime import UTC, datetime

        from sink.guard.labels import live

        now = datetime.now(UTC)
        found: dict[str, list[dict[str, Any]]] = {}
        for item in await reads.all(path):
            label = item.get(label_field)
            if label:
                found.setdefault(str(label), []).append(
                    {"id": item.get(id_field), "active": live(item, now)}
                )
        return found

    async def personal() -> None:
        current.access_tokens = await tokens("/v2/access-tokens", "uuid", "token_label")

    async def organization() -> None:
        current.org_access_tokens = await tokens(f"{orgpath}/access-tokens", "id", "label")

    # Every list at once, each list's later pages as soon as its first says how many, and the
    # reads that depend on a list (a team's members, a repository's rules) as its pages come in.
    if wanted.members:
        reads.start(members())
        reads.start(invites())
    if wanted.teams or teams_wanted:
        reads.start(teams())
    if wanted.repositories or tags_wanted:
        reads.start(repositories())
    if wanted.access_tokens:
        reads.start(personal())
    if wanted.org_access_tokens:
        reads.start(organization())
    with _young_only():
        await reads.finish()
    if teams_wanted:
        current.team_members = dict(sorted(team_members.items()))
    for name, found in sorted(tags.items()):
        assert current.repositories is not None
        current.repositories[name]["immutable_tags"] = found
    current.reads = reader.requests - before
    current.minimum = reads.minimum
    current.first_answer = reads.first_answer or 0.0
    return current
