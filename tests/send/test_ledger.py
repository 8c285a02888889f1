"""The ledger: states, writes, counts, attention, starting fresh, durability across processes."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sink.errors import ConfigError, RunInProgress
from sink.send.ledger import (
    DONE,
    FAILED,
    REJECTED,
    SECRET_LOST,
    SENT,
    Ledger,
    NullLedger,
    run_lock,
    start_fresh,
)

TEMPLATE = "create-repository"


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    book = Ledger(tmp_path / "dest.ledger.sqlite")
    yield book  # type: ignore[misc]
    book.close()


def test_the_null_ledger_has_the_ledgers_methods_and_remembers_nothing(tmp_path: Path) -> None:
    with NullLedger(tmp_path / "none.sqlite") as ledger:
        ledger.mark_sent(iter([("a", 0)]), TEMPLATE)
        ledger.settle("a", TEMPLATE, DONE)
        ledger.flush()
        assert ledger.states(["a"]) == {} and ledger.get("a") is None
        assert ledger.counts() == {SENT: 0, DONE: 0, REJECTED: 0, FAILED: 0}
        assert list(ledger.attention()) == list(ledger.notes("x")) == []
    assert not (tmp_path / "none.sqlite").exists()
    public = {name for name in vars(Ledger) if not name.startswith("_")}
    assert public <= {name for name in vars(NullLedger) if not name.startswith("_")}


def test_a_new_ledger_is_empty_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "dest.ledger.sqlite"
    with Ledger(path) as ledger:
        assert ledger.counts() == {SENT: 0, DONE: 0, REJECTED: 0, FAILED: 0}
        assert list(ledger.attention()) == []
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()


def test_mark_sent_counts_attempts_and_settle_keeps_them(ledger: Ledger) -> None:
    ledger.mark_sent([("a", 0), ("b", 1)], TEMPLATE)
    entry = ledger.get("a")
    assert entry is not None
    assert (entry.state, entry.attempts, entry.position, entry.template) == (SENT, 1, 0, TEMPLATE)
    ledger.mark_sent([("a", 5)], TEMPLATE)
    entry = ledger.get("a")
    assert entry is not None and (entry.attempts, entry.position) == (2, 5)
    ledger.settle("a", TEMPLATE, DONE, http_status=201, resource_id="svc-a", note=None)
    entry = ledger.get("a")
    assert entry is not None
    assert (entry.state, entry.attempts, entry.http_status, entry.resource_id) == (
        DONE,
        2,
        201,
        "svc-a",
    )
    assert ledger.get("nope") is None


def test_settle_keeps_a_known_resource_id_and_refuses_unknown_states(ledger: Ledger) -> None:
    ledger.settle("t", "create-team", DONE, resource_id="1042")
    ledger.settle("t", "create-team", DONE, note="found in place after an interrupted run")
    entry = ledger.get("t")
    assert entry is not None and entry.resource_id == "1042"
    assert entry.note == "found in place after an interrupted run"
    with pytest.raises(ValueError, match="unknown ledger state 'finished'"):
        ledger.settle("t", "create-team", "finished")


def test_settle_without_mark_sent_writes_a_row(ledger: Ledger) -> None:
    ledger.settle("bad", TEMPLATE, REJECTED, note="name: too short", position=7)
    entry = ledger.get("bad")
    assert entry is not None
    assert (entry.state, entry.attempts, entry.position, entry.note) == (
        REJECTED,
        0,
        7,
        "name: too short",
    )


def test_states_of_many_keys_in_chunks(ledger: Ledger) -> None:
    keys = [f"k{i}" for i in range(1_234)]
    ledger.mark_sent(((key, i) for i, key in enumerate(keys[:1_200])), TEMPLATE)
    for key in keys[:600]:
        ledger.settle(key, TEMPLATE, DONE)
    states = ledger.states(keys)
    assert len(states) == 1_200
    assert states["k0"][0] == DONE and states["k1199"][0] == SENT
    assert "k1200" not in states
    assert ledger.counts() == {SENT: 600, DONE: 600, REJECTED: 0, FAILED: 0}


def test_attention_lists_what_is_not_done_and_lost_secrets_in_input_order(
    ledger: Ledger,
) -> None:
    ledger.mark_sent([("sent", 3)], TEMPLATE)
    ledger.settle("ok", TEMPLATE, DONE, position=0)
    ledger.settle(
        "found", TEMPLATE, DONE, position=1, note="found in place after an interrupted run"
    )
    ledger.settle("failed", TEMPLATE, FAILED, position=4, note="gave up after 6 attempts")
    ledger.settle("rejected", TEMPLATE, REJECTED, position=2, note="400: invalid name")
    ledger.settle(
        "lost",
        "create-personal-access-token",
        DONE,
        position=5,
        note=f"{SECRET_LOST}: revoke the token and create it again",
    )
    assert [e.key for e in ledger.attention()] == ["rejected", "sent", "failed", "lost"]
    assert [e.key for e in ledger.attention(limit=2)] == ["rejected", "sent"]
    assert [e.key for e in ledger.notes(SECRET_LOST)] == ["lost"]
    assert [e.key for e in ledger.notes("interrupted")] == ["found"]


def seen_elsewhere(path: Path) -> str:
    """The rows another process sees."""
    script = textwrap.dedent(f"""
        import sqlite3
        db = sqlite3.connect({str(path)!r})
        print(sorted(db.execute("SELECT key, state FROM records")))
    """)
    seen = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return seen.stdout.strip()


def test_every_write_is_committed_at_once(ledger: Ledger) -> None:
    ledger.mark_sent([("a", 0), ("b", 1)], TEMPLATE)
    assert seen_elsewhere(ledger.path) == "[('a', 'sent'), ('b', 'sent')]"
    ledger.settle("a", TEMPLATE, DONE, http_status=201)
    assert seen_elsewhere(ledger.path) == "[('a', 'done'), ('b', 'sent')]"


def test_batched_final_states_are_committed_with_the_next_sent(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "dest.ledger.sqlite", settle_batch=64)
    ledger.mark_sent([("a", 0), ("b", 1)], TEMPLATE)
    # Another process, while this one still has the ledger open.
    assert seen_elsewhere(ledger.path) == "[('a', 'sent'), ('b', 'sent')]"
    ledger.settle("a", TEMPLATE, DONE, http_status=201)
    assert ledger.get("a").state == DONE  # type: ignore[union-attr]
    assert seen_elsewhere(ledger.path) == "[('a', 'sent'), ('b', 'sent')]"
    ledger.mark_sent([("c", 2)], TEMPLATE)
    assert seen_elsewhere(ledger.path) == "[('a', 'done'), ('b', 'sent'), ('c', 'sent')]"
    ledger.settle("b", TEMPLATE, FAILED)
    ledger.flush()
    assert seen_elsewhere(ledger.path) == "[('a', 'done'), ('b', 'failed'), ('c', 'sent')]"
    ledger.settle("c", TEMPLATE, DONE)
    ledger.close()
    assert seen_elsewhere(ledger.path) == "[('a', 'done'), ('b', 'failed'), ('c', 'done')]"


def test_batched_final_states_wait_for_a_commit_only_so_long(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "dest.ledger.sqlite", settle_batch=64)
    keys = [f"k{i:03d}" for i in range(64)]
    ledger.mark_sent(((key, i) for i, key in enumerate(keys)), TEMPLATE)
    for key in keys[:-1]:
        ledger.settle(key, TEMPLATE, DONE)
    assert "done" not in seen_elsewhere(ledger.path)
    ledger.settle(keys[-1], TEMPLATE, DONE)
    assert "sent" not in seen_elsewhere(ledger.path)
    ledger.close()


def test_committed_writes_survive_the_process_being_killed(tmp_path: Path) -> None:
    path = tmp_path / "dest.ledger.sqlite"
    script = textwrap.dedent(f"""
        import os, signal
        from sink.send.ledger import Ledger, DONE
        ledger = Ledger({str(path)!r}, settle_batch=64)
        ledger.mark_sent([("a", 0), ("b", 1)], "create-team")
        ledger.settle("a", "create-team", DONE, resource_id="1042")
        ledger.mark_sent([("c", 2)], "create-team")
        ledger.settle("b", "create-team", DONE, resource_id="1043")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert done.returncode == -9
    with Ledger(path) as ledger:
        # "a" was committed with the next mark_sent; "b"'s final state died with the process,
        # so the ledger still says what it knew for sure: its request left, outcome unknown.
        assert ledger.counts() == {SENT: 2, DONE: 1, REJECTED: 0, FAILED: 0}
        entry = ledger.get("a")
        assert entry is not None and entry.resource_id == "1042"
        assert ledger.get("b").state == SENT  # type: ignore[union-attr]


def test_start_fresh_moves_the_ledger_and_its_side_files_aside(tmp_path: Path) -> None:
    path = tmp_path / "dest.ledger.sqlite"
    assert start_fresh(path) is None
    with Ledger(path) as ledger:
        ledger.settle("a", TEMPLATE, DONE)
    Path(f"{path}-wal").write_bytes(b"")  # as a killed run leaves them
    Path(f"{path}-shm").write_bytes(b"")
    moved = start_fresh(path)
    assert moved is not None and moved.name.startswith("dest.ledger.sqlite.")
    assert moved.name.endswith(".bak")
    assert not path.exists() and not Path(f"{path}-wal").exists()
    assert Path(f"{moved}-wal").exists() and Path(f"{moved}-shm").exists()
    with Ledger(path) as ledger:
        assert ledger.get("a") is None
    with Ledger(moved) as old:
        assert old.get("a") is not None


def test_a_file_that_is_not_a_ledger_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "dest.ledger.sqlite"
    path.write_bytes(b"this is not a database, it is a text file " * 100)
    with pytest.raises(ConfigError, match="cannot open the ledger"):
        Ledger(path)


def test_start_fresh_twice_in_a_second_keeps_both_old_ledgers(tmp_path: Path) -> None:
    path = tmp_path / "dest.ledger.sqlite"
    moved = []
    for key in ("first", "second"):
        with Ledger(path) as ledger:
            ledger.settle(key, TEMPLATE, DONE)
        target = start_fresh(path)
        assert target is not None
        moved.append(target)
    assert moved[0] != moved[1]
    for target, key in zip(moved, ("first", "second"), strict=True):
        with Ledger(target) as old:
            assert old.get(key) is not None


def test_unmark_takes_back_only_records_still_sent(ledger: Ledger, tmp_path: Path) -> None:
    ledger.mark_sent([("left", 0), ("queued", 1), ("answered", 2)], TEMPLATE)
    ledger.settle("answered", TEMPLATE, DONE, http_status=201)
    ledger.unmark(["queued", "answered"])
    assert ledger.states(["left", "queued", "answered"]).keys() == {"left", "answered"}
    assert ledger.get("answered").state == DONE  # type: ignore[union-attr]
    with Ledger(tmp_path / "dest.ledger.sqlite") as other:  # committed: another reader sees it
        assert other.counts() == {SENT: 1, DONE: 1, REJECTED: 0, FAILED: 0}


def test_the_run_lock_lets_one_run_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "dest.ledger.sqlite"
    refused = pytest.raises(RunInProgress, match="another run of this destination")
    with run_lock(path), refused, run_lock(path):
        pass  # pragma: no cover - never reached
    with run_lock(path):  # released when the first run ended
        pass


# -- private files ------------------------------------------------------------------------------


def modes(folder: Path) -> dict[str, int]:
    return {path.name: stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir()}


def test_the_ledger_its_sqlite_files_and_its_lock_are_private(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    folder = tmp_path / "state" / "ledgers"
    path = folder / "dest.ledger.sqlite"
    previous = os.umask(0)  # the most permissive umask: every file must still be 0600
    try:
        with run_lock(path):
            book = Ledger(path)
            book.mark_sent([("alice@example.com", 0)], TEMPLATE)
            found = modes(folder)
            book.close()
    finally:
        os.umask(previous)
    # SQLite made the -wal and -shm files itself, with the database file's mode.
    assert {
        "dest.ledger.sqlite",
        "dest.ledger.sqlite-wal",
        "dest.ledger.sqlite-shm",
        "dest.ledger.sqlite.lock",
    } <= set(found)
    assert set(found.values()) == {0o600}
    for made in (tmp_path / "state", folder):
        assert stat.S_IMODE(made.stat().st_mode) == 0o700
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755  # the user's folder: untouched


def test_an_existing_wider_ledger_is_narrowed_with_its_side_files(tmp_path: Path) -> None:
    path = tmp_path / "dest.ledger.sqlite"
    with Ledger(path) as book:
        book.mark_sent([("a", 0)], TEMPLATE)
        wal = Path(f"{path}-wal")
        for file in (path, wal, Path(f"{path}.lock")):
            file.touch()
            file.chmod(0o644)
        with run_lock(path):
            pass
    assert stat.S_IMODE(Path(f"{path}.lock").stat().st_mode) == 0o600
    with Ledger(path) as again:
        assert again.mode_fixed
        assert again.get("a") is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("kind", ["symlink", "under-file"])
def test_a_ledger_path_that_is_no_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "dest.ledger.sqlite"
    if kind == "symlink":
        path.symlink_to(tmp_path / "elsewhere.sqlite")
    else:
        (tmp_path / "file").write_text("")
        path = tmp_path / "file" / "dest.ledger.sqlite"
    with pytest.raises(ConfigError, match="the ledger"):
        Ledger(path)
