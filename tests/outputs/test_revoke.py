"""Lost secrets: never a success, listed, and revocable with a ready-to-run config."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from sink.cli.main import main
from sink.destination import open_destination
from sink.hubsim import Simulator
from sink.model import Status
from sink.read.credentials import Credentials
from sink.run import RunOptions, RunSummary, output_paths, run_async
from sink.send.ledger import DONE, SECRET_LOST, Ledger
from tests.seed import ALICE_PASSWORD

pytestmark = pytest.mark.usefixtures("fresh_hub")

PAT_CONFIG: dict[str, Any] = {
    "connection": {"identifier": "alice", "secret_env": "SINK_TEST_SECRET"},
    "template": "create-personal-access-token",
    "key_field": "token_label",
    "input": "tokens.jsonl",
}
ROWS = [{"token_label": f"ci-{n}", "scopes": "repo:read"} for n in range(3)]


def write(folder: Path, rows: list[dict[str, Any]], config: dict[str, Any] = PAT_CONFIG) -> Path:
    (folder / "tokens.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    path = folder / "tokens.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run(path: Path, base_url: str, transport: httpx.AsyncBaseTransport | None = None) -> RunSummary:
    destination = open_destination(path, base_url=base_url)
    credentials = Credentials(base_url, "alice", ALICE_PASSWORD, "password")
    options = RunOptions(path.parent / "tokens.jsonl", yes=True, transport=transport)
    return asyncio.run(run_async(destination, credentials, options))


def alice_tokens(hub: Simulator) -> list[dict[str, Any]]:
    users = hub.state()["users"]
    return next(u for u in users if u["username"] == "alice")["tokens"]


class EditCreated(httpx.AsyncBaseTransport):
    """A real transport whose create-token answers are changed by ``edit`` on the way back."""

    def __init__(self, edit: Callable[[dict[str, Any]], None]) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.edit = edit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path == "/v2/access-tokens":
            await response.aread()
            body = orjson.loads(response.content)
            self.edit(body)
            return httpx.Response(response.status_code, json=body)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_lost_answers_are_listed_and_a_revoke_config_deletes_exactly_those_tokens(
    hub: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = {t["uuid"] for t in alice_tokens(hub)}
    hub.set_faults(
        {
            "rules": [
                {
                    "method": "POST",
                    "path": "/v2/access-tokens",
                    "drop_rate": 1.0,
                    "apply_first": True,
                }
            ]
        }
    )
    path = write(tmp_path, ROWS)
    monkeypatch.setenv("SINK_TEST_SECRET", ALICE_PASSWORD)
    code = main(["run", str(path), "--base-url", hub.url])
    err = capsys.readouterr().err
    assert code == 1  # never a success
    assert "ci-0" in err and "revoke" in err.lower()
    created = {t["uuid"]: t["label"] for t in alice_tokens(hub) if t["uuid"] not in before}
    assert sorted(created.values()) == ["ci-0", "ci-1", "ci-2"]

    destination = open_destination(path, base_url=hub.url)
    with Ledger(output_paths(destination).ledger) as ledger:
        attention = list(ledger.attention())
    assert sorted(entry.key for entry in attention) == ["ci-0", "ci-1", "ci-2"]
    assert all(e.state == DONE and (e.note or "").startswith(SECRET_LOST) for e in attention)
    assert main(["status", str(path)]) == 1
    assert "ci-1" in capsys.readouterr().out

    out = tmp_path / "out"
    records = out / "tokens-revoke.jsonl"
    revoke = out / "tokens-revoke.yaml"
    for file in (records, revoke):
        assert stat.S_IMODE(os.stat(file).st_mode) == 0o600
    listed = [orjson.loads(line) for line in records.read_bytes().splitlines()]
    assert sorted(row["uuid"] for row in listed) == sorted(created)
    assert yaml.safe_load(revoke.read_text())["template"] == "delete-personal-access-token"

    hub.set_faults(None)
    assert main(["run", str(revoke), "--base-url", hub.url]) == 2  # destructive: needs --yes
    capsys.readouterr()
    assert main(["run", str(revoke), "--base-url", hub.url, "--yes"]) == 0
    assert {t["uuid"] for t in alice_tokens(hub)} == before


def test_a_create_answer_without_its_secret_is_a_lost_secret_not_a_success(
    hub: Simulator, tmp_path: Path
) -> None:
    def drop(body: dict[str, Any]) -> None:
        body.pop("token", None)

    path = write(tmp_path, ROWS[:1])
    summary = run(path, hub.url, EditCreated(drop))
    assert summary.counts.ok == 0
    assert summary.counts.secrets_lost == ["ci-0"]
    assert summary.revoke is not None and summary.revoke.tokens == 1
    line = orjson.loads((tmp_path / "out" / "tokens-responses.jsonl").read_bytes())
    assert line["status"] == Status.SECRET_LOST.value


def test_a_secret_in_an_unexpected_field_goes_to_the_vault_and_nowhere_else(
    hub: Simulator, tmp_path: Path
) -> None:
    moved = "dckr_pat_Zq8Lr0Xn2Vb4Tc6Ym1Wk3Hs5Jd"

    def move(body: dict[str, Any]) -> None:
        body.pop("token", None)
        body["details"] = {"access": moved}

    path = write(tmp_path, ROWS[:1])
    summary = run(path, hub.url, EditCreated(move))
    assert summary.counts.ok == 1 and not summary.counts.secrets_lost
    out = tmp_path / "out"
    assert moved in (out / "tokens-vault.jsonl").read_text()
    for name in ("tokens-responses.jsonl", "tokens-audit.jsonl"):
        assert moved not in (out / name).read_text()


def test_an_unusable_vault_stops_before_anything_is_created(hub: Simulator, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "tokens-vault.jsonl").mkdir()  # a directory where the vault goes
    path = write(tmp_path, ROWS)
    before = len(alice_tokens(hub))
    with pytest.raises(Exception, match="vault"):
        run(path, hub.url)
    assert len(alice_tokens(hub)) == before
    assert not [r for r in hub.requests() if r["method"] == "POST"]


def test_a_manual_request_that_creates_a_token_keeps_its_secret_in_the_vault(
    hub: Simulator, tmp_path: Path
) -> None:
    config = {
        "connection": {"identifier": "alice", "secret_env": "SINK_TEST_SECRET"},
        "manual": {"method": "POST", "url": "/v2/access-tokens", "body_is_record": True},
        "key_field": "token_label",
        "input": "tokens.jsonl",
    }
    path = write(tmp_path, [{"token_label": "by-hand", "scopes": ["repo:read"]}], config)
    summary = run(path, hub.url)
    assert summary.counts.ok == 1 and summary.counts.secrets == 1
    secret = next(t["token"] for t in alice_tokens(hub) if t["label"] == "by-hand")
    out = tmp_path / "out"
    assert secret in (out / "tokens-vault.jsonl").read_text()
    assert secret not in (out / "tokens-responses.jsonl").read_text()
