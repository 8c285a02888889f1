"""Destination configs: the saved form of a destination, loaded from YAML with exact messages.

A destination names its connection, a template (or manual settings), the settings the template
needs, how records are prepared and batched, where outputs go, and its limits. Unknown keys are
errors. Relative paths are relative to the config file.

Limits on waiting and on input (see :class:`RetryConfig`):

- ``retry.max_attempts`` (6): failed sends of one request (5xx, dropped, timed out);
- ``retry.max_throttled`` (20): 429 answers one request may get; each waits at least 1 s;
- ``retry.max_seconds`` (300): the time one request may take, and the longest single wait; a
  ``Retry-After`` or quota reset beyond it (or beyond 15 minutes, whatever it says) fails the
  record, or stops the run when the token exchange or the whole quota asks for it;
- ``max_record_bytes`` (1 MiB): the longest line of a JSON Lines input; a longer line is
  rejected with its line number and the reading goes on at the next line, without ever
  holding the long line in memory;
- ``timeout`` (30 s): both the longest silence of the server and the whole of one request
  (connect, send, answer): a response trickling in byte by byte still ends then;
- ``max_response_bytes`` (16 MiB): the largest response body read (as sent and once decoded);
  a larger one fails its attempt, and its effect is looked up like any unanswered request's.

Docker Hub accepts two access tokens with the same label; a run refuses (record by record) to
create a token whose label an active token already has, or that an earlier record of the same
run has, unless ``allow_duplicate_labels: true`` (default false; see :mod:`sink.guard.labels`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    ValidationError,
    field_validator,
    model_validator,
)

from sink import yamltext
from sink.errors import ConfigError
from sink.model import Batching
from sink.origin import DEFAULT_BASE_URL, base_url_problem, normalise
from sink.request.values import parse_headers


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConnectionConfig(_Strict):
    """Where requests go and who sends them. The secret itself is never stored here."""

    base_url: str = DEFAULT_BASE_URL
    identifier: str | None = Field(default=None, description="username, or organization name")
    secret_env: str | None = None
    secret_file: str | None = None
    secret_stdin: bool = False
    name: str | None = Field(default=None, description="a stored connection's instance name")
    kind: Literal["pat", "oat", "password"] | None = None

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        problem = base_url_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return normalise(value)

    @model_validator(mode="after")
    def _one_secret_source(self) -> ConnectionConfig:
        sources = [self.secret_env, self.secret_file, self.secret_stdin or None, self.name]
        if sum(source is not None for source in sources) > 1:
            raise ValueError("give only one of secret_env, secret_file, secret_stdin or name")
        if self.name is None and not self.identifier:
            raise ValueError("identifier (a username or organization name) is required")
        return self


class ManualConfig(_Strict):
    """Manual mode: method, URL, headers and a body template or the record itself."""

    method: Literal["POST", "PUT", "PATCH", "DELETE", "post", "put", "patch", "delete"]
    url: str
    headers: dict[str, str] | str | None = None
    body: Any = None
    body_is_record: bool = False
    idempotent: bool = False
    """Sending a request twice does what sending it once does (see templates/README.md)."""

    @model_validator(mode="after")
    def _body(self) -> ManualConfig:
        if self.body is not None and self.body_is_record:
            raise ValueError("give either body or body_is_record: true, not both")
        return self


class BatchingConfig(_Strict):
    """The grouping mode: one request per record, records inside a JSON property, or code."""

    mode: Literal["per_record", "json_property", "code"] = "per_record"
    property: str | None = None
    extra: dict[str, Any] | None = None
    size: int = Field(default=100, ge=1, le=10_000)
    function: str | None = None

    @model_validator(mode="after")
    def _needs(self) -> BatchingConfig:
        if self.mode == "code" and not self.function:
            raise ValueError("code batching needs function: module:function")
        if self.mode != "code" and self.function:
            raise ValueError("function is only used by code batching")
        if self.mode == "per_record" and (self.property or self.extra):
            raise ValueError("property and extra are only used by json_property batching")
        return self

    def to_batching(self) -> Batching:
        """The renderer's view of this section."""
        if self.mode == "per_record":
            return Batching()
        return Batching(
            mode=self.mode,
            size=self.size,
            property=self.property,
            extra=self.extra,
            function=self.function,
        )


class ResponsesConfig(_Strict):
    """Where the responses stream goes: a file, or a webhook that receives each line."""

    file: str | None = None
    webhook: str | None = None
    undelivered: str | None = None
    """Webhook only: where lines the webhook did not take are kept (JSON Lines, mode 0600;
    default ``out/NAME-responses-undelivered.jsonl``)."""
    timeout: PositiveFloat = 10.0
    """Webhook only: the seconds one POST to the webhook may take, from start to end."""

    @field_validator("webhook")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        from sink.outputs.webhook import webhook_url_problem  # here: outputs is not needed to load

        problem = None if value is None else webhook_url_problem(value)
        if problem is not None:
            raise ValueError(f"the webhook URL {problem}")
        return value

    @model_validator(mode="after")
    def _one(self) -> ResponsesConfig:
        if (self.file is None) == (self.webhook is None):
            raise ValueError("give exactly one of file or webhook")
        return self


class RetryConfig(_Strict):
    """Retry limits for transient failures.

    ``max_attempts``: sends of one request that fail (5xx, dropped connection, timeout) before
    it fails. ``max_throttled``: 429 answers one request may get before it fails (429s do not
    use up ``max_attempts``; each waits its ``Retry-After``, and at least one second).
    ``max_seconds``: the time one request may take, retries and waits included; it is also
    the longest single wait: a ``Retry-After`` (or a quota reset) further away than this, or
    than 15 minutes (``sink.send.pacing.MAX_WAIT``), is not waited for: the record fails, or the run
    stops when it is the token exchange or the whole quota that asks.
    """

    max_attempts: int = Field(default=6, ge=1, le=100)
    max_throttled: int = Field(default=20, ge=1, le=1000)
    max_seconds: PositiveFloat = 300.0


class PolicyConfig(_Strict):
    """What this destination may do; every request is checked before it is sent."""

    templates: list[str] | None = None
    methods: list[Literal["POST", "PUT", "PATCH", "DELETE"]] | None = None
    namespaces: list[str] | None = None
    repositories: list[str] | None = None
    organizations: list[str] | None = None
    teams: list[str] | None = None
    read_only: bool = False

    @field_validator("namespaces", "organizations", "teams")
    @classmethod
    def _name_patterns(cls, value: list[str] | None) -> list[str] | None:
        return cls._segment_patterns(value, 1)

    @field_validator("repositories")
    @classmethod
    def _repository_patterns(cls, value: list[str] | None) -> list[str] | None:
        return cls._segment_patterns(value, 2)

    @staticmethod
    def _segment_patterns(value: list[str] | None, segments: int) -> list[str] | None:
        # A glob matches within one path segment (a `*` never crosses `/`): a pattern has as
        # many segments as the names it matches, each non-empty.
        shape = "namespace/name" if segments == 2 else "a single name, without /"
        for pattern in value or ():
            parts = pattern.split("/")
            if len(parts) != segments or any(part in ("", ".", "..") for part in parts):
                raise ValueError(f"{pattern!r} is not {shape} (a glob matches within one segment)")
        return value


class DestinationConfig(_Strict):
    """One destination: a connection, what to call, and how."""

    connection: ConnectionConfig
    template: str | None = None
    manual: ManualConfig | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    exclude: list[str] = Field(default_factory=list)
    key_field: str | None = None
    headers: dict[str, str] | str | None = None
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    input: str | None = None
    input_format: Literal["csv", "tsv", "jsonl", "parquet"] | None = None
    responses: ResponsesConfig | None = None
    vault: str | None = None
    rejects: str | None = None
    ledger: str | None = None
    audit: str | None = None
    concurrency: int = Field(default=16, ge=1, le=256)
    rate_limit: PositiveFloat | None = Field(default=None, description="requests per second")
    timeout: PositiveFloat = 30.0
    retry: RetryConfig = Field(default_factory=RetryConfig)
    max_record_bytes: int = Field(default=1 << 20, ge=64, le=1 << 30)
    """The longest JSON Lines input line (bytes); a longer one is rejected with its line number."""
    max_response_bytes: int = Field(default=16 << 20, ge=1024, le=1 << 30)
    """The largest response body read (bytes), as sent and once decoded."""
    allow_destructive: bool = False
    allow_duplicate_labels: bool = False
    """Create a token even when a live token already has its label (:mod:`sink.guard.labels`)."""
    policy: PolicyConfig | None = None

    @model_validator(mode="after")
    def _template_or_manual(self) -> DestinationConfig:
        if (self.template is None) == (self.manual is None):
            raise ValueError("give exactly one of template (an id from `sink templates`) or manual")
        return self

    @property
    def extra_headers(self) -> dict[str, str]:
        """The configured extra headers as a mapping."""
        return parse_headers(self.headers)


def load_config(path: str | os.PathLike[str]) -> tuple[DestinationConfig, Path]:
    """Read and check a destination config; returns it with the folder its paths are relative to."""
    file = Path(path)
    data, _ = yamltext.load_mapping(file, "config file")
    return parse_config(data, source=str(file)), file.resolve().parent


def parse_config(data: dict[str, Any], *, source: str = "config") -> DestinationConfig:
    """Validate a config mapping; every problem is named in plain words in one ConfigError."""
    try:
        return DestinationConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: " + describe(exc)) from exc


def describe(exc: ValidationError) -> str:
    """Pydantic's errors as plain lines: ``where: what``."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "config"
        if error["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key (check its spelling)")
        elif error["type"] == "missing":
            lines.append(f"{where}: required")
        else:
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {message}")
    return "; ".join(lines)


def resolve_path(base: Path, value: str | None) -> Path | None:
    """A config path made absolute against the config's folder; ``-`` and None pass through."""
    if value is None:
        return None
    if value == "-":
        return Path("-")
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base / path
