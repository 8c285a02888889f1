"""Stored connections: validation messages, encryption at rest, edit (the CLI's commands:
tests/cli/test_read.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import orjson
import pytest
from cryptography.fernet import Fernet, InvalidToken

from sink.errors import ConfigError
from sink.hubsim import Simulator
from sink.read.connections import (
    INSTANCE_NAME_REQUIRED,
    REQUIRED,
    Connection,
    ConnectionStore,
    edited_connection,
    key_file_path,
    load_credentials,
    new_connection,
    store_folder,
)
from sink.read.credentials import Credentials
from tests.seed import ACME_OAT, ALICE_PAT

OTHER_PAT = "dckr_pat_Zq81nVw0CkTa2mYdLr5bHs7xJe"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
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


def message_of(excinfo: pytest.ExceptionInfo[ConfigError]) -> str:
    return str(excinfo.value)


# -- validation ---------------------------------------------------------------------------------


def test_username_and_instance_name_are_trimmed() -> None:
    connection = new_connection(
        "personal", name="  prod hub  ", identifier="  alice ", secret=f" {ALICE_PAT}\n"
    )
    assert (connection.name, connection.identifier, connection.secret) == (
        "prod hub",
        "alice",
        ALICE_PAT,
    )
    assert connection.base_url == "https://hub.docker.com"


@pytest.mark.parametrize(
    ("field", "label"),
    [("identifier", "Username"), ("secret", "Personal Access Token"), ("name", "Instance Name")],
)
def test_an_empty_field_says_this_field_is_required(field: str, label: str) -> None:
    values = {"name": "prod", "identifier": "alice", "secret": ALICE_PAT, field: ""}
    with pytest.raises(ConfigError) as excinfo:
        new_connection("personal", **values)
    assert message_of(excinfo) == f"{label}: This field is required"
    assert REQUIRED == "This field is required"


def test_a_username_of_only_spaces_is_rejected() -> None:
    with pytest.raises(ConfigError) as excinfo:
        new_connection("personal", name="prod", identifier="   ", secret=ALICE_PAT)
    assert "Username is required." in message_of(excinfo)


def test_a_missing_token_is_rejected() -> None:
    with pytest.raises(ConfigError) as excinfo:
        new_connection("personal", name="prod", identifier="alice", secret=None)
    assert "Personal Access Token is required." in message_of(excinfo)


def test_an_instance_name_of_only_spaces_is_rejected() -> None:
    with pytest.raises(ConfigError) as excinfo:
        new_connection("personal", name=" \t ", identifier="alice", secret=ALICE_PAT)
    assert "Instance Name is required to distinguish multiple DockerHub connections." in (
        message_of(excinfo)
    )
    assert INSTANCE_NAME_REQUIRED == (
        "Instance Name is required to distinguish multiple DockerHub connections."
    )


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as excinfo:
        new_connection("personal", name="  ", identifier="  ", secret=None)
    assert message_of(excinfo) == (
        "Username is required. Personal Access Token is required. "
        "Instance Name is required to distinguish multiple DockerHub connections."
    )


def test_organization_fields_are_checked_likewise() -> None:
    with pytest.raises(ConfigError) as excinfo:
        new_connection("organization", name="acme", identifier="  ", secret="  ")
    assert message_of(excinfo) == (
        "Organization Name is required. Organization Access Token is required."
    )
    with pytest.raises(ConfigError) as excinfo:
        new_connection("organization", name="acme", identifier="", secret=ACME_OAT)
    assert message_of(excinfo) == "Organization Name: This field is required"


def test_a_token_of_the_other_kind_is_refused() -> None:
    with pytest.raises(ConfigError, match="--kind organization"):
        new_connection("personal", name="x", identifier="alice", secret=ACME_OAT)
    with pytest.raises(ConfigError, match="--kind personal"):
        new_connection("organization", name="x", identifier="acme", secret=ALICE_PAT)


def test_a_bad_base_url_or_kind_is_refused() -> None:
    with pytest.raises(ConfigError, match="scheme and host only"):
        new_connection(
            "personal", name="x", identifier="alice", secret=ALICE_PAT, base_url="hub.docker.com/v2"
        )
    with pytest.raises(ConfigError, match="unknown connection kind 'robot'"):
        new_connection("robot", name="x", identifier="alice", secret=ALICE_PAT)


# -- edit ---------------------------------------------------------------------------------------


def test_edit_keeps_blank_fields() -> None:
    stored = personal(base="http://127.0.0.1:9")
    renamed = edited_connection(
        stored, name="  renamed  ", identifier="", secret="   ", base_url=None
    )
    assert renamed == Connection("renamed", "personal", "alice", ALICE_PAT, "http://127.0.0.1:9")
    retokened = edited_connection(stored, secret=OTHER_PAT)
    assert (retokened.name, retokened.secret) == ("alice-hub", OTHER_PAT)


def test_edit_without_a_value_for_a_required_field_is_rejected() -> None:
    org = new_connection("organization", name="acme", identifier="acme", secret=ACME_OAT)
    with pytest.raises(ConfigError) as excinfo:
        edited_connection(org, kind="personal", identifier="alice")
    assert message_of(excinfo) == (
        "Username, Personal Access Token, and Instance Name are required."
    )
    with pytest.raises(ConfigError) as excinfo:
        edited_connection(personal(), kind="organization")
    assert message_of(excinfo) == (
        "Organization Name, Organization Access Token, and Instance Name are required."
    )


def test_edit_changes_kind_with_new_values() -> None:
    edited = edited_connection(personal(), kind="organization", identifier="acme", secret=ACME_OAT)
    assert (edited.kind, edited.identifier, edited.secret, edited.name) == (
        "organization",
        "acme",
        ACME_OAT,
        "alice-hub",
    )


# -- the store ----------------------------------------------------------------------------------


def test_store_folder_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SINK_HOME", str(tmp_path / "a"))
    assert store_folder() == tmp_path / "a"
    monkeypatch.delenv("SINK_HOME")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert store_folder() == tmp_path / "xdg" / "sink"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert store_folder() == tmp_path / "home" / ".config" / "sink"


def test_secrets_are_encrypted_at_rest(home: Path, key_file: Path) -> None:
    store = ConnectionStore()
    store.add(personal())
    store.add(new_connection("organization", name="acme", identifier="acme", secret=ACME_OAT))
    raw = (home / "connections.json").read_bytes()
    assert ALICE_PAT.encode() not in raw and ACME_OAT.encode() not in raw
    assert b"FvTMFWrwCWop3eZI7ZJnPH49XBd" not in raw  # not even without its prefix
    doc = orjson.loads(raw)
    assert doc["key"] == "file"
    assert doc["key_file"] == str(key_file)
    assert sorted(p.name for p in home.iterdir()) == ["connections.json"]  # the key is apart
    key = key_file.read_bytes().strip()
    token = doc["connections"]["alice-hub"]["secret"]
    assert Fernet(key).decrypt(token.encode()).decode() == ALICE_PAT
    for path in (key_file, home / "connections.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert store.get("alice-hub").secret == ALICE_PAT
    assert store.get("acme").credentials() == Credentials(
        "https://hub.docker.com", "acme", ACME_OAT, "oat"
    )


def test_a_wrong_key_fails_clearly(key_file: Path) -> None:
    ConnectionStore().add(personal())
    key_file.write_bytes(Fernet.generate_key())
    with pytest.raises(ConfigError) as excinfo:
        ConnectionStore().get("alice-hub")
    message = message_of(excinfo)
    assert message.startswith(
        "cannot decrypt the stored secret of connection 'alice-hub': the key does not match"
    )
    assert str(key_file) in message and ALICE_PAT not in message


def test_a_missing_key_fails_clearly(key_file: Path) -> None:
    ConnectionStore().add(personal())
    key_file.unlink()
    with pytest.raises(ConfigError, match="the key is missing"):
        ConnectionStore().get("alice-hub")


class FakeKeyring:
    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str] = {}

    def get_password(self, service_name: str, username: str) -> str | None:
        return self.values.get((service_name, username))

    def set_password(self, service_name: str, username: str, password: str) -> None:
        self.values[(service_name, username)] = password


def test_the_key_goes_to_the_keyring_when_there_is_one(home: Path, key_file: Path) -> None:
    ring = FakeKeyring()
    ConnectionStore(keyring=ring).add(personal())
    assert not (home / "key").exists() and not key_file.exists()
    assert orjson.loads((home / "connections.json").read_bytes())["key"] == "keyring"
    [(service, _)] = ring.values
    assert service == "sink"
    assert ConnectionStore(keyring=ring).get("alice-hub").secret == ALICE_PAT
    with pytest.raises(ConfigError, match="OS keyring, which is not available"):
        ConnectionStore(keyring=None).get("alice-hub")
    ring.values = {k: Fernet.generate_key().decode() for k in ring.values}
    with pytest.raises(ConfigError, match=r"the key does not match .*OS keyring entry"):
        ConnectionStore(keyring=ring).get("alice-hub")


def test_the_key_file_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SINK_KEY_FILE", str(tmp_path / "keys" / "mine.key"))
    assert key_file_path() == tmp_path / "keys" / "mine.key"
    monkeypatch.delenv("SINK_KEY_FILE")
    assert key_file_path() == tmp_path / "state" / "sink" / "connections.key"
    monkeypatch.delenv("XDG_STATE_HOME")
    # A relocated store (SINK_HOME) keeps its key beside it, never in it.
    assert key_file_path() == tmp_path / "sink-home-key" / "connections.key"
    monkeypatch.delenv("SINK_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert key_file_path() == tmp_path / "h" / ".local" / "state" / "sink" / "connections.key"


def test_without_xdg_state_the_key_sits_beside_sink_home(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_STATE_HOME")
    ConnectionStore().add(personal())
    key = tmp_path / "sink-home-key" / "connections.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert not (home / "key").exists()
    assert ConnectionStore().get("alice-hub").secret == ALICE_PAT


def test_a_key_file_others_can_read_is_refused(key_file: Path) -> None:
    ConnectionStore().add(personal())
    key_file.chmod(0o644)
    with pytest.raises(ConfigError, match=r"mode 0644: group or others may read it") as caught:
        ConnectionStore().get("alice-hub")
    assert f"chmod 600 {key_file}" in message_of(caught)
    key_file.chmod(0o600)
    assert ConnectionStore().get("alice-hub").secret == ALICE_PAT


def test_a_key_file_owned_by_someone_else_is_refused(
    key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ConnectionStore().add(personal())
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(key_file).st_uid + 1)
    with pytest.raises(ConfigError, match="belongs to another user"):
        ConnectionStore().get("alice-hub")


def test_a_key_file_that_is_a_symlink_is_refused(key_file: Path, tmp_path: Path) -> None:
    ConnectionStore().add(personal())
    moved = tmp_path / "elsewhere.key"
    key_file.rename(moved)
    key_file.symlink_to(moved)
    with pytest.raises(ConfigError, match="symbolic link"):
        ConnectionStore().get("alice-hub")


def test_a_key_file_inside_the_store_folder_is_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SINK_KEY_FILE", str(home / "my.key"))
    with pytest.raises(ConfigError, match="inside the connection store's folder"):
        ConnectionStore().add(personal())
    assert not (home / "my.key").exists()


def test_a_keyring_that_refuses_the_key_falls_back_to_the_key_file(key_file: Path) -> None:
    class LockedKeyring(FakeKeyring):
        def set_password(self, service_name: str, username: str, password: str) -> None:
            raise RuntimeError("the keyring is locked")

    said: list[str] = []
    ConnectionStore(keyring=LockedKeyring(), notify=said.append).add(personal())
    assert key_file.exists() and str(key_file) in said[0]
    assert ConnectionStore(keyring=LockedKeyring()).get("alice-hub").secret == ALICE_PAT


def legacy_store(home: Path) -> bytes:
    """A store as earlier versions wrote it: the key in the file ``key`` in the store folder."""
    home.mkdir(parents=True)
    key = Fernet.generate_key()
    (home / "key").write_bytes(key + b"\n")
    (home / "key").chmod(0o600)
    doc = {
        "version": 1,
        "key": "file",
        "connections": {
            "alice-hub": {
                "kind": "personal",
                "identifier": "alice",
                "base_url": "https://hub.docker.com",
                "secret": Fernet(key).encrypt(ALICE_PAT.encode()).decode(),
                "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2024-01-01T00:00:00Z",
            }
        },
    }
    (home / "connections.json").write_bytes(orjson.dumps(doc))
    return key


def test_a_key_in_the_store_folder_is_moved_out(home: Path, key_file: Path) -> None:
    old = legacy_store(home)
    said: list[str] = []
    store = ConnectionStore(notify=said.append)
    assert store.get("alice-hub").secret == ALICE_PAT
    assert not (home / "key").exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    [message] = said
    assert message.startswith(f"moved the key of the connection store {home / 'connections.json'}")
    assert str(key_file) in message and ALICE_PAT not in message
    raw = (home / "connections.json").read_bytes()
    doc = orjson.loads(raw)
    assert (doc["key"], doc["key_file"]) == ("file", str(key_file))
    token = doc["connections"]["alice-hub"]["secret"].encode()
    with pytest.raises(InvalidToken):
        Fernet(old).decrypt(token)  # the old key, wherever copies of it are, opens nothing now
    assert ConnectionStore(notify=said.append).get("alice-hub").secret == ALICE_PAT
    assert len(said) == 1


def test_a_key_in_the_store_folder_moves_to_the_keyring(home: Path, key_file: Path) -> None:
    legacy_store(home)
    ring = FakeKeyring()
    said: list[str] = []
    ConnectionStore(keyring=ring, notify=said.append).add(
        new_connection("organization", name="acme", identifier="acme", secret=ACME_OAT)
    )
    assert not (home / "key").exists() and not key_file.exists()
    assert "OS keyring" in said[0]
    store = ConnectionStore(keyring=ring)
    assert store.get("alice-hub").secret == ALICE_PAT
    assert store.get("acme").secret == ACME_OAT


def test_names_are_unique_and_rename_keeps_the_secret() -> None:
    store = ConnectionStore()
    store.add(personal())
    with pytest.raises(ConfigError, match="already exists"):
        store.add(personal())
    stored = store.get("alice-hub")
    store.replace("alice-hub", edited_connection(stored, name="alice"))
    assert store.names() == ["alice"]
    assert store.get("alice").secret == ALICE_PAT
    store.remove("alice")
    with pytest.raises(ConfigError, match="no stored connection named 'alice'"):
        store.get("alice")


def test_load_credentials_for_configs(hub: Simulator) -> None:
    ConnectionStore().add(personal(base="https://hub.example.test"))
    assert load_credentials("alice-hub") == Credentials(
        "https://hub.example.test", "alice", ALICE_PAT, "pat"
    )
    assert load_credentials("alice-hub", base_url=hub.url).base_url == hub.url
    with pytest.raises(ConfigError, match="no stored connection named 'nope'"):
        load_credentials("nope")
