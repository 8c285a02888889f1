"""Plain values passed between the stages: records, requests and outcomes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

JSONObject = dict[str, Any]


NON_IDEMPOTENT = frozenset({"POST", "PATCH"})
"""Methods whose repetition can do something twice. PUT and DELETE (and reads) are idempotent."""


@dataclass(slots=True)
class Record:
    """One input row: its values, its 0-based position in the input and its stable key."""

    index: int
    data: JSONObject
    key: str = ""


@dataclass(slots=True)
class Request:
    """An HTTP request ready to send. Building one never touches the network.

    Treat it as immutable (it is not frozen only because a frozen dataclass costs five times as
    much to create, and a run creates one per record).

    ``url`` is absolute (the connection's base URL joined with the rendered path);
    ``headers`` never hold credentials: authentication is added by the dispatcher.
    """

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    keys: tuple[str, ...]
    template: str
    indexes: tuple[int, ...] = ()
    parts: tuple[Any, ...] = ()
    """For a batch merged on a list field (bulk invites): each record's items, aligned with keys."""


class Status(enum.StrEnum):
    """What became of a record."""

    OK = "ok"
    REJECTED = "rejected"
    FAILED = "failed"
    SKIPPED = "skipped"
    SECRET_LOST = "secret_lost"  # noqa: S105 - a status name, not a password
    """Created on Hub, but its secret never reached the vault: revoke it and create it again."""


@dataclass(slots=True)
class Outcome:
    """The result of one request for the records it carried (secrets already removed)."""

    keys: tuple[str, ...]
    status: Status
    http_status: int | None = None
    body: Any = None
    error: str | None = None
    attempts: int = 0
    duration: float = 0.0
    template: str = ""
    extra: JSONObject = field(default_factory=dict)


@dataclass(slots=True)
class Rejected:
    """A record that was not sent (or was refused): why, and the record as it came in."""

    index: int
    data: JSONObject | None
    error: str
    key: str = ""
    field: str | None = None
    status: int | None = None
    raw: str | None = None
