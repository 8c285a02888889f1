"""Helpers shared by the peers' driver scripts (run inside bench/.peers/venv, not sink's venv).

Each driver gets the simulator's URL, the input file and its settings on the command line and
the secret in the environment variable ``BENCH_HUB_SECRET`` (never on the command line, never
printed). It exchanges the secret for a JWT itself, does the work, and prints one JSON line with
its own report (``ok``/``failed``): the benchmark counts what was delivered from the simulator's
state, not from this line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import httpx


def arguments(description: str) -> argparse.Namespace:
    """The options every driver takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", required=True, help="base URL of the Hub (simulator)")
    parser.add_argument("--identifier", default="acme")
    parser.add_argument("--namespace", default="acme")
    parser.add_argument("--input", required=True, help="a .parquet or .csv file of records")
    parser.add_argument("--concurrency", type=int, default=0, help="0: the tool's default")
    parser.add_argument("--per-minute", type=int, default=0, help="known quota (0: none)")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--work", default="", help="a scratch folder for the tool")
    return parser.parse_args()


def token(url: str, identifier: str) -> str:
    """Exchange ``BENCH_HUB_SECRET`` for a bearer JWT (``POST /v2/auth/token``)."""
    secret = os.environ["BENCH_HUB_SECRET"]
    response = httpx.post(
        f"{url}/v2/auth/token", json={"identifier": identifier, "secret": secret}, timeout=30
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def _bool(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    return None


def records(path: str) -> Iterator[dict[str, Any]]:
    """Rows of a Parquet file (pyarrow batches) or a CSV file (csv module, booleans parsed)."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=8192):
            yield from batch.to_pylist()
        return
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            record: dict[str, Any] = dict(row)
            if "is_private" in record:
                record["is_private"] = _bool(record["is_private"])
            yield record


def body(record: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The create-repository body the spec asks for (absent values left out)."""
    out: dict[str, Any] = {"name": record["name"], "namespace": namespace}
    if record.get("description") not in (None, ""):
        out["description"] = record["description"]
    if record.get("is_private") is not None:
        out["is_private"] = record["is_private"]
    return out


def report(**figures: Any) -> None:
    """Print the driver's own report as the last line of its output."""
    sys.stdout.write(json.dumps(figures) + "\n")
    sys.stdout.flush()
