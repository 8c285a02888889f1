"""Stopping safely: signals, confirmations, the last owner, the access policy and the audit log.

Each run is ``python -m sink run`` in a subprocess (or the CLI in-process where no signal is
involved) against the simulator on 127.0.0.1; the simulator's request log shows what reached
"Docker Hub".
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from sink.cli import main as cli
from sink.hubsim import Simulator
from sink.send.ledger import DONE, SENT, Ledger
from tests.seed import ALICE_PASSWORD, OAT

REPOS = {"template": "create-repository", "settings": {"namespace": "acme"}, "key_field": "name"}


def write_config(folder: Path, config: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "records.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    connection = {"identifier": "acme", "secret_env": "SINK_STOP_SECRET"}
    path = folder / "dest.yaml"
    path.write_text(yaml.safe_dump({"connection": connection, "input": "records.jsonl", **config}))
    return path


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def ledger_counts(path: Path) -> Counter[str]:
    """The ledger's states, read on a connection of our own: what was committed."""
    db = sqlite3.connect(path)
    try:
        return Counter(dict(db.execute("SELECT state, count(*) FROM records GROUP BY state")))
    except sqlite3.OperationalError:  # read between the file's creation and its table's
        return Counter()
    finally:
        db.close()


def start(path: Path, url: str, *extra: str, secret: str = OAT) -> subprocess.Popen[str]:
    env = {**os.environ, "SINK_STOP_SECRET": secret}
    return subprocess.Popen(
        [sys.executable, "-m", "sink", "run", str(path), "--base-url", url, *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(check: Any, process: subprocess.Popen[str]) -> None:
    """Poll ``check()`` until it holds (the run must still be going)."""
    deadline = time.monotonic() + 60
    while not check():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never got there"
        time.sleep(0.02)


def repositories(hub: Simulator, prefix: str) -> list[str]:
    return [
        r["name"]
        for r in hub.state()["repositories"]
        if r["namespace"] == "acme" and r["name"].startswith(prefix)
    ]


def repo_rows(count: int, prefix: str) -> list[dict[str, Any]]:
    return [{"name": f"{prefix}-{i:04d}"} for i in range(count)]


def creates(hub: Simulator) -> list[dict[str, Any]]:
    return [
        r
        for r in hub.requests()
        if r["method"] == "POST" and r["path"] == "/v2/namespaces/acme/repositories"
    ]


def sent_rows(ledger: Path) -> int:
    return ledger_counts(ledger)[SENT] if ledger.exists() else 0


def test_a_second_run_of_a_destination_in_progress_is_refused(tmp_path: Path) -> None:
    with Simulator(latency_ms=60) as slow:
        path = write_config(tmp_path, {**REPOS, "concurrency": 2}, repo_rows(60, "twice"))
        first = start(path, slow.url)
        responses = tmp_path / "out" / "dest-responses.jsonl"
        wait_until(lambda: len(lines(responses)) >= 2, first)
        second = start(path, slow.url)
        _, err = second.communicate(timeout=60)
        assert first.poll() is None  # the first was still going
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
        posts = creates(slow)
    assert second.returncode == 2
    assert "another run of this destination is in progress" in err
    names = [line["keys"][0] for line in lines(responses)]
    assert len(names) == len(set(names)) == len(posts)  # only the first run sent anything


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_intake_lets_requests_in_flight_finish_and_commits_everything(
    tmp_path: Path, signum: int, code: int
) -> None:
    with Simulator(latency_ms=60) as slow:
        path = write_config(tmp_path, {**REPOS, "concurrency": 4}, repo_rows(300, "calm"))
        process = start(path, slow.url)
        responses = tmp_path / "out" / "dest-responses.jsonl"
        wait_until(lambda: len(lines(responses)) >= 8, process)
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
        created = repositories(slow, "calm-")
        posts = creates(slow)
    assert process.returncode == code, err
    assert "Interrupted: intake stopped, requests in flight finished" in err
    assert "in doubt" not in err and "Traceback" not in err
    written = lines(responses)
    assert 8 <= len(written) < 300  # intake stopped
    # Every request that left got its answer and every output has it: nothing in doubt.
    assert len(posts) == len(written) == len(created)
    assert sorted(created) == sorted(line["keys"][0] for line in written)
    counts = ledger_counts(tmp_path / "dest.ledger.sqlite")
    assert counts == Counter({DONE: len(created)})
    audit = lines(tmp_path / "out" / "dest-audit.jsonl")
    assert sorted(line["keys"][0] for line in audit) == sorted(created)


def test_a_second_signal_stops_at_once_and_the_next_run_settles_what_was_in_flight(
    hub: Simulator, tmp_path: Path
) -> None:
    hub.reset()
    rows = repo_rows(40, "hasty")
    # Hub applies each create at once and answers 3 s later: the second signal comes first.
    hub.set_faults(
        {
            "rules": [
                {
                    "method": "POST",
                    "path": "/v2/namespaces/*/repositories",
                    "slow_rate": 1.0,
                    "slow_ms": 3000,
                }
            ]
        }
    )
    path = write_config(tmp_path, {**REPOS, "concurrency": 8}, rows)
    ledger = tmp_path / "dest.ledger.sqlite"
    process = start(path, hub.url)
    wait_until(lambda: sent_rows(ledger) >= 8, process)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    # The ledger tells the truth: the requests that left are `sent`, their outcome unknown
    # to the run; those the pacer still held back (while it learnt Hub's pace) never left and
    # were taken back.
    arrived = repositories(hub, "hasty-")
    counts = ledger_counts(ledger)
    assert set(counts) == {SENT}
    assert 1 <= len(arrived) <= counts[SENT] <= 8
    hub.set_faults(None)
    env = {**os.environ, "SINK_STOP_SECRET": OAT}
    again = subprocess.run(
        [sys.executable, "-m", "sink", "run", str(path), "--base-url", hub.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    # The next run looked the eight up; those it found were not sent a second time.
    heads = [r["path"].rsplit("/", 1)[1] for r in hub.requests() if r["method"] == "HEAD"]
    assert set(arrived) <= set(heads)
    assert sorted(repositories(hub, "hasty-")) == [r["name"] for r in rows]
    assert [p for p in creates(hub) if p["status"] == 409] == []
    events = [
        e
        for e in hub.state()["audit_logs"]
        if e["action"] == "repo.create" and e["name"].startswith("acme/hasty-")
    ]
    assert len(events) == len(rows)
    with Ledger(ledger) as book:
        assert book.counts()[DONE] == len(rows)
        found = [e.key for e in book.notes("found in place after an interrupted run")]
    assert sorted(found) == sorted(arrived)


# -- confirmations, the last owner, the policy, the audit log -----------------------------------


def run_cli(path: Path, url: str, *extra: str, secret: str = OAT) -> int:
    os.environ["SINK_STOP_SECRET"] = secret
    try:
        return cli.main(["run", str(path), "--base-url", url, *extra])
    finally:
        del os.environ["SINK_STOP_SECRET"]


def test_destructive_templates_do_not_run_without_confirmation(
    hub: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.reset()
    config = {"template": "delete-team", "settings": {"org": "acme"}}
    path = write_config(tmp_path, config, [{"team": "developers"}])
    assert run_cli(path, hub.url) == 2
    err = capsys.readouterr().err
    assert "destructive" in err and "--yes" in err
    assert hub.requests() == []  # not even a token exchange
    assert not (tmp_path / "dest.ledger.sqlite").exists()
    # allow_destructive in the config is the other way to confirm.
    path = write_config(tmp_path, {**config, "allow_destructive": True}, [{"team": "developers"}])
    assert run_cli(path, hub.url) == 0
    acme = next(o for o in hub.state()["orgs"] if o["name"] == "acme")
    assert "developers" not in {t["name"] for t in acme["teams"]}


def test_the_last_owner_is_never_removed(
    hub: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.reset()
    config = {"template": "remove-member", "settings": {"org": "acme"}, "key_field": "username"}
    path = write_config(tmp_path, config, [{"username": "carol"}, {"username": "alice"}])
    assert run_cli(path, hub.url, "--yes") == 1
    members = next(o for o in hub.state()["orgs"] if o["name"] == "acme")["members"]
    assert "alice" in members and "carol" not in members
    deletes = [r["path"] for r in hub.requests() if r["method"] == "DELETE"]
    assert deletes == ["/v2/orgs/acme/members/carol"]
    rejects = lines(tmp_path / "out" / "dest-rejects.jsonl")
    assert [r["username"] for r in rejects] == ["alice"]
    assert "last owner" in rejects[0]["_sink_error"]
    audit = lines(tmp_path / "out" / "dest-audit.jsonl")
    calls = [a for a in audit if a["outcome"] != "read"]
    assert sorted((a["outcome"], a["keys"]) for a in calls) == [
        ("ok", ["carol"]),
        ("refused", ["alice"]),
    ]
    # The guard's reads of the members list are in the audit log too.
    assert any(
        a["method"] == "GET" and "/v2/orgs/acme/members" in a["url"]
        for a in audit
        if a["outcome"] == "read"
    )
    capsys.readouterr()


def test_policy_violations_never_reach_docker_hub(hub: Simulator, tmp_path: Path) -> None:
    hub.reset()
    config = {
        "template": "add-team-member",
        "settings": {"org": "acme"},
        "policy": {"teams": ["developers"], "methods": ["POST"]},
    }
    rows = [
        {"team": "developers", "username": "carol"},
        {"team": "owners", "username": "bob"},
        {"team": "developers", "username": "erin"},
    ]
    path = write_config(tmp_path, config, rows)
    assert run_cli(path, hub.url) == 1
    posts = [r["path"] for r in hub.requests() if r["method"] == "POST" and "groups" in r["path"]]
    assert posts == ["/v2/orgs/acme/groups/developers/members"] * 2
    assert not any("owners" in r["path"] for r in hub.requests())
    rejects = lines(tmp_path / "out" / "dest-rejects.jsonl")
    assert [r["username"] for r in rejects] == ["bob"]
    assert "policy does not allow team 'owners'" in rejects[0]["_sink_error"]
    with Ledger(tmp_path / "dest.ledger.sqlite") as ledger:
        assert ledger.counts() == {"done": 2, "rejected": 1, "sent": 0, "failed": 0}
    # Read-only: nothing at all is sent.
    hub.reset()
    path = write_config(tmp_path / "ro", {**config, "policy": {"read_only": True}}, rows)
    assert run_cli(path, hub.url) == 1
    assert [r for r in hub.requests() if r["method"] != "GET" and "auth" not in r["path"]] == []


def test_the_audit_log_holds_every_call_and_no_secret(hub: Simulator, tmp_path: Path) -> None:
    hub.reset()
    config = {
        "template": "create-personal-access-token",
        "key_field": "token_label",
        "connection": {"identifier": "alice", "secret_env": "SINK_STOP_SECRET"},
        "policy": {"templates": ["create-personal-access-token"]},
    }
    rows = [{"token_label": f"audit-{i}", "scopes": "repo:read"} for i in range(6)]
    rows.append({"token_label": "audit-bad", "scopes": "repo:everything"})
    path = write_config(tmp_path, config, rows)
    assert run_cli(path, hub.url, secret=ALICE_PASSWORD) == 1
    audit = [a for a in lines(tmp_path / "out" / "dest-audit.jsonl") if a["outcome"] != "read"]
    calls = [
        r for r in hub.requests() if r["method"] == "POST" and r["path"] == "/v2/access-tokens"
    ]
    assert len(audit) == len(calls) == 6  # the invalid record was never sent, so not a call
    for line in audit:
        assert {"time", "who", "template", "method", "url", "keys", "status", "outcome"} <= set(
            line
        )
        assert line["who"] == "alice"
        assert (line["method"], line["status"], line["outcome"]) == ("POST", 201, "ok")
        assert line["url"].endswith("/v2/access-tokens")
        assert line["body"]["token_label"] == line["keys"][0]
    assert sorted(line["keys"][0] for line in audit) == [f"audit-{i}" for i in range(6)]
    alice = next(u for u in hub.state()["users"] if u["username"] == "alice")
    text = (tmp_path / "out" / "dest-audit.jsonl").read_text()
    assert ALICE_PASSWORD not in text
    for token in alice["tokens"]:
        assert token["token"] not in text
    assert "dckr_" not in text and "eyJ" not in text  # no token, no JWT


# -- every wait is bounded, and a stop ends it --------------------------------------------------


def closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def untouched(ledger: Path) -> None:
    """Nothing in the ledger is sent or failed: every record was taken back."""
    if ledger.exists():
        with Ledger(ledger) as book:
            counts = book.counts()
        assert counts.get(SENT, 0) == counts.get("failed", 0) == counts.get(DONE, 0) == 0


def test_hub_out_of_reach_stops_the_run_with_exit_2_and_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = closed_port()
    path = write_config(tmp_path, REPOS, repo_rows(200, "gone"))
    started = time.monotonic()
    assert run_cli(path, f"http://127.0.0.1:{port}") == 2
    assert time.monotonic() - started < 30  # not minutes of retries (a loose guard)
    err = capsys.readouterr().err
    assert f"cannot reach 127.0.0.1:{port}" in err
    assert "Traceback" not in err
    untouched(tmp_path / "dest.ledger.sqlite")
    assert lines(tmp_path / "out" / "dest-rejects.jsonl") == []  # none failed


def test_a_login_asked_to_wait_for_ages_stops_at_once_and_leaves_nothing_in_doubt(
    hub: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.reset()
    hub.set_faults(
        {
            "rules": [
                {
                    "method": "POST",
                    "path": "/v2/auth/token",
                    "burst_every": 1,
                    "burst_length": 1,
                    "retry_after": 1_000_000_000,
                }
            ]
        }
    )
    path = write_config(tmp_path, {**REPOS, "concurrency": 2}, repo_rows(2, "login"))
    since = time.time()  # a slow answer of an earlier test may still reach the log
    assert run_cli(path, hub.url) == 2
    err = capsys.readouterr().err
    assert "Docker Hub asked to wait 1000000000 s (Retry-After: 1000000000)" in err
    assert "token exchange" in err and "retry.max_seconds (300 s)" in err
    paths = {r["path"] for r in hub.requests() if r["time"] >= since}
    assert paths == {"/v2/auth/token"}  # only the login left
    untouched(tmp_path / "dest.ledger.sqlite")
    hub.set_faults(None)


def test_the_first_signal_ends_a_long_rate_limit_wait(hub: Simulator, tmp_path: Path) -> None:
    hub.reset()
    hub.set_faults(
        {
            "rules": [
                {
                    "method": "POST",
                    "path": "/v2/auth/token",
                    "burst_every": 1,
                    "burst_length": 1,
                    "retry_after": 250,
                }
            ]
        }
    )
    path = write_config(tmp_path, {**REPOS, "concurrency": 2}, repo_rows(5, "patient"))
    since = time.time()
    process = start(path, hub.url)
    wait_until(lambda: any(r["status"] == 429 for r in hub.requests()), process)
    time.sleep(0.3)  # let it settle into its wait
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)  # not 250 s
    hub.set_faults(None)
    assert process.returncode == 130, err
    assert {r["path"] for r in hub.requests() if r["time"] >= since} == {"/v2/auth/token"}
    untouched(tmp_path / "dest.ledger.sqlite")


# -- what the end of a stopped run says ------------------------------------------------------------


def summary_rows(err: str) -> dict[str, str]:
    """The rows of the summary table printed to stderr: name → value."""
    rows = {}
    for line in err.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if len(cells) == 2 and line.lstrip().startswith("│") and cells[0]:
            rows[cells[0]] = cells[1]
    return rows


def test_a_run_stopped_by_wrong_credentials_says_why_first_and_only_the_counts_that_matter(
    hub: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.reset()
    path = write_config(tmp_path, REPOS, repo_rows(30, "refused"))
    wrong = "dckr_oat_Qw7ZxN2vLp9RtY4uKs6HbJ3mEa8CdFgT"  # well-formed, not acme's
    assert run_cli(path, hub.url, secret=wrong) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and wrong not in err
    stopped = err.index("Stopped:")
    assert "refused the credentials" in err[stopped : err.index("\n", stopped)]
    rows = summary_rows(err)
    assert stopped < err.index("│ records")  # the reason first, then the counts
    assert {"records", "ok"} <= set(rows)
    assert rows["ok"] == "0"
    # The rest are the counts that are not zero: here, the records never sent.
    counted = {name: value for name, value in rows.items() if name != "seconds"}
    others = {name: int(value.replace(",", "")) for name, value in counted.items()}
    assert all(value for name, value in others.items() if name not in ("records", "ok"))
    assert "rejected" not in rows and "429 answers" not in rows and "requests" not in rows
    assert int(rows["not sent (stopped)"]) == int(rows["records"]) > 0
    assert [r for r in hub.requests() if "repositories" in r["path"]] == []
    untouched(tmp_path / "dest.ledger.sqlite")


def status_json(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "sink", "status", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: some records need attention
    return dict(orjson.loads(done.stdout))


def test_a_second_sigint_stops_at_once_says_what_is_in_doubt_and_status_agrees(
    hub: Simulator, tmp_path: Path
) -> None:
    import re

    hub.reset()
    # Hub applies each create at once and answers 3 s later: the second signal comes first.
    slow = {"method": "POST", "path": "/v2/namespaces/*/repositories", "slow_rate": 1.0}
    hub.set_faults({"rules": [{**slow, "slow_ms": 3000}]})
    path = write_config(tmp_path, {**REPOS, "concurrency": 8}, repo_rows(40, "doubt"))
    ledger = tmp_path / "dest.ledger.sqlite"
    process = start(path, hub.url)
    wait_until(lambda: sent_rows(ledger) >= 8, process)
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    hub.set_faults(None)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "requests in flight finished" not in err  # they did not: the run did not wait
    said = re.search(r"(\d+) records? in doubt", err)
    assert said is not None, err
    in_doubt = int(said.group(1))
    assert in_doubt >= 1
    assert err.index("Interrupted") < err.index("│ records")  # what happened first
    rows = summary_rows(err)
    assert rows["in doubt (sent, outcome unknown)"] == str(in_doubt)
    status = status_json(path)
    assert status["counts"]["sent"] == in_doubt == ledger_counts(ledger)[SENT]
    doubtful = {e["key"] for e in status["attention"] if e["state"] == SENT}
    assert len(doubtful) == in_doubt
    # What reached Hub is among the records in doubt: none was counted as not sent.
    assert set(repositories(hub, "doubt-")) <= doubtful


def test_a_sigint_while_the_summary_prints_cuts_nothing_short(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    from sink.cli import describe
    from sink.destination import open_destination
    from sink.outputs.results import Counts
    from sink.run import RunSummary, output_paths

    destination = open_destination(write_config(tmp_path, REPOS, repo_rows(3, "late")))
    summary = RunSummary(Counts(records=3, ok=1, skipped=2), output_paths(destination))
    summary.interrupted = signal.SIGINT
    real = describe._console

    class Impatient(Console):
        def print(self, *objects: Any, **kwargs: Any) -> None:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C again, as each line goes out
            super().print(*objects, **kwargs)

    def console(stderr: bool = False) -> Console:
        plain = real(stderr)
        return Impatient(file=plain.file, highlight=False, soft_wrap=True, width=160)

    monkeypatch.setattr(describe, "_console", console)
    describe.print_run_summary(destination, summary)
    err = capsys.readouterr().err
    assert "intake stopped, requests in flight finished" in err
    assert "2 records not sent" in err
    assert "Audit:" in err  # the last line: all of it went out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
