"""Domain objects as the JSON bodies Hub answers with (names and shapes from the spec)."""

from __future__ import annotations

from typing import Any

from sink.hubsim.access import (
    ADMIN,
    OAT_REPO_READ,
    READ,
    WRITE,
    Principal,
    oat_repo_scopes,
    user_repo_level,
)
from sink.hubsim.state import (
    Invite,
    Org,
    OrgToken,
    PersonalToken,
    Repository,
    State,
    Tag,
    Team,
    User,
)

_ROLE_LABEL = {"owner": "Owner", "editor": "Editor", "member": "Member"}


def permissions_for(state: State, who: Principal, repo: Repository) -> dict[str, bool]:
    """``repo_permissions`` of the caller."""
    if who.user is not None:
        level = user_repo_level(state, who.user, repo)
    elif who.token is not None:
        level = READ if not repo.is_private else 0
        held = oat_repo_scopes(who.token, repo)
        if held & OAT_REPO_READ:
            level = READ
        if held & {"scope-image-push", "scope-repository-edit"}:
            level = WRITE
        if held & {"scope-repository-admin"}:
            level = ADMIN
    else:
        level = READ if not repo.is_private else 0
    return {"read": level >= READ, "write": level >= WRITE, "admin": level >= ADMIN}


def repository_info(state: State, who: Principal, repo: Repository) -> dict[str, Any]:
    """``repository_info`` (get, create, immutable-tags update)."""
    return {
        "user": repo.namespace,
        "name": repo.name,
        "namespace": repo.namespace,
        "repository_type": "image",
        "status": 1,
        "status_description": "active",
        "description": repo.description,
        "is_private": repo.is_private,
        "is_automated": False,
        "star_count": repo.star_count,
        "pull_count": repo.pull_count,
        "last_updated": repo.last_updated,
        "last_modified": repo.last_modified or repo.last_updated,
        "date_registered": repo.date_registered,
        "collaborator_count": 0,
        "affiliation": None,
        "hub_user": repo.namespace,
        "has_starred": False,
        "full_description": repo.full_description or None,
        "permissions": permissions_for(state, who, repo),
        "media_types": _media_types(repo),
        "content_types": ["image"] if repo.tags else [],
        "categories": [],
        "immutable_tags_settings": {
            "enabled": repo.immutable_tags,
            "rules": list(repo.immutable_rules),
        },
        "storage_size": _storage(repo),
        "source": None,
    }


def repository_entry(repo: Repository) -> dict[str, Any]:
    """``repository_list_entry``."""
    return {
        "name": repo.name,
        "namespace": repo.namespace,
        "repository_type": "image",
        "status": 1,
        "status_description": "active",
        "description": repo.description,
        "is_private": repo.is_private,
        "star_count": repo.star_count,
        "pull_count": repo.pull_count,
        "last_updated": repo.last_updated if repo.tags else None,
        "last_modified": repo.last_modified or repo.last_updated,
        "date_registered": repo.date_registered,
        "affiliation": "",
        "media_types": _media_types(repo),
        "content_types": ["image"] if repo.tags else [],
        "categories": [],
        "storage_size": _storage(repo),
    }


def _media_types(repo: Repository) -> list[str]:
    return ["application/vnd.oci.image.index.v1+json"] if repo.tags else []


def _storage(repo: Repository) -> int:
    return sum(t.size for t in repo.tags.values())


def tag_view(repo: Repository, tag: Tag) -> dict[str, Any]:
    """``tag`` in the shape Hub returns (newer spec: ``images`` array, ``v2`` bool,
    ``tag_status``)."""
    return {
        "creator": tag.creator,
        "id": tag.id,
        "images": [
            {
                "architecture": tag.architecture,
                "features": "",
                "variant": None,
                "digest": tag.digest,
                "os": tag.os,
                "os_features": "",
                "os_version": None,
                "size": tag.size,
                "status": "active",
                "last_pulled": tag.last_pulled,
                "last_pushed": tag.last_updated,
            }
        ],
        "last_updated": tag.last_updated,
        "last_updater": tag.creator,
        "last_updater_username": tag.last_updater_username,
        "name": tag.name,
        "repository": repo.id,
        "full_size": tag.size,
        "v2": True,
        "tag_status": "active",
        "tag_last_pulled": tag.last_pulled,
        "tag_last_pushed": tag.last_updated,
        "media_type": "application/vnd.oci.image.index.v1+json",
        "content_type": "image",
        "digest": tag.digest,
    }


def user_fields(user: User) -> dict[str, Any]:
    """The spec's ``user`` object."""
    return {
        "id": user.id,
        "company": user.company,
        "date_joined": user.date_joined,
        "full_name": user.full_name,
        "gravatar_email": "",
        "gravatar_url": "",
        "location": user.location,
        "profile_url": "",
        "type": "User",
        "username": user.username,
    }


def org_member(org: Org, user: User, groups: list[str] | None = None) -> dict[str, Any]:
    """``org_member``; the role is capitalised (custom roles are shown as they are named).

    ``groups`` (the user's team names) is computed from the org when not given."""
    role = org.roles.get(user.username, "member")
    view = user_fields(user)
    if groups is None:
        groups = [t.name for t in org.teams.values() if user.username in t.members]
    view.update(
        {
            "email": user.email,
            "role": _ROLE_LABEL.get(role, role),
            "groups": groups,
            "is_guest": False,
            "primary_email": user.email,
        }
    )
    return view


def invitee_member(invite: Invite, user: User | None) -> dict[str, Any]:
    """A pending invitee as an ``org_member`` row (``role: Invitee``)."""
    email = invite.invitee if "@" in invite.invitee else (user.email if user else "")
    view: dict[str, Any] = (
        user_fields(user)
        if user is not None
        else {
            "id": "",
            "company": "",
            "date_joined": "",
            "full_name": "",
            "gravatar_email": "",
            "gravatar_url": "",
            "location": "",
            "profile_url": "",
            "type": "User",
            "username": "" if "@" in invite.invitee else invite.invitee,
        }
    )
    view.update(
        {
            "email": email,
            "role": "Invitee",
            "groups": [invite.team] if invite.team else [],
            "is_guest": False,
            "primary_email": email,
        }
    )
    return view


def group_member(user: User, *, with_email: bool) -> dict[str, Any]:
    """``group_member``: user fields, plus ``email`` for owners."""
    view = user_fields(user)
    if with_email:
        view["email"] = user.email
    return view


def org_group(team: Team) -> dict[str, Any]:
    """``org_group`` (newer: ``role``)."""
    return {
        "id": team.id,
        "uuid": team.uuid,
        "name": team.name,
        "description": team.description,
        "member_count": len(team.members),
        "role": team.role,
    }


def invite_view(invite: Invite) -> dict[str, Any]:
    """``invite``."""
    return {
        "id": invite.id,
        "inviter_username": invite.inviter_username,
        "invitee": invite.invitee,
        "org": invite.org,
        "team": invite.team,
        "role": invite.role,
        "created_at": invite.created_at,
    }


def pat_view(pat: PersonalToken, *, with_secret: bool = False) -> dict[str, Any]:
    """``accessToken``; the secret only in the create answer (stored spec: ``""`` elsewhere)."""
    view: dict[str, Any] = {
        "uuid": pat.uuid,
        "client_id": pat.client_id,
        "creator_ip": pat.creator_ip,
        "creator_ua": pat.creator_ua,
        "created_at": pat.created_at,
        "last_used": pat.last_used,
        "generated_by": pat.generated_by,
        "is_active": pat.is_active,
        "token": pat.token if with_secret else "",
        "token_label": pat.label,
        "scopes": list(pat.scopes),
    }
    if pat.expires_at is not None:
        view["expires_at"] = pat.expires_at
    return view


def oat_view(
    oat: OrgToken, *, with_resources: bool = True, with_secret: bool = False
) -> dict[str, Any]:
    """``orgAccessToken`` (+ ``resources``; + ``token`` only when just created)."""
    view: dict[str, Any] = {
        "id": oat.id,
        "label": oat.label,
        "description": oat.description,
        "created_by": oat.created_by,
        "is_active": oat.is_active,
        "created_at": oat.created_at,
        "expires_at": oat.expires_at,
        "last_used_at": oat.last_used_at,
    }
    if with_resources:
        view["resources"] = [dict(r) for r in oat.resources]
    if with_secret:
        view["token"] = oat.token
    return view
