"""Organization members, teams (groups), team members and organization settings."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from sink.hubsim.access import Principal, check_org, require_org
from sink.hubsim.bodies import (
    MemberRole,
    OrgSettingsPut,
    TeamCreate,
    TeamMemberAdd,
    TeamPatch,
    TeamPut,
    json_body,
    parse,
)
from sink.hubsim.errors import bad_request, conflict, not_found
from sink.hubsim.hub import Hub
from sink.hubsim.state import (
    CORE_ROLES,
    OWNERS_TEAM,
    Invite,
    Org,
    Team,
    User,
    new_uuid,
    parse_time,
)
from sink.hubsim.views import group_member, invitee_member, org_group, org_member
from sink.hubsim.web import Route, empty, hub_of, json, page_params, paginate, route

_ROLE_LABEL = {"owner": "Owner", "editor": "Editor", "member": "Member"}


def _org(request: Request, *, role: str, oat_scope: str | None) -> tuple[Hub, Principal, Org]:
    hub = hub_of(request)
    who = hub.principal(request.headers.get("authorization"))
    org = require_org(hub.state, request.path_params.get("org_name") or request.path_params["name"])
    check_org(who, org, role=role, oat_scope=oat_scope)
    return hub, who, org


def _check_role(org: Org, role: str) -> None:
    if role not in CORE_ROLES and role not in org.custom_roles:
        raise bad_request(
            f"invalid role {role!r}",
            {"role": [f"must be one of {', '.join(CORE_ROLES)} or a custom role"]},
        )


def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    if value not in allowed:
        raise bad_request(f"invalid {name} {value!r}", {name: [f"must be one of {allowed}"]})
    return value


def _matches(user: User, term: str, *, with_email: bool = True) -> bool:
    term = term.lower()
    return (
        term in user.username
        or term in user.full_name.lower()
        or (with_email and term in user.email.lower())
    )


# members
async def list_members(request: Request) -> Response:
    """``GET /v2/orgs/{org_name}/members`` (one paginated object, as Hub really answers)."""
    hub, _, org = _org(request, role="member", oat_scope="scope-member-read")
    state = hub.state
    role = _choice(request, "role", CORE_ROLES)
    kind = _choice(request, "type", ("all", "invitee", "member"))
    invites_flag = _choice(request, "invites", ("true", "false", "1", "0", "True", "False"))
    search = request.query_params.get("search") or ""
    page, size = page_params(request)
    if kind is None:
        kind = "all" if invites_flag in ("true", "1", "True") else "member"
    # Filter first, render only the page asked for: a page of a 5,000-member org costs a page.
    rows: list[User | Invite] = []
    if kind in ("all", "member"):
        users, roles = state.users, org.roles
        names = sorted(roles)
        if role is not None:
            names = [username for username in names if roles[username] == role]
        if search:
            names = [username for username in names if _matches(users[username], search)]
        rows.extend(map(users.__getitem__, names))
    if kind in ("all", "invitee"):
        for invite in sorted(org.invites.values(), key=lambda i: i.created_at):
            if role is not None and invite.role != role:
                continue
            if search and search.lower() not in invite.invitee.lower():
                continue
            rows.append(invite)
    envelope, chunk = paginate(request, rows, page, size)
    groups = _groups_of(org, [r.username for r in chunk if isinstance(r, User)])
    envelope["results"] = [
        org_member(org, r, groups[r.username])
        if isinstance(r, User)
        else invitee_member(r, state.user(r.invitee))
        for r in chunk
    ]
    return json(envelope)


def _groups_of(org: Org, usernames: list[str]) -> dict[str, list[str]]:
    """The team names of each of ``usernames``, in the org's team order (one pass)."""
    groups: dict[str, list[str]] = {u: [] for u in usernames}
    for team in org.teams.values():
        for username in groups.keys() & team.members.keys():
            groups[username].append(team.name)
    return groups


async def export_members(request: Request) -> Response:
    """``GET /v2/orgs/{org_name}/members/export``: CSV attachment."""
    hub, _, org = _org(request, role="owner", oat_scope="scope-member-read")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Name", "Username", "Email", "Type", "Permission", "Teams", "Date Joined"])
    teams_of: dict[str, list[str]] = {}
    for team in org.teams.values():
        for member in team.members:
            teams_of.setdefault(member, []).append(team.name)
    for username in sorted(org.roles):
        user = hub.state.users[username]
        teams = ", ".join(teams_of.get(username, ()))
        role = org.roles[username]
        writer.writerow(
            [
                user.full_name,
                username,
                user.email,
                "User",
                _ROLE_LABEL.get(role, role),
                teams,
                _csv_date(user.date_joined),
            ]
        )
    for invite in org.invites.values():
        email = invite.invitee if "@" in invite.invitee else ""
        name = "" if "@" in invite.invitee else invite.invitee
        writer.writerow(
            [
                "",
                name,
                email,
                "Invitee",
                _ROLE_LABEL.get(invite.role, invite.role),
                invite.team,
                _csv_date(invite.created_at),
            ]
        )
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment;filename="{org.name}-members-{stamp}.csv"'},
    )


def _csv_date(value: str) -> str:
    if not value:
        return ""
    return datetime.fromtimestamp(parse_time(value), UTC).strftime("%Y-%m-%d %H:%M:%S.%f +0000 UTC")


def _member(org: Org, username: str) -> str:
    name = username.lower()
    if name not in org.roles:
        raise not_found(f"{username!r} is not a member of {org.name}")
    return name


async def update_member_role(request: Request) -> Response:
    """``PUT /v2/orgs/{org_name}/members/{username}``."""
    hub, who, org = _org(request, role="owner", oat_scope="scope-member-edit")
    username = _member(org, request.path_params["username"])
    body = parse(await json_body(request), MemberRole)
    _check_role(org, body.role)
    previous = org.roles[username]
    if previous == "owner" and body.role != "owner" and len(hub.state.owners_of(org)) == 1:
        raise bad_request("cannot change the role of the organization's last owner")
    if previous != body.role:
        hub.state.set_role(org, username, body.role)
        hub.record(
            org.name,
            "org.member.role.change",
            org.name,
            who,
            f"changed the role of {username} from {previous} to {body.role}",
            {"member": username, "role": body.role, "previous_role": previous},
        )
    user = hub.state.users[username]
    return json(org_member(org, user, _groups_of(org, [username])[username]))


async def remove_member(request: Request) -> Response:
    """``DELETE /v2/orgs/{org_name}/members/{username}``: from the org and all its teams."""
    hub, who, org = _org(request, role="owner", oat_scope="scope-member-edit")
    username = _member(org, request.path_params["username"])
    if org.roles[username] == "owner" and len(hub.state.owners_of(org)) == 1:
        raise bad_request("cannot remove the organization's last owner")
    hub.state.remove_member(org, username)
    hub.record(
        org.name,
        "org.member.remove",
        org.name,
        who,
        f"removed {username} from the organization",
        {"member": username},
    )
    return empty()


# teams
def _team(org: Org, name: str) -> Team:
    team = org.teams.get(name)
    if team is None:
        team = next((t for t in org.teams.values() if t.name.lower() == name.lower()), None)
    if team is None:
        raise not_found(f"group {name!r} not found")
    return team


def _free_name(org: Org, name: str, current: Team | None = None) -> None:
    for team in org.teams.values():
        if team is not current and team.name.lower() == name.lower():
            raise conflict(f"a group named {team.name!r} already exists")


async def list_teams(request: Request) -> Response:
    """``GET /v2/orgs/{org_name}/groups``."""
    _, _, org = _org(request, role="member", oat_scope="scope-group-read")
    page, size = page_params(request)
    username = (request.query_params.get("username") or "").lower()
    search = (request.query_params.get("search") or "").lower()
    teams = [
        t
        for t in sorted(org.teams.values(), key=lambda t: t.name)
        if (not username or username in t.members) and (not search or search in t.name.lower())
    ]
    envelope, chunk = paginate(request, teams, page, size)
    envelope["results"] = [org_group(t) for t in chunk]
    return json(envelope)


async def create_team(request: Request) -> Response:
    """``POST /v2/orgs/{org_name}/groups``: 409 for a name already taken."""
    hub, who, org = _org(request, role="owner", oat_scope="scope-group-edit")
    body = parse(await json_body(request), TeamCreate)
    _free_name(org, body.name)
    team = Team(hub.state.next_team_id(), new_uuid(), body.name, body.description)
    hub.state.add_team(org, team)
    hub.record(
        org.name,
        "org.team.create",
        org.name,
        who,
        f"created the team {team.name}",
        {"team": team.name},
    )
    return json(org_group(team), 201)


async def get_team(request: Request) -> Response:
    """``GET /v2/orgs/{org_name}/groups/{group_name}``."""
    _, _, org = _org(request, role="member", oat_scope="scope-group-read")
    return json(org_group(_team(org, request.path_params["group_name"])))


def _update_team(
    hub: Hub,
    who: Principal,
    org: Org,
    team: Team,
    name: str | None,
    description: str | None,
    role: str | None,
) -> Team:
    before = (team.name, team.description, team.role)
    if name is not None and name != team.name:
        if team.name == OWNERS_TEAM:
            raise bad_request("the owners team cannot be renamed")
        _free_name(org, name, team)
        hub.state.rename_team(org, team, name)
    if description is not None:
        team.description = description
    if role is not None:
        _check_role(org, role)
        team.role = role
    if (team.name, team.description, team.role) != before:
        hub.record(
            org.name,
            "org.team.update",
            org.name,
            who,
            f"updated the team {team.name}",
            {"team": team.name, "previous_name": before[0]},
        )
    return team


async def put_team(request: Request) -> Response:
    """``PUT /v2/orgs/{org_name}/groups/{group_name}``: name required, description replaced."""
    hub, who, org = _org(request, role="owner", oat_scope="scope-group-edit")
    team = _team(org, request.path_params["group_name"])
    body = parse(await json_body(request), TeamPut)
    return json(org_group(_update_team(hub, who, org, team, body.name, body.description, None)))


async def patch_team(request: Request) -> Response:
    """``PATCH /v2/orgs/{org_name}/groups/{group_name}``."""
    hub, who, org = _org(request, role="owner", oat_scope="scope-group-edit")
    team = _team(org, request.path_params["group_name"])
    body = parse(await json_body(request), TeamPatch)
    return json(
        org_group(_update_team(hub, who, org, team, body.name, body.description, body.role))
    )


async def delete_team(request: Request) -> Response:
    """``DELETE /v2/orgs/{org_name}/groups/{group_name}``."""
    hub, who, org = _org(request, role="owner", oat_scope="scope-group-edit")
    team = _team(org, request.path_params["group_name"])
    if team.name == OWNERS_TEAM:
        raise bad_request("the owners team cannot be deleted")
    hub.state.remove_team(org, team)
    hub.record(
        org.name,
        "org.team.delete",
        org.name,
        who,
        f"deleted the team {team.name}",
        {"team": team.name},
    )
    return empty()


async def list_team_members(request: Request) -> Response:
    """``GET /v2/orgs/{org_name}/groups/{group_name}/members`` (emails for owners only)."""
    hub, who, org = _org(request, role="member", oat_scope="scope-group-read")
    team = _team(org, request.path_params["group_name"])
    elevated = who.kind == "oat" or (
        who.user is not None and org.roles.get(who.user.username) == "owner"
    )
    search = request.query_params.get("search") or ""
    page, size = page_params(request)
    users = [hub.state.users[u] for u in sorted(team.members)]
    if search:
        users = [u for u in users if _matches(u, search, with_email=elevated)]
    envelope, chunk = paginate(request, users, page, size)
    envelope["results"] = [group_member(u, with_email=elevated) for u in chunk]
    return json(envelope)


async def add_team_member(request: Request) -> Response:
    """``POST .../groups/{group_name}/members``: 200 also when already a member."""
    hub, who, org = _org(request, role="owner", oat_scope="scope-group-edit")
    team = _team(org, request.path_params["group_name"])
    body = parse(await json_body(request), TeamMemberAdd)
    state = hub.state
    user = state.user_by_email(body.member) if "@" in body.member else state.user(body.member)
    if user is None:
        raise not_found(f"user {body.member!r} not found")
    if user.username not in org.roles:
        raise bad_request(
            f"{user.username} is not a member of the organization {org.name}",
            {"member": ["must be a member of the organization; invite them first"]},
        )
    if user.username in team.members:
        return empty(200)
    if team.name == OWNERS_TEAM:
        previous = org.roles[user.username]
        state.set_role(org, user.username, "owner")
        hub.record(
            org.name,
            "org.member.role.change",
            org.name,
            who,
            f"changed the role of {user.username} from {previous} to owner",
            {"member": user.username, "role": "owner", "previous_role": previous},
        )
    else:
        team.members[user.username] = None
    hub.record(
        org.name,
        "org.team.member.add",
        user.username,
        who,
        f"added {user.username} to the team {team.name}",
        {"team": team.name},
    )
    return empty(200)


async def remove_team_member(request: Request) -> Response:
    """``DELETE .../groups/{group_name}/members/{username}``."""
    hub, who, org = _org(request, role="owner", oat_scope="scope-group-edit")
    team = _team(org, request.path_params["group_name"])
    username = request.path_params["username"].lower()
    if username not in team.members:
        raise not_found(f"{username!r} is not a member of the team {team.name}")
    if team.name == OWNERS_TEAM:
        if len(hub.state.owners_of(org)) == 1:
            raise bad_request("cannot remove the organization's last owner")
        hub.state.set_role(org, username, "member")
        hub.record(
            org.name,
            "org.member.role.change",
            org.name,
            who,
            f"changed the role of {username} from owner to member",
            {"member": username, "role": "member", "previous_role": "owner"},
        )
    else:
        team.members.pop(username, None)
    hub.record(
        org.name,
        "org.team.member.remove",
        username,
        who,
        f"removed {username} from the team {team.name}",
        {"team": team.name},
    )
    return empty()


# settings
async def get_settings(request: Request) -> Response:
    """``GET /v2/orgs/{name}/settings`` (owners; not OAT-callable)."""
    _, _, org = _org(request, role="owner", oat_scope=None)
    return json({"restricted_images": dict(org.settings["restricted_images"])})


async def put_settings(request: Request) -> Response:
    """``PUT /v2/orgs/{name}/settings`` (owners; not OAT-callable)."""
    hub, who, org = _org(request, role="owner", oat_scope=None)
    body = parse(await json_body(request), OrgSettingsPut)
    new = body.restricted_images.model_dump()
    if new != org.settings.get("restricted_images"):
        org.settings["restricted_images"] = new
        hub.record(
            org.name,
            "org.settings.update",
            org.name,
            who,
            "updated the organization settings",
            {k: str(v).lower() for k, v in new.items()},
        )
    return json({"restricted_images": dict(new)})


ROUTES: list[Route] = [
    route("/v2/orgs/{org_name}/members", GET=list_members),
    route("/v2/orgs/{org_name}/members/export", GET=export_members),
    route("/v2/orgs/{org_name}/members/{username}", PUT=update_member_role, DELETE=remove_member),
    route("/v2/orgs/{org_name}/groups", GET=list_teams, POST=create_team),
    route(
        "/v2/orgs/{org_name}/groups/{group_name}",
        GET=get_team,
        PUT=put_team,
        PATCH=patch_team,
        DELETE=delete_team,
    ),
    route(
        "/v2/orgs/{org_name}/groups/{group_name}/members",
        GET=list_team_members,
        POST=add_team_member,
    ),
    route("/v2/orgs/{org_name}/groups/{group_name}/members/{username}", DELETE=remove_team_member),
    route("/v2/orgs/{name}/settings", GET=get_settings, PUT=put_settings),
]
