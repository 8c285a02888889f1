"""Responses stream, webhook, vault and rejects: streamed, flushed, and free of secrets."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from sink.errors import ConfigError, StopRun
from sink.model import Outcome, Record, Status
from sink.outputs import (
    RejectsFile,
    ResponsesFile,
    Vault,
    VaultEntry,
    WebhookResponses,
    response_line,
)
from sink.redact import Redactor, find_secrets, redact, redact_headers

PAT = "dckr_pat_Q3vN8kT2mL7xR5wB9cH1jF4yD6sA0gEp"
OAT = "dckr_oat_Z8bV1nM4kQ7wE2rT5yU9iO3pA6sD0fGh"
PASSWORD = "correct-horse-battery-staple"
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJvY3RvIiwiZXhwIjoxNzAwMDAwNjAwfQ."
    "c2lnbmF0dXJlLXZhbHVl"
)
SECRETS = (PAT, OAT, PASSWORD, JWT)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def pat_outcome(key: str = "k1") -> Outcome:
    entry = VaultEntry.from_body(
        (key,),
        "create-pat",
        {"uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "token_label": "ci"},
        {"token": PAT},
    )
    return Outcome(
        keys=(key,),
        status=Status.OK,
        http_status=201,
        body={"uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "token_label": "ci", "token": "***"},
        attempts=1,
        duration=0.05,
        template="create-pat",
        extra={"vault": entry},
    )


# -- redaction --------------------------------------------------------------------------------


def test_redact_replaces_secret_fields_at_any_depth_without_changing_the_input() -> None:
    body = {
        "token": PAT,
        "results": [{"token": OAT, "label": "a"}, {"nested": {"token": "x", "keep": 1}}],
        "label": "token",
    }
    redacted = redact(body, {"token"})
    assert redacted == {
        "token": "***",
        "results": [{"token": "***", "label": "a"}, {"nested": {"token": "***", "keep": 1}}],
        "label": "token",
    }
    assert body["token"] == PAT
    assert redact("plain", {"token"}) == "plain"
    assert redact(body, ()) is body


def test_find_secrets_keys_them_by_path_and_skips_blanks() -> None:
    body = {"token": PAT, "items": [{"token": OAT}, {"token": ""}]}
    assert find_secrets(body, {"token"}) == {"token": PAT, "items.0.token": OAT}


def test_redactor_replaces_known_secrets_and_token_shapes() -> None:
    redactor = Redactor([PASSWORD])
    text = f"login {PASSWORD} pat {PAT} oat {OAT} jwt {JWT} fine"
    assert redactor(text) == "login *** pat *** oat *** jwt *** fine"
    redactor.add("ab")  # too short to be worth replacing everywhere
    assert redactor("abc") == "abc"
    assert redactor.scrub({"k": [PASSWORD, 3]}) == {"k": ["***", 3]}
    assert PASSWORD not in repr(redactor)


def test_redact_headers_hides_the_bearer() -> None:
    shown = redact_headers([("Authorization", f"Bearer {JWT}"), ("Accept", "application/json")])
    assert shown == [("Authorization", "Bearer ***"), ("Accept", "application/json")]


def test_vault_entry_hides_its_secrets() -> None:
    entry = pat_outcome().extra["vault"]
    assert PAT not in repr(entry)
    assert PAT not in str(entry)
    with pytest.raises(TypeError):
        orjson.dumps(entry)


# -- responses stream -------------------------------------------------------------------------


def test_responses_file_writes_one_flushed_line_per_request(tmp_path: Path) -> None:
    path = tmp_path / "out" / "responses.jsonl"
    responses = ResponsesFile(path, secret_fields=("token",))
    responses.write(pat_outcome())
    # Readable before close: every line reaches the OS as it is written.
    [line] = lines(path)
    assert line == {
        "keys": ["k1"],
        "template": "create-pat",
        "status": "ok",
        "http_status": 201,
        "body": {
            "uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "token_label": "ci",
            "token": "***",
        },
        "error": None,
        "duration": 0.05,
        "attempts": 1,
    }
    rejected = Outcome(
        keys=("k2",),
        status=Status.REJECTED,
        http_status=400,
        body={"message": "bad", "token": OAT},
        error="HTTP 400: bad",
        attempts=1,
        template="create-pat",
        extra={"recovered": True},
    )
    responses.write(rejected)
    responses.close()
    second = lines(path)[1]
    assert second["body"]["token"] == "***"
    assert second["extra"] == {"recovered": True}
    assert second["status"] == "rejected"


def test_responses_file_scrubs_secret_shapes_anywhere(tmp_path: Path) -> None:
    path = tmp_path / "responses.jsonl"
    redactor = Redactor([PASSWORD])
    with ResponsesFile(path, redactor=redactor) as responses:
        responses.write(
            Outcome(
                keys=("k",),
                status=Status.FAILED,
                body={"echo": f"Bearer {JWT}", "deep": [{"x": PASSWORD}]},
                error=f"failed with {PAT}",
            )
        )
    text = path.read_text()
    for secret in SECRETS:
        assert secret not in text


def test_response_line_leaves_out_the_vault_entry() -> None:
    line = response_line(pat_outcome())
    assert "extra" not in line
    assert PAT not in orjson.dumps(line).decode()


@pytest.mark.anyio
async def test_webhook_posts_lines_and_retries() -> None:
    received: list[Any] = []
    answers = [503, httpx.ConnectError("refused"), 200, 200]

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if answer == 200:
            received.append(orjson.loads(request.content))
        return httpx.Response(answer)

    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        hook = WebhookResponses(
            "https://hooks.example.test/in?api_key=s3cr3t-key",
            client,
            secret_fields=("token",),
            sleep=sleep,
        )
        await hook.write(pat_outcome("a"))
        await hook.write(pat_outcome("b"))
        await hook.aclose()
    assert [line["keys"] for line in received] == [["a"], ["b"]]
    assert received[0]["body"]["token"] == "***"
    assert len(sleeps) == 2
    assert hook.written == 2
    assert "s3cr3t-key" not in repr(hook)


@pytest.mark.anyio
async def test_webhook_batches_and_stops_on_a_refusal_without_printing_its_key() -> None:
    batches: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        batches.append(orjson.loads(request.content))
        return httpx.Response(200 if len(batches) == 1 else 403)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        hook = WebhookResponses(
            "https://hooks.example.test/in?api_key=s3cr3t-key", client, batch_size=2
        )
        await hook.write(pat_outcome("a"))
        assert batches == []
        await hook.write(pat_outcome("b"))
        assert [line["keys"] for line in batches[0]] == [["a"], ["b"]]
        await hook.write(pat_outcome("c"))
        with pytest.raises(StopRun) as caught:
            await hook.flush()
    assert "403" in str(caught.value)
    assert "s3cr3t-key" not in str(caught.value)


# -- vault ------------------------------------------------------------------------------------


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
    vault.write(pat_outcome("k1").extra["vault"])
    assert synced[-1][1] == 1
    vault.write(pat_outcome("k2").extra["vault"])
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


# -- rejects ----------------------------------------------------------------------------------


def test_rejects_are_the_records_as_they_came_plus_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "rejects.jsonl"
    original = {"name": "Bad Name", "description": "x", "is_private": "true"}
    with RejectsFile(path, redactor=Redactor([PASSWORD])) as rejects:
        rejects.write(Record(index=4, data=original, key="abc"), "HTTP 400: invalid name", 400)
        rejects.write({"name": "y"}, f"failed: {PASSWORD}", None, index=9)
    first, second = lines(path)
    assert first["_sink_error"] == "HTTP 400: invalid name"
    assert first["_sink_status"] == 400
    assert first["_sink_index"] == 4
    assert first["_sink_key"] == "abc"
    replayed = {k: v for k, v in first.items() if not k.startswith("_sink_")}
    assert replayed == original
    assert second["_sink_error"] == "failed: ***"
    assert second["_sink_index"] == 9


def test_rejecting_a_replayed_record_replaces_the_old_reason(tmp_path: Path) -> None:
    path = tmp_path / "rejects.jsonl"
    replayed = {"name": "y", "_sink_error": "old", "_sink_status": 500, "_sink_index": 1}
    with RejectsFile(path) as rejects:
        rejects.write(Record(index=0, data=replayed), "new reason", 404)
    [line] = lines(path)
    assert line == {"name": "y", "_sink_error": "new reason", "_sink_status": 404, "_sink_index": 0}


def test_rejects_keep_values_json_cannot_hold_natively(tmp_path: Path) -> None:
    import decimal

    path = tmp_path / "rejects.jsonl"
    with RejectsFile(path) as rejects:
        rejects.write({"price": decimal.Decimal("1.50")}, "bad", 400)
    assert lines(path)[0]["price"] == "1.50"


# -- nothing secret anywhere ------------------------------------------------------------------


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
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        hook = WebhookResponses("https://hooks.example.test/x", client, redactor=redactor)
        for outcome in outcomes:
            responses.write(outcome)
            await hook.write(outcome)
            entry = outcome.extra.get("vault")
            if entry is not None:
                vault.write(entry)
            else:
                rejects.write({"name": "n"}, outcome.error or "", outcome.http_status)
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
