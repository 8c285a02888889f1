"""How the dispatcher sends: small frozen settings, as httpx groups its own in ``Limits`` and
``Timeout``.

- :class:`Limits`: how much goes out at once (requests in flight, a fixed rate, whether Hub's
  quota headers are followed);
- :class:`Retry`: when a request is sent again and when it is given up (attempts, seconds,
  429s, the backoff);
- :class:`Clock`: the time and the waits (monotonic and wall clocks, ``sleep``, the random
  draws of the backoff's jitter), injectable so that tests run on a fake clock.

The defaults are a run's defaults (``sink.config``'s ``retry`` and ``concurrency``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

MAX_THROTTLED = 20
"""429s one request may receive before it fails (``retry.max_throttled``)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """How much goes out at once: at most ``concurrency`` requests in flight, at most ``rate``
    requests a second (``None``: no fixed rate), and, with ``follow_quota``, never more than the
    quota Hub reports in its ``X-RateLimit-*`` headers."""

    concurrency: int = 16
    rate: float | None = None
    follow_quota: bool = True

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")


@dataclass(frozen=True, slots=True)
class Retry:
    """When a request is sent again: at most ``max_attempts`` sends (429s aside) within
    ``max_elapsed`` seconds of its first, at most ``max_throttled`` 429s, with full-jitter
    exponential backoff from ``backoff_base`` seconds, never more than ``backoff_cap``."""

    max_attempts: int = 6
    max_elapsed: float = 300.0
    max_throttled: int = MAX_THROTTLED
    backoff_base: float = 0.5
    backoff_cap: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_throttled < 1:
            raise ValueError("max_throttled must be at least 1")


def _default_rng() -> random.Random:
    return random.Random()


@dataclass(frozen=True, slots=True)
class Clock:
    """The time and the waits: ``monotonic`` for durations and deadlines, ``wall`` (Unix time)
    to read ``X-RateLimit-Reset`` and ``X-Retry-After``, ``sleep`` for every wait and ``rng``
    for the backoff's jitter."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    rng: random.Random = field(default_factory=_default_rng)
