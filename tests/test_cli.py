"""The command line: preview, templates, validate and test, with their exit codes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from sink.cli import EXIT_OK, EXIT_REJECTED, EXIT_STOPPED, main
from sink.hubsim import Simulator
from tests.seed import OAT

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def config(tmp_path: Path, rows: str, **extra: Any) -> Path:
    (tmp_path / "records.csv").write_text(rows)
    data = {
        "connection": {"identifier": "acme", "secret_env": "SINK_TEST_SECRET"},
        "template": "create-repository",
        "settings": {"namespace": "acme"},
        "input": "records.csv",
        **extra,
    }
    path = tmp_path / "dest.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_preview_prints_json_lines_and_exits_zero(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    path = config(tmp_path, "name,is_private\napp-one,true\napp-two,no\napp-three,\n")
    assert main(["preview", str(path), "-n", "2"]) == EXIT_OK
    out, err = capsysbinary.readouterr()
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert len(lines) == 2
    assert lines[0] == {
        "method": "POST",
        "url": "https://hub.docker.com/v2/namespaces/acme/repositories",
        "headers": {"Authorization": "Bearer ***", "Content-Type": "application/json"},
        "body": {"name": "app-one", "namespace": "acme", "is_private": True},
    }
    assert lines[1]["body"]["is_private"] is False
    assert b"3 records: 3 requests (2 printed), 0 invalid. Nothing was sent." in err


def test_preview_names_invalid_records_and_exits_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, "name,description\nok-name,\nBad_Name,\nfine,%s\n" % ("x" * 101))
    assert main(["preview", str(path), "--all"]) == EXIT_REJECTED
    err = capsys.readouterr().err
    assert 'invalid record 2: name: "Bad_Name" does not match the pattern' in err
    assert "invalid record 3: description:" in err
    assert "3 records: 1 requests (1 printed), 2 invalid." in err


def test_preview_http_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, "name\napp-one\n")
    assert main(["preview", str(path), "--format", "http"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith(
        "POST https://hub.docker.com/v2/namespaces/acme/repositories\n"
        "Authorization: Bearer ***\nContent-Type: application/json\n\n{\n"
    )


def test_preview_warns_about_destructive_templates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, "team\nqa\nops\n", template="delete-team", settings={"org": "acme"})
    assert main(["preview", str(path)]) == EXIT_OK
    err = capsys.readouterr().err
    assert "Destructive: 2 requests would run 'Delete a team'" in err
    assert "--yes" in err


def test_preview_of_a_bad_config_stops_with_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, "name\na\n", colour="blue")
    assert main(["preview", str(path)]) == EXIT_STOPPED
    assert "colour: unknown key" in capsys.readouterr().err


def test_preview_of_an_unknown_format_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, "name\na\n")
    (tmp_path / "records.xlsx").write_text("x")
    assert main(["preview", str(path), "--input", str(tmp_path / "records.xlsx")]) == EXIT_STOPPED
    assert "format" in capsys.readouterr().err


DESTINATIONS = sorted(p.name for p in SAMPLES.glob("*.yaml") if p.name != "hubsim-seed.yaml")


@pytest.mark.parametrize("sample", DESTINATIONS)
def test_every_sample_previews(sample: str, capsys: pytest.CaptureFixture[str]) -> None:
    expected = EXIT_REJECTED if sample.startswith("invalid") else EXIT_OK
    assert main(["preview", str(SAMPLES / sample)]) == expected


def test_templates_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates"]) == EXIT_OK
    listing = capsys.readouterr().out
    assert "22 Docker Hub endpoint templates" in listing
    assert "grant-team-repository" in listing
    assert main(["templates", "show", "create-personal-access-token"]) == EXIT_OK
    shown = capsys.readouterr().out
    assert "Secrets:        token (written only to the vault)" in shown
    assert "POST https://hub.docker.com/v2/access-tokens" in shown
    assert main(["templates", "show", "create-repo"]) == EXIT_STOPPED
    assert "Did you mean create-repository" in capsys.readouterr().err


def test_templates_json(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["templates", "show", "delete-team", "--json"]) == EXIT_OK
    info = orjson.loads(capsysbinary.readouterr().out)
    assert info["destructive"] is True
    assert info["method"] == "DELETE"


def test_validate_names_missing_secret_and_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config(tmp_path, "name\na\n", input="missing.csv")
    monkeypatch.delenv("SINK_TEST_SECRET", raising=False)
    assert main(["validate", str(path)]) == EXIT_STOPPED
    err = capsys.readouterr().err
    assert "the environment variable SINK_TEST_SECRET is not set" in err
    assert "input: no such file" in err
    monkeypatch.setenv("SINK_TEST_SECRET", OAT)
    path = config(tmp_path, "name\na\n")
    assert main(["validate", str(path)]) == EXIT_OK


def test_run_refuses_a_destructive_template_without_yes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SINK_TEST_SECRET", OAT)
    path = config(tmp_path, "team\nqa\n", template="delete-team", settings={"org": "acme"})
    assert main(["run", str(path), "--base-url", "http://127.0.0.1:9"]) == EXIT_STOPPED
    assert "destructive" in capsys.readouterr().err


def test_test_command_sends_one_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SINK_TEST_SECRET", OAT)
    path = config(tmp_path, "name\nfirst-one\nsecond-one\n")
    with Simulator() as hub:
        code = main(["test", str(path), "--record", "2", "--base-url", hub.url])
        created = [r["name"] for r in hub.state()["repositories"] if r["namespace"] == "acme"]
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert "second-one" in created and "first-one" not in created
    assert "Authorization: Bearer ***" in out
    assert "Response: 201 (ok)" in out
    assert OAT not in out


def test_test_command_with_a_hand_edited_body(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SINK_TEST_SECRET", OAT)
    path = config(tmp_path, "name\nfirst-one\n")
    body = '{"name": "edited-by-hand", "namespace": "acme", "is_private": "true"}'
    with Simulator() as hub:
        code = main(["test", str(path), "--body", body, "--base-url", hub.url])
        created = {r["name"]: r for r in hub.state()["repositories"] if r["namespace"] == "acme"}
    assert code == EXIT_OK
    assert created["edited-by-hand"]["is_private"] is True
    bad_body = ["--body", '{"name": "NO"}']
    assert main(["test", str(path), *bad_body, "--base-url", "http://127.0.0.1:9"]) == 2
    assert "pattern" in capsys.readouterr().err
    assert os.environ["SINK_TEST_SECRET"] == OAT
