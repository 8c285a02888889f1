"""Plain values passed between the stages: records, requests, outcomes, how records are
batched, and a created secret on its way to the vault."""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import orjson

JSONObject = dict[str, Any]

REDACTED = "***"
"""What a secret is replaced with wherever it is not the vault."""


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
    idempotent: bool = False
    """A POST or PATCH its template says is safe to send twice (sent again without a look-up)."""
    secrets: tuple[str, ...] = ()
    """The answer's fields that hold a created secret: they go to the vault only."""

    def json_body(self) -> Any:
        """The body parsed as JSON, or None (no body, or one that is not JSON)."""
        if self.body is None:
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None

    def body_field(self, name: str) -> Any:
        """Field ``name`` of a JSON object body, or None."""
        body = self.json_body()
        return body.get(name) if isinstance(body, dict) else None


class Status(enum.StrEnum):
    """What became of a record."""

    OK = "ok"
    REJECTED = "rejected"
    FAILED = "failed"
    SKIPPED = "skipped"
    SECRET_LOST = "secret_lost"  # noqa: S105 - a status name, not a password
    """Created on Hub, but its secret never reached the vault: revoke it and create it again."""


class LedgerState(enum.StrEnum):
    """Where a record stands in the ledger (``sink/send/ledger.py``)."""

    SENT = "sent"
    """Marked before its request left; no answer recorded yet (in doubt after a kill)."""
    DONE = "done"
    """Its effect is on Hub (sent now, found in place, or already absent for a delete)."""
    REJECTED = "rejected"
    """Refused (by sink or by Hub); fix it and run again."""
    FAILED = "failed"
    """Gave up on it; looked up, then sent again by the next run."""


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
    in_doubt: bool = False
    """Sent, and Hub's answer was lost: it may have taken effect (never sent blindly again)."""
    recovered: bool = False
    """An answer was lost, and a look-up found the effect in place."""
    already_existed: bool = False
    """A create met a 409 (or "already exists") and a look-up found the thing in place."""
    already_gone: bool = False
    """A delete met a 404: the thing is absent, as asked."""
    not_sent: bool = False
    """The request never left (only the login did, or the run stopped first)."""
    secret_missing: bool = False
    """A 2xx create-token answer without its secret."""
    secret_lost: bool = False
    """A created secret was not captured (its answer was lost or lacked it)."""
    vault: VaultEntry | None = None
    """A created secret, for the vault only (its repr hides the values)."""

    FLAGS: ClassVar[tuple[str, ...]] = (
        "in_doubt",
        "recovered",
        "already_existed",
        "already_gone",
        "not_sent",
        "secret_missing",
        "secret_lost",
    )

    def flags(self) -> dict[str, bool]:
        """The flags that are set, by name (the responses stream's ``extra``)."""
        return {name: True for name in self.FLAGS if getattr(self, name)}


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


@dataclass(frozen=True)
class Batching:
    """How records share requests: one each, inside a JSON property, or built by user code."""

    mode: Literal["per_record", "json_property", "code"] = "per_record"
    size: int = 1
    property: str | None = None
    extra: Mapping[str, Any] | None = None
    function: str | None = None


class VaultEntry:
    """The secrets of one created token, on their way to the vault.

    Deliberately not a dataclass: JSON encoders (orjson serialises dataclasses) refuse it, and
    its repr hides the secret values, so it cannot leak into the responses stream or a log.
    """

    __slots__ = ("keys", "label", "secrets", "template", "token_id")

    def __init__(
        self,
        keys: tuple[str, ...],
        template: str,
        token_id: str | None,
        label: str | None,
        secrets: Mapping[str, Any],
    ) -> None:
        self.keys = keys
        self.template = template
        self.token_id = token_id
        self.label = label
        self.secrets = dict(secrets)

    @classmethod
    def from_body(
        cls, keys: tuple[str, ...], template: str, body: Any, secrets: Mapping[str, Any]
    ) -> VaultEntry:
        """An entry for a create-token response: the id is ``uuid`` (PAT) or ``id`` (OAT),
        the label ``token_label`` (PAT) or ``label`` (OAT)."""
        token_id = label = None
        if isinstance(body, dict):
            raw_id = body.get("uuid") or body.get("id")
            raw_label = body.get("token_label") or body.get("label")
            token_id = None if raw_id is None else str(raw_id)
            label = None if raw_label is None else str(raw_label)
        return cls(keys, template, token_id, label, secrets)

    def __repr__(self) -> str:
        hidden = ", ".join(f"{name}={REDACTED}" for name in self.secrets)
        return (
            f"VaultEntry(keys={self.keys!r}, template={self.template!r}, "
            f"token_id={self.token_id!r}, label={self.label!r}, {hidden})"
        )

    def to_line(self, written_at: float) -> dict[str, Any]:
        """The vault line: the record key(s), template, token id, label and the secrets."""
        line: dict[str, Any] = {
            "key": self.keys[0] if len(self.keys) == 1 else list(self.keys),
            "template": self.template,
            "token_id": self.token_id,
            "label": self.label,
        }
        for name, value in self.secrets.items():
            if name in line:
                name = f"secret.{name}"
            line[name] = value
        line["written_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(written_at))
        return line
