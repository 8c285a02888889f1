"""The Ray Data datasink on a local Ray (two CPUs) against the simulator in a child process:
every effect once over four workers, one quota for all of them, Ray's retries resumed (a
worker killed in the middle of its block, a task that fails once), and a config error before
any block is written."""

from __future__ import annotations

import math
import os
import sqlite3
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

ray = pytest.importorskip("ray", reason="the sink[ray] extra is not installed")

from sink.engine.ray import HubDatasink  # noqa: E402
from sink.errors import ConfigError  # noqa: E402
from sink.hubsim.server import ProcessSimulator, start_process  # noqa: E402
from sink.model import Record  # noqa: E402
from tests.seed import ACME_OAT, ALICE_PAT  # noqa: E402

pytestmark = pytest.mark.timeout(300)

REPOS = {
    "connection": {"identifier": "acme", "secret_env": "SINK_RAY_OAT"},
    "template": "create-repository",
    "settings": {"namespace": "acme"},
    "key_field": "name",
    "concurrency": 32,
}
PATS = {
    "connection": {"identifier": "alice", "secret_env": "SINK_RAY_PAT"},
    "template": "create-personal-access-token",
    "key_field": "token_label",
    "concurrency": 8,
}
REMOTE = {"num_cpus": 0.25}  # four write tasks at once on two CPUs


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    os.environ["SINK_RAY_OAT"] = ACME_OAT  # the workers inherit the driver's environment
    os.environ["SINK_RAY_PAT"] = ALICE_PAT
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def sim() -> Iterator[ProcessSimulator]:
    with start_process() as hub:
        yield hub


@pytest.fixture
def hub(sim: ProcessSimulator, local_ray: None) -> ProcessSimulator:
    sim.reset()
    return sim


def destination(folder: Path, config: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dest.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def posts(hub: ProcessSimulator, path: str) -> Counter[str]:
    """POSTs to ``path`` that Hub answered 2xx, by the name they created."""
    return Counter(
        entry["path"]
        for entry in hub.requests()
        if entry["method"] == "POST" and entry["path"] == path
    )


def ledger_states(path: Path) -> Counter[str]:
    db = sqlite3.connect(path)
    try:
        return Counter(dict(db.execute("SELECT state, count(*) FROM records GROUP BY state")))
    finally:
        db.close()


def jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def acme_repositories(hub: ProcessSimulator, prefix: str) -> list[str]:
    state = hub.state()
    repos = state.get("repositories", {})
    names = [r["name"] if isinstance(r, dict) else str(r) for r in _values(repos)]
    return [name for name in names if name.startswith(prefix)]


def _values(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict) and "name" in item:
                yield item
            elif isinstance(item, (dict, list)):
                yield from _values(item)
            else:
                yield key
    elif isinstance(value, list):
        yield from value


def test_ten_thousand_records_over_four_workers_each_effect_once(
    hub: ProcessSimulator, tmp_path: Path
) -> None:
    config = destination(tmp_path, REPOS)
    names = [f"ray-{i:05d}" for i in range(10_000)]
    sink = HubDatasink(config, base_url=hub.url, workers=4)
    dataset = ray.data.from_items([{"name": name} for name in names], override_num_blocks=8)
    dataset.write_datasink(sink, concurrency=4, ray_remote_args=REMOTE)

    summary = sink.summary
    assert summary is not None
    assert (summary.counts.records, summary.counts.ok, summary.counts.requests) == (
        10_000,
        10_000,
        10_000,
    )
    created = [
        e["path"]
        for e in hub.requests()
        if e["method"] == "POST" and e["path"] == "/v2/namespaces/acme/repositories"
    ]
    assert len(created) == 10_000  # each record sent once, none twice
    assert ledger_states(tmp_path / "dest.ledger.sqlite") == {"done": 10_000}
    responses = jsonl(tmp_path / "out" / "dest-responses.jsonl")
    keys = Counter(key for line in responses for key in line["keys"])
    assert set(keys) == set(names) and max(keys.values()) == 1
    assert (tmp_path / "out" / "dest-responses.jsonl").stat().st_mode & 0o777 == 0o600
    logins = [e for e in hub.requests() if e["path"] == "/v2/auth/token"]
    assert 1 <= len(logins) <= 8  # a JWT per worker process, not per block


def test_four_workers_share_one_quota(hub: ProcessSimulator, tmp_path: Path) -> None:
    # A quota well below what even one worker could send, so that the budget, not the CPU of
    # this two-core machine, decides how much of it is used.
    limit, window = 60, 2.0
    hub.set_faults({"rate_limit": limit, "rate_window": window})
    config = destination(tmp_path, REPOS)
    count = 6 * limit  # six windows' worth, spent by four workers together
    sink = HubDatasink(config, base_url=hub.url, workers=4)
    dataset = ray.data.from_items(
        [{"name": f"q-{i:04d}"} for i in range(count)], override_num_blocks=4
    )
    dataset.write_datasink(sink, concurrency=4, ray_remote_args=REMOTE)
    hub.set_faults(None)

    assert sink.summary is not None and sink.summary.counts.ok == count
    assert sink.result is not None and len(sink.result.spans) == 4  # four tasks sent
    log = [e for e in hub.requests() if e["credential"] and e["path"].startswith("/v2/")]
    throttled = [e for e in log if e["status"] == 429]
    assert len(throttled) < 0.01 * len(log), f"{len(throttled)} 429s of {len(log)} requests"
    # The simulator's fixed windows start on the whole second of the first request: the first
    # one is cut short, the last one is the run's end.
    start = math.floor(min(e["time"] for e in log))
    per_window = Counter(int((e["time"] - start) // window) for e in log if e["status"] != 429)
    # Only the windows some task was sending through from end to end: on two cores Ray starts
    # one worker process after another, and a window with no task running is Ray's start-up,
    # not the budget's doing.
    busy = _union(sink.result.spans)
    inner = [
        per_window[i]
        for i in range(1, max(per_window))
        if _covered(busy, start + i * window, start + (i + 1) * window)
    ]
    assert len(inner) >= 3, (sorted(per_window.items()), busy)
    used = sum(inner) / (limit * len(inner))
    assert used >= 0.95, f"{used:.1%} of the quota used: {sorted(per_window.items())}, {busy}"


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for began, ended in sorted(spans):
        if merged and began <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], ended))
        else:
            merged.append((began, ended))
    return merged


def _covered(spans: list[tuple[float, float]], began: float, ended: float) -> bool:
    return any(first <= began and ended <= last for first, last in spans)


class _Faulty(HubDatasink):
    """Kills task 0's worker after ``after`` records of its first attempt, and fails task 1's
    first attempt after as many (markers in ``folder`` say what was done)."""

    folder: Path = Path()
    after = 0

    def records(self, blocks: Iterable[Any], owner: str) -> Iterator[Record]:
        marker = self.folder / f"{owner}.tried"
        first = not marker.exists()
        marker.touch()
        for position, record in enumerate(super().records(blocks, owner)):
            if first and position == self.after:
                if owner == "task-0":
                    os._exit(1)  # the worker dies with requests on the wire
                if owner == "task-1":
                    raise RuntimeError("a task that fails once")
            yield record


def test_a_killed_worker_and_a_failed_task_are_retried_without_duplicates_or_losses(
    hub: ProcessSimulator, tmp_path: Path
) -> None:
    config = destination(tmp_path, PATS)
    labels = [f"ray-pat-{i:03d}" for i in range(600)]
    sink = _Faulty(config, base_url=hub.url, workers=2)
    sink.folder = tmp_path
    sink.after = 280  # of 300 per task, past the first chunk of 256: its last requests are out
    dataset = ray.data.from_items(
        [{"token_label": label, "scopes": "repo:read"} for label in labels], override_num_blocks=2
    )
    dataset.write_datasink(
        sink,
        concurrency=2,
        ray_remote_args={**REMOTE, "retry_exceptions": True, "max_retries": 3},
    )
    assert (tmp_path / "task-0.tried").exists() and (tmp_path / "task-1.tried").exists()
    summary = sink.summary
    assert summary is not None
    # The attempts that finished resumed what the first ones did: done, or looked up.
    resumed = summary.counts.done_before + summary.counts.recovered
    assert resumed >= 2 * 200, summary.counts

    alice = next(u for u in hub.state()["users"] if u["username"] == "alice")
    tokens = Counter(t["label"] for t in alice["tokens"] if t["label"].startswith("ray-pat-"))
    assert set(tokens) == set(labels)  # nothing lost
    assert max(tokens.values()) == 1  # nothing created twice
    vault = Counter(line["label"] for line in jsonl(tmp_path / "out" / "dest-vault.jsonl"))
    assert max(vault.values()) == 1  # each secret in the vault once
    db = sqlite3.connect(tmp_path / "dest.ledger.sqlite")
    rows = dict(db.execute("SELECT key, state FROM records").fetchall())
    lost = {k for (k,) in db.execute("SELECT key FROM records WHERE note LIKE 'secret not%'")}
    db.close()
    assert set(rows) == set(labels) and set(rows.values()) == {"done"}
    # A secret whose answer died with its worker is reported lost, never made twice.
    assert set(vault) | lost == set(labels) and not set(vault) & lost
    assert (tmp_path / "out" / "dest-vault.jsonl").stat().st_mode & 0o777 == 0o600


def test_a_config_error_fails_before_any_block_is_written(
    hub: ProcessSimulator, tmp_path: Path
) -> None:
    config = destination(tmp_path, {**REPOS, "key_field": "repository"})  # not a column
    sink = HubDatasink(config, base_url=hub.url, workers=2)
    dataset = ray.data.from_items([{"name": f"bad-{i}"} for i in range(20)])
    with pytest.raises(ConfigError, match="repository"):
        dataset.write_datasink(sink, ray_remote_args=REMOTE)
    assert not [e for e in hub.requests() if e["path"].startswith("/v2/")]
    assert not (tmp_path / "dest.ledger.sqlite").exists()


def test_sink_run_with_the_ray_engine(
    hub: ProcessSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sink.cli.main import ExitCode, main

    config = destination(tmp_path, {**REPOS, "input": "records.jsonl"})
    lines = [orjson.dumps({"name": f"cli-{i:03d}"}) for i in range(40)]
    lines.insert(7, b'{"name": "broken"')  # a line that cannot be read: rejected, not sent
    (tmp_path / "records.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    code = main(["run", str(config), "--engine", "ray", "--workers", "2", "--base-url", hub.url])

    assert code == ExitCode.REJECTED
    created = [
        e for e in hub.requests() if e["method"] == "POST" and e["path"].endswith("/repositories")
    ]
    assert len(created) == 40
    rejects = jsonl(tmp_path / "out" / "dest-rejects.jsonl")
    assert [line["_sink_index"] for line in rejects] == [7]
    assert "could not be read" in rejects[0]["_sink_error"]
    assert "Traceback" not in capsys.readouterr().err


def test_without_the_extra_the_engine_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sink.cli.main import ExitCode, main

    config = destination(tmp_path, {**REPOS, "input": "records.jsonl"})
    (tmp_path / "records.jsonl").write_text('{"name": "a"}\n')
    monkeypatch.setenv("SINK_RAY_OAT", ACME_OAT)
    monkeypatch.setitem(sys.modules, "sink.engine.ray", None)  # as if Ray were not installed

    code = main(["run", str(config), "--engine", "ray", "--base-url", "http://127.0.0.1:9"])

    assert code == ExitCode.STOPPED
    err = capsys.readouterr().err
    assert "pip install 'sink[ray]'" in err and "Traceback" not in err
