"""The desired-state file: a connection, an organization, and per managed kind its rows.

YAML, validated like a destination config (unknown keys are errors). Each kind names an input
file (CSV, TSV, JSON Lines or Parquet, read by :mod:`sink.source.read`) or gives ``rows``
inline, and says whether deletions are allowed (``prune``, off by default). A kind that is not
named is not managed: nothing of it is read, changed or deleted.

Rows are validated too: an unknown column, a missing key field or the same key twice is an
error naming the row, before anything is read from Hub.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sink import yamltext
from sink.config import ConnectionConfig, PolicyConfig, RetryConfig, describe, resolve_path
from sink.errors import ConfigError

KINDS = (
    "members",
    "teams",
    "team_members",
    "repositories",
    "repository_teams",
    "access_tokens",
    "org_access_tokens",
)
"""The kinds a state file can manage, in the order they are shown."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KindConfig(_Strict):
    """One managed kind: where its rows come from, and whether deletions are allowed."""

    input: str | None = None
    input_format: Literal["csv", "tsv", "jsonl", "parquet"] | None = None
    rows: list[dict[str, Any]] | None = None
    prune: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> KindConfig:
        if (self.input is None) == (self.rows is None):
            raise ValueError("give exactly one of input (a file) or rows (inline)")
        return self


class StateConfig(_Strict):
    """A desired-state file."""

    connection: ConnectionConfig
    org: str = Field(min_length=1)
    namespace: str | None = None
    """The repositories' namespace (default: the organization)."""
    members: KindConfig | None = None
    teams: KindConfig | None = None
    team_members: KindConfig | None = None
    repositories: KindConfig | None = None
    repository_teams: KindConfig | None = None
    access_tokens: KindConfig | None = None
    """The connection's user's personal access tokens (a personal or password connection)."""
    org_access_tokens: KindConfig | None = None
    """The organization's access tokens (an owner's password connection, as Hub asks)."""
    policy: PolicyConfig | None = None
    allow_destructive: bool = False
    concurrency: int = Field(default=16, ge=1, le=256)
    rate_limit: float | None = Field(default=None, gt=0)
    timeout: float = Field(default=30.0, gt=0)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    out: str | None = None
    """Where apply's outputs go (ledger, audit, responses, rejects); default ``out/``."""


# -- rows --------------------------------------------------------------------------------


class MemberRow(_Strict):
    """An organization member (or a person to invite): by username or e-mail, with a role."""

    username: str | None = None
    email: str | None = None
    role: str = "member"

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a role is required")
        return value.strip().lower()

    @model_validator(mode="after")
    def _who(self) -> MemberRow:
        if not self.username and not self.email:
            raise ValueError("give username or email")
        return self

    @property
    def key(self) -> str:
        """Who, as matched against Hub (case does not matter)."""
        return (self.username or self.email or "").casefold()

    @property
    def invitee(self) -> str:
        """What an invite names: the username, else the e-mail address."""
        return self.username or self.email or ""


class TeamRow(_Strict):
    """A team; its description is managed when given."""

    name: str = Field(min_length=1)
    description: str | None = None

    @property
    def key(self) -> str:
        return self.name


class TeamMemberRow(_Strict):
    """A member of a team."""

    team: str = Field(min_length=1)
    username: str = Field(min_length=1)

    @property
    def key(self) -> str:
        return f"{self.team}/{self.username.casefold()}"


class RepositoryRow(_Strict):
    """A repository; each of description, privacy and immutable-tag rules is managed when
    given (``immutable_tags``: a list of rules, or a CSV cell ``v.*,.*-RELEASE``; ``[]`` or
    ``none`` turns immutable tags off)."""

    name: str = Field(min_length=1)
    description: str | None = None
    private: bool | None = None
    immutable_tags: list[str] | None = None

    @field_validator("immutable_tags", mode="before")
    @classmethod
    def _rules(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return orjson.loads(text)
            if text.lower() == "none":
                return []
            return [rule.strip() for rule in text.split(",") if rule.strip()]
        return value

    @property
    def key(self) -> str:
        return self.name


class RepositoryTeamRow(_Strict):
    """A team's permission on a repository (``read``, ``write`` or ``admin``)."""

    repository: str = Field(min_length=1)
    team: str = Field(min_length=1)
    permission: Literal["read", "write", "admin"]

    @property
    def key(self) -> str:
        return f"{self.repository}/{self.team}"


def _listed(value: Any) -> Any:
    """A CSV cell ``a,b`` (or JSON text) as a list."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return orjson.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class TokenRow(_Strict):
    """An access token, by label: whether it is active, and what a new one is created with
    (``scopes`` for a personal token; ``resources`` (JSON) and ``description`` for an
    organization's). The secret of a created token goes to the vault."""

    label: str = Field(min_length=1)
    active: bool = True
    scopes: list[str] | None = None
    resources: list[dict[str, Any]] | None = None
    description: str | None = None
    expires_at: str | None = None

    @field_validator("scopes", mode="before")
    @classmethod
    def _scopes(cls, value: Any) -> Any:
        return _listed(value)

    @field_validator("resources", mode="before")
    @classmethod
    def _resources(cls, value: Any) -> Any:
        return orjson.loads(value) if isinstance(value, str) else value

    @property
    def key(self) -> str:
        return self.label


ROW_MODELS: dict[str, type[BaseModel]] = {
    "access_tokens": TokenRow,
    "org_access_tokens": TokenRow,
    "members": MemberRow,
    "teams": TeamRow,
    "team_members": TeamMemberRow,
    "repositories": RepositoryRow,
    "repository_teams": RepositoryTeamRow,
}


@dataclass
class Kind:
    """A managed kind's rows, by key, and whether deletions are allowed."""

    rows: dict[str, Any]
    prune: bool = False


@dataclass
class DesiredState:
    """A state file, read: its config and, per managed kind, its rows."""

    config: StateConfig
    folder: Path
    name: str
    path: Path
    kinds: dict[str, Kind] = field(default_factory=dict)
    inputs_hash: str = ""
    """A hash of the state file and of every row it manages (what apply checks is unchanged)."""

    @property
    def org(self) -> str:
        return self.config.org

    @property
    def namespace(self) -> str:
        return self.config.namespace or self.config.org

    def rows(self, kind: str) -> dict[str, Any] | None:
        """The rows of ``kind`` by key, or None when it is not managed."""
        managed = self.kinds.get(kind)
        return None if managed is None else managed.rows

    def prune(self, kind: str) -> bool:
        managed = self.kinds.get(kind)
        return managed is not None and managed.prune

    @property
    def out(self) -> Path:
        """Where apply's outputs go."""
        return resolve_path(self.folder, self.config.out) or self.folder / "out"


def load_state(path: str | Path) -> DesiredState:
    """Read and check a state file and the rows of every kind it manages."""
    file = Path(path)
    data, text = yamltext.load_mapping(file, "state file")
    try:
        config = StateConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{file}: " + describe(exc)) from exc
    folder = file.resolve().parent
    state = DesiredState(config, folder, file.stem, file.resolve())
    digest = hashlib.sha256(text)
    for kind in KINDS:
        section: KindConfig | None = getattr(config, kind)
        if section is None:
            continue
        rows = read_rows(kind, section, folder, where=f"{file}: {kind}")
        state.kinds[kind] = Kind(rows, section.prune)
        digest.update(kind.encode())
        for key, row in rows.items():
            digest.update(orjson.dumps([key, row.model_dump()], option=orjson.OPT_SORT_KEYS))
    state.inputs_hash = digest.hexdigest()
    return state


def read_rows(kind: str, section: KindConfig, folder: Path, *, where: str) -> dict[str, Any]:
    """A kind's rows validated and keyed; every problem named with its row in one error."""
    from sink.source.read import read_records
    from sink.source.rows import BadRow

    model = ROW_MODELS[kind]
    raw: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    if section.rows is not None:
        raw = list(enumerate(section.rows))
    else:
        source = resolve_path(folder, section.input)
        assert source is not None
        if str(source) != "-" and not source.exists():
            raise ConfigError(f"{where}.input: no such file {source}")
        for item in read_records(source, section.input_format):
            if isinstance(item, BadRow):
                problems.append(f"row {item.index + 1}: {item.error}")
            else:
                raw.append((item.index, item.data))
    rows: dict[str, Any] = {}
    for index, data in raw:
        # An empty cell of a CSV is "not given".
        given = {name: value for name, value in data.items() if value not in ("", None)}
        try:
            row = model.model_validate(given)
        except ValidationError as exc:
            problems.append(f"row {index + 1}: {describe(exc)}")
            continue
        key = row.key  # type: ignore[attr-defined]
        if key in rows:
            problems.append(f"row {index + 1}: {key} is given twice")
            continue
        rows[key] = row
    if problems:
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise ConfigError(f"{where}: {shown}{more}")
    return rows
