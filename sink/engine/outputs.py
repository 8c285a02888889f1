"""The run's outputs in one place: the :class:`Store` owns the ledger, the vault, the responses
file, the rejects file and the audit log of a destination (opened as ``sink run`` opens them:
0600, the vault fsync'd line by line, the run lock held), and workers reach it through an
:class:`~sink.engine.link.Outbox` with the stand-ins below.

Each stand-in has the methods its file has, so a worker's :class:`~sink.outputs.results.Recorder`,
:class:`~sink.send.core.SendCore` and :class:`~sink.send.resume.Resume` are those of ``sink run``;
only the writing happens elsewhere. The lines are made on the worker, by the same code as in
``sink run`` (the stand-ins inherit it), and travel as bytes: the store appends them, nothing
rich is pickled per record. Every line is queued and posted in order, before the final ledger
state that follows it; a secret for the vault is posted within the event loop's turn, with the
other secrets that came in with it (:meth:`Outbox.soon`), and the store fsyncs it before it
runs any later operation of that worker, so no ledger row says done before its secret is on
disk. A vault line that cannot be written fails the run and leaves its records ``sent``, to be
looked up.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar, cast

from sink.destination import Destination
from sink.engine.ledger import Claims
from sink.engine.link import Op, Outbox
from sink.errors import ConfigError
from sink.model import VaultEntry
from sink.outputs.audit import HIDDEN_FIELDS, AuditLog
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
        "claims": frozenset({"claim", "attention", "notes", "now", "settle"}),
        "lines": frozenset({"responses", "rejects", "audit"}),
        "vault": frozenset({"write", "keys"}),
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
            "lines": _Lines(self.files),
            "vault": recorder.vault,
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


class _Lines:
    """The store's side of the stand-ins' lines: bytes made on a worker, appended as they are
    to the file they belong to (unbuffered, as the files write their own lines)."""

    def __init__(self, files: RunFiles) -> None:
        self.files = files

    @staticmethod
    def _append(output: Any, data: bytes) -> None:
        output._file.write(data)

    def responses(self, data: bytes, count: int = 1) -> None:
        """Append responses lines."""
        responses = self.files.responses
        self._append(responses, data)
        responses.written += count

    def rejects(self, data: bytes, count: int = 1) -> None:
        """Append rejects lines."""
        rejects = self.files.recorder.rejects
        self._append(rejects, data)
        rejects.written += count

    def audit(self, data: bytes, count: int = 1) -> None:
        """Append audit lines."""
        self._append(self.files.audit, data)


class _Queued:
    """A stand-in's file: what its owner writes is queued for the store as bytes."""

    def __init__(self, outbox: Outbox, name: str) -> None:
        self.outbox = outbox
        self.name = name

    def write(self, data: bytes) -> int:
        """Queue ``data`` (whole lines)."""
        self.outbox.add("lines", self.name, bytes(data))
        return len(data)

    def close(self) -> None:
        """Nothing to close here: the store closes the file."""


class RemoteResponses(ResponsesFile):
    """The responses file, written by the store: the lines of :class:`ResponsesFile`, made
    here (``secret_fields`` and ``redactor`` as the store's file has them)."""

    def __init__(  # no file of its own
        self,
        outbox: Outbox,
        path: Path,
        *,
        secret_fields: Collection[str] = (),
        redactor: Redactor | None = None,
    ) -> None:
        self.outbox = outbox
        self.path = path
        self.secret_fields = frozenset(secret_fields)
        self.redactor = redactor if redactor is not None else Redactor()
        self.written = 0
        self.mode_fixed = False
        self._file = _Queued(outbox, "responses")

    def close(self) -> None:
        """Nothing to close here: the store closes the file."""

    async def aclose(self) -> None:
        """Nothing to close here: the store closes the file."""


class RemoteRejects(RejectsFile):
    """The rejects file, written by the store: the lines of :class:`RejectsFile`, made here."""

    def __init__(  # no file of its own
        self, outbox: Outbox, path: Path, *, redactor: Redactor | None = None
    ) -> None:
        self.outbox = outbox
        self.path = path
        self.redactor = redactor if redactor is not None else Redactor()
        self.written = 0
        self.mode_fixed = False
        self._file = _Queued(outbox, "rejects")

    def close(self) -> None:
        """Nothing to close here: the store closes the file."""


class RemoteVault(Vault):
    """The secrets vault, written by the store (see the module docstring): a secret is posted
    within the event loop's turn and fsync'd by the store before anything this worker sent
    after it, its record's final ledger state included."""

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
        """Queue ``entry`` for the store, ahead of everything queued after it; posted soon."""
        self.outbox.add("vault", "write", entry)
        self.outbox.soon()
        self.count += 1
        self.written += 1

    def close(self) -> None:
        """Nothing to close here: the store closes the file."""


class RemoteAudit(AuditLog):
    """The audit log, written by the store: the lines of :class:`AuditLog`, made here."""

    def __init__(  # no file of its own
        self,
        outbox: Outbox,
        path: Path,
        *,
        who: str = "",
        redactor: Redactor | None = None,
        secret_fields: Collection[str] = (),
    ) -> None:
        self.outbox = outbox
        self.path = path
        self.who = who
        self.redactor = redactor if redactor is not None else Redactor()
        self.secret_fields = frozenset(secret_fields) | HIDDEN_FIELDS
        self.mode_fixed = False
        self._file = cast(Any, _Queued(outbox, "audit"))  # AuditLog's file is typed FileIO

    def close(self) -> None:
        """Nothing to close here: the store closes the file."""
