"""The progress line: records done of the total when it is known, rates in their units, an ETA.

A fake clock drives every figure; the totals come from real files read by the real readers.
"""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sink.outputs.progress import Progress, Snapshot, duration, no_interrupts
from sink.source.read import InputProgress, input_progress, read_batches


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def progress(clock: Clock, total: InputProgress | None = None) -> Progress:
    return Progress("sink run create-repository", stream=io.StringIO(), clock=clock, total=total)


def snapshot(records: int, requests: int | None = None, **figures: int) -> Snapshot:
    done = records if requests is None else requests
    return Snapshot(records=records, ok=figures.pop("ok", done), requests=done, **figures)


def test_without_a_total_the_line_counts_records_and_gives_both_rates_in_their_units() -> None:
    clock = Clock()
    shown = progress(clock)
    clock.now += 10
    line = shown.line(snapshot(250, requests=5, in_flight=3))
    assert line.startswith("sink run create-repository: 250 records, 25 records/s, 0.5 requests/s")
    assert " of " not in line and "%" not in line and "ETA" not in line
    assert "in flight 3" in line
    assert "req/s" not in line  # records per second are never called requests per second


def test_a_parquet_total_gives_records_of_total_a_share_and_an_eta(tmp_path: Path) -> None:
    path = tmp_path / "records.parquet"
    pq.write_table(pa.table({"name": [f"repo-{i}" for i in range(1000)]}), path)
    total = input_progress(path)
    assert total is not None and total.total() == (1000, True)  # from the metadata: nothing read
    clock = Clock()
    shown = progress(clock, total=total)
    clock.now += 20
    line = shown.line(snapshot(250))
    # 250 in 20 s: 12.5 records/s, 750 left: 60 s.
    assert "250 of 1,000 records (25%), 12 records/s, 12 requests/s, ETA 1m 00s" in line
    clock.now += 20
    assert "1,000 of 1,000 records (100%)" in (last := shown.line(snapshot(1000)))
    assert "ETA" not in last


def test_the_rates_and_eta_follow_the_last_half_minute(tmp_path: Path) -> None:
    path = tmp_path / "records.parquet"
    pq.write_table(pa.table({"name": [f"repo-{i}" for i in range(10_000)]}), path)
    clock = Clock()
    shown = progress(clock, total=input_progress(path))
    for second in range(1, 61):  # 100 records/s for a minute, sampled each second
        clock.now += 1
        shown.line(snapshot(100 * second))
    clock.now += 30  # then Hub slows down to 10 records/s
    line = shown.line(snapshot(6300))
    assert "6,300 of 10,000 records (63%), 10 records/s" in line
    assert "ETA 6m 10s" in line  # 3,700 left at 10/s, not at the minute's average


def test_a_text_file_is_estimated_from_its_size_then_exact_at_its_end(tmp_path: Path) -> None:
    path = tmp_path / "records.csv"
    # Rows of uneven length, over several MiB: the first MiB is only a sample.
    rows = "".join(f"repo-{i:06d},{'x' * (i % 7)}\n" for i in range(120_000))
    path.write_text("name,note\n" + rows)
    total = input_progress(path)
    assert total is not None and total.size == path.stat().st_size
    estimate, exact = total.total() or (0, True)
    assert not exact and 114_000 <= estimate <= 126_000  # before a single record is read
    clock = Clock()
    shown = progress(clock, total=total)
    clock.now += 10
    assert f"500 of ~{estimate:,} records (0%), 50 records/s" in shown.line(snapshot(500))
    batches = read_batches(path, batch_rows=8192)
    next(batches)
    assert total.total() == (estimate, False)  # the reader is not at its end yet
    for _ in batches:
        pass
    assert total.total() == (120_000, True)
    clock.now += 10
    assert "120,000 of 120,000 records (100%)" in shown.line(snapshot(120_000))


def test_a_small_or_gzipped_text_file_is_counted_by_its_lines(tmp_path: Path) -> None:
    import gzip

    small = tmp_path / "records.jsonl"
    small.write_bytes(b"".join(orjson.dumps({"name": f"repo-{i}"}) + b"\n" for i in range(40)))
    assert (found := input_progress(small)) is not None and found.total() == (40, False)
    packed = tmp_path / "records.csv.gz"
    rows = "".join(f"repo-{i:05d},{os.urandom(8).hex()}\n" for i in range(60_000))
    packed.write_bytes(gzip.compress(("name,note\n" + rows).encode()))
    total = input_progress(packed)
    assert total is not None and total.size == packed.stat().st_size
    estimate, exact = total.total() or (0, True)
    assert not exact and 54_000 <= estimate <= 66_000
    list(read_batches(packed))
    assert total.total() == (60_000, True)


def test_no_total_for_stdin_a_stream_an_empty_or_unknown_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    unknown = tmp_path / "records.txt"
    unknown.write_text("name\nx\n")
    assert input_progress(None) is None
    assert input_progress("-") is None
    assert input_progress(empty) is None
    assert input_progress(unknown) is None
    assert input_progress(tmp_path / "missing.csv") is None
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    assert input_progress(tmp_path / "broken.parquet") is None


def test_show_renders_once_per_interval_and_always_when_forced() -> None:
    clock = Clock()
    stream = io.StringIO()
    shown = Progress("sink run x", stream=stream, interval=5.0, clock=clock)
    for step in range(1, 12):  # an outcome each second for 11 s
        clock.now += 1
        shown.show(snapshot(step))
    assert [line.split(":")[1].split(",")[0] for line in stream.getvalue().splitlines()] == [
        " 5 records",
        " 10 records",
    ]
    shown.show(snapshot(12), force=True)
    assert stream.getvalue().splitlines()[-1].startswith("sink run x: 12 records")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0s"), (45, "45s"), (60, "1m 00s"), (185, "3m 05s"), (7620, "2h 07m")],
)
def test_durations_read_as_people_write_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_a_sigint_inside_no_interrupts_is_no_keyboard_interrupt() -> None:
    with no_interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):  # and outside it, Ctrl-C works as before
        signal.raise_signal(signal.SIGINT)
