"""Ray benchmark: the Ray Data datasink against single-process ``sink run``, the simulator in
its own process at 50 ms latency.

1. Throughput: N create-repository records at total concurrency C (``sink run`` with C, the
   datasink with 1, 2 and 4 workers sharing C); records/s and CPU per record: for sink run
   the process's CPU, for Ray the write tasks' CPU plus the store and budget actors' (Ray's
   own scheduling on the driver is shown apart). On two cores the point is the overhead, not
   speed-up: the overhead per record is Ray's CPU per record less sink run's.
2. Quota: the simulator limits the credential to L requests per W-second window; 4 workers
   send 6·L records: the share of the quota used (over the windows the run spanned but the
   first, cut short, and the last) and the 429s.

Usage: python bench/ray.py [--records 4000] [--concurrency 32] [--limit 300] [--window 2]
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

# Run as a script, this file's folder is first on the path, and this file is not Ray.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]

import ray  # noqa: E402
import yaml  # noqa: E402

from sink.destination import open_destination  # noqa: E402
from sink.engine.ray import NAMESPACE, HubDatasink, budget_name  # noqa: E402
from sink.hubsim import start_process  # noqa: E402
from sink.read.credentials import Credentials  # noqa: E402
from sink.run import RunOptions, run_async  # noqa: E402

OAT = "dckr_oat_mGUb8viwoTjRp7goKqWQNFHBziuPKlbZ"  # the simulator seed's fake acme token


def config(folder: Path, name: str, concurrency: int, rows: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "records.jsonl").write_text("".join(f'{{"name": "{row}"}}\n' for row in rows))
    path = folder / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "connection": {"identifier": "acme", "secret_env": "SINK_BENCH_OAT"},
                "template": "create-repository",
                "settings": {"namespace": "acme"},
                "key_field": "name",
                "input": "records.jsonl",
                "concurrency": concurrency,
            }
        )
    )
    return path


def sink_run(url: str, path: Path) -> tuple[float, float, int]:
    destination = open_destination(path, base_url=url)
    credentials = Credentials(url, "acme", OAT, "oat")
    cpu, wall = time.process_time(), time.perf_counter()
    summary = asyncio.run(
        run_async(destination, credentials, RunOptions(path.parent / "records.jsonl"))
    )
    return time.perf_counter() - wall, time.process_time() - cpu, summary.counts.ok


def actor_cpu(sink: HubDatasink) -> float:
    budget = ray.get_actor(budget_name(sink.job.credentials), namespace=NAMESPACE)
    return float(ray.get(budget.state.remote())["cpu"])


def ray_run(url: str, path: Path, workers: int, rows: list[str]) -> dict[str, float]:
    sink = HubDatasink(path, base_url=url, workers=workers)
    dataset = ray.data.from_items([{"name": row} for row in rows], override_num_blocks=workers)
    dataset = dataset.materialize()  # the input is ready before the clock starts
    cpus = float(ray.cluster_resources().get("CPU", 2))
    store_cpu = _StoreCpu(sink)
    driver, wall = time.process_time(), time.perf_counter()
    dataset.write_datasink(
        sink, concurrency=workers, ray_remote_args={"num_cpus": min(1.0, cpus / workers)}
    )
    seconds = time.perf_counter() - wall
    driver = time.process_time() - driver
    result = sink.result
    assert result is not None and sink.summary is not None
    return {
        "seconds": seconds,
        "task_seconds": result.seconds,
        "ok": sink.summary.counts.ok,
        "tasks_cpu": result.cpu,
        "actors_cpu": store_cpu.total + actor_cpu(sink),
        "driver_cpu": driver,
        "store_calls": result.store_calls,
        "leases": result.leases,
    }


class _StoreCpu:
    """The store actor's CPU: read just before it closes (it is killed then)."""

    def __init__(self, sink: HubDatasink) -> None:
        self.total = 0.0
        finish = sink._finish

        def measured(total: Any) -> Any:
            store = ray.get_actor(sink.store_name, namespace=NAMESPACE)
            self.total = float(ray.get(store.cpu.remote()))
            return finish(total)

        sink._finish = measured  # type: ignore[method-assign]


def quota(url: str, hub: Any, folder: Path, limit: int, window: float, concurrency: int) -> None:
    hub.reset()
    hub.set_faults({"rate_limit": limit, "rate_window": window, "latency_ms": 50})
    rows = [f"quota-{i:05d}" for i in range(6 * limit)]
    path = config(folder / "quota", "quota", concurrency, rows)
    sink = HubDatasink(path, base_url=url, workers=4)
    dataset = ray.data.from_items([{"name": r} for r in rows], override_num_blocks=4)
    cpus = float(ray.cluster_resources().get("CPU", 2))
    dataset.write_datasink(sink, concurrency=4, ray_remote_args={"num_cpus": cpus / 4})
    log = [e for e in hub.requests() if e["credential"] and e["path"].startswith("/v2/")]
    throttled = sum(1 for e in log if e["status"] == 429)
    start = math.floor(min(e["time"] for e in log))
    per_window = Counter(int((e["time"] - start) // window) for e in log if e["status"] != 429)
    full = [per_window[i] for i in range(1, max(per_window))]  # the first is cut short
    used = sum(full) / (limit * len(full)) if full else float("nan")
    print(
        f"quota {limit}/{window:g} s, 4 workers, {len(rows)} records: {used:.1%} of the quota "
        f"used over {len(full)} full windows, {throttled} 429s of {len(log)} requests "
        f"({throttled / len(log):.2%}); per window {[per_window[i] for i in sorted(per_window)]}"
    )
    hub.set_faults({"latency_ms": 50})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--window", type=float, default=2.0)
    args = parser.parse_args()
    os.environ["SINK_BENCH_OAT"] = OAT
    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    n, c = args.records, args.concurrency
    print(
        f"{n} create-repository records, 50 ms latency, total concurrency {c}, "
        f"{os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory() as tmp, start_process(latency_ms=50) as hub:
        folder = Path(tmp)
        rows = [f"run-{i:05d}" for i in range(n)]
        hub.reset()
        seconds, cpu, ok = sink_run(hub.url, config(folder / "run", "run", c, rows))
        base = cpu / n * 1000
        print(
            f"sink run          : {n / seconds:7.0f} records/s  CPU {base:.3f} ms/record  ({ok} ok)"
        )
        for workers in (1, 2, 4):
            hub.reset()
            rows = [f"ray{workers}-{i:05d}" for i in range(n)]
            path = config(folder / f"ray{workers}", "ray", c, rows)
            figures = ray_run(hub.url, path, workers, rows)
            per = (figures["tasks_cpu"] + figures["actors_cpu"]) / n * 1000
            print(
                f"ray, {workers} worker{'s' if workers > 1 else ' '}    : "
                f"{n / figures['seconds']:7.0f} records/s end to end, "
                f"{n / figures['task_seconds']:4.0f} in the tasks  CPU {per:.3f} ms/record "
                f"(tasks {figures['tasks_cpu'] / n * 1000:.3f}, actors "
                f"{figures['actors_cpu'] / n * 1000:.3f}; Ray's driver "
                f"{figures['driver_cpu'] / n * 1000:.3f})  overhead {per - base:+.3f} ms/record  "
                f"{figures['store_calls'] / n:.2f} store calls and "
                f"{figures['leases'] / n:.2f} leases per record  ({figures['ok']:.0f} ok)"
            )
        quota(hub.url, hub, folder, args.limit, args.window, c)
    ray.shutdown()


if __name__ == "__main__":
    main()
