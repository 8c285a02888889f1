"""Benchmark of the Docker Hub simulator: token-authenticated repository creates per second.

The simulator runs in its own process (``sink.hubsim.start_process``), latency injection off;
one client process drives it over N keep-alive connections with a minimal HTTP/1.1 client (so
the client's CPU is not what limits the figure). Prints creates/s, the simulator's CPU time per
create, and its memory (RSS) before and after 100,000 repositories are in state.

    .venv/bin/python bench/hubsim.py [--count 100000] [--concurrency 8] [--http auto|h11|httptools]

Figures only; never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from urllib.parse import urlsplit

import httpx

from sink.hubsim import start_process

PAT = "dckr_pat_FvTMFWrwCWop3eZI7ZJnPH49XBd"  # alice's fake repo:admin PAT from the default seed


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (Linux)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (Linux)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def worker(host: str, port: int, token: str, names: list[str], statuses: list[int]) -> None:
    """Send one create per name over one keep-alive connection, one at a time."""
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST /v2/namespaces/alice/repositories HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
    ).encode()
    for name in names:
        body = b'{"name":"%s","namespace":"alice","description":"bench"}' % name.encode()
        writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        header = await reader.readuntil(b"\r\n\r\n")
        statuses.append(int(header[9:12]))
        length = 0
        for line in header.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
    writer.close()


async def run_creates(url: str, token: str, prefix: str, count: int, concurrency: int) -> float:
    """Create ``count`` repositories; returns the seconds it took."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    names = [f"{prefix}-{i:07d}" for i in range(count)]
    statuses: list[int] = []
    started = time.perf_counter()
    await asyncio.gather(
        *(worker(host, port, token, names[i::concurrency], statuses) for i in range(concurrency))
    )
    elapsed = time.perf_counter() - started
    bad = [s for s in statuses if s != 201]
    if bad:
        raise SystemExit(f"{len(bad)} creates did not answer 201 (first: {bad[0]})")
    return elapsed


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="repositories to create")
    parser.add_argument("--warmup", type=int, default=2_000, help="creates before measuring")
    parser.add_argument("--concurrency", type=int, default=8, help="keep-alive connections")
    parser.add_argument("--http", default="auto", help="uvicorn HTTP implementation")
    args = parser.parse_args()

    with start_process(http=args.http, jwt_ttl=3600) as sim:
        pid = sim.pid
        assert pid is not None
        token = httpx.post(
            sim.url + "/v2/auth/token", json={"identifier": "alice", "secret": PAT}
        ).json()["access_token"]
        rss_start = rss_mb(pid)
        asyncio.run(run_creates(sim.url, token, "warm", args.warmup, args.concurrency))
        cpu_before = cpu_seconds(pid)
        elapsed = asyncio.run(run_creates(sim.url, token, "bench", args.count, args.concurrency))
        cpu_used = cpu_seconds(pid) - cpu_before
        total = args.count + args.warmup
        rss_end = rss_mb(pid)
        repos = sum(1 for r in sim.state()["repositories"] if r["namespace"] == "alice")
    print(f"http implementation      : {args.http}")
    print(f"creates                  : {args.count} over {args.concurrency} connections")
    print(f"creates/s (wall clock)   : {args.count / elapsed:,.0f}")
    print(
        f"simulator CPU per create : {cpu_used / args.count * 1e6:,.0f} µs"
        f"  (= {args.count / cpu_used:,.0f} creates per CPU-second)"
    )
    print(f"repositories in state    : {repos:,} in alice ({total:,} created)")
    print(
        f"simulator RSS            : {rss_start:,.1f} MiB at start, {rss_end:,.1f} MiB after"
        f" ({(rss_end - rss_start) * 1024 * 1024 / total:,.0f} bytes per repository,"
        " audit event and log entry)"
    )


if __name__ == "__main__":
    main()
