"""Start-up time of the ``sink`` command: wall-clock of a few short commands, repeated.

Each command runs as its own process (``python -m sink ...`` with the checkout first on
``sys.path``), its output thrown away; the figures are the median and the fastest of the runs,
in milliseconds, beside a bare ``python -c pass`` (the interpreter's own start-up), and the
number of modules the command imported. Nothing is sent anywhere: the preview renders 10
records of ``samples/repositories.yaml`` and stops.

``--against DIR`` times the same commands from another checkout (e.g. a ``git worktree`` of
an older commit) in the same loop, interleaved with this one, so that a busy moment of the
machine hits both alike.

Run ``.venv/bin/python bench/startup.py [--runs N] [--against DIR]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COMMANDS: list[tuple[str, list[str]]] = [
    ("python -c pass (the interpreter alone)", ["-c", "pass"]),
    ("sink --help", ["-m", "sink", "--help"]),
    ("sink templates", ["-m", "sink", "templates"]),
    ("sink preview samples/repositories.yaml -n 10", ["-m", "sink", "preview", "@", "-n", "10"]),
]
"""Name and interpreter arguments of each command; ``@`` stands for the sample config."""

_COUNT_MODULES = (
    "import runpy, sys\n"
    "sys.argv = ['sink', *sys.argv[1:]]\n"
    "try:\n"
    "    runpy.run_module('sink', run_name='__main__', alter_sys=True)\n"
    "except SystemExit:\n"
    "    pass\n"
    "sys.stdout.flush()\n"
    "sys.stderr.write(f'\\n{len(sys.modules)}\\n')\n"
)


def _env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    env["COLUMNS"] = "120"
    return env


def _argv(tree: Path, args: list[str]) -> list[str]:
    sample = str(tree / "samples" / "repositories.yaml")
    return [sys.executable, *(sample if a == "@" else a for a in args)]


def _time_once(tree: Path, args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        _argv(tree, args),
        env=_env(tree),
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - started


def _modules(tree: Path, args: list[str]) -> str:
    """How many modules the command imports (the interpreter's own included)."""
    if args[:2] != ["-m", "sink"]:
        return ""
    done = subprocess.run(
        [sys.executable, "-c", _COUNT_MODULES, *_argv(tree, args)[3:]],
        env=_env(tree),
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines and lines[-1].isdigit() else "?"


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each command (20)")
    parser.add_argument("--against", type=Path, help="another checkout, timed in the same loop")
    options = parser.parse_args()
    trees = [ROOT] + ([options.against.resolve()] if options.against else [])
    times: dict[tuple[Path, str], list[float]] = {}
    for tree in trees:  # one warm-up each: the first run also fills the page cache
        for name, args in COMMANDS:
            _time_once(tree, args)
            times[tree, name] = []
    for _ in range(options.runs):
        for name, args in COMMANDS:
            for tree in trees:
                times[tree, name].append(_time_once(tree, args))
    print(f"{options.runs} runs each, {sys.executable}, {os.cpu_count()} CPUs")
    print("ms: median / fastest of the runs; modules: imported by the command")
    for tree in trees:
        print(f"\n{tree}")
        print(f"  {'command':<46} {'median ms':>10} {'fastest ms':>11} {'modules':>8}")
        for name, args in COMMANDS:
            runs = times[tree, name]
            median, fastest = statistics.median(runs) * 1000, min(runs) * 1000
            modules = _modules(tree, args)
            print(f"  {name:<46} {median:>10.0f} {fastest:>11.0f} {modules:>8}")


if __name__ == "__main__":
    main()
