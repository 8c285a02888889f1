"""``sink plan`` and ``sink apply`` from the command line: output, exit codes, confirmation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sink.cli.main import ExitCode, main
from sink.hubsim import Simulator
from tests.seed import OAT


def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **sections: object) -> Path:
    monkeypatch.setenv("PLAN_CLI_OAT", OAT)
    doc = {"connection": {"identifier": "acme", "secret_env": "PLAN_CLI_OAT"}, "org": "acme"}
    doc.update({kind: {"rows": rows} for kind, rows in sections.items()})
    path = tmp_path / "state.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_plan_out_then_apply_then_no_changes(
    fresh_hub: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = state(tmp_path, monkeypatch, teams=[{"name": "platform", "description": "Runs it"}])
    out = tmp_path / "plan.json"
    url = ["--base-url", fresh_hub.url]
    code = main(["plan", str(path), "--out", str(out), "--detailed-exitcode", *url])
    assert code == ExitCode.CHANGES
    assert "+ team platform (description: 'Runs it')" in capsys.readouterr().out
    assert main(["apply", str(out), *url]) == ExitCode.OK
    assert "Applied: 1 calls for 1 changes." in capsys.readouterr().out
    assert main(["plan", str(path), "--detailed-exitcode", *url]) == ExitCode.OK
    assert "No changes." in capsys.readouterr().out


def test_apply_state_asks_and_refusals_exit_1(
    fresh_hub: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = state(tmp_path, monkeypatch, members=[{"username": "alice", "role": "member"}])
    url = ["--base-url", fresh_hub.url]
    assert main(["plan", str(path), *url]) == ExitCode.REJECTED
    assert "! refused: ~ role acme/alice owner -> member" in capsys.readouterr().out
    path = state(tmp_path, monkeypatch, teams=[{"name": "web"}])
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["apply", str(path), *url]) == ExitCode.STOPPED  # no terminal, no --yes
    assert "confirm with --yes" in capsys.readouterr().err
    assert main(["apply", str(path), "--yes", *url]) == ExitCode.OK


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["plan", "--help"])
    assert "3 when the plan has changes" in " ".join(capsys.readouterr().out.split())
