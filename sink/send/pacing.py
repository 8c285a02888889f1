"""Rate-limit arithmetic and the pacer that spaces requests out.

Docker Hub limits a credential to a number of requests per minute and says where it stands on
every response that is not throttled: ``X-RateLimit-Limit`` (per minute),
``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (the Unix time the window resets). A
throttled response is a 429 with ``Retry-After`` (seconds, or an HTTP date) or, in older
revisions, ``X-Retry-After`` (a Unix time).

The functions here are pure arithmetic over explicit clocks. :class:`Pacer` applies them to
the requests of one credential (reads and writes alike): it hands every request a start time (a
slot) so that

- a configured rate (requests per second) is never exceeded;
- the quota Hub says is left is spent as fast as the requests can go, then every request waits
  for the reset (a burst; requests in flight count as already spent), so no request is sent
  that the quota refuses: a job smaller than a couple of windows ends a window early, a long
  one uses every window, as even spacing would;
- answers that say "slow down" without saying the quota (a 429 without ``X-RateLimit-*``
  headers, a 503) lower the number of requests in flight when they are a quarter of the
  recent answers (multiplicative decrease, :data:`ADAPT_DECREASE`), and each answer without
  one raises it again (additive increase, one request per round), as Vector's adaptive
  request concurrency does;
- a 429 delays only its own request, for its own ``Retry-After``
  (:meth:`Pacer.throttled`), unless 429s are dense (a quarter of the recent answers) or the
  quota Hub reported is nearly spent: then nobody sends before the ``Retry-After`` ends (a
  shared "not before").

Until the first rate-limit headers of a window are known, one request goes alone (a probe) and
the others wait for its answer, so a small quota is not blown by the first burst.

Every wait is bounded and interruptible. No wait is longer than the run's ``retry.max_seconds``
nor :data:`MAX_WAIT` (15 minutes), whatever the server asks: a quota that Hub says is spent
until a reset further away than that raises :class:`~sink.errors.WaitTooLong` naming the
headers (see :func:`wait_limit` and :func:`too_long`). :meth:`Pacer.stop` wakes every request
waiting in :meth:`Pacer.wait` or :meth:`Pacer.pause` with :class:`~sink.errors.Interrupted`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime

from sink.errors import Interrupted, WaitTooLong

# Values of X-Retry-After below this are read as seconds, above it as a Unix time (lenient:
# the spec says epoch, some servers send a delay). 1e9 s is September 2001.
_EPOCH_THRESHOLD = 1e9

# A 429 is isolated when fewer than THROTTLE_SHARE of the last THROTTLE_WINDOW answers were
# 429s; a quota is plentiful when at least QUOTA_PLENTY of it (of the limit, if known) is left.
THROTTLE_WINDOW = 16
THROTTLE_SHARE = 0.25
QUOTA_PLENTY = 0.1

# Adaptive concurrency: when "slow down" answers that do not say the quota (a 429 without
# X-RateLimit-*, a 503) are ADAPT_SHARE of the last ADAPT_WINDOW answers, the requests in
# flight are cut to ADAPT_DECREASE of their number, at most once per round (the answers to the
# requests that were in flight then); every other answer adds 1/limit, one request per round.
# Below a quarter, such answers are taken for noise (a few 503s in a healthy run): cutting on
# each one would halve a run that a fixed number in flight gets through faster.
ADAPT_WINDOW = 32
ADAPT_SHARE = 0.25
ADAPT_DECREASE = 0.5

# Sent this long after the advertised reset: X-RateLimit-Reset is a whole second and the
# server's window may end a fraction after it. Costs well under 1% of a one-minute window.
RESET_GUARD = 0.1

# The hard ceiling of any one wait, whatever the server asks and whatever retry.max_seconds
# says: a run never sleeps longer than this in one go.
MAX_WAIT = 900.0

# A 429 always waits at least this long, even when it says Retry-After: 0 (or less, or
# nothing): a server that throttles without asking for a pause is not hammered.
MIN_THROTTLE_WAIT = 1.0


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value from any mapping; case-insensitive (``name`` is lowercase)."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, item in headers.items():
        if key.lower() == name:
            return item
    return None


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait according to a throttled response, or ``None`` if it does not say.

    ``Retry-After`` is read as seconds or as an HTTP date; if it is absent or unreadable,
    ``X-Retry-After`` is read as a Unix time (or as seconds when it is too small to be one).
    ``now`` is the current Unix time. Never negative.
    """
    found = retry_after(headers, now)
    return None if found is None else found[0]


def retry_after(headers: Mapping[str, str], now: float) -> tuple[float, str] | None:
    """Like :func:`parse_retry_after`, with the header that said it as it came
    (``"Retry-After: 30"``), for messages."""
    value = header(headers, "retry-after")
    if value is not None:
        seconds = _float(value)
        if seconds is not None:
            return max(0.0, seconds), f"Retry-After: {value.strip()}"
        try:
            when = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None and when.tzinfo is not None:
            return max(0.0, when.timestamp() - now), f"Retry-After: {value.strip()}"
    raw = header(headers, "x-retry-after")
    number = _float(raw)
    if number is None or raw is None:
        return None
    asked = f"X-Retry-After: {raw.strip()}"
    if number >= _EPOCH_THRESHOLD * 1000:  # milliseconds since the epoch
        number /= 1000
    if number >= _EPOCH_THRESHOLD:
        return max(0.0, number - now), asked
    return max(0.0, number), asked


def wait_limit(max_seconds: float | None) -> float:
    """The longest one wait may be: ``retry.max_seconds``, never more than :data:`MAX_WAIT`."""
    if max_seconds is None or not math.isfinite(max_seconds):
        return MAX_WAIT
    return min(max(0.0, max_seconds), MAX_WAIT)


def too_long(seconds: float, asked: str | None, where: str, max_seconds: float | None) -> str:
    """The message for a wait Docker Hub asked for that is longer than :func:`wait_limit`:
    ``Docker Hub asked to wait 1000000000 s (Retry-After: 1000000000) on the token exchange,
    more than retry.max_seconds (300 s)``."""
    said = f" ({asked})" if asked else ""
    limit = wait_limit(max_seconds)
    if max_seconds is not None and max_seconds <= MAX_WAIT:
        bound = f"retry.max_seconds ({_secs(max_seconds)} s)"
    else:
        bound = f"the longest wait sink allows ({_secs(limit)} s)"
    place = f" {where}" if where else ""
    return f"Docker Hub asked to wait {_secs(seconds)} s{said}{place}, more than {bound}"


def _secs(seconds: float) -> str:
    if not math.isfinite(seconds):
        return str(seconds)
    return f"{seconds:.0f}" if seconds >= 10 or seconds == int(seconds) else f"{seconds:.1f}"


def parse_quota(headers: Mapping[str, str]) -> tuple[float, float, float | None] | None:
    """``(remaining, reset_epoch, limit)`` from the ``X-RateLimit-*`` headers, or ``None``
    when ``Remaining`` or ``Reset`` is missing or unreadable."""
    remaining = _float(header(headers, "x-ratelimit-remaining"))
    reset = _float(header(headers, "x-ratelimit-reset"))
    if remaining is None or reset is None:
        return None
    return max(0.0, remaining), reset, _float(header(headers, "x-ratelimit-limit"))


def backoff_delay(
    attempt: int, base: float, cap: float, uniform: Callable[[float, float], float]
) -> float:
    """Full-jitter exponential backoff: a uniform draw in ``[0, min(cap, base * 2**attempt)]``
    (``attempt`` counts failures so far, from 0)."""
    ceiling = min(cap, base * 2.0 ** min(attempt, 62))
    return uniform(0.0, ceiling)


class Schedule:
    """Pure slot arithmetic: hands out start times at least ``interval`` apart, never before
    ``not_before``. Slots are virtual: lateness of one waker does not shift the others."""

    __slots__ = ("next", "not_before")

    def __init__(self) -> None:
        self.next = -math.inf
        self.not_before = -math.inf

    def reserve(self, now: float, interval: float, tolerance: float = 0.0) -> float:
        """Reserve the earliest slot at or after ``now``; the next one is ``interval`` later.

        ``tolerance`` lets a slot run up to that many seconds ahead of the even schedule (a
        burst of ``tolerance / interval`` starts), as in the generic cell rate algorithm."""
        slot = max(now, self.next - tolerance, self.not_before)
        self.next = max(slot, self.next) + interval
        return slot

    def hold(self, until: float) -> bool:
        """Nobody starts before ``until``. Returns whether this moved the shared instant."""
        if until <= self.not_before:
            return False
        self.not_before = until
        # Slots reserved before the hold are re-reserved by their holders after it.
        self.next = until
        return True


class Pacer:
    """Spaces request starts by a fixed rate, by Hub's advertised quota, by 429 holds and by
    the number of requests in flight the server seems to bear (one pacer per credential).

    Use: ``await pacer.wait()`` before sending, then ``pacer.complete(headers)`` when the
    answer is known (``None`` for a failure or a 429: no news about the quota; ``overloaded``
    for a 429 without quota headers or a 503); ``pacer.throttled(seconds)`` after a 429.
    ``clock`` is monotonic, ``wall`` is Unix time, ``sleep`` is awaited to wait: all three are
    injectable so that the arithmetic can be tested without sleeping.

    ``max_wait`` is the run's ``retry.max_seconds``: a spent quota whose reset is further away
    than :func:`wait_limit` of it raises :class:`~sink.errors.WaitTooLong` instead of waiting.
    ``on_wait(seconds, reason)`` is told when every start is held back for a quota reset.
    :meth:`stop` ends every wait at once with :class:`~sink.errors.Interrupted`.
    """

    def __init__(
        self,
        rate: float | None = None,
        *,
        follow_quota: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        max_wait: float | None = None,
        on_wait: Callable[[float, str], None] | None = None,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self.max_wait = max_wait
        self.on_wait = on_wait
        self.stopped = False
        self._stop_signal: asyncio.Future[None] | None = None
        self._reported: tuple[float, float] = (0.0, 0.0)  # Hub's last remaining and reset
        self.min_interval = 1.0 / rate if rate else 0.0
        self.follow_quota = follow_quota
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self.schedule = Schedule()
        self.in_flight = 0
        # The quota: an estimate of the requests left until ``reset_at`` (monotonic seconds).
        self.remaining: float | None = None
        self.reset_at = -math.inf
        self.limit: float | None = None
        # Whether the server sends X-RateLimit-* at all (None: not known yet).
        self.reports_quota: bool | None = None
        self._probe_out = False
        self._probe_done: asyncio.Event | None = None
        self._holds = 0
        self._waiting = 0  # requests with a reserved slot, not yet started
        self.held_seconds = 0.0  # wall time during which every start was held back
        self._held_until = -math.inf
        self._answers: deque[bool] = deque(maxlen=THROTTLE_WINDOW)  # was it a 429, newest last
        # Adaptive concurrency: the requests allowed in flight (inf: no limit of the pacer's).
        self.allowed = math.inf
        self._ceiling = math.inf  # in flight when it was first cut: back to no limit above it
        self._signals: deque[bool] = deque(maxlen=ADAPT_WINDOW)  # "slow down" answers
        self._calm = 0  # answers to wait for before the next cut (one cut per round)
        self._room: asyncio.Event | None = None  # set when a request may start again

    # -- what the server says ---------------------------------------------------------------

    def _quota_known(self, now: float) -> bool:
        return self.remaining is not None and now < self.reset_at

    def complete(
        self,
        headers: Mapping[str, str] | None,
        *,
        throttled: bool = False,
        overloaded: bool = False,
    ) -> None:
        """A request started by :meth:`wait` is over; ``headers`` are its response's, or
        ``None`` when it tells nothing about the quota (a failure, a 429, a 5xx);
        ``throttled``: the answer was a 429 (then call :meth:`throttled`); ``overloaded``: it
        said "slow down" without saying the quota (a 429 without ``X-RateLimit-*``, a 503)."""
        self.in_flight -= 1
        self._answers.append(throttled)
        self._adapt(overloaded)
        if headers is not None and self.follow_quota:
            quota = parse_quota(headers)
            if quota is not None:
                self.reports_quota = True
                self._observe(*quota)
            elif self.reports_quota is None:
                self.reports_quota = False
        if self._probe_out:
            self._release_probe()

    def _adapt(self, overloaded: bool) -> None:
        """Additive increase, multiplicative decrease of :attr:`allowed`."""
        signals = self._signals
        signals.append(overloaded)
        if self._calm > 0:
            self._calm -= 1
        if overloaded:
            dense = len(signals) >= ADAPT_WINDOW // 2 and sum(signals) >= ADAPT_SHARE * len(signals)
            if dense and self._calm == 0:
                current = min(self.allowed, float(self.in_flight + 1))
                if math.isinf(self._ceiling):
                    self._ceiling = current
                self.allowed = max(1.0, math.floor(current * ADAPT_DECREASE))
                self._calm = self.in_flight  # the answers of this round do not cut again
        elif not math.isinf(self.allowed):
            self.allowed += 1.0 / self.allowed
            if self.allowed >= self._ceiling:
                self.allowed = math.inf
        room = self._room
        if room is not None and self.in_flight + self._waiting < self.allowed:
            self._room = None
            room.set()

    def _release_probe(self) -> None:
        self._probe_out = False
        if self._probe_done is not None:
            self._probe_done.set()
            self._probe_done = None

    def _observe(self, remaining: float, reset_epoch: float, limit: float | None) -> None:
        now = self._clock()
        self._reported = (remaining, reset_epoch)
        reset_at = now + (reset_epoch - self._wall())
        if reset_at <= now:
            return
        # Requests in flight, or about to start in a reserved slot, may not have been counted
        # yet: count them as spent.
        unseen = self.in_flight + self._waiting
        left = remaining - unseen
        if self._quota_known(now) and abs(reset_at - self.reset_at) < 1.0:
            # The same window: answers arrive out of order, so trust the lowest figure; but
            # with nothing else out, the figure is exact (the lowest one counted as spent the
            # requests then in flight that Hub had already counted).
            self.remaining = left if unseen == 0 else min(self.remaining or 0.0, left)
        elif not self._quota_known(now) or reset_at > self.reset_at:
            self.remaining = left
            self.reset_at = reset_at
        self.limit = limit

    def throttled(self, seconds: float) -> bool:
        """A 429 asked to wait ``seconds``. Returns False when only the throttled request
        should wait (the caller sleeps, the others go on): the 429 is isolated and the quota
        Hub reported in this window is not nearly spent, or Hub does not say its quota (a
        429 then is a sign to slow down, see :meth:`complete`, not to stop). Holds every
        start for ``seconds`` and returns True when 429s are dense (a quarter of the recent
        answers) or the reported quota is nearly spent."""
        now = self._clock()
        isolated = sum(self._answers) < THROTTLE_SHARE * THROTTLE_WINDOW
        if isolated and not self._quota_short(now):
            return False
        self.hold(seconds)
        return True

    def _quota_short(self, now: float) -> bool:
        """Whether Hub reported, in this window, a quota that is nearly spent."""
        if not self.follow_quota or not self._quota_known(now) or self.remaining is None:
            return False
        enough = QUOTA_PLENTY * self.limit if self.limit else float(THROTTLE_WINDOW)
        return self.remaining < max(1.0, enough)

    def hold(self, seconds: float) -> None:
        """Nobody starts for ``seconds`` (a 429's ``Retry-After``); the quota is re-learnt after."""
        now = self._clock()
        self.remaining = None
        # Never longer than the longest wait (callers refuse longer asks before holding).
        seconds = min(max(0.0, seconds), wait_limit(self.max_wait))
        self._hold_until(now + seconds, now)

    def _hold_until(self, until: float, now: float) -> None:
        self._account(until, now)
        if self.schedule.hold(until):
            self._holds += 1

    def _account(self, until: float, now: float) -> None:
        # Wall time during which nothing could start, each stretch counted once.
        start = max(now, self._held_until)
        if until > start:
            self.held_seconds += until - start
            self._held_until = until

    # -- stopping ---------------------------------------------------------------------------

    def stop(self) -> None:
        """End every wait now and refuse new ones (:class:`~sink.errors.Interrupted`)."""
        self.stopped = True
        signal = self._stop_signal
        if signal is not None and not signal.done():
            signal.set_result(None)

    def resume(self) -> None:
        """Wait again after :meth:`stop` (a new run on the same pacer)."""
        self.stopped = False
        self._stop_signal = None

    async def pause(
        self, seconds: float, sleep: Callable[[float], Awaitable[object]] | None = None
    ) -> None:
        """Sleep ``seconds`` (with ``sleep``, by default the pacer's); raises
        :class:`~sink.errors.Interrupted` at once when :meth:`stop` is called meanwhile."""
        if self.stopped:
            raise Interrupted("the run is stopping")
        if seconds <= 0:
            return
        await self._guarded((sleep or self._sleep)(seconds))

    async def _guarded(self, waiting: Awaitable[object]) -> None:
        """Await ``waiting`` unless :meth:`stop` comes first."""
        loop = asyncio.get_running_loop()
        signal = self._stop_signal
        if signal is None or signal.get_loop() is not loop:
            signal = self._stop_signal = loop.create_future()
        task = asyncio.ensure_future(waiting)
        try:
            await asyncio.wait((task, signal), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            raise
        if not task.done():
            task.cancel()
            raise Interrupted("the run is stopping")
        task.result()

    def _spent_until(self, now: float) -> float:
        """Seconds to wait for the quota's reset; raises WaitTooLong when that is too long."""
        seconds = self.reset_at + RESET_GUARD - now
        if seconds > wait_limit(self.max_wait):
            remaining, reset = self._reported
            asked = f"X-RateLimit-Remaining: {_secs(remaining)}, X-RateLimit-Reset: {_secs(reset)}"
            raise WaitTooLong(
                too_long(seconds, asked, "for its quota to reset", self.max_wait)
                + "; run again after the reset, or with another credential"
            )
        return seconds

    # -- taking a slot ----------------------------------------------------------------------

    def interval(self, now: float) -> float:
        """The spacing after a start at ``now``: the fixed rate's. The quota is not spread
        out: what is left is spent at once, then :meth:`wait` waits for the reset."""
        return self.min_interval

    async def wait(self) -> None:
        """Wait for this request's slot. Every call must be followed by :meth:`complete`."""
        clock = self._clock
        probe = False
        if self.stopped:
            raise Interrupted("the run is stopping")
        try:
            while True:
                if self.in_flight + self._waiting >= self.allowed:
                    # Fewer in flight, the server seems to say: wait for an answer.
                    if self._room is None:
                        self._room = asyncio.Event()
                    await self._guarded(self._room.wait())
                    continue
                now = clock()
                if self.follow_quota:
                    if self.remaining is not None and self.remaining < 1 and now < self.reset_at:
                        # The quota is spent: wait for the reset, then learn the new window.
                        seconds = self._spent_until(now)
                        self._account(self.reset_at + RESET_GUARD, now)
                        if self.on_wait is not None:
                            self.on_wait(seconds, "quota")
                        await self.pause(seconds)
                        continue
                    if not probe and self.reports_quota is not False and not self._quota_known(now):
                        if self._probe_out:
                            # Another request is finding out what the quota is: wait for it.
                            if self._probe_done is None:
                                self._probe_done = asyncio.Event()
                            await self._guarded(self._probe_done.wait())
                            continue
                        self._probe_out = probe = True
                schedule = self.schedule
                earliest = max(now, schedule.next, schedule.not_before)
                slot = schedule.reserve(now, self.interval(earliest))
                if self.remaining is not None:
                    self.remaining -= 1
                if slot <= now:
                    break
                holds = self._holds
                self._waiting += 1
                try:
                    await self.pause(slot - now)
                finally:
                    self._waiting -= 1
                if holds == self._holds or clock() >= self.schedule.not_before:
                    break
                # A hold was placed while this request slept: queue again behind it.
        except BaseException:
            if probe:
                self._release_probe()
            raise
        self.in_flight += 1
