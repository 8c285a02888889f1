"""A task's records through the stages of ``sink run``, in this process: a store, a budget and
the simulator as a real server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import yaml

from sink.destination import open_destination
from sink.engine.blocks import Job, rows, send_task
from sink.engine.budget import Budget, LocalBudget
from sink.engine.link import Op
from sink.engine.outputs import LocalLink, Store
from sink.hubsim import Simulator
from sink.model import Record
from sink.read.credentials import Credentials
from sink.send.ledger import Ledger
from tests.seed import ACME_OAT

REPOS = {
    "connection": {"identifier": "acme", "secret_env": "SINK_TEST_SECRET"},
    "template": "create-repository",
    "settings": {"namespace": "acme"},
    "key_field": "name",
    "concurrency": 8,
}


def job(hub: Simulator, folder: Path, workers: int = 2) -> Job:
    (folder / "dest.yaml").write_text(yaml.safe_dump(REPOS))
    destination = open_destination(folder / "dest.yaml", base_url=hub.url)
    return Job.of(destination, Credentials(hub.url, "acme", ACME_OAT, "oat"), workers=workers)


def created(hub: Simulator) -> list[str]:
    return [
        r["path"]
        for r in hub.requests()
        if r["method"] == "POST" and r["path"].endswith("/repositories")
    ]


def send(job: Job, store: Store, owner: str, names: list[str]) -> Any:
    table = pa.table({"name": names})
    return send_task(
        job, rows([table]), owner=owner, link=LocalLink(store), budget=LocalBudget(Budget())
    )


def test_rows_keep_the_given_position_or_count_their_own() -> None:
    given = pa.table({"name": ["a", "b"], "_sink_index": [7, 9]})
    plain = pa.record_batch({"name": ["c"]})
    assert [(r.index, r.data["name"]) for r in rows([given])] == [(7, "a"), (9, "b")]
    assert [r.index for r in rows([plain, plain])] == [0, 1]
    bad = pa.table({"name": [None], "_sink_index": [4], "_sink_raw": ['{"name": ']})
    assert [(r.index, r.data) for r in rows([bad])] == [(4, {"_sink_raw": '{"name": '})]


def test_a_tasks_records_are_sent_once_and_a_retried_task_skips_them(
    fresh_hub: Simulator, tmp_path: Path
) -> None:
    work = job(fresh_hub, tmp_path)
    assert work.concurrency == 4  # the config's 8 shared by two workers
    store = Store(work.destination(), work.credentials)
    names = [f"blk-{i:03d}" for i in range(40)]
    first = send(work, store, "task-0", names)
    assert (first.counts.ok, first.counts.requests, first.stopped) == (40, 40, None)
    again = send(work, store, "task-0", names)  # the same task, run again by the engine
    assert (again.counts.done_before, again.counts.requests) == (40, 0)
    other = send(work, store, "task-1", [*names[:5], "blk-new"])  # another task, same keys
    assert (other.counts.duplicates, other.counts.ok) == (5, 1)
    store.close()
    assert len(created(fresh_hub)) == 41
    lines = (tmp_path / "out" / "dest-responses.jsonl").read_bytes().splitlines()
    assert len(lines) == 41 and all(orjson.loads(line)["status"] == "ok" for line in lines)


def test_records_an_attempt_left_in_flight_are_looked_up_before_they_are_sent(
    fresh_hub: Simulator, tmp_path: Path
) -> None:
    work = job(fresh_hub, tmp_path)
    store = Store(work.destination(), work.credentials)
    send(work, store, "task-0", ["lost-0", "lost-1"])  # these reached Hub...
    store.close()
    with Ledger(tmp_path / "dest.ledger.sqlite") as ledger:  # ...and a kill left four in flight
        ledger.mark_sent([(f"lost-{i}", i) for i in range(4)], "create-repository")
    before = len(created(fresh_hub))
    store = Store(work.destination(), work.credentials)
    result = send(work, store, "task-0", [f"lost-{i}" for i in range(4)])
    store.close()
    assert result.counts.recovered == 2 and result.counts.ok == 4
    assert len(created(fresh_hub)) - before == 2  # only the two that never reached Hub


def test_a_record_that_cannot_be_sent_goes_to_the_rejects_through_the_store(
    fresh_hub: Simulator, tmp_path: Path
) -> None:
    work = job(fresh_hub, tmp_path)
    store = Store(work.destination(), work.credentials)
    records = [Record(0, {"name": "Not A Valid Name!"}), Record(1, {"name": "fine-one"})]
    result = send_task(
        work, records, owner="task-0", link=LocalLink(store), budget=LocalBudget(Budget())
    )
    store.close()
    assert (result.counts.rejected, result.counts.ok) == (1, 1)
    (reject,) = (tmp_path / "out" / "dest-rejects.jsonl").read_bytes().splitlines()
    assert orjson.loads(reject)["name"] == "Not A Valid Name!"


class CountingLink(LocalLink):
    """A link to the store that counts the operations it carried, by name."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.ops: list[str] = []
        self.calls = 0

    def call(self, ops: list[Op]) -> list[Any]:
        self.calls += 1
        self.ops.extend(f"{op.target}.{op.method}" for op in ops)
        return super().call(ops)

    def post(self, ops: list[Op]) -> None:
        self.ops.extend(f"{op.target}.{op.method}" for op in ops)
        super().post(ops)


def test_a_worker_marks_requests_sent_a_large_group_per_round_trip(
    fresh_hub: Simulator, tmp_path: Path
) -> None:
    work = job(fresh_hub, tmp_path)  # concurrency 4 on this worker
    store = Store(work.destination(), work.credentials)
    link = CountingLink(store)
    names = [f"grp-{i:03d}" for i in range(40)]
    result = send_task(
        work,
        rows([pa.table({"name": names})]),
        owner="task-0",
        link=link,
        budget=LocalBudget(Budget()),
    )
    store.close()
    assert result.counts.ok == 40 and result.setup_cpu > 0
    assert link.ops.count("ledger.mark_sent") == 3  # groups of 16 (4 × the concurrency), not 10
    # Every line and final state travelled as plain values, queued between the round trips.
    assert link.ops.count("lines.responses") == 40 and link.ops.count("claims.settle") == 40
    assert link.calls <= 3 + 4  # the groups, the clock, a claim, the states, the flush
    with Ledger(tmp_path / "dest.ledger.sqlite") as ledger:
        assert ledger.counts().get("done") == 40
