"""Ray benchmark: the Ray Data datasink against single-process ``sink run``, the simulator in
its own process at 50 ms latency.

1. Throughput and CPU: create-repository records at total concurrency C (``sink run`` with C,
   the datasink with 1, 2 and 4 workers sharing C), each run at N records and at N/4, repeated
   R times (median and range). CPU counts every process that does the run's work: for
   ``sink run`` its process; for Ray the driver (Ray Data's scheduling, ``on_write_start``),
   the write tasks' processes and the store and budget actors (Ray's raylet and GCS are not
   counted, nor the simulator). *Per record* is the marginal CPU, (CPU at N − CPU at N/4) ÷
   (N − N/4): what one more record costs once start-up is paid, background work for the
   length of the run included. *Start-up* is the rest, CPU at N less N × per record, and the
   wall time of a Ray job before and after its tasks send. The overhead is Ray's per-record
   CPU less ``sink run``'s. On two cores the point is the overhead, not speed-up.
2. Quota: the simulator limits the credential to L requests per W-second window; 4 workers
   send 6·L records: the share of the quota used (over the windows the run spanned but the
   first, cut short, and the last) and the 429s.

Usage: python bench/ray.py [--records 4000] [--repeat 3] [--concurrency 32] [--limit 100]
[--window 2] [--skip-quota]. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
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
    sending = max(end for _, end in result.spans) - min(start for start, _ in result.spans)
    actors = store_cpu.total + actor_cpu(sink)
    return {
        "seconds": seconds,
        "sending": sending,
        "ok": sink.summary.counts.ok,
        "tasks": result.cpu,
        "setup": getattr(result, "setup_cpu", 0.0),  # absent before it was measured
        "actors": actors,
        "driver": driver,
        "cpu": result.cpu + actors + driver,
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


def _spread(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    """Median and range of ``values`` (times ``scale``)."""
    scaled = sorted(v * scale for v in values)
    if len(scaled) == 1:
        return f"{scaled[0]:.{digits}f}"
    return (
        f"{statistics.median(scaled):.{digits}f} ({scaled[0]:.{digits}f}-{scaled[-1]:.{digits}f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--skip-quota", action="store_true")
    args = parser.parse_args()
    os.environ["SINK_BENCH_OAT"] = OAT
    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    big, c = args.records, args.concurrency
    small = max(1, big // 4)
    print(
        f"{big} and {small} create-repository records, 50 ms latency, total concurrency {c}, "
        f"{os.cpu_count()} cores, {args.repeat} rounds; CPU in ms, median (range)"
    )
    kinds = ["sink run", *(f"ray, {w} worker{'s' if w > 1 else ''}" for w in (1, 2, 4))]
    figures: dict[str, dict[str, list[float]]] = {kind: {} for kind in kinds}

    def keep(kind: str, name: str, value: float) -> None:
        figures[kind].setdefault(name, []).append(value)

    with tempfile.TemporaryDirectory() as tmp, start_process(latency_ms=50) as hub:
        folder = Path(tmp)
        # Ray starts its worker processes on the first job: a small one, not measured, first.
        warm = [f"warm-{i:03d}" for i in range(40)]
        ray_run(hub.url, config(folder / "warm", "warm", c, warm), 4, warm)
        for round_ in range(args.repeat):
            runs: dict[tuple[str, int], dict[str, float]] = {}
            for n in (big, small):
                hub.reset()
                rows = [f"run{round_}-{n}-{i:05d}" for i in range(n)]
                seconds, cpu, ok = sink_run(
                    hub.url, config(folder / f"run{round_}-{n}", "run", c, rows)
                )
                runs["sink run", n] = {"seconds": seconds, "sending": seconds, "cpu": cpu, "ok": ok}
                for workers, kind in zip((1, 2, 4), kinds[1:], strict=True):
                    hub.reset()
                    rows = [f"ray{workers}-{round_}-{n}-{i:05d}" for i in range(n)]
                    path = config(folder / f"ray{workers}-{round_}-{n}", "ray", c, rows)
                    runs[kind, n] = ray_run(hub.url, path, workers, rows)
            for kind in kinds:
                one, few = runs[kind, big], runs[kind, small]
                marginal = (one["cpu"] - few["cpu"]) / (big - small)
                keep(kind, "per_record", marginal)
                keep(kind, "startup_cpu", one["cpu"] - big * marginal)
                keep(kind, "total", one["cpu"] / big)
                keep(kind, "rate", big / one["seconds"])
                keep(kind, "sending_rate", big / one["sending"])
                keep(kind, "startup_wall", one["seconds"] - one["sending"])
                keep(kind, "lost", big - one["ok"])
                for part in ("tasks", "setup", "actors", "driver", "store_calls", "leases"):
                    if part in one:
                        per = (one[part] - few[part]) / (big - small)
                        keep(kind, part, per if part not in ("setup",) else one[part])
            base = figures["sink run"]["per_record"][-1]
            for kind in kinds[1:]:
                keep(kind, "overhead", figures[kind]["per_record"][-1] - base)
            print(
                f"round {round_ + 1}: "
                + ", ".join(
                    f"{kind} {figures[kind]['per_record'][-1] * 1000:.3f}" for kind in kinds
                )
                + " ms/record",
                flush=True,
            )
        print()
        for kind in kinds:
            f = figures[kind]
            line = (
                f"{kind:15}: {_spread(f['rate'], digits=0)} records/s end to end, "
                f"{_spread(f['sending_rate'], digits=0)} while sending; CPU per record "
                f"{_spread(f['per_record'], 1000)}"
            )
            if kind != "sink run":
                line += (
                    f" (tasks {_spread(f['tasks'], 1000)}, actors {_spread(f['actors'], 1000)}, "
                    f"driver {_spread(f['driver'], 1000)}); overhead "
                    f"{_spread(f['overhead'], 1000)} ms; {_spread(f['store_calls'])} store "
                    f"calls and {_spread(f['leases'])} leases per record"
                )
            line += (
                f"; start-up {_spread(f['startup_cpu'], digits=2)} s CPU"
                + (
                    f" ({_spread(f['setup'], digits=2)} s in the tasks before their first "
                    f"record), {_spread(f['startup_wall'], digits=1)} s wall outside the "
                    "tasks' sending"
                    if kind != "sink run"
                    else ""
                )
                + f"; all CPU ÷ records at {big}: {_spread(f['total'], 1000)}"
                + f"; {int(sum(f['lost']))} not ok"
            )
            print(line)
        if not args.skip_quota:
            quota(hub.url, hub, folder, args.limit, args.window, c)
    ray.shutdown()


if __name__ == "__main__":
    main()
