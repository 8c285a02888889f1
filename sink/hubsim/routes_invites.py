"""Organization invites: list, bulk create (with ``dry_run``), cancel, resend."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sink.hubsim.access import Principal, check_org, require_org
from sink.hubsim.bodies import BulkInvite, json_body, parse
from sink.hubsim.errors import bad_request, not_found
from sink.hubsim.hub import Hub
from sink.hubsim.state import CORE_ROLES, Invite, Org, new_uuid, now_iso
from sink.hubsim.views import invite_view
from sink.hubsim.web import Route, empty, hub_of, json, route

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


async def list_invites(request: Request) -> Response:
    """``GET /v2/orgs/{org_name}/invites``: ``{"data": [invite]}``, not paginated."""
    hub = hub_of(request)
    who = hub.principal(request.headers.get("authorization"))
    org = require_org(hub.state, request.path_params["org_name"])
    check_org(who, org, role="owner", oat_scope="scope-invite-read")
    invites = sorted(org.invites.values(), key=lambda i: i.created_at)
    return json({"data": [invite_view(i) for i in invites]})


def _pending(pending: dict[str, Invite], invitee: str, username: str | None) -> Invite | None:
    found = pending.get(invitee.lower())
    if found is None and username is not None:
        found = pending.get(username)
    return found


def _pending_index(org: Org) -> dict[str, Invite]:
    """The org's pending invites by invitee (lower case), the oldest first: one pass per
    request, not one per invitee."""
    index: dict[str, Invite] = {}
    for invite in org.invites.values():
        index.setdefault(invite.invitee.lower(), invite)
    return index


async def bulk_invite(request: Request) -> Response:
    """``POST /v2/invites/bulk``: one result per invitee; nothing is stored with ``dry_run``."""
    hub = hub_of(request)
    who = hub.principal(request.headers.get("authorization"))
    body = parse(await json_body(request), BulkInvite)
    org = require_org(hub.state, body.org)
    check_org(who, org, role="owner", oat_scope="scope-invite-edit")
    team = body.team or ""
    if team and team not in org.teams:
        raise bad_request(f"team {team!r} not found in {org.name}", {"team": ["unknown team"]})
    role = body.role or "member"
    if role not in CORE_ROLES and role not in org.custom_roles:
        raise bad_request(f"invalid role {role!r}", {"role": ["unknown role"]})
    pending = _pending_index(org)
    results = [
        _invite_one(
            hub, org, who, pending, invitee=invitee, team=team, role=role, dry_run=body.dry_run
        )
        for invitee in dict.fromkeys(i.strip() for i in body.invitees)
    ]
    return json({"invitees": results}, 202)


def _invite_one(
    hub: Hub,
    org: Org,
    who: Principal,
    pending: dict[str, Invite],
    *,
    invitee: str,
    team: str,
    role: str,
    dry_run: bool,
) -> dict[str, Any]:
    state = hub.state
    is_email = bool(_EMAIL.match(invitee))
    user = state.user_by_email(invitee) if is_email else state.user(invitee) if invitee else None
    if not is_email and user is None:
        return {"invitee": invitee, "status": "invalid_email_or_docker_id"}
    if user is not None and user.username in org.roles:
        return {"invitee": invitee, "status": "existing_org_member"}
    existing = _pending(pending, invitee, user.username if user else None)
    if existing is not None:
        return {"invitee": invitee, "status": "already_invited", "invite": invite_view(existing)}
    if dry_run:
        return {"invitee": invitee, "status": "invited"}
    invite = Invite(new_uuid(), org.name, invitee, who.name, now_iso(), team, role)
    org.invites[invite.id] = invite
    pending.setdefault(invitee.lower(), invite)
    hub.record(
        org.name,
        "org.member.invite.send",
        org.name,
        who,
        f"invited {invitee} to the organization",
        {"invitee": invitee, "team": team, "role": role, "invite_id": invite.id},
    )
    return {"invitee": invitee, "status": "invited", "invite": invite_view(invite)}


def _find(hub: Hub, invite_id: str) -> tuple[Org, Invite]:
    for org in hub.state.orgs.values():
        invite = org.invites.get(invite_id)
        if invite is not None:
            return org, invite
    raise not_found("invite not found")


async def cancel_invite(request: Request) -> Response:
    """``DELETE /v2/invites/{id}``."""
    hub = hub_of(request)
    who = hub.principal(request.headers.get("authorization"))
    org, invite = _find(hub, request.path_params["id"])
    check_org(who, org, role="owner", oat_scope="scope-invite-edit")
    del org.invites[invite.id]
    return empty()


async def resend_invite(request: Request) -> Response:
    """``PATCH /v2/invites/{id}/resend`` (no state change)."""
    hub = hub_of(request)
    who = hub.principal(request.headers.get("authorization"))
    org, _ = _find(hub, request.path_params["id"])
    check_org(who, org, role="owner", oat_scope="scope-invite-edit")
    return empty()


def accept_invite(hub: Hub, invite_id: str, username: str | None) -> dict[str, Any]:
    """Simulate the invitee accepting (control API): they join with the invite's role/team."""
    org, invite = _find(hub, invite_id)
    state = hub.state
    if username is not None:
        user = state.user(username)
    elif "@" in invite.invitee:
        user = state.user_by_email(invite.invitee)
    else:
        user = state.user(invite.invitee)
    if user is None:
        raise bad_request("no such user; pass the username who accepts")
    del org.invites[invite.id]
    state.set_role(org, user.username, invite.role)
    actor = Principal("password", user.username, f"password:{user.username}", user=user)
    hub.record(
        org.name,
        "org.member.add",
        org.name,
        actor,
        f"{user.username} joined the organization",
        {"member": user.username},
    )
    if invite.team and invite.team in org.teams and invite.team != "owners":
        org.teams[invite.team].members[user.username] = None
        hub.record(
            org.name,
            "org.team.member.add",
            user.username,
            actor,
            f"added {user.username} to the team {invite.team}",
            {"team": invite.team},
        )
    return {"org": org.name, "username": user.username, "role": invite.role, "team": invite.team}


ROUTES: list[Route] = [
    route("/v2/orgs/{org_name}/invites", GET=list_invites),
    route("/v2/invites/bulk", POST=bulk_invite),
    route("/v2/invites/{id}", DELETE=cancel_invite),
    route("/v2/invites/{id}/resend", PATCH=resend_invite),
]
