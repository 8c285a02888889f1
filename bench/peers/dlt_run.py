"""The dlt peer: a ``@dlt.destination`` custom destination whose function POSTs with httpx.

dlt's documented reverse-ETL pattern: a resource yields the records, dlt extracts and
normalizes them into load files, and the loader calls the destination function with batches of
``batch_size`` items, one load job per file, ``load.workers`` jobs at a time on threads (dlt's
default is 20 workers). The files are cut at ``file_max_items`` so there are as many jobs as
workers. Create-repository has no bulk endpoint, so the function sends one POST per item with
one shared, thread-safe ``httpx.Client``; it retries 5xx and connection errors (5 attempts,
full-jitter backoff), waits as ``Retry-After`` says on 429, takes 409 as done, and raises when
a record cannot be sent so that dlt retries the job from that batch. dlt has no dry run.
"""

from __future__ import annotations

import math
import os
import random
import sys
import threading
import time
from typing import Any

import httpx
from common import arguments, body, records, report, token

ATTEMPTS = 5


def main() -> None:
    args = arguments(__doc__ or "")
    if args.dry_run:
        report(unsupported="dlt has no dry run")
        return
    workers = args.concurrency or 20
    total = sum(1 for _ in records(args.input)) if args.input.endswith(".csv") else None
    if total is None:
        import pyarrow.parquet as pq

        total = pq.ParquetFile(args.input).metadata.num_rows
    os.environ["LOAD__WORKERS"] = str(workers)
    os.environ["NORMALIZE__DATA_WRITER__FILE_MAX_ITEMS"] = str(max(50, math.ceil(total / workers)))
    os.environ["EXTRACT__DATA_WRITER__FILE_MAX_ITEMS"] = str(max(50, math.ceil(total / workers)))
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    import dlt

    url = f"{args.url}/v2/namespaces/{args.namespace}/repositories"
    bearer = {"Authorization": f"Bearer {token(args.url, args.identifier)}"}
    client = httpx.Client(
        timeout=30, limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    )
    lock = threading.Lock()
    counts = {"ok": 0, "failed": 0}

    def post(payload: dict[str, Any]) -> None:
        attempt = 0
        throttles = 0
        while True:
            try:
                response = client.post(url, json=payload, headers=bearer)
                status = response.status_code
            except httpx.TransportError:
                status = 0
            if 200 <= status < 300 or status == 409:
                with lock:
                    counts["ok"] += 1
                return
            if status == 429 and throttles < 50:
                throttles += 1
                try:
                    time.sleep(float(response.headers.get("Retry-After", "1")))
                except ValueError:
                    time.sleep(1.0)
                continue
            if (status == 0 or status >= 500) and attempt + 1 < ATTEMPTS:
                attempt += 1
                time.sleep(random.uniform(0, min(10.0, 0.5 * 2**attempt)))
                continue
            with lock:
                counts["failed"] += 1
            raise RuntimeError(f"create failed with HTTP {status}")

    @dlt.destination(batch_size=100, name="dockerhub")
    def dockerhub(items: list[dict[str, Any]], table: dict[str, Any]) -> None:
        for item in items:
            post(body(item, args.namespace))

    @dlt.resource(name="repositories", write_disposition="append")
    def repositories() -> Any:
        chunk: list[dict[str, Any]] = []
        for record in records(args.input):
            chunk.append(record)
            if len(chunk) == 1000:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    pipeline = dlt.pipeline(
        pipeline_name="hub_bench",
        destination=dockerhub,
        pipelines_dir=args.work or None,
        dev_mode=True,
    )
    error = ""
    try:
        pipeline.run(repositories())
    except Exception as exc:  # the benchmark counts from the simulator's state either way
        error = type(exc).__name__
        print(f"dlt: {error}", file=sys.stderr)
    client.close()
    report(**counts, error=error)


if __name__ == "__main__":
    main()
