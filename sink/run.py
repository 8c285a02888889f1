"""Sending: the pipeline from the records to Docker Hub and back to the outputs.

source → prepare → ledger (skip done, settle records left in flight) → render → guard (policy,
last owner) → dispatch → outputs (vault first, then responses, rejects, audit, ledger).

A record is done when its outcome is in the ledger, and a created secret is in the vault before
that. Killed at any instant and run again, a run skips what is done and looks up what was in
flight before sending it again, so no effect happens twice.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import httpx

from sink.audit import AuditLog
from sink.auth import HubAuth, token_url_for
from sink.config import DestinationConfig
from sink.credentials import Credentials, check_accepted
from sink.destination import Destination
from sink.dispatch import Dispatcher, DispatchStats
from sink.errors import ConfigError, RejectRecord, StopRun
from sink.guard import Guard
from sink.hub import HubReader
from sink.ledger import (
    DONE,
    FAILED,
    REJECTED,
    SECRET_LOST,
    SENT,
    Ledger,
    run_lock,
    start_fresh,
)
from sink.model import Outcome, Record, Rejected, Request, Status
from sink.outputs import (
    Redactor,
    RejectsFile,
    ResponsesFile,
    Vault,
    WebhookResponses,
    vault_keys,
)
from sink.pacing import Pacer
from sink.pipeline import records, render_stream
from sink.progress import Progress, Snapshot
from sink.resolve import Resolver
from sink.results import Counts, Recorder
from sink.revoke import RevokePlan, write_revoke
from sink.transport import make_client

_LEDGER_CHUNK = 256  # records whose past states are read in one query
_GROUP = 16  # requests marked sent in one commit (at most the concurrency)
_SETTLE_BATCH = 64  # final states committed together at the latest


class RunControl:
    """Lets a signal handler stop a run: the first stop ends intake, in-flight requests finish."""

    def __init__(self) -> None:
        self.summary: RunSummary | None = None
        self.stop_requested = False
        self._stoppers: list[Callable[[], None]] = []

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when a stop is requested (at once if one already was)."""
        self._stoppers.append(callback)
        if self.stop_requested:
            callback()

    def stop(self) -> None:
        """Stop taking new records."""
        self.stop_requested = True
        for callback in self._stoppers:
            callback()


@dataclass
class RunOptions:
    """How to run: where the records come from and what the user confirmed."""

    source: str | Path | None
    input_format: str | None = None
    yes: bool = False
    fresh: bool = False
    resend_unknown: bool = False
    """Send again the records a past run left in doubt (the user checked they did not happen)."""
    progress: Progress | None = None
    transport: httpx.AsyncBaseTransport | None = None
    control: RunControl = field(default_factory=RunControl)


@dataclass
class RunSummary:
    """What a run did, and where its outputs are."""

    counts: Counts
    outputs: Outputs
    stats: DispatchStats | None = None
    stopped: str | None = None
    interrupted: int | None = None
    seconds: float = 0.0
    revoke: RevokePlan | None = None
    """The revoke files written for tokens whose secrets were lost."""
    notes: list[str] = field(default_factory=list)
    """What the user should hear about the outputs (see ``_Run.notes``)."""


@dataclass(frozen=True)
class Outputs:
    """Where a destination's outputs go; defaults sit under ``out/`` beside the config."""

    responses: Path | None
    webhook: str | None
    rejects: Path
    vault: Path | None
    ledger: Path
    audit: Path


def output_paths(destination: Destination) -> Outputs:
    """The destination's output paths."""
    config = destination.config
    stem = destination.name
    out = destination.folder / "out"
    responses: Path | None = out / f"{stem}-responses.jsonl"
    webhook = None
    if config.responses is not None:
        webhook = config.responses.webhook
        responses = destination.path(config.responses.file)
    return Outputs(
        responses=responses,
        webhook=webhook,
        rejects=destination.path(config.rejects) or out / f"{stem}-rejects.jsonl",
        vault=(destination.path(config.vault) or out / f"{stem}-vault.jsonl")
        if destination.secret_fields
        else None,
        ledger=destination.path(config.ledger) or destination.folder / f"{stem}.ledger.sqlite",
        audit=destination.path(config.audit) or out / f"{stem}-audit.jsonl",
    )


def guard_destructive(destination: Destination, yes: bool) -> None:
    """Refuse a destructive template without ``--yes`` or ``allow_destructive: true``."""
    if destination.destructive and not (yes or destination.config.allow_destructive):
        what = destination.template.title if destination.template else "manual DELETE requests"
        raise ConfigError(
            f"{destination.template_id} is destructive ({what}). Preview it first "
            "(`sink preview CONFIG` says how many records would be deleted), then run with "
            "--yes or set allow_destructive: true"
        )


Carried = tuple[Request, tuple[Record, ...]]

# A lost secret's record is done: its token exists, and sending it again would make another.
_LEDGER_STATE = {Status.OK: DONE, Status.REJECTED: REJECTED, Status.SECRET_LOST: DONE}


class _Run:
    """One run's state: outputs, ledger, the requests in flight."""

    def __init__(
        self,
        destination: Destination,
        credentials: Credentials,
        options: RunOptions,
        outputs: Outputs,
        client: httpx.AsyncClient,
        redactor: Redactor,
    ) -> None:
        config = destination.config
        self.destination = destination
        self.options = options
        # One pacer for the credential, its reads and its writes alike.
        self.pacer = Pacer(config.rate_limit, max_wait=config.retry.max_seconds)
        self.reader = HubReader(client, pacer=self.pacer)
        # Requests are marked sent a group at a time, and final states ride on those commits:
        # one commit per group instead of two per request. A kill leaves at most a group more
        # records `sent` than were on the wire; resume looks each of them up.
        self.group_size = max(1, min(config.concurrency, _GROUP))
        # Opened and checked before the first request: a secret Hub shows once never waits
        # for a vault that turns out to be unwritable.
        vault = Vault(outputs.vault) if outputs.vault is not None else None
        try:
            self._open(destination, credentials, outputs, client, redactor, vault)
        except BaseException:
            if vault is not None:
                vault.close()  # and its lock: a refused output path leaves nothing held
            raise

    def _open(
        self,
        destination: Destination,
        credentials: Credentials,
        outputs: Outputs,
        client: httpx.AsyncClient,
        redactor: Redactor,
        vault: Vault | None,
    ) -> None:
        config = destination.config
        self.ledger = Ledger(outputs.ledger, settle_batch=_SETTLE_BATCH)
        self.template_id = destination.template_id
        self._risky = not destination.idempotent
        self.resource_field = destination.template.resource_id if destination.template else None
        secrets = destination.secret_fields
        responses: ResponsesFile | WebhookResponses
        if outputs.webhook is not None:
            # Its own client: nothing of Hub's (the JWT, the auth flow, the hooks) reaches it.
            hook = config.responses
            assert hook is not None
            responses = WebhookResponses(
                outputs.webhook,
                undelivered=destination.path(hook.undelivered)
                or destination.folder / "out" / f"{destination.name}-responses-undelivered.jsonl",
                secret_fields=secrets,
                redactor=redactor,
                timeout=hook.timeout,
            )
        else:
            assert outputs.responses is not None
            responses = ResponsesFile(
                outputs.responses, secret_fields=secrets, redactor=redactor, append=True
            )
        self.responses = responses
        self.recorder = Recorder(
            responses,
            RejectsFile(outputs.rejects, redactor=redactor),
            vault=vault,
            batch=destination.template.batch if destination.template else None,
        )
        self.audit = AuditLog(
            outputs.audit, who=credentials.identifier, redactor=redactor, secret_fields=secrets
        )
        client.event_hooks["response"].append(self._audit_read)
        self.owners = Guard(self.reader, config.policy)  # the policy and the last owner
        template = destination.template
        self.resolver = (
            Resolver(template, config.settings, self.reader)
            if template is not None and template.resolve
            else None
        )
        self.policy = config.policy
        self.flight: dict[tuple[str, ...], Carried] = {}  # by the keys of the records carried
        self.queued: deque[Request] = deque()  # marked sent, not handed to the dispatcher yet
        self._vault_keys: frozenset[str] | None = None
        self.started = time.time()
        self.dispatcher = Dispatcher(
            client,
            concurrency=config.concurrency,
            pacer=self.pacer,
            max_attempts=config.retry.max_attempts,
            max_elapsed=config.retry.max_seconds,
            max_throttled=config.retry.max_throttled,
            lookup=self._lookup,
            secret_fields={self.template_id: secrets} if secrets else None,
            idempotent_templates=(self.template_id,) if destination.idempotent else (),
        )

    @property
    def counts(self) -> Counts:
        return self.recorder.counts

    def notes(self) -> list[str]:
        """What the user should hear about the outputs: webhook lines kept on disk, files
        whose mode was narrowed to 0600."""
        notes = []
        if isinstance(self.responses, WebhookResponses):
            undelivered = self.responses.summary()
            if undelivered:
                notes.append(undelivered)
        files: list[Any] = [self.responses, self.recorder.rejects, self.audit, self.ledger]
        if self.recorder.vault is not None:
            files.append(self.recorder.vault)
        for output in files:
            path = getattr(output, "path", None)
            if getattr(output, "mode_fixed", False) and path is not None:
                notes.append(f"{path} was readable by others: its mode is now 0600")
        return notes

    async def _audit_read(self, response: httpx.Response) -> None:
        # Writes are audited with their outcome (see outcome()); reads here, as they happen.
        method = response.request.method
        if method in ("GET", "HEAD"):
            url = str(response.request.url)
            self.audit.read(self.template_id, method, url, response.status_code)

    async def _lookup(self, request: Request) -> bool | None:
        return await look_up_effect(self.destination, self.reader, self.flight[request.keys][1])

    # -- intake ------------------------------------------------------------------------------

    async def requests(self) -> AsyncIterator[Request]:
        """The requests to send, after the ledger, the policy and the guards had their say."""
        options = self.options
        prepared = records(self.destination, options.source, options.input_format)
        group: list[Carried] = []
        for chunk in _chunks(prepared, _LEDGER_CHUNK):
            todo = await self._past_runs(chunk)
            if self.resolver is not None:
                todo = await self._resolved(todo)
            for item in render_stream(self.destination, todo, with_records=True):
                if isinstance(item, Rejected):
                    self._reject(item)
                    continue
                request, carried = item
                refusal = await self._refusal(request, carried)
                if refusal is not None:
                    self.audit.refusal(request, refusal)
                    for record in carried:
                        self._reject(Rejected(record.index, record.data, refusal, record.key))
                    continue
                group.append((request, carried))
                if len(group) >= self.group_size:
                    self._launch(group)
                    while self.queued:
                        yield self.queued.popleft()  # popped first: handed out is on the wire
            self._launch(group)
            while self.queued:
                yield self.queued.popleft()

    def _launch(self, group: list[Carried]) -> None:
        """Commit that these requests may leave (one commit for the group, with the final
        states settled since the last one), queue them and empty ``group``."""
        if not group:
            return
        keys = ((record.key, record.index) for _, carried in group for record in carried)
        self.ledger.mark_sent(keys, self.template_id)
        for request, carried in group:
            self.flight[request.keys] = (request, carried)
            self.queued.append(request)
        group.clear()

    async def _past_runs(self, chunk: list[Record | Rejected]) -> list[Record | Rejected]:
        """Drop records a past run finished; settle those it left in flight; no duplicates."""
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
            if item.key in seen or (state is not None and updated >= self.started):
                self.counts.records += 1
                self.counts.duplicates += 1
                continue
            seen.add(item.key)
            if state == DONE:
                self.counts.records += 1
                self.counts.done_before += 1
                continue
            if state in (SENT, FAILED):
                doubtful[len(todo)] = (item, state)
            todo.append(item)
        if not doubtful:
            return todo
        # Their effects are looked up side by side, as many at once as the run sends.
        limit = asyncio.Semaphore(self.destination.config.concurrency)

        async def settle(record: Record, state: str) -> bool:
            async with limit:
                return await self._settle_past(record, state)

        send = await asyncio.gather(*(settle(*pair) for pair in doubtful.values()))
        dropped = {at for at, again in zip(doubtful, send, strict=True) if not again}
        return [item for at, item in enumerate(todo) if at not in dropped]

    async def _settle_past(self, record: Record, state: str) -> bool:
        """A record a past run left ``sent`` (outcome unknown) or ``failed`` (it may have
        reached Hub): look its effect up. True: send it (not there; or it cannot be looked up
        and sending it again is safe: a failure that did not reach Hub, a PUT or DELETE, or
        the user checked it by hand and said ``--resend-unknown``). A look-up that finds the
        record's parent gone (the team it adds to does not exist) settles it as rejected."""
        try:
            # Many records ask about one list: one read of it serves them all.
            present = await look_up_effect(self.destination, self.reader, (record,), fresh=False)
        except RejectRecord as exc:
            self.counts.records += 1
            self.counts.rejected += 1
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
        if present is None and (state == FAILED or not self._risky or self.options.resend_unknown):
            return True
        self.counts.records += 1
        if present is None:
            note = (
                "outcome unknown: a past run sent it, it may have reached Docker Hub, and its "
                "effect cannot be looked up; check by hand, then send it again with "
                "`sink run --resend-unknown` if it did not happen"
            )
            self.counts.failed += 1
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
            self.counts.ok += 1
        self.counts.recovered += 1
        self.ledger.settle(record.key, self.template_id, DONE, note=note)
        return False

    def _vaulted(self) -> frozenset[str]:
        """The record keys the vault holds a secret for (read once, when first needed)."""
        if self._vault_keys is None:
            path = self.recorder.vault_path
            self._vault_keys = vault_keys(path) if path is not None else frozenset()
        return self._vault_keys

    async def _resolved(self, todo: list[Record | Rejected]) -> list[Record | Rejected]:
        """Records with their look-ups done (team ids, membership); failures rejected."""
        assert self.resolver is not None
        kept: list[Record | Rejected] = []
        for item in todo:
            if isinstance(item, Record):
                try:
                    await self.resolver.apply(item)
                except RejectRecord as exc:
                    self._reject(Rejected(item.index, item.data, exc.message, item.key, exc.field))
                    continue
            kept.append(item)
        return kept

    async def _refusal(self, request: Request, carried: tuple[Record, ...]) -> str | None:
        return await self.owners.refusal(request)

    def _reject(self, item: Rejected) -> None:
        self.recorder.rejected(item)
        if item.key:
            self.ledger.settle(
                item.key, self.template_id, REJECTED, note=item.error, position=item.index
            )

    # -- outcomes ----------------------------------------------------------------------------

    async def outcome(self, outcome: Outcome) -> None:
        """Record an outcome: vault, responses, rejects (the recorder), audit, then ledger."""
        request, carried = self._take(outcome)
        self.owners.settled(request, outcome.status is Status.OK)
        results = await self.recorder.outcome(outcome, request, carried)
        self.audit.call(request, outcome)
        resource = self._resource_id(outcome)
        lost = outcome.extra.get("secret_lost")
        in_doubt = outcome.extra.get("in_doubt", False)
        for result in results:
            state = _LEDGER_STATE.get(result.status, FAILED)
            if state == FAILED and in_doubt:
                state = SENT  # it may have happened: never sent again without a look
            note = result.error
            if lost:
                note = f"{SECRET_LOST}: {outcome.error}"
            self.ledger.settle(
                result.record.key,
                self.template_id,
                state,
                http_status=outcome.http_status,
                resource_id=resource,
                note=note,
                position=result.record.index,
            )

    def _take(self, outcome: Outcome) -> Carried:
        taken = self.flight.pop(outcome.keys, None)
        if taken is None:
            raise RuntimeError(f"an outcome for records that are not in flight: {outcome.keys}")
        return taken

    def _resource_id(self, outcome: Outcome) -> str | None:
        if self.resource_field is None or not isinstance(outcome.body, dict):
            return None
        value = outcome.body.get(self.resource_field)
        return None if value is None else str(value)

    def close(self) -> None:
        """Count what never got an answer, close every output. Requests marked sent that
        never left (a stop came first), or that the dispatcher ended without an outcome
        before they could take effect (a stop during a wait, a token exchange that stopped
        the run, Hub out of reach), are taken out of the ledger again: nothing in doubt."""
        untaken = [*self.queued, *self.dispatcher.unsent()]
        if untaken:
            self.ledger.unmark(
                record.key
                for request in untaken
                if request.keys in self.flight
                for record in self.flight[request.keys][1]
            )
            self.queued.clear()
        for _, carried in self.flight.values():
            self.counts.records += len(carried)
            self.counts.skipped += len(carried)
        self.flight.clear()
        self.recorder.close()
        self.audit.close()
        self.ledger.close()


def _chunks(items: Iterable[Record | Rejected], size: int) -> Iterator[list[Record | Rejected]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


async def run_async(
    destination: Destination, credentials: Credentials, options: RunOptions
) -> RunSummary:
    """Send every record of the input; see :func:`run` for the synchronous entry point."""
    guard_destructive(destination, options.yes)
    if destination.template is not None:
        check_accepted(credentials, list(destination.template.credentials), destination.template_id)
    outputs = output_paths(destination)
    if options.source not in (None, "-") and Path(str(options.source)).resolve() == outputs.rejects:
        raise ConfigError(
            f"the input {options.source} is this destination's rejects file, which the run "
            "rewrites; copy it first (e.g. to fixed.jsonl), fix it, and replay the copy"
        )
    with run_lock(outputs.ledger):
        if options.fresh:
            start_fresh(outputs.ledger)
        return await _run_locked(destination, credentials, options, outputs)


async def _run_locked(
    destination: Destination, credentials: Credentials, options: RunOptions, outputs: Outputs
) -> RunSummary:
    config = destination.config
    started = time.monotonic()
    redactor = Redactor([credentials.secret])
    client = _client(credentials, redactor, config, config.concurrency, options.transport)
    async with client:
        state = _Run(destination, credentials, options, outputs, client, redactor)
        summary = RunSummary(state.counts, outputs)
        options.control.summary = summary
        options.control.on_stop(state.dispatcher.stop)
        progress = options.progress
        try:
            try:
                async for outcome in state.dispatcher.run(state.requests()):
                    await state.outcome(outcome)
                    if progress is not None:
                        progress.show(_snapshot(state.counts, state.dispatcher.stats))
            except StopRun as exc:
                summary.stopped = str(exc)
            if state.recorder.lost:
                # Looked up after the run, when every lost token is on Hub's list (even after
                # a stop: the pacer the stop ended takes reads again).
                state.pacer.resume()
                try:
                    summary.revoke = await write_revoke(
                        destination, state.reader, state.recorder.lost, since=state.started
                    )
                except StopRun as exc:
                    summary.stopped = summary.stopped or str(exc)
        finally:
            try:
                await state.responses.aclose()  # a webhook: what is queued, for a bounded time
            except StopRun as exc:  # webhook lines that could not even be kept on disk
                summary.stopped = summary.stopped or str(exc)
            finally:
                state.close()
                summary.notes = state.notes()
            summary.stats = state.dispatcher.stats
            summary.seconds = time.monotonic() - started
            if progress is not None:
                progress.show(_snapshot(state.counts, state.dispatcher.stats), force=True)
    return summary


async def look_up_effect(
    destination: Destination,
    reader: HubReader,
    records: tuple[Record, ...],
    *,
    fresh: bool = True,
) -> bool | None:
    """Whether the effect of a request carrying ``records`` is already in place.

    ``fresh`` (after a write of this run whose fate is unknown) reads Hub now; without it a
    list read earlier in the run may answer (see :meth:`HubReader.effect_present`). Raises
    :class:`~sink.errors.RejectRecord` when the look-up settles the records: what they name
    as the parent (a team, an organization) does not exist.
    """
    renderer = destination.renderer
    answers = []
    for record in records:
        found = renderer.lookup(record)
        if found is None:
            return None
        spec, request = found
        match = renderer.lookup_match(spec, record)
        present = await reader.effect_present(spec, request, match, fresh=fresh)
        if present is None:
            return None
        answers.append(present if spec.effect == "present" else not present)
    if all(answers):
        return True
    if not any(answers):
        return False
    return None  # part of a batch is there: sending it again would repeat that part


def _client(
    credentials: Credentials,
    redactor: Redactor,
    config: DestinationConfig,
    concurrency: int,
    transport: httpx.AsyncBaseTransport | None,
) -> httpx.AsyncClient:
    """A dispatch client signed in with ``credentials`` (JWTs it sees go to ``redactor``),
    with the destination's timeout (also each request's total deadline) and response cap."""
    auth = HubAuth(
        credentials.identifier,
        credentials.secret,
        token_url=token_url_for(credentials.base_url),
        redactor=redactor,
    )
    return make_client(
        credentials.base_url,
        auth,
        concurrency,
        config.timeout,
        transport=transport,
        max_response_bytes=config.max_response_bytes,
    )


def _snapshot(counts: Counts, stats: DispatchStats) -> Snapshot:
    return Snapshot(
        records=counts.records,
        ok=counts.ok,
        rejected=counts.rejected,
        failed=counts.failed,
        retries=stats.retries,
        rate_limit_wait=stats.rate_limit_wait,
        in_flight=stats.in_flight,
    )


def run(destination: Destination, credentials: Credentials, options: RunOptions) -> RunSummary:
    """Send every record. SIGINT/SIGTERM stop intake and let requests in flight finish; a
    second signal stops at once (the ledger still tells the truth). ``summary.interrupted``
    holds the signal number."""
    control = options.control
    received: list[int] = []

    async def main() -> RunSummary:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_signal(signum: int) -> None:
            received.append(signum)
            if len(received) == 1:
                control.stop()
            else:
                task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            return await run_async(destination, credentials, options)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    try:
        summary = asyncio.run(main())
    except asyncio.CancelledError:
        if control.summary is None:
            raise
        summary = control.summary
    if received:
        summary.interrupted = received[0]
    return summary


@dataclass
class TestResult:
    """What ``sink test`` sent and got back (secrets redacted)."""

    request: Request
    outcome: Outcome
    vault: Path | None


async def send_one_async(
    destination: Destination,
    credentials: Credentials,
    request: Request,
    records: tuple[Record, ...],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> TestResult:
    """Send one rendered request (Nexla's "Send Test Data"); a created secret goes to the vault."""
    if destination.template is not None:
        check_accepted(credentials, list(destination.template.credentials), destination.template_id)
    vault_path = output_paths(destination).vault
    # Opened before the request: a secret Hub shows once never meets an unwritable vault.
    vault = Vault(vault_path) if vault_path is not None else None
    try:
        outcome = await _send_one(destination, credentials, request, records, transport)
        entry = outcome.extra.pop("vault", None)
        if entry is not None:
            if vault is None:
                raise RuntimeError("a secret arrived but this destination has no vault")
            vault.write(entry)
    finally:
        if vault is not None:
            vault.close()
    return TestResult(request, outcome, vault_path if entry is not None else None)


async def _send_one(
    destination: Destination,
    credentials: Credentials,
    request: Request,
    records: tuple[Record, ...],
    transport: httpx.AsyncBaseTransport | None,
) -> Outcome:
    config = destination.config
    secrets = destination.secret_fields
    client = _client(credentials, Redactor([credentials.secret]), config, 1, transport)
    async with client:
        reader = HubReader(client)

        async def lookup(_: Request) -> bool | None:
            return await look_up_effect(destination, reader, records)

        dispatcher = Dispatcher(
            client,
            concurrency=1,
            max_attempts=config.retry.max_attempts,
            max_elapsed=config.retry.max_seconds,
            max_throttled=config.retry.max_throttled,
            lookup=lookup,
            secret_fields={destination.template_id: secrets} if secrets else None,
            idempotent_templates=(destination.template_id,) if destination.idempotent else (),
        )
        guard = Guard(reader, config.policy)  # a test send is held to the run's rules
        refusal = await guard.refusal(request)
        if refusal is not None:
            return Outcome(request.keys, Status.REJECTED, error=refusal, template=request.template)
        outcome = await dispatcher.send(request)
        guard.settled(request, outcome.status is Status.OK)
        return outcome
