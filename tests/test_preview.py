"""Preview: the run's pipeline stopped before sending; what the guard decides offline shows."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from sink.cli.main import main
from sink.destination import open_destination
from sink.preview import preview

CONNECTION = {"identifier": "acme", "secret_env": "SINK_TEST_SECRET"}


def write(folder: Path, config: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    (folder / "records.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    path = folder / "dest.yaml"
    path.write_text(yaml.safe_dump({"connection": CONNECTION, "input": "records.jsonl", **config}))
    return path


def test_the_policy_refuses_in_preview_what_the_run_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {
        "template": "create-repository",
        "settings": {"namespace": "acme"},
        "policy": {"repositories": ["acme/team-*"]},
    }
    rows = [{"name": "team-web"}, {"name": "payroll"}, {"name": "team-x"}]
    path = write(tmp_path, config, rows)
    destination = open_destination(path)
    out = io.BytesIO()
    report = preview(destination, tmp_path / "records.jsonl", limit=None, out=out)
    assert (report.requests, report.rejected_count, report.refused) == (2, 1, 1)
    assert "payroll" in report.rejected[0].error and report.rejected[0].index == 1
    assert b"payroll" not in out.getvalue()  # not shown as a request the run would send
    assert main(["preview", str(path)]) == 1
    assert "refused" in capsys.readouterr().err


def test_what_only_hub_can_decide_is_named_per_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {"template": "remove-member", "settings": {"org": "acme"}}
    path = write(tmp_path, config, [{"username": "alice"}])
    report = preview(open_destination(path), tmp_path / "records.jsonl", out=io.BytesIO())
    assert report.requests == 1 and report.undecided_count == 1
    index, why = report.undecided[0]
    assert index == 0 and "last owner of acme" in why
    main(["preview", str(path)])
    assert "decided at send time" in capsys.readouterr().err


def test_removing_the_owners_team_is_refused_offline(tmp_path: Path) -> None:
    config = {"template": "delete-team", "settings": {"org": "acme"}}
    path = write(tmp_path, config, [{"team": "owners"}, {"team": "interns"}])
    report = preview(open_destination(path), tmp_path / "records.jsonl", out=io.BytesIO())
    assert (report.requests, report.refused) == (1, 1)
    assert "every owner" in report.rejected[0].error


def test_an_ambiguous_path_is_refused_in_preview_as_in_the_run(tmp_path: Path) -> None:
    # Not an owners route and no policy, yet a record value that encodes a slash makes the
    # path ambiguous: the run's guard refuses it, so the preview does too.
    config = {"template": "update-immutable-tags", "settings": {"namespace": "acme"}}
    rows = [
        {"repository": "api", "enabled": "true", "rules": "v.*"},
        {"repository": "team/../api", "enabled": "true", "rules": "v.*"},
    ]
    path = write(tmp_path, config, rows)
    report = preview(open_destination(path), tmp_path / "records.jsonl", out=io.BytesIO())
    assert (report.requests, report.refused) == (1, 1)
    assert report.rejected[0].index == 1
