"""The store: one set of outputs for every worker, opened as ``sink run`` opens them, and the
stand-ins a worker writes through."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from sink.destination import Destination, open_destination
from sink.engine.ledger import SharedLedger
from sink.engine.link import Op, Outbox
from sink.engine.outputs import (
    LocalLink,
    RemoteAudit,
    RemoteRejects,
    RemoteResponses,
    RemoteVault,
    Store,
)
from sink.errors import ConfigError, RunInProgress
from sink.model import Outcome, Record, Status, VaultEntry
from sink.outputs.files import ResponsesFile
from sink.outputs.redact import Redactor
from sink.read.credentials import Credentials
from tests.seed import ALICE_PAT

CREDS = Credentials("http://127.0.0.1:9", "alice", ALICE_PAT, "pat")


def pats(folder: Path, **extra: object) -> Destination:
    config = {
        "connection": {"identifier": "alice", "secret_env": "SINK_TEST_SECRET"},
        "template": "create-personal-access-token",
        "key_field": "token_label",
        **extra,
    }
    (folder / "dest.yaml").write_text(yaml.safe_dump(config))
    return open_destination(folder / "dest.yaml")


def test_the_store_opens_every_output_private_and_holds_the_run_lock(tmp_path: Path) -> None:
    store = Store(pats(tmp_path), CREDS)
    try:
        out = tmp_path / "out"
        for name in ("dest-vault.jsonl", "dest-responses.jsonl", "dest-audit.jsonl"):
            assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
        with pytest.raises(RunInProgress):
            Store(pats(tmp_path), CREDS)  # a second run of the destination is refused
    finally:
        store.close()
    Store(pats(tmp_path), CREDS).close()  # the lock went with the first store


def test_a_secret_reaches_the_vault_before_anything_queued_after_it(tmp_path: Path) -> None:
    store = Store(pats(tmp_path), CREDS)
    link = Counting(store)
    outbox = Outbox(link)
    vault = RemoteVault(outbox, tmp_path / "out" / "dest-vault.jsonl")
    rejects = RemoteRejects(outbox, tmp_path / "out" / "dest-rejects.jsonl")
    ledger = SharedLedger(outbox, tmp_path / "dest.ledger.sqlite")
    rejects.write(Record(3, {"token_label": "x"}, key="x"), "refused", 400)
    secret = "dckr_pat_S3cretValueOnlyTheVaultSees00"

    async def answers() -> None:
        # Two answers in the same turn of the loop: their secrets travel in one post, after
        # the reject queued before them; each record's final state follows its secret.
        for label in ("ci", "cd"):
            vault.write(
                VaultEntry((label,), "create-personal-access-token", "id", label, {"token": secret})
            )
            ledger.settle(label, "create-personal-access-token", "done", position=0)
        assert link.posts == []  # nothing waited on: posted once the loop turns
        await asyncio.sleep(0)

    asyncio.run(answers())
    assert [[op.target for op in ops] for ops in link.posts] == [
        ["lines", "vault", "claims", "vault", "claims"]
    ]
    assert link.calls == 0
    lines = (tmp_path / "out" / "dest-vault.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["token"] for line in lines] == [secret, secret]
    assert vault.keys() == {"ci", "cd"}
    reject = orjson.loads((tmp_path / "out" / "dest-rejects.jsonl").read_bytes())
    assert reject["_sink_error"] == "refused" and reject["_sink_index"] == 3
    assert secret not in repr(vault)
    store.close()


def test_a_vault_line_that_fails_keeps_its_record_sent(tmp_path: Path) -> None:
    store = Store(pats(tmp_path), CREDS)
    outbox = Outbox(LocalLink(store))
    vault = RemoteVault(outbox, tmp_path / "out" / "dest-vault.jsonl")
    ledger = SharedLedger(outbox, tmp_path / "dest.ledger.sqlite")
    ledger.mark_sent([("ci", 0)], "create-personal-access-token")
    store.files.recorder.vault.close()  # type: ignore[union-attr]  # the disk is gone
    vault.write(VaultEntry(("ci",), "create-personal-access-token", "id", "ci", {"token": "t"}))
    ledger.settle("ci", "create-personal-access-token", "done", position=0)
    with pytest.raises(ValueError, match="closed"):
        ledger.flush()  # the failure is raised at the next call...
    entry = store.files.ledger.get("ci")
    assert entry is not None and entry.state == "sent"  # ...and "done" never reached the ledger
    store.files.recorder.vault = None
    store.close()


def test_lines_are_made_on_the_worker_as_sink_run_makes_them(tmp_path: Path) -> None:
    destination = pats(tmp_path)
    store = Store(destination, CREDS)
    outbox = Outbox(LocalLink(store))
    redactor = Redactor([CREDS.secret])
    remote = RemoteResponses(
        outbox,
        tmp_path / "out" / "dest-responses.jsonl",
        secret_fields=destination.secret_fields,
        redactor=redactor,
    )
    outcome = Outcome(
        keys=("ci",),
        template="create-personal-access-token",
        status=Status.OK,
        http_status=201,
        body={"token": "dckr_pat_NeverInTheResponses0000000000", "note": f"by {CREDS.secret}"},
    )
    remote.write(outcome)
    audit = RemoteAudit(outbox, tmp_path / "out" / "dest-audit.jsonl", who="alice")
    audit.read("create-personal-access-token", "GET", "https://hub.example/v2/x", 200)
    outbox.flush()
    store.close()
    written = (tmp_path / "out" / "dest-responses.jsonl").read_bytes()
    expected = ResponsesFile(
        tmp_path / "expected.jsonl", secret_fields=destination.secret_fields, redactor=redactor
    )
    expected.write(outcome)
    expected.close()
    assert written == (tmp_path / "expected.jsonl").read_bytes()
    assert CREDS.secret.encode() not in written and b"NeverInTheResponses" not in written
    (line,) = (tmp_path / "out" / "dest-audit.jsonl").read_bytes().splitlines()
    assert orjson.loads(line)["who"] == "alice" and orjson.loads(line)["outcome"] == "read"


class Counting(LocalLink):
    """A link to the store that keeps what it carried."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.posts: list[list[Op]] = []
        self.calls = 0

    def call(self, ops: list[Op]) -> list[Any]:
        self.calls += 1
        return super().call(ops)

    def post(self, ops: list[Op]) -> None:
        self.posts.append(ops)
        super().post(ops)


def test_an_output_that_failed_fails_every_later_call(tmp_path: Path) -> None:
    store = Store(pats(tmp_path), CREDS)
    store.post([Op("ledger", "settle", ("k", "t", "finished"))])  # refused, nobody waiting
    with pytest.raises(ValueError, match="unknown ledger state"):
        store.apply([Op("ledger", "counts")])
    store.close()


def test_only_the_outputs_operations_are_run(tmp_path: Path) -> None:
    store = Store(pats(tmp_path), CREDS)
    with pytest.raises(ValueError, match="not an operation"):
        store.apply([Op("vault", "close")])
    with pytest.raises(ValueError, match="not an operation"):
        store.apply([Op("ledger", "_db")])
    store.close()


def test_a_webhook_is_refused_before_anything_opens(tmp_path: Path) -> None:
    destination = pats(tmp_path, responses={"webhook": "https://hooks.example.com/sink"})
    with pytest.raises(ConfigError, match="webhook"):
        Store(destination, CREDS)
    assert not (tmp_path / "dest.ledger.sqlite").exists()
