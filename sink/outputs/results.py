"""What happens to each outcome: the vault first, then the responses stream and the rejects.

A created secret is in the vault (fsync'd) before anything else hears of its record, so a record
never counts as done with its secret still in memory only. For a batch whose answer has one
result per item (bulk invites), each record gets its own status from its own items.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sink.model import Outcome, Record, Rejected, Request, Status
from sink.outputs.files import RejectsFile
from sink.outputs.vault import Vault
from sink.request.templates import BatchSpec


class ResponsesStream(Protocol):
    """A responses file or webhook: ``write`` may be sync or async."""

    written: int

    def write(self, outcome: Outcome) -> Any: ...


@dataclass
class Counts:
    """Per-record counts of a run."""

    records: int = 0
    requests: int = 0
    ok: int = 0
    rejected: int = 0
    failed: int = 0
    skipped: int = 0
    secrets: int = 0
    secrets_lost: list[str] = field(default_factory=list)
    already_existed: int = 0
    already_absent: int = 0
    """Deletes whose target was already gone (Hub answered 404): done, and counted in ``ok``."""
    recovered: int = 0
    done_before: int = 0
    duplicates: int = 0


@dataclass
class RecordResult:
    """One record's share of an outcome."""

    record: Record
    status: Status
    error: str | None = None


class Recorder:
    """Takes outcomes and rejections to the outputs and keeps the counts."""

    def __init__(
        self,
        responses: ResponsesStream,
        rejects: RejectsFile,
        *,
        vault: Vault | None,
        batch: BatchSpec | None = None,
    ) -> None:
        self.responses = responses
        self.rejects = rejects
        self.vault = vault
        """Opened (and checked) before the first request: a secret never waits for it."""
        self.batch = batch
        self.counts = Counts()
        self.lost: list[Record] = []
        """Records whose token was created but whose secret never reached the vault."""

    @property
    def vault_path(self) -> Path | None:
        """Where the vault is, when this destination has one."""
        return self.vault.path if self.vault is not None else None

    def rejected(self, item: Rejected) -> None:
        """A record refused before sending (unreadable, invalid, outside the policy)."""
        self.counts.records += 1
        self.counts.rejected += 1
        if item.data is not None:
            self.rejects.write(item.data, item.error, item.status, index=item.index)
        else:
            self.rejects.write({}, item.error, item.status, index=item.index, raw=item.raw or "")

    def secret_lost(self, record: Record) -> None:
        """A record found created by an interrupted run, its secret not in the vault (the
        caller counts the record itself)."""
        self.counts.secrets_lost.append(record.key)
        self.lost.append(record)

    async def outcome(
        self, outcome: Outcome, request: Request, records: Sequence[Record]
    ) -> list[RecordResult]:
        """Record one request's outcome; returns each record's own result."""
        entry, outcome.vault = outcome.vault, None
        if entry is not None:
            if self.vault is None:
                raise RuntimeError("a secret arrived but this destination has no vault")
            self.vault.write(entry)
            self.counts.secrets += 1
        if outcome.status is Status.SECRET_LOST:
            self.counts.secrets_lost.extend(outcome.keys)
            self.lost.extend(records)
        if outcome.already_existed:
            self.counts.already_existed += len(records)
        if outcome.recovered:
            self.counts.recovered += len(records)
        if outcome.already_gone and outcome.status is Status.OK:
            self.counts.already_absent += len(records)
        written = self.responses.write(outcome)
        if inspect.isawaitable(written):
            await written
        self.counts.requests += 1
        results = self._per_record(outcome, request, records)
        for result in results:
            self.counts.records += 1
            if result.status is Status.OK:
                self.counts.ok += 1
                continue
            if result.status is Status.SECRET_LOST:
                continue  # counted above; replaying it would create a second token
            if result.status is Status.REJECTED:
                self.counts.rejected += 1
            else:
                self.counts.failed += 1
            self.rejects.write(result.record, result.error or "failed", outcome.http_status)
        return results

    def _per_record(
        self, outcome: Outcome, request: Request, records: Sequence[Record]
    ) -> list[RecordResult]:
        spec = self.batch
        if (
            outcome.status is not Status.OK
            or spec is None
            or spec.result_list is None
            or spec.result_match is None
            or not request.parts
            or outcome.recovered
            or outcome.already_existed
        ):
            # A batch found in place by its look-up has no per-item answer to map.
            return [RecordResult(record, outcome.status, outcome.error) for record in records]
        statuses = _item_statuses(outcome.body, spec)
        results = []
        for record, part in zip(records, request.parts, strict=True):
            problems = []
            for value in part:
                status = statuses.get(str(value).casefold())
                if status is None:
                    problems.append(f"{value}: no result in Docker Hub's answer")
                elif status not in spec.ok_statuses:
                    problems.append(f"{value}: {status}")
            if problems:
                results.append(RecordResult(record, Status.REJECTED, "; ".join(problems)))
            else:
                results.append(RecordResult(record, Status.OK))
        return results

    def close(self) -> None:
        """Close the files (every line is already written)."""
        if self.vault is not None:
            self.vault.close()
        self.rejects.close()


def _item_statuses(body: Any, spec: BatchSpec) -> dict[str, str]:
    """``{item: status}`` from a batch answer such as ``{"invitees": [{"invitee", "status"}]}``."""
    items: Any = body
    if isinstance(body, dict) and spec.result_list is not None:
        items = body.get(spec.result_list)
        if isinstance(items, dict):  # the stored spec double-wraps bulk invites
            items = items.get(spec.result_list)
    out: dict[str, str] = {}
    if not isinstance(items, list):
        return out
    for item in items:
        if isinstance(item, dict) and spec.result_match is not None:
            name = item.get(spec.result_match)
            status = item.get(spec.result_status)
            if name is not None and status is not None:
                out[str(name).casefold()] = str(status)
    return out
