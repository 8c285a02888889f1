"""Look-ups a run makes on the way: team names to numeric ids, and organization membership.

Hub names a team by its name in every route but one: granting a team access to a repository
(``POST /v2/repositories/{namespace}/{repository}/groups``) wants the team's numeric ``id``.
:class:`TeamIds` lets a record name the team and resolves the name once per run.

Adding a user to a team does not invite them: Hub refuses a user who is not a member of the
organization. :class:`Membership` checks first, so the record is rejected with a message that
says what to do instead of Hub's terse 400.

Both list once per run (on first use, however many records ask at the same time) and cache.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sink.errors import RejectRecord
from sink.request.values import encode_segment

if TYPE_CHECKING:
    from sink.read.hub import HubReader


class TeamIds:
    """Team name → numeric id in one organization, from one listing of its teams."""

    def __init__(self, reader: HubReader, org: str) -> None:
        self.reader = reader
        self.org = org
        self._ids: dict[str, int] | None = None
        self._lock = asyncio.Lock()

    async def _load(self) -> dict[str, int]:
        from sink.read.hub import MAX_PAGE_SIZE  # here: a preview imports this module, not httpx

        async with self._lock:
            if self._ids is None:
                ids: dict[str, int] = {}
                path = f"/v2/orgs/{encode_segment(self.org)}/groups"
                async for team in self.reader.items(path, page_size=MAX_PAGE_SIZE, strict=True):
                    name, number = team.get("name"), team.get("id")
                    if isinstance(name, str) and isinstance(number, int | float):
                        ids[name] = int(number)
                self._ids = ids
            return self._ids

    async def id_of(self, name: str) -> int:
        """The numeric id of the team ``name`` (exact name first, then without case).

        An unknown team raises :class:`~sink.errors.RejectRecord`.
        """
        ids = await self._load()
        wanted = name.strip()
        if wanted in ids:
            return ids[wanted]
        folded = [number for team, number in ids.items() if team.casefold() == wanted.casefold()]
        if len(folded) == 1:
            return folded[0]
        raise RejectRecord(
            f"team {wanted!r} does not exist in organization {self.org}", field="team"
        )

    def forget(self) -> None:
        """Drop the cache: the next look-up lists the teams again (after creating one)."""
        self._ids = None


class Membership:
    """Whether a user (username or e-mail address) is a member of one organization."""

    def __init__(self, reader: HubReader, org: str) -> None:
        self.reader = reader
        self.org = org
        self._members: set[str] | None = None
        self._lock = asyncio.Lock()

    async def _load(self) -> set[str]:
        from sink.read.hub import MAX_PAGE_SIZE

        async with self._lock:
            if self._members is None:
                members: set[str] = set()
                path = f"/v2/orgs/{encode_segment(self.org)}/members"
                params = {"type": "member"}
                async for member in self.reader.items(
                    path, params=params, page_size=MAX_PAGE_SIZE, strict=True
                ):
                    if str(member.get("role", "")).casefold() == "invitee":
                        continue
                    for key in ("username", "email"):
                        value = member.get(key)
                        if isinstance(value, str) and value:
                            members.add(value.casefold())
                self._members = members
            return self._members

    async def is_member(self, user: str) -> bool:
        """Whether ``user`` (a username or an e-mail address) is a member (not an invitee)."""
        return user.strip().casefold() in await self._load()

    async def require(self, user: str, team: str | None = None) -> None:
        """Raise :class:`~sink.errors.RejectRecord` unless ``user`` is a member."""
        if await self.is_member(user):
            return
        where = f" to the team {team!r}" if team else " to a team"
        raise RejectRecord(
            f"{user.strip()!r} is not a member of the organization {self.org}, and adding "
            f"them{where} does not invite them: invite them first (bulk invites) and add them "
            "to the team once they have accepted",
            field="member",
        )

    def forget(self) -> None:
        """Drop the cache: the next check lists the members again."""
        self._members = None
