"""``sink preview --online``: the read-only steps of a run, against Docker Hub, sending no write.

For each record, as a run would: the look-ups (team ids, membership), the render, the guard (the
policy with Hub's names for ids, the last owner read from Hub) and the effect look-up (is it
already in place?). Nothing is written to Hub, and nothing to the ledger or the outputs: what a
run would do with each record is told, record by record.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sink.destination import Destination
from sink.errors import RejectRecord
from sink.model import Record, Rejected
from sink.pipeline import Carried, Rendering, records
from sink.read.credentials import Credentials


@dataclass(frozen=True)
class Verdict:
    """What a run would do with one record (``position`` 0-based)."""

    position: int
    action: str
    """``send``, ``skip`` (already in place), ``refuse`` (the guard) or ``reject`` (invalid)."""
    why: str = ""


@dataclass
class OnlineReport:
    """The verdicts, and how many of each."""

    verdicts: list[Verdict] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, verdict: Verdict, keep: int) -> None:
        self.counts[verdict.action] = self.counts.get(verdict.action, 0) + 1
        if len(self.verdicts) < keep:
            self.verdicts.append(verdict)


async def preview_online(
    destination: Destination,
    credentials: Credentials,
    source: str | Path | None,
    *,
    input_format: str | None = None,
    keep: int = 100,
) -> OnlineReport:
    """Do the read-only steps of a run for every record of ``source`` (see the module)."""
    from sink.guard.check import Guard
    from sink.guard.labels import with_label_check
    from sink.guard.resolve import resolver_for
    from sink.send.core import look_up_effect
    from sink.send.session import HubSession

    config = destination.config
    report = OnlineReport()
    # The run's client and pacing (the destination's rate limit holds for these reads too).
    async with HubSession.for_destination(credentials, config, concurrency=1) as session:
        reader = session.reader
        resolver = resolver_for(destination, reader)
        guard = with_label_check(Guard(reader, config.policy), config, reader)
        rendering = Rendering(destination)

        async def decide(items: Iterator[Record | Rejected]) -> None:
            for item in items:
                if isinstance(item, Rejected):
                    report.add(Verdict(item.index, "reject", item.error), keep)
                    continue
                if resolver is not None:
                    try:
                        await resolver.apply(item)
                    except RejectRecord as exc:
                        report.add(Verdict(item.index, "reject", exc.message), keep)
                        continue
                for rendered in rendering.feed([item]):
                    await judge(rendered)

        async def judge(rendered: Carried | Rejected) -> None:
            if isinstance(rendered, Rejected):
                report.add(Verdict(rendered.index, "reject", rendered.error), keep)
                return
            request, carried = rendered
            refusal = await guard.refusal(request)
            first = carried[0].index
            if refusal is not None:
                report.add(Verdict(first, "refuse", refusal), keep)
                return
            guard.settled(request, True)  # as a run would once Hub confirmed it
            try:
                present = await look_up_effect(destination, reader, carried, fresh=False)
            except RejectRecord as exc:
                report.add(Verdict(first, "reject", exc.message), keep)
                return
            if present:
                report.add(Verdict(first, "skip", "already in place on Docker Hub"), keep)
            else:
                why = "" if present is False else "whether it is in place cannot be looked up"
                report.add(Verdict(first, "send", why), keep)

        await decide(iter(records(destination, source, input_format)))
        for rendered in rendering.finish():
            await judge(rendered)
    return report
