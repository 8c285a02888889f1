"""Send benchmark: sink against the simulator running in its own process.

1. Throughput: N create-repository records at concurrency 64 against 50 ms simulator latency;
   prints requests/s beside the limit concurrency / latency (1,280/s), and CPU per request.
2. Quota: the simulator limits the credential to Q requests per minute; prints the share of the
   quota sink used and the 429s it received.

Usage: python bench/send.py [--records 20000] [--quota 1200] [--quota-seconds 75]
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

from sink.credentials import Credentials
from sink.destination import open_destination
from sink.hubsim import start_process
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
    allowed = per_minute / 60 * wall
    print(f"quota: {per_minute:,} requests/minute for {wall:.0f} s (about {allowed:,.0f} allowed)")
    print(f"  accepted {accepted:,} = {accepted / allowed:.1%} of the quota (target >= 95%)")
    share = limited / max(len(log), 1)
    print(f"  429s {limited:,} of {len(log):,} requests = {share:.2%} (target < 1%)")
    print(f"  sink waited {summary.stats.rate_limit_wait if summary.stats else 0:.1f} s on pacing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--quota", type=int, default=1200, help="requests per minute")
    parser.add_argument("--quota-seconds", type=float, default=75.0)
    parser.add_argument("--skip-quota", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        throughput(Path(folder), args.records, args.concurrency, args.latency_ms)
        if not args.skip_quota:
            quota(Path(folder), args.quota, args.quota_seconds)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"client peak memory {peak:.0f} MB")


if __name__ == "__main__":
    main()
