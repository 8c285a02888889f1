"""The ledger: a durable per-record log in SQLite, for resume and exactly-once effect.

Every record is in one state:

- ``sent``: its request may have left; the outcome is unknown until it is written. A run that
  finds a record ``sent`` looks its effect up before deciding to send it again;
- ``done``: its effect is in place (and any secret it created is in the vault);
- ``rejected``: Docker Hub (or sink) refused it; nothing happened, so it may be sent again once
  fixed;
- ``failed``: it could not be settled (retries exhausted, look-up impossible); retried on resume.

A record that was never sent has no row. Writes are committed before the step that depends on
them (``sent`` before the request goes out, ``done`` after the vault line is fsync'd). The
database runs in WAL mode with ``synchronous=NORMAL``: a commit survives the process being
killed at any instant (what the ledger is for); it is not flushed for a power cut.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sink.errors import ConfigError

SENT: Final = "sent"
DONE: Final = "done"
REJECTED: Final = "rejected"
FAILED: Final = "failed"
STATES: Final = (SENT, DONE, REJECTED, FAILED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    key TEXT PRIMARY KEY,
    template TEXT NOT NULL,
    state TEXT NOT NULL,
    position INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    http_status INTEGER,
    resource_id TEXT,
    note TEXT,
    updated REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_state ON records (state) WHERE state != 'done';
"""
_CHUNK = 500  # keys per look-up query (SQLite allows 32,766 variables; smaller is faster here)


@dataclass(frozen=True)
class Entry:
    """One record's row."""

    key: str
    template: str
    state: str
    position: int | None
    attempts: int
    http_status: int | None
    resource_id: str | None
    note: str | None
    updated: float


class Ledger:
    """One destination's ledger file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot open the ledger {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the database (everything is already committed)."""
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def states(self, keys: Sequence[str]) -> dict[str, tuple[str, float]]:
        """The state of each key that has a row, with when it was last written."""
        found: dict[str, tuple[str, float]] = {}
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, state, updated FROM records WHERE key IN ({marks})",  # noqa: S608
                chunk,
            )
            for key, state, updated in rows:
                found[key] = (state, updated)
        return found

    def get(self, key: str) -> Entry | None:
        """One record's row."""
        row = self._db.execute("SELECT * FROM records WHERE key = ?", (key,)).fetchone()
        return Entry(*row) if row else None

    def mark_sent(self, keys: Iterable[tuple[str, int | None]], template: str) -> None:
        """Commit that these records' request may leave now (before it does)."""
        now = time.time()
        self._db.executemany(
            "INSERT INTO records (key, template, state, position, attempts, updated) "
            "VALUES (?, ?, 'sent', ?, 1, ?) ON CONFLICT (key) DO UPDATE SET "
            "state = 'sent', attempts = attempts + 1, updated = excluded.updated, "
            "position = excluded.position",
            [(key, template, position, now) for key, position in keys],
        )

    def settle(
        self,
        key: str,
        template: str,
        state: str,
        *,
        http_status: int | None = None,
        resource_id: str | None = None,
        note: str | None = None,
        position: int | None = None,
    ) -> None:
        """Commit a record's final state for this run."""
        if state not in STATES:
            raise ValueError(f"unknown ledger state {state!r}")
        self._db.execute(
            "INSERT INTO records (key, template, state, position, attempts, http_status, "
            "resource_id, note, updated) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET state = excluded.state, "
            "http_status = excluded.http_status, "
            "resource_id = coalesce(excluded.resource_id, resource_id), "
            "note = excluded.note, updated = excluded.updated",
            (key, template, state, position, http_status, resource_id, note, time.time()),
        )

    def counts(self) -> dict[str, int]:
        """How many records are in each state."""
        rows = self._db.execute("SELECT state, count(*) FROM records GROUP BY state")
        counts = dict.fromkeys(STATES, 0)
        counts.update(rows)
        return counts

    def attention(self, limit: int = 50) -> Iterator[Entry]:
        """Records that need a look: outcome unknown, failed, or rejected."""
        rows = self._db.execute(
            "SELECT * FROM records WHERE state != 'done' ORDER BY position LIMIT ?", (limit,)
        )
        for row in rows:
            yield Entry(*row)

    def notes(self, like: str) -> Iterator[Entry]:
        """Records whose note contains ``like`` (e.g. lost secrets)."""
        rows = self._db.execute(
            "SELECT * FROM records WHERE note LIKE ? ORDER BY position", (f"%{like}%",)
        )
        for row in rows:
            yield Entry(*row)


def start_fresh(path: Path) -> Path | None:
    """Move an existing ledger aside (``NAME.TIMESTAMP.bak``) so a run starts anew."""
    if not path.exists():
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.{stamp}.bak")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.rename(Path(f"{target}{suffix}"))
    return target
