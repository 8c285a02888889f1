"""Resume benchmark: what the ledger costs, and how fast a resumed run skips what is done.

Against the simulator in its own process (no latency, no faults), creating repositories:

1. requests/s of ``sink run`` with the ledger as a run uses it (requests marked sent a group
   at a time, final states committed with the next group), with every write committed at once
   (the ledger before grouping) and without a ledger (``sink.send.ledger.NullLedger``), each put in
   place of ``sink.run.Ledger`` in this process, alternating, several rounds each; and the
   ledger's own cost per record in isolation (``mark_sent`` + ``settle`` one record at a time,
   committed at once or batched);
2. resuming a 1,000,000-record run of which 999,000 are done (a ledger pre-filled with 999,000
   ``done`` keys): the time to finish it, then the time of a run in which every record is done
   (records skipped per second).

Usage: python bench/resume.py [--records 6000] [--rounds 5] [--total 1000000] [--todo 1000]
Not a test: it prints figures, it asserts nothing. Targets (issue 5): the ledger costs under 10%
of throughput; a resume skips done records at over 100,000 records/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sink.run
from sink.destination import open_destination
from sink.hubsim import start_process
from sink.read.credentials import Credentials
from sink.run import RunOptions, RunSummary, run_async
from sink.send.ledger import DONE, Ledger, NullLedger

OAT = "dckr_oat_mGUb8viwoTjRp7goKqWQNFHBziuPKlbZ"  # the simulator's fake acme token
DATA = Path(__file__).resolve().parent / ".data"


def write_config(folder: Path, records: Path, concurrency: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dest.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "connection": {"identifier": "acme", "secret_env": "SINK_BENCH_SECRET"},
                "template": "create-repository",
                "settings": {"namespace": "acme"},
                "key_field": "name",
                "input": str(records),
                "concurrency": concurrency,
            }
        )
    )
    return path


def records_file(path: Path, prefix: str, count: int) -> Path:
    with path.open("wb") as out:
        for start in range(0, count, 100_000):
            out.write(
                b"".join(
                    orjson.dumps({"name": f"{prefix}-{i:07d}"}) + b"\n"
                    for i in range(start, min(count, start + 100_000))
                )
            )
    return path


def run_once(url: str, config: Path) -> tuple[RunSummary, float]:
    """One run in this process; returns its summary and the CPU seconds it used."""
    destination = open_destination(config, base_url=url)
    credentials = Credentials(url, "acme", OAT, "oat")
    options = RunOptions(destination.path(destination.config.input), yes=True)
    cpu = time.process_time()
    summary = asyncio.run(run_async(destination, credentials, options))
    return summary, time.process_time() - cpu


def _per_request(path: Path, *, settle_batch: int = 1) -> Ledger:
    return Ledger(path)  # every write committed at once, as before requests were grouped


MODES: dict[str, tuple[Callable[..., Ledger], int]] = {  # ledger class, requests per commit
    "ledger": (Ledger, sink.run._GROUP),
    "per request": (_per_request, 1),
    "no ledger": (NullLedger, sink.run._GROUP),
}


def throughput(url: str, work: Path, records: int, rounds: int, concurrency: int) -> None:
    print(
        f"1. throughput: {records:,} creates per run, concurrency {concurrency}, "
        f"{rounds} rounds each, alternating"
    )
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    cpu_per: dict[str, list[float]] = {mode: [] for mode in MODES}
    real_ledger, real_group = sink.run.Ledger, sink.run._GROUP
    for round_ in range(rounds):
        for number, mode in enumerate(MODES):
            folder = work / f"tp-{round_}-{number}"
            folder.mkdir(parents=True)
            input_path = records_file(folder / "records.jsonl", f"tp{round_}m{number}", records)
            config = write_config(folder, input_path, concurrency)
            factory, group = MODES[mode]
            sink.run.Ledger = factory  # type: ignore[misc, assignment]
            sink.run._GROUP = group
            try:
                summary, cpu = run_once(url, config)
            finally:
                sink.run.Ledger = real_ledger  # type: ignore[misc]
                sink.run._GROUP = real_group
            assert summary.counts.ok == records, summary.counts
            rates[mode].append(summary.counts.requests / summary.seconds)
            cpu_per[mode].append(cpu / summary.counts.requests * 1e6)
            print(
                f"   round {round_ + 1} {mode:>11}: {rates[mode][-1]:8,.0f} requests/s, "
                f"{cpu_per[mode][-1]:6,.0f} µs CPU per request (client process)"
            )
    without = statistics.median(rates["no ledger"])
    base_cpu = statistics.median(cpu_per["no ledger"])
    print(
        f"   median without a ledger: {without:,.0f} requests/s, {base_cpu:,.0f} µs CPU per request"
    )
    for mode in ("ledger", "per request"):
        rate = statistics.median(rates[mode])
        cpu = statistics.median(cpu_per[mode])
        print(
            f"   median {mode:>11}: {rate:,.0f} requests/s, {cpu:,.0f} µs CPU per request: "
            f"costs {100 * (1 - rate / without):.1f}% of throughput, "
            f"{100 * (cpu / base_cpu - 1):.1f}% more CPU per request"
        )


def ledger_cost(work: Path, count: int = 20_000) -> None:
    """``mark_sent`` then ``settle`` per record, one request per record, as a run calls them."""
    for mode, batch in (("at once", 1), ("batched", 64)):
        with Ledger(work / f"isolated-{batch}.ledger.sqlite", settle_batch=batch) as ledger:
            started = time.perf_counter()
            for i in range(count):
                key = f"iso-{i:07d}"
                ledger.mark_sent(((key, i),), "create-repository")
                ledger.settle(
                    key, "create-repository", DONE, http_status=201, resource_id=key, position=i
                )
            seconds = time.perf_counter() - started
        print(
            f"   in isolation, {mode:>7}: mark_sent + settle = "
            f"{seconds / count * 1e6:,.0f} µs per record ({count / seconds:,.0f} records/s)"
        )


def prefill(ledger_path: Path, prefix: str, done: int) -> float:
    """A ledger with ``done`` records done, as a past run left it; returns the seconds taken."""
    started = time.perf_counter()
    Ledger(ledger_path).close()  # the schema, WAL mode
    db = sqlite3.connect(ledger_path, isolation_level=None)
    db.execute("BEGIN")
    now = time.time() - 3600
    db.executemany(
        "INSERT INTO records (key, template, state, position, attempts, http_status, "
        "resource_id, updated) VALUES (?, 'create-repository', 'done', ?, 1, 201, ?, ?)",
        ((f"{prefix}-{i:07d}", i, f"{prefix}-{i:07d}", now) for i in range(done)),
    )
    db.execute("COMMIT")
    db.close()
    return time.perf_counter() - started


def resume(url: str, work: Path, total: int, todo: int) -> None:
    print(f"2. resume: {total:,} records, {total - todo:,} done by an earlier run")
    DATA.mkdir(parents=True, exist_ok=True)
    input_path = DATA / f"resume-{total}.jsonl"
    if not input_path.exists():
        records_file(input_path, "rs", total)
    folder = work / "resume"
    config = write_config(folder, input_path, 16)
    filled = prefill(folder / "dest.ledger.sqlite", "rs", total - todo)
    print(f"   pre-filled the ledger with {total - todo:,} done keys in {filled:.1f} s")
    summary, cpu = run_once(url, config)
    counts = summary.counts
    print(
        f"   resumed run: {summary.seconds:.2f} s ({cpu:.2f} s CPU): "
        f"{counts.done_before:,} skipped, {counts.ok:,} sent and created"
    )
    summary, cpu = run_once(url, config)
    counts = summary.counts
    print(
        f"   run with every record done: {summary.seconds:.2f} s ({cpu:.2f} s CPU): "
        f"{counts.done_before:,} skipped = {counts.done_before / summary.seconds:,.0f} "
        f"records/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=6000, help="creates per throughput run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--todo", type=int, default=1000)
    args = parser.parse_args()
    os.environ["SINK_BENCH_SECRET"] = OAT
    with tempfile.TemporaryDirectory(prefix="sink-resume-") as temp, start_process() as hub:
        work = Path(temp)
        print(f"simulator {hub.url} (own process, no latency); {os.cpu_count()} CPUs")
        throughput(hub.url, work, args.records, args.rounds, args.concurrency)
        ledger_cost(work)
        resume(hub.url, work, args.total, args.todo)


if __name__ == "__main__":
    main()
