"""Ray Data: :class:`HubDatasink`, ``dataset.write_datasink(HubDatasink("acme.yaml"))``.

The driver checks the config, the credential and the dataset's columns, and opens the run's
one :class:`~sink.engine.outputs.Store` (an actor on the driver's node, holding the ledger, the
vault, the responses, rejects and audit files and the run lock) in :meth:`on_write_start`,
before any block is written. Each write task sends its blocks' records through
:func:`sink.engine.blocks.send_task`, with permits from the credential's
:class:`~sink.engine.budget.Budget` (a named actor per credential, ``get_if_exists``: every
run of that credential on the cluster shares it). Ray runs a task again when its worker dies
(and on an exception, with ``ray_remote_args={"retry_exceptions": True}``); the task then
resumes its own records: done ones are skipped, those in flight looked up.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import ray
from ray.data import Datasink
from ray.data.block import BlockAccessor
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from sink.destination import Destination, open_destination
from sink.engine.blocks import Job, TaskResult, check_columns, rows, send_task
from sink.engine.budget import Budget, Lease, Report
from sink.engine.link import Op
from sink.engine.outputs import Store
from sink.errors import SinkError
from sink.model import Record
from sink.read.credentials import Credentials, check_accepted
from sink.read.secrets import resolve as resolve_credentials
from sink.run import RunSummary, guard_destructive, output_paths

NAMESPACE = "sink"
"""The Ray namespace of sink's named actors."""


def budget_name(credentials: Credentials) -> str:
    """The budget actor's name for a credential: its base URL and identifier, hashed (never
    its secret)."""
    who = f"{credentials.base_url}\0{credentials.identifier}".encode()
    return "sink-budget-" + hashlib.blake2b(who, digest_size=10).hexdigest()


class BudgetActor:
    """The body of the budget actor: a :class:`Budget` (rate from the first run's config)."""

    def __init__(self, rate: float | None) -> None:
        self.budget = Budget(rate)
        self._cpu = time.process_time()

    def lease(self, want: int, report: Report | None) -> Lease:
        """Permits (see :meth:`Budget.lease`)."""
        return self.budget.lease(want, report)

    def report(self, report: Report) -> None:
        """A worker's report (see :meth:`Budget.report`)."""
        self.budget.report(report)

    def begin(self, rate: float | None) -> None:
        """A run starts (see :meth:`Budget.begin`)."""
        self.budget.begin(rate)
        self._cpu = time.process_time()

    def state(self) -> dict[str, float | int | None]:
        """The budget's figures, with the actor's CPU seconds since the last run began."""
        return {**self.budget.state(), "cpu": time.process_time() - self._cpu}


class StoreActor:
    """The body of the store actor: the run's :class:`Store`, opened by :meth:`open`."""

    def __init__(self) -> None:
        self.store: Store | None = None
        self._cpu = 0.0

    def open(self, job: Job, fresh: bool) -> float:
        """Open the outputs (raises :class:`ConfigError`); the store's clock."""
        self.store = Store(job.destination(), job.credentials, fresh=fresh)
        self._cpu = time.process_time()
        return self.store.now()

    def apply(self, ops: list[Op]) -> list[Any]:
        """Run a worker's operations, in order."""
        assert self.store is not None
        return self.store.apply(ops)

    def post(self, ops: list[Op]) -> None:
        """Run a worker's operations, nobody waiting."""
        assert self.store is not None
        self.store.post(ops)

    def close(self) -> list[str]:
        """Close the outputs; what the user should hear."""
        return self.store.close() if self.store is not None else []

    def cpu(self) -> float:
        """The actor's CPU seconds since the outputs opened (for the benchmark)."""
        return time.process_time() - self._cpu


class _RayBudget:
    """A :class:`~sink.engine.budget.BudgetClient` on the budget actor."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    async def lease(self, want: int, report: Report | None) -> Lease:
        lease: Lease = await self.actor.lease.remote(want, report)
        return lease

    def report(self, report: Report) -> None:
        self.actor.report.remote(report)


class _RayLink:
    """A :class:`~sink.engine.link.Link` to the store actor (one caller's tasks run in the
    order they were submitted)."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def call(self, ops: list[Op]) -> list[Any]:
        try:
            results: list[Any] = ray.get(self.actor.apply.remote(ops))
        except ray.exceptions.RayTaskError as exc:
            raise _cause(exc) from None
        return results

    def post(self, ops: list[Op]) -> None:
        self.actor.post.remote(ops)


def _cause(exc: ray.exceptions.RayTaskError) -> BaseException:
    """The exception an actor raised, without Ray's wrapping (and its traceback text)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


class HubDatasink(Datasink[dict[str, Any]]):
    """Writes a dataset's records to Docker Hub, as ``sink run`` sends a file's.

    ``destination``: a destination config's path (or a bound :class:`Destination`);
    ``credentials``: by default the config's connection, resolved now (on the driver);
    ``workers``: how many write tasks run at once, sharing the destination's ``concurrency``
    (pass the same number to ``write_datasink(..., concurrency=workers)``); ``yes``: allow a
    destructive template; ``fresh``: start a new ledger; ``resend_unknown``: send again what a
    past run left in doubt. After the write, :attr:`summary` says what happened.
    """

    def __init__(
        self,
        destination: str | Path | Destination,
        *,
        credentials: Credentials | None = None,
        workers: int | None = None,
        yes: bool = False,
        fresh: bool = False,
        resend_unknown: bool = False,
        base_url: str | None = None,
    ) -> None:
        if not isinstance(destination, Destination):
            destination = open_destination(destination, base_url=base_url)
        if credentials is None:
            credentials = resolve_credentials(
                destination.config.connection, destination.folder, base_url=destination.base_url
            )
        self.destination = destination
        self.job = Job.of(destination, credentials, workers=workers, resend_unknown=resend_unknown)
        self.yes = yes
        self.fresh = fresh
        self.summary: RunSummary | None = None
        self.result: TaskResult | None = None
        """The tasks' figures added up (CPU seconds, store round trips, leases)."""
        self._store: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # What a write task needs: the job (the destination is bound again on the worker).
        state = dict(self.__dict__)
        state["destination"] = None
        state["_store"] = None
        return state

    @property
    def store_name(self) -> str:
        """The store actor's name (one per run)."""
        return f"sink-store-{self.job.run}"

    def get_name(self) -> str:
        """The write tasks' name."""
        return f"Hub({self.job.name})"

    def on_write_start(self, schema: Any = None) -> None:
        """Check the config, the credential and the columns, open the outputs; raises
        :class:`ConfigError` before any block is written."""
        destination = self.destination
        guard_destructive(destination, self.yes)
        if destination.template is not None:
            check_accepted(
                self.job.credentials, list(destination.template.credentials), self.job.name
            )
        names = getattr(schema, "names", None)
        if names:
            check_columns(destination, list(names), "the dataset's schema")
        here = ray.get_runtime_context().get_node_id()
        store: Any = (
            ray.remote(StoreActor)
            .options(
                name=self.store_name,
                namespace=NAMESPACE,
                num_cpus=0,
                max_concurrency=1,
                max_restarts=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
            )
            .remote()
        )
        rate = self.destination.config.rate_limit
        budget: Any = (
            ray.remote(BudgetActor)
            .options(
                name=budget_name(self.job.credentials),
                namespace=NAMESPACE,
                get_if_exists=True,
                num_cpus=0,
                lifetime="detached",  # shared by every run of the credential on the cluster
            )
            .remote(rate)
        )
        began = budget.begin.remote(rate)  # both actors start side by side
        try:
            ray.get(store.open.remote(self.job, self.fresh))
        except ray.exceptions.RayTaskError as exc:
            ray.kill(store)
            cause = _cause(exc)
            if isinstance(cause, SinkError):
                raise type(cause)(str(cause)) from None
            raise
        self._store = store
        ray.get(began)

    def records(self, blocks: Iterable[Any], owner: str) -> Iterator[Record]:
        """A task's records (tests wrap it to stop a task in the middle)."""
        return rows(BlockAccessor.for_block(block).to_arrow() for block in blocks)

    def write(self, blocks: Iterable[Any], ctx: Any) -> dict[str, Any]:
        """Send one task's blocks; what it did, for :meth:`on_write_complete`."""
        store = ray.get_actor(self.store_name, namespace=NAMESPACE)
        budget = ray.get_actor(budget_name(self.job.credentials), namespace=NAMESPACE)
        owner = f"task-{ctx.task_idx}"
        result = send_task(
            self.job,
            self.records(blocks, owner),
            owner=owner,
            link=_RayLink(store),
            budget=_RayBudget(budget),
        )
        return {"result": result}

    def on_write_complete(self, write_result: Any) -> None:
        """Close the outputs; :attr:`summary` adds up the tasks."""
        returns = getattr(write_result, "write_returns", write_result)  # Ray < 2.39: a list
        total = TaskResult()
        for returned in returns or []:
            if isinstance(returned, dict) and isinstance(returned.get("result"), TaskResult):
                total.add(returned["result"])
        self.result = total
        self.summary = self._finish(total)

    def on_write_failed(self, error: Exception) -> None:
        """Close the outputs (what the tasks recorded stays in the ledger)."""
        self.summary = self._finish(TaskResult(stopped=f"the write failed: {error}"))

    def _finish(self, total: TaskResult) -> RunSummary:
        notes: list[str] = []
        store = self._store
        if store is None:
            try:
                store = ray.get_actor(self.store_name, namespace=NAMESPACE)
            except ValueError:
                store = None
        if store is not None:
            try:
                notes = ray.get(store.close.remote())
            finally:
                ray.kill(store)
                self._store = None
        summary = RunSummary(total.counts, output_paths(self.destination))
        summary.stopped = total.stopped
        summary.in_doubt = total.in_doubt
        summary.seconds = total.seconds
        summary.notes = notes
        return summary


def dataset_of(
    destination: Destination, source: str | Path | None, input_format: str | None, blocks: int
) -> Any:
    """The input as a Ray dataset: a Parquet file read by Ray; other inputs read by sink's
    own reader (the values a ``sink run`` sees), each record with its ``_sink_index``, and a
    row that cannot be read as its ``_sink_raw`` (rejected by the workers, as the run does)."""
    from sink.source.read import read_records
    from sink.source.rows import BadRow

    config = destination.config
    fmt = (input_format or config.input_format or "").lower()
    if source not in (None, "-") and (
        fmt in ("parquet", "pq") or (not fmt and str(source).endswith((".parquet", ".pq")))
    ):
        return ray.data.read_parquet(str(source))
    items: list[dict[str, Any]] = []
    for row in read_records(
        source, input_format or config.input_format, max_record_bytes=config.max_record_bytes
    ):
        if isinstance(row, BadRow):
            items.append({"_sink_index": row.index, "_sink_raw": row.raw})
        else:
            items.append({**row.data, "_sink_index": row.index})
    return ray.data.from_items(items, override_num_blocks=max(1, min(blocks, len(items) or 1)))


def run_ray(
    destination: Destination,
    credentials: Credentials,
    source: str | Path | None,
    input_format: str | None = None,
    *,
    workers: int = 2,
    yes: bool = False,
    fresh: bool = False,
    resend_unknown: bool = False,
) -> RunSummary:
    """``sink run CONFIG --engine ray``: the input through :class:`HubDatasink` on ``workers``
    write tasks (a local Ray unless one is running or ``RAY_ADDRESS`` names a cluster)."""
    import logging
    import os

    started = ray.is_initialized()
    if not started:
        ray.init(
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=True,
        )
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        sink = HubDatasink(
            destination,
            credentials=credentials,
            workers=workers,
            yes=yes,
            fresh=fresh,
            resend_unknown=resend_unknown,
        )
        dataset = dataset_of(destination, source, input_format, blocks=4 * workers)
        resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
        cpus = float(resources.get("CPU", os.cpu_count() or 1))
        dataset.write_datasink(
            sink, concurrency=workers, ray_remote_args={"num_cpus": min(1.0, cpus / workers)}
        )
    finally:
        if not started:
            ray.shutdown()
    assert sink.summary is not None
    return sink.summary


__all__ = ["HubDatasink", "run_ray"]
