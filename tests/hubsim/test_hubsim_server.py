"""Starting and stopping the simulator: thread, child process, ``python -m sink.hubsim``;
seeds (default, sample, dict, state dumps)."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from hubsim_creds import PASSWORDS, exchange

from sink.errors import ConfigError
from sink.hubsim import Simulator, start_process
from sink.hubsim.seed import default_seed_text

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "users": [{"username": "solo", "password": "solo-password-1"}],
    "orgs": [{"name": "tiny", "members": {"solo": "owner"}}],
    "repositories": [{"namespace": "tiny", "name": "one", "is_private": True}],
}


def test_sample_seed_is_the_default_seed() -> None:
    assert (ROOT / "samples" / "hubsim-seed.yaml").read_text("utf-8") == default_seed_text()


def test_simulator_serves_until_stopped() -> None:
    sim = Simulator(TINY).start()
    try:
        with httpx.Client(base_url=sim.url) as c:
            token = exchange(c, "solo", "solo-password-1")
            listed = c.get(
                "/v2/namespaces/tiny/repositories", headers={"Authorization": f"Bearer {token}"}
            ).json()
            assert [r["name"] for r in listed["results"]] == ["one"]
    finally:
        sim.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(sim.url + "/_sim/health", timeout=2)


def test_state_dump_is_a_seed(sim: Simulator, client: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {exchange(client, 'alice', PASSWORDS['alice'])}"}
    client.post("/v2/orgs/acme/groups", headers=headers, json={"name": "dumped"})
    client.post(
        "/v2/namespaces/acme/repositories",
        headers=headers,
        json={"name": "dumped", "namespace": "acme"},
    )
    dump = sim.state()
    with Simulator(dump) as copy:
        assert copy.state() == dump


@pytest.mark.parametrize(
    "seed",
    [
        {"users": "nobody"},
        {"orgs": [{"name": "x1", "members": {"ghost": "owner"}}]},
        {
            "users": [{"username": "a1", "password": "p"}],
            "orgs": [{"name": "o1", "members": {"a1": "member"}}],
        },
        {"repositories": [{"namespace": "nobody", "name": "r1"}]},
    ],
)
def test_bad_seed_is_a_config_error(seed: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Simulator(seed)


def test_seed_file_formats(tmp_path: Path) -> None:
    as_json = tmp_path / "seed.json"
    as_json.write_text(yaml.safe_dump(TINY), "utf-8")  # YAML is not JSON: refused
    with pytest.raises(ConfigError):
        Simulator(as_json)
    as_json.write_text(__import__("json").dumps(TINY), "utf-8")
    assert Simulator(as_json).state()["orgs"][0]["name"] == "tiny"
    with pytest.raises(ConfigError):
        Simulator(tmp_path / "missing.yaml")


def test_start_process_runs_in_a_child() -> None:
    with start_process(
        TINY,
        faults={"rules": [{"path": "/v2/auth/token", "error_rate": 1, "error_statuses": [503]}]},
    ) as child:
        assert child.pid != 0
        body = {"identifier": "solo", "secret": "solo-password-1"}
        assert httpx.post(child.url + "/v2/auth/token", json=body).status_code == 503
        child.set_faults(None)
        assert httpx.post(child.url + "/v2/auth/token", json=body).status_code == 200
        assert [r["status"] for r in child.requests()] == [503, 200]
        assert child.state()["orgs"][0]["name"] == "tiny"
        child.reset()
        assert child.requests() == []
    assert child.process.returncode == 0


def test_module_cli_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sink.hubsim", "--help"], capture_output=True, text=True, check=True
    )
    options = ("--host", "--port", "--seed", "--generate", "--latency-ms", "--faults", "--jwt-ttl")
    for option in options:
        assert option in result.stdout


def test_module_cli_serves_and_stops_on_sigterm() -> None:
    command = [
        sys.executable,
        "-m",
        "sink.hubsim",
        "--port",
        "0",
        "--seed",
        str(ROOT / "samples" / "hubsim-seed.yaml"),
        "--faults",
        '{"latency_ms": 1}',
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("Docker Hub simulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        response = httpx.post(
            url + "/v2/auth/token", json={"identifier": "alice", "secret": PASSWORDS["alice"]}
        )
        assert response.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


def _serve_and_count_members(*options: str) -> int:
    command = [sys.executable, "-m", "sink.hubsim", "--port", "0", *options]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        url = line.rsplit(" ", 1)[1]
        token = httpx.post(
            url + "/v2/auth/token", json={"identifier": "alice", "secret": PASSWORDS["alice"]}
        ).json()["access_token"]
        members = httpx.get(
            url + "/v2/orgs/acme/members", headers={"Authorization": f"Bearer {token}"}
        ).json()["count"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    assert isinstance(members, int)
    return members


def test_module_cli_generates_a_large_state() -> None:
    assert _serve_and_count_members("--seed", "large") == 5004
    sized = _serve_and_count_members("--generate", '{"members": 120, "teams": 3}')
    assert sized == 124  # on the default seed


def test_module_cli_reports_a_bad_generate_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sink.hubsim", "--generate", '{"members": "many"}'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "invalid simulator seed" in result.stderr
    assert "Traceback" not in result.stderr


def test_module_cli_reports_a_bad_seed(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("users: 3\n", "utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "sink.hubsim", "--seed", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "invalid simulator seed" in result.stderr


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_dropped_connection_under_each_http_implementation(http: str) -> None:
    if http == "httptools":
        pytest.importorskip("httptools")
    faults = {"rules": [{"path": "/v2/auth/token", "drop_rate": 1}]}
    with Simulator(TINY, faults=faults, http=http) as sim, httpx.Client(base_url=sim.url) as c:
        with pytest.raises(httpx.TransportError) as caught:
            c.post("/v2/auth/token", json={"identifier": "solo", "secret": "solo-password-1"})
        assert not isinstance(caught.value, httpx.TimeoutException)
        assert c.get("/_sim/health").json() == {"ok": True}


def leave_mid_request(url: str, token: str, path: str) -> None:
    """Send a request's headers and half its body, then close the connection."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(head.encode() + b'{"name": "qa"')
        time.sleep(0.2)  # the route is waiting for the rest of the body


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_a_client_leaving_mid_request_is_one_quiet_line(
    http: str, caplog: pytest.LogCaptureFixture
) -> None:
    if http == "httptools":
        pytest.importorskip("httptools")
    caplog.set_level(logging.INFO)
    with Simulator(TINY, http=http) as sim, httpx.Client(base_url=sim.url) as c:
        token = exchange(c, "solo", "solo-password-1")
        leave_mid_request(sim.url, token, "/v2/orgs/tiny/groups")
        for _ in range(200):  # the server notices the disconnection soon after
            if any("left before" in r.getMessage() for r in caplog.records):
                break
            time.sleep(0.01)
        assert c.get("/_sim/health").json() == {"ok": True}
        assert sim.requests()[-1]["status"] is None
    lines = [r for r in caplog.records if "left before its request was read" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO and lines[0].exc_info is None
    assert "POST /v2/orgs/tiny/groups" in lines[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_module_cli_prints_one_line_for_a_client_that_left() -> None:
    command = [sys.executable, "-m", "sink.hubsim", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        url = process.stdout.readline().decode().strip().rsplit(" ", 1)[1]
        with httpx.Client(base_url=url) as c:
            token = exchange(c, "alice", PASSWORDS["alice"])
            leave_mid_request(url, token, "/v2/orgs/acme/groups")
            time.sleep(0.3)
            assert c.get("/_sim/health").status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        errors = process.stderr.read().decode()
    assert "Traceback" not in errors and "ClientDisconnect" not in errors
    assert errors.count("hubsim: ") == 1
    assert "left before its request was read: POST /v2/orgs/acme/groups" in errors
