"""The audit log: one JSON line per call and per refusal, who did it, and never a secret."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest

from sink.errors import ConfigError
from sink.model import Outcome, Request, Status
from sink.outputs.audit import AuditLog
from sink.outputs.redact import Redactor

HUB = "https://hub.docker.com"
PASSWORD = "correct-horse-battery"
NEW_PAT = "dckr_pat_Zq3vY8mB1xWcR5tK0pLd7sHn2Ef"  # a fake secret Hub "returned"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def make_log(tmp_path: Path, secret_fields: tuple[str, ...] = ("token",)) -> AuditLog:
    return AuditLog(
        tmp_path / "out" / "audit.jsonl",
        who="alice",
        redactor=Redactor([PASSWORD]),
        secret_fields=secret_fields,
    )


def pat_request(label: str) -> Request:
    body = {"token_label": label, "scopes": ["repo:read"]}
    return Request(
        "POST",
        HUB + "/v2/access-tokens",
        (("Content-Type", "application/json"),),
        orjson.dumps(body),
        (label,),
        "create-personal-access-token",
    )


def test_a_call_is_one_line_with_who_what_and_the_outcome(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    outcome = Outcome(
        ("ci-1",),
        Status.OK,
        201,
        body={"token": NEW_PAT, "uuid": "u-1"},
        attempts=2,
        template="create-personal-access-token",
    )
    log.call(pat_request("ci-1"), outcome)
    log.close()
    [line] = lines(tmp_path / "out" / "audit.jsonl")
    assert line["who"] == "alice"
    assert line["template"] == "create-personal-access-token"
    assert (line["method"], line["url"]) == ("POST", HUB + "/v2/access-tokens")
    assert line["keys"] == ["ci-1"]
    assert (line["status"], line["outcome"], line["attempts"], line["error"]) == (
        201,
        "ok",
        2,
        None,
    )
    assert line["body"] == {"token_label": "ci-1", "scopes": ["repo:read"]}
    assert line["time"].endswith("Z") and len(line["time"]) == 20
    # The response body (which carried the new secret) is not logged at all.
    assert NEW_PAT not in (tmp_path / "out" / "audit.jsonl").read_text()


def test_a_refusal_is_a_line_with_the_reason(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    request = Request(
        "DELETE", HUB + "/v2/orgs/acme/members/alice", (), None, ("alice",), "remove-member"
    )
    log.refusal(request, "refusing to remove alice: they are the last owner")
    log.close()
    [line] = lines(tmp_path / "out" / "audit.jsonl")
    assert (line["outcome"], line["status"], line["body"]) == ("refused", None, None)
    assert line["error"] == "refusing to remove alice: they are the last owner"
    assert line["method"] == "DELETE" and line["keys"] == ["alice"]


def test_secrets_in_bodies_urls_and_errors_are_redacted(tmp_path: Path) -> None:
    log = make_log(tmp_path, secret_fields=())
    # "secret" is the connection's own (the redactor knows it); "password" is one it does not
    # know: hidden because of the field's name.
    body = {
        "identifier": "alice",
        "secret": PASSWORD,
        "password": "bob-builds-things-42",
        "nested": [{"token": NEW_PAT, "label": "keep me"}],
        "note": f"see {JWT}",
    }
    request = Request(
        "POST", HUB + f"/v2/odd?x={PASSWORD}", (), orjson.dumps(body), ("k",), "manual"
    )
    outcome = Outcome(("k",), Status.FAILED, None, error=f"failed with {NEW_PAT} and {PASSWORD}")
    log.call(request, outcome)
    log.refusal(request, f"refused: {JWT}")
    log.close()
    text = (tmp_path / "out" / "audit.jsonl").read_text()
    for secret in (PASSWORD, NEW_PAT, JWT, "bob-builds-things-42"):
        assert secret not in text
    first = lines(tmp_path / "out" / "audit.jsonl")[0]
    assert first["body"]["identifier"] == "alice"
    assert first["body"]["secret"] == first["body"]["password"] == "***"
    assert first["body"]["nested"] == [{"token": "***", "label": "keep me"}]


def test_a_body_that_is_not_json_is_not_logged(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    request = Request("POST", HUB + "/v2/invites/bulk", (), b"\x00raw bytes", ("k",), "manual")
    log.refusal(request, "policy is read-only: POST is not allowed")
    log.close()
    assert lines(tmp_path / "out" / "audit.jsonl")[0]["body"] == "<not JSON>"


def test_lines_are_appended_across_runs_and_on_disk_before_close(tmp_path: Path) -> None:
    first = make_log(tmp_path)
    first.call(pat_request("a"), Outcome(("a",), Status.OK, 201))
    # Unbuffered: a run killed now has already written its line.
    assert len(lines(tmp_path / "out" / "audit.jsonl")) == 1
    first.close()
    second = make_log(tmp_path)
    second.call(pat_request("b"), Outcome(("b",), Status.REJECTED, 400, error="bad scopes"))
    second.close()
    assert [line["keys"] for line in lines(tmp_path / "out" / "audit.jsonl")] == [["a"], ["b"]]


def test_the_audit_log_is_private_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        log = make_log(tmp_path)
    finally:
        os.umask(previous)
    log.refusal(pat_request("ci-1"), "outside the policy")
    log.close()
    path = tmp_path / "out" / "audit.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not log.mode_fixed
    path.chmod(0o644)
    again = make_log(tmp_path)
    again.close()
    assert again.mode_fixed
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(lines(path)) == 1


def test_an_audit_log_under_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file where a folder should be")
    with pytest.raises(ConfigError, match="the audit log"):
        make_log(tmp_path)
