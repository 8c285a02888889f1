"""The dispatcher's settings: defaults that are a run's, frozen, and refused when impossible."""

from __future__ import annotations

import dataclasses

import pytest

from sink.send.settings import MAX_THROTTLED, Clock, Limits, Retry


def test_the_defaults_are_a_runs() -> None:
    assert Limits() == Limits(concurrency=16, rate=None, follow_quota=True)
    retry = Retry()
    assert (retry.max_attempts, retry.max_elapsed, retry.max_throttled) == (6, 300.0, MAX_THROTTLED)
    assert (retry.backoff_base, retry.backoff_cap) == (0.5, 30.0)


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Retry().max_attempts = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Limits().concurrency = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Limits(concurrency=0), "concurrency must be at least 1"),
        (lambda: Retry(max_attempts=0), "max_attempts must be at least 1"),
        (lambda: Retry(max_throttled=0), "max_throttled must be at least 1"),
    ],
)
def test_impossible_settings_are_refused(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_each_clock_draws_from_its_own_random_generator() -> None:
    one, other = Clock(), Clock()
    assert one.rng is not other.rng
