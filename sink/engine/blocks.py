"""The engine-neutral core: a write task's records, from Arrow blocks, through the stages of
``sink run`` (prepare, the ledger, the look-ups, render, the spec, the guard, dispatch, the
outputs), by the same send core (:class:`sink.run._Run`, :class:`~sink.send.core.SendCore`).

What differs from ``sink run`` is where three things live, each given to :func:`send_task` by
the engine: the quota (a :class:`~sink.engine.budget.BudgetClient`, one budget per credential
for every worker), and the ledger and the outputs (a :class:`~sink.engine.link.Link` to the
run's one :class:`~sink.engine.outputs.Store`). Nothing here knows Ray: an engine hands over
Arrow tables or record batches (``ray.data`` blocks, Spark's ``DataSourceArrowWriter``
batches), a task's identity (``owner``, the same for every attempt of a task), and a link.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import httpx

from sink.config import DestinationConfig
from sink.destination import Destination, bind
from sink.engine.budget import BudgetClient, LeasedPacer
from sink.engine.ledger import SharedLedger
from sink.engine.link import Link, Outbox
from sink.engine.outputs import RemoteAudit, RemoteRejects, RemoteResponses, RemoteVault
from sink.errors import StopRun
from sink.model import Record, Rejected
from sink.outputs.redact import Redactor
from sink.outputs.results import Counts, Recorder
from sink.pipeline import prepare
from sink.read.credentials import Credentials
from sink.run import (
    Outputs,
    RunFiles,
    RunOptions,
    _in_doubt,
    _Run,
    dispatch_client,
    output_paths,
)
from sink.send.auth import HubAuth, token_url_for
from sink.send.resume import Resume
from sink.source.columns import Columns, require

_CLAIM_CHUNK = 256  # keys claimed in one round trip
GROUP = 64
"""Requests marked sent in one round trip to the store, at most (``sink run`` commits groups
of up to 16 to a file of its own; here a commit is a round trip too). A worker groups up to
four times its concurrency: a kill leaves at most a group and the requests in flight
``sent``, looked up before they are sent again."""


@dataclass(frozen=True)
class Job:
    """What a worker needs to send a task's records; it travels to the workers, so it holds
    the destination's config (bound again on each worker), never an open file.

    ``credentials`` travel too (in the engine's task spec): on a cluster, prefer a credential
    the workers read from their own environment (``connection.secret_env``).
    """

    config: DestinationConfig
    folder: Path
    name: str
    base_url: str
    credentials: Credentials
    concurrency: int
    """Requests in flight per worker: the destination's ``concurrency`` shared by the workers."""
    resend_unknown: bool = False
    run: str = ""
    """This run's id (the engine's actors are named after it)."""

    @classmethod
    def of(
        cls,
        destination: Destination,
        credentials: Credentials,
        *,
        workers: int | None = None,
        resend_unknown: bool = False,
        run: str = "",
    ) -> Job:
        """A job for ``destination``: ``workers`` share its concurrency (each at least 1)."""
        total = destination.config.concurrency
        each = total if not workers else max(1, -(-total // workers))
        return cls(
            config=destination.config,
            folder=destination.folder,
            name=destination.name,
            base_url=destination.base_url,
            credentials=credentials,
            concurrency=each,
            resend_unknown=resend_unknown,
            run=run or hashlib.blake2b(str(time.time_ns()).encode(), digest_size=6).hexdigest(),
        )

    def destination(self) -> Destination:
        """The destination bound on this worker (once per process and run)."""
        cached = _DESTINATIONS.get(self.run)
        if cached is None:
            config = self.config.model_copy(update={"concurrency": self.concurrency})
            cached = bind(config, self.folder, base_url=self.base_url or None)
            cached.name = self.name
            _DESTINATIONS.clear()  # one run at a time per worker process
            _DESTINATIONS[self.run] = cached
        return cached

    def auth(self, redactor: Redactor) -> HubAuth:
        """The credential's sign-in, kept for the process: every task of a worker reuses its
        JWT instead of exchanging the credential again."""
        auth = _AUTHS.get(self.run)
        if auth is None:
            creds = self.credentials
            auth = HubAuth(
                creds.identifier,
                creds.secret,
                token_url=token_url_for(creds.base_url),
                redactor=redactor,
            )
            _AUTHS.clear()
            _AUTHS[self.run] = auth
        return auth


_DESTINATIONS: dict[str, Destination] = {}
_AUTHS: dict[str, HubAuth] = {}


@dataclass
class TaskResult:
    """What one write task did (picklable: it travels back to the driver)."""

    counts: Counts = field(default_factory=Counts)
    retries: int = 0
    stopped: str | None = None
    in_doubt: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    """CPU seconds of the task's process while it ran (its set-up included)."""
    setup_cpu: float = 0.0
    """Of ``cpu``, what went before the first record: binding the destination, the sign-in
    client, the store's clock (once per task, not per record)."""
    store_calls: int = 0
    leases: int = 0
    spans: list[tuple[float, float]] = field(default_factory=list)
    """When each task sent (Unix times of its start and end)."""

    def add(self, other: TaskResult) -> None:
        """Add ``other``'s figures to these."""
        for name in dataclasses.fields(Counts):
            mine, theirs = getattr(self.counts, name.name), getattr(other.counts, name.name)
            setattr(self.counts, name.name, mine + theirs)
        self.retries += other.retries
        self.stopped = self.stopped or other.stopped
        self.in_doubt += other.in_doubt
        self.seconds = max(self.seconds, other.seconds)
        self.cpu += other.cpu
        self.setup_cpu += other.setup_cpu
        self.store_calls += other.store_calls
        self.leases += other.leases
        self.spans.extend(other.spans)


def check_columns(destination: Destination, names: Sequence[str], where: str) -> None:
    """Raise :class:`~sink.errors.ConfigError` when the destination names a column the data
    does not have (``names`` from the dataset's schema), before any record is sent."""
    require(destination, Columns(tuple(names), where))


def rows(tables: Iterable[Any]) -> Iterator[Record]:
    """The records of Arrow tables or record batches, in order. A record's position is its
    ``_sink_index`` column when the data has one (a replayed rejects file, or data read by
    ``sink run --engine``), else its position among the task's rows; a row with a
    ``_sink_raw`` text is one that could not be read (rejected as such by prepare)."""
    position = 0
    for table in tables:
        for data in table.to_pylist():
            given = data.get("_sink_index")
            index = given if isinstance(given, int) and not isinstance(given, bool) else position
            raw = data.get("_sink_raw")
            if isinstance(raw, str):
                # A row the reader could not read: its text alone (the table gave it the other
                # columns, empty), so that prepare rejects it as such.
                data = {"_sink_raw": raw}
            yield Record(index, data)
            position += 1


class _SharedResume(Resume):
    """Resume, asking the store which records' secrets its vault holds."""

    def _vaulted(self) -> frozenset[str]:
        if self._vault_keys is None:
            vault = self.recorder.vault
            self._vault_keys = vault.keys() if vault is not None else frozenset()
        return self._vault_keys


def _remote_files(
    outbox: Outbox, destination: Destination, outputs: Outputs, redactor: Redactor, who: str
) -> RunFiles:
    """A run's outputs and ledger, as stand-ins writing through the store (their lines made
    here as the store's files make theirs: the same redactions, the same ``who``)."""
    vault = RemoteVault(outbox, outputs.vault) if outputs.vault is not None else None
    assert outputs.responses is not None  # a webhook is refused when the store opens
    secrets = destination.secret_fields
    responses = RemoteResponses(outbox, outputs.responses, secret_fields=secrets, redactor=redactor)
    recorder = Recorder(
        responses,
        RemoteRejects(outbox, outputs.rejects, redactor=redactor),
        vault=vault,
        batch=destination.template.batch if destination.template else None,
    )
    return RunFiles(
        ledger=SharedLedger(outbox, outputs.ledger),
        responses=responses,
        recorder=recorder,
        audit=RemoteAudit(outbox, outputs.audit, who=who, redactor=redactor, secret_fields=secrets),
    )


def _claimed(
    items: Iterable[Record | Rejected], ledger: SharedLedger, owner: str, counts: Counts
) -> Iterator[Record | Rejected]:
    """The items whose keys this task owns; a key another task owns is a duplicate."""
    iterator = iter(items)
    while chunk := list(islice(iterator, _CLAIM_CHUNK)):
        keys = [item.key for item in chunk if isinstance(item, Record)]
        taken = ledger.claim(keys, owner) if keys else frozenset()
        for item in chunk:
            if isinstance(item, Record) and item.key in taken:
                counts.records += 1
                counts.duplicates += 1
                continue
            yield item


async def send_records(
    job: Job,
    records: Iterable[Record],
    *,
    owner: str,
    link: Link,
    budget: BudgetClient,
    transport: httpx.AsyncBaseTransport | None = None,
) -> TaskResult:
    """Send a task's records as ``sink run`` sends a file's (see the module docstring).

    ``owner`` names the task, the same on every attempt: a task run again resumes its own
    records. A stop (Hub out of reach, a quota reset too far away) ends the task with
    ``stopped`` set; the ledger then tells what is left, as after ``sink run``.
    """
    started = time.monotonic()
    began = time.time()
    cpu = time.process_time()
    destination = job.destination()
    credentials = job.credentials
    config = destination.config
    outbox = Outbox(link)
    redactor = Redactor([credentials.secret])
    pacer = LeasedPacer(budget, max_wait=config.retry.max_seconds)
    result = TaskResult()
    client = dispatch_client(
        credentials, redactor, config, job.concurrency, transport, auth=job.auth(redactor)
    )
    async with client:
        options = RunOptions(None, resend_unknown=job.resend_unknown, transport=transport)
        outputs = output_paths(destination)
        files = _remote_files(outbox, destination, outputs, redactor, credentials.identifier)
        state = _Run(
            destination, credentials, options, outputs, client, redactor, pacer=pacer, files=files
        )
        # Records an earlier attempt of this task settled are a past run's (the store's clock).
        state.started = outbox.call("claims", "now")
        state.resume = _SharedResume(
            destination,
            state.reader,
            state.ledger,
            state.recorder,
            started=state.started,
            resend_unknown=job.resend_unknown,
        )
        state.core.group_size = max(state.core.group_size, min(GROUP, 4 * job.concurrency))
        ledger = state.ledger
        assert isinstance(ledger, SharedLedger)
        prepared = prepare(
            records,
            exclude=config.exclude,
            key_field=config.key_field,
            template_id=destination.template_id,
        )
        counts = state.counts
        result.setup_cpu = time.process_time() - cpu
        try:
            try:
                async for _ in state.core.send(
                    state.items(_claimed(prepared, ledger, owner, counts))
                ):
                    pass
            except StopRun as exc:
                result.stopped = str(exc)
        finally:
            in_doubt = _in_doubt(state.core)
            state.close()
            pacer.release()
            counts.skipped -= in_doubt
            outbox.flush()
    result.counts = counts
    result.in_doubt = in_doubt
    result.retries = state.dispatcher.stats.retries
    result.seconds = time.monotonic() - started
    result.cpu = time.process_time() - cpu
    result.store_calls = outbox.calls
    result.leases = pacer.leases
    result.spans = [(began, time.time())]
    return result


def send_task(
    job: Job,
    records: Iterable[Record],
    *,
    owner: str,
    link: Link,
    budget: BudgetClient,
    transport: httpx.AsyncBaseTransport | None = None,
) -> TaskResult:
    """:func:`send_records` on an event loop of its own (an engine's task is synchronous)."""
    return asyncio.run(
        send_records(job, records, owner=owner, link=link, budget=budget, transport=transport)
    )
