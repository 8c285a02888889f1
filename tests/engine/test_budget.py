"""The shared rate budget: permits by the quota's window, the probe that learns it, 429s, a
configured rate; and a worker's pacer leasing permits from it."""

from __future__ import annotations

import asyncio

import pytest

from sink.engine.budget import POLL, Budget, LeasedPacer, LocalBudget, Report
from sink.send.pacing import RESET_GUARD


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def learnt(budget: Budget, clock: Clock, remaining: float, limit: float = 100) -> None:
    """The probe went out and its answer said ``remaining`` until 10 s from now."""
    probe = budget.lease(4)
    assert (probe.permits, probe.probe) == (1, True)
    budget.report(Report(answers=1, quota=(remaining, clock.now + 10, limit), probe_done=True))


def test_a_new_window_is_learnt_by_one_probe_while_the_others_wait() -> None:
    clock = Clock()
    budget = Budget(clock=clock)
    probe = budget.lease(8)
    assert (probe.permits, probe.probe) == (1, True)
    waiting = budget.lease(8)
    assert (waiting.permits, waiting.why) == (0, "probe")
    assert waiting.retry_at == pytest.approx(clock.now + POLL)
    budget.report(Report(answers=1, quota=(99, clock.now + 10, 100), probe_done=True))
    assert budget.lease(8).permits == 8
    assert budget.left == 91


def test_the_window_is_spent_by_every_worker_together_then_all_wait_for_the_reset() -> None:
    clock = Clock()
    budget = Budget(clock=clock)
    learnt(budget, clock, remaining=20)
    granted = [budget.lease(8).permits for _ in range(4)]  # four workers
    assert granted == [8, 8, 4, 0]
    spent = budget.lease(8)
    assert (spent.permits, spent.why) == (0, "quota")
    assert spent.retry_at == pytest.approx(clock.now + 10 + RESET_GUARD)
    clock.now += 10.2
    assert budget.lease(8).probe  # the next window is learnt again


def test_permits_out_when_a_window_is_learnt_count_as_spent() -> None:
    clock = Clock()
    budget = Budget(clock=clock)
    budget.reports_quota = False  # no headers yet: permits go out unmetered
    assert budget.lease(8).permits == 8
    budget.reports_quota = None
    budget.report(Report(answers=2, quota=(50, clock.now + 10, 100)))
    assert budget.left == 50 - 6  # six permits out that Hub may not have counted yet


def test_unused_permits_go_back_to_their_window_only() -> None:
    clock = Clock()
    budget = Budget(clock=clock)
    learnt(budget, clock, remaining=10)
    lease = budget.lease(8)
    budget.report(Report(unused=5, unused_expires=lease.expires))
    assert budget.left == 2 + 5
    budget.report(Report(unused=3, unused_expires=lease.expires - 60))  # an older window's
    assert budget.left == 7


def test_dense_429s_hold_every_worker_and_an_isolated_one_does_not() -> None:
    clock = Clock()
    budget = Budget(clock=clock)
    learnt(budget, clock, remaining=90)
    budget.report(Report(answers=20, throttles=[2.0]))
    assert budget.lease(1).permits == 1  # one 429 among plenty: only its request waits
    budget.report(Report(answers=8, throttles=[3.0] * 6))
    held = budget.lease(1)
    assert (held.permits, held.why) == (0, "hold")
    assert held.retry_at == pytest.approx(clock.now + 3.0)
    clock.now += 3.0
    assert budget.lease(1).probe  # and the window is learnt again after it


def test_a_configured_rate_spaces_permits_across_workers() -> None:
    clock = Clock()
    budget = Budget(rate=10, clock=clock)
    budget.reports_quota = False
    first, second = budget.lease(4), budget.lease(4)
    assert (first.first, first.spacing) == (clock.now, pytest.approx(0.1))
    assert second.first == pytest.approx(clock.now + 0.4)  # after the first lease's four


def test_a_run_starting_learns_the_window_again() -> None:
    clock = Clock()
    budget = Budget(clock=clock)
    learnt(budget, clock, remaining=1_000)
    budget.begin(rate=5)
    assert budget.lease(8).probe
    assert budget.interval == pytest.approx(0.2)


def test_a_workers_pacer_leases_a_few_permits_at_a_time() -> None:
    clock = Clock()
    budget = Budget(clock=clock)
    learnt(budget, clock, remaining=100)
    pacer = LeasedPacer(LocalBudget(budget), lease=4, wall=clock)

    async def send() -> None:
        await pacer.wait()
        await asyncio.sleep(0)
        pacer.complete({"x-ratelimit-remaining": "50", "x-ratelimit-reset": str(clock.now + 10)})

    async def main() -> None:
        await asyncio.gather(*(send() for _ in range(10)))

    asyncio.run(main())
    assert budget.granted - 1 >= 10
    assert pacer.leases < 10  # a lease serves several requests
    pacer.release()
    assert budget.out == 0  # every permit answered or handed back
    assert budget.left == 100 - 10


def test_a_workers_pacer_waits_for_the_reset_then_goes_on() -> None:
    clock = Clock()
    budget = Budget(clock=clock)
    learnt(budget, clock, remaining=1)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds
        if budget.left is None or budget.probe_until > clock.now:
            return
        budget.report(Report(answers=1, quota=(99, clock.now + 10, 100), probe_done=True))

    pacer = LeasedPacer(LocalBudget(budget), lease=4, wall=clock, sleep=sleep)

    async def main() -> None:
        for _ in range(3):
            await pacer.wait()
            pacer.complete(None)

    asyncio.run(main())
    assert slept and slept[0] == pytest.approx(10 + RESET_GUARD)


def test_a_lease_grows_while_it_is_used_up_fast_and_shrinks_when_it_lasts() -> None:
    clock = Clock()
    budget = Budget(clock=clock)
    budget.reports_quota = False  # unmetered: the budget grants what is asked
    pacer = LeasedPacer(LocalBudget(budget), lease=4, wall=clock)

    async def take(count: int, seconds: float) -> None:
        for _ in range(count):
            await pacer.wait()
            clock.now += seconds
            pacer.complete(None)

    asyncio.run(take(4 + 8 + 16, 0.001))  # each lease used up within LEASE_SECONDS
    assert (pacer.leases, pacer.lease_size) == (3, 16)
    asyncio.run(take(64, 0.001))
    assert pacer.lease_size == 64 and pacer.leases == 5
    assert pacer._permits == 32  # the fifth lease (64) half used
    asyncio.run(take(32, 0.1))  # its other half over 3.2 s
    asyncio.run(take(1, 0.1))
    assert pacer.lease_size == 32 and pacer.leases == 6  # the next one is smaller
    for _ in range(4):
        asyncio.run(take(pacer._permits + 1, 1.0))
    assert pacer.lease_size == 4  # never below the first size
    pacer.release()
    assert budget.out == 0


def test_a_large_lease_takes_a_share_of_what_is_left_never_all() -> None:
    clock = Clock()
    budget = Budget(clock=clock)
    learnt(budget, clock, remaining=1_000)
    assert budget.lease(512).permits == 250  # a quarter of the 1,000 left
    assert budget.lease(512).permits == 188
    assert budget.lease(16).permits == 16  # small leases as asked
    paced = Budget(rate=100, clock=clock)
    paced.reports_quota = False
    assert paced.lease(512).permits == 50  # half a second at 100/s


def test_a_paced_lease_counts_only_what_it_grants() -> None:
    clock = Clock()
    budget = Budget(rate=100, clock=clock)
    learnt(budget, clock, remaining=1_000)
    left = budget.left
    assert left is not None
    lease = budget.lease(512)
    assert lease.permits == 50 and budget.left == left - 50
