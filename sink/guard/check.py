"""The send-time guard: the access policy with what only Docker Hub knows, and the last owner.

:class:`Guard` is asked about every request a run sends (:meth:`Guard.refusal`) and told what
became of it (:meth:`Guard.settled`). It

- checks the access policy (:func:`sink.guard.policy.violation`), first looking up on Hub the
  names of what a request gives by id only, when a policy rule needs them: a team's numeric
  ``group_id`` (``GET /v2/orgs/{org}/groups``, once per organization) and an invite's id (the
  invites of each organization the policy names literally, once each);
- never lets a request leave an organization without an owner (:class:`OwnerGuard`).

Requests that are not owner-affecting, and policies without a rule that needs a look-up, cost
no read at all.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import quote

from sink.config import PolicyConfig
from sink.guard.owners import OwnerGuard, always_refused, owner_change, read_errors
from sink.guard.policy import Reference, references, violation
from sink.model import Request

if TYPE_CHECKING:
    from sink.read.hub import HubReader


_GLOB = frozenset("*?[")


class Guard:
    """Decides, at send time, whether a request may go (policy and last owner)."""

    def __init__(self, reader: HubReader, policy: PolicyConfig | None = None) -> None:
        self.reader = reader
        self.policy = policy
        self.owners = OwnerGuard(reader)
        self._teams: dict[str, dict[str, str] | None] = {}  # org → team id → name
        self._invites: dict[str, dict[str, tuple[str, str | None]] | None] = {}
        self._lock = asyncio.Lock()

    async def refusal(self, request: Request) -> str | None:
        """Why ``request`` must not be sent, or None. A None for an owner-affecting request
        reserves its change until :meth:`settled` is called for it."""
        if self.policy is not None:
            wanted = references(self.policy, request)
            resolved = await self._resolve(wanted) if wanted else None
            broken = violation(self.policy, request, resolved)
            if broken is not None:
                return broken
        return await self.owners.refusal(request)

    def settled(self, request: Request, ok: bool) -> None:
        """What became of a request :meth:`refusal` let go: ``ok`` when Hub confirmed it."""
        self.owners.settled(request, ok)

    async def _resolve(self, wanted: list[Reference]) -> dict[Reference, dict[str, list[str]]]:
        resolved: dict[Reference, dict[str, list[str]]] = {}
        async with self._lock:
            for reference in wanted:
                kind, org, ident = reference
                if kind == "team":
                    name = (await self._team_names(org) or {}).get(ident)
                    if name is not None:
                        resolved[reference] = {"teams": [name]}
                else:
                    found = await self._invite(ident)
                    if found is not None:
                        invite_org, team = found
                        names = {"organizations": [invite_org], "teams": [team] if team else []}
                        resolved[reference] = names
        return resolved

    async def _team_names(self, org: str) -> dict[str, str] | None:
        if org not in self._teams:
            names: dict[str, str] = {}
            try:
                async for team in self.reader.items(
                    f"/v2/orgs/{quote(org, safe='')}/groups", page_size=100, strict=True
                ):
                    number, name = team.get("id"), team.get("name")
                    if isinstance(number, int | float) and isinstance(name, str):
                        names[str(int(number))] = name
            except read_errors():
                # Unknown: every id of this org is refused where a rule needs its name.
                self._teams[org] = None
            else:
                self._teams[org] = names
        return self._teams[org]

    async def _invite(self, ident: str) -> tuple[str, str | None] | None:
        assert self.policy is not None
        # Only organizations the policy names literally can be searched: a glob names no list.
        for org in self.policy.organizations or ():
            if any(char in _GLOB for char in org):
                continue
            key = org.casefold()
            if key not in self._invites:
                self._invites[key] = await self._read_invites(org)
            found = (self._invites[key] or {}).get(ident)
            if found is not None:
                return found
        return None

    async def _read_invites(self, org: str) -> dict[str, tuple[str, str | None]] | None:
        invites: dict[str, tuple[str, str | None]] = {}
        try:
            async for invite in self.reader.items(
                f"/v2/orgs/{quote(org, safe='')}/invites", list_key="data", strict=True
            ):
                ident, team = invite.get("id"), invite.get("team")
                if isinstance(ident, str):
                    invites[ident] = (org, str(team) if team else None)
        except read_errors():
            return None
        return invites


def offline_verdict(policy: PolicyConfig | None, request: Request) -> tuple[str | None, str | None]:
    """What the guard decides about ``request`` without Docker Hub (a preview): the refusal,
    or None; and what only Docker Hub can tell at send time, or None. Pure, no I/O."""
    undecided = []
    if policy is not None:
        wanted = references(policy, request)
        if wanted:
            names = ", ".join(f"{kind} {ident}" for kind, _, ident in wanted)
            undecided.append(f"the policy needs Docker Hub's names for {names}")
        else:
            broken = violation(policy, request)
            if broken is not None:
                return broken, None
    change = owner_change(request)
    if change is not None:
        refused = always_refused(request, change)
        if refused is not None:
            return refused, None
        if change.kind == "remove":
            undecided.append(
                f"whether {change.user} is the last owner of {change.org} is read from Docker "
                "Hub when the run sends it"
            )
    return None, "; ".join(undecided) or None
