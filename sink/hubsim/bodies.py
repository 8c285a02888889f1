"""Request bodies, written from the spec's request schemas (independent of ``sink.request.schema``).

Types are strict (a JSON string is not a boolean); unknown fields are ignored, as Hub does.
Where the stored spec and its newer revision differ, the newer (stricter) rule is used and the
README's table says so.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, TypeVar

import orjson
import pydantic
from pydantic import AfterValidator, Field
from starlette.requests import Request

from sink.hubsim.errors import HubError, Shape
from sink.hubsim.state import parse_time


def _date_time(value: str) -> str:
    try:
        parse_time(value)
    except ValueError as exc:
        raise ValueError("must be an RFC 3339 date-time, e.g. 2030-01-01T00:00:00Z") from exc
    if "T" not in value and "t" not in value:
        raise ValueError("must be an RFC 3339 date-time, e.g. 2030-01-01T00:00:00Z")
    return value


DateTime = Annotated[str, AfterValidator(_date_time)]


class Body(pydantic.BaseModel):
    """Base of every request body: strict JSON types, unknown fields ignored."""

    model_config = pydantic.ConfigDict(strict=True, extra="ignore")


class TokenRequest(Body):
    """``POST /v2/auth/token``."""

    identifier: str
    secret: str


class LoginRequest(Body):
    """``POST /v2/users/login`` (``UsersLoginRequest``)."""

    username: str
    password: str


class RepoCreate(Body):
    """``repo_creation_request``."""

    name: str = Field(min_length=2, max_length=255, pattern=r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
    namespace: str
    description: str = Field(default="", max_length=100)
    full_description: str = Field(default="", max_length=25000)
    registry: str = "docker.io"
    is_private: bool = False


class RepoGroupCreate(Body):
    """``RepositoryGroupCreationRequest``."""

    group_id: int
    permission: Literal["read", "write", "admin"]


class ImmutableTagsUpdate(Body):
    """``update_repository_immutable_tags_request``."""

    immutable_tags: bool
    immutable_tags_rules: list[str]


class ImmutableTagsVerify(Body):
    """``immutable_tags_verify_request`` (newer pattern: no commas)."""

    regex: str = Field(pattern=r"^[^,]*$")


class PatCreate(Body):
    """``createAccessTokenRequest``."""

    token_label: str = Field(min_length=1, max_length=100)
    scopes: list[str]
    expires_at: DateTime | None = None


class PatPatch(Body):
    """``patchAccessTokenRequest``."""

    token_label: str | None = Field(default=None, min_length=1, max_length=100)
    is_active: bool | None = None


class OatResource(Body):
    """``orgAccessTokenResource``: all three fields required."""

    type: Literal["TYPE_REPO", "TYPE_ORG"]
    path: str = Field(min_length=1)
    scopes: list[str] = Field(min_length=1)


class OatCreate(Body):
    """``createOrgAccessTokenRequest`` (newer: ``label`` and ``resources`` required, >= 1)."""

    label: str = Field(min_length=1)
    description: str = ""
    resources: list[OatResource] = Field(min_length=1)
    expires_at: DateTime | None = None


class OatPatch(Body):
    """``updateOrgAccessTokenRequest``."""

    label: str | None = Field(default=None, min_length=1)
    description: str | None = None
    resources: list[OatResource] | None = Field(default=None, min_length=1)
    is_active: bool | None = None


_TEAM_NAME = Field(min_length=1, max_length=100, pattern=r"^[^/\s]+$")


class TeamCreate(Body):
    """Create a group: ``name`` required."""

    name: str = _TEAM_NAME
    description: str = ""


class TeamPut(Body):
    """Replace a group: ``name`` required; a missing description becomes empty."""

    name: str = _TEAM_NAME
    description: str = ""


class TeamPatch(Body):
    """Update some of a group (newer: ``role``)."""

    name: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[^/\s]+$")
    description: str | None = None
    role: str | None = None


class TeamMemberAdd(Body):
    """``add_member_to_org_group``."""

    member: str = Field(min_length=1)


class MemberRole(Body):
    """Update a member's role: a core role or one of the org's custom roles (newer)."""

    role: str = Field(min_length=1)


class BulkInvite(Body):
    """``bulk_invite_request``."""

    org: str = Field(min_length=1)
    invitees: list[str] = Field(min_length=1)
    team: str | None = None
    role: str | None = None
    dry_run: bool = False


class RestrictedImages(Body):
    """``restricted_images``, every flag required on PUT."""

    enabled: bool
    allow_official_images: bool
    allow_verified_publishers: bool


class OrgSettingsPut(Body):
    """``PUT /v2/orgs/{name}/settings``."""

    restricted_images: RestrictedImages


M = TypeVar("M", bound=Body)

JSON_MEDIA_TYPES = ("application/json",)


async def json_body(request: Request) -> bytes:
    """The request's body, refused with 415 (as a strict Hub does) when it is not empty and
    its ``Content-Type`` is not ``application/json`` (or a ``+json`` type)."""
    raw = await request.body()
    if raw:
        given = request.headers.get("content-type", "")
        media = given.split(";", 1)[0].strip().lower()
        if media not in JSON_MEDIA_TYPES and not media.endswith("+json"):
            raise HubError(
                415,
                f'Unsupported media type "{given}" in request; a JSON body needs '
                "Content-Type: application/json",
            )
    return raw


def parse(raw: bytes, model: type[M], shape: Shape | None = None) -> M:
    """Validate a JSON request body against ``model``; 400 in Hub's shape if it does not fit."""
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise HubError(400, f"request body is not valid JSON: {exc}", shape=shape) from exc
    if not isinstance(data, dict):
        raise HubError(400, "request body must be a JSON object", shape=shape)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        fields: dict[str, list[str]] = {}
        for err in exc.errors(include_url=False):
            where = ".".join(str(part) for part in err["loc"]) or "body"
            fields.setdefault(where, []).append(_message(err))
        first = next(iter(fields.items()))
        raise HubError(400, f"{first[0]}: {first[1][0]}", fields=fields, shape=shape) from exc


def _message(err: object) -> str:
    assert isinstance(err, dict)
    kind = err.get("type", "")
    if kind == "missing":
        return "This field is required."
    text = str(err.get("msg", "invalid value"))
    return re.sub(r"^Value error, ", "", text)
