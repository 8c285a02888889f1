"""The read side of the command line (sink/cli/read.py): ``connection``, ``check`` and
``export`` parsed, answered and refused, with their exit codes and without tracebacks or secrets.

The library behind them is tested in tests/read/ (connections, checks, export); these tests drive
``sink.cli.main`` as a user does, against the simulator on 127.0.0.1."""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.fernet import Fernet

from sink.cli import main as cli
from sink.cli.read import Prompter, add_connection
from sink.hubsim import Simulator
from sink.read.checks import AUTH_FAILED
from sink.read.connections import Connection, ConnectionStore, new_connection
from tests.read.test_checks import MEMBERS_ONLY_OAT, REVOKED_PAT
from tests.read.test_export import read_back
from tests.read.test_export import seed as export_seed
from tests.seed import ACME_OAT, ALICE_PAT

OTHER_PAT = "dckr_pat_Zq81nVw0CkTa2mYdLr5bHs7xJe"


def seed() -> dict[str, Any]:
    """The export tests' Hub (more repositories, users, a team "qa", an audit log) plus the
    check tests' organization token that may only read members."""
    doc = export_seed()
    acme = next(org for org in doc["orgs"] if org["name"] == "acme")
    acme["access_tokens"].append(
        {
            "label": "members only",
            "token": MEMBERS_ONLY_OAT,
            "created_by": "alice",
            "resources": [{"type": "TYPE_ORG", "path": "acme", "scopes": ["scope-member-read"]}],
        }
    )
    return doc


@pytest.fixture(scope="module")
def hub() -> Iterator[Simulator]:
    with Simulator(seed()) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def home(hub: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store of this test's own (no keyring), and the simulator back at its seed."""
    hub.reset()
    folder = tmp_path / "sink-home"
    monkeypatch.setenv("SINK_HOME", str(folder))
    monkeypatch.setenv("SINK_KEYRING", "off")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("SINK_KEY_FILE", raising=False)
    return folder


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """Where the key goes without a keyring (the fixture's XDG_STATE_HOME)."""
    return tmp_path / "state" / "sink" / "connections.key"


def personal(name: str = "alice-hub", secret: str = ALICE_PAT, base: str = "") -> Connection:
    return new_connection(
        "personal", name=name, identifier="alice", secret=secret, base_url=base or None
    )


def sink(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str, stdin: str = ""
) -> tuple[int, str, str]:
    """``sink ARGV`` with ``stdin``: the exit code, standard output and standard error.

    Standard output is a byte buffer (the export and ``--json`` write bytes to
    ``sys.stdout.buffer``) that also takes text (``print``)."""
    stdout = io.BytesIO()

    class Out:
        buffer = stdout

        def write(self, text: str) -> int:
            stdout.write(text.encode())
            return len(text)

        def flush(self) -> None:
            pass

    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    monkeypatch.setattr(sys, "stdout", Out())
    code = cli.main(list(argv))
    return code, stdout.getvalue().decode(), capsys.readouterr().err


def help_text(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str
) -> str:
    """The help ``sink ARGV --help`` prints (argparse exits 0 after it), on one line."""
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exited:
        cli.main([*argv, "--help"])
    assert exited.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """What argparse says when it refuses ``sink ARGV`` (it exits 2)."""
    with pytest.raises(SystemExit) as exited:
        cli.main(list(argv))
    assert exited.value.code == 2
    return capsys.readouterr().err


# -- sink connection ----------------------------------------------------------------------------


def _args(**given: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "kind": None,
        "instance_name": None,
        "username": None,
        "org": None,
        "token": None,
        "token_stdin": False,
        "password_stdin": False,
        "base_url": None,
        "no_verify": True,
    }
    values.update(given)
    return argparse.Namespace(**values)


def test_prompts_ask_again_until_valid_and_never_echo_the_secret() -> None:
    answers = io.StringIO("\n\n   \n  prod  \n\n  alice \n\n")  # kind: Enter = personal
    secrets = iter(["", "   ", ALICE_PAT])
    err = io.StringIO()
    prompter = Prompter(True, stdin=answers, err=err, ask_secret=lambda _: next(secrets))
    connection, count = add_connection(_args(), prompter, ConnectionStore(), None)
    assert count is None
    assert (
        connection.kind,
        connection.name,
        connection.identifier,
        connection.secret,
        connection.base_url,
    ) == ("personal", "prod", "alice", ALICE_PAT, "https://hub.docker.com")
    said = err.getvalue()
    assert said.count("This field is required\n") == 3  # instance name, username, token
    assert "Instance Name is required to distinguish multiple DockerHub connections.\n" in said
    assert "Personal Access Token is required.\n" in said
    assert ALICE_PAT not in said


def test_cli_add_verifies_and_never_prints_the_secret(
    hub: Simulator,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = sink(
        monkeypatch,
        capsys,
        "connection",
        "add",
        "--username",
        "alice",
        "--instance-name",
        "alice-hub",
        "--token-stdin",
        "--base-url",
        hub.url,
        stdin=ALICE_PAT + "\n",
    )
    assert code == 0, err
    assert "verified: 2 repositories in namespace alice" in out
    code, out, err = sink(monkeypatch, capsys, "connection", "show", "alice-hub")
    assert code == 0
    assert "Personal Access Token: ••••••••9XBd" in out
    assert ALICE_PAT not in out + err
    code, out, _ = sink(monkeypatch, capsys, "connection", "list", "--json")
    assert orjson.loads(out) == [
        {"name": "alice-hub", "kind": "personal", "identifier": "alice", "base_url": hub.url}
    ]
    assert ALICE_PAT not in out


def test_cli_add_refuses_a_connection_that_does_not_work(
    hub: Simulator,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = sink(
        monkeypatch,
        capsys,
        "connection",
        "add",
        "--username",
        "alice",
        "--instance-name",
        "broken",
        "--token-stdin",
        "--base-url",
        hub.url,
        stdin=OTHER_PAT + "\n",
    )
    assert code == 2
    assert (
        "Unable to authenticate with DockerHub. Verify the username and Personal Access "
        "Token, and confirm the PAT has not been revoked." in err
    )
    assert OTHER_PAT not in out + err
    assert ConnectionStore().names() == []
    code, _, _ = sink(
        monkeypatch,
        capsys,
        "connection",
        "add",
        "--username",
        "alice",
        "--instance-name",
        "unchecked",
        "--token-stdin",
        "--base-url",
        hub.url,
        "--no-verify",
        stdin=OTHER_PAT + "\n",
    )
    assert code == 0
    assert ConnectionStore().names() == ["unchecked"]


def test_cli_messages_without_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = sink(
        monkeypatch,
        capsys,
        "connection",
        "add",
        "--username",
        "   ",
        "--instance-name",
        "x",
        "--token",
        ALICE_PAT,
        "--no-verify",
    )
    assert code == 2 and "Username is required." in err
    code, _, err = sink(
        monkeypatch,
        capsys,
        "connection",
        "add",
        "--username",
        "alice",
        "--instance-name",
        "x",
        "--no-verify",
    )
    assert code == 2 and "Personal Access Token is required." in err
    code, _, err = sink(
        monkeypatch,
        capsys,
        "connection",
        "add",
        "--username",
        "",
        "--instance-name",
        "x",
        "--token",
        ALICE_PAT,
        "--no-verify",
    )
    assert code == 2 and "This field is required" in err
    code, _, err = sink(
        monkeypatch,
        capsys,
        "connection",
        "add",
        "--org",
        "acme",
        "--instance-name",
        " ",
        "--token-stdin",
        "--no-verify",
        stdin=ACME_OAT + "\n",
    )
    assert code == 2
    assert "Instance Name is required to distinguish multiple DockerHub connections." in err


def test_cli_edit_renames_without_the_token(
    hub: Simulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ConnectionStore().add(personal(base=hub.url))
    code, out, err = sink(
        monkeypatch, capsys, "connection", "edit", "alice-hub", "--instance-name", "alice"
    )
    assert code == 0, err
    assert "not verified" in out  # only the name changed: nothing to verify
    assert ConnectionStore().get("alice").secret == ALICE_PAT
    code, _, err = sink(
        monkeypatch, capsys, "connection", "edit", "alice", "--kind", "organization", "--no-verify"
    )
    assert code == 2
    assert "Organization Name, Organization Access Token, and Instance Name are required." in err
    code, _, err = sink(
        monkeypatch, capsys, "connection", "edit", "alice", "--token-stdin", stdin=OTHER_PAT + "\n"
    )
    assert code == 2 and "Unable to authenticate with DockerHub." in err
    assert ConnectionStore().get("alice").secret == ALICE_PAT
    code, _, _ = sink(monkeypatch, capsys, "connection", "remove", "alice")
    assert code == 0 and ConnectionStore().names() == []


def test_cli_edit_replaces_a_secret_the_key_cannot_read(
    key_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ConnectionStore().add(personal())
    key_file.write_bytes(Fernet.generate_key())
    code, _, err = sink(monkeypatch, capsys, "connection", "show", "alice-hub")
    assert code == 2 and "the key does not match" in err
    code, _, err = sink(
        monkeypatch,
        capsys,
        "connection",
        "edit",
        "alice-hub",
        "--token-stdin",
        "--no-verify",
        stdin=OTHER_PAT + "\n",
    )
    assert code == 0, err
    assert ConnectionStore().get("alice-hub").secret == OTHER_PAT
    assert os.path.exists(key_file)


def test_connection_help_says_where_the_key_lives(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        cli.main(["connection", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "kept apart from the store" in text
    for place in (
        "OS keyring",
        "$SINK_KEY_FILE",
        "$XDG_STATE_HOME/sink/connections.key",
        "~/.local/state/sink/connections.key",
    ):
        assert place in text


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--username", "alice", "--org", "acme"], "give --username or --org, not both"),
        (
            ["--kind", "organization", "--username", "alice"],
            "an organization connection takes --org (the organization name)",
        ),
        (
            ["--kind", "personal", "--org", "acme"],
            "a personal connection takes --username; for an organization access token use "
            "--kind organization",
        ),
    ],
)
def test_connection_add_refuses_an_identifier_flag_of_the_other_kind(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    code, out, err = sink(
        monkeypatch,
        capsys,
        "connection",
        "add",
        *flags,
        "--instance-name",
        "x",
        "--token-stdin",
        "--no-verify",
        stdin=ALICE_PAT + "\n",
    )
    assert code == 2
    assert f"sink: stopped: {message}\n" == err
    assert out == "" and ConnectionStore().names() == []


def test_connection_add_with_org_stores_an_organization_connection(
    hub: Simulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = sink(
        monkeypatch,
        capsys,
        "connection",
        "add",
        "--org",
        "acme",
        "--instance-name",
        "acme-hub",
        "--token-stdin",
        "--base-url",
        hub.url,
        stdin=ACME_OAT + "\n",
    )
    assert code == 0, err
    assert out.startswith("Connection 'acme-hub' added (organization, ")
    assert "verified:" in out and ACME_OAT not in out + err
    stored = ConnectionStore().get("acme-hub")
    assert (stored.kind, stored.identifier, stored.secret) == ("organization", "acme", ACME_OAT)


def test_connection_add_refuses_a_taken_name_before_any_request(
    hub: Simulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ConnectionStore().add(personal(base=hub.url))
    before = len(hub.requests())
    code, _, err = sink(
        monkeypatch,
        capsys,
        "connection",
        "add",
        "--username",
        "alice",
        "--instance-name",
        "alice-hub",
        "--token-stdin",
        "--base-url",
        hub.url,
        stdin=OTHER_PAT + "\n",
    )
    assert code == 2 and "alice-hub" in err and "Traceback" not in err
    assert len(hub.requests()) == before  # refused before the verification's listing
    assert ConnectionStore().get("alice-hub").secret == ALICE_PAT


def test_connection_list_show_and_remove(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = sink(monkeypatch, capsys, "connection", "list")
    assert code == 0
    assert out == "No stored connections; add one with `sink connection add`.\n"
    code, out, _ = sink(monkeypatch, capsys, "connection", "list", "--json")
    assert code == 0 and orjson.loads(out) == []

    ConnectionStore().add(personal(base="https://hub.example.test"))
    code, out, _ = sink(monkeypatch, capsys, "connection", "list")
    header, row = out.splitlines()
    assert header.split() == ["NAME", "KIND", "USERNAME", "/", "ORGANIZATION", "BASE", "URL"]
    assert row.split() == ["alice-hub", "personal", "alice", "https://hub.example.test"]

    code, out, _ = sink(monkeypatch, capsys, "connection", "show", "alice-hub", "--json")
    shown = orjson.loads(out)
    assert code == 0
    assert shown["secret"] == "••••••••" + ALICE_PAT[-4:]
    assert (shown["name"], shown["kind"], shown["identifier"]) == ("alice-hub", "personal", "alice")
    assert shown["created_at"] and ALICE_PAT not in out

    code, out, _ = sink(monkeypatch, capsys, "connection", "remove", "alice-hub")
    assert (code, out) == (0, "Connection 'alice-hub' removed.\n")
    code, _, err = sink(monkeypatch, capsys, "connection", "remove", "alice-hub")
    assert code == 2 and "no stored connection named 'alice-hub'" in err
    assert "Traceback" not in err


def test_connection_usage_errors_exit_2_with_argparse_s_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert "invalid choice: 'robot'" in usage_error(capsys, "connection", "add", "--kind", "robot")
    assert "not allowed with argument --token" in usage_error(
        capsys, "connection", "add", "--token", ALICE_PAT, "--token-stdin"
    )
    assert "the following arguments are required: name" in usage_error(capsys, "connection", "show")


def test_connection_add_and_edit_help_name_every_field(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    add = help_text(capsys, monkeypatch, "connection", "add")
    for flag in ("--kind", "--instance-name", "--username", "--org", "--token-stdin"):
        assert flag in add
    assert "{personal,organization,password}" in add and "default personal" in add
    assert "prefer --token-stdin or the prompt" in add
    edit = help_text(capsys, monkeypatch, "connection", "edit")
    assert "(empty: keep the stored one)" in edit and "default personal" not in edit


# -- sink check -------------------------------------------------------------------------------


def sink_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code = cli.main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_exit_codes(
    hub: Simulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ConnectionStore()
    store.add(
        new_connection(
            "personal", name="good", identifier="alice", secret=ALICE_PAT, base_url=hub.url
        )
    )
    store.add(
        new_connection(
            "personal", name="revoked", identifier="alice", secret=REVOKED_PAT, base_url=hub.url
        )
    )
    store.add(
        new_connection(
            "organization",
            name="acme",
            identifier="acme",
            secret=MEMBERS_ONLY_OAT,
            base_url="https://hub.example.test",
        )
    )

    code, out, _ = sink_check(monkeypatch, capsys, "good")
    assert code == 0
    assert "PASS  Validate DockerHub API Connection\n" in out
    assert "3 of 3 checks passed." in out

    code, out, _ = sink_check(monkeypatch, capsys, "revoked")
    assert code == 1
    assert f"FAIL  Validate DockerHub API Connection\n      {AUTH_FAILED}\n" in out
    assert REVOKED_PAT not in out

    code, out, _ = sink_check(monkeypatch, capsys, "acme", "--json", "--base-url", hub.url)
    assert code == 1
    report = orjson.loads(out)
    assert (report["connection"], report["kind"], report["ok"]) == ("acme", "organization", False)
    assert [c["ok"] for c in report["checks"]] == [True, True, False]
    assert MEMBERS_ONLY_OAT not in out

    code, _, err = sink_check(monkeypatch, capsys, "nope")
    assert code == 2 and "no stored connection named 'nope'" in err


def test_check_help_and_usage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = help_text(capsys, monkeypatch, "check")
    assert "Exits 1 when any check fails." in text and "--base-url" in text
    assert "the following arguments are required: name" in usage_error(capsys, "check")


def test_check_of_an_unreachable_hub_fails_its_checks_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ConnectionStore().add(personal(base="http://127.0.0.1:9"))
    code, out, err = sink_check(monkeypatch, capsys, "alice-hub", "--json")
    report = orjson.loads(out)
    assert code == 1 and report["ok"] is False
    assert all(
        c["message"].startswith("Unable to reach DockerHub at http://127.0.0.1:9")
        for c in report["checks"]
    )
    assert "Traceback" not in err and ALICE_PAT not in out + err


# -- sink export ------------------------------------------------------------------------------


def test_cli_export(
    hub: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = ConnectionStore()
    store.add(
        new_connection(
            "organization", name="acme", identifier="acme", secret=ACME_OAT, base_url=hub.url
        )
    )
    code, out, err = sink(monkeypatch, capsys, "export", "teams")
    assert code == 0, err
    assert [orjson.loads(line)["name"] for line in out.splitlines()] == [
        "developers",
        "owners",
        "qa",
    ]
    assert "exported 3 teams to standard output" in err

    target = tmp_path / "push.csv"
    code, _, err = sink(
        monkeypatch,
        capsys,
        "export",
        "audit-log",
        "--connection",
        "acme",
        "--action",
        "repo.push",
        "--from",
        "2025-03-02",
        "--to",
        "2025-03-03",
        "--to",
        str(target),
    )
    assert code == 0, err
    assert len(read_back(target)) == 4

    code, _, err = sink(monkeypatch, capsys, "export", "teams", "--to", "teams.xlsx")
    assert code == 2 and "give an output file ending in .csv, .jsonl or .parquet" in err

    store.add(
        new_connection(
            "personal",
            name="alice",
            identifier="alice",
            secret=ALICE_PAT,
            base_url="https://hub.example.test",
        )
    )
    code, _, err = sink(monkeypatch, capsys, "export", "teams")
    assert code == 2 and "which connection? give --connection NAME (stored: acme, alice)" in err
    code, _, err = sink(
        monkeypatch,
        capsys,
        "export",
        "members",
        "-c",
        "alice",
        "--base-url",
        hub.url,
        "--namespace",
        "acme",
    )
    assert code == 2
    assert "token issued from personal access token is not allowed" in err
    assert "organization access token" in err
    assert ALICE_PAT not in err


def store_acme(hub: Simulator) -> None:
    ConnectionStore().add(
        new_connection(
            "organization", name="acme", identifier="acme", secret=ACME_OAT, base_url=hub.url
        )
    )


def test_export_to_a_date_and_a_file_in_either_order_and_on_stdout(
    hub: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store_acme(hub)
    target = tmp_path / "push.jsonl"
    argv = ["export", "audit-log", "--action", "repo.push", "--from", "2025-03-02"]
    code, _, err = sink(monkeypatch, capsys, *argv, "--to", str(target), "--to", "2025-03-03")
    assert code == 0, err
    assert len(read_back(target)) == 4  # as with the date given first (test_cli_export)
    assert f"to {target}" in err

    code, out, err = sink(monkeypatch, capsys, "export", "teams", "--to", "-", "--format", "csv")
    assert code == 0, err
    assert [row["name"] for row in csv.DictReader(io.StringIO(out))] == [
        "developers",
        "owners",
        "qa",
    ]
    assert "exported 3 teams to standard output" in err

    code, _, err = sink(monkeypatch, capsys, "export", "teams", "-o", str(tmp_path / "t.csv"))
    assert code == 0, err
    assert [row["name"] for row in read_back(tmp_path / "t.csv")] == ["developers", "owners", "qa"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["teams", "--format", "parquet"], "Parquet needs a file: give --to FILE.parquet"),
        (["repositories", "--page-size", "500"], "--page-size must be between 1 and 100"),
        (["audit-log", "--from", "notadate"], "'notadate' is not a date"),
        (["teams", "--to", "yesterday"], "--to 'yesterday': give an output file ending in"),
    ],
)
def test_export_refuses_bad_options_before_writing(
    hub: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    store_acme(hub)
    folder = tmp_path / "out"
    folder.mkdir()
    monkeypatch.chdir(folder)
    code, out, err = sink(monkeypatch, capsys, "export", *argv)
    assert code == 2
    assert err.startswith("sink: stopped: ") and message in err
    assert out == "" and "Traceback" not in err and ACME_OAT not in err
    assert list(folder.iterdir()) == []  # no file, not even a partial one


def test_export_without_a_stored_connection_says_how_to_add_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = sink(monkeypatch, capsys, "export", "teams")
    assert code == 2
    assert "which connection? give --connection NAME (stored: none; add one with" in err


def test_export_help_lists_every_export_and_usage_errors_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sink.read.export import EXPORTS

    text = help_text(capsys, monkeypatch, "export")
    squashed = "".join(text.split())  # argparse may wrap a line at a hyphen ("org-\ntokens")
    for name, (_, description) in EXPORTS.items():
        assert "".join(f"{name}: {description}".split()) in squashed
    assert "--to FILE|DATE" in text and "--teams" in text
    assert "invalid choice: 'nope'" in usage_error(capsys, "export", "nope")
    assert "invalid int value: 'many'" in usage_error(
        capsys, "export", "teams", "--page-size", "many"
    )


def test_export_to_a_missing_folder_is_an_error_not_a_traceback(
    hub: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store_acme(hub)
    code, _, err = sink(
        monkeypatch, capsys, "export", "teams", "--to", str(tmp_path / "no" / "t.csv")
    )
    assert code == 2 and str(tmp_path / "no") in err


def test_export_from_an_unreachable_hub_is_an_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ConnectionStore().add(
        new_connection(
            "organization",
            name="acme",
            identifier="acme",
            secret=ACME_OAT,
            base_url="http://127.0.0.1:9",
        )
    )
    code, _, err = sink(monkeypatch, capsys, "export", "teams")
    assert code == 2 and "127.0.0.1:9" in err and ACME_OAT not in err


def test_connection_without_an_action_shows_the_actions(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sink.cli.main import main

    assert main(["connection"]) == 2
    err = capsys.readouterr().err
    assert "usage: sink connection" in err
    assert all(action in err for action in ("add", "edit", "list", "show", "remove"))
