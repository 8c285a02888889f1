"""Render benchmark: preview N create-repository records from Parquet to /dev/null.

Prints records/s for sink's preview beside two baselines measured in the same run, each in its own
process (so peak memory is its own):

- hand:  read the same Parquet, build the same body dicts by hand, dump them with orjson
         (the limit);
- jinja: read the same Parquet, render the body per record as a full Jinja text template (the
         common approach);

and the ratios. Peak memory of sink's preview is printed for 100k and for N rows.
Usage: python bench/render.py [--rows 1000000]. Not a test: it prints figures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent / ".data"
NAMESPACE = "acme"


def make_parquet(rows: int) -> Path:
    """A Parquet file of ``rows`` create-repository records (cached under bench/.data)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = DATA / f"repositories-{rows}.parquet"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    chunk = 100_000
    writer = None
    for start in range(0, rows, chunk):
        ids = range(start, min(rows, start + chunk))
        table = pa.table(
            {
                "name": [f"service-{i:07d}" for i in ids],
                "description": [f"Image for service {i}" for i in ids],
                "is_private": [i % 3 == 0 for i in ids],
            }
        )
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    return path


def run_sink(path: Path) -> int:
    from sink.config import parse_config
    from sink.destination import bind
    from sink.preview import preview

    config = parse_config(
        {
            "connection": {"identifier": "alice", "secret_env": "SINK_HUB_SECRET"},
            "template": "create-repository",
            "settings": {"namespace": NAMESPACE},
        }
    )
    destination = bind(config, path.parent)
    with open(os.devnull, "wb") as out:
        report = preview(destination, path, limit=None, out=out)
    assert report.rejected_count == 0, report.rejected[:3]
    return report.requests


def _records(path: Path):  # type: ignore[no-untyped-def]
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=8192):
        yield from batch.to_pylist()


def run_hand(path: Path) -> int:
    import orjson

    count = 0
    with open(os.devnull, "wb") as out:
        for record in _records(path):
            body = {
                "name": record["name"],
                "namespace": NAMESPACE,
                "description": record["description"],
                "is_private": record["is_private"],
            }
            out.write(orjson.dumps(body) + b"\n")
            count += 1
    return count


def run_jinja(path: Path) -> int:
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment()
    template = env.from_string(
        '{"name": {{ record.name | tojson }}, "namespace": {{ namespace | tojson }}, '
        '"description": {{ record.description | tojson }}, '
        '"is_private": {{ record.is_private | tojson }}}'
    )
    count = 0
    with open(os.devnull, "w") as out:
        for record in _records(path):
            out.write(template.render(record=record, namespace=NAMESPACE) + "\n")
            count += 1
    return count


RUNNERS = {"sink": run_sink, "hand": run_hand, "jinja": run_jinja}


def child(kind: str, path: Path) -> None:
    start_cpu = time.process_time()
    start = time.perf_counter()
    count = RUNNERS[kind](path)
    wall = time.perf_counter() - start
    cpu = time.process_time() - start_cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {"kind": kind, "records": count, "wall": wall, "cpu": cpu, "peak_mb": peak_mb}
    print(json.dumps(figures))


def measure(kind: str, path: Path, repeat: int) -> dict[str, float]:
    """The best of ``repeat`` runs, each in a fresh process (shared machines are noisy)."""
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, __file__, "--child", kind, str(path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return min(runs, key=lambda r: r["wall"])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best counts")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    big = make_parquet(args.rows)
    small = make_parquet(min(100_000, args.rows))
    results = {kind: measure(kind, big, args.repeat) for kind in ("sink", "hand", "jinja")}
    small_sink = measure("sink", small, args.repeat)
    rate = {kind: r["records"] / r["wall"] for kind, r in results.items()}
    print(
        f"render benchmark: {args.rows:,} create-repository records from Parquet to /dev/null "
        f"(best of {args.repeat} runs each)"
    )
    print(f"{'':8}{'records/s':>12}{'wall s':>9}{'cpu s':>8}{'peak MB':>9}")
    for kind, r in results.items():
        print(f"{kind:8}{rate[kind]:>12,.0f}{r['wall']:>9.2f}{r['cpu']:>8.2f}{r['peak_mb']:>9.0f}")
    print(f"sink / hand-built limit: {rate['sink'] / rate['hand']:.2f} (target >= 0.25)")
    print(f"sink / per-record jinja: {rate['sink'] / rate['jinja']:.2f} (target >= 4)")
    print(f"sink records/s: {rate['sink']:,.0f} (target >= 200,000 on one core)")
    ratio = results["sink"]["peak_mb"] / small_sink["peak_mb"]
    print(
        f"sink peak memory: {results['sink']['peak_mb']:.0f} MB for {args.rows:,} rows, "
        f"{small_sink['peak_mb']:.0f} MB for {small_sink['records']:,} rows "
        f"(ratio {ratio:.2f}, target <= 1.2; target <= 200 MB)"
    )


if __name__ == "__main__":
    main()
