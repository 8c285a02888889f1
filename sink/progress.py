"""Progress of a run: a live bar on a terminal, a plain log line every few seconds otherwise."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.live import Live

# rich is imported when a live bar is shown: a run that logs lines (not on a terminal) and
# every command that only imports this module (through ``sink.run``) do without it.


@dataclass
class Snapshot:
    """The figures a progress display shows."""

    records: int = 0
    ok: int = 0
    rejected: int = 0
    failed: int = 0
    retries: int = 0
    rate_limit_wait: float = 0.0
    in_flight: int = 0


class Progress:
    """Shows snapshots; ``show`` is cheap to call often (it redraws a few times a second)."""

    def __init__(self, title: str, *, stream: TextIO | None = None, interval: float = 5.0) -> None:
        self.title = title
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.interval = interval if not self.interactive else 0.2
        self.started = time.monotonic()
        self._last = 0.0
        self._live: Live | None = None

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
            self._live.__exit__(None, None, None)

    def line(self, snapshot: Snapshot) -> str:
        """One line of figures."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (snapshot.ok + snapshot.rejected + snapshot.failed) / elapsed
        text = (
            f"{self.title}: {snapshot.records:,} records, {rate:,.0f} req/s, "
            f"ok {snapshot.ok:,}, rejected {snapshot.rejected:,}, failed {snapshot.failed:,}, "
            f"retries {snapshot.retries:,}, in flight {snapshot.in_flight}"
        )
        if snapshot.rate_limit_wait >= 0.05:
            text += f", waited {snapshot.rate_limit_wait:,.1f}s on rate limits"
        return text

    def show(self, snapshot: Snapshot, *, force: bool = False) -> None:
        """Redraw (or log) if the interval has passed."""
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        if self._live is not None:
            from rich.text import Text

            self._live.update(Text(self.line(snapshot)), refresh=True)
        elif force or now - self.started >= self.interval:
            print(self.line(snapshot), file=self.stream, flush=True)
