"""Guards that need to read Docker Hub before a request may go: never remove the last owner.

Removing a member, or changing an owner's role, must leave the organization at least one owner.
The owners are read once per run (``GET /v2/orgs/{org}/members?role=owner``) and kept up to date
as the run removes or demotes them.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

import orjson

from sink import schema
from sink.hub import HubReader
from sink.model import Request

GUARDED = frozenset({"remove-member", "update-member-role"})


class OwnerGuard:
    """Refuses a request that would leave an organization without an owner."""

    def __init__(self, reader: HubReader) -> None:
        self.reader = reader
        self._owners: dict[str, set[str]] = {}

    @classmethod
    def for_template(cls, template_id: str, reader: HubReader) -> OwnerGuard | None:
        """A guard for templates that remove or demote members; None for the others."""
        return cls(reader) if template_id in GUARDED else None

    async def refusal(self, request: Request) -> str | None:
        """Why ``request`` must not be sent, or None."""
        target = _member_target(request)
        if target is None:
            return None
        org, username = target
        if request.method == "PUT" and _new_role(request) == "owner":
            self._owners.setdefault(org.casefold(), set()).add(username.casefold())
            return None
        owners = await self._owners_of(org)
        if owners is None or username.casefold() not in owners:
            return None
        if len(owners) == 1:
            verb = "remove" if request.method == "DELETE" else "demote"
            return (
                f"refusing to {verb} {username}: they are the last owner of organization "
                f"{org}, which would be left without one; make someone else an owner first"
            )
        owners.discard(username.casefold())
        return None

    async def _owners_of(self, org: str) -> set[str] | None:
        key = org.casefold()
        if key not in self._owners:
            url = str(self.reader.client.base_url.join(f"/v2/orgs/{quote(org, safe='')}/members"))
            try:
                owners = {
                    str(item.get("username", "")).casefold()
                    async for item in self.reader.items(url, params={"role": "owner",
                                                                     "page_size": 100})
                    if str(item.get("role", "owner")).casefold() == "owner"
                }
            except Exception:  # noqa: BLE001 - cannot tell: Hub itself refuses the last owner
                return None
            self._owners[key] = owners
        return self._owners[key]


def _member_target(request: Request) -> tuple[str, str] | None:
    path = urlsplit(request.url).path
    operation = schema.match_operation(request.method, path)
    if operation is None or operation.path != "/v2/orgs/{org_name}/members/{username}":
        return None
    parts = path.split("/")
    return unquote(parts[3]), unquote(parts[5])


def _new_role(request: Request) -> str | None:
    if request.body is None:
        return None
    try:
        role = orjson.loads(request.body).get("role")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return str(role).casefold() if role is not None else None
