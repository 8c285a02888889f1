"""One ledger for every worker: a :class:`~sink.send.ledger.Ledger` whose file only the store
opens (:class:`~sink.engine.outputs.Store`, one writer on the driver's node), reached from each
worker through its :class:`~sink.engine.link.Outbox`.

The guarantees are those of ``sink run``: a group of requests is committed ``sent`` before it
leaves (a call: the worker waits for the commit), final states follow their outputs (queued,
posted in order, committed with the next group or at a flush), and a record's past state is
read before it is sent again. A write task that Ray runs again (its worker died, or it raised)
is a resume: what an earlier attempt finished is skipped, what it left ``sent`` is looked up
(:class:`~sink.send.resume.Resume`).

One thing a single process does not need: two tasks must never both own a record. The store
gives each key to the first task that claims it (:meth:`Claims.claim`); a key another task
owns is a duplicate of the input and is not sent again, while a task run again (the same
``owner``) gets its own keys back.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from sink.engine.link import Outbox
from sink.model import LedgerState
from sink.send.ledger import Entry, Ledger


class SharedLedger(Ledger):
    """The worker's side of the shared ledger: the methods of a :class:`Ledger`, carried to the
    store. ``path`` is where the store keeps the file (for messages)."""

    def __init__(self, outbox: Outbox, path: str | Path) -> None:  # no file of its own
        self.path = Path(path)
        self.settle_batch = 1
        self.mode_fixed = False
        self.outbox = outbox

    def flush(self) -> None:
        """Have the store commit every final state this worker settled."""
        self.outbox.call("ledger", "flush")

    def close(self) -> None:
        """Commit what this worker settled (the store closes the file, at the end)."""
        self.flush()

    def states(self, keys: Sequence[str]) -> dict[str, tuple[str, float]]:
        """The state of each key that has a row, with when it was last written."""
        found: dict[str, tuple[str, float]] = self.outbox.call("ledger", "states", list(keys))
        return found

    def get(self, key: str) -> Entry | None:
        """One record's row."""
        entry: Entry | None = self.outbox.call("ledger", "get", key)
        return entry

    def mark_sent(self, keys: Iterable[tuple[str, int | None]], template: str) -> None:
        """Commit that these records' request may leave now, before it does."""
        self.outbox.call("ledger", "mark_sent", list(keys), template)

    def unmark(self, keys: Iterable[str]) -> None:
        """Commit that these records' request never left after all."""
        self.outbox.call("ledger", "unmark", list(keys))

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
        """A record's final state: queued after the outputs it follows, committed by the store
        with the next group marked sent (of any worker) or at a flush."""
        if state not in tuple(LedgerState):
            raise ValueError(f"unknown ledger state {state!r}")
        self.outbox.add(
            "claims", "settle", key, template, state, http_status, resource_id, note, position
        )

    def counts(self) -> dict[str, int]:
        """How many records are in each state."""
        counts: dict[str, int] = self.outbox.call("ledger", "counts")
        return counts

    def attention(self, limit: int = 50) -> Iterator[Entry]:
        """Records that need a look."""
        entries: list[Entry] = self.outbox.call("claims", "attention", limit)
        return iter(entries)

    def notes(self, like: str) -> Iterator[Entry]:
        """Records whose note contains ``like``."""
        entries: list[Entry] = self.outbox.call("claims", "notes", like)
        return iter(entries)

    def claim(self, keys: Sequence[str], owner: str) -> frozenset[str]:
        """Claim ``keys`` for the task ``owner``; returns those another task owns."""
        taken: frozenset[str] = self.outbox.call("claims", "claim", list(keys), owner)
        return taken


class Claims:
    """The store's side: which task owns each key of this run, and the ledger reads that
    return iterators (made lists to travel)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.owners: dict[str, str] = {}

    def claim(self, keys: Sequence[str], owner: str) -> frozenset[str]:
        """Give each key to the first owner that claims it; the keys others own."""
        owners = self.owners
        taken = []
        for key in keys:
            first = owners.setdefault(key, owner)
            if first != owner:
                taken.append(key)
        return frozenset(taken)

    def settle(
        self,
        key: str,
        template: str,
        state: str,
        http_status: int | None,
        resource_id: str | None,
        note: str | None,
        position: int | None,
    ) -> None:
        """:meth:`Ledger.settle` with plain positional values (a tuple travels cheaper than
        keywords)."""
        self.ledger.settle(
            key,
            template,
            state,
            http_status=http_status,
            resource_id=resource_id,
            note=note,
            position=position,
        )

    def attention(self, limit: int = 50) -> list[Entry]:
        """:meth:`Ledger.attention` as a list."""
        return list(self.ledger.attention(limit))

    def notes(self, like: str) -> list[Entry]:
        """:meth:`Ledger.notes` as a list."""
        return list(self.ledger.notes(like))

    def now(self) -> float:
        """The store's clock (Unix time): the ledger's ``updated`` is measured by it."""
        return time.time()
