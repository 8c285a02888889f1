"""The shared ledger: a worker's calls reach the one ledger file in order, a group is
committed sent before it leaves, and each key belongs to one task."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from sink.engine.ledger import Claims, SharedLedger
from sink.engine.link import Op, Outbox
from sink.send.ledger import DONE, SENT, Ledger


class Direct:
    """A link to a ledger in this process."""

    def __init__(self, targets: dict[str, Any]) -> None:
        self.targets = targets

    def call(self, ops: list[Op]) -> list[Any]:
        return [getattr(self.targets[op.target], op.method)(*op.args, **op.kwargs) for op in ops]

    def post(self, ops: list[Op]) -> None:
        self.call(ops)


def states(path: Path) -> dict[str, str]:
    db = sqlite3.connect(path)  # another connection: what is committed
    try:
        return dict(db.execute("SELECT key, state FROM records"))
    finally:
        db.close()


@pytest.fixture
def shared(tmp_path: Path) -> tuple[SharedLedger, Ledger]:
    ledger = Ledger(tmp_path / "l.sqlite", settle_batch=64)
    link = Direct({"ledger": ledger, "claims": Claims(ledger)})
    return SharedLedger(Outbox(link), ledger.path), ledger


def test_marked_sent_is_committed_before_the_call_returns(
    shared: tuple[SharedLedger, Ledger],
) -> None:
    worker, ledger = shared
    worker.mark_sent([("a", 0), ("b", 1)], "create-repository")
    assert states(ledger.path) == {"a": SENT, "b": SENT}


def test_final_states_wait_for_the_next_call_then_arrive_in_order(
    shared: tuple[SharedLedger, Ledger],
) -> None:
    worker, ledger = shared
    worker.mark_sent([("a", 0)], "create-repository")
    worker.settle("a", "create-repository", DONE, http_status=201)
    assert states(ledger.path) == {"a": SENT}  # queued in the worker
    worker.mark_sent([("b", 1)], "create-repository")  # carries it, and commits it
    assert states(ledger.path) == {"a": DONE, "b": SENT}
    assert worker.states(["a", "b", "c"]).keys() == {"a", "b"}
    entry = worker.get("a")
    assert entry is not None and entry.http_status == 201
    with pytest.raises(ValueError, match="unknown ledger state"):
        worker.settle("a", "create-repository", "finished")


def test_each_key_belongs_to_the_first_task_that_claims_it(
    shared: tuple[SharedLedger, Ledger],
) -> None:
    worker, _ = shared
    assert worker.claim(["a", "b"], "task-0") == frozenset()
    assert worker.claim(["b", "c"], "task-1") == {"b"}  # a duplicate of task 0's
    assert worker.claim(["a", "b"], "task-0") == frozenset()  # task 0 again: a retry


def test_unmarked_records_are_back_to_never_sent(shared: tuple[SharedLedger, Ledger]) -> None:
    worker, ledger = shared
    worker.mark_sent([("a", 0), ("b", 1)], "t")
    worker.unmark(["b"])
    assert states(ledger.path) == {"a": SENT}
    assert worker.counts()[SENT] == 1
    assert [entry.key for entry in worker.attention()] == ["a"]
