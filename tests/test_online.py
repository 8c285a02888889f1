"""preview --online: the run's read-only steps on the simulator, nothing written."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from sink.cli.main import main
from sink.destination import open_destination
from sink.hubsim import Simulator
from sink.online import preview_online
from sink.read.credentials import Credentials
from tests.seed import OAT

pytestmark = pytest.mark.usefixtures("fresh_hub")


def write(folder: Path, config: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    (folder / "records.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    connection = {"identifier": "acme", "secret_env": "SINK_TEST_SECRET"}
    path = folder / "dest.yaml"
    path.write_text(yaml.safe_dump({"connection": connection, "input": "records.jsonl", **config}))
    return path


def writes(hub: Simulator) -> list[str]:
    return [r["path"] for r in hub.requests() if r["method"] not in ("GET", "HEAD")]


def test_it_says_per_record_what_a_run_would_do_and_writes_nothing(
    hub: Simulator, tmp_path: Path
) -> None:
    config = {"template": "create-repository", "settings": {"namespace": "acme"}}
    path = write(tmp_path, config, [{"name": "web"}, {"name": "brand-new"}])
    destination = open_destination(path, base_url=hub.url)
    credentials = Credentials(hub.url, "acme", OAT, "oat")
    report = asyncio.run(preview_online(destination, credentials, tmp_path / "records.jsonl"))
    assert [(v.position, v.action) for v in report.verdicts] == [(0, "skip"), (1, "send")]
    assert [p for p in writes(hub) if p != "/v2/auth/token"] == []
    assert not (tmp_path / "out").exists() and not (tmp_path / "dest.ledger.sqlite").exists()


def test_team_names_and_the_last_owner_are_read_from_hub(
    hub: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = {"template": "remove-member", "settings": {"org": "acme"}}
    path = write(tmp_path, config, [{"username": "alice"}])
    monkeypatch.setenv("SINK_TEST_SECRET", OAT)
    assert main(["preview", str(path), "--online", "--base-url", hub.url]) == 1
    err = capsys.readouterr().err
    assert "refused" in err and "last owner" in err
    grant = {"template": "grant-team-repository", "settings": {"namespace": "acme"}}
    rows = [
        {"repository": "web", "team": "developers", "permission": "read"},
        {"repository": "web", "team": "no-such-team", "permission": "read"},
    ]
    path = write(tmp_path, grant, rows)
    destination = open_destination(path, base_url=hub.url)
    credentials = Credentials(hub.url, "acme", OAT, "oat")
    report = asyncio.run(preview_online(destination, credentials, tmp_path / "records.jsonl"))
    assert [(v.position, v.action) for v in report.verdicts] == [(0, "send"), (1, "reject")]
    assert "no-such-team" in report.verdicts[1].why
    assert [p for p in writes(hub) if p != "/v2/auth/token"] == []
