"""Tests of the secrets vault (sink/outputs/vault.py): 0600, locked, fsync'd, refusals."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from pathlib import Path

import httpx
import orjson
import pytest

from sink.errors import ConfigError
from sink.model import Outcome, Status
from sink.outputs.files import RejectsFile, ResponsesFile, response_line
from sink.outputs.redact import Redactor
from sink.outputs.vault import Vault, vault_keys
from sink.outputs.webhook import WebhookResponses
from tests.outputs.support import JWT, OAT, PASSWORD, PAT, SECRETS, lines, pat_outcome


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_vault_entry_hides_its_secrets() -> None:
    entry = pat_outcome().vault
    assert PAT not in repr(entry)
    assert PAT not in str(entry)
    with pytest.raises(TypeError):
        orjson.dumps(entry)


def test_response_line_leaves_out_the_vault_entry() -> None:
    line = response_line(pat_outcome())
    assert "extra" not in line
    assert PAT not in orjson.dumps(line).decode()


def test_vault_is_created_0600_and_fsyncs_each_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[tuple[int, int]] = []
    real_fsync = os.fsync
    path = tmp_path / "vault.jsonl"

    def recording_fsync(fd: int) -> None:
        # What is on disk when fsync is called must already hold the new line.
        synced.append((fd, path.read_bytes().count(b"\n") if path.exists() else -1))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    previous = os.umask(0)  # the most permissive umask: 0600 must still hold
    try:
        vault = Vault(path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    synced.clear()  # the directory fsync at creation
    vault.write(pat_outcome("k1").vault)
    assert synced[-1][1] == 1
    vault.write(pat_outcome("k2").vault)
    assert synced[-1][1] == 2
    assert len(synced) == 2
    vault.close()
    first = lines(path)[0]
    assert first["key"] == "k1"
    assert first["template"] == "create-pat"
    assert first["token_id"] == "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    assert first["label"] == "ci"
    assert first["token"] == PAT
    assert vault.count == 2


def test_vault_narrows_a_wider_mode_and_counts_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "vault.jsonl"
    path.write_text('{"key":"old","token":"x"}\n')
    path.chmod(0o644)
    with Vault(path) as vault:
        assert vault.mode_fixed
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert vault.count == 1
        vault.write({"key": "new", "token": "y"})
        assert vault.count == 2
        assert vault.written == 1
    assert [line["key"] for line in lines(path)] == ["old", "new"]


def test_vault_refuses_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.jsonl"
    target.write_text("")
    link = tmp_path / "vault.jsonl"
    link.symlink_to(target)
    with pytest.raises(ConfigError, match="vault"):
        Vault(link)


def vault_refusal(path: Path) -> str:
    """The ConfigError Vault(path) raises, from a thread: a FIFO must not hang the test run."""
    caught: list[BaseException] = []

    def attempt() -> None:
        try:
            Vault(path).close()
        except BaseException as exc:
            caught.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(60)  # not a timing assertion: a blocked open never returns at all
    assert not worker.is_alive(), f"opening the vault {path} blocked"
    [error] = caught
    assert isinstance(error, ConfigError), repr(error)
    return str(error)


def test_a_vault_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "vault.jsonl").mkdir()
    assert "is a directory" in vault_refusal(tmp_path / "vault.jsonl")


def test_a_vault_that_is_a_symlink_is_refused_even_dangling(tmp_path: Path) -> None:
    (tmp_path / "vault.jsonl").symlink_to(tmp_path / "not-there.jsonl")
    assert "symbolic link" in vault_refusal(tmp_path / "vault.jsonl")
    assert not (tmp_path / "not-there.jsonl").exists()


def test_a_vault_that_is_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "vault.jsonl")
    assert "FIFO" in vault_refusal(tmp_path / "vault.jsonl")
    with pytest.raises(ConfigError, match="FIFO"):
        vault_keys(tmp_path / "vault.jsonl")  # reading it would block as well


@pytest.mark.parametrize("under", ["file/vault.jsonl", "file/deeper/vault.jsonl"])
def test_a_vault_under_a_regular_file_is_refused(tmp_path: Path, under: str) -> None:
    (tmp_path / "file").write_text("not a folder")
    message = vault_refusal(tmp_path / under)
    assert f"{tmp_path / 'file'} is a file, not a folder" in message


def test_an_unwritable_vault_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root writes anywhere: sysfs refuses new files even to root
        target = Path("/sys/sink-test-no-such-folder/vault.jsonl")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "out" / "vault.jsonl"
    assert "the secrets vault" in vault_refusal(target)


def test_the_vault_is_locked_while_it_is_open(tmp_path: Path) -> None:
    path = tmp_path / "vault.jsonl"
    with Vault.open(path) as vault:
        assert vault.locked
        with pytest.raises(ConfigError, match="in use by another sink process"):
            Vault(path)
        vault.write(pat_outcome("k1").vault)
        assert vault.keys() == frozenset({"k1"})
    with Vault(path) as again:  # closing released it
        assert again.count == 1
        assert again.keys() == vault_keys(path) == frozenset({"k1"})


def test_a_new_vault_folder_is_private(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        Vault(tmp_path / "a" / "b" / "vault.jsonl").close()
    finally:
        os.umask(previous)
    for folder in (tmp_path / "a", tmp_path / "a" / "b"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.mark.anyio
async def test_no_secret_reaches_any_output_but_the_vault(tmp_path: Path) -> None:
    redactor = Redactor([PASSWORD, JWT])
    responses = ResponsesFile(
        tmp_path / "responses.jsonl", secret_fields=("token",), redactor=redactor
    )
    rejects = RejectsFile(tmp_path / "rejects.jsonl", redactor=redactor)
    vault = Vault(tmp_path / "vault.jsonl")
    posted: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append(request.content)
        return httpx.Response(200)

    outcomes = [
        pat_outcome("k1"),
        Outcome(
            keys=("k2",),
            status=Status.REJECTED,
            http_status=401,
            body={"message": f"bad secret {PASSWORD}", "token": OAT},
            error=f"refused Bearer {JWT}",
        ),
    ]
    hook = WebhookResponses(
        "https://hooks.example.test/x",
        undelivered=tmp_path / "undelivered.jsonl",
        transport=httpx.MockTransport(handler),
        redactor=redactor,
    )
    for outcome in outcomes:
        responses.write(outcome)
        await hook.write(outcome)
        entry = outcome.vault
        if entry is not None:
            vault.write(entry)
        else:
            rejects.write({"name": "n"}, outcome.error or "", outcome.http_status)
    await hook.aclose()
    assert len(posted) == 2
    responses.close()
    rejects.close()
    vault.close()
    scanned = {
        "responses": (tmp_path / "responses.jsonl").read_text(),
        "rejects": (tmp_path / "rejects.jsonl").read_text(),
        "webhook": b"".join(posted).decode(),
    }
    for name, text in scanned.items():
        for secret in SECRETS:
            assert secret not in text, f"a secret leaked into {name}"
    assert PAT in (tmp_path / "vault.jsonl").read_text()
    await asyncio.sleep(0)
