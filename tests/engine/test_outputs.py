"""The store: one set of outputs for every worker, opened as ``sink run`` opens them, and the
stand-ins a worker writes through."""

from __future__ import annotations

import stat
from pathlib import Path

import orjson
import pytest
import yaml

from sink.destination import Destination, open_destination
from sink.engine.link import Op, Outbox
from sink.engine.outputs import LocalLink, RemoteRejects, RemoteVault, Store
from sink.errors import ConfigError, RunInProgress
from sink.model import Record, VaultEntry
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


def test_a_secret_is_on_disk_when_the_vault_stand_in_returns(tmp_path: Path) -> None:
    store = Store(pats(tmp_path), CREDS)
    outbox = Outbox(LocalLink(store))
    vault = RemoteVault(outbox, tmp_path / "out" / "dest-vault.jsonl")
    rejects = RemoteRejects(outbox, tmp_path / "out" / "dest-rejects.jsonl")
    rejects.write(Record(3, {"token_label": "x"}, key="x"), "refused", 400)
    secret = "dckr_pat_S3cretValueOnlyTheVaultSees00"
    vault.write(
        VaultEntry(("ci",), "create-personal-access-token", "id-1", "ci", {"token": secret})
    )
    lines = (tmp_path / "out" / "dest-vault.jsonl").read_bytes().splitlines()
    assert orjson.loads(lines[0])["token"] == secret
    assert vault.keys() == {"ci"}
    # The reject queued before the secret was written before it, in order.
    reject = orjson.loads((tmp_path / "out" / "dest-rejects.jsonl").read_bytes())
    assert reject["_sink_error"] == "refused" and reject["_sink_index"] == 3
    assert secret not in repr(vault)
    store.close()


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
