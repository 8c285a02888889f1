"""The responses and rejects files (sink/outputs/files.py): streamed, flushed, private, and free
of secrets (redaction itself: test_redact.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import orjson
import pytest

from sink.errors import ConfigError
from sink.model import Outcome, Record, Status
from sink.outputs.files import RejectsFile, ResponsesFile
from sink.outputs.redact import Redactor
from sink.outputs.webhook import WebhookResponses
from tests.outputs.support import JWT, OAT, PASSWORD, PAT, SECRETS, lines, pat_outcome


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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
        recovered=True,
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


def test_responses_and_rejects_are_private_whatever_the_umask(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    previous = os.umask(0)
    try:
        responses = ResponsesFile(tmp_path / "out" / "responses.jsonl", append=True)
        rejects = RejectsFile(tmp_path / "out" / "sub" / "rejects.jsonl")
    finally:
        os.umask(previous)
    responses.write(pat_outcome())
    rejects.write({"email": "alice@example.com"}, "bad", 400)
    responses.close()
    rejects.close()
    for path in (tmp_path / "out" / "responses.jsonl", tmp_path / "out" / "sub" / "rejects.jsonl"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for folder in (tmp_path / "out", tmp_path / "out" / "sub"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755  # not ours: left as it was
    assert not responses.mode_fixed and not rejects.mode_fixed


def test_an_existing_wider_output_file_is_narrowed(tmp_path: Path) -> None:
    for name in ("responses.jsonl", "rejects.jsonl"):
        (tmp_path / name).write_text("")
        (tmp_path / name).chmod(0o644)
    responses = ResponsesFile(tmp_path / "responses.jsonl", append=True)
    rejects = RejectsFile(tmp_path / "rejects.jsonl")
    assert responses.mode_fixed and rejects.mode_fixed
    responses.close()
    rejects.close()
    for name in ("responses.jsonl", "rejects.jsonl"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


@pytest.mark.parametrize("kind", ["directory", "symlink", "fifo", "under-file"])
def test_output_files_refuse_what_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "responses.jsonl"
    if kind == "directory":
        path.mkdir()
    elif kind == "symlink":
        (tmp_path / "elsewhere").write_text("")
        path.symlink_to(tmp_path / "elsewhere")
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        (tmp_path / "file").write_text("")
        path = tmp_path / "file" / "responses.jsonl"
    with pytest.raises(ConfigError, match="the responses file"):
        ResponsesFile(path)
    with pytest.raises(ConfigError, match="the rejects file"):
        RejectsFile(path)
    with pytest.raises(ConfigError, match="undelivered"):
        WebhookResponses("https://hooks.example.test/in", undelivered=path)


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


def test_a_rejected_record_is_written_as_it_came_in_with_its_excluded_columns(
    tmp_path: Path,
) -> None:
    from sink.pipeline import prepare

    rows = [Record(4, {"name": "Bad_Name", "owner": "ann", "note": "keep me"})]
    [record] = prepare(rows, exclude=["owner", "note"], key_field="name")
    assert isinstance(record, Record) and record.data == {"name": "Bad_Name"}
    with RejectsFile(tmp_path / "rejects.jsonl") as rejects:
        rejects.write(record, "invalid name", 400)
    [line] = [orjson.loads(text) for text in (tmp_path / "rejects.jsonl").read_bytes().splitlines()]
    assert line == {
        "name": "Bad_Name",
        "owner": "ann",
        "note": "keep me",
        "_sink_error": "invalid name",
        "_sink_status": 400,
        "_sink_index": 4,
        "_sink_key": "Bad_Name",
    }
