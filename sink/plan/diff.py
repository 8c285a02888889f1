"""The diff: desired state against Hub's current state → the actions, in dependency order.

Pure: no I/O. For each key of each managed kind: create, update (in place), delete (only with
``prune``) or unchanged; a repository's team grant, which Hub has no documented read for, is
``ensure`` (granting is idempotent). People who are not members yet are invited, never again
while an invite is pending; team memberships of people who have not joined yet are
``waiting`` (Hub refuses to add a non-member to a team). A role change is one PUT of the
member's role. Access tokens are keyed by label: created (the secret to the vault),
deactivated, or deleted with prune; a label two tokens share is refused. Differences Hub has no
documented route for are ``refused`` with the reason.

Each action carries its steps (template and record, each one call, or one invitee of a bulk
invite call), the phase that orders it (teams before their members and grants; invites before
memberships; removals last, members of a team before the team), and the value of its key on
Hub before and after, for the drift check at apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sink.plan.refresh import Current, Wanted
from sink.plan.state import (
    DesiredState,
    MemberRow,
    RepositoryRow,
    RepositoryTeamRow,
    TeamMemberRow,
    TeamRow,
    TokenRow,
)

CREATE, UPDATE, DELETE, ENSURE, WAITING = "create", "update", "delete", "ensure", "waiting"
CHANGES = (CREATE, UPDATE, DELETE, ENSURE)
"""Operations that send calls."""

PHASES = (
    "create-team",
    "update-team",
    "bulk-invite",
    "update-member-role",
    "add-team-member",
    "create-repository",
    "update-immutable-tags",
    "grant-team-repository",
    "create-personal-access-token",
    "update-personal-access-token",
    "create-org-access-token",
    "update-org-access-token",
    "remove-team-member",
    "cancel-invite",
    "remove-member",
    "delete-team",
    "delete-personal-access-token",
    "delete-org-access-token",
)
"""The templates apply sends, in this order: each action's dependencies come first."""

NO_GRANT_READ = (
    "Hub documents no read of a repository's team grants: each grant is ensured (sent; "
    "granting again is harmless), and none is removed, whatever prune says"
)


@dataclass(frozen=True)
class Step:
    """One record for one template: a call (or one invitee of a bulk invite)."""

    template: str
    record: dict[str, Any]


@dataclass
class Action:
    """What the plan does about one key of one kind."""

    kind: str
    op: str
    key: str
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)
    """``(field, before, after)`` for the fields that change (or are set, for a create)."""
    steps: list[Step] = field(default_factory=list)
    before: Any = None
    """The key's value on Hub when planned (None: absent) — see :func:`observed`."""
    after: Any = None
    """Its value once applied."""
    note: str = ""
    refused: str | None = None
    """Why the action will not be sent (no route, the policy, the last owner)."""
    check: bool = True
    """Whether apply compares the key's value on Hub with ``before``/``after`` (drift)."""

    @property
    def label(self) -> str:
        """The noun shown for the kind (``member``, ``team member``, ...)."""
        return LABELS[self.kind]


LABELS = {
    "members": "member",
    "invites": "invite",
    "teams": "team",
    "team_members": "team member",
    "repositories": "repository",
    "repository_teams": "grant",
    "access_tokens": "access token",
    "org_access_tokens": "org access token",
}


@dataclass
class Diff:
    """The actions, in phase order, and what is unchanged per kind."""

    actions: list[Action] = field(default_factory=list)
    unchanged: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def same(self, kind: str) -> None:
        self.unchanged[kind] = self.unchanged.get(kind, 0) + 1


def wanted(state: DesiredState) -> Wanted:
    """What the refresh must read for ``state``."""
    teams = state.rows("teams")
    members = state.rows("team_members")
    repos = state.rows("repositories")
    team_names: set[str] = set()
    if members is not None:
        team_names = {row.team for row in members.values()} | set(teams or {})
    tagged = [name for name, row in (repos or {}).items() if row.immutable_tags is not None]
    return Wanted(
        members=state.rows("members") is not None or members is not None,
        teams=teams is not None or state.rows("repository_teams") is not None,
        team_members=sorted(team_names),
        repositories=repos is not None,
        immutable_tags=tagged,
        access_tokens=state.rows("access_tokens") is not None,
        org_access_tokens=state.rows("org_access_tokens") is not None,
    )


def diff(state: DesiredState, current: Current) -> Diff:
    """The actions that make Hub match ``state`` (see the module)."""
    out = Diff()
    org = state.org
    invited = _members(state, current, out, org)
    _teams(state, current, out)
    _team_members(state, current, out, invited)
    _repositories(state, current, out)
    _grants(state, out)
    _tokens(state, current, out, "access_tokens")
    _tokens(state, current, out, "org_access_tokens")
    order = {template: at for at, template in enumerate(PHASES)}
    out.actions.sort(key=lambda a: order[a.steps[0].template] if a.steps else len(order))
    return out


def _find_member(current: Current, row: MemberRow) -> dict[str, Any] | None:
    members = current.members or {}
    if row.username and row.username.casefold() in members:
        return members[row.username.casefold()]
    if row.email:
        email = row.email.casefold()
        for member in members.values():
            if (member.get("email") or "").casefold() == email:
                return member
    return None


def _find_invite(current: Current, row: MemberRow) -> dict[str, Any] | None:
    invites = current.invites or {}
    for who in (row.username, row.email):
        if who and who.casefold() in invites:
            return invites[who.casefold()]
    return None


def _members(state: DesiredState, current: Current, out: Diff, org: str) -> set[str]:
    """Member actions; returns who is (or is being) invited, casefolded (usernames and
    e-mails), for the team memberships that must wait."""
    rows: dict[str, MemberRow] | None = state.rows("members")
    waiting: set[str] = set()
    if current.invites:
        for invite in current.invites.values():
            waiting.add(str(invite["invitee"]).casefold())
    if rows is None:
        return waiting
    kept: set[str] = set()
    kept_invites: set[str] = set()
    for row in rows.values():
        key = f"{org}/{row.invitee}"
        member = _find_member(current, row)
        if member is not None:
            kept.add(str(member["username"]).casefold())
            if member["role"] == row.role:
                out.same("members")
                continue
            out.actions.append(
                Action(
                    "members",
                    UPDATE,
                    f"{org}/{member['username']}",
                    changes=[("role", member["role"], row.role)],
                    steps=[
                        Step(
                            "update-member-role", {"username": member["username"], "role": row.role}
                        )
                    ],
                    before={"role": member["role"]},
                    after={"role": row.role},
                )
            )
            continue
        pending = _find_invite(current, row)
        if pending is not None:
            kept_invites.add(str(pending["invitee"]).casefold())
            out.same("members")
            if pending["role"] != row.role:
                out.notes.append(
                    f"{key}: the pending invite is for role {pending['role']}; once they join, "
                    f"a plan changes it to {row.role}"
                )
            continue
        waiting.add(row.invitee.casefold())
        if row.username and row.email:
            waiting.add(row.email.casefold())
        out.actions.append(
            Action(
                "invites",
                CREATE,
                key,
                changes=[("role", None, row.role)],
                steps=[Step("bulk-invite", {"invitee": row.invitee, "role": row.role})],
                before=None,
                after={"invited": row.role},
            )
        )
    if state.prune("members"):
        for name, member in sorted((current.members or {}).items()):
            if name in kept:
                continue
            out.actions.append(
                Action(
                    "members",
                    DELETE,
                    f"{org}/{member['username']}",
                    changes=[("role", member["role"], None)],
                    steps=[Step("remove-member", {"username": member["username"]})],
                    before={"role": member["role"]},
                    after=None,
                )
            )
        for name, invite in sorted((current.invites or {}).items()):
            if name in kept_invites:
                continue
            out.actions.append(
                Action(
                    "invites",
                    DELETE,
                    f"{org}/{invite['invitee']}",
                    changes=[("role", invite["role"], None)],
                    steps=[Step("cancel-invite", {"id": invite["id"]})],
                    before={"invited": invite["role"]},
                    after=None,
                )
            )
    return waiting


def _teams(state: DesiredState, current: Current, out: Diff) -> None:
    rows: dict[str, TeamRow] | None = state.rows("teams")
    if rows is None:
        return
    teams = current.teams or {}
    for name, row in rows.items():
        team = teams.get(name)
        if team is None:
            record = {"team": name}
            changes: list[tuple[str, Any, Any]] = []
            if row.description is not None:
                record["description"] = row.description
                changes.append(("description", None, row.description))
            out.actions.append(
                Action(
                    "teams",
                    CREATE,
                    name,
                    changes=changes,
                    steps=[Step("create-team", record)],
                    before=None,
                    after=_team_value(row.description),
                )
            )
        elif row.description is not None and team["description"] != row.description:
            out.actions.append(
                Action(
                    "teams",
                    UPDATE,
                    name,
                    changes=[("description", team["description"], row.description)],
                    steps=[Step("update-team", {"team": name, "description": row.description})],
                    before=_team_value(team["description"]),
                    after=_team_value(row.description),
                )
            )
        else:
            out.same("teams")
    if state.prune("teams"):
        for name, team in sorted(teams.items()):
            if name in rows:
                continue
            action = Action(
                "teams",
                DELETE,
                name,
                steps=[Step("delete-team", {"team": name})],
                before=_team_value(team["description"]),
                after=None,
            )
            if name == "owners":
                action.refused = "the owners team cannot be deleted"
            out.actions.append(action)


def _team_value(description: str | None) -> dict[str, Any]:
    return {"exists": True} if description is None else {"description": description}


def _team_members(state: DesiredState, current: Current, out: Diff, waiting: set[str]) -> None:
    rows: dict[str, TeamMemberRow] | None = state.rows("team_members")
    if rows is None:
        return
    teams = current.teams or {}
    planned_teams = {a.key for a in out.actions if a.kind == "teams" and a.op == CREATE}
    members = current.members or {}
    desired_members: dict[str, MemberRow] | None = state.rows("members")
    leaving = {
        a.key.split("/", 1)[1].casefold()
        for a in out.actions
        if a.kind == "members" and a.op == DELETE
    }
    listed = current.team_members or {}
    for row in rows.values():
        user = row.username.casefold()
        key = f"{row.team}/{row.username}"
        step = Step("add-team-member", {"team": row.team, "username": row.username})
        action = Action(
            "team_members", CREATE, key, steps=[step], before=None, after={"member": True}
        )
        if row.team not in teams and row.team not in planned_teams:
            action.refused = f"the team {row.team} does not exist (add it to teams)"
        elif user in leaving:
            action.refused = f"{row.username} is removed from {state.org} by this plan"
        elif user not in members:
            if user in waiting:
                action.op = WAITING
                action.steps = []
                action.check = False
                action.note = f"waiting for {row.username} to accept the invite"
            elif desired_members is not None and any(
                m.username and m.username.casefold() == user for m in desired_members.values()
            ):
                action.refused = f"{row.username} is not a member of {state.org} yet"
            else:
                action.refused = (
                    f"{row.username} is not a member of {state.org} (add them to members; Hub "
                    "does not add a non-member to a team)"
                )
        elif user in listed.get(row.team, ()):
            out.same("team_members")
            continue
        out.actions.append(action)
    if state.prune("team_members"):
        managed = {row.team for row in rows.values()} | set(state.rows("teams") or {})
        for team, usernames in sorted(listed.items()):
            if team not in managed:
                continue
            wanted_here = {r.username.casefold() for r in rows.values() if r.team == team}
            for user in usernames:
                if user in wanted_here or user in leaving:
                    continue  # leaving the organization takes them out of its teams
                name = members.get(user, {}).get("username", user)
                out.actions.append(
                    Action(
                        "team_members",
                        DELETE,
                        f"{team}/{name}",
                        steps=[Step("remove-team-member", {"team": team, "username": name})],
                        before={"member": True},
                        after=None,
                    )
                )


def _repo_value(info: dict[str, Any] | None, row: RepositoryRow) -> dict[str, Any] | None:
    if info is None:
        return None
    value: dict[str, Any] = {}
    if row.description is not None:
        value["description"] = info.get("description", "")
    if row.private is not None:
        value["private"] = info.get("private")
    if row.immutable_tags is not None:
        value["immutable_tags"] = info.get("immutable_tags", [])
    return value


def _repositories(state: DesiredState, current: Current, out: Diff) -> None:
    rows: dict[str, RepositoryRow] | None = state.rows("repositories")
    if rows is None:
        return
    ns = state.namespace
    repos = current.repositories or {}
    for name, row in rows.items():
        short = name.split("/", 1)[1] if name.startswith(f"{ns}/") else name
        key = f"{ns}/{short}"
        want: dict[str, Any] = {}
        if row.description is not None:
            want["description"] = row.description
        if row.private is not None:
            want["private"] = row.private
        if row.immutable_tags is not None:
            want["immutable_tags"] = list(row.immutable_tags)
        info = repos.get(short)
        rules_step = (
            Step(
                "update-immutable-tags",
                {
                    "repository": short,
                    "enabled": "true" if row.immutable_tags else "false",
                    "rules": list(row.immutable_tags or []),
                },
            )
            if row.immutable_tags is not None
            else None
        )
        if "/" in short:
            out.actions.append(
                Action(
                    "repositories",
                    CREATE,
                    name,
                    refused=f"{name} is not in the namespace {ns} this state manages",
                    check=False,
                )
            )
            continue
        if info is None:
            record: dict[str, Any] = {"name": short}
            if row.description is not None:
                record["description"] = row.description
            if row.private is not None:
                record["is_private"] = "true" if row.private else "false"
            steps = [Step("create-repository", record)]
            if row.immutable_tags:
                assert rules_step is not None
                steps.append(rules_step)
            out.actions.append(
                Action(
                    "repositories",
                    CREATE,
                    key,
                    changes=[(k, None, v) for k, v in want.items()],
                    steps=steps,
                    before=None,
                    after=want,
                )
            )
            continue
        have = _repo_value(info, row) or {}
        fixed = [
            (k, have.get(k), v)
            for k, v in want.items()
            if k != "immutable_tags" and have.get(k) != v
        ]
        rules = want.get("immutable_tags")
        if rules is not None and sorted(have.get("immutable_tags") or []) != sorted(rules):
            assert rules_step is not None
            after = {**have, "immutable_tags": rules}
            out.actions.append(
                Action(
                    "repositories",
                    UPDATE,
                    key,
                    changes=[("immutable_tags", have.get("immutable_tags"), rules)],
                    steps=[rules_step],
                    before=have,
                    after=after,
                )
            )
        if fixed:
            out.actions.append(
                Action(
                    "repositories",
                    UPDATE,
                    key,
                    changes=fixed,
                    before=have,
                    after=want,
                    check=False,
                    refused="Hub documents no route that changes a repository's description "
                    "or privacy; change it in Hub's web UI",
                )
            )
        if not fixed and (
            rules is None or sorted(have.get("immutable_tags") or []) == sorted(rules)
        ):
            out.same("repositories")
    if state.prune("repositories"):
        for short in sorted(repos):
            if short in rows or f"{ns}/{short}" in rows:
                continue
            out.actions.append(
                Action(
                    "repositories",
                    DELETE,
                    f"{ns}/{short}",
                    check=False,
                    refused="Hub documents no route that deletes a repository; delete it in "
                    "Hub's web UI",
                )
            )


def _grants(state: DesiredState, out: Diff) -> None:
    rows: dict[str, RepositoryTeamRow] | None = state.rows("repository_teams")
    if rows is None:
        return
    ns = state.namespace
    out.notes.append(NO_GRANT_READ)
    for row in rows.values():
        short = (
            row.repository.split("/", 1)[1]
            if row.repository.startswith(f"{ns}/")
            else row.repository
        )
        out.actions.append(
            Action(
                "repository_teams",
                ENSURE,
                f"{ns}/{short} {row.team}",
                changes=[("permission", None, row.permission)],
                steps=[
                    Step(
                        "grant-team-repository",
                        {"repository": short, "team": row.team, "permission": row.permission},
                    )
                ],
                check=False,
            )
        )


_TOKEN_TEMPLATES = {
    "access_tokens": ("personal-access-token", "uuid", "token_label"),
    "org_access_tokens": ("org-access-token", "id", "label"),
}


def _tokens(state: DesiredState, current: Current, out: Diff, kind: str) -> None:
    rows: dict[str, TokenRow] | None = state.rows(kind)
    if rows is None:
        return
    suffix, id_field, label_field = _TOKEN_TEMPLATES[kind]
    listed: dict[str, list[dict[str, Any]]] = getattr(current, kind) or {}
    for label, row in rows.items():
        found = listed.get(label, [])
        if len(found) > 1:
            out.actions.append(
                Action(
                    kind,
                    UPDATE,
                    label,
                    check=False,
                    refused=f"{len(found)} tokens have the label {label!r} (Hub accepts "
                    "duplicates): the plan cannot tell which one is meant; delete the extra ones",
                )
            )
            continue
        if not found:
            if not row.active:
                out.same(kind)  # nothing to deactivate
                continue
            record: dict[str, Any] = {label_field: label}
            if kind == "access_tokens":
                record["scopes"] = list(row.scopes or [])
            else:
                record["resources"] = list(row.resources or [])
                if row.description is not None:
                    record["description"] = row.description
            if row.expires_at is not None:
                record["expires_at"] = row.expires_at
            out.actions.append(
                Action(
                    kind,
                    CREATE,
                    label,
                    changes=[("active", None, True)],
                    steps=[Step(f"create-{suffix}", record)],
                    after={"active": True},
                    note="its secret goes to the vault",
                )
            )
            continue
        token = found[0]
        if token["active"] == row.active:
            out.same(kind)
            continue
        if row.active:
            out.actions.append(
                Action(
                    kind,
                    UPDATE,
                    label,
                    changes=[("active", False, True)],
                    check=False,
                    refused="an inactive or expired token is not turned back on by a plan: "
                    "delete it (prune) and plan again to create a new one",
                )
            )
            continue
        out.actions.append(
            Action(
                kind,
                UPDATE,
                label,
                changes=[("active", True, False)],
                steps=[Step(f"update-{suffix}", {id_field: token["id"], "is_active": "false"})],
                before={"active": True},
                after={"active": False},
            )
        )
    if state.prune(kind):
        for label, found in sorted(listed.items()):
            if label in rows:
                continue
            for token in found:
                out.actions.append(
                    Action(
                        kind,
                        DELETE,
                        label if len(found) == 1 else f"{label} [{token['id']}]",
                        steps=[Step(f"delete-{suffix}", {id_field: token["id"]})],
                        before={"active": token["active"]},
                        after=None,
                    )
                )


def observed(action: Action, current: Current, state: DesiredState) -> Any:
    """The value of ``action``'s key in ``current``, as :attr:`Action.before` holds it."""
    if action.kind == "members":
        username = action.key.split("/", 1)[1].casefold()
        member = (current.members or {}).get(username)
        return None if member is None else {"role": member["role"]}
    if action.kind == "invites":
        who = action.key.split("/", 1)[1].casefold()
        member = (current.members or {}).get(who)
        if member is not None or any(
            (m.get("email") or "").casefold() == who for m in (current.members or {}).values()
        ):
            return {"joined": True}
        invite = (current.invites or {}).get(who)
        return None if invite is None else {"invited": invite["role"]}
    if action.kind == "teams":
        team = (current.teams or {}).get(action.key)
        if team is None:
            return None
        described = action.after if action.after is not None else action.before
        if isinstance(described, dict) and "description" in described:
            return {"description": team["description"]}
        return {"exists": True}
    if action.kind == "team_members":
        team_name, user = action.key.split("/", 1)
        listed = (current.team_members or {}).get(team_name, [])
        return {"member": True} if user.casefold() in listed else None
    if action.kind in _TOKEN_TEMPLATES:
        label, _, named = action.key.partition(" [")
        tokens = (getattr(current, action.kind) or {}).get(label, [])
        if named:  # one of several with the label, by id
            tokens = [t for t in tokens if str(t["id"]) == named.removesuffix("]")]
        if len(tokens) != 1:
            return None if not tokens else {"count": len(tokens)}
        return {"active": tokens[0]["active"]}
    if action.kind == "repositories":
        short = action.key.split("/", 1)[1]
        rows = state.rows("repositories") or {}
        row = rows.get(short) or rows.get(action.key)
        info = (current.repositories or {}).get(short)
        if row is None:
            return None if info is None else {}
        return _repo_value(info, row)
    return None
