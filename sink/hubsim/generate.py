"""A large, deterministic state for tests and benchmarks: the ``generate:`` section of a seed.

``generate: {org: acme, members: 5000, teams: 300, repositories: 3000, ...}`` adds thousands of
members, hundreds of teams with members, thousands of repositories with team grants, pending
invites, users outside the organization and access tokens to the state the rest of the seed
built (the organization is created if the seed has none of that name). The same numbers and
``seed`` give the same state, ids and fake secrets included. Built straight into
:class:`State` (no per-item validation), so 5,000 members take well under a second.
"""

from __future__ import annotations

import random
import string
import uuid

import pydantic

from sink.hubsim.state import (
    Invite,
    Org,
    OrgToken,
    PersonalToken,
    Repository,
    State,
    Team,
    User,
    format_time,
)

_START = 1_704_067_200.0  # 2024-01-01T00:00:00Z: generated timestamps count up from here
_PAT_SCOPES = ("repo:admin", "repo:write", "repo:read", "repo:public_read")
_PERMISSIONS = ("read", "write", "admin")
_ALNUM = string.ascii_letters + string.digits


class Generate(pydantic.BaseModel):
    """The ``generate:`` section of a seed: how much to add (every count may be 0)."""

    model_config = pydantic.ConfigDict(extra="forbid")

    org: str = pydantic.Field(default="acme", pattern=r"^[a-z0-9]{2,30}$")
    members: int = pydantic.Field(default=5000, ge=0, le=1_000_000)
    owners: int = pydantic.Field(default=2, ge=0)
    editors: float = pydantic.Field(default=0.02, ge=0, le=1)
    teams: int = pydantic.Field(default=300, ge=0, le=100_000)
    team_members: int = pydantic.Field(default=20, ge=0)
    big_team_members: int = pydantic.Field(default=250, ge=0)
    repositories: int = pydantic.Field(default=3000, ge=0, le=1_000_000)
    private: float = pydantic.Field(default=0.5, ge=0, le=1)
    immutable: float = pydantic.Field(default=0.1, ge=0, le=1)
    grants: int = pydantic.Field(default=1, ge=0)
    invites: int = pydantic.Field(default=100, ge=0)
    outsiders: int = pydantic.Field(default=100, ge=0)
    personal_tokens: int = pydantic.Field(default=20, ge=0)
    token_user: str | None = None
    org_tokens: int = pydantic.Field(default=20, ge=0)
    seed: int = 0


def member_name(i: int) -> str:
    """The username of generated member ``i`` (0-based): ``user00000``."""
    return f"user{i:05d}"


def outsider_name(i: int) -> str:
    """The username of generated non-member ``i``: ``guest00000``."""
    return f"guest{i:05d}"


def team_name(i: int) -> str:
    """The name of generated team ``i``: ``team-0000``."""
    return f"team-{i:04d}"


def repository_name(i: int) -> str:
    """The name of generated repository ``i``: ``repo-00000``."""
    return f"repo-{i:05d}"


def generate(state: State, spec: Generate) -> None:
    """Add what ``spec`` asks for to ``state`` (raises ``ValueError`` on a name clash)."""
    rng = random.Random(spec.seed)
    ids = _Ids(rng)
    org = state.org(spec.org)
    members = [_user(state, ids, member_name(i)) for i in range(spec.members)]
    outsiders = [_user(state, ids, outsider_name(i)) for i in range(spec.outsiders)]
    if org is None:
        if not members:
            raise ValueError(f"generate: organization {spec.org!r} is not in the seed")
        org = Org(name=spec.org, id=ids.hex(), date_joined=format_time(_START))
        org.settings["restricted_images"] = {
            "enabled": False,
            "allow_official_images": True,
            "allow_verified_publishers": True,
        }
        state.add_org(org)
        if spec.owners == 0:
            state.set_role(org, members[0].username, "owner")
    for i, user in enumerate(members):
        if user.username in org.roles:
            continue
        editor = rng.random() < spec.editors
        role = "owner" if i < spec.owners else "editor" if editor else "member"
        state.set_role(org, user.username, role)
    inviter = state.owners_of(org)[0]
    names = [u.username for u in members]
    teams = [_team(state, org, ids, rng, spec, i, names) for i in range(spec.teams)]
    _repositories(state, org, ids, rng, spec, teams)
    _invites(org, ids, rng, spec, outsiders, teams, inviter)
    _personal_tokens(state, ids, rng, spec, spec.token_user or inviter)
    _org_tokens(state, org, ids, rng, spec, inviter)


class _Ids:
    """Deterministic ids from the generator's random stream."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def hex(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def secret(self, prefix: str, length: int) -> str:
        return prefix + "".join(self.rng.choices(_ALNUM, k=length))


def _user(state: State, ids: _Ids, username: str) -> User:
    if state.user(username) is not None or state.org(username) is not None:
        raise ValueError(f"generate: {username!r} is already in the seed")
    number = state.next_user_number()
    user = User(
        username=username,
        password=f"{username}-password",
        id=ids.hex(),
        number=number,
        email=f"{username}@example.com",
        full_name=f"User {username[-5:]}",
        date_joined=format_time(_START + number),
    )
    state.add_user(user)
    return user


def _team(
    state: State,
    org: Org,
    ids: _Ids,
    rng: random.Random,
    spec: Generate,
    i: int,
    names: list[str],
) -> Team:
    name = team_name(i)
    if any(t.name.lower() == name for t in org.teams.values()):
        raise ValueError(f"generate: team {org.name}/{name} is already in the seed")
    if i == 0:
        size = spec.big_team_members
    else:
        size = int(rng.expovariate(1 / spec.team_members)) + 1 if spec.team_members else 0
    team = Team(state.next_team_id(), ids.uuid(), name, f"Generated team {i}")
    for username in sorted(rng.sample(names, min(size, len(names)))):
        team.members[username] = None
    state.add_team(org, team)
    return team


def _repositories(
    state: State, org: Org, ids: _Ids, rng: random.Random, spec: Generate, teams: list[Team]
) -> None:
    for i in range(spec.repositories):
        name = repository_name(i)
        if state.repo(org.name, name) is not None:
            raise ValueError(f"generate: repository {org.name}/{name} is already in the seed")
        stamp = format_time(_START + 60 * i)
        immutable = rng.random() < spec.immutable
        repo = Repository(
            id=state.next_repo_id(),
            namespace=org.name,
            name=name,
            date_registered=stamp,
            last_updated=stamp,
            description=f"Generated repository {i}",
            is_private=rng.random() < spec.private,
            immutable_tags=immutable,
            immutable_rules=["v.*"] if immutable else [],
        )
        if teams and spec.grants:
            count = rng.randint(0, 2 * spec.grants)
            for team in rng.sample(teams, min(count, len(teams))):
                repo.team_permissions[team.id] = rng.choice(_PERMISSIONS)
        state.add_repo(repo)


def _invites(
    org: Org,
    ids: _Ids,
    rng: random.Random,
    spec: Generate,
    outsiders: list[User],
    teams: list[Team],
    inviter: str,
) -> None:
    for i in range(spec.invites):
        # Every other invite names a Docker ID (a generated non-member), the rest an e-mail.
        invitee = (
            outsiders[i // 2].username
            if i % 2 == 0 and i // 2 < len(outsiders)
            else f"invitee{i:05d}@example.org"
        )
        team = teams[rng.randrange(len(teams))].name if teams and rng.random() < 0.5 else ""
        invite = Invite(
            ids.uuid(), org.name, invitee, inviter, format_time(_START + 3600 + i), team, "member"
        )
        org.invites[invite.id] = invite


def _personal_tokens(
    state: State, ids: _Ids, rng: random.Random, spec: Generate, username: str
) -> None:
    user = state.user(username)
    if user is None:
        raise ValueError(f"generate: token_user {username!r} is not a user")
    for i in range(spec.personal_tokens):
        state.add_pat(
            PersonalToken(
                uuid=ids.uuid(),
                username=user.username,
                token=ids.secret("dckr_pat_", 27),
                label=f"generated token {i:04d}",
                scopes=[_PAT_SCOPES[rng.randrange(len(_PAT_SCOPES))]],
                created_at=format_time(_START + 7200 + i),
                is_active=i % 5 != 4,
            )
        )


def _org_tokens(
    state: State, org: Org, ids: _Ids, rng: random.Random, spec: Generate, creator: str
) -> None:
    for i in range(spec.org_tokens):
        resources = [{"type": "TYPE_ORG", "path": org.name, "scopes": ["scope-member-read"]}]
        if rng.random() < 0.5:
            resources.append(
                {"type": "TYPE_REPO", "path": f"{org.name}/*", "scopes": ["scope-image-pull"]}
            )
        state.add_oat(
            org,
            OrgToken(
                id=ids.uuid(),
                org=org.name,
                label=f"generated org token {i:04d}",
                token=ids.secret("dckr_oat_", 32),
                resources=resources,
                created_by=creator,
                created_at=format_time(_START + 10800 + i),
                description=f"Generated organization access token {i}",
                is_active=i % 4 != 3,
            ),
        )
