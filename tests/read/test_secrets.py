"""Where a connection's secret comes from (sink/read/secrets.py): env, file, stdin, a store."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from sink.config import ConnectionConfig
from sink.errors import ConfigError
from sink.read.connections import ConnectionStore, new_connection
from sink.read.credentials import Credentials
from sink.read.secrets import resolve
from tests.seed import ACME_OAT, ALICE_PASSWORD, ALICE_PAT

ENV = "SINK_TEST_CREDENTIALS_SECRET"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SINK_HOME", str(tmp_path / "sink-home"))
    monkeypatch.setenv("SINK_KEYRING", "off")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("SINK_KEY_FILE", raising=False)
    monkeypatch.delenv(ENV, raising=False)


def test_the_secret_from_the_environment_trimmed_and_its_kind_guessed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, f"  {ACME_OAT}\n")
    credentials = resolve(ConnectionConfig(identifier=" acme ", secret_env=ENV), tmp_path)
    assert credentials == Credentials("https://hub.docker.com", "acme", ACME_OAT, "oat")


def test_the_secret_from_a_file_relative_to_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "hub").write_text(ALICE_PAT + "\n", encoding="utf-8")
    config = ConnectionConfig(identifier="alice", secret_file="secrets/hub")
    credentials = resolve(config, tmp_path, base_url="http://127.0.0.1:47002")
    assert (credentials.secret, credentials.kind) == (ALICE_PAT, "pat")
    assert credentials.base_url == "http://127.0.0.1:47002"  # the destination's, not the default


def test_the_secret_from_the_first_line_of_stdin(tmp_path: Path) -> None:
    config = ConnectionConfig(identifier="alice", secret_stdin=True, kind="password")
    stdin = io.StringIO(f"{ALICE_PASSWORD}\nthe records follow\n")
    credentials = resolve(config, tmp_path, stdin=stdin)
    assert (credentials.secret, credentials.kind) == (ALICE_PASSWORD, "password")
    assert stdin.read() == "the records follow\n"  # only the first line is taken


def test_a_declared_kind_wins_over_the_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, ALICE_PAT)
    config = ConnectionConfig(identifier="alice", secret_env=ENV, kind="password")
    assert resolve(config, tmp_path).kind == "password"


@pytest.mark.parametrize("value", [None, "", "  \n"])
def test_an_unset_or_blank_environment_variable_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is not None:
        monkeypatch.setenv(ENV, value)
    with pytest.raises(ConfigError) as raised:
        resolve(ConnectionConfig(identifier="acme", secret_env=ENV), tmp_path)
    assert str(raised.value) == (
        f"the environment variable {ENV} (the connection's secret) is not set"
    )


def test_an_empty_file_or_stdin_is_an_empty_secret(tmp_path: Path) -> None:
    (tmp_path / "hub-secret").write_text("\n\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^the connection's secret is empty$"):
        resolve(ConnectionConfig(identifier="acme", secret_file="hub-secret"), tmp_path)
    config = ConnectionConfig(identifier="acme", secret_stdin=True)
    with pytest.raises(ConfigError, match=r"^the connection's secret is empty$"):
        resolve(config, tmp_path, stdin=io.StringIO(""))


def test_a_missing_secret_file_is_a_config_error_with_its_cause(tmp_path: Path) -> None:
    config = ConnectionConfig(identifier="acme", secret_file="nowhere/secret")
    with pytest.raises(ConfigError) as raised:
        resolve(config, tmp_path)
    where = tmp_path / "nowhere" / "secret"
    assert str(raised.value) == f"cannot read the secret file {where}: No such file or directory"
    assert isinstance(raised.value.__cause__, FileNotFoundError)


def test_a_connection_without_a_secret_source_says_which_to_give(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="give secret_env, secret_file, secret_stdin or name"):
        resolve(ConnectionConfig(identifier="acme"), tmp_path)


def test_a_stored_connection_by_name_with_the_destination_s_base_url(tmp_path: Path) -> None:
    ConnectionStore().add(
        new_connection(
            "organization",
            name="acme-prod",
            identifier="acme",
            secret=ACME_OAT,
            base_url="https://hub.example.test",
        )
    )
    stored = resolve(ConnectionConfig(name="acme-prod"), tmp_path)
    assert stored == Credentials("https://hub.example.test", "acme", ACME_OAT, "oat")
    moved = resolve(ConnectionConfig(name="acme-prod"), tmp_path, base_url="http://127.0.0.1:8")
    assert moved.base_url == "http://127.0.0.1:8"
    with pytest.raises(ConfigError, match="no stored connection named 'acme-dev'"):
        resolve(ConnectionConfig(name="acme-dev"), tmp_path)
