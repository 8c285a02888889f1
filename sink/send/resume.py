"""Resume: what past runs of a destination left behind, settled before anything is sent again.

For each chunk of input records, :meth:`Resume.past_runs` reads their states from the ledger:
records a past run finished are skipped; records it left ``sent`` (outcome unknown) or
``failed`` (it may have reached Hub) are looked up on Hub, side by side, and only those whose
effect is not there (or cannot be there twice) go on to be sent.
"""

from __future__ import annotations

import asyncio

import orjson

from sink.destination import Destination
from sink.errors import RejectRecord
from sink.model import Record, Rejected
from sink.outputs.results import Recorder
from sink.outputs.vault import vault_keys
from sink.read.hub import HubReader
from sink.send.core import look_up_effect
from sink.send.ledger import DONE, FAILED, REJECTED, SECRET_LOST, SENT, Ledger


class Resume:
    """Settles, chunk by chunk, the records past runs of ``destination`` left unfinished.

    ``started`` is this run's start (Unix time): a record the ledger says was settled after it
    appears twice in the input. ``resend_unknown``: the user checked on Hub that the records a
    past run left in doubt did not happen, so they are sent again.
    """

    def __init__(
        self,
        destination: Destination,
        reader: HubReader,
        ledger: Ledger,
        recorder: Recorder,
        *,
        started: float,
        resend_unknown: bool = False,
    ) -> None:
        self.destination = destination
        self.reader = reader
        self.ledger = ledger
        self.recorder = recorder
        self.started = started
        self.resend_unknown = resend_unknown
        self.template_id = destination.template_id
        self._risky = not destination.idempotent
        self._concurrency = destination.config.concurrency
        self._vault_keys: frozenset[str] | None = None
        # With a key field, two records may share a key and differ: the first of each key this
        # run saw (its position and a digest of its values) tells a repeat from a conflict.
        # Without one, the key is a digest of the values, so a repeated key is a repeat.
        self._first: dict[str, tuple[int, int]] | None = (
            {} if destination.config.key_field else None
        )

    async def past_runs(self, chunk: list[Record | Rejected]) -> list[Record | Rejected]:
        """Drop records a past run finished; settle those it left in flight; no duplicates."""
        counts = self.recorder.counts
        keys = [item.key for item in chunk if isinstance(item, Record)]
        states = self.ledger.states(keys)
        seen: set[str] = set()
        todo: list[Record | Rejected] = []
        doubtful: dict[int, tuple[Record, str]] = {}  # position in todo → record, its state
        for item in chunk:
            if isinstance(item, Rejected):
                todo.append(item)
                continue
            state, updated = states.get(item.key, (None, 0.0))
            conflict = self._conflict(item)
            if conflict is not None:
                todo.append(conflict)
                continue
            if item.key in seen or (state is not None and updated >= self.started):
                counts.records += 1
                counts.duplicates += 1
                continue
            seen.add(item.key)
            if state == DONE:
                counts.records += 1
                counts.done_before += 1
                continue
            if state in (SENT, FAILED):
                doubtful[len(todo)] = (item, state)
            todo.append(item)
        if not doubtful:
            return todo
        # Their effects are looked up side by side, as many at once as the run sends.
        limit = asyncio.Semaphore(self._concurrency)

        async def settle(record: Record, state: str) -> bool:
            async with limit:
                return await self._settle(record, state)

        send = await asyncio.gather(*(settle(*pair) for pair in doubtful.values()))
        dropped = {at for at, again in zip(doubtful, send, strict=True) if not again}
        return [item for at, item in enumerate(todo) if at not in dropped]

    def _conflict(self, record: Record) -> Rejected | None:
        """A record whose key an earlier record of this input has, with other values: rejected
        without a key, so the ledger keeps the earlier record's state."""
        if self._first is None:
            return None
        # A 64-bit hash of the values as read (one input keeps one column order): cheap for
        # every record; a collision could only take a conflict for a repeat.
        digest = hash(orjson.dumps(record.data, default=str))
        first = self._first.setdefault(record.key, (record.index, digest))
        if first[1] == digest:
            return None
        field = self.destination.config.key_field
        return Rejected(
            record.index,
            record.data,
            f"conflict: {field} {record.key!r} is also the key of record {first[0] + 1}, whose "
            "other values differ; give each record its own key, or remove one of them",
            field=field,
        )

    async def _settle(self, record: Record, state: str) -> bool:
        """A record a past run left ``sent`` (outcome unknown) or ``failed`` (it may have
        reached Hub): look its effect up. True: send it (not there; or it cannot be looked up
        and sending it again is safe: a failure that did not reach Hub, a PUT or DELETE, or
        the user checked it by hand and said ``--resend-unknown``). A look-up that finds the
        record's parent gone (the team it adds to does not exist) settles it as rejected."""
        counts = self.recorder.counts
        try:
            # Many records ask about one list: one read of it serves them all.
            present = await look_up_effect(self.destination, self.reader, (record,), fresh=False)
        except RejectRecord as exc:
            counts.records += 1
            counts.rejected += 1
            self.ledger.settle(
                record.key,
                self.template_id,
                REJECTED,
                http_status=exc.status,
                note=exc.message,
                position=record.index,
            )
            self.recorder.rejects.write(record, exc.message, exc.status)
            return False
        if present is False:
            return True
        if present is None and (state == FAILED or not self._risky or self.resend_unknown):
            return True
        counts.records += 1
        if present is None:
            note = (
                "outcome unknown: a past run sent it, it may have reached Docker Hub, and its "
                "effect cannot be looked up; check by hand, then send it again with "
                "`sink run --resend-unknown` if it did not happen"
            )
            counts.failed += 1
            self.ledger.settle(record.key, self.template_id, SENT, note=note)
            self.recorder.rejects.write(record, note)
            return False
        note = "found in place after an interrupted run"
        if self.destination.secret_fields:
            if record.key in self._vaulted():
                note = "found in place after an interrupted run; its secret is in the vault"
            else:
                note = (
                    f"{SECRET_LOST}: created by an interrupted run whose answer never arrived; "
                    "its secret was not captured: revoke the token and create it again"
                )
                self.recorder.secret_lost(record)
        if not note.startswith(SECRET_LOST):
            counts.ok += 1
        counts.recovered += 1
        self.ledger.settle(record.key, self.template_id, DONE, note=note)
        return False

    def _vaulted(self) -> frozenset[str]:
        """The record keys the vault holds a secret for (read once, when first needed)."""
        if self._vault_keys is None:
            path = self.recorder.vault_path
            self._vault_keys = vault_keys(path) if path is not None else frozenset()
        return self._vault_keys
