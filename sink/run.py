"""Sending: the pipeline from the records to Docker Hub and back to the outputs.

source → prepare → ledger (skip done, settle records left in flight) → render → guard (policy,
last owner) → dispatch → outputs (vault first, then responses, rejects, audit, ledger).

A record is done when its outcome is in the ledger, and a created secret is in the vault before
that. Killed at any instant and run again, a run skips what is done and looks up what was in
flight before sending it again, so no effect happens twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import httpx

from sink.config import DestinationConfig
from sink.destination import Destination
from sink.errors import ConfigError, RejectRecord, StopRun
from sink.guard.check import Guard
from sink.guard.labels import with_label_check
from sink.guard.resolve import resolver_for
from sink.model import Outcome, Record, Rejected, Request
from sink.outputs.audit import AuditLog
from sink.outputs.files import RejectsFile, ResponsesFile
from sink.outputs.progress import Progress, Snapshot
from sink.outputs.redact import Redactor
from sink.outputs.results import Counts, Recorder
from sink.outputs.revoke import RevokePlan, write_revoke
from sink.outputs.vault import Vault
from sink.outputs.webhook import WebhookResponses
from sink.pipeline import Carried, Rendering, records
from sink.read.credentials import Credentials, check_accepted
from sink.read.hub import HubReader
from sink.send.auth import HubAuth
from sink.send.core import FLUSH, Flush, SendCore, look_up_effect
from sink.send.dispatch import Dispatcher, DispatchStats
from sink.send.ledger import (
    Ledger,
    run_lock,
    start_fresh,
)
from sink.send.pacing import Pacer
from sink.send.resume import Resume
from sink.send.session import HubSession, hub_client
from sink.send.settings import Limits, Retry

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
    records: Iterable[Record | Rejected] | None = None
    """Prepared records (keyed) to send instead of reading ``source`` (plan/apply feeds its
    actions this way): they go through the same ledger, look-ups, render and core."""


@dataclass
class RunSummary:
    """What a run did, and where its outputs are."""

    counts: Counts
    outputs: Outputs
    stats: DispatchStats | None = None
    stopped: str | None = None
    interrupted: int | None = None
    cancelled: bool = False
    """A second signal stopped the run at once: requests on the wire were not waited for."""
    in_doubt: int = 0
    """Records whose request left with no outcome when the run ended (a second signal): the
    ledger keeps them ``sent``, ``sink status`` lists them and the next run looks them up.
    They are not among ``counts.skipped`` (records taken back, never sent)."""
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


@dataclass
class RunFiles:
    """A run's outputs and ledger, open (see :func:`open_outputs`)."""

    ledger: Ledger
    responses: ResponsesFile | WebhookResponses
    recorder: Recorder
    """With the rejects file and the vault."""
    audit: AuditLog

    def close(self) -> None:
        """Close every file but the responses stream (the ledger commits what is pending)."""
        self.recorder.close()
        self.audit.close()
        self.ledger.close()

    async def aclose(self) -> None:
        """Close every output in one place, whether the responses go to a file or a webhook:
        the responses first (a webhook delivers what is queued, for a bounded time), then the
        rejects, the vault, the audit log and the ledger. A :class:`StopRun` from the webhook
        (lines that could not even be kept on disk) is raised once everything is closed."""
        try:
            await self.responses.aclose()
        finally:
            self.close()


def open_outputs(
    destination: Destination, credentials: Credentials, outputs: Outputs, redactor: Redactor
) -> RunFiles:
    """Open (and check) a run's outputs and ledger before the first request: 0600, the vault
    first and locked, so that a secret Hub shows once never waits for a vault that turns out
    to be unwritable. ``sink run`` and an engine's store open them here."""
    config = destination.config
    secrets = destination.secret_fields
    vault = Vault(outputs.vault) if outputs.vault is not None else None
    try:
        ledger = Ledger(outputs.ledger, settle_batch=_SETTLE_BATCH)
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
        recorder = Recorder(
            responses,
            RejectsFile(outputs.rejects, redactor=redactor),
            vault=vault,
            batch=destination.template.batch if destination.template else None,
        )
        audit = AuditLog(
            outputs.audit, who=credentials.identifier, redactor=redactor, secret_fields=secrets
        )
    except BaseException:
        if vault is not None:
            vault.close()  # and its lock: a refused output path leaves nothing held
        raise
    return RunFiles(ledger=ledger, responses=responses, recorder=recorder, audit=audit)


class _Run:
    """One run's parts: the outputs (opened before the first request, closed in one place),
    the read client and pacer of the credential, resume, the guard, the dispatcher and the
    send core that wires them; and the intake of a file's records."""

    def __init__(
        self,
        destination: Destination,
        credentials: Credentials,
        options: RunOptions,
        outputs: Outputs,
        client: httpx.AsyncClient,
        redactor: Redactor,
        *,
        pacer: Pacer | None = None,
        files: RunFiles | None = None,
        reader: HubReader | None = None,
    ) -> None:
        config = destination.config
        self.destination = destination
        self.options = options
        self.template_id = destination.template_id
        # One pacer for the credential, its reads and its writes alike (an engine's worker
        # passes one that shares the credential's budget with the other workers).
        self.pacer = pacer or Pacer(config.rate_limit, max_wait=config.retry.max_seconds)
        self.reader = reader or HubReader(client, pacer=self.pacer)
        # Opened and checked before the first request (an engine's worker passes stand-ins
        # that write through the run's one store, see sink.engine).
        if files is None:
            files = open_outputs(destination, credentials, outputs, redactor)
        self.files = files
        self.ledger = files.ledger
        self.responses = files.responses
        self.recorder = files.recorder
        self.audit = files.audit
        try:
            self._open(destination, client)
        except BaseException:
            files.close()  # and the vault's lock: a refused setting leaves nothing held
            raise

    def _open(self, destination: Destination, client: httpx.AsyncClient) -> None:
        config = destination.config
        client.event_hooks["response"].append(self._audit_read)
        template = destination.template
        self.resolver = resolver_for(destination, self.reader)
        self.started = time.time()
        self.resume = Resume(
            destination,
            self.reader,
            self.ledger,
            self.recorder,
            started=self.started,
            resend_unknown=self.options.resend_unknown,
        )
        # Whether a request may be sent twice, and its secret fields, the request says.
        self.dispatcher = Dispatcher(
            client,
            limits=Limits(config.concurrency, config.rate_limit),
            retry=Retry(
                max_attempts=config.retry.max_attempts,
                max_elapsed=config.retry.max_seconds,
                max_throttled=config.retry.max_throttled,
            ),
            pacer=self.pacer,
            lookup=self._lookup,
        )
        self.core = SendCore(
            dispatcher=self.dispatcher,
            # The policy, the last owner, and no second live token with a label.
            guard=with_label_check(Guard(self.reader, config.policy), config, self.reader),
            ledger=self.ledger,
            recorder=self.recorder,
            audit=self.audit,
            template_id=self.template_id,
            resource_field=template.resource_id if template is not None else None,
            # At most the concurrency: a group waits for no request it could send now.
            group_size=min(config.concurrency, _GROUP),
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
        # Writes are audited with their outcome (see SendCore.record); reads here, as they
        # happen.
        method = response.request.method
        if method in ("GET", "HEAD"):
            url = str(response.request.url)
            self.audit.read(self.template_id, method, url, response.status_code)

    async def _lookup(self, request: Request) -> bool | None:
        return await look_up_effect(self.destination, self.reader, self.core.carried(request))

    async def items(
        self, given: Iterable[Record | Rejected] | None = None
    ) -> AsyncIterator[Carried | Rejected | Flush]:
        """The input's requests (or those of the ``given`` prepared records) with the records
        they carry, after the ledger (past runs) and the look-ups (team ids, membership) had
        their say; rejections as they happen."""
        options = self.options
        if given is None:
            given = options.records
        prepared = (
            given
            if given is not None
            else records(self.destination, options.source, options.input_format)
        )
        # One rendering for the whole input: batches are cut by the batching settings alone,
        # never at a chunk's end, so the run sends what a preview shows.
        rendering = Rendering(self.destination)
        for chunk in _chunks(prepared, _LEDGER_CHUNK):
            todo = await self.resume.past_runs(chunk)
            if self.resolver is not None:
                todo = await self._resolved(todo)
            for item in rendering.feed(todo):
                yield item
            yield FLUSH  # the next chunk's look-ups may take a while: send what is grouped
        for item in rendering.finish():
            yield item

    async def _resolved(self, todo: list[Record | Rejected]) -> list[Record | Rejected]:
        """Records with their look-ups done (team ids, membership); failures rejected."""
        assert self.resolver is not None
        kept: list[Record | Rejected] = []
        for item in todo:
            if isinstance(item, Record):
                try:
                    await self.resolver.apply(item)
                except RejectRecord as exc:
                    item = Rejected(item.index, item.data, exc.message, item.key, exc.field)
            kept.append(item)
        return kept

    def close(self) -> None:
        """Settle what never got an answer (the core), then close every output but the
        responses stream (an engine's worker, whose stand-ins write through the store)."""
        self.core.close()
        self.files.close()

    async def aclose(self) -> None:
        """Settle what never got an answer (the core), then close every output."""
        self.core.close()
        await self.files.aclose()


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
    # The credential's client, pacer and read client: its reads and writes share one budget.
    session = HubSession.for_destination(
        credentials, config, redactor=redactor, transport=options.transport
    )
    async with session:
        state = _Run(
            destination,
            credentials,
            options,
            outputs,
            session.client,
            redactor,
            pacer=session.pacer,
            reader=session.reader,
        )
        summary = RunSummary(state.counts, outputs)
        options.control.summary = summary
        options.control.on_stop(state.dispatcher.stop)
        progress = options.progress
        try:
            try:
                async for _ in state.core.send(state.items()):
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
            in_doubt = _in_doubt(state.core)
            try:
                await state.aclose()
            except StopRun as exc:  # webhook lines that could not even be kept on disk
                summary.stopped = summary.stopped or str(exc)
            finally:
                summary.in_doubt = in_doubt
                state.counts.skipped -= in_doubt  # the close counts every record in flight
                summary.notes = state.notes()
            summary.stats = state.dispatcher.stats
            summary.seconds = time.monotonic() - started
            if progress is not None:
                progress.show(_snapshot(state.counts, state.dispatcher.stats), force=True)
    return summary


def dispatch_client(
    credentials: Credentials,
    redactor: Redactor,
    config: DestinationConfig,
    concurrency: int,
    transport: httpx.AsyncBaseTransport | None,
    *,
    auth: HubAuth | None = None,
) -> httpx.AsyncClient:
    """A dispatch client signed in with ``credentials`` (JWTs it sees go to ``redactor``),
    with the destination's timeout (also each request's total deadline) and response cap.
    ``auth``: a sign-in to reuse (its JWT), e.g. across an engine worker's tasks. The one
    client factory's (:func:`sink.send.session.hub_client`)."""
    return hub_client(
        credentials,
        concurrency=concurrency,
        timeout=config.timeout,
        max_response_bytes=config.max_response_bytes,
        redactor=redactor,
        transport=transport,
        auth=auth,
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
        requests=counts.requests,
    )


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run(destination: Destination, credentials: Credentials, options: RunOptions) -> RunSummary:
    """Send every record. SIGINT/SIGTERM stop intake and let requests in flight finish; a
    second signal stops at once (the ledger still tells the truth: ``summary.in_doubt`` counts
    the records whose request left without an outcome, ``summary.cancelled`` is set). A signal
    while the event loop winds down is noted, never a ``KeyboardInterrupt``.
    ``summary.interrupted`` holds the first signal's number. Signals are handled on the main
    thread only."""
    control = options.control
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        return asyncio.run(run_async(destination, credentials, options))

    def noted(signum: int, frame: object) -> None:
        received.append(signum)  # before the loop handles them, or once it is done

    async def main() -> RunSummary:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_signal(signum: int) -> None:
            received.append(signum)
            if len(received) == 1:
                control.stop()
            elif len(received) == 2:
                task.cancel()
            # A third and later: the run is already stopping at once.

        for signum in _SIGNALS:
            loop.add_signal_handler(signum, on_signal, signum)
        if received:  # came before the loop took over
            control.stop()
            if len(received) > 1:
                task.cancel()
        try:
            return await run_async(destination, credentials, options)
        finally:
            for signum in _SIGNALS:
                try:
                    loop.remove_signal_handler(signum)
                except KeyboardInterrupt:  # in the instant the default handler is back
                    received.append(signum)
                finally:
                    signal.signal(signum, noted)

    previous = {signum: signal.getsignal(signum) for signum in _SIGNALS}
    for signum in _SIGNALS:
        signal.signal(signum, noted)
    try:
        summary = asyncio.run(main())
    except asyncio.CancelledError:
        summary = control.summary or RunSummary(Counts(), output_paths(destination))
        summary.cancelled = True
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    if received:
        summary.interrupted = received[0]
    return summary


@dataclass
class TestResult:
    """What ``sink test`` sent and got back (secrets redacted), or why nothing was sent."""

    request: Request | None
    outcome: Outcome | None
    vault: Path | None
    rejected: Rejected | None = None
    """The record refused before sending (unreadable, invalid, outside the policy)."""
    done_before: bool = False
    """The ledger says an earlier run or test already did it: nothing was sent."""


async def send_one_async(
    destination: Destination,
    credentials: Credentials,
    item: Record | Carried,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    session: HubSession | None = None,
) -> TestResult:
    """Send one record (Nexla's "Send Test Data") the way a run sends it: the ledger (a record
    a past run did is not sent again, and a tested record is done for the next run), the
    look-ups (team ids), the guard, the audit log and the vault. A ``(request, records)`` pair
    is sent as it is (a hand-edited body, recorded under its own key).

    ``session``: the credential's open :class:`HubSession` to send through (its sign-in, its
    pacer and its read client, shared with the caller's other calls; a long-lived caller such
    as the agent gateway signs in once); it is left open. Without it one is opened and closed."""
    if destination.template is not None:
        check_accepted(credentials, list(destination.template.credentials), destination.template_id)
    outputs = output_paths(destination)
    options = RunOptions(None, transport=transport)
    config = destination.config
    with run_lock(outputs.ledger):
        async with contextlib.AsyncExitStack() as stack:
            hub = session
            if hub is None:
                hub = HubSession.for_destination(
                    credentials,
                    config,
                    concurrency=1,
                    redactor=Redactor([credentials.secret]),
                    transport=transport,
                )
                await stack.enter_async_context(hub)
            # A shared client outlives this send: the hooks it gets here (the audit's) go.
            hooks = hub.client.event_hooks["response"]
            stack.callback(hooks.__setitem__, slice(None), list(hooks))
            state = _Run(
                destination,
                credentials,
                options,
                outputs,
                hub.client,
                hub.redactor,
                pacer=hub.pacer,
                reader=hub.reader,
            )
            refused: list[Rejected] = []
            state.core.on_reject = refused.append
            try:
                items = state.items([item]) if isinstance(item, Record) else [item]
                sent = [done async for done in state.core.send(items)]
            finally:
                await state.aclose()
    counts = state.counts
    vault = outputs.vault if counts.secrets else None
    if sent:
        return TestResult(sent[0].request, sent[0].outcome, vault)
    return TestResult(None, None, None, refused[0] if refused else None, bool(counts.done_before))


def _in_doubt(core: SendCore) -> int:
    """Records on the wire without an outcome: they may have reached Docker Hub (requests
    queued but not handed out, or ended before they could take effect, are not)."""
    untaken = {request.keys for request in (*core.queued, *core.dispatcher.unsent())}
    return sum(len(carried) for keys, (_, carried) in core.flight.items() if keys not in untaken)
