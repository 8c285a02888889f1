"""``sink validate``: each problem of a config that would stop a run, in plain words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sink.cli.main import ExitCode, main
from sink.config import parse_config
from sink.destination import bind
from sink.validate import check
from tests.seed import OAT

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def problems(tmp_path: Path, rows: str | None, **config: Any) -> tuple[list[str], list[str]]:
    if rows is not None:
        (tmp_path / "records.csv").write_text(rows)
    data = {
        "connection": {"identifier": "acme", "base_url": "https://hub.docker.com"},
        "template": "create-repository",
        "settings": {"namespace": "acme"},
        "input": "records.csv",
        **config,
    }
    return check(bind(parse_config(data), tmp_path))


def test_every_column_problem_is_listed(tmp_path: Path) -> None:
    found, _ = problems(
        tmp_path, "name,description\napp,x\n", exclude=["descriptoin"], key_field="nmae"
    )
    assert [line.split(":")[0] for line in found] == ["exclude", "key_field"]
    assert "did you mean 'description'?" in found[0]
    assert "did you mean 'name'?" in found[1]


def test_a_valid_input_without_optional_columns_has_no_problem(tmp_path: Path) -> None:
    assert problems(tmp_path, "name\napp\n", key_field="name") == ([], [])


def test_a_misspelt_column_of_the_file_is_a_warning(tmp_path: Path) -> None:
    found, warnings = problems(tmp_path, "name,descriptoin\napp,x\n")
    assert found == []
    assert warnings and "column 'descriptoin' is not read by create-repository" in warnings[0]


def test_stdin_is_said_to_be_checked_later(tmp_path: Path) -> None:
    found, warnings = problems(tmp_path, None, input="-", key_field="nmae")
    assert found == []
    assert any("input is stdin" in warning for warning in warnings)


def test_the_samples_validate(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("SINK_HUB_SECRET", OAT)
    for path in sorted(SAMPLES.glob("*.yaml")):
        if path.name == "hubsim-seed.yaml":
            continue
        assert main(["validate", str(path)]) == ExitCode.OK, capsys.readouterr().err
        assert "warning: " not in capsys.readouterr().err, path


def test_validate_prints_each_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "records.csv").write_text("team,description\nqa,x\n")
    config = {
        "connection": {"identifier": "acme", "secret_env": "SINK_TEST_SECRET"},
        "template": "create-team",
        "settings": {"org": "acme"},
        "input": "records.csv",
        "exclude": ["descripton"],
        "key_field": "teams",
    }
    path = tmp_path / "dest.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("SINK_TEST_SECRET", OAT)
    assert main(["validate", str(path)]) == ExitCode.STOPPED
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[:2] for line in err] == [
        ["problem", " exclude"],
        ["problem", " key_field"],
    ]
