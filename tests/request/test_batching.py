"""Code batching's user code: imported only from an explicit place, never by ``validate``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import yaml

from sink.cli.main import ExitCode, main
from sink.errors import ConfigError
from sink.request.batching import load_function, locate_function

ROOT = Path(__file__).resolve().parents[2]

USER_CODE = """
import pathlib
pathlib.Path(__file__).with_name("ran").write_text("imported")

def build(records, settings):
    return {"names": [r["name"] for r in records], "org": settings.get("org")}
"""


def destination(folder: Path, function: str) -> Path:
    """A config beside ``batcher.py`` (which leaves a ``ran`` file when it is imported)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "batcher.py").write_text(USER_CODE)
    (folder / "in.csv").write_text("name\nann\nbob\n")
    data = {
        "connection": {"identifier": "acme", "secret_env": "SINK_BATCH_SECRET"},
        "manual": {"method": "POST", "url": "/v2/x", "body_is_record": True},
        "settings": {"org": "acme"},
        "batching": {"mode": "code", "function": function, "size": 10},
        "input": "in.csv",
    }
    path = folder / "dest.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("function", ["batcher:build", "batcher.py:build"])
def test_python_m_sink_validate_never_runs_code_beside_the_config(
    tmp_path: Path, function: str
) -> None:
    config = destination(tmp_path, function)
    environment = {**os.environ, "SINK_BATCH_SECRET": "dckr_oat_7GbLq2xWvK9pR4sT1uYz0aBcDeF"}
    environment["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "sink", "validate", config.name],
        cwd=tmp_path,  # python -m puts the current directory first on sys.path
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert not (tmp_path / "ran").exists()
    assert "Traceback" not in done.stderr
    if function == "batcher:build":  # a module of the current directory is not imported
        assert done.returncode == ExitCode.STOPPED
        assert "no installed module 'batcher'" in done.stderr
        assert "function: batcher.py:build" in done.stderr
    else:
        assert done.returncode == ExitCode.OK, done.stderr


def test_preview_imports_the_file_named_relative_to_the_config(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    config = destination(tmp_path / "conf", "batcher.py:build")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["validate", str(config)]) in (ExitCode.OK, ExitCode.STOPPED)
    assert not (config.parent / "ran").exists()
    assert main(["preview", str(config)]) == ExitCode.OK
    out, _ = capsysbinary.readouterr()
    assert orjson.loads(out.splitlines()[0])["body"] == {"names": ["ann", "bob"], "org": "acme"}
    assert (config.parent / "ran").read_text() == "imported"


def test_a_module_of_the_current_directory_is_not_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cwd_batcher.py").write_text(USER_CODE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # as python -m does
    monkeypatch.syspath_prepend("")
    with pytest.raises(ConfigError, match="no installed module 'cwd_batcher'"):
        locate_function("cwd_batcher:build")
    with pytest.raises(ConfigError, match="cannot import cwd_batcher"):
        load_function("cwd_batcher:build")
    assert not (tmp_path / "ran").exists()
    assert "cwd_batcher" not in sys.modules


def test_an_installed_module_and_an_absolute_file_are_imported(tmp_path: Path) -> None:
    assert load_function("os.path:join")("a", "b") == os.path.join("a", "b")
    (tmp_path / "mine.py").write_text(USER_CODE)
    build = load_function(f"{tmp_path / 'mine.py'}:build", folder=Path("/nowhere"))
    assert build([{"name": "x"}], {"org": "o"}) == {"names": ["x"], "org": "o"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nocolon", "must look like"),
        (":build", "must look like"),
        ("batcher.py:", "must look like"),
        ("batcher.py:not-a-name", "must look like"),
        ("missing.py:build", "no such file"),
        ("sub/missing.py:build", "no such file"),
        ("no_such_module_anywhere:build", "no installed module"),
    ],
)
def test_a_function_that_cannot_be_found_is_a_config_error(
    tmp_path: Path, spec: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        locate_function(spec, tmp_path)


def test_a_module_that_fails_or_lacks_the_function_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(ConfigError, match="boom"):
        load_function("broken.py:build", tmp_path)
    with pytest.raises(ConfigError, match="has no function build"):
        load_function("empty.py:build", tmp_path)
    locate_function("broken.py:build", tmp_path)  # found, and not run
