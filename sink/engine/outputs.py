"""The run's outputs in one place: the :class:`Store` owns the ledger, the vault, the responses
file, the rejects file and the audit log of a destination (opened as ``sink run`` opens them:
0600, the vault fsync'd line by line, the run lock held), and workers reach it through an
:class:`~sink.engine.link.Outbox` with the stand-ins below.

Each stand-in has the methods its file has, so a worker's :class:`~sink.outputs.results.Recorder`,
:class:`~sink.send.core.SendCore` and :class:`~sink.send.resume.Resume` are those of ``sink run``;
only the writing happens elsewhere. A secret for the vault is a call (the worker waits until
it is on disk, as :meth:`Vault.write` returns only after the fsync); every other line is queued
and posted in order, before the final ledger state that follows it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar

from sink.destination import Destination
from sink.engine.ledger import Claims
from sink.engine.link import Op, Outbox
from sink.errors import ConfigError
from sink.model import Outcome, Record, Request, VaultEntry
from sink.outputs.audit import AuditLog
from sink.outputs.files import RejectsFile, ResponsesFile
from sink.outputs.redact import Redactor
from sink.outputs.vault import Vault
from sink.read.credentials import Credentials
from sink.run import RunFiles, open_outputs, output_paths
from sink.send.ledger import run_lock, start_fresh


class Store:
    """One destination's outputs and ledger, for every worker of a run (one writer).

    Raises :class:`ConfigError` when an output cannot be opened, or when another run of the
    destination holds its lock, before any worker sends anything.
    """

    ALLOWED: ClassVar[Mapping[str, frozenset[str]]] = {
        "ledger": frozenset({"flush", "states", "get", "mark_sent", "unmark", "settle", "counts"}),
        "claims": frozenset({"claim", "attention", "notes", "now"}),
        "responses": frozenset({"write"}),
        "rejects": frozenset({"write"}),
        "vault": frozenset({"write", "keys"}),
        "audit": frozenset({"call", "read", "refusal"}),
    }

    def __init__(
        self, destination: Destination, credentials: Credentials, *, fresh: bool = False
    ) -> None:
        outputs = output_paths(destination)
        if outputs.webhook is not None:
            raise ConfigError(
                "responses.webhook is not supported with an engine yet: give the responses a "
                "file (responses: {file: ...}), or run without --engine"
            )
        self.outputs = outputs
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(run_lock(outputs.ledger))
        try:
            if fresh:
                start_fresh(outputs.ledger)
            self.files: RunFiles = open_outputs(
                destination, credentials, outputs, Redactor([credentials.secret])
            )
        except BaseException:
            self._lock.close()
            raise
        recorder = self.files.recorder
        self.claims = Claims(self.files.ledger)
        self._targets: dict[str, Any] = {
            "ledger": self.files.ledger,
            "claims": self.claims,
            "responses": self.files.responses,
            "rejects": recorder.rejects,
            "vault": recorder.vault,
            "audit": self.files.audit,
        }
        self.error: BaseException | None = None
        self.ops = 0
        self.closed = False

    def now(self) -> float:
        """The store's clock (Unix time): what the ledger's ``updated`` is measured by."""
        return time.time()

    def apply(self, ops: list[Op]) -> list[Any]:
        """Run ``ops`` in order; their results. The first failure is kept and raised again on
        every later call (an output that failed fails the run, as in ``sink run``)."""
        if self.error is not None:
            raise self.error
        if self.closed:
            raise RuntimeError("the run's outputs are closed")
        results = []
        for op in ops:
            if op.method not in self.ALLOWED.get(op.target, ()):
                raise ValueError(f"not an operation of the store: {op.target}.{op.method}")
            target = self._targets[op.target]
            if target is None:
                raise RuntimeError("a secret arrived but this destination has no vault")
            try:
                results.append(getattr(target, op.method)(*op.args, **op.kwargs))
            except BaseException as exc:
                self.error = exc
                raise
        self.ops += len(ops)
        return results

    def post(self, ops: list[Op]) -> None:
        """Run ``ops``, nobody waiting; a failure is raised at the next call."""
        with contextlib.suppress(Exception):
            self.apply(ops)

    def close(self) -> list[str]:
        """Commit and close every output, release the lock; what the user should hear."""
        if self.closed:
            return []
        self.closed = True
        notes = []
        files = self.files
        outputs: list[Any] = [files.responses, files.recorder.rejects, files.audit, files.ledger]
        if files.recorder.vault is not None:
            outputs.append(files.recorder.vault)
        try:
            files.close()
        finally:
            self._lock.close()
        for output in outputs:
            if getattr(output, "mode_fixed", False):
                notes.append(f"{output.path} was readable by others: its mode is now 0600")
        return notes


class LocalLink:
    """A :class:`~sink.engine.link.Link` to a :class:`Store` in this process."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def call(self, ops: list[Op]) -> list[Any]:
        """Run ``ops`` and return their results."""
        return self.store.apply(ops)

    def post(self, ops: list[Op]) -> None:
        """Run ``ops``."""
        self.store.post(ops)


class RemoteResponses(ResponsesFile):
    """The responses file, written by the store."""

    def __init__(self, outbox: Outbox, path: Path) -> None:  # no file of its own
        self.outbox = outbox
        self.path = path
        self.written = 0
        self.mode_fixed = False

    def write(self, outcome: Outcome) -> None:
        """Queue the line for ``outcome`` (never its secret: that went to the vault)."""
        self.outbox.add("responses", "write", dataclasses.replace(outcome, vault=None))
        self.written += 1

    def close(self) -> None:
        """Nothing to close here: the store closes the file."""

    async def aclose(self) -> None:
        """Nothing to close here: the store closes the file."""


class RemoteRejects(RejectsFile):
    """The rejects file, written by the store."""

    def __init__(self, outbox: Outbox, path: Path) -> None:  # no file of its own
        self.outbox = outbox
        self.path = path
        self.written = 0
        self.mode_fixed = False

    def write(
        self,
        record: Record | Mapping[str, Any],
        error: str,
        status: int | None = None,
        *,
        index: int | None = None,
        raw: str | None = None,
    ) -> None:
        """Queue the line of a rejected or failed record."""
        self.outbox.add("rejects", "write", record, error, status, index=index, raw=raw)
        self.written += 1

    def close(self) -> None:
        """Nothing to close here: the store closes the file."""


class RemoteVault(Vault):
    """The secrets vault, written by the store: :meth:`write` returns once the line is on the
    store's disk (fsync'd), as :meth:`Vault.write` does."""

    def __init__(self, outbox: Outbox, path: Path) -> None:  # no file of its own
        self.outbox = outbox
        self.path = path
        self.written = 0
        self.count = 0
        self.locked = False
        self.mode_fixed = False

    def __repr__(self) -> str:
        return f"RemoteVault({str(self.path)!r}, written={self.written})"

    def keys(self) -> frozenset[str]:
        """The record keys the vault holds secrets for."""
        keys: frozenset[str] = self.outbox.call("vault", "keys")
        return keys

    def write(self, entry: VaultEntry | Mapping[str, Any]) -> None:
        """Have the store append ``entry`` and fsync it; returns once it has."""
        self.outbox.call("vault", "write", entry)
        self.count += 1
        self.written += 1

    def close(self) -> None:
        """Nothing to close here: the store closes the file."""


class RemoteAudit(AuditLog):
    """The audit log, written by the store."""

    def __init__(self, outbox: Outbox, path: Path, secret_fields: Collection[str] = ()) -> None:
        self.outbox = outbox
        self.path = path
        self.mode_fixed = False

    def call(self, request: Request, outcome: Outcome) -> None:
        """Queue a write's line."""
        self.outbox.add("audit", "call", request, dataclasses.replace(outcome, vault=None))

    def read(self, template: str, method: str, url: str, status: int) -> None:
        """Queue a read's line."""
        self.outbox.add("audit", "read", template, method, url, status)

    def refusal(self, request: Request, reason: str) -> None:
        """Queue a refusal's line."""
        self.outbox.add("audit", "refusal", request, reason)

    def close(self) -> None:
        """Nothing to close here: the store closes the file."""
