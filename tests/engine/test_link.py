"""The outbox: operations kept in order, queued ones carried by the next call."""

from __future__ import annotations

import asyncio
from typing import Any

from sink.engine.link import Op, Outbox


class Recording:
    def __init__(self) -> None:
        self.calls: list[list[Op]] = []
        self.posts: list[list[Op]] = []

    def call(self, ops: list[Op]) -> list[Any]:
        self.calls.append(ops)
        return [f"{op.target}.{op.method}" for op in ops]

    def post(self, ops: list[Op]) -> None:
        self.posts.append(ops)


def test_a_call_carries_what_is_queued_before_it_in_order() -> None:
    link = Recording()
    outbox = Outbox(link)
    outbox.add("responses", "write", 1)
    outbox.add("ledger", "settle", "k", state="done")
    assert link.calls == [] and link.posts == []
    assert outbox.call("ledger", "mark_sent", ["j"]) == "ledger.mark_sent"
    (ops,) = link.calls
    assert [(op.target, op.method) for op in ops] == [
        ("responses", "write"),
        ("ledger", "settle"),
        ("ledger", "mark_sent"),
    ]
    assert ops[1].kwargs == {"state": "done"}


def test_a_full_queue_is_posted_and_a_flush_waits() -> None:
    link = Recording()
    outbox = Outbox(link, limit=3)
    for n in range(4):
        outbox.add("audit", "read", n)
    assert [len(ops) for ops in link.posts] == [3]
    outbox.flush()
    assert [op.args for op in link.calls[0]] == [(3,)]
    outbox.flush()  # nothing queued: no round trip
    assert len(link.calls) == 1 and outbox.calls == 1


def test_soon_posts_once_the_loop_turns_with_everything_queued_meanwhile() -> None:
    link = Recording()
    outbox = Outbox(link)

    async def turn() -> None:
        outbox.add("vault", "write", "a")
        outbox.soon()
        outbox.add("vault", "write", "b")
        outbox.soon()  # one post for both
        assert link.posts == []
        await asyncio.sleep(0)
        assert [[op.args for op in ops] for ops in link.posts] == [[("a",), ("b",)]]

    asyncio.run(turn())
    outbox.add("vault", "write", "c")
    outbox.soon()  # no loop running: at once
    assert [op.args for op in link.posts[-1]] == [("c",)] and link.calls == []
