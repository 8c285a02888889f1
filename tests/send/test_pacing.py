"""Rate-limit arithmetic and the pacer, on fixed and fake clocks (nothing really sleeps)."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sink.errors import Interrupted
from sink.send.pacing import (
    ADAPT_WINDOW,
    RESET_GUARD,
    Pacer,
    Schedule,
    backoff_delay,
    parse_quota,
    parse_retry_after,
)

NOW = 1_700_000_000.0  # a fixed Unix time


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """Monotonic and wall clocks that move only when someone sleeps."""

    def __init__(self, start: float = 100.0, wall_offset: float = NOW - 100.0) -> None:
        self.now = start
        self.wall_offset = wall_offset
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self.wall_offset

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


def make_pacer(clock: FakeClock, rate: float | None = None, follow_quota: bool = True) -> Pacer:
    return Pacer(
        rate, follow_quota=follow_quota, clock=clock.monotonic, wall=clock.wall, sleep=clock.sleep
    )


def quota_headers(remaining: int, reset_epoch: float, limit: int = 100) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(int(reset_epoch)),
    }


# -- parse_retry_after ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"Retry-After": " 0 "}, 0.0),
        ({"Retry-After": "-3"}, 0.0),
        ({"X-Retry-After": str(int(NOW) + 12)}, 12.0),
        ({"X-Retry-After": str(int(NOW) - 12)}, 0.0),
        ({"X-Retry-After": str(int(NOW * 1000) + 4000)}, 4.0),  # milliseconds
        ({"X-Retry-After": "30"}, 30.0),  # too small to be a date: seconds
        ({"Retry-After": "5", "X-Retry-After": str(int(NOW) + 60)}, 5.0),  # Retry-After wins
        ({"Retry-After": "soon", "X-Retry-After": str(int(NOW) + 9)}, 9.0),
        ({}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, NOW) == expected


def test_parse_retry_after_reads_an_http_date() -> None:
    when = datetime.fromtimestamp(NOW + 90, tz=UTC)
    assert parse_retry_after({"Retry-After": format_datetime(when, usegmt=True)}, NOW) == 90.0
    past = datetime.fromtimestamp(NOW - 90, tz=UTC)
    assert parse_retry_after({"Retry-After": format_datetime(past, usegmt=True)}, NOW) == 0.0


@given(st.integers(min_value=0, max_value=10**6))
def test_parse_retry_after_seconds_round_trip(seconds: int) -> None:
    assert parse_retry_after({"Retry-After": str(seconds)}, NOW) == float(seconds)


# -- quota arithmetic -------------------------------------------------------------------------


def test_parse_quota() -> None:
    assert parse_quota(quota_headers(40, NOW + 30, 100)) == (40.0, float(int(NOW + 30)), 100.0)
    assert parse_quota({"x-ratelimit-remaining": "3", "x-ratelimit-reset": "17"}) == (
        3.0,
        17.0,
        None,
    )
    assert parse_quota({"X-RateLimit-Remaining": "-1", "X-RateLimit-Reset": "5"}) == (
        0.0,
        5.0,
        None,
    )
    assert parse_quota({"X-RateLimit-Remaining": "3"}) is None
    assert parse_quota({"X-RateLimit-Remaining": "x", "X-RateLimit-Reset": "5"}) is None


def test_backoff_delay_is_full_jitter_under_a_cap() -> None:
    upper = lambda low, high: high  # noqa: E731 - the largest draw
    lower = lambda low, high: low  # noqa: E731
    assert [backoff_delay(n, 0.5, 30.0, upper) for n in range(8)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        30.0,
        30.0,
    ]
    assert backoff_delay(5, 0.5, 30.0, lower) == 0.0
    assert backoff_delay(10_000, 0.5, 30.0, upper) == 30.0  # no overflow


# -- Schedule ---------------------------------------------------------------------------------


def test_schedule_spaces_slots_and_never_goes_back() -> None:
    schedule = Schedule()
    assert [schedule.reserve(10.0, 0.5) for _ in range(3)] == [10.0, 10.5, 11.0]
    # Idle time is not saved up as a burst.
    assert schedule.reserve(20.0, 0.5) == 20.0
    assert schedule.reserve(20.0, 0.5) == 20.5


def test_schedule_tolerance_allows_a_bounded_burst() -> None:
    schedule = Schedule()
    slots = [schedule.reserve(10.0, 0.5, tolerance=1.0) for _ in range(5)]
    # Two intervals' worth of tolerance: three starts at once, then back to the spacing.
    assert slots == [10.0, 10.0, 10.0, 10.5, 11.0]


def test_schedule_hold_moves_every_later_slot() -> None:
    schedule = Schedule()
    schedule.reserve(10.0, 1.0)
    assert schedule.hold(15.0) is True
    assert schedule.hold(12.0) is False  # an earlier hold does not shorten a later one
    assert schedule.reserve(11.0, 1.0) == 15.0
    assert schedule.reserve(11.0, 1.0) == 16.0


# -- Pacer ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_pacer_without_limits_never_sleeps() -> None:
    clock = FakeClock()
    pacer = make_pacer(clock, follow_quota=False)
    for _ in range(100):
        await pacer.wait()
    assert clock.sleeps == []
    assert pacer.in_flight == 100


@pytest.mark.anyio
async def test_pacer_fixed_rate_spaces_starts() -> None:
    clock = FakeClock()
    pacer = make_pacer(clock, rate=4.0, follow_quota=False)
    starts = []
    for _ in range(5):
        await pacer.wait()
        starts.append(clock.now)
        pacer.complete(None)
    assert starts == pytest.approx([100.0, 100.25, 100.5, 100.75, 101.0])


@pytest.mark.anyio
async def test_pacer_spends_the_remaining_quota_at_once_then_waits_for_the_reset() -> None:
    clock = FakeClock()
    pacer = make_pacer(clock)
    await pacer.wait()  # the probe
    reset = clock.wall() + 20
    pacer.complete(quota_headers(remaining=10, reset_epoch=reset))
    for _ in range(10):
        await pacer.wait()  # all ten go now, none spread over the window
    assert clock.sleeps == [] and pacer.in_flight == 10
    eleventh = asyncio.create_task(pacer.wait())
    for _ in range(5):
        await asyncio.sleep(0)
    # The quota is spent: the eleventh waits for the reset, not sent into a 429.
    assert clock.wall() >= reset + RESET_GUARD
    assert clock.sleeps == [pytest.approx(20 + RESET_GUARD)]
    eleventh.cancel()


@pytest.mark.anyio
async def test_pacer_trusts_hubs_figure_when_nothing_else_is_out() -> None:
    clock = FakeClock()
    pacer = make_pacer(clock)
    await pacer.wait()
    reset = clock.wall() + 60
    pacer.complete(quota_headers(remaining=20, reset_epoch=reset))
    for _ in range(4):
        await pacer.wait()
    # Hub had counted all four; each answer counts the others still out as spent too...
    pacer.complete(quota_headers(remaining=16, reset_epoch=reset))
    assert pacer.remaining == 13
    pacer.complete(quota_headers(remaining=16, reset_epoch=reset))
    pacer.complete(quota_headers(remaining=16, reset_epoch=reset))
    assert pacer.remaining == 13  # the lowest figure
    # ...the last one, with nothing else out, is exact: what was counted twice is given back.
    pacer.complete(quota_headers(remaining=16, reset_epoch=reset))
    assert pacer.remaining == 16


@pytest.mark.anyio
async def test_pacer_counts_requests_in_flight_as_spent() -> None:
    clock = FakeClock()
    pacer = make_pacer(clock)
    for _ in range(5):
        pacer.in_flight += 1  # five requests still out
    await pacer.wait()
    pacer.complete(quota_headers(remaining=10, reset_epoch=clock.wall() + 60))
    # 10 left, 5 of them possibly already taken by the requests in flight.
    assert pacer.remaining == 5
    assert pacer.interval(clock.now) == 0.0  # not spread out


@pytest.mark.anyio
async def test_pacer_waits_for_the_reset_when_the_quota_is_spent() -> None:
    clock = FakeClock()
    pacer = make_pacer(clock)
    await pacer.wait()
    reset = clock.wall() + 30
    pacer.complete(quota_headers(remaining=0, reset_epoch=reset))
    await pacer.wait()
    assert clock.wall() >= reset + RESET_GUARD
    assert pacer.held_seconds == pytest.approx(30 + RESET_GUARD)


@pytest.mark.anyio
async def test_pacer_probe_goes_alone_until_the_quota_is_known() -> None:
    clock = FakeClock()
    pacer = make_pacer(clock)
    await pacer.wait()  # the first request probes
    second = asyncio.create_task(pacer.wait())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not second.done()  # held back until the probe's answer
    pacer.complete(quota_headers(remaining=50, reset_epoch=clock.wall() + 60))
    await asyncio.wait_for(second, 1)
    assert pacer.in_flight == 1


@pytest.mark.anyio
async def test_pacer_stops_probing_for_a_server_without_quota_headers() -> None:
    clock = FakeClock()
    pacer = make_pacer(clock)
    await pacer.wait()
    pacer.complete({"Content-Type": "application/json"})
    assert pacer.reports_quota is False
    for _ in range(10):
        await pacer.wait()  # would block forever if every request were a probe
    assert pacer.in_flight == 10
    assert clock.sleeps == []


@pytest.mark.anyio
async def test_pacer_cancelled_probe_releases_the_others() -> None:
    clock = FakeClock()
    pacer = make_pacer(clock, rate=0.001)  # the second slot is far away: the probe sleeps
    await pacer.wait()
    pacer.complete(None)  # no quota news: the next request probes again
    blocked = asyncio.Event()

    async def never(seconds: float) -> None:
        blocked.set()
        await asyncio.Event().wait()

    pacer._sleep = never
    probe = asyncio.create_task(pacer.wait())
    await blocked.wait()
    other = asyncio.create_task(pacer.wait())
    await asyncio.sleep(0)
    probe.cancel()
    pacer._sleep = clock.sleep
    await asyncio.wait_for(other, 1)
    assert pacer.in_flight == 1


@pytest.mark.anyio
async def test_pacer_hold_keeps_everyone_back_until_it_ends() -> None:
    clock = FakeClock()
    pacer = make_pacer(clock, follow_quota=False)
    await pacer.wait()
    pacer.complete(None)
    pacer.hold(7.5)
    await pacer.wait()
    assert clock.now >= 107.5
    assert pacer.held_seconds == pytest.approx(7.5)


@pytest.mark.anyio
async def test_pacer_sleeper_requeues_behind_a_hold_placed_while_it_slept() -> None:
    clock = FakeClock()
    pacer = make_pacer(clock, rate=1.0, follow_quota=False)
    await pacer.wait()  # slot 100
    original_sleep = clock.sleep

    async def sleep_then_hold(seconds: float) -> None:
        pacer._sleep = original_sleep
        pacer.hold(10.0)  # a 429 arrives while this request waits for its slot (101)
        await original_sleep(seconds)

    pacer._sleep = sleep_then_hold
    await pacer.wait()
    assert clock.now >= 110.0  # not at 101: the hold placed at 100 runs until 110


def test_pacer_rejects_a_non_positive_rate() -> None:
    with pytest.raises(ValueError, match="rate"):
        Pacer(0.0)


# -- bounded, interruptible waits -------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": " 30 "}, (30.0, "Retry-After: 30")),
        ({"Retry-After": "-2"}, (0.0, "Retry-After: -2")),
        ({"X-Retry-After": str(int(NOW) + 12)}, (12.0, f"X-Retry-After: {int(NOW) + 12}")),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_names_the_header_it_read(
    headers: dict[str, str], expected: tuple[float, str] | None
) -> None:
    from sink.send.pacing import retry_after

    assert retry_after(headers, NOW) == expected


def test_too_long_names_the_wait_the_header_and_the_limit() -> None:
    from sink.send.pacing import MAX_WAIT, too_long, wait_limit

    assert wait_limit(300.0) == 300.0
    assert wait_limit(10**9) == MAX_WAIT == 900.0
    assert too_long(1e9, "Retry-After: 1000000000", "on the token exchange", 300.0) == (
        "Docker Hub asked to wait 1000000000 s (Retry-After: 1000000000) on the token "
        "exchange, more than retry.max_seconds (300 s)"
    )
    assert "the longest wait sink allows (900 s)" in too_long(1000.0, None, "", 3600.0)


@pytest.mark.anyio
async def test_pacer_refuses_to_wait_for_a_quota_reset_beyond_the_limit() -> None:
    from sink.errors import StopRun, WaitTooLong

    clock = FakeClock()
    pacer = Pacer(clock=clock.monotonic, wall=clock.wall, sleep=clock.sleep, max_wait=300.0)
    await pacer.wait()
    reset = int(clock.wall()) + 10**9
    pacer.complete(quota_headers(remaining=0, reset_epoch=reset))
    with pytest.raises(WaitTooLong) as caught:
        await pacer.wait()
    assert isinstance(caught.value, StopRun)
    message = str(caught.value)
    assert f"(X-RateLimit-Remaining: 0, X-RateLimit-Reset: {reset})" in message
    assert "more than retry.max_seconds (300 s)" in message
    assert clock.sleeps == []  # nothing was waited
    assert pacer.in_flight == 0


@pytest.mark.anyio
async def test_pacer_waits_for_a_reasonable_reset_and_says_so() -> None:
    clock = FakeClock()
    told: list[tuple[float, str]] = []
    pacer = Pacer(
        clock=clock.monotonic,
        wall=clock.wall,
        sleep=clock.sleep,
        max_wait=300.0,
        on_wait=lambda seconds, why: told.append((seconds, why)),
    )
    await pacer.wait()
    pacer.complete(quota_headers(remaining=0, reset_epoch=clock.wall() + 120))
    await pacer.wait()
    assert told == [(pytest.approx(120 + RESET_GUARD), "quota")]
    assert pacer.held_seconds == pytest.approx(120 + RESET_GUARD)


@pytest.mark.anyio
async def test_a_hold_is_never_longer_than_the_limit() -> None:
    clock = FakeClock()
    pacer = Pacer(
        follow_quota=False, clock=clock.monotonic, wall=clock.wall, sleep=clock.sleep, max_wait=60.0
    )
    pacer.hold(10**9)
    await pacer.wait()
    assert clock.now - 100.0 <= 60.0


@pytest.mark.anyio
@pytest.mark.parametrize("waiting_for", ["hold", "quota", "probe", "pause"])
async def test_stop_ends_every_wait_of_the_pacer(waiting_for: str) -> None:
    from sink.errors import Interrupted

    started = asyncio.Event()

    async def forever(seconds: float) -> None:
        started.set()
        await asyncio.Event().wait()

    clock = FakeClock()
    pacer = Pacer(
        clock=clock.monotonic,
        wall=clock.wall,
        sleep=forever,
        follow_quota=waiting_for in ("quota", "probe"),
    )
    if waiting_for == "hold":
        pacer.hold(30.0)
    elif waiting_for == "quota":
        await pacer.wait()
        pacer.complete(quota_headers(remaining=0, reset_epoch=clock.wall() + 60))
    elif waiting_for == "probe":
        await pacer.wait()  # the probe is out; the next request waits for its answer
    waiter = asyncio.create_task(pacer.pause(30.0) if waiting_for == "pause" else pacer.wait())
    if waiting_for == "probe":
        for _ in range(5):
            await asyncio.sleep(0)
    else:
        await started.wait()
    assert not waiter.done()
    pacer.stop()
    with pytest.raises(Interrupted):
        await asyncio.wait_for(waiter, 10)
    with pytest.raises(Interrupted):
        await pacer.wait()  # no new wait starts after a stop
    pacer.resume()
    pacer.follow_quota = False
    pacer.schedule.not_before = -math.inf
    pacer._sleep = clock.sleep
    await pacer.wait()  # and a resumed pacer works again


def test_a_429_waits_alone_unless_429s_are_dense_or_the_quota_short() -> None:
    clock = FakeClock()
    pacer = make_pacer(clock)
    for _ in range(THROTTLE_ANSWERS):
        pacer.in_flight += 1
        pacer.complete(None)
    # Hub does not say its quota: an isolated 429 delays only its own request.
    pacer.in_flight += 1
    pacer.complete(None, throttled=True, overloaded=True)
    assert pacer.throttled(5.0) is False
    assert pacer.schedule.not_before == -math.inf and pacer.held_seconds == 0.0
    # A quarter of the recent answers are 429s: everyone holds.
    for _ in range(3):
        pacer.in_flight += 1
        pacer.complete(None, throttled=True, overloaded=True)
    assert pacer.throttled(5.0) is True
    assert pacer.schedule.not_before == pytest.approx(clock.now + 5.0)


def test_an_isolated_429_holds_everyone_when_the_reported_quota_is_nearly_spent() -> None:
    clock = FakeClock()
    pacer = make_pacer(clock)
    pacer.in_flight += 1
    pacer.complete(quota_headers(remaining=5, reset_epoch=clock.wall() + 60, limit=100))
    pacer.in_flight += 1
    pacer.complete(None, throttled=True)
    assert pacer.throttled(3.0) is True


THROTTLE_ANSWERS = 16


@pytest.mark.anyio
async def test_dense_slow_down_answers_halve_the_requests_in_flight_then_it_grows_back() -> None:
    clock = FakeClock()
    pacer = make_pacer(clock, follow_quota=False)
    for _ in range(20):
        await pacer.wait()
    # A few 503s among many answers are noise: nothing changes.
    for _ in range(ADAPT_WINDOW - 4):
        pacer.complete(None)
        await pacer.wait()
    for _ in range(2):
        pacer.complete(None, overloaded=True)
        await pacer.wait()
    assert pacer.allowed == math.inf
    # A quarter of the answers say "slow down": the requests in flight are halved, once.
    for _ in range(8):
        pacer.complete(None, overloaded=True)
    assert pacer.in_flight == 12
    # Cut at the sixth (8 of the last 32 answers), with 15 out: half of them, rounded down.
    assert pacer.allowed == 7
    for _ in range(4):
        pacer.complete(None, overloaded=True)
    assert pacer.allowed == 7  # the answers of the same round do not cut again
    assert pacer.in_flight == 8
    blocked = asyncio.create_task(pacer.wait())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not blocked.done()  # 8 in flight, 7 allowed
    for _ in range(3):
        pacer.complete(None)
    await asyncio.wait_for(blocked, 1)
    assert pacer.in_flight == 6
    # Each good answer adds 1/allowed: about one more request per round, back to no limit.
    for _ in range(200):
        pacer.complete(None)
        await pacer.wait()
    assert pacer.allowed == math.inf


@pytest.mark.anyio
async def test_stop_ends_a_wait_for_room_in_flight() -> None:
    clock = FakeClock()
    pacer = make_pacer(clock, follow_quota=False)
    await pacer.wait()
    pacer.allowed = 1.0
    waiting = asyncio.create_task(pacer.wait())
    for _ in range(3):
        await asyncio.sleep(0)
    pacer.stop()
    with pytest.raises(Interrupted):
        await asyncio.wait_for(waiting, 1)
