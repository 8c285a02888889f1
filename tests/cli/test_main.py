"""The command line: preview, templates, validate and test, with their exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from sink.cli.main import ExitCode, main
from sink.hubsim import Simulator
from tests.seed import OAT

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"


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
    assert main(["preview", str(path), "-n", "2"]) == ExitCode.OK
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
    assert main(["preview", str(path), "--all"]) == ExitCode.REJECTED
    err = capsys.readouterr().err
    assert 'invalid record 2: name: "Bad_Name" does not match the pattern' in err
    assert "invalid record 3: description:" in err
    assert "3 records: 1 request (1 printed), 2 invalid." in err


def test_preview_http_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, "name\napp-one\n")
    assert main(["preview", str(path), "--format", "http"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert out.startswith(
        "POST https://hub.docker.com/v2/namespaces/acme/repositories\n"
        "Authorization: Bearer ***\nContent-Type: application/json\n\n{\n"
    )


def test_preview_warns_about_destructive_templates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, "team\nqa\nops\n", template="delete-team", settings={"org": "acme"})
    assert main(["preview", str(path)]) == ExitCode.OK
    err = capsys.readouterr().err
    assert "Destructive: 2 requests would run 'Delete a team'" in err
    assert "--yes" in err


def test_preview_of_a_bad_config_stops_with_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, "name\na\n", colour="blue")
    assert main(["preview", str(path)]) == ExitCode.STOPPED
    assert "colour: unknown key" in capsys.readouterr().err


def test_preview_of_an_unknown_format_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, "name\na\n")
    (tmp_path / "records.xlsx").write_text("x")
    assert (
        main(["preview", str(path), "--input", str(tmp_path / "records.xlsx")]) == ExitCode.STOPPED
    )
    assert "format" in capsys.readouterr().err


DESTINATIONS = sorted(p.name for p in SAMPLES.glob("*.yaml") if p.name != "hubsim-seed.yaml")


@pytest.mark.parametrize("sample", DESTINATIONS)
def test_every_sample_previews(sample: str, capsys: pytest.CaptureFixture[str]) -> None:
    expected = ExitCode.REJECTED if sample.startswith("invalid") else ExitCode.OK
    assert main(["preview", str(SAMPLES / sample)]) == expected


def test_templates_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates"]) == ExitCode.OK
    listing = capsys.readouterr().out
    assert "22 Docker Hub endpoint templates" in listing
    assert "grant-team-repository" in listing
    assert main(["templates", "show", "create-personal-access-token"]) == ExitCode.OK
    shown = capsys.readouterr().out
    assert "Secrets:        token (written only to the vault)" in shown
    assert "POST https://hub.docker.com/v2/access-tokens" in shown
    assert main(["templates", "show", "create-repo"]) == ExitCode.STOPPED
    assert "Did you mean create-repository" in capsys.readouterr().err


def test_templates_json(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["templates", "show", "delete-team", "--json"]) == ExitCode.OK
    info = orjson.loads(capsysbinary.readouterr().out)
    assert info["destructive"] is True
    assert info["method"] == "DELETE"


def test_validate_names_missing_secret_and_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config(tmp_path, "name\na\n", input="missing.csv")
    monkeypatch.delenv("SINK_TEST_SECRET", raising=False)
    assert main(["validate", str(path)]) == ExitCode.STOPPED
    err = capsys.readouterr().err
    assert "the environment variable SINK_TEST_SECRET is not set" in err
    assert "input: no such file" in err
    monkeypatch.setenv("SINK_TEST_SECRET", OAT)
    path = config(tmp_path, "name\na\n")
    assert main(["validate", str(path)]) == ExitCode.OK


def test_run_refuses_a_destructive_template_without_yes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SINK_TEST_SECRET", OAT)
    path = config(tmp_path, "team\nqa\n", template="delete-team", settings={"org": "acme"})
    assert main(["run", str(path), "--base-url", "http://127.0.0.1:9"]) == ExitCode.STOPPED
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
    assert code == ExitCode.OK
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
    assert code == ExitCode.OK
    assert created["edited-by-hand"]["is_private"] is True
    bad_body = ["--body", '{"name": "NO"}']
    assert main(["test", str(path), *bad_body, "--base-url", "http://127.0.0.1:9"]) == 2
    assert "pattern" in capsys.readouterr().err
    assert os.environ["SINK_TEST_SECRET"] == OAT


# -- exit codes -------------------------------------------------------------------------------


def test_exit_codes_are_one_enum_with_the_documented_values() -> None:
    assert [(code.name, int(code)) for code in ExitCode] == [
        ("OK", 0),
        ("REJECTED", 1),
        ("STOPPED", 2),
        ("CHANGES", 3),
        ("INTERRUPTED_SIGINT", 130),
        ("INTERRUPTED_SIGTERM", 143),
    ]
    assert ExitCode.interrupted(signal.SIGINT) is ExitCode.INTERRUPTED_SIGINT
    assert ExitCode.interrupted(signal.SIGTERM) is ExitCode.INTERRUPTED_SIGTERM


def test_commands_return_an_exit_code(tmp_path: Path) -> None:
    assert main(["templates"]) is ExitCode.OK
    assert main(["preview", str(config(tmp_path, "name\nBAD NAME\n"))]) is ExitCode.REJECTED
    assert main(["status", str(tmp_path / "missing.yaml")]) is ExitCode.STOPPED
    assert main([]) is ExitCode.STOPPED


# -- start-up: a command imports what it needs when it runs -----------------------------------

_PROBE = """
import sys
from sink.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stdout.flush()
sys.stderr.write("\\n".join(sorted(sys.modules)))
"""


def imported_by(*argv: str) -> tuple[str, set[str]]:
    """What ``sink ARGV`` prints, and the modules it imported (in a fresh interpreter)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "2000"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout, set(done.stderr.splitlines())


def test_help_does_not_import_pydantic_the_templates_or_the_spec() -> None:
    out, modules = imported_by("--help")
    commands = (line for line in out.splitlines() if line[:4] == "    " and line[4:5].isalpha())
    listed = [line.split()[0] for line in commands]
    assert listed == [
        "templates",
        "preview",
        "run",
        "test",
        "status",
        "validate",
        "hubsim",
        "connection",
        "check",
        "export",
        "plan",
        "apply",
        "mcp",
    ]
    heavy = {
        "pydantic",
        "sink.request.templates",
        "sink.request.schema",
        "sink.request.spec",
        "sink.config",
        "httpx",
    }
    heavy |= {"jinja2", "sink.read.connections", "sink.read.export", "cryptography"}
    heavy |= {"sink.plan", "sink.plan.make", "sink.run"}
    assert "sink.cli.main" in modules
    assert heavy & modules == set()


def test_templates_lists_without_docker_spec_or_http_client() -> None:
    out, modules = imported_by("templates")
    assert "create-repository" in out
    assert "sink.request.templates" in modules
    assert {
        "sink.request.schema",
        "sink.request.spec",
        "jinja2",
        "httpx",
        "sink.read.connections",
    } & modules == set()


def test_commands_whose_options_come_from_other_modules_still_list_them() -> None:
    from sink.read.connections import KINDS
    from sink.read.export import EXPORTS, FORMATS

    out, modules = imported_by("export", "--help")
    assert "sink.read.export" in modules
    for name in EXPORTS:
        assert f"{name}:" in out
    for option in ("--connection", "--to", "--teams", "--since", "--until", "--actor"):
        assert option in out
    assert "{" + ",".join(FORMATS) + "}" in out
    out, _ = imported_by("connection", "add", "--help")
    assert "--kind {" + ",".join(KINDS) + "}" in out
    assert "--token-stdin" in out and "--no-verify" in out
    out, _ = imported_by("connection", "edit", "--help")
    assert "usage: sink connection edit [-h] [--kind" in out and " name" in out


def test_an_error_no_command_translated_is_one_line_without_a_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sink.cli import main as cli

    leaked = "dckr_pat_Q3vN8kT2mL7xR5wB9cH1jF4yD6sA0gEp"

    def broken(args: object) -> int:
        raise RuntimeError(f"something unforeseen near {leaked}")

    monkeypatch.setattr(cli, "cmd_templates", broken)
    monkeypatch.delenv("SINK_TRACEBACK", raising=False)
    assert cli.main(["templates"]) == cli.ExitCode.STOPPED
    err = capsys.readouterr().err
    assert err.startswith("sink: failed: RuntimeError: something unforeseen near ***")
    assert leaked not in err and "Traceback" not in err and err.count("\n") == 1


def test_a_hub_that_cannot_be_reached_is_named_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import httpx

    from sink.cli import main as cli

    def unreachable(args: object) -> int:
        request = httpx.Request("GET", "https://hub.example.test:8443/v2/orgs/acme/members")
        raise httpx.ConnectError("All connection attempts failed", request=request)

    monkeypatch.setattr(cli, "cmd_templates", unreachable)
    assert cli.main(["templates"]) == cli.ExitCode.STOPPED
    err = capsys.readouterr().err
    assert "cannot reach https://hub.example.test:8443" in err and "Traceback" not in err
