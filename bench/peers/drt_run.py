"""The drt peer: ``drt run`` with a DuckDB source and a ``rest_api`` destination.

drt's documented setup for a REST destination (its ``duckdb_to_rest`` starter): a profile of
type ``duckdb`` (in memory; the model is SQL over ``read_parquet``/``read_csv``), a sync with a
Jinja ``body_template``, bearer auth from an environment variable, ``on_error: skip`` and the
default retry (3 attempts, exponential backoff, ``Retry-After`` honoured). drt's REST
destination sends one request at a time within a sync; its documented parallelism is
``drt run --threads N`` across syncs, so ``--concurrency N`` (N > 1) splits the model into N
syncs by ``hash(name) % N`` and runs them with ``--threads N``. The rate limit (one bucket
per endpoint, shared by all syncs) is set to the known quota when there is one
(``--per-minute``), otherwise to 0 (drt's "no pacing").
``--dry-run`` is ``drt run --dry-run`` (extracts the rows; does not render bodies).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from common import arguments, report, token

BODY = (
    '{"name": {{ row.name | tojson }}, "namespace": "%s", '
    '"description": {{ row.description | tojson }}, '
    '"is_private": {{ row.is_private | tojson }}}'
)


def sync_yaml(name: str, model: str, url: str, namespace: str, rate: float) -> str:
    body = BODY % namespace
    return f"""name: {name}
model: {json.dumps(model)}
destination:
  type: rest_api
  url: {json.dumps(url)}
  method: POST
  headers:
    Content-Type: "application/json"
  auth:
    type: bearer
    token_env: HUB_TOKEN
  body_template: {json.dumps(body)}
sync:
  mode: full
  batch_size: 100
  rate_limit:
    requests_per_second: {rate}
  on_error: skip
"""


def main() -> None:
    args = arguments(__doc__ or "")
    work = Path(args.work)
    (work / "syncs").mkdir(parents=True, exist_ok=True)
    (work / "home" / ".drt").mkdir(parents=True, exist_ok=True)
    (work / "home" / ".drt" / "profiles.yml").write_text(
        "bench:\n  type: duckdb\n  database: ':memory:'\n"
    )
    (work / "drt_project.yml").write_text('name: hub_bench\nversion: "0.1"\nprofile: bench\n')
    reader = "read_parquet" if args.input.endswith(".parquet") else "read_csv"
    source = f"SELECT name, description, is_private FROM {reader}('{args.input}')"
    url = f"{args.url}/v2/namespaces/{args.namespace}/repositories"
    parts = max(1, args.concurrency)
    # drt's limiter is shared by every sync and thread that calls one endpoint; 0: no pacing
    rate = args.per_minute / 60 if args.per_minute else 0
    for k in range(parts):
        model = source if parts == 1 else f"{source} WHERE hash(name) % {parts} = {k}"
        (work / "syncs" / f"repos_{k:03d}.yml").write_text(
            sync_yaml(f"repos_{k:03d}", model, url, args.namespace, rate)
        )
    env = dict(os.environ, HOME=str(work / "home"), HUB_TOKEN=token(args.url, args.identifier))
    env.pop("BENCH_HUB_SECRET", None)
    drt = str(Path(sys.executable).with_name("drt"))
    command = [drt, "run", "--output", "json"]
    if parts > 1:
        command += ["--threads", str(parts)]
    if args.dry_run:
        command.append("--dry-run")
    child = subprocess.Popen(
        command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # stopped by the benchmark (SIGTERM): stop drt too and wait, so its CPU is counted
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    stdout, stderr = child.communicate()
    done = subprocess.CompletedProcess(command, child.returncode, stdout, stderr)
    ok = failed = rows = 0
    try:
        result = json.loads(done.stdout)
        for sync in result.get("syncs", []):
            ok += int(sync.get("rows_synced", 0) or 0)
            failed += int(sync.get("rows_failed", 0) or 0)
            rows += int(sync.get("rows_extracted", 0) or 0)
    except (ValueError, AttributeError):
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-2000:])
    (work / "drt-output.txt").write_text(done.stdout[-20000:] + "\n" + done.stderr[-20000:])
    report(ok=ok, failed=failed, rows=rows, exit=done.returncode)


if __name__ == "__main__":
    main()
