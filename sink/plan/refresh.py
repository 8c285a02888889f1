"""Refresh: Docker Hub's current state of every managed kind, in bulk, paginated reads.

Each list is read at ``page_size=100``: its first page says how many items there are, and the
other pages are then read concurrently (at most ``concurrency`` reads at once, each taking a
slot of the credential's pacer, so within the rate budget). Only what the state manages is
read: members and pending invites for ``members``; the teams for ``teams`` (and to know which
teams exist); each managed team's members for ``team_members``; the repositories of the
namespace for ``repositories`` (one read per repository whose immutable-tag rules are managed,
as the list does not show them). A repository's team grants have no documented read.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
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

    def data(self) -> dict[str, Any]:
        """The state as plain data (what is hashed), without the read counts."""
        data = asdict(self)
        del data["reads"], data["minimum"]
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


@dataclass
class _Reads:
    reader: HubReader
    slots: asyncio.Semaphore
    minimum: int = 0
    lists: list[str] = field(default_factory=list)

    async def page(self, path: str, params: dict[str, Any]) -> Any:
        async with self.slots:
            response = await self.reader.get(path, params=params)
        if not response.is_success:
            raise read_error(response, path)
        return orjson.loads(response.content) if response.content else {}

    async def all(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a paged list: page 1, then the others at once."""
        query = {**(params or {}), "page_size": MAX_PAGE_SIZE}
        first = await self.page(path, {**query, "page": 1})
        items = _items(first)
        total = first.get("count", first.get("total")) if isinstance(first, dict) else None
        pages = math.ceil(int(total) / MAX_PAGE_SIZE) if isinstance(total, int) else 1
        self.minimum += max(1, pages)
        if pages > 1:
            rest = await asyncio.gather(
                *(self.page(path, {**query, "page": n}) for n in range(2, pages + 1))
            )
            for page in rest:
                items.extend(_items(page))
        elif isinstance(first, dict) and first.get("next") and total is None:
            # No count to plan the pages by: follow the links, one page after another.
            async for item in self.reader.items(str(first["next"])):
                items.append(item)
        return items


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
    reads = _Reads(reader, asyncio.Semaphore(max(1, concurrency)))
    before = reader.requests
    current = Current()
    orgpath = f"/v2/orgs/{segment(org)}"

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
        async with reads.slots:
            response = await reader.get(f"{orgpath}/invites")
        reads.minimum += 1
        if not response.is_success:
            raise read_error(response, f"{orgpath}/invites")
        current.invites = {
            str(item["invitee"]).casefold(): {
                "id": item.get("id"),
                "invitee": item["invitee"],
                "role": str(item.get("role") or "member").lower(),
                "team": item.get("team") or None,
            }
            for item in _items(orjson.loads(response.content or b"{}"))
            if item.get("invitee")
        }

    async def teams() -> None:
        listed = await reads.all(f"{orgpath}/groups")
        current.teams = {
            str(item["name"]): {"id": item.get("id"), "description": item.get("description") or ""}
            for item in listed
            if item.get("name")
        }

    async def repositories() -> None:
        listed = await reads.all(f"/v2/namespaces/{segment(namespace)}/repositories")
        current.repositories = {
            str(item["name"]): {
                "description": item.get("description") or "",
                "private": bool(item.get("is_private")),
            }
            for item in listed
            if item.get("name")
        }

    async def team_members(name: str) -> tuple[str, list[str]]:
        listed = await reads.all(f"{orgpath}/groups/{segment(name)}/members")
        names = {str(item["username"]).casefold() for item in listed if item.get("username")}
        return name, sorted(names)

    async def rules(name: str) -> None:
        path = f"/v2/namespaces/{segment(namespace)}/repositories/{segment(name)}"
        info = await reads.page(path, {})
        reads.minimum += 1
        settings = info.get("immutable_tags_settings") if isinstance(info, dict) else None
        enabled = isinstance(settings, dict) and bool(settings.get("enabled"))
        found = list(settings.get("rules") or []) if enabled and isinstance(settings, dict) else []
        assert current.repositories is not None
        current.repositories[name]["immutable_tags"] = found

    async def teams_then_members() -> None:
        await teams()
        existing = current.teams or {}
        names = sorted({name for name in wanted.team_members if name in existing})
        listed = await asyncio.gather(*(team_members(name) for name in names))
        if wanted.team_members:
            current.team_members = dict(listed)

    async def repositories_then_rules() -> None:
        await repositories()
        repos = current.repositories or {}
        tagged = sorted({name for name in wanted.immutable_tags if name in repos})
        await asyncio.gather(*(rules(name) for name in tagged))

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

    # Every list at once, each list's later pages as soon as its first says how many: the
    # reads that depend on another (a team's members on the teams list) start when it is in.
    tasks: list[Any] = []
    if wanted.members:
        tasks += [members(), invites()]
    if wanted.teams or wanted.team_members:
        tasks.append(teams_then_members())
    if wanted.repositories or wanted.immutable_tags:
        tasks.append(repositories_then_rules())
    if wanted.access_tokens:
        tasks.append(personal())
    if wanted.org_access_tokens:
        tasks.append(organization())
    await asyncio.gather(*tasks)
    current.reads = reader.requests - before
    current.minimum = reads.minimum
    return current
