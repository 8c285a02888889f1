"""The ledger: a durable per-record log in SQLite, for resume and exactly-once effect.

Every record is in one state:

- ``sent``: its request may have left; the outcome is unknown until it is written. A run that
  finds a record ``sent`` looks its effect up before deciding to send it again (a POST or
  PATCH that cannot be looked up stays ``sent`` until the user says ``--resend-unknown``);
- ``done``: its effect is in place (and any secret it created is in the vault);
- ``rejected``: Docker Hub (or sink) refused it; nothing happened, so it may be sent again once
  fixed;
- ``failed``: it did not happen as far as anyone can tell (retries exhausted on answers that
  leave nothing in doubt, or a PUT or DELETE); looked up and sent again on resume.

A record that was never sent has no row. ``sent`` is committed before the request goes out
(:meth:`Ledger.mark_sent` commits); a final state (:meth:`Ledger.settle`) is written after the
vault line is fsync'd, and committed at once. With ``settle_batch=N`` (N > 1) final states are
written, in one statement, and committed with the next ``mark_sent``, after N of them, or at
:meth:`Ledger.flush` or :meth:`Ledger.close`, whichever comes first; a run marks its requests
sent a group at a time, so it commits once per group instead of twice per request. Nothing in a
run waits on a final state being committed; a kill that loses one leaves the record ``sent``
and the next run looks its effect up (so a resume must then check the vault before calling a
created secret lost). The database runs in WAL mode with ``synchronous=NORMAL``: a commit
survives the process being killed at any instant (what the ledger is for); it is not flushed
for a power cut.

The ledger, its SQLite side files and its ``.lock`` file are private: mode 0600 (a wider mode on
an existing one is narrowed), in folders created 0700.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sink.errors import ConfigError, RunInProgress
from sink.model import LedgerState
from sink.outputs.files import narrow_if_present, open_private

SENT: Final = LedgerState.SENT
DONE: Final = LedgerState.DONE
REJECTED: Final = LedgerState.REJECTED
FAILED: Final = LedgerState.FAILED
STATES: Final = tuple(LedgerState)
SECRET_LOST: Final = "secret not captured"  # noqa: S105 - a note's start, not a secret
"""How the note of a ``done`` record whose created secret never reached the vault begins."""

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
DROP INDEX IF EXISTS records_state;
"""
# No index on state: keeping one up to date cost more per request than the reads it sped up
# (``sink status`` scans a 1,000,000-row ledger in a fraction of a second).
_SETTLE = (
    "INSERT INTO records (key, template, state, position, attempts, http_status, resource_id, "
    "note, updated) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
    "state = excluded.state, http_status = excluded.http_status, "
    "resource_id = coalesce(excluded.resource_id, resource_id), note = excluded.note, "
    "updated = excluded.updated"
)
_SIDECARS = ("-wal", "-shm", "-journal")  # the files SQLite keeps beside the database
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

    def __init__(self, path: str | os.PathLike[str], *, settle_batch: int = 1) -> None:
        self.path = Path(path)
        self.settle_batch = max(1, settle_batch)
        # The ledger holds record keys (e-mail addresses, usernames): private, like the vault.
        # SQLite creates its -wal, -shm and -journal files with the database file's mode, so
        # the file is made 0600 before SQLite opens it.
        fd, self.mode_fixed = open_private(self.path, os.O_RDWR, what="the ledger")
        os.close(fd)
        for suffix in _SIDECARS:
            if narrow_if_present(f"{self.path}{suffix}", "the ledger"):
                self.mode_fixed = True
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot open the ledger {self.path}: {exc}") from exc
        self._settled: list[tuple[object, ...]] = []  # final states not written yet

    def flush(self) -> None:
        """Commit the final states settled so far."""
        self._write_settled()
        if self._db.in_transaction:
            self._db.execute("COMMIT")

    def _write_settled(self) -> None:
        # Into the open transaction, in one statement; reads on this connection see them.
        if self._settled:
            if not self._db.in_transaction:
                self._db.execute("BEGIN")
            self._db.executemany(_SETTLE, self._settled)
            self._settled.clear()

    def close(self) -> None:
        """Commit what is pending and close the database."""
        self.flush()
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def states(self, keys: Sequence[str]) -> dict[str, tuple[str, float]]:
        """The state of each key that has a row, with when it was last written."""
        self._write_settled()
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
        self._write_settled()
        row = self._db.execute("SELECT * FROM records WHERE key = ?", (key,)).fetchone()
        return Entry(*row) if row else None

    def mark_sent(self, keys: Iterable[tuple[str, int | None]], template: str) -> None:
        """Commit that these records' request may leave now (before it does), together with
        the final states written since the last commit."""
        now = time.time()
        if not self._db.in_transaction:
            self._db.execute("BEGIN")
        self._db.executemany(
            "INSERT INTO records (key, template, state, position, attempts, updated) "
            "VALUES (?, ?, 'sent', ?, 1, ?) ON CONFLICT (key) DO UPDATE SET "
            "state = 'sent', attempts = attempts + 1, updated = excluded.updated, "
            "position = excluded.position",
            [(key, template, position, now) for key, position in keys],
        )
        self.flush()

    def unmark(self, keys: Iterable[str]) -> None:
        """Commit that these records' request never left after all (``mark_sent`` came, the
        send did not): they are back to never sent."""
        if not self._db.in_transaction:
            self._db.execute("BEGIN")
        self._db.executemany(
            "DELETE FROM records WHERE key = ? AND state = 'sent'", ((key,) for key in keys)
        )
        self.flush()

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
        """Commit a record's final state for this run (with ``settle_batch`` > 1: with the next
        ``mark_sent``, or after that many; see the module docstring)."""
        if state not in STATES:
            raise ValueError(f"unknown ledger state {state!r}")
        self._settled.append(
            (key, template, state, position, http_status, resource_id, note, time.time())
        )
        if len(self._settled) >= self.settle_batch:
            self.flush()

    def counts(self) -> dict[str, int]:
        """How many records are in each state."""
        self._write_settled()
        rows = self._db.execute("SELECT state, count(*) FROM records GROUP BY state")
        counts = {state.value: 0 for state in LedgerState}
        counts.update(rows)
        return counts

    def attention(self, limit: int = 50) -> Iterator[Entry]:
        """Records that need a look: outcome unknown, failed, rejected, or done with a secret
        that was not captured (the token must be revoked and created again)."""
        self._write_settled()
        rows = self._db.execute(
            "SELECT * FROM records WHERE state != 'done' UNION ALL "
            "SELECT * FROM records WHERE state = 'done' AND note LIKE ? "
            "ORDER BY position LIMIT ?",
            (f"{SECRET_LOST}%", limit),
        )
        for row in rows:
            yield Entry(*row)

    def notes(self, like: str) -> Iterator[Entry]:
        """Records whose note contains ``like`` (e.g. lost secrets)."""
        self._write_settled()
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
    number = 1
    while any(Path(f"{target}{suffix}").exists() for suffix in ("", "-wal", "-shm")):
        number += 1  # --fresh twice in one second: keep both old ledgers
        target = path.with_name(f"{path.name}.{stamp}-{number}.bak")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.rename(Path(f"{target}{suffix}"))
    return target


@contextlib.contextmanager
def run_lock(ledger: Path) -> Iterator[None]:
    """Hold the lock of the destination whose ledger is ``ledger`` (a ``.lock`` file beside it)
    for as long as the block runs. Two runs of one destination at once would both find a record
    unsent and both send it; the second is refused instead. The lock goes with the process, so
    a killed run never leaves it behind."""
    lock = Path(f"{ledger}.lock")
    fd, _ = open_private(lock, os.O_RDWR, what="the run lock")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInProgress(
                f"another run of this destination is in progress (it holds {lock}); "
                "wait for it to finish, or stop it, before running again"
            ) from None
        yield
    finally:
        os.close(fd)  # closing the file releases the lock


class NullLedger(Ledger):
    """A ledger that remembers nothing: the same methods, no file. For measuring what the
    ledger costs (``bench/resume.py``); a run with it has no resume and no exactly-once."""

    def __init__(self, path: str | os.PathLike[str], *, settle_batch: int = 1) -> None:
        self.path = Path(path)
        self.settle_batch = settle_batch
        self.mode_fixed = False

    def flush(self) -> None:
        """Nothing to commit."""

    def close(self) -> None:
        """Nothing to close."""

    def states(self, keys: Sequence[str]) -> dict[str, tuple[str, float]]:
        """No record has a row."""
        return {}

    def get(self, key: str) -> Entry | None:
        """No record has a row."""
        return None

    def mark_sent(self, keys: Iterable[tuple[str, int | None]], template: str) -> None:
        """Forget it."""
        for _ in keys:  # a generator's work is done either way
            pass

    def unmark(self, keys: Iterable[str]) -> None:
        """Forget it."""

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
        """Forget it."""

    def counts(self) -> dict[str, int]:
        """Nothing in any state."""
        return {state.value: 0 for state in LedgerState}

    def attention(self, limit: int = 50) -> Iterator[Entry]:
        """Nothing needs attention."""
        return iter(())

    def notes(self, like: str) -> Iterator[Entry]:
        """No notes."""
        return iter(())
