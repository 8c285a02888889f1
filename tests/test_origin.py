"""Where requests go: base URLs are checked, and one place decides a destination's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sink.cli.main import main
from sink.destination import open_destination
from sink.errors import ConfigError
from sink.origin import base_url_problem, check_base_url, is_loopback, origin
from sink.read.connections import Connection, ConnectionStore
from sink.read.credentials import Credentials
from sink.read.secrets import resolve
from tests.seed import OAT

REFUSED = [
    "https://hub.docker.com@127.0.0.1:47002",  # user info: the request goes to 127.0.0.1
    "https://user:pass@hub.docker.com",
    "https://hub.docker.com%40evil.example",
    "https://hub.docker.com\\@evil.example",
    "https://hub.docker.com/v2",
    "https://hub.docker.com?x=1",
    "https://hub.docker.com#frag",
    "https:/hub.docker.com",
    "hub.docker.com",
    " https://hub.docker.com",
    "https://hub.docker.com ",
    "https://hub docker.com",
    "ftp://hub.docker.com",
    "file:///etc/passwd",
    "http://hub.docker.com",  # plain http off this machine
    "http://10.0.0.8:8080",
    "http://127.0.0.1.nip.io",
    "https://hub.docker.com:0",
    "https://hub.docker.com:65536",
    "https://[::1",
    "https://[zz::1]",
    "https://hub..docker.com",
]

ACCEPTED = {
    "https://hub.docker.com": "https://hub.docker.com",
    "https://hub.docker.com/": "https://hub.docker.com",
    "HTTPS://Hub.Docker.COM": "https://hub.docker.com",
    "https://hub.docker.com:443": "https://hub.docker.com",
    "https://hub.example.com:8443": "https://hub.example.com:8443",
    "http://127.0.0.1:47002": "http://127.0.0.1:47002",
    "http://127.9.9.9": "http://127.9.9.9",
    "http://localhost:80": "http://localhost",
    "http://[::1]:5000": "http://[::1]:5000",
    "https://[2001:db8::1]": "https://[2001:db8::1]",
}


@pytest.mark.parametrize("url", REFUSED)
def test_refuses_base_urls_that_could_send_the_credential_elsewhere(url: str) -> None:
    assert base_url_problem(url) is not None
    with pytest.raises(ConfigError):
        check_base_url(url)
    with pytest.raises(ConfigError):
        Credentials(url, "acme", OAT, "oat")


@pytest.mark.parametrize(("url", "normal"), ACCEPTED.items())
def test_accepts_and_normalises_scheme_and_host(url: str, normal: str) -> None:
    assert check_base_url(url) == normal
    assert Credentials(url, "acme", OAT, "oat").base_url == normal


def test_user_info_is_named_in_the_message() -> None:
    problem = base_url_problem("https://hub.docker.com@127.0.0.1:47002")
    assert problem is not None and "user info" in problem


def test_loopback_and_origin() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("[::1]") and is_loopback("localhost")
    assert not is_loopback("127.0.0.1.example.com") and not is_loopback("10.0.0.1")
    assert origin("https://hub.docker.com") == ("https", "hub.docker.com", 443)
    assert origin("http://127.0.0.1:9") == ("http", "127.0.0.1", 9)


def write(folder: Path, connection: dict[str, Any]) -> Path:
    config = {
        "connection": connection,
        "template": "create-repository",
        "settings": {"namespace": "acme"},
        "input": "repos.csv",
    }
    (folder / "repos.csv").write_text("name\nsite\n")
    path = folder / "dest.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_config_with_user_info_in_its_base_url_does_not_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "base_url": "https://hub.docker.com@127.0.0.1:47002",
            "identifier": "acme",
            "secret_env": "SINK_TEST_SECRET",
        },
    )
    with pytest.raises(ConfigError, match="user info"):
        open_destination(path)
    assert main(["validate", str(path)]) == 2


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ConnectionStore:
    monkeypatch.setenv("SINK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SINK_KEYRING", "off")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    store = ConnectionStore()
    store.add(Connection("rehearsal", "organization", "acme", OAT, "http://127.0.0.1:47002"))
    return store


def test_a_stored_connection_decides_where_requests_go(
    store: ConnectionStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, {"name": "rehearsal"})
    destination = open_destination(path)
    assert destination.base_url == "http://127.0.0.1:47002"
    credentials = resolve(
        destination.config.connection, destination.folder, base_url=destination.base_url
    )
    assert credentials.base_url == "http://127.0.0.1:47002"
    assert main(["validate", str(path)]) == 0
    assert "http://127.0.0.1:47002" in capsys.readouterr().out
    overridden = open_destination(path, base_url="http://127.0.0.1:5000")
    assert overridden.base_url == "http://127.0.0.1:5000"


def test_preview_shows_the_stored_connections_host(
    store: ConnectionStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, {"name": "rehearsal"})
    assert main(["preview", str(path), "--format", "http"]) == 0
    out = capsys.readouterr().out
    assert "http://127.0.0.1:47002/v2/namespaces/acme/repositories" in out
    assert "hub.docker.com" not in out


def test_a_config_base_url_that_contradicts_the_stored_one_is_refused(
    store: ConnectionStore, tmp_path: Path
) -> None:
    path = write(tmp_path, {"name": "rehearsal", "base_url": "https://hub.docker.com"})
    with pytest.raises(ConfigError, match="differs"):
        open_destination(path)
