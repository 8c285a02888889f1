"""Send benchmark: sink against the simulator running in its own process.

1. Throughput: N create-repository records at concurrency 64 against 50 ms simulator latency;
   prints requests/s beside the limit concurrency / latency (1,280/s), and CPU per request.
2. Quota: the simulator limits the credential to Q requests per minute; prints the share of the
   quota sink used and the 429s it received.
3. Bare faults: as 1, with 5% of creates answered 503 and 2% 429 + Retry-After, and no
   X-RateLimit-* header on any answer (a server that does not say its quota); records/s, lost.
4. Window: W records under a fixed window of 600 creates a minute, run to the end; the time to
   finish against the optimum (600 at once, wait for the reset, the rest) and the 429s.

Usage: python bench/send.py [--records 20000] [--quota 1200] [--quota-seconds 75]
       [--skip-quota] [--skip-bare] [--window-records 1000] [--skip-window]
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

from sink.destination import open_destination
from sink.hubsim import start_process
from sink.read.credentials import Credentials
from sink.run import RunOptions, RunSummary, run_async

OAT = "dckr_oat_mGUb8viwoTjRp7goKqWQNFHBziuPKlbZ"  # the simulator seed's fake acme token


def destination(folder: Path, rows: int, prefix: str, **config: Any) -> Path:
    records = folder / f"{prefix}.jsonl"
    with records.open("wb") as out:
        for i in range(rows):
            out.write(orjson.dumps({"name": f"{prefix}-{i:06d}", "description": "bench"}) + b"\n")
    path = folder / f"{prefix}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "connection": {"identifier": "acme", "secret_env": "UNUSED"},
                "template": "create-repository",
                "settings": {"namespace": "acme"},
                "key_field": "name",
                "input": records.name,
                **config,
            }
        )
    )
    return path


def send(url: str, config: Path) -> tuple[RunSummary, float, float]:
    dest = open_destination(config, base_url=url)
    credentials = Credentials(url, "acme", OAT, "oat")
    options = RunOptions(dest.path(dest.config.input), yes=True)
    cpu, wall = time.process_time(), time.perf_counter()
    summary = asyncio.run(run_async(dest, credentials, options))
    return summary, time.perf_counter() - wall, time.process_time() - cpu


def throughput(folder: Path, records: int, concurrency: int, latency_ms: float) -> None:
    with start_process(latency_ms=latency_ms) as hub:
        config = destination(folder, records, "tput", concurrency=concurrency)
        summary, wall, cpu = send(hub.url, config)
        created = sum(1 for r in hub.state()["repositories"] if r["name"].startswith("tput-"))
    limit = concurrency / (latency_ms / 1000)
    rate = summary.counts.requests / wall
    print(
        f"throughput: {records:,} creates at concurrency {concurrency}, {latency_ms:.0f} ms latency"
    )
    print(f"  requests/s {rate:,.0f}  limit {limit:,.0f}  share {rate / limit:.1%} (target >= 90%)")
    print(f"  wall {wall:.1f} s, client CPU {cpu:.1f} s = {cpu / records * 1000:.2f} ms/request")
    print(f"  ok {summary.counts.ok:,}, failed {summary.counts.failed}, created {created:,}")


def quota(folder: Path, per_minute: int, seconds: float) -> None:
    records = int(per_minute / 60 * seconds * 1.5)  # more than the quota allows in the time
    faults = {
        "rules": [
            {"method": "POST", "path": "/v2/namespaces/*/repositories", "rate_limit": per_minute}
        ]
    }
    with start_process(faults=faults) as hub:
        config = destination(folder, records, "quota", concurrency=16)
        dest = open_destination(config, base_url=hub.url)
        credentials = Credentials(hub.url, "acme", OAT, "oat")
        options = RunOptions(dest.path(dest.config.input), yes=True)

        async def bounded() -> RunSummary:
            task = asyncio.ensure_future(run_async(dest, credentials, options))
            await asyncio.sleep(seconds)
            options.control.stop()
            return await task

        wall = time.perf_counter()
        summary = asyncio.run(bounded())
        wall = time.perf_counter() - wall
        log = [r for r in hub.requests() if r["method"] == "POST" and "repositories" in r["path"]]
    accepted = sum(1 for r in log if r["status"] == 201)
    limited = sum(1 for r in log if r["status"] == 429)
    # The simulator's quota is a fixed window of a minute per credential, opened by its first
    # request: what counts is how much of each window that closed within the run was used.
    start = min((r["time"] for r in log), default=0.0)
    windows: dict[int, int] = {}
    for r in log:
        if r["status"] == 201:
            windows[int((r["time"] - start) // 60)] = (
                windows.get(int((r["time"] - start) // 60), 0) + 1
            )
    closed = [windows.get(k, 0) for k in range(int(wall // 60))]
    used = sum(closed) / (per_minute * len(closed)) if closed else 0.0
    print(f"quota: {per_minute:,} requests/minute (fixed windows) for {wall:.0f} s")
    print(
        f"  accepted {accepted:,}; per window {[windows[k] for k in sorted(windows)]}; "
        f"{used:.1%} of the windows that closed during the run (target >= 95%)"
    )
    share = limited / max(len(log), 1)
    print(f"  429s {limited:,} of {len(log):,} requests = {share:.2%} (target < 1%)")
    print(f"  sink waited {summary.stats.rate_limit_wait if summary.stats else 0:.1f} s on pacing")


def bare(folder: Path, records: int, concurrency: int, latency_ms: float) -> None:
    rule = {
        "method": "POST",
        "path": "/v2/namespaces/*/repositories",
        "latency_ms": latency_ms,
        "error_rate": 0.05,
        "error_statuses": [503],
        "burst_every": 50,
        "burst_length": 1,
        "retry_after": 1,
        "quota_headers": False,
    }
    faults = {"latency_ms": latency_ms, "quota_headers": False, "rules": [rule]}
    with start_process(faults=faults) as hub:
        config = destination(folder, records, "bare", concurrency=concurrency)
        summary, wall, _ = send(hub.url, config)
        created = sum(1 for r in hub.state()["repositories"] if r["name"].startswith("bare-"))
    print(f"bare faults: {records:,} creates, 5% 503 + 2% 429, no X-RateLimit-* headers")
    print(f"  records/s {created / wall:,.0f}  wall {wall:.1f} s  lost {records - created:,}")
    limited = summary.stats.rate_limited if summary.stats else 0
    waited = summary.stats.rate_limit_wait if summary.stats else 0.0
    print(f"  429s {limited:,}, shared holds {waited:.1f} s")


def window(folder: Path, records: int, concurrency: int, latency_ms: float) -> None:
    per_minute = 600
    rule = {
        "method": "POST",
        "path": "/v2/namespaces/*/repositories",
        "latency_ms": latency_ms,
        "rate_limit": per_minute,
    }
    with start_process(faults={"latency_ms": latency_ms, "rules": [rule]}) as hub:
        config = destination(folder, records, "window", concurrency=concurrency)
        summary, wall, _ = send(hub.url, config)
        log = [r for r in hub.requests() if r["method"] == "POST" and "repositories" in r["path"]]
    first, last = min(r["time"] for r in log), max(r["time"] for r in log)
    limited = sum(1 for r in log if r["status"] == 429)
    windows = math.ceil(records / per_minute) - 1
    # The simulator's windows start on the whole second of the first request.
    opens = math.floor(first) + 60 * windows - first
    finish = last - first + latency_ms / 1000
    optimum = opens + latency_ms / 1000
    print(f"window: {records:,} creates, fixed window of {per_minute} a minute, run to the end")
    print(
        f"  finished {finish:.1f} s after the first create (wall {wall:.1f} s); optimum "
        f"{optimum:.1f} s (window {windows + 1} opened at +{opens:.1f} s): "
        f"{finish / optimum - 1:+.1%} (target within 5%)"
    )
    print(f"  429s {limited} (target 0), ok {summary.counts.ok:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--quota", type=int, default=1200, help="requests per minute")
    parser.add_argument("--quota-seconds", type=float, default=75.0)
    parser.add_argument("--skip-quota", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--window-records", type=int, default=1_000)
    parser.add_argument("--skip-window", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if not args.skip_throughput:
            throughput(Path(folder), args.records, args.concurrency, args.latency_ms)
        if not args.skip_quota:
            quota(Path(folder), args.quota, args.quota_seconds)
        if not args.skip_bare:
            bare(Path(folder), args.records, args.concurrency, args.latency_ms)
        if not args.skip_window:
            window(Path(folder), args.window_records, args.concurrency, args.latency_ms)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"client peak memory {peak:.0f} MB")


if __name__ == "__main__":
    main()
