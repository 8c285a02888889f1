"""The wiring: source → prepare → batch → render → guard → dispatch → outputs.

``preview`` (in :mod:`sink.preview`) is the pipeline stopped after ``render``; :func:`send_one`
sends one rendered request; :func:`run` sends them all. This module is the only place that knows
every stage.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

import httpx
import orjson

from sink import render as rendering
from sink.auth import HubAuth, token_url_for
from sink.batching import batches
from sink.credentials import Credentials, check_accepted
from sink.destination import Destination
from sink.dispatch import Dispatcher, DispatchStats, make_client
from sink.errors import ConfigError, RejectRecord, StopRun
from sink.hub import HubReader
from sink.model import Outcome, Record, Rejected, Request
from sink.outputs import Redactor, RejectsFile, ResponsesFile, WebhookResponses
from sink.progress import Progress, Snapshot
from sink.results import Counts, Recorder
from sink.sources import BadRow, read_records

REPLAY_FIELDS = frozenset({"_sink_error", "_sink_status", "_sink_index", "_sink_key"})
"""Fields the rejects file adds to a record; dropped when the rejects are replayed as input."""


def record_key(data: dict[str, Any], template_id: str, key_field: str | None) -> str:
    """A stable key: the key field's value, or a hash of the record's content and the template."""
    if key_field is not None:
        value = data.get(key_field)
        if value is None or value == "":
            raise RejectRecord(f"key field {key_field!r} is missing", field=key_field)
        return str(value)
    content = orjson.dumps(data, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.blake2b(content, digest_size=12, person=template_id.encode()[:16]).hexdigest()


def prepare(
    rows: Iterable[Record | BadRow],
    *,
    exclude: Iterable[str] = (),
    key_field: str | None = None,
    template_id: str = "",
    keyed: bool = True,
) -> Iterator[Record | Rejected]:
    """Drop excluded attributes, give each record its key, turn unreadable rows into rejections."""
    dropped = frozenset(exclude) | REPLAY_FIELDS
    for row in rows:
        if isinstance(row, BadRow):
            where = f"line {row.line}: " if row.line is not None else ""
            yield Rejected(row.index, None, f"{where}{row.error}", raw=row.raw)
            continue
        data = row.data
        if not dropped.isdisjoint(data):
            data = row.data = {k: v for k, v in data.items() if k not in dropped}
        if keyed:
            try:
                row.key = record_key(data, template_id, key_field)
            except RejectRecord as exc:
                yield Rejected(row.index, data, exc.message, field=exc.field)
                continue
        yield row


Carried = tuple[Request, tuple[Record, ...]]


@overload
def render_stream(
    destination: Destination,
    records: Iterable[Record | Rejected],
    *,
    with_records: Literal[False] = False,
) -> Iterator[Request | Rejected]: ...


@overload
def render_stream(
    destination: Destination, records: Iterable[Record | Rejected], *, with_records: Literal[True]
) -> Iterator[Carried | Rejected]: ...


def render_stream(
    destination: Destination, records: Iterable[Record | Rejected], *, with_records: bool = False
) -> Iterator[Request | Carried | Rejected]:
    """Rendered requests (with the records they carry if asked), rejections as they happen.

    Per-record mode keeps the input order.
    """
    renderer = destination.renderer
    if not renderer.batched:
        render = renderer.render
        for record in records:
            if isinstance(record, Rejected):
                yield record
                continue
            try:
                request = render(record)
            except RejectRecord as exc:
                yield _rejected(record, exc)
                continue
            yield (request, (record,)) if with_records else request
        return
    pending: deque[Rejected] = deque()

    def items() -> Iterator[rendering.Item]:
        for record in records:
            if isinstance(record, Rejected):
                pending.append(record)
                continue
            try:
                yield renderer.item(record)
            except RejectRecord as exc:
                pending.append(_rejected(record, exc))

    for batch in batches(items(), renderer.batching.size):
        while pending:
            yield pending.popleft()
        try:
            request = renderer.request(batch)
        except RejectRecord as exc:
            for item in batch:
                yield _rejected(item.record, exc)
            continue
        yield (request, tuple(item.record for item in batch)) if with_records else request
    yield from pending


def _rejected(record: Record, exc: RejectRecord) -> Rejected:
    return Rejected(record.index, record.data, exc.message, record.key, exc.field, exc.status)


# -- sending ---------------------------------------------------------------------------------


@dataclass
class RunOptions:
    """How to run: where the records come from and what the user confirmed."""

    source: str | Path | None
    input_format: str | None = None
    yes: bool = False
    progress: Progress | None = None
    transport: httpx.AsyncBaseTransport | None = None
    control: RunControl = field(default_factory=lambda: RunControl())


class RunControl:
    """Lets a signal handler stop a run: the first stop ends intake, in-flight requests finish."""

    def __init__(self) -> None:
        self.summary: RunSummary | None = None
        self.stop_requested = False
        self._stoppers: list[Any] = []

    def on_stop(self, callback: Any) -> None:
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
class RunSummary:
    """What a run did."""

    counts: Counts
    responses: str
    rejects: Path
    vault: Path | None
    stats: DispatchStats | None = None
    stopped: str | None = None
    interrupted: int | None = None
    seconds: float = 0.0


@dataclass
class _Flight:
    """Requests in flight, with their records (for look-ups and per-record outcomes)."""

    records: dict[int, tuple[Request, tuple[Record, ...]]] = field(default_factory=dict)


def output_paths(destination: Destination) -> tuple[Path | None, Path, Path]:
    """Responses file (None for a webhook), rejects and vault paths; defaults under ``out/``."""
    config = destination.config
    stem = destination.name
    responses = None
    if config.responses is None:
        responses = destination.folder / "out" / f"{stem}-responses.jsonl"
    elif config.responses.file is not None:
        responses = destination.path(config.responses.file)
    out = destination.folder / "out"
    rejects = destination.path(config.rejects) or out / f"{stem}-rejects.jsonl"
    vault = destination.path(config.vault) or out / f"{stem}-vault.jsonl"
    return responses, rejects, vault


def guard_destructive(destination: Destination, yes: bool) -> None:
    """Refuse a destructive template without ``--yes`` or ``allow_destructive: true``."""
    if destination.destructive and not (yes or destination.config.allow_destructive):
        what = destination.template.title if destination.template else "manual DELETE requests"
        raise ConfigError(
            f"{destination.template_id} is destructive ({what}). Preview it first "
            "(`sink preview CONFIG`), then run with --yes or set allow_destructive: true"
        )


async def run_async(
    destination: Destination, credentials: Credentials, options: RunOptions
) -> RunSummary:
    """Send every record of the input; see :func:`run` for the synchronous entry point."""
    guard_destructive(destination, options.yes)
    if destination.template is not None:
        check_accepted(credentials, list(destination.template.credentials), destination.template_id)
    config = destination.config
    started = time.monotonic()
    redactor = Redactor([credentials.secret])
    auth = HubAuth(
        credentials.identifier,
        credentials.secret,
        token_url=token_url_for(credentials.base_url),
        redactor=redactor,
    )
    responses_path, rejects_path, vault_path = output_paths(destination)
    if options.source not in (None, "-") and Path(options.source or "").resolve() == rejects_path:
        raise ConfigError(
            f"the input {options.source} is this destination's rejects file, which the run "
            "rewrites; copy it first (e.g. to fixed.jsonl), fix it, and replay the copy"
        )
    secrets = destination.secret_fields
    flight: dict[int, tuple[Request, tuple[Record, ...]]] = {}
    async with make_client(
        credentials.base_url, auth, config.concurrency, config.timeout, transport=options.transport
    ) as client:
        reader = HubReader(client)
        responses: ResponsesFile | WebhookResponses
        if responses_path is not None:
            responses = ResponsesFile(
                responses_path, secret_fields=secrets, redactor=redactor, append=True
            )
        else:
            assert config.responses is not None and config.responses.webhook is not None
            responses = WebhookResponses(
                config.responses.webhook, client, secret_fields=secrets, redactor=redactor
            )
        recorder = Recorder(
            responses,
            RejectsFile(rejects_path, redactor=redactor),
            vault_path=vault_path if secrets else None,
            batch=destination.template.batch if destination.template else None,
        )

        async def lookup(request: Request) -> bool | None:
            return await look_up_effect(destination, reader, flight[id(request)][1])

        dispatcher = Dispatcher(
            client,
            concurrency=config.concurrency,
            rate=config.rate_limit,
            max_attempts=config.retry.max_attempts,
            max_elapsed=config.retry.max_seconds,
            lookup=lookup,
            secret_fields={destination.template_id: secrets} if secrets else None,
        )
        summary = RunSummary(
            recorder.counts,
            str(responses_path) if responses_path else "webhook",
            rejects_path,
            vault_path if secrets else None,
        )
        options.control.summary = summary
        options.control.on_stop(dispatcher.stop)

        def requests() -> Iterator[Request]:
            rows = read_records(options.source, options.input_format or config.input_format)
            records = prepare(
                rows,
                exclude=config.exclude,
                key_field=config.key_field,
                template_id=destination.template_id,
            )
            for item in render_stream(destination, records, with_records=True):
                if isinstance(item, Rejected):
                    recorder.rejected(item)
                    continue
                request, carried = item
                flight[id(request)] = (request, carried)
                yield request

        progress = options.progress
        try:
            async for outcome in dispatcher.run(requests()):
                request, carried = _take(flight, outcome)
                await recorder.outcome(outcome, request, carried)
                if progress is not None:
                    progress.show(_snapshot(recorder.counts, dispatcher.stats))
        except StopRun as exc:
            summary.stopped = str(exc)
        finally:
            if isinstance(responses, WebhookResponses):
                await responses.flush()
            else:
                responses.close()
            recorder.close()
            for _, carried in flight.values():
                recorder.counts.records += len(carried)
                recorder.counts.skipped += len(carried)
            summary.stats = dispatcher.stats
            summary.seconds = time.monotonic() - started
            if progress is not None:
                progress.show(_snapshot(recorder.counts, dispatcher.stats), force=True)
    return summary


def _take(
    flight: dict[int, tuple[Request, tuple[Record, ...]]], outcome: Outcome
) -> tuple[Request, tuple[Record, ...]]:
    """The request an outcome answers, taken out of the in-flight map."""
    for ident, (request, carried) in flight.items():
        if request.keys == outcome.keys and request.template == outcome.template:
            del flight[ident]
            return request, carried
    raise RuntimeError(f"an outcome for unknown records {outcome.keys}")


async def look_up_effect(
    destination: Destination, reader: HubReader, records: tuple[Record, ...]
) -> bool | None:
    """Whether the effect of a request carrying ``records`` is already in place."""
    renderer = destination.renderer
    answers = []
    for record in records:
        found = renderer.lookup(record)
        if found is None:
            return None
        spec, request = found
        present = await reader.effect_present(spec, request, renderer.lookup_match(spec, record))
        if present is None:
            return None
        answers.append(present if spec.effect == "present" else not present)
    if all(answers):
        return True
    if not any(answers):
        return False
    return None  # part of a batch is there: sending it again would repeat that part


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
    """Send every record; SIGINT/SIGTERM stop intake and let requests in flight finish, a second
    signal stops at once. ``summary.interrupted`` holds the signal number."""
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
    redactor = Redactor([credentials.secret])
    auth = HubAuth(
        credentials.identifier,
        credentials.secret,
        token_url=token_url_for(credentials.base_url),
        redactor=redactor,
    )
    secrets = destination.secret_fields
    vault_path = output_paths(destination)[2]
    config = destination.config
    async with make_client(
        credentials.base_url, auth, 1, config.timeout, transport=transport
    ) as client:
        reader = HubReader(client)

        async def lookup(_: Request) -> bool | None:
            return await look_up_effect(destination, reader, records)

        dispatcher = Dispatcher(
            client,
            concurrency=1,
            max_attempts=config.retry.max_attempts,
            max_elapsed=config.retry.max_seconds,
            lookup=lookup,
            secret_fields={destination.template_id: secrets} if secrets else None,
        )
        outcome = await dispatcher.send(request)
    entry = outcome.extra.pop("vault", None)
    if entry is not None:
        from sink.outputs import Vault

        with Vault(vault_path) as vault:
            vault.write(entry)
    return TestResult(request, outcome, vault_path if entry is not None else None)


def pick_record(
    destination: Destination, source: str | Path | None, input_format: str | None, number: int
) -> Record:
    """The ``number``-th (1-based) record of the input, prepared as a run would."""
    if number < 1:
        raise ConfigError("--record counts from 1")
    config = destination.config
    rows = read_records(source, input_format or config.input_format)
    records = prepare(
        rows,
        exclude=config.exclude,
        key_field=config.key_field,
        template_id=destination.template_id,
    )
    for item in records:
        if item.index + 1 < number:
            continue
        if isinstance(item, Rejected):
            raise ConfigError(f"record {number} cannot be read: {item.error}")
        return item
    raise ConfigError(f"the input has fewer than {number} records")


def test_request(
    destination: Destination, record: Record | None, body: str | None
) -> tuple[Request, tuple[Record, ...]]:
    """The request ``sink test`` sends: the record rendered, its body replaced by ``body`` if given.

    A hand-edited body is checked against the spec like a rendered one.
    """
    renderer = destination.renderer
    record = record or Record(0, {}, key="test")
    if body is None:
        return renderer.render(record), (record,)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"--body is not valid JSON: {exc}") from exc
    return renderer.with_body(record, value), (record,)
