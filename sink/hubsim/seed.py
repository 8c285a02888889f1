"""Load a seed (YAML or JSON file, or a dict) into a fresh :class:`State`.

The format is documented in ``sink/hubsim/README.md``; ``default_seed.yaml`` beside this module is
the default and ``samples/hubsim-seed.yaml`` is a copy of it.
"""

from __future__ import annotations

import uuid
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import pydantic

from sink import yamltext
from sink.errors import ConfigError
from sink.hubsim.generate import Generate, generate
from sink.hubsim.state import (
    CORE_ROLES,
    OWNERS_TEAM,
    AuditEvent,
    Invite,
    Org,
    OrgToken,
    PersonalToken,
    Repository,
    State,
    Tag,
    Team,
    User,
    digest_of,
    new_uuid,
)

_EPOCH = "2024-01-01T00:00:00.000000Z"


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")


class TokenSeed(_Model):
    """A personal access token in a seed."""

    token: str = pydantic.Field(pattern=r"^dckr_pat_\S+$")
    label: str
    scopes: list[str]
    uuid: str = pydantic.Field(default_factory=new_uuid)
    created_at: str = _EPOCH
    expires_at: str | None = None
    is_active: bool = True
    last_used: str | None = None


class UserSeed(_Model):
    """A user in a seed."""

    username: str = pydantic.Field(pattern=r"^[a-z0-9]{2,30}$")
    password: str
    id: str = pydantic.Field(default_factory=lambda: uuid.uuid4().hex)
    email: str = ""
    full_name: str = ""
    company: str = ""
    location: str = ""
    date_joined: str = _EPOCH
    tokens: list[TokenSeed] = []


class TeamSeed(_Model):
    """A team in a seed (the ``owners`` team's members follow the owner role)."""

    name: str
    id: int | None = None
    uuid: str = pydantic.Field(default_factory=new_uuid)
    description: str = ""
    members: list[str] = []
    role: str | None = None


class InviteSeed(_Model):
    """A pending invite in a seed."""

    invitee: str
    inviter: str
    id: str = pydantic.Field(default_factory=new_uuid)
    team: str = ""
    role: str = "member"
    created_at: str = _EPOCH


class OrgTokenSeed(_Model):
    """An organization access token in a seed."""

    token: str = pydantic.Field(pattern=r"^dckr_oat_\S+$")
    label: str
    created_by: str
    resources: list[dict[str, Any]]
    id: str = pydantic.Field(default_factory=new_uuid)
    description: str = ""
    created_at: str = _EPOCH
    expires_at: str | None = None
    is_active: bool = True
    last_used_at: str | None = None


class OrgSeed(_Model):
    """An organization in a seed."""

    name: str = pydantic.Field(pattern=r"^[a-z0-9]{2,30}$")
    id: str = pydantic.Field(default_factory=lambda: uuid.uuid4().hex)
    full_name: str = ""
    date_joined: str = _EPOCH
    members: dict[str, str]
    custom_roles: list[str] = []
    teams: list[TeamSeed] = []
    invites: list[InviteSeed] = []
    access_tokens: list[OrgTokenSeed] = []
    settings: dict[str, Any] = {}


class TagSeed(_Model):
    """A tag in a seed."""

    name: str
    size: int = 0
    digest: str | None = None
    pushed_by: str
    pushed_at: str = _EPOCH
    architecture: str = "amd64"
    os: str = "linux"


class ImmutableSeed(_Model):
    """Immutable-tag settings in a seed."""

    enabled: bool = False
    rules: list[str] = []


class RepoSeed(_Model):
    """A repository in a seed."""

    namespace: str
    name: str = pydantic.Field(pattern=r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
    description: str = ""
    full_description: str = ""
    is_private: bool = False
    registry: str = "docker.io"
    date_registered: str = _EPOCH
    last_updated: str | None = None
    pull_count: int = 0
    star_count: int = 0
    immutable_tags: ImmutableSeed = ImmutableSeed()
    teams: dict[str, str] = {}
    tags: list[TagSeed] = []


class AuditSeed(_Model):
    """A past audit-log event in a seed."""

    account: str
    action: str
    name: str
    actor: str
    data: dict[str, str] = {}
    timestamp: str
    action_description: str = ""


class Seed(_Model):
    """A whole seed document."""

    users: list[UserSeed] = []
    orgs: list[OrgSeed] = []
    repositories: list[RepoSeed] = []
    audit_logs: list[AuditSeed] = []
    generate: Generate | None = None


LARGE = "large"
"""The seed name meaning :func:`large_seed` with its defaults (``--seed large``)."""


def large_seed(**sizes: Any) -> dict[str, Any]:
    """The default seed plus a ``generate:`` section: by default 5,000 members of ``acme``,
    300 teams with members, 3,000 repositories with team grants, 100 pending invites, 100
    users outside the org, 20 PATs of alice and 20 OATs; keyword arguments change the numbers
    (see :class:`~sink.hubsim.generate.Generate`). The default seed's credentials still work.

    >>> large_seed(members=10_000, teams=500)["generate"]["members"]
    10000
    """
    try:
        spec = Generate.model_validate(sizes)
    except pydantic.ValidationError as exc:
        raise ConfigError(f"invalid large seed: {exc}") from exc
    doc = read_seed(None)
    doc["generate"] = spec.model_dump(exclude_defaults=True) or {}
    return doc


def default_seed_text() -> str:
    """The default seed document (YAML)."""
    return resources.files("sink.hubsim").joinpath("default_seed.yaml").read_text("utf-8")


def read_seed(seed: str | Path | dict[str, Any] | None) -> dict[str, Any]:
    """The raw seed document: the default, a dict as given, ``"large"`` (:func:`large_seed`),
    or a YAML/JSON file's content (a file named ``large`` is given as ``./large``)."""
    if seed is None:
        loaded: Any = yamltext.load(default_seed_text())
    elif seed == LARGE:
        return large_seed()
    elif isinstance(seed, dict):
        loaded = seed
    else:
        path = Path(seed)
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the simulator seed {path}: {exc}") from exc
        try:
            loaded = orjson.loads(text) if path.suffix.lower() == ".json" else yamltext.load(text)
        except (yamltext.YAMLError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"the simulator seed {path} is not valid YAML/JSON: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError("the simulator seed must be a mapping with users, orgs, repositories")
    return loaded


def load_state(seed: str | Path | dict[str, Any] | None) -> State:
    """A new :class:`State` built from ``seed`` (``None``: the default seed)."""
    raw = read_seed(seed)
    try:
        doc = Seed.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise ConfigError(f"invalid simulator seed: {exc}") from exc
    state = State()
    try:
        _build(state, doc)
        if doc.generate is not None:
            generate(state, doc.generate)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"inconsistent simulator seed: {exc}") from exc
    return state


def _build(state: State, doc: Seed) -> None:
    for u in doc.users:
        if u.username in state.users:
            raise ValueError(f"user {u.username!r} twice")
        user = User(
            username=u.username,
            password=u.password,
            id=u.id,
            number=state.next_user_number(),
            email=u.email or f"{u.username}@example.com",
            full_name=u.full_name,
            company=u.company,
            location=u.location,
            date_joined=u.date_joined,
        )
        state.add_user(user)
        for t in u.tokens:
            state.add_pat(
                PersonalToken(
                    uuid=t.uuid,
                    username=user.username,
                    token=t.token,
                    label=t.label,
                    scopes=list(t.scopes),
                    created_at=t.created_at,
                    expires_at=t.expires_at,
                    is_active=t.is_active,
                    last_used=t.last_used,
                )
            )
    for o in doc.orgs:
        _build_org(state, o)
    for r in doc.repositories:
        _build_repo(state, r)
    for a in doc.audit_logs:
        state.audit.append(
            AuditEvent(
                a.account,
                a.action,
                a.name,
                a.actor,
                dict(a.data),
                a.timestamp,
                a.action_description,
            )
        )


def _build_org(state: State, o: OrgSeed) -> None:
    if o.name in state.orgs or o.name in state.users:
        raise ValueError(f"namespace {o.name!r} twice")
    org = Org(
        name=o.name,
        id=o.id,
        full_name=o.full_name,
        date_joined=o.date_joined,
        custom_roles=list(o.custom_roles),
        settings=dict(o.settings),
    )
    org.settings.setdefault(
        "restricted_images",
        {"enabled": False, "allow_official_images": True, "allow_verified_publishers": True},
    )
    for username, role in o.members.items():
        if username not in state.users:
            raise ValueError(f"org {o.name}: unknown member {username!r}")
        if role not in CORE_ROLES and role not in org.custom_roles:
            raise ValueError(f"org {o.name}: unknown role {role!r}")
        org.roles[username] = role
    if "owner" not in org.roles.values():
        raise ValueError(f"org {o.name} has no owner")
    for t in o.teams:
        team = Team(state.next_team_id(t.id), t.uuid, t.name, t.description, role=t.role)
        if t.name != OWNERS_TEAM:
            for member in t.members:
                if member not in org.roles:
                    raise ValueError(f"team {o.name}/{t.name}: {member!r} is not an org member")
                team.members[member] = None
        state.add_team(org, team)
    state.add_org(org)
    for i in o.invites:
        org.invites[i.id] = Invite(
            i.id, org.name, i.invitee, i.inviter, i.created_at, i.team, i.role
        )
    for a in o.access_tokens:
        state.add_oat(
            org,
            OrgToken(
                id=a.id,
                org=org.name,
                label=a.label,
                token=a.token,
                resources=[dict(r) for r in a.resources],
                created_by=a.created_by,
                created_at=a.created_at,
                description=a.description,
                expires_at=a.expires_at,
                is_active=a.is_active,
                last_used_at=a.last_used_at,
            ),
        )


def _build_repo(state: State, r: RepoSeed) -> None:
    if not state.namespace_exists(r.namespace):
        raise ValueError(f"repository {r.namespace}/{r.name}: unknown namespace")
    if state.repo(r.namespace, r.name) is not None:
        raise ValueError(f"repository {r.namespace}/{r.name} twice")
    repo = Repository(
        id=state.next_repo_id(),
        namespace=r.namespace,
        name=r.name,
        date_registered=r.date_registered,
        last_updated=r.last_updated or r.date_registered,
        description=r.description,
        full_description=r.full_description,
        is_private=r.is_private,
        registry=r.registry,
        pull_count=r.pull_count,
        star_count=r.star_count,
        immutable_tags=r.immutable_tags.enabled,
        immutable_rules=list(r.immutable_tags.rules),
    )
    org = state.org(r.namespace)
    for team_name, permission in r.teams.items():
        if org is None or team_name not in org.teams:
            raise ValueError(f"repository {r.namespace}/{r.name}: unknown team {team_name!r}")
        if permission not in ("read", "write", "admin"):
            raise ValueError(f"repository {r.namespace}/{r.name}: bad permission {permission!r}")
        repo.team_permissions[org.teams[team_name].id] = permission
    for t in r.tags:
        pusher = state.user(t.pushed_by)
        if pusher is None:
            raise ValueError(f"tag {r.namespace}/{r.name}:{t.name}: unknown user {t.pushed_by!r}")
        repo.tags[t.name] = Tag(
            id=state.next_tag_id(),
            name=t.name,
            digest=t.digest or digest_of(f"{r.namespace}/{r.name}:{t.name}:{t.pushed_at}"),
            size=t.size,
            creator=pusher.number,
            last_updater_username=pusher.username,
            last_updated=t.pushed_at,
            architecture=t.architecture,
            os=t.os,
        )
        if t.pushed_at > repo.last_updated:
            repo.last_updated = t.pushed_at
    state.add_repo(repo)
