"""sink beside the tools users would pick instead: drt, dlt's custom destination, an httpx loop.

The peers live in their own virtualenv, ``bench/.peers/venv`` (made and filled here; sink's own
``.venv`` is never touched), and are driven by the small scripts in ``bench/peers/``. Every tool
runs in its own subprocess against the same simulator process (``sink.hubsim.start_process``,
50 ms latency), state reset between runs, and gets its token itself from the seed's fake acme
organization access token. Workloads, one after the other:

1. ``best``: N create-repository records from Parquet, each tool at its best documented
   concurrency (sink: 64, what its README's example config suggests for bulk runs; drt: one
   sync, one request at a time, so it gets a shorter slice of the file; dlt: its default 20
   load workers; the httpx loop: 64);
2. ``same``: the same at one concurrency for all (64);
3. ``csv``: the same from CSV at that concurrency;
4. ``faults``: as 2, with 5% of creates answered 503 and 2% 429 + ``Retry-After``; delivered,
   duplicated and lost are counted from the simulator's state;
5. ``quota``: the credential limited to Q creates a minute for S seconds; the share of the quota
   used and the 429s received (drt is given the quota as its documented ``rate_limit``);
6. ``render``: a dry run / render only of R records to /dev/null where the tool has one;
7. ``bare``: as 4, the simulator sending no ``X-RateLimit-*`` header at all (a server that does
   not say its quota): 429s without quota information;
8. ``window``: 1,000 records under a fixed window of 600 creates a minute per token, run to the
   end: the time to finish (the optimum is about a minute: 600 at once, wait for the reset, 400
   more) and the 429s.

For each: wall time, requests/s (from the simulator's log), records delivered per second, CPU
seconds and peak memory of the tool's process tree (``wait4`` in a small launcher process, so
that this process's size does not leak into the peak), the simulator's CPU seconds, and sink's
figure divided by the tool's. Only a time-boxed run (the quota row) is stopped; every other run
goes until the tool is done. Before each run the benchmark waits (2 minutes at most) for an
idle machine, and what other processes used during a run is shown in its notes. One markdown
table is printed and written to ``bench/.data/peers-latest.md``.

    .venv/bin/python bench/peers.py [--records 20000] [--quick] [--only best,faults]

Figures only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
PEERS = HERE / ".peers"
VENV = PEERS / "venv"
DRIVERS = HERE / "peers"
OAT = "dckr_oat_mGUb8viwoTjRp7goKqWQNFHBziuPKlbZ"  # the simulator seed's fake acme token
NAMESPACE = "acme"
LATENCY_MS = 50.0
CREATE = "/v2/namespaces/*/repositories"
GRACE = 6.0  # seconds a time-boxed run goes on past its window (start-up, imports)
SETTLE_LIMIT = 120.0  # seconds to wait at most for an idle machine before each run

# pip requirements of each peer (the versions bench/README.md describes); a peer whose install
# fails is reported, not measured
PEER_PACKAGES = {
    "drt": ["drt-core[duckdb]==1.2.1"],
    "dlt": ["dlt==1.31.0"],
    "httpx loop": ["httpx"],
}
# sniffio as sink has it: without it httpcore retries the import on every lock (DESIGN.md);
# measured here it gave the httpx loop about 15% more requests/s
COMMON_PACKAGES = ["httpx", "sniffio", "pyarrow"]
DRIVER = {"drt": "drt_run.py", "dlt": "dlt_run.py", "httpx loop": "httpx_loop.py"}
TOOLS = ["sink", "drt", "dlt", "httpx loop"]
BEST = {"sink": 64, "drt": 1, "dlt": 20, "httpx loop": 64}


# ---------------------------------------------------------------- the peers' virtualenv


def ensure_peers(log: Path) -> dict[str, str]:
    """Make ``bench/.peers/venv`` and install the peers; returns {peer: why it is missing}."""
    missing: dict[str, str] = {}
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    with log.open("a") as out:
        for peer, packages in {"common": COMMON_PACKAGES, **PEER_PACKAGES}.items():
            stamp = PEERS / f".installed-{peer.replace(' ', '-')}"
            if stamp.exists() and stamp.read_text() == " ".join(packages):
                continue  # installed with this very list (a changed list installs again)
            print(f"installing {peer} into {VENV} ...", flush=True)
            done = subprocess.run(pip + packages, stdout=out, stderr=out)
            if done.returncode == 0:
                stamp.write_text(" ".join(packages))
            else:
                missing[peer] = f"`pip install {' '.join(packages)}` failed (see {log.name})"
    if "common" in missing:
        return {peer: missing["common"] for peer in PEER_PACKAGES}
    return missing


# ---------------------------------------------------------------- data


def parquet(rows: int) -> Path:
    """The cached Parquet file of ``rows`` create-repository records (as bench/render.py)."""
    sys.path.insert(0, str(HERE))
    from render import make_parquet  # type: ignore[import-not-found]

    return make_parquet(rows)  # type: ignore[no-any-return]


def csv_of(path: Path) -> Path:
    """The same records as CSV beside the Parquet file."""
    import pyarrow.csv as pc
    import pyarrow.parquet as pq

    out = path.with_suffix(".csv")
    if not out.exists():
        pc.write_csv(pq.read_table(path), out)
    return out


# ---------------------------------------------------------------- running one tool


@dataclass
class Run:
    """What one tool did in one row."""

    tool: str
    records: int
    wall: float = 0.0
    cpu: float = 0.0
    peak_mb: float = 0.0
    requests: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    conflicts: int = 0
    throttled: int = 0
    server_errors: int = 0
    accepted: int = 0
    sim_cpu: float = 0.0  # the simulator's CPU seconds during the run
    other_cpu: float = 0.0  # the rest of the machine's busy CPU seconds during the run
    reported: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    unsupported: str = ""

    @property
    def rate(self) -> float:
        return self.requests / self.wall if self.wall else 0.0

    @property
    def goodput(self) -> float:
        return self.delivered / self.wall if self.wall else 0.0


def command(
    tool: str,
    url: str,
    source: Path,
    concurrency: int,
    work: Path,
    *,
    per_minute: int = 0,
    seconds: float = 0.0,
    dry_run: bool = False,
) -> list[str]:
    """The command line that runs ``tool`` in its own process."""
    if tool == "sink":
        line = [
            sys.executable,
            __file__,
            "--child",
            url,
            str(source),
            str(concurrency),
            str(work),
            str(seconds + GRACE if seconds else 0.0),
        ]
        return line + (["--child-dry-run"] if dry_run else [])
    line = [
        str(VENV / "bin" / "python"),
        str(DRIVERS / DRIVER[tool]),
        "--url",
        url,
        "--identifier",
        NAMESPACE,
        "--namespace",
        NAMESPACE,
        "--input",
        str(source),
        "--concurrency",
        str(concurrency),
        "--work",
        str(work),
    ]
    if per_minute:
        line += ["--per-minute", str(per_minute)]
    return line + (["--dry-run"] if dry_run else [])


# Runs the tool for run_process and writes "exit-code cpu-seconds max-rss-KiB" of the tool's
# process tree to argv[1]. On Linux a process's peak RSS starts at the peak of the image it was
# exec'd from, so a tool started straight from this (large) process would report at least this
# process's size; started from this small interpreter (-I -S, a few MB) it reports its own.
LAUNCHER = """\
import os, signal, sys
signal.signal(signal.SIGTERM, lambda *_: None)  # the tool, in the same group, gets it; wait
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_utime + usage.ru_stime} "
              f"{usage.ru_maxrss}")
"""


def run_process(line: list[str], seconds: float = 0.0) -> tuple[float, float, float, str]:
    """Run ``line``; returns wall s, CPU s and peak MB of its process tree, and its stdout.

    With ``seconds``, the process group gets SIGTERM when they are up (the drivers pass it on
    to their children and wait for them, so the figures still cover the whole tree).
    """
    env = dict(os.environ, BENCH_HUB_SECRET=OAT, PYTHONUNBUFFERED="1")
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as usage,
    ):
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", LAUNCHER, usage.name, *line],
            stdout=out,
            stderr=err,
            env=env,
            start_new_session=True,
        )
        if seconds:
            try:
                process.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGTERM)
        process.wait()
        wall = time.perf_counter() - start
        code, cpu, peak_kib = usage.read().split()
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace")
        if int(code) not in (0, -signal.SIGTERM) and not seconds:
            sys.stderr.write(err.read().decode(errors="replace")[-3000:])
    return wall, float(cpu), int(peak_kib) / 1024, text


def cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds so far of process ``pid`` (its own), or of the whole machine (busy time)."""
    tick = os.sysconf("SC_CLK_TCK")
    if pid is not None:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(
            int, stat.readline().split()[1:9]
        )
    return (user + nice + system + irq + softirq + steal) / tick


def settle(limit: float = SETTLE_LIMIT) -> float:
    """Wait (``limit`` s at most) until the machine has been idle for a second: less than a
    tenth of one core busy. The machine may be shared (tests, other benchmarks); what others
    still use during a run is measured and shown in the table. Returns the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        before = cpu_seconds()
        time.sleep(1.0)
        if cpu_seconds() - before < 0.1:
            break
    return time.perf_counter() - start


def last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}


def measure(
    hub: Any,
    tool: str,
    source: Path,
    records: int,
    concurrency: int,
    work: Path,
    *,
    faults: dict[str, Any] | None = None,
    per_minute: int = 0,
    seconds: float = 0.0,
) -> Run:
    """Reset the simulator, run ``tool`` on ``source`` and count from the simulator's state."""
    hub.reset()
    hub.set_faults(faults or {"latency_ms": LATENCY_MS})
    line = command(tool, hub.url, source, concurrency, work, per_minute=per_minute, seconds=seconds)
    # sink stops itself at the deadline (as bench/send.py does); the peers get SIGTERM. Both
    # run a little past it; only the first ``seconds`` of creates are counted.
    # Without ``seconds`` nobody is stopped: every tool runs until it is done.
    deadline = seconds + GRACE if seconds and tool != "sink" else 0.0
    settle()
    machine, simulator = cpu_seconds(), cpu_seconds(hub.pid)
    wall, cpu, peak, text = run_process(line, deadline)
    run = Run(tool, records, wall=wall, cpu=cpu, peak_mb=peak, reported=last_json(text))
    run.sim_cpu = cpu_seconds(hub.pid) - simulator
    run.other_cpu = max(0.0, cpu_seconds() - machine - cpu - run.sim_cpu)
    log = [r for r in hub.requests() if r["method"] == "POST" and "/repositories" in r["path"]]
    if seconds and log:
        first = min(r["time"] for r in log)
        log = [r for r in log if r["time"] < first + seconds]
    statuses = Counter(r["status"] for r in log)
    run.requests = len(log)
    run.accepted = statuses[201]
    run.conflicts = statuses[409]
    run.throttled = statuses[429]
    run.server_errors = sum(n for s, n in statuses.items() if s is not None and s >= 500)
    names = Counter(
        r["name"]
        for r in hub.state()["repositories"]
        if r["namespace"] == NAMESPACE and r["name"].startswith("service-")
    )
    run.delivered = len(names)
    run.duplicated = sum(n - 1 for n in names.values() if n > 1)
    run.lost = max(0, records - run.delivered) if not seconds else 0
    return run


def render_only(hub: Any, tool: str, source: Path, records: int, work: Path) -> Run:
    """A dry run / render of ``source`` to /dev/null, where the tool has one."""
    if tool in ("dlt", "httpx loop"):
        return Run(tool, records, unsupported="no dry run")
    hub.reset()
    line = command(tool, hub.url, source, 1, work, dry_run=True)
    settle()
    machine = cpu_seconds()
    wall, cpu, peak, text = run_process(line)
    run = Run(tool, records, wall=wall, cpu=cpu, peak_mb=peak, reported=last_json(text))
    run.other_cpu = max(0.0, cpu_seconds() - machine - cpu)
    run.delivered = int(run.reported.get("requests") or run.reported.get("rows") or 0)
    if tool == "drt":
        run.note = "extracts rows only; bodies are not rendered"
    return run


# ---------------------------------------------------------------- sink, in a child process


def sink_child(
    url: str, source: Path, concurrency: int, work: Path, seconds: float, dry_run: bool
) -> None:
    """Run sink through its library (like bench/send.py) and print its own counts."""
    import yaml

    from sink.destination import open_destination
    from sink.read.credentials import Credentials
    from sink.run import RunOptions, RunSummary, run_async

    work.mkdir(parents=True, exist_ok=True)
    config = work / "repositories.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "connection": {"identifier": NAMESPACE, "secret_env": "BENCH_HUB_SECRET"},
                "template": "create-repository",
                "settings": {"namespace": NAMESPACE},
                "key_field": "name",
                "input": str(source),
                "concurrency": concurrency,
            }
        )
    )
    dest = open_destination(config, base_url=url)
    if dry_run:
        from sink.preview import preview

        with open(os.devnull, "wb") as out:
            report = preview(dest, source, limit=None, out=out)
        print(json.dumps({"requests": report.requests, "rejected": report.rejected_count}))
        return
    credentials = Credentials(url, NAMESPACE, os.environ["BENCH_HUB_SECRET"], "oat")
    options = RunOptions(dest.path(str(source)), yes=True)

    async def bounded() -> RunSummary:
        task = asyncio.ensure_future(run_async(dest, credentials, options))
        if seconds:
            done, _ = await asyncio.wait({task}, timeout=seconds)
            if not done:
                options.control.stop()
        return await task

    summary = asyncio.run(bounded())
    counts = summary.counts
    waited = summary.stats.rate_limit_wait if summary.stats else 0.0
    print(
        json.dumps(
            {
                "ok": counts.ok,
                "failed": counts.failed,
                "requests": counts.requests,
                "already_existed": counts.already_existed,
                "paced_s": waited,
            }
        )
    )


# ---------------------------------------------------------------- the rows


@dataclass
class Row:
    """One workload: its title and each tool's run."""

    key: str
    title: str
    runs: dict[str, Run] = field(default_factory=dict)


def fault_rules(quota_headers: bool = True) -> dict[str, Any]:
    """5% of creates answered 503, 2% (one in fifty) 429 with ``Retry-After: 1``; without
    ``quota_headers``, no answer says the quota."""
    return {
        "latency_ms": LATENCY_MS,
        "quota_headers": quota_headers,
        "rules": [
            {
                "method": "POST",
                "path": CREATE,
                "latency_ms": LATENCY_MS,
                "error_rate": 0.05,
                "error_statuses": [503],
                "burst_every": 50,
                "burst_length": 1,
                "retry_after": 1,
                "quota_headers": quota_headers,
            }
        ],
    }


def quota_rules(per_minute: int) -> dict[str, Any]:
    return {
        "latency_ms": LATENCY_MS,
        "rules": [
            {"method": "POST", "path": CREATE, "latency_ms": LATENCY_MS, "rate_limit": per_minute}
        ],
    }


WINDOW_RECORDS = 1_000
WINDOW_QUOTA = 600


def window_note(hub: Any) -> str:
    """When the last create of the window row went out, against the optimum: the second
    window opens 60 s after the whole second of the first create (the simulator's windows),
    and the last 400 go out at once then."""
    log = [r for r in hub.requests() if r["method"] == "POST" and "/repositories" in r["path"]]
    if not log:
        return ""
    first, last = min(r["time"] for r in log), max(r["time"] for r in log)
    opens = math.floor(first) + 60 - first
    return f"last create at +{last - first:.1f} s; the second window opened at +{opens:.1f} s"


def run_rows(args: argparse.Namespace, missing: dict[str, str]) -> list[Row]:
    from sink.hubsim import start_process

    records, same = args.records, args.concurrency
    big = parquet(records)
    slice_rows = min(records, args.sequential_records)
    small = parquet(slice_rows)
    rows: list[Row] = []
    only = set(args.only.split(",")) if args.only else None
    tools = [t for t in TOOLS if t not in missing]
    if args.tools:
        tools = [t for t in tools if t in args.tools.split(",")]

    def wanted(key: str) -> bool:
        return only is None or key in only

    def note(tool: str, run: Run) -> Run:
        print(
            f"  {tool:11} {run.wall:7.1f} s  {run.rate:7.0f} req/s  delivered "
            f"{run.delivered:,}  cpu {run.cpu:.1f} s  {run.peak_mb:.0f} MB  simulator cpu "
            f"{run.sim_cpu:.1f} s  others {run.other_cpu:.1f} s",
            flush=True,
        )
        return run

    scratch = str(DATA / "work")
    shutil.rmtree(scratch, ignore_errors=True)
    with start_process(latency_ms=LATENCY_MS, jwt_ttl=3600) as hub:

        def work(row: str, tool: str) -> Path:
            return Path(scratch) / row / tool.replace(" ", "-")

        if wanted("best"):
            row = Row(
                "best",
                f"{records:,} creates from Parquet, each tool at its best documented concurrency",
            )
            print(row.title, flush=True)
            for tool in tools:
                source, count = (small, slice_rows) if BEST[tool] == 1 else (big, records)
                run = measure(hub, tool, source, count, BEST[tool], work("best", tool))
                run.note = f"concurrency {BEST[tool]}"
                if count != records:
                    run.note += f"; first {count:,} records (one request at a time)"
                row.runs[tool] = note(tool, run)
            rows.append(row)
        if wanted("same"):
            row = Row("same", f"{records:,} creates from Parquet, all at concurrency {same}")
            print(row.title, flush=True)
            for tool in tools:
                best = rows[0].runs.get(tool) if rows and rows[0].key == "best" else None
                if best is not None and BEST[tool] == same:
                    row.runs[tool] = best  # the same run: its best setting is this one
                    continue
                run = measure(hub, tool, big, records, same, work("same", tool))
                run.note = f"concurrency {same}" + (
                    "; 64 syncs, --threads 64" if tool == "drt" else ""
                )
                row.runs[tool] = note(tool, run)
            rows.append(row)
        if wanted("csv"):
            row = Row("csv", f"{records:,} creates from CSV, all at concurrency {same}")
            print(row.title, flush=True)
            for tool in tools:
                row.runs[tool] = note(
                    tool, measure(hub, tool, csv_of(big), records, same, work("csv", tool))
                )
            rows.append(row)
        if wanted("faults"):
            row = Row(
                "faults",
                f"{records:,} creates at concurrency {same}, 5% answered 503 "
                "and 2% 429 + Retry-After",
            )
            print(row.title, flush=True)
            for tool in tools:
                row.runs[tool] = note(
                    tool,
                    measure(
                        hub, tool, big, records, same, work("faults", tool), faults=fault_rules()
                    ),
                )
            rows.append(row)
        if wanted("bare"):
            row = Row(
                "bare",
                f"{records:,} creates at concurrency {same}, 5% answered 503 and 2% 429 + "
                "Retry-After, no X-RateLimit-* headers",
            )
            print(row.title, flush=True)
            for tool in tools:
                row.runs[tool] = note(
                    tool,
                    measure(
                        hub,
                        tool,
                        big,
                        records,
                        same,
                        work("bare", tool),
                        faults=fault_rules(quota_headers=False),
                    ),
                )
            rows.append(row)
        if wanted("window"):
            count = WINDOW_RECORDS
            row = Row(
                "window",
                f"{count:,} creates under a fixed window of {WINDOW_QUOTA} a minute per token, "
                f"concurrency {same}, run to the end",
            )
            print(row.title, flush=True)
            source = parquet(count)
            for tool in tools:
                run = measure(
                    hub,
                    tool,
                    source,
                    count,
                    same,
                    work("window", tool),
                    faults=quota_rules(WINDOW_QUOTA),
                )
                run.note = window_note(hub)
                row.runs[tool] = note(tool, run)
            rows.append(row)
        if wanted("quota"):
            per_minute, seconds = args.quota, args.quota_seconds
            windows = math.ceil(seconds / 60)  # Hub's windows: a minute from the first request
            quota_records = int(per_minute * windows * 1.5)
            row = Row(
                "quota",
                f"rate-limited credential: {per_minute:,} creates/minute for "
                f"{seconds:.0f} s, concurrency 16",
            )
            print(row.title, flush=True)
            source = parquet(quota_records)
            for tool in tools:
                run = measure(
                    hub,
                    tool,
                    source,
                    quota_records,
                    16,
                    work("quota", tool),
                    faults=quota_rules(per_minute),
                    per_minute=per_minute,
                    seconds=seconds,
                )
                if tool == "drt":
                    run.note = f"16 syncs, rate_limit {per_minute / 60:.0f}/s (shared)"
                row.runs[tool] = note(tool, run)
            row.title += f" ({per_minute * windows:,} allowed in that time)"
            rows.append(row)
        if wanted("render"):
            row = Row(
                "render",
                f"dry run / render only of {args.render_records:,} records "
                "from Parquet to /dev/null",
            )
            print(row.title, flush=True)
            source = parquet(args.render_records)
            for tool in tools:
                run = render_only(hub, tool, source, args.render_records, work("render", tool))
                row.runs[tool] = run if run.unsupported else note(tool, run)
            rows.append(row)
    for tool, why in missing.items():
        for row in rows:
            row.runs[tool] = Run(tool, 0, unsupported=f"not installed: {why}")
    return rows


# ---------------------------------------------------------------- the table


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}" if ours and theirs else "–"


def sink_version() -> str:
    """The commit sink was measured at, and whether its working tree had changes."""

    def git(*words: str) -> str:
        done = subprocess.run(["git", *words], cwd=HERE.parent, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "an unknown commit"
    dirty = git("status", "--porcelain", "--", "sink")
    return f"commit {commit}" + (" with uncommitted changes in sink/" if dirty else "")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def table(rows: list[Row], args: argparse.Namespace) -> str:
    """The markdown table of every row."""
    lines = [
        f"Peers benchmark, {datetime.date.today().isoformat()}: {args.records:,} records, "
        f"{LATENCY_MS:.0f} ms simulator latency, {os.cpu_count()} CPUs ({cpu_model()}), Python "
        f"{platform.python_version()}. `sink ×` = sink's figure ÷ the tool's (records "
        "delivered per second; in the quota row the share of the quota used; in the render "
        "row records per second). sink runs at 64 in the best row: what its README's example "
        "config suggests for bulk runs (its default is 16). "
        "`sim CPU s`: the simulator's CPU during the run (the two share the machine's cores). "
        f"sink at {args.sink_version}.",
        "",
        "| workload | tool | wall s | req/s | delivered/s | delivered | lost | dup | 409s "
        "| 429s | 5xx | CPU s | peak MB | sim CPU s | sink × | notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        sink = row.runs.get("sink")
        for tool in TOOLS:
            run = row.runs.get(tool)
            if run is None:
                continue
            if run.unsupported:
                lines.append(
                    f"| {row.key} | {tool} | " + " | ".join(["–"] * 13) + f" | {run.unsupported} |"
                )
                continue
            notes = [run.note] if run.note else []
            if row.key == "quota":
                allowed = args.quota * math.ceil(args.quota_seconds / 60)
                share = run.accepted / allowed
                notes.append(f"quota used {share:.1%}")
                theirs = share
                ours = sink.accepted / allowed if sink else 0.0
            elif row.key == "render":
                theirs, ours = run.goodput, sink.goodput if sink else 0.0
            else:
                theirs, ours = run.goodput, sink.goodput if sink else 0.0
                said_ok = run.reported.get("ok")
                if isinstance(said_ok, int) and said_ok != run.delivered:
                    notes.append(f"tool said ok {said_ok:,}")
                paced = run.reported.get("paced_s")
                if isinstance(paced, float) and paced >= 0.5:
                    notes.append(f"waited {paced:.0f} s on pacing/429 holds")
                said_failed = run.reported.get("failed")
                if isinstance(said_failed, int) and said_failed:
                    notes.append(f"tool said failed {said_failed:,}")
            if run.other_cpu > 0.1 * run.wall:
                notes.append(f"other processes used {run.other_cpu:.1f} CPU s meanwhile")
            lost = "–" if row.key in ("quota", "render") else f"{run.lost:,}"
            rate = "–" if row.key == "render" else f"{run.rate:,.0f}"
            lines.append(
                f"| {row.key} | {tool} | {run.wall:.1f} | {rate} | {run.goodput:,.0f} "
                f"| {run.delivered:,} | {lost} | {run.duplicated} | {run.conflicts:,} "
                f"| {run.throttled:,} | {run.server_errors:,} | {run.cpu:.1f} "
                f"| {run.peak_mb:.0f} | {run.sim_cpu:.1f} | {_ratio(ours, theirs)} "
                f"| {'; '.join(notes)} |"
            )
    lines.append("")
    lines.append("Rows: " + "; ".join(f"**{r.key}**: {r.title}" for r in rows) + ".")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64, help="the shared setting")
    parser.add_argument(
        "--sequential-records",
        type=int,
        default=1_000,
        help="records for a tool that sends one at a time (drt's best row)",
    )
    parser.add_argument("--quota", type=int, default=1_200, help="creates per minute")
    parser.add_argument("--quota-seconds", type=float, default=60.0)
    parser.add_argument("--render-records", type=int, default=1_000_000)
    parser.add_argument(
        "--only", default="", help="rows to run: best,same,csv,faults,bare,window,quota,render"
    )
    parser.add_argument("--tools", default="", help="tools to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="a small run for a smoke check")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--child-dry-run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, source, concurrency, work, seconds = args.child
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        sink_child(
            url, Path(source), int(concurrency), Path(work), float(seconds), args.child_dry_run
        )
        return
    if args.quick:
        args.records = min(args.records, 2_000)
        args.sequential_records = min(args.sequential_records, 200)
        args.quota, args.quota_seconds = 300, 20.0
        args.render_records = min(args.render_records, 100_000)
    DATA.mkdir(parents=True, exist_ok=True)
    PEERS.mkdir(parents=True, exist_ok=True)
    missing = ensure_peers(PEERS / "install.log")
    for peer, why in missing.items():
        print(f"{peer}: {why}", flush=True)
    args.sink_version = sink_version()  # before the run: the tree may change meanwhile
    started = time.perf_counter()
    rows = run_rows(args, missing)
    text = table(rows, args)
    text += f"\nTotal benchmark time {time.perf_counter() - started:.0f} s.\n"
    print()
    print(text, end="")
    (DATA / "peers-latest.md").write_text(text)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(written to {DATA / 'peers-latest.md'}; this process peaked at {peak:.0f} MB)")


if __name__ == "__main__":
    main()
