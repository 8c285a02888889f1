"""Progress of a run: a live bar on a terminal, a plain log line every few seconds otherwise.

The line says how many records are done and, when the input's size is known, of how many
(Parquet's metadata; for a text file an estimate from its size, "of ~N", exact once it is read
to its end; see :class:`~sink.source.read.InputProgress`), the rates in records and requests per
second over the last half minute, and the time left when it can be estimated. ``show`` is
called once per outcome: it does nothing but compare two clock readings until the interval has
passed.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.live import Live

    from sink.source.read import InputProgress

# rich is imported when a live bar is shown: a run that logs lines (not on a terminal) and
# every command that only imports this module (through ``sink.run``) do without it.

_WINDOW = 30.0  # seconds of samples the rates are measured over


@dataclass
class Snapshot:
    """The figures a progress display shows."""

    records: int = 0
    """Records done: an outcome, a rejection, skipped (done before, duplicate) or stopped."""
    ok: int = 0
    rejected: int = 0
    failed: int = 0
    retries: int = 0
    rate_limit_wait: float = 0.0
    in_flight: int = 0
    requests: int = 0
    """Requests answered (a batch carries many records in one)."""


class Progress:
    """Shows snapshots; ``show`` is cheap to call often (it redraws a few times a second).

    ``total`` tells how many records the input holds, when that is known cheaply (see
    :func:`sink.source.read.input_progress`); ``clock`` is the monotonic clock (tests pass a fake).
    """

    def __init__(
        self,
        title: str,
        *,
        stream: TextIO | None = None,
        interval: float = 5.0,
        total: InputProgress | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.title = title
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.interval = interval if not self.interactive else 0.2
        self.total = total
        self.clock = clock
        self.started = clock()
        # A log's first line comes one interval in; a live bar shows at once.
        self._last = self.started if not self.interactive else -float("inf")
        self._live: Live | None = None
        # (time, records, requests) at each rendering, for the rates over the last _WINDOW s.
        self._samples: deque[tuple[float, int, int]] = deque([(self.started, 0, 0)])

    def __enter__(self) -> Progress:
        if self.interactive:
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            console = Console(file=self.stream)
            self._live = Live(Text(""), console=console, auto_refresh=False, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            with no_interrupts():  # a Ctrl-C while rich clears the line is no traceback
                self._live.__exit__(None, None, None)

    def line(self, snapshot: Snapshot) -> str:
        """One line of figures."""
        now = self.clock()
        per_record, per_request = self._rates(now, snapshot)
        done = snapshot.records
        known = self.total.total() if self.total is not None else None
        if known is not None:
            total, exact = known
            total = max(total, done)
            share = done / total if total else 1.0
            about = "" if exact else "~"
            text = f"{self.title}: {done:,} of {about}{total:,} records ({share:.0%})"
        else:
            total = None
            text = f"{self.title}: {done:,} records"
        text += f", {_rate(per_record)} records/s, {_rate(per_request)} requests/s"
        if total is not None and done < total and per_record > 0:
            text += f", ETA {duration((total - done) / per_record)}"
        text += (
            f" · ok {snapshot.ok:,}, rejected {snapshot.rejected:,}, failed {snapshot.failed:,}, "
            f"retries {snapshot.retries:,}, in flight {snapshot.in_flight}"
        )
        if snapshot.rate_limit_wait >= 0.05:
            text += f", waited {snapshot.rate_limit_wait:,.1f}s on rate limits"
        return text

    def _rates(self, now: float, snapshot: Snapshot) -> tuple[float, float]:
        """Records and requests per second since the oldest sample of the window."""
        samples = self._samples
        while len(samples) > 1 and now - samples[1][0] >= _WINDOW:
            samples.popleft()  # the second oldest still covers the window
        since, records, requests = samples[0]
        samples.append((now, snapshot.records, snapshot.requests))
        elapsed = now - since
        if elapsed <= 0:
            return 0.0, 0.0
        return (snapshot.records - records) / elapsed, (snapshot.requests - requests) / elapsed

    def show(self, snapshot: Snapshot, *, force: bool = False) -> None:
        """Redraw (or log) if the interval has passed."""
        now = self.clock()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        if self._live is not None:
            from rich.text import Text

            self._live.update(Text(self.line(snapshot)), refresh=True)
        else:
            print(self.line(snapshot), file=self.stream, flush=True)


def _rate(value: float) -> str:
    return f"{value:,.1f}" if value < 10 else f"{value:,.0f}"


def duration(seconds: float) -> str:
    """A duration for people: ``45s``, ``3m 05s``, ``2h 07m``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


@contextmanager
def no_interrupts() -> Iterator[None]:
    """SIGINT ignored inside (on the main thread): what prints the end of a run is not cut
    short by a Ctrl-C into a traceback. A signal that arrives meanwhile is dropped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: Any = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
