"""The last owner: which requests can change an organization's owners, and a guard that never
lets a request leave an organization without one (decided from Hub's owners at send time)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote, urlsplit

import orjson

from sink.errors import RetryLater, StopRun
from sink.guard.policy import decode_path
from sink.model import Request

if TYPE_CHECKING:
    from sink.read.hub import HubReader


def read_errors() -> tuple[type[BaseException], ...]:
    """What a failed read of Docker Hub raises (httpx imported only when a read happens: a
    preview, which decides offline, never needs it)."""
    import httpx

    return (httpx.HTTPError, StopRun, RetryLater, orjson.JSONDecodeError, ValueError)


Kind = Literal["remove", "promote", "all", "unclear"]


def always_refused(request: Request, change: OwnerChange) -> str | None:
    """The refusal of a change no owner state can allow (unclear, or every owner at once)."""
    if change.kind == "unclear":
        return f"refusing {request.method.upper()} {request.url}: {change.what}"
    if change.kind == "all":
        return (
            f"refusing to {change.what}: Docker Hub's owners are the members of the owners "
            "team, so this would take every owner away at once"
        )
    return None


@dataclass(frozen=True)
class OwnerChange:
    """How a request can change an organization's owners.

    ``remove``: ``user`` stops being an owner if they are one (removed from the organization,
    given another role, or taken out of the ``owners`` team); ``promote``: ``user`` becomes an
    owner; ``all``: every owner at once (the ``owners`` team deleted, renamed or given another
    role); ``unclear``: the request could do any of these and cannot be told apart.
    """

    kind: Kind
    org: str = ""
    user: str = ""
    what: str = ""


OWNER_PATHS = ("/v2/orgs/", "/v2/scim/")
"""Where every request that can change an organization's owners goes (see :func:`owner_change`):
a template whose path starts elsewhere never needs the last-owner check."""


def owner_change(request: Request) -> OwnerChange | None:
    """How ``request`` can change owners, or None when it cannot (pure, no I/O).

    Recognised by method and path whatever template or manual config built the request: member
    removal and role change (``/v2/orgs/{org}/members/{username}``, any write method), removal
    from and addition to the ``owners`` team (Hub's owners are that team's members), the
    ``owners`` team itself, and SCIM user updates (which can deactivate a user). A write whose
    path a server could resolve to another resource (dot segments, encoded slashes) is
    ``unclear``.
    """
    method = request.method.upper()
    if method not in ("POST", "PUT", "PATCH", "DELETE"):
        return None
    url = request.url
    folded = url.lower()
    if (
        "/orgs/" not in folded
        and "/scim/" not in folded
        and "%" not in url
        and "\\" not in url
        and "/." not in url
        and "//" not in url.partition("://")[2]
        and url.isprintable()
    ):
        return None  # the common case, decided without parsing: no org route, nothing encoded
    path = urlsplit(url).path
    segments, problem = decode_path(path)
    if segments is None:
        return OwnerChange("unclear", what=f"its path {path} is ambiguous ({problem})")
    parts = [part.casefold() for part in segments]
    if parts[:1] != ["v2"]:
        return None
    if parts[1:2] == ["scim"]:
        return _scim_change(method, parts, request)
    if parts[1:2] != ["orgs"] or len(parts) < 5:
        return None
    org = segments[2]
    if parts[3] == "members" and len(parts) == 5:
        user = segments[4]
        if method == "DELETE":
            return OwnerChange("remove", org, user, f"remove {user} from organization {org}")
        role = request.body_field("role")
        if isinstance(role, str) and role.casefold() == "owner":
            return OwnerChange("promote", org, user)
        return OwnerChange("remove", org, user, f"demote {user} in organization {org}")
    if parts[3] != "groups" or parts[4] != "owners":
        return None
    if len(parts) == 5:
        if method == "DELETE":
            return OwnerChange("all", org, what=f"delete the owners team of {org}")
        name, role = request.body_field("name"), request.body_field("role")
        renamed = name is not None and (not isinstance(name, str) or name.casefold() != "owners")
        demoted = role is not None and (not isinstance(role, str) or role.casefold() != "owner")
        if method == "POST" or renamed or demoted:
            return OwnerChange("all", org, what=f"change the owners team of {org} itself")
        return None
    if parts[5:6] == ["members"] and len(parts) == 7 and method != "POST":
        user = segments[6]
        return OwnerChange("remove", org, user, f"remove {user} from the owners team of {org}")
    if parts[5:6] == ["members"] and len(parts) == 6 and method == "POST":
        member = request.body_field("member")
        return OwnerChange("promote", org, member if isinstance(member, str) else "")
    return None


def _scim_change(method: str, parts: list[str], request: Request) -> OwnerChange | None:
    # SCIM acts on the SCIM token's organization and names users by SCIM id: sink cannot tell
    # them from the owners, so anything but a creation or an activation is refused.
    if method == "POST" and parts[2:] == ["2.0", "users"]:
        return None
    if method in ("PUT", "PATCH") and request.body_field("active") is True:
        return None
    return OwnerChange(
        "unclear", what="a SCIM user change may deactivate an owner, and sink cannot tell"
    )


@dataclass
class _Org:
    """What the guard knows of one organization's owners."""

    lock: asyncio.Lock
    owners: dict[str, str] | None = None
    """Owners as read from Hub: username, or e-mail address, → username (casefolded)."""
    generation: int = 0
    """Bumped whenever what was read may be out of date; a read that overlaps is read again."""


class OwnerGuard:
    """Refuses a request that would leave an organization without an owner.

    Decided from Hub's state at send time: the owners are read once per organization
    (``GET /v2/orgs/{org}/members?role=owner``, 100 a page) and then kept up to date with what
    the run does. Decisions are serialized per organization. A removal or demotion that is let
    go counts as done at once (pending), so two removals of the last two owners cannot both
    pass; when it fails or is rejected it is given back (the owners are read again, as a failure
    may still have reached Hub). A promotion counts only once Hub confirmed it (then the owners
    are read again at the next owner-affecting request). When the owners cannot be read, an
    owner-affecting request is refused.
    """

    def __init__(self, reader: HubReader) -> None:
        self.reader = reader
        self._orgs: dict[str, _Org] = {}
        self._pending: dict[tuple[str, str, tuple[str, ...]], tuple[str, OwnerChange]] = {}

    async def refusal(self, request: Request) -> str | None:
        """Why ``request`` must not be sent, or None (reserving its change until settled)."""
        change = owner_change(request)
        if change is None:
            return None
        refused = always_refused(request, change)
        if refused is not None:
            return refused
        key = change.org.casefold()
        state = self._orgs.setdefault(key, _Org(asyncio.Lock()))
        if change.kind == "promote":
            self._pending[_key(request)] = (key, change)
            return None
        async with state.lock:
            try:
                owners = await self._owners(change.org, state)
            except read_errors() as exc:
                return (
                    f"refusing to {change.what}: the owners of organization {change.org} cannot "
                    f"be read from Docker Hub ({_reason(exc)}), so sink cannot tell whether "
                    "this leaves it without an owner; the credential needs to list the "
                    "organization's members (scope-member-read)"
                )
            if not owners:
                return (
                    f"refusing to {change.what}: Docker Hub lists no owner of organization "
                    f"{change.org}, so sink cannot tell whether this leaves it without one"
                )
            removing = {
                _user(owners, held.user)
                for org, held in self._pending.values()
                if org == key and held.kind == "remove"
            }
            effective = set(owners.values()) - removing
            target = _user(owners, change.user)
            if target in effective and len(effective) == 1:
                return (
                    f"refusing to {change.what}: they are the last owner of organization "
                    f"{change.org}, which would be left without one; make someone else an "
                    f"owner first{self._promotions_note(key)}"
                )
            self._pending[_key(request)] = (key, change)
        return None

    def _promotions_note(self, key: str) -> str:
        promoted = sorted(
            change.user or "a new member"
            for org, change in self._pending.values()
            if org == key and change.kind == "promote"
        )
        if not promoted:
            return ""
        return (
            f" (the promotion of {', '.join(promoted)} in this run counts only once Docker Hub "
            "has confirmed it: send this again after the run)"
        )

    def settled(self, request: Request, ok: bool) -> None:
        """What became of a request :meth:`refusal` let go (``ok``: Hub confirmed it)."""
        held = self._pending.pop(_key(request), None)
        if held is None:
            return
        key, change = held
        state = self._orgs[key]
        if change.kind == "remove" and ok and state.owners is not None:
            target = _user(state.owners, change.user)
            state.owners = {ident: user for ident, user in state.owners.items() if user != target}
            return
        if change.kind == "promote" and not ok:
            return
        # A confirmed promotion, or a removal that failed (it may still have reached Hub):
        # what was read is out of date; read the owners again at the next decision.
        state.owners = None
        state.generation += 1

    async def _owners(self, org: str, state: _Org) -> dict[str, str]:
        for _ in range(3):
            if state.owners is not None:
                return state.owners
            generation = state.generation
            owners: dict[str, str] = {}
            async for item in self.reader.items(
                f"/v2/orgs/{quote(org, safe='')}/members",
                params={"role": "owner"},
                page_size=100,
                strict=True,
            ):
                if str(item.get("role", "owner")).casefold() != "owner":
                    continue
                username = str(item.get("username") or "").casefold()
                if not username:
                    continue
                owners[username] = username
                email = item.get("email")
                if isinstance(email, str) and email:
                    owners.setdefault(email.casefold(), username)
            if state.generation == generation:
                state.owners = owners
        if state.owners is None:
            raise RetryLater("the owners kept changing while they were read")
        return state.owners


def _user(owners: Mapping[str, str], name: str) -> str:
    folded = name.casefold()
    return owners.get(folded, folded)


def _key(request: Request) -> tuple[str, str, tuple[str, ...]]:
    return (request.method.upper(), request.url, request.keys)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
