"""The send core: (request, records) pairs in, outcomes out, every output kept.

Every caller drives it the same way: ``run`` feeds it a file's requests; plan/apply, the agent
gateway and a Ray datasink feed it theirs. From pairs (and rejections) of any iterable or async
iterable, :class:`SendCore`:

- asks the guard (the policy, the last owner) about each request; a refusal rejects its records
  and is audited;
- marks requests sent in the ledger a group at a time, before they leave (one commit a group);
- hands them to the dispatcher, and records each outcome: the vault first, then the responses,
  the rejects, the audit log and the ledger;
- on :meth:`SendCore.close`, takes back from the ledger what never left, so nothing is left in
  doubt that was not sent.

It opens and closes nothing: the caller gives it open outputs
(:class:`~sink.outputs.results.Recorder`,
:class:`~sink.outputs.audit.AuditLog`, a :class:`~sink.send.ledger.Ledger`) and closes them after.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Final, NamedTuple

from sink.destination import Destination
from sink.guard.check import Guard
from sink.model import Outcome, Record, Rejected, Request, Status
from sink.outputs.audit import AuditLog
from sink.outputs.results import Recorder
from sink.pipeline import Carried
from sink.read.hub import HubReader
from sink.send.dispatch import Dispatcher
from sink.send.ledger import DONE, FAILED, REJECTED, SECRET_LOST, SENT, Ledger


class Flush:
    """Put in the stream of pairs: send what is grouped now, without waiting for a full group
    (the intake is about to wait, e.g. for look-ups)."""


FLUSH: Final = Flush()

Item = Carried | Rejected | Flush


class Sent(NamedTuple):
    """An outcome, recorded, with the request it answers and the records that request carried."""

    outcome: Outcome
    request: Request
    records: tuple[Record, ...]


# A lost secret's record is done: its token exists, and sending it again would make another.
_LEDGER_STATE = {Status.OK: DONE, Status.REJECTED: REJECTED, Status.SECRET_LOST: DONE}


class SendCore:
    """Guards, marks, dispatches and records requests (see the module docstring).

    ``group_size`` requests are marked sent in one ledger commit; a kill leaves at most that
    many more records ``sent`` than were on the wire, and a resume looks each of them up.
    """

    def __init__(
        self,
        *,
        dispatcher: Dispatcher,
        guard: Guard,
        ledger: Ledger,
        recorder: Recorder,
        audit: AuditLog,
        template_id: str,
        resource_field: str | None = None,
        group_size: int = 16,
    ) -> None:
        self.dispatcher = dispatcher
        self.guard = guard
        self.ledger = ledger
        self.recorder = recorder
        self.audit = audit
        self.template_id = template_id
        self.resource_field = resource_field
        self.group_size = max(1, group_size)
        self.on_reject: Callable[[Rejected], object] | None = None
        """Told of every record refused before sending (``sink test`` shows it)."""
        self.flight: dict[tuple[str, ...], Carried] = {}  # by the keys of the records carried
        self.queued: deque[Request] = deque()  # marked sent, not handed to the dispatcher yet

    def carried(self, request: Request) -> tuple[Record, ...]:
        """The records ``request`` (in flight) carries."""
        return self.flight[request.keys][1]

    async def send(self, items: AsyncIterable[Item] | Iterable[Item]) -> AsyncIterator[Sent]:
        """Send every pair of ``items``; yield each outcome, with its request and records,
        once it is recorded."""
        async for outcome in self.dispatcher.run(self.requests(items)):
            request, carried = await self.record(outcome)
            yield Sent(outcome, request, carried)

    async def requests(self, items: AsyncIterable[Item] | Iterable[Item]) -> AsyncIterator[Request]:
        """The requests of ``items`` the guard lets go, each marked sent before it is handed
        out (rejections are recorded on the way)."""
        group: list[Carried] = []
        async for item in _each(items):
            if isinstance(item, Flush):
                self._launch(group)
            elif isinstance(item, Rejected):
                self.reject(item)
            else:
                request, carried = item
                refusal = await self.guard.refusal(request)
                if refusal is not None:
                    self.audit.refusal(request, refusal)
                    for record in carried:
                        self.reject(Rejected(record.index, record.data, refusal, record.key))
                    continue
                group.append(item)
                if len(group) < self.group_size:
                    continue
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

    def reject(self, item: Rejected) -> None:
        """A record refused before sending: to the rejects and, when it has a key, the ledger."""
        self.recorder.rejected(item)
        if self.on_reject is not None:
            self.on_reject(item)
        if item.key:
            self.ledger.settle(
                item.key, self.template_id, REJECTED, note=item.error, position=item.index
            )

    async def record(self, outcome: Outcome) -> Carried:
        """Record an outcome: vault, responses, rejects (the recorder), audit, then ledger;
        returns the request and the records it carried."""
        request, carried = self._take(outcome)
        self.guard.settled(request, outcome.status is Status.OK)
        results = await self.recorder.outcome(outcome, request, carried)
        self.audit.call(request, outcome)
        resource = self._resource_id(outcome)
        lost = outcome.status is Status.SECRET_LOST
        in_doubt = outcome.in_doubt
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
        return request, carried

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
        """Count what never got an answer. Requests marked sent that never left (a stop came
        first), or that the dispatcher ended without an outcome before they could take effect
        (a stop during a wait, a token exchange that stopped the run, Hub out of reach), are
        taken out of the ledger again: nothing in doubt."""
        untaken = [*self.queued, *self.dispatcher.unsent()]
        if untaken:
            self.ledger.unmark(
                record.key
                for request in untaken
                if request.keys in self.flight
                for record in self.flight[request.keys][1]
            )
            self.queued.clear()
        counts = self.recorder.counts
        for _, carried in self.flight.values():
            counts.records += len(carried)
            counts.skipped += len(carried)
        self.flight.clear()


async def _each(items: AsyncIterable[Item] | Iterable[Item]) -> AsyncIterator[Item]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


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
