"""The simulator's state in memory: accounts, organizations, repositories and the audit log.

Plain data plus the look-ups the routes need. ``State.to_seed()`` writes the state in the seed
format (``seed.py`` reads it back), so a dump of ``GET /_sim/state`` is itself a valid seed.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

OWNERS_TEAM = "owners"
CORE_ROLES = ("owner", "editor", "member")


def now_iso() -> str:
    """The current time as Hub writes it: ISO 8601, microseconds, ``Z``."""
    return format_time(time.time())


def format_time(seconds: float) -> str:
    """``seconds`` since the epoch in Hub's timestamp format."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float:
    """An RFC 3339 / ISO 8601 timestamp to seconds since the epoch (naive means UTC)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def new_uuid() -> str:
    """A hyphenated random UUID (PAT uuid, OAT id, invite id, team uuid)."""
    return str(uuid.uuid4())


def digest_of(text: str) -> str:
    """A stable, realistic-looking ``sha256:`` image digest derived from ``text``."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(slots=True)
class User:
    """A Docker ID with a password; ``id`` is a 32-hex UUID, ``number`` the numeric id tags use."""

    username: str
    password: str
    id: str
    number: int
    email: str
    full_name: str = ""
    company: str = ""
    location: str = ""
    date_joined: str = ""


@dataclass(slots=True)
class PersonalToken:
    """A personal access token (PAT) of one user."""

    uuid: str
    username: str
    token: str
    label: str
    scopes: list[str]
    created_at: str
    expires_at: str | None = None
    is_active: bool = True
    last_used: str | None = None
    creator_ip: str = "127.0.0.1"
    creator_ua: str = "hubsim-seed"
    generated_by: str = "manual"
    client_id: str = "HUB"


@dataclass(slots=True)
class OrgToken:
    """An organization access token (OAT) with its resources."""

    id: str
    org: str
    label: str
    token: str
    resources: list[dict[str, Any]]
    created_by: str
    created_at: str
    description: str = ""
    expires_at: str | None = None
    is_active: bool = True
    last_used_at: str | None = None


@dataclass(slots=True)
class Team:
    """A team ("group"); ``members`` is an ordered set of usernames."""

    id: int
    uuid: str
    name: str
    description: str = ""
    members: dict[str, None] = field(default_factory=dict)
    role: str | None = None


@dataclass(slots=True)
class Invite:
    """A pending invitation to join an organization."""

    id: str
    org: str
    invitee: str
    inviter_username: str
    created_at: str
    team: str = ""
    role: str = "member"


@dataclass(slots=True)
class Org:
    """An organization: roles by username, teams by name, invites and OATs by id, settings."""

    name: str
    id: str
    full_name: str = ""
    date_joined: str = ""
    roles: dict[str, str] = field(default_factory=dict)
    teams: dict[str, Team] = field(default_factory=dict)
    invites: dict[str, Invite] = field(default_factory=dict)
    tokens: dict[str, OrgToken] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    custom_roles: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Tag:
    """A pushed tag (single-platform image)."""

    id: int
    name: str
    digest: str
    size: int
    creator: int
    last_updater_username: str
    last_updated: str
    architecture: str = "amd64"
    os: str = "linux"
    last_pulled: str | None = None


@dataclass(slots=True)
class Repository:
    """A repository; ``team_permissions`` maps team id to read/write/admin."""

    id: int
    namespace: str
    name: str
    date_registered: str
    last_updated: str
    description: str = ""
    full_description: str = ""
    is_private: bool = False
    registry: str = "docker.io"
    last_modified: str | None = None
    pull_count: int = 0
    star_count: int = 0
    immutable_tags: bool = False
    immutable_rules: list[str] = field(default_factory=list)
    team_permissions: dict[int, str] = field(default_factory=dict)
    tags: dict[str, Tag] = field(default_factory=dict)


@dataclass(slots=True)
class AuditEvent:
    """One audit-log entry, named as Hub names actions (``repo.create``, ``org.team.create``)."""

    account: str
    action: str
    name: str
    actor: str
    data: dict[str, str]
    timestamp: str
    description: str


class State:
    """Everything the simulator knows, with indexes kept in step by the mutators below."""

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.emails: dict[str, User] = {}
        self.orgs: dict[str, Org] = {}
        self.repos: dict[str, dict[str, Repository]] = {}
        self.audit: list[AuditEvent] = []
        self.pats: dict[str, PersonalToken] = {}
        self.pat_secrets: dict[str, PersonalToken] = {}
        self.oat_secrets: dict[str, OrgToken] = {}
        self.teams_by_id: dict[int, tuple[Org, Team]] = {}
        self._next_number = 1
        self._next_team_id = 1001
        self._next_repo_id = 1
        self._next_tag_id = 1

    # ids
    def next_user_number(self) -> int:
        """A fresh numeric user id."""
        self._next_number += 1
        return self._next_number - 1

    def next_team_id(self, wanted: int | None = None) -> int:
        """A fresh numeric team id (or ``wanted`` if given), kept unique."""
        value = wanted if wanted is not None else self._next_team_id
        self._next_team_id = max(self._next_team_id, value + 1)
        return value

    def next_repo_id(self) -> int:
        """A fresh numeric repository id."""
        self._next_repo_id += 1
        return self._next_repo_id - 1

    def next_tag_id(self) -> int:
        """A fresh numeric tag id."""
        self._next_tag_id += 1
        return self._next_tag_id - 1

    # look-ups
    def user(self, username: str) -> User | None:
        """The user named ``username`` (Docker IDs are case-insensitive)."""
        return self.users.get(username.lower())

    def user_by_email(self, email: str) -> User | None:
        """The user whose email is ``email``, if any."""
        return self.emails.get(email.lower())

    def org(self, name: str) -> Org | None:
        """The organization named ``name``."""
        return self.orgs.get(name.lower())

    def namespace_exists(self, namespace: str) -> bool:
        """Whether ``namespace`` is a user or an organization."""
        key = namespace.lower()
        return key in self.users or key in self.orgs

    def repo(self, namespace: str, name: str) -> Repository | None:
        """The repository ``namespace/name``."""
        return self.repos.get(namespace.lower(), {}).get(name.lower())

    # mutators that keep the indexes right
    def add_user(self, user: User) -> None:
        """Register ``user`` (the first user of an e-mail address is the one it finds)."""
        self.users[user.username] = user
        self.emails.setdefault(user.email.lower(), user)

    def add_pat(self, pat: PersonalToken) -> None:
        """Register a personal access token."""
        self.pats[pat.uuid] = pat
        self.pat_secrets[pat.token] = pat

    def remove_pat(self, pat: PersonalToken) -> None:
        """Delete a personal access token for good."""
        self.pats.pop(pat.uuid, None)
        self.pat_secrets.pop(pat.token, None)

    def add_org(self, org: Org) -> None:
        """Register ``org`` and make sure it has its ``owners`` team."""
        self.orgs[org.name] = org
        if OWNERS_TEAM not in org.teams:
            self.add_team(org, Team(self.next_team_id(), new_uuid(), OWNERS_TEAM, "Owners"))
        owners = org.teams[OWNERS_TEAM]
        for username, role in org.roles.items():
            if role == "owner":
                owners.members[username] = None

    def add_team(self, org: Org, team: Team) -> None:
        """Register ``team`` in ``org``."""
        org.teams[team.name] = team
        self.teams_by_id[team.id] = (org, team)

    def remove_team(self, org: Org, team: Team) -> None:
        """Delete ``team`` and its repository permissions."""
        org.teams.pop(team.name, None)
        self.teams_by_id.pop(team.id, None)
        for repo in self.repos.get(org.name, {}).values():
            repo.team_permissions.pop(team.id, None)

    def rename_team(self, org: Org, team: Team, new_name: str) -> None:
        """Rename ``team`` (its key in the URL changes)."""
        org.teams.pop(team.name, None)
        team.name = new_name
        org.teams[new_name] = team

    def set_role(self, org: Org, username: str, role: str) -> None:
        """Give ``username`` ``role`` in ``org``; the ``owners`` team follows the owner role."""
        org.roles[username] = role
        owners = org.teams[OWNERS_TEAM].members
        if role == "owner":
            owners[username] = None
        else:
            owners.pop(username, None)

    def remove_member(self, org: Org, username: str) -> None:
        """Remove ``username`` from ``org`` and from all its teams."""
        org.roles.pop(username, None)
        for team in org.teams.values():
            team.members.pop(username, None)

    def add_oat(self, org: Org, token: OrgToken) -> None:
        """Register an organization access token."""
        org.tokens[token.id] = token
        self.oat_secrets[token.token] = token

    def remove_oat(self, org: Org, token: OrgToken) -> None:
        """Delete an organization access token for good."""
        org.tokens.pop(token.id, None)
        self.oat_secrets.pop(token.token, None)

    def add_repo(self, repo: Repository) -> None:
        """Register ``repo``."""
        self.repos.setdefault(repo.namespace, {})[repo.name] = repo

    def owners_of(self, org: Org) -> list[str]:
        """Usernames holding the owner role."""
        return [u for u, role in org.roles.items() if role == "owner"]

    def to_seed(self) -> dict[str, Any]:
        """The whole state in the seed format (secrets included: they are fake)."""
        return {
            "users": [_user_seed(u, self) for u in self.users.values()],
            "orgs": [_org_seed(o) for o in self.orgs.values()],
            "repositories": [
                _repo_seed(r, self) for ns in self.repos.values() for r in ns.values()
            ],
            "audit_logs": [_audit_seed(e) for e in self.audit],
        }


def _user_seed(user: User, state: State) -> dict[str, Any]:
    return {
        "username": user.username,
        "password": user.password,
        "id": user.id,
        "email": user.email,
        "full_name": user.full_name,
        "company": user.company,
        "location": user.location,
        "date_joined": user.date_joined,
        "tokens": [
            {
                "uuid": p.uuid,
                "label": p.label,
                "token": p.token,
                "scopes": list(p.scopes),
                "created_at": p.created_at,
                "expires_at": p.expires_at,
                "is_active": p.is_active,
                "last_used": p.last_used,
            }
            for p in state.pats.values()
            if p.username == user.username
        ],
    }


def _org_seed(org: Org) -> dict[str, Any]:
    return {
        "name": org.name,
        "id": org.id,
        "full_name": org.full_name,
        "date_joined": org.date_joined,
        "members": dict(org.roles),
        "custom_roles": list(org.custom_roles),
        "teams": [
            {
                "id": t.id,
                "uuid": t.uuid,
                "name": t.name,
                "description": t.description,
                "members": list(t.members),
                "role": t.role,
            }
            for t in org.teams.values()
        ],
        "invites": [
            {
                "id": i.id,
                "invitee": i.invitee,
                "inviter": i.inviter_username,
                "team": i.team,
                "role": i.role,
                "created_at": i.created_at,
            }
            for i in org.invites.values()
        ],
        "access_tokens": [
            {
                "id": t.id,
                "label": t.label,
                "description": t.description,
                "token": t.token,
                "resources": [dict(r) for r in t.resources],
                "created_by": t.created_by,
                "created_at": t.created_at,
                "expires_at": t.expires_at,
                "is_active": t.is_active,
                "last_used_at": t.last_used_at,
            }
            for t in org.tokens.values()
        ],
        "settings": {k: dict(v) if isinstance(v, dict) else v for k, v in org.settings.items()},
    }


def _repo_seed(repo: Repository, state: State) -> dict[str, Any]:
    teams = {}
    for team_id, permission in repo.team_permissions.items():
        found = state.teams_by_id.get(team_id)
        if found is not None:
            teams[found[1].name] = permission
    return {
        "namespace": repo.namespace,
        "name": repo.name,
        "description": repo.description,
        "full_description": repo.full_description,
        "is_private": repo.is_private,
        "registry": repo.registry,
        "date_registered": repo.date_registered,
        "last_updated": repo.last_updated,
        "pull_count": repo.pull_count,
        "star_count": repo.star_count,
        "immutable_tags": {"enabled": repo.immutable_tags, "rules": list(repo.immutable_rules)},
        "teams": teams,
        "tags": [
            {
                "name": t.name,
                "digest": t.digest,
                "size": t.size,
                "pushed_by": t.last_updater_username,
                "pushed_at": t.last_updated,
                "architecture": t.architecture,
                "os": t.os,
            }
            for t in repo.tags.values()
        ],
    }


def _audit_seed(event: AuditEvent) -> dict[str, Any]:
    return {
        "account": event.account,
        "action": event.action,
        "name": event.name,
        "actor": event.actor,
        "data": dict(event.data),
        "timestamp": event.timestamp,
        "action_description": event.description,
    }
