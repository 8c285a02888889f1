"""One rate budget per credential, shared by every worker of an engine.

Docker Hub counts a credential's requests per window, whoever sends them: workers that each
followed the ``X-RateLimit-*`` headers on their own would together spend the quota several
times over. :class:`Budget` holds what a single process's :class:`~sink.send.pacing.Pacer`
knows about the quota (what is left until the reset, a 429's hold, the probe that learns a new
window, a configured rate) once for all workers, and hands out *permits*: a request is sent
only with one. It is plain Python (the engine puts it in a Ray actor, one per credential, see
:mod:`sink.engine.ray`); its clock is the wall clock, the one every process of a machine
shares.

A worker's :class:`LeasedPacer` takes permits in small leases (a round trip per lease, not per
request) and reports back what its answers said: how many came back, the lowest remaining
quota of the newest window, the 429s, the permits it did not use. Reports ride on the next
lease, except for what others wait for (the probe's answer, a 429), which is posted at once.

Accounting: when a window is first learnt (from the probe's answer, the only request of that
window then), what is left is Hub's ``X-RateLimit-Remaining`` less the permits out (leased,
not answered); from then on the budget counts its own grants. Permits are void at the reset;
unused ones are handed back. A 429 holds every worker when 429s are dense or the quota is
nearly spent (as the pacer decides, see :meth:`Pacer.throttled`), and the window is learnt
again after it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sink.errors import Interrupted, WaitTooLong
from sink.send.pacing import (
    QUOTA_PLENTY,
    RESET_GUARD,
    THROTTLE_SHARE,
    THROTTLE_WINDOW,
    Pacer,
    parse_quota,
    too_long,
    wait_limit,
)

POLL = 0.02
"""How soon a worker asks again while another one's probe learns the window (seconds)."""
PROBE_TTL = 30.0
"""A probe whose answer never came is given up after this long (its worker died)."""
LEASE = 16
"""The permits a worker asks for in its first lease (the round trip is paid once for them;
those left unused when the worker is done, or its window ends, go back)."""
LEASE_MAX = 512
"""The most permits a worker asks for in one lease."""
LEASE_SECONDS = 0.5
"""A worker's lease grows (doubling, up to :data:`LEASE_MAX`) while it uses one up in less
than this, and shrinks (halving, down to its first size) when one lasts four times longer:
about one round trip per half second at any rate."""
LEASE_SHARE = 0.25
"""A lease larger than :data:`LEASE` takes at most this share of what is left in the window
(and of half a second at a configured rate), so that one fast worker does not hold what the
others need."""


@dataclass(frozen=True, slots=True)
class Lease:
    """Permits granted to a worker: ``permits`` requests may start, the first at ``first``
    (wall time), the others ``spacing`` seconds apart (a configured rate), none at or after
    ``expires``. No permit: ask again at ``retry_at``."""

    permits: int
    expires: float = math.inf
    retry_at: float = 0.0
    first: float = 0.0
    spacing: float = 0.0
    probe: bool = False
    why: str = ""
    """Why nothing was granted: ``quota`` (spent until the reset), ``hold`` (a 429), ``probe``."""


@dataclass(slots=True)
class Report:
    """What a worker's answers said since its last report."""

    answers: int = 0
    throttles: list[float] = field(default_factory=list)
    """The ``Retry-After`` seconds of each 429."""
    quota: tuple[float, float, float | None] | None = None
    """``(remaining, reset_epoch, limit)`` of the newest window seen, its lowest remaining."""
    quota_missing: bool = False
    """An answer came without ``X-RateLimit-*`` headers (the server does not report quota)."""
    unused: int = 0
    unused_expires: float = 0.0
    probe_done: bool = False
    """The answer to this worker's probe is among them: the others may go on."""

    def __bool__(self) -> bool:
        return bool(
            self.answers or self.throttles or self.unused or self.quota_missing or self.probe_done
        )

    def see(self, quota: tuple[float, float, float | None]) -> None:
        """Keep the newest window's lowest remaining."""
        known = self.quota
        newer = known is None or quota[1] > known[1] + 0.5
        if newer or (known is not None and abs(quota[1] - known[1]) <= 0.5 and quota[0] < known[0]):
            self.quota = quota


class Budget:
    """The shared state of one credential's quota (see the module docstring)."""

    def __init__(self, rate: float | None = None, *, clock: Callable[[], float] = time.time):
        self.interval = 1.0 / rate if rate else 0.0
        self._clock = clock
        self.left: float | None = None  # permits left in the window ending at ``reset``
        self.reset = -math.inf
        self.limit: float | None = None
        self.reports_quota: bool | None = None
        self.not_before = -math.inf
        self.probe_until = -math.inf
        self.out = 0  # permits granted, not answered nor handed back
        self.next_slot = -math.inf
        self._answers: deque[bool] = deque(maxlen=THROTTLE_WINDOW)
        self.granted = 0
        self.throttled = 0

    def begin(self, rate: float | None) -> None:
        """A run starts on this credential: learn the window again (Hub's quota may have
        changed since the budget last heard of it); a configured ``rate`` applies to every
        run of the credential from now on (the slowest one wins)."""
        self.left = None
        self.probe_until = -math.inf
        if rate:
            self.interval = max(self.interval, 1.0 / rate)

    def lease(self, want: int, report: Report | None = None) -> Lease:
        """Up to ``want`` permits, after taking ``report`` in."""
        if report is not None:
            self.report(report)
        now = self._clock()
        if now < self.not_before:
            return Lease(0, retry_at=self.not_before, why="hold")
        if self.left is not None and now >= self.reset:
            self.left = None  # the window is over: learn the next one
        expires = math.inf
        probe = False
        if self.reports_quota is False:
            count = self._paced(want)
        elif self.left is None:
            if now < self.probe_until:
                return Lease(0, retry_at=now + POLL, why="probe")
            self.probe_until = now + PROBE_TTL
            count, probe, expires = 1, True, now + PROBE_TTL
        else:
            count = min(want, math.floor(self.left))
            if count <= 0:
                return Lease(0, retry_at=self.reset + RESET_GUARD, why="quota")
            if count > LEASE:
                count = max(LEASE, min(count, math.ceil(self.left * LEASE_SHARE)))
            count = self._paced(count)
            self.left -= count
            expires = self.reset
        count = max(1, count)
        first = max(now, self.next_slot)
        if self.interval:
            self.next_slot = first + count * self.interval
        self.out += count
        self.granted += count
        return Lease(count, expires, first=first, spacing=self.interval, probe=probe)

    def _paced(self, count: int) -> int:
        """At a configured rate, a lease above :data:`LEASE` holds half a second of slots at
        most (the slots are handed out in order: a long lease would push the others back)."""
        if self.interval and count > LEASE:
            return max(LEASE, min(count, math.ceil(LEASE_SECONDS / self.interval)))
        return count

    def report(self, report: Report) -> None:
        """Take a worker's report in."""
        now = self._clock()
        self.out = max(0, self.out - report.answers - report.unused)
        if report.unused and self.left is not None and report.unused_expires == self.reset:
            self.left += report.unused
        throttles = len(report.throttles)
        self.throttled += throttles
        self._answers.extend([False] * max(0, report.answers - throttles))
        self._answers.extend([True] * throttles)
        if report.quota is not None:
            self.reports_quota = True
            self._observe(*report.quota, now=now)
        elif report.quota_missing and self.reports_quota is None:
            self.reports_quota = False
        if report.probe_done:
            self.probe_until = -math.inf
        if report.throttles:
            self._throttled(max(report.throttles), now)

    def _observe(self, remaining: float, reset: float, limit: float | None, *, now: float) -> None:
        if reset <= now:
            return
        if self.left is None or reset > self.reset + 0.5:
            # A new window: Hub's figure, less the permits out that it may not have seen.
            self.left = max(0.0, remaining - self.out)
            self.reset = reset
            self.probe_until = -math.inf
        elif remaining < 1:
            self.left = 0.0  # Hub says it is spent, whatever the count says
        self.limit = limit

    def _throttled(self, seconds: float, now: float) -> None:
        dense = sum(self._answers) >= THROTTLE_SHARE * THROTTLE_WINDOW
        short = False
        if self.left is not None and now < self.reset:
            enough = QUOTA_PLENTY * self.limit if self.limit else float(THROTTLE_WINDOW)
            short = self.left < max(1.0, enough)
        if dense or short or self.left is None:
            self.not_before = max(self.not_before, now + seconds)
            self.left = None
            self.probe_until = -math.inf

    def state(self) -> dict[str, float | int | None]:
        """Figures for tests and benchmarks."""
        return {
            "left": self.left,
            "reset": self.reset,
            "out": self.out,
            "granted": self.granted,
            "throttled": self.throttled,
        }


class BudgetClient(Protocol):
    """How a worker reaches its credential's :class:`Budget` (a Ray actor, or in process)."""

    async def lease(self, want: int, report: Report | None) -> Lease:
        """Permits, after ``report``."""
        ...

    def report(self, report: Report) -> None:
        """Hand in ``report`` without waiting."""
        ...


class LocalBudget:
    """A :class:`Budget` in this process, as a :class:`BudgetClient` (tests)."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget

    async def lease(self, want: int, report: Report | None) -> Lease:
        """Permits, after ``report``."""
        return self.budget.lease(want, report)

    def report(self, report: Report) -> None:
        """Hand in ``report``."""
        self.budget.report(report)


class LeasedPacer(Pacer):
    """A worker's pacer: what a :class:`~sink.send.pacing.Pacer` does in one process (the
    requests in flight the server seems to bear, a 429's own wait, stopping), with the quota,
    its probe and a configured rate left to the shared :class:`Budget`: every request waits
    for a permit first."""

    def __init__(
        self,
        budget: BudgetClient,
        *,
        lease: int = LEASE,
        max_wait: float | None = None,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(None, follow_quota=False, clock=clock, wall=wall, sleep=sleep)
        self.max_wait = max_wait
        self.budget = budget
        self.lease_size = max(1, lease)
        self._lease_min = self.lease_size
        self._granted_at = -math.inf
        self._used_up = False
        self.leases = 0
        self._permits = 0
        self._expires = -math.inf
        self._next = 0.0
        self._spacing = 0.0
        self._probe = False
        self._report = Report()
        self._refill: asyncio.Future[None] | None = None
        self._wall_clock = wall

    async def wait(self) -> None:
        """Wait for a permit of the budget, then for this worker's own slot."""
        start = await self._permit()
        delay = start - self._wall_clock()
        try:
            if delay > 0:
                await self.pause(delay)
            await super().wait()
        except BaseException:
            self._give_back()
            raise

    async def _permit(self) -> float:
        while True:
            if self.stopped:
                raise Interrupted("the run is stopping")
            if self._permits > 0:
                if self._wall_clock() < self._expires:
                    self._permits -= 1
                    self._used_up = self._permits == 0
                    start, self._next = self._next, self._next + self._spacing
                    return start
                self._hand_back()
            refill = self._refill
            if refill is None:
                refill = self._refill = asyncio.ensure_future(self._lease())
            try:
                await asyncio.shield(refill)  # one lease at a time; every waiter shares it
            finally:
                if refill.done() and self._refill is refill:
                    self._refill = None

    def _size_lease(self) -> None:
        """Size the next lease by how long the last one lasted (see :data:`LEASE_SECONDS`)."""
        lasted = self._wall_clock() - self._granted_at
        if self._used_up and lasted < LEASE_SECONDS:
            self.lease_size = min(LEASE_MAX, self.lease_size * 2)
        elif lasted > 4 * LEASE_SECONDS:
            self.lease_size = max(self._lease_min, self.lease_size // 2)
        self._used_up = False

    async def _lease(self) -> None:
        report, self._report = self._report, Report()
        self._size_lease()
        lease = await self.budget.lease(self.lease_size, report)
        self.leases += 1
        if lease.permits > 0:
            self._granted_at = self._wall_clock()
            self._permits = lease.permits
            self._expires = lease.expires
            self._next = lease.first
            self._spacing = lease.spacing
            self._probe = lease.probe
            return
        seconds = lease.retry_at - self._wall_clock()
        if seconds > wait_limit(self.max_wait):
            raise WaitTooLong(
                too_long(seconds, None, f"for its quota ({lease.why})", self.max_wait)
                + "; run again after the reset, or with another credential"
            )
        if lease.why == "quota" and self.on_wait is not None:
            self.on_wait(seconds, "quota")
        if seconds > 0:
            self._account(self._clock() + seconds, self._clock())
            await self.pause(seconds)

    def _give_back(self) -> None:
        if self._wall_clock() < self._expires:
            self._permits += 1

    def _hand_back(self) -> None:
        self._report.unused += self._permits
        self._report.unused_expires = self._expires
        self._permits = 0

    def complete(
        self,
        headers: Mapping[str, str] | None,
        *,
        throttled: bool = False,
        overloaded: bool = False,
    ) -> None:
        """The answer is in: for this worker's pacer, and for the next report."""
        super().complete(headers, throttled=throttled, overloaded=overloaded)
        report = self._report
        report.answers += 1
        if headers is not None:
            quota = parse_quota(headers)
            if quota is not None:
                report.see(quota)
            else:
                report.quota_missing = True
        if self._probe:
            self._probe = False
            report.probe_done = True
            self._post()  # the other workers wait for the probe's answer

    def throttled(self, seconds: float) -> bool:
        """A 429: the budget hears of it at once (it may hold every worker)."""
        self._report.throttles.append(seconds)
        self._post()
        return super().throttled(seconds)

    def _post(self) -> None:
        report, self._report = self._report, Report()
        if report:
            self.budget.report(report)

    def release(self) -> None:
        """Hand the unused permits and what is not reported yet back (the worker is done)."""
        if self._permits:
            self._hand_back()
        self._post()
