"""Who is calling and what they may do: PAT scopes, OAT resource scopes and org roles.

Every check raises :class:`HubError`; nothing here touches HTTP.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from sink.hubsim.errors import OAT_NOT_ALLOWED, PAT_NOT_ALLOWED, HubError, forbidden, not_found
from sink.hubsim.state import Org, OrgToken, Repository, State, User

PAT_SCOPES = ("repo:public_read", "repo:read", "repo:write", "repo:admin")
_PAT_RANK = {scope: rank for rank, scope in enumerate(PAT_SCOPES, start=1)}

ORG_SCOPES = frozenset(
    {
        "scope-member-read",
        "scope-member-edit",
        "scope-invite-read",
        "scope-invite-edit",
        "scope-group-read",
        "scope-group-edit",
        "scope-activity-read",
        "scope-siem_credentials-read",
        "scope-ram-read",
        "scope-ram-write",
        "scope-report-read",
        "scope-repository-create",
        "scope-repository-list",
        "scope-registry-usage-read",
        "scope-cloud-connect",
        "scope-audit_events-read",
        "scope-governance-policy-read",
        "scope-governance-policy-write",
    }
)
REPO_SCOPES = frozenset(
    {
        "scope-image-pull",
        "scope-image-push",
        "scope-image-delete",
        "scope-repository-read",
        "scope-repository-edit",
        "scope-repository-admin",
        "scope-tag-read",
        "scope-tag-admin",
        "scope-webhook-read",
        "scope-webhook-edit",
        "scope-webhook-admin",
        "scope-repo-group-read",
        "scope-repo-group-edit",
        "scope-repo-group-admin",
        "scope-repository-settings-admin",
    }
)
# A scope grants the scopes it implies (edit ⊇ read, delete ⊇ push ⊇ pull, ...).
_IMPLIES: dict[str, tuple[str, ...]] = {
    "scope-member-edit": ("scope-member-read",),
    "scope-invite-edit": ("scope-invite-read",),
    "scope-group-edit": ("scope-group-read",),
    "scope-ram-write": ("scope-ram-read",),
    "scope-governance-policy-write": ("scope-governance-policy-read",),
    "scope-image-delete": ("scope-image-push", "scope-image-pull"),
    "scope-image-push": ("scope-image-pull",),
    "scope-repository-admin": ("scope-repository-edit", "scope-repository-read"),
    "scope-repository-edit": ("scope-repository-read",),
    "scope-tag-admin": ("scope-tag-read",),
    "scope-webhook-admin": ("scope-webhook-edit", "scope-webhook-read"),
    "scope-webhook-edit": ("scope-webhook-read",),
    "scope-repo-group-admin": ("scope-repo-group-edit", "scope-repo-group-read"),
    "scope-repo-group-edit": ("scope-repo-group-read",),
}

# OAT repository scopes that satisfy each kind of repository access.
OAT_REPO_READ = frozenset({"scope-repository-read", "scope-image-pull", "scope-tag-read"})
OAT_REPO_SETTINGS = frozenset({"scope-repository-settings-admin", "scope-repository-admin"})
OAT_REPO_GROUPS = frozenset({"scope-repo-group-edit", "scope-repository-admin"})

READ, WRITE, ADMIN = 1, 2, 3
_LEVEL = {"read": READ, "write": WRITE, "admin": ADMIN}
_ROLE_RANK = {"owner": 3, "editor": 2, "member": 1}


def expand(scopes: list[str] | tuple[str, ...]) -> frozenset[str]:
    """``scopes`` with everything they imply."""
    out = set(scopes)
    for scope in scopes:
        out.update(_IMPLIES.get(scope, ()))
    return frozenset(out)


@dataclass(slots=True, frozen=True)
class Principal:
    """The caller: ``kind`` is ``password``, ``pat``, ``oat`` or ``anonymous``.

    ``name`` is the username (password, PAT) or the organization (OAT); ``credential`` a
    printable identifier of the credential, never a secret.
    """

    kind: str
    name: str
    credential: str
    scopes: tuple[str, ...] = ()
    user: User | None = None
    token: OrgToken | None = None

    @property
    def is_user(self) -> bool:
        """A user's own credential (password or PAT)."""
        return self.kind in ("password", "pat")

    def pat_rank(self) -> int:
        """The highest ``repo:*`` scope as a rank (a password holds every scope)."""
        if self.kind == "password":
            return _PAT_RANK["repo:admin"]
        return max((_PAT_RANK.get(s, 0) for s in self.scopes), default=0)


ANONYMOUS = Principal("anonymous", "", "anonymous")


def oat_org_scopes(token: OrgToken, org: str) -> frozenset[str]:
    """The organization scopes ``token`` holds on ``org``."""
    scopes: list[str] = []
    for resource in token.resources:
        if resource.get("type") == "TYPE_ORG" and resource.get("path", "").lower() == org.lower():
            scopes.extend(resource.get("scopes", []))
    return expand(scopes)


def oat_repo_scopes(token: OrgToken, repo: Repository) -> frozenset[str]:
    """The repository scopes ``token`` holds on ``repo`` (globs and ``*/*/public`` honoured)."""
    full = f"{repo.namespace}/{repo.name}"
    scopes: list[str] = []
    for resource in token.resources:
        if resource.get("type") != "TYPE_REPO":
            continue
        path = str(resource.get("path", "")).lower()
        matched = (not repo.is_private) if path == "*/*/public" else fnmatch.fnmatchcase(full, path)
        if matched:
            scopes.extend(resource.get("scopes", []))
    return expand(scopes)


def user_repo_level(state: State, user: User, repo: Repository) -> int:
    """What ``user`` may do with ``repo`` by ownership, org role and team grants (0: nothing)."""
    if repo.namespace == user.username:
        return ADMIN
    level = READ if not repo.is_private else 0
    org = state.org(repo.namespace)
    if org is None:
        return level
    role = org.roles.get(user.username)
    if role in ("owner", "editor"):
        return ADMIN
    if role is None:
        return level
    for team_id, permission in repo.team_permissions.items():
        found = state.teams_by_id.get(team_id)
        if found is not None and user.username in found[1].members:
            level = max(level, _LEVEL[permission])
    return level


def can_see(state: State, who: Principal, repo: Repository) -> bool:
    """Whether ``repo`` appears for ``who`` in lists (no error either way)."""
    if not repo.is_private:
        return who.kind != "pat" or who.pat_rank() >= 1
    if who.user is not None:
        return who.pat_rank() >= _PAT_RANK["repo:read"] and (
            user_repo_level(state, who.user, repo) >= READ
        )
    if who.token is not None:
        # Without scope-repository-list an OAT lists public repositories only (silently).
        return repo.namespace == who.name and "scope-repository-list" in oat_org_scopes(
            who.token, who.name
        )
    return False


def lister(state: State, who: Principal) -> Callable[[Repository], bool]:
    """:func:`can_see` for ``who`` with what depends on the caller alone worked out once (a
    list checks every repository of the namespace: an OAT's scopes expanded per repository
    cost most of a page)."""
    if who.kind == "oat" and who.user is None and who.token is not None:
        listing = "scope-repository-list" in oat_org_scopes(who.token, who.name)
        return lambda repo: not repo.is_private or (listing and repo.namespace == who.name)
    return lambda repo: can_see(state, who, repo)


def check_repo(
    state: State, who: Principal, repo: Repository, need: int, oat_scopes: frozenset[str]
) -> None:
    """Raise unless ``who`` may act on ``repo`` at level ``need`` (READ, WRITE or ADMIN)."""
    if need == READ and not repo.is_private and who.kind != "pat":
        return
    if who.kind == "anonymous":
        if repo.is_private:
            raise not_found("object not found")
        raise HubError(401, "authentication required")
    if who.token is not None:
        held = oat_repo_scopes(who.token, repo)
        if (
            need == READ
            and repo.namespace == who.name
            and "scope-repository-list" in (oat_org_scopes(who.token, who.name))
        ):
            held = held | OAT_REPO_READ
        if held & oat_scopes:
            return
        if repo.is_private and not held:
            raise not_found("object not found")
        raise forbidden("access token has insufficient scopes for this repository")
    assert who.user is not None
    level = user_repo_level(state, who.user, repo)
    if level < need:
        if level == 0:
            raise not_found("object not found")
        raise forbidden("permission denied")
    wanted = (
        "repo:public_read"
        if need == READ and not repo.is_private
        else ("repo:read" if need == READ else "repo:write" if need == WRITE else "repo:admin")
    )
    if who.pat_rank() < _PAT_RANK[wanted]:
        raise forbidden(f"insufficient scope: this operation needs {wanted}")


def require_user(who: Principal) -> User:
    """A user's own credential (password or PAT) is needed; an OAT gets 403."""
    if who.kind == "oat":
        raise forbidden(OAT_NOT_ALLOWED)
    if who.user is None:
        raise HubError(401, "authentication required")
    return who.user


def require_org(state: State, name: str) -> Org:
    """The organization ``name`` or 404."""
    org = state.org(name)
    if org is None:
        raise not_found(f"organization {name!r} not found")
    return org


def check_org(who: Principal, org: Org, *, role: str, oat_scope: str | None) -> None:
    """An org route (members, teams, invites, audit logs).

    A PAT is refused outright; an OAT needs ``oat_scope`` on this org (``None``: OATs refused);
    a password user needs an org role at least ``role``.
    """
    if who.kind == "pat":
        raise forbidden(PAT_NOT_ALLOWED)
    if who.kind == "oat":
        if oat_scope is None:
            raise forbidden(OAT_NOT_ALLOWED)
        assert who.token is not None
        if who.name.lower() != org.name.lower():
            raise forbidden("access token does not belong to this organization")
        if oat_scope not in oat_org_scopes(who.token, org.name):
            raise forbidden(f"access token is missing the scope {oat_scope}")
        return
    if who.user is None:
        raise HubError(401, "authentication required")
    held = org.roles.get(who.user.username)
    if held is None:
        raise forbidden("you are not a member of this organization")
    if _ROLE_RANK.get(held, 1) < _ROLE_RANK[role]:
        raise forbidden(f"only an organization {role} may do this")
