"""The link from a worker to the run's one store (the ledger and the outputs, see
:mod:`sink.engine.outputs`), whatever carries it: a Ray actor, a driver-side service, or a
plain object in the same process (tests).

A worker's calls to the store are *operations* (``target``, ``method``, plain arguments) kept
in order in an :class:`Outbox`. Operations nobody waits for (a responses, rejects or audit line,
already made into bytes, a final ledger state) are queued and posted a batch at a time; a
secret for the vault is posted within the event loop's turn, with the others that came in
with it (:meth:`Outbox.soon`); an operation whose answer or durability the worker needs
before it goes on (marking a group of requests sent, the ledger's states of a chunk) is a
call: it carries the queued ones before it, in order, and waits. The store runs each worker's
operations in the order they were sent, so a final state never reaches the ledger before the
responses line and the vault line it follows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


class Op(NamedTuple):
    """One operation on the store: ``store.<target>.<method>(*args, **kwargs)``.

    A plain tuple of plain values: it is pickled once per record on the way to the store, so
    the engine's stand-ins put bytes, strings and numbers in it, not rich objects."""

    target: str
    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = _NO_KWARGS


class Link(Protocol):
    """Carries operations to the store, in the order they are given."""

    def call(self, ops: list[Op]) -> list[Any]:
        """Run ``ops`` (after every earlier one) and return their results; raises what the
        store raised."""
        ...

    def post(self, ops: list[Op]) -> None:
        """Run ``ops`` after every earlier one, without waiting for them."""
        ...


class Outbox:
    """A worker's queue of operations for the store (see the module docstring).

    ``limit`` queued operations are posted together; a call takes the queue with it.
    """

    def __init__(self, link: Link, *, limit: int = 256) -> None:
        self.link = link
        self.limit = max(1, limit)
        self.calls = 0
        """Round trips so far (for the benchmark's overhead figures)."""
        self._queued: list[Op] = []
        self._soon = False

    def add(self, target: str, method: str, *args: Any, **kwargs: Any) -> None:
        """Queue an operation nobody waits for."""
        self._queued.append(Op(target, method, args, kwargs or _NO_KWARGS))
        if len(self._queued) >= self.limit:
            self.post()

    def soon(self) -> None:
        """Post what is queued once the event loop has run what is ready now (at once when no
        loop runs): every operation queued meanwhile (the vault lines of answers that arrived
        together) travels in the same post, the post still leaves within the loop's turn."""
        if self._soon:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.post()
            return
        self._soon = True
        loop.call_soon(self._post_soon)

    def _post_soon(self) -> None:
        self._soon = False
        self.post()

    def call(self, target: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run an operation, after everything queued, and return its result."""
        ops, self._queued = self._queued, []
        ops.append(Op(target, method, args, kwargs))
        self.calls += 1
        return self.link.call(ops)[-1]

    def post(self) -> None:
        """Send what is queued without waiting."""
        if self._queued:
            ops, self._queued = self._queued, []
            self.link.post(ops)

    def flush(self) -> None:
        """Send what is queued and wait until the store has run it."""
        if self._queued:
            ops, self._queued = self._queued, []
            self.calls += 1
            self.link.call(ops)
