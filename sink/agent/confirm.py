"""Two-step writes: a confirmation token bound to one exact request, single-use, expiring.

A write tool called without ``confirm`` sends nothing: the gateway renders the request, asks
the policy and the guards, and :meth:`Confirmations.issue` returns a token bound to a digest of
that request (tool, method, URL, body). The same call with ``confirm`` set to the token is
checked (:meth:`Confirmations.check`: known, unexpired, unused, the same request) and then
spent (:meth:`Confirmations.spend`) just before the request goes to the send core.

Tokens are random (``sinkc_`` and 32 url-safe characters); only their SHA-256 is stored, in the
agent's state folder (SQLite, 0600), so a server started again after a dropped connection still
knows which tokens were spent, and under which ledger key their request went: a retried call
with a spent token never sends anything new (the ledger settles a request left in doubt).
A token is not a Docker Hub credential; it lets nothing happen that the agent could not ask for.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sink.errors import ConfigError, ToolRefused
from sink.model import Request
from sink.outputs.files import open_private

PREFIX = "sinkc_"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS confirmations (
    hash TEXT PRIMARY KEY,
    tool TEXT NOT NULL,
    digest TEXT NOT NULL,
    expires REAL NOT NULL,
    spent REAL
);
"""


def request_digest(tool: str, request: Request) -> str:
    """What a token is bound to: the tool and the exact request (method, URL, body)."""
    hashed = hashlib.sha256()
    for part in (tool, request.method.upper(), request.url):
        hashed.update(part.encode())
        hashed.update(b"\0")
    hashed.update(request.body or b"")
    return hashed.hexdigest()


@dataclass(frozen=True)
class Confirmation:
    """A token's record: its public id (the ledger key's tail), tool, request digest, expiry
    (Unix time) and when it was spent."""

    id: str
    tool: str
    digest: str
    expires: float
    spent: float | None = None

    @property
    def key(self) -> str:
        """The ledger key of the request this token confirms."""
        return f"mcp:{self.id}"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Confirmations:
    """The confirmation tokens of one agent (see the module)."""

    def __init__(
        self, path: str | os.PathLike[str], *, ttl: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.ttl = ttl
        self.clock = clock
        fd, _ = open_private(self.path, os.O_RDWR, what="the confirmations file")
        os.close(fd)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot open the confirmations file {self.path}: {exc}") from exc

    def issue(self, tool: str, digest: str) -> tuple[str, Confirmation]:
        """A new token for ``digest``; the token itself is returned once and never stored."""
        now = self.clock()
        # Expired tokens are forgotten; spent ones are kept: their ids are ledger keys.
        self._db.execute(
            "DELETE FROM confirmations WHERE spent IS NULL AND expires < ?", (now - self.ttl,)
        )
        token = PREFIX + secrets.token_urlsafe(24)
        hashed = _hash(token)
        confirmation = Confirmation(hashed[:20], tool, digest, now + self.ttl)
        self._db.execute(
            "INSERT INTO confirmations (hash, tool, digest, expires) VALUES (?, ?, ?, ?)",
            (hashed, tool, digest, confirmation.expires),
        )
        return token, confirmation

    def check(self, token: str, tool: str, digest: str) -> Confirmation:
        """The confirmation ``token`` stands for, if it confirms this request; a spent one is
        returned as it is (its ``spent`` set: the caller decides). Raises :class:`ToolRefused`
        for a token that is unknown, expired, or for another tool or request."""
        row = self._db.execute(
            "SELECT hash, tool, digest, expires, spent FROM confirmations WHERE hash = ?",
            (_hash(token.strip()),),
        ).fetchone()
        if row is None:
            raise ToolRefused(
                "the confirmation token is unknown (a typo, or one this agent never got): call "
                "the tool without confirm to get one",
                rule="confirmation: unknown token",
            )
        hashed, bound_tool, bound_digest, expires, spent = row
        confirmation = Confirmation(hashed[:20], bound_tool, bound_digest, expires, spent)
        if bound_tool != tool or bound_digest != digest:
            raise ToolRefused(
                "the confirmation token was given for another request: these arguments make a "
                "different request; call the tool without confirm to get a token for it",
                rule="confirmation: bound to another request",
            )
        if spent is None and self.clock() > expires:
            raise ToolRefused(
                "the confirmation token has expired: call the tool without confirm to get a "
                "new one",
                rule="confirmation: expired",
            )
        return confirmation

    def spend(self, confirmation: Confirmation) -> Confirmation:
        """Mark the token spent, once: a second spend (a replay racing the first) refuses."""
        now = self.clock()
        changed = self._db.execute(
            "UPDATE confirmations SET spent = ? WHERE substr(hash, 1, 20) = ? AND spent IS NULL",
            (now, confirmation.id),
        ).rowcount
        if changed != 1:
            raise ToolRefused(
                "the confirmation token was already used", rule="confirmation: already used"
            )
        return Confirmation(
            confirmation.id, confirmation.tool, confirmation.digest, confirmation.expires, now
        )

    def close(self) -> None:
        """Close the file."""
        self._db.close()
