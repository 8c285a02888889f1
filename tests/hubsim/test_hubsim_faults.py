"""Fault injection through real HTTP: latency, rate limits, 429 bursts, 5xx shares, dropped
connections and slow successes, set at run time (Python API or control API)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import orjson
import pytest
from hubsim_creds import PASSWORDS, PATS

from sink.hubsim import FaultConfig, Simulator

Login = Callable[..., dict[str, str]]
CREATE = "/v2/namespaces/{namespace}/repositories"


def repo_names(sim: Simulator, namespace: str = "acme") -> list[str]:
    return sorted(r["name"] for r in sim.state()["repositories"] if r["namespace"] == namespace)


def creates_logged(sim: Simulator, name: str) -> int:
    return sum(
        1 for e in sim.state()["audit_logs"] if e["action"] == "repo.create" and e["name"] == name
    )


def test_added_latency_is_applied_and_logged(
    sim: Simulator, client: httpx.Client, login: Login
) -> None:
    headers = login("alice")
    sim.set_faults({"latency_ms": 200})
    started = time.monotonic()
    assert client.get("/v2/namespaces/acme/repositories", headers=headers).status_code == 200
    assert time.monotonic() - started >= 0.18
    assert sim.requests()[-1]["faults"] == ["latency:200ms"]
    sim.set_faults({"latency_ms": 10, "latency_jitter_ms": 40, "seed": 3})
    for _ in range(5):
        client.get("/v2/namespaces/acme/repositories", headers=headers)
    delays = [int(r["faults"][0].split(":")[1][:-2]) for r in sim.requests()[-5:]]
    assert all(10 <= d <= 50 for d in delays) and len(set(delays)) > 1


def test_rate_limit_per_credential_per_minute(
    sim: Simulator, client: httpx.Client, login: Login
) -> None:
    alice, bob = login("alice"), login("bob")
    sim.set_faults({"rate_limit": 3})
    seen = []
    for _ in range(4):
        response = client.get("/v2/namespaces/acme/repositories", headers=alice)
        seen.append(
            (
                response.status_code,
                response.headers["x-ratelimit-limit"],
                response.headers["x-ratelimit-remaining"],
            )
        )
        reset = int(response.headers["x-ratelimit-reset"])
    assert seen == [(200, "3", "2"), (200, "3", "1"), (200, "3", "0"), (429, "3", "0")]
    assert reset > time.time()
    throttled = client.get("/v2/namespaces/acme/repositories", headers=alice)
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    assert throttled.json()["detail"] == "Rate limit exceeded"
    # another credential has its own budget
    assert client.get("/v2/namespaces/acme/repositories", headers=bob).status_code == 200
    assert sim.requests()[-2]["faults"] == ["rate_limit"]


def test_a_short_fixed_window_quota_resets_at_its_advertised_end(
    sim: Simulator, client: httpx.Client, login: Login
) -> None:
    alice = login("alice")
    for _ in range(5):  # a loaded machine may let a window turn mid-attempt: start over
        sim.set_faults({"rate_limit": 2, "rate_window": 1})  # counters start over too
        time.sleep(1.02 - time.time() % 1)  # just after a whole second: the window's start
        answers = [client.get("/v2/namespaces/acme/repositories", headers=alice) for _ in range(3)]
        statuses = [r.status_code for r in answers]
        resets = {r.headers["x-ratelimit-reset"] for r in answers}
        if statuses == [200, 200, 429] and len(resets) == 1:
            break
    assert statuses == [200, 200, 429]
    reset = int(answers[0].headers["x-ratelimit-reset"])
    assert answers[2].headers["retry-after"] == "1"
    assert answers[2].headers["x-ratelimit-reset"] == str(reset)
    while time.time() < reset:
        time.sleep(0.02)
    before = time.time()
    fresh = client.get("/v2/namespaces/acme/repositories", headers=alice)
    after = time.time()
    assert fresh.status_code == 200 and fresh.headers["x-ratelimit-remaining"] == "1"
    # A new window starts on the whole second of its first request and lasts one second.
    assert int(before) + 1 <= int(fresh.headers["x-ratelimit-reset"]) <= int(after) + 1


def test_429s_without_rate_limit_headers(
    sim: Simulator, client: httpx.Client, login: Login
) -> None:
    alice = login("alice")
    sim.set_faults({"quota_headers": False, "throttle_rate": 0.5, "retry_after": 3, "seed": 4})
    # A client of its own: the conformance check of `client` wants the headers.
    with httpx.Client(base_url=sim.url) as bare:
        answers = [bare.get("/v2/namespaces/acme/repositories", headers=alice) for _ in range(20)]
    throttled = [r for r in answers if r.status_code == 429]
    assert 3 <= len(throttled) <= 17 and len(throttled) < len(answers)
    assert all(r.headers["retry-after"] == "3" for r in throttled)
    assert not any(k.startswith("x-ratelimit") for r in answers for k in r.headers)
    assert {tuple(e["faults"]) for e in sim.requests()[-20:]} == {(), ("throttle",)}


def test_unlimited_still_sends_consistent_headers(client: httpx.Client, login: Login) -> None:
    headers = login("alice")
    first = client.get("/v2/access-tokens", headers=headers).headers
    second = client.get("/v2/access-tokens", headers=headers).headers
    assert int(second["x-ratelimit-remaining"]) == int(first["x-ratelimit-remaining"]) - 1
    assert second["x-ratelimit-reset"] == first["x-ratelimit-reset"]


def test_bursts_of_429_on_one_endpoint(sim: Simulator, client: httpx.Client, login: Login) -> None:
    headers = login("alice")
    sim.set_faults(
        {
            "rules": [
                {
                    "method": "GET",
                    "path": "/v2/namespaces/*/repositories/*",
                    "burst_every": 4,
                    "burst_length": 2,
                    "retry_after": 2,
                }
            ]
        }
    )
    responses = [
        client.get("/v2/namespaces/acme/repositories/web", headers=headers) for _ in range(8)
    ]
    assert [r.status_code for r in responses] == [200, 200, 429, 429, 200, 200, 429, 429]
    assert responses[2].headers["retry-after"] == "2"
    assert "retry-after" not in responses[0].headers
    # other endpoints are untouched
    assert {
        client.get("/v2/namespaces/acme/repositories", headers=headers).status_code
        for _ in range(8)
    } == {200}


def test_error_share_is_reproducible_with_a_seed(
    sim: Simulator, client: httpx.Client, login: Login
) -> None:
    headers = login("alice")
    config = FaultConfig(error_rate=0.5, seed=42)

    def run() -> list[int]:
        sim.set_faults(config)
        return [client.get("/v2/access-tokens", headers=headers).status_code for _ in range(24)]

    first = run()
    assert first == run()
    assert set(first) >= {200} and set(first) - {200} <= {500, 502, 503}
    assert len(set(first)) >= 3
    sim.set_faults(config.model_copy(update={"seed": 43}))
    assert run() == first  # run() sets seed 42 again
    sim.set_faults(config.model_copy(update={"seed": 43}))
    other = [client.get("/v2/access-tokens", headers=headers).status_code for _ in range(24)]
    assert other != first


@pytest.mark.parametrize(("status", "kind"), [(500, "json"), (502, "html"), (503, "html")])
def test_injected_error_bodies(
    sim: Simulator, client: httpx.Client, login: Login, status: int, kind: str
) -> None:
    headers = login("alice")
    sim.set_faults({"error_rate": 1, "error_statuses": [status]})
    response = client.post(
        "/v2/namespaces/acme/repositories",
        headers=headers,
        json={"name": "never", "namespace": "acme"},
    )
    assert response.status_code == status
    assert kind in response.headers["content-type"]
    assert "x-ratelimit-limit" in response.headers
    assert "never" not in repo_names(sim)


def test_error_after_the_change_is_applied(
    sim: Simulator, client: httpx.Client, login: Login
) -> None:
    headers = login("alice")
    sim.set_faults(
        {
            "rules": [
                {
                    "method": "POST",
                    "path": CREATE,
                    "error_rate": 1,
                    "error_statuses": [503],
                    "apply_first": True,
                }
            ]
        }
    )
    body = {"name": "ambiguous", "namespace": "acme"}
    assert (
        client.post("/v2/namespaces/acme/repositories", headers=headers, json=body).status_code
        == 503
    )
    sim.set_faults(None)
    retry = client.post("/v2/namespaces/acme/repositories", headers=headers, json=body)
    assert retry.status_code == 409
    assert creates_logged(sim, "acme/ambiguous") == 1


def test_dropped_connection_before_the_change(
    sim: Simulator, client: httpx.Client, login: Login
) -> None:
    headers = login("alice")
    sim.set_faults({"rules": [{"method": "POST", "path": CREATE, "drop_rate": 1}]})
    with pytest.raises(httpx.TransportError) as caught:
        client.post(
            "/v2/namespaces/acme/repositories",
            headers=headers,
            json={"name": "dropped", "namespace": "acme"},
        )
    assert not isinstance(caught.value, httpx.TimeoutException)
    assert "dropped" not in repo_names(sim)
    entry = sim.requests()[-1]
    assert (entry["status"], entry["faults"]) == (None, ["drop"])
    # the simulator keeps serving
    assert client.get("/v2/namespaces/acme/repositories", headers=headers).status_code == 200


def test_dropped_connection_after_the_change(
    sim: Simulator, client: httpx.Client, login: Login
) -> None:
    headers = login("alice")
    sim.set_faults(
        {"rules": [{"method": "POST", "path": CREATE, "drop_rate": 1, "apply_first": True}]}
    )
    with pytest.raises(httpx.TransportError):
        client.post(
            "/v2/namespaces/acme/repositories",
            headers=headers,
            json={"name": "half-done", "namespace": "acme"},
        )
    assert creates_logged(sim, "acme/half-done") == 1


def test_slow_success_times_the_client_out_after_applying(
    sim: Simulator, client: httpx.Client, login: Login
) -> None:
    headers = login("alice")
    sim.set_faults({"rules": [{"method": "POST", "path": CREATE, "slow_rate": 1, "slow_ms": 1500}]})
    with pytest.raises(httpx.ReadTimeout):
        client.post(
            "/v2/namespaces/acme/repositories",
            headers=headers,
            timeout=0.3,
            json={"name": "slow-one", "namespace": "acme"},
        )
    assert creates_logged(sim, "acme/slow-one") == 1
    found = client.head("/v2/namespaces/acme/repositories/slow-one", headers=headers)
    assert found.status_code == 200
    # a patient client gets the 201 in the end
    sim.set_faults({"rules": [{"method": "POST", "path": CREATE, "slow_rate": 1, "slow_ms": 50}]})
    late = client.post(
        "/v2/namespaces/acme/repositories",
        headers=headers,
        json={"name": "slow-two", "namespace": "acme"},
    )
    assert late.status_code == 201
    assert sim.requests()[-1]["faults"] == ["slow:50ms"]


def test_faults_through_the_control_api(sim: Simulator, client: httpx.Client, login: Login) -> None:
    headers = login("alice")
    put = client.put("/_sim/faults", json={"error_rate": 1, "error_statuses": [500]})
    assert put.status_code == 200 and put.json()["error_rate"] == 1
    assert client.get("/_sim/faults").json()["error_statuses"] == [500]
    assert client.get("/v2/access-tokens", headers=headers).status_code == 500
    # the control API itself is never faulted
    assert client.get("/_sim/state").status_code == 200
    assert client.put("/_sim/faults", json={"error_rate": 2}).status_code == 400
    assert client.put("/_sim/faults", json={"unknown": 1}).status_code == 400
    assert client.post("/_sim/reset").status_code == 204
    assert client.get("/v2/access-tokens", headers=login("alice")).status_code == 200


def test_faults_from_the_constructor_and_reset() -> None:
    faults = {"rules": [{"path": "/v2/auth/token", "error_rate": 1, "error_statuses": [502]}]}
    with Simulator(faults=faults) as hub, httpx.Client(base_url=hub.url) as c:
        body = {"identifier": "alice", "secret": PASSWORDS["alice"]}
        assert c.post("/v2/auth/token", json=body).status_code == 502
        hub.set_faults(None)
        assert c.post("/v2/auth/token", json=body).status_code == 200
        hub.reset()  # back to the constructor's faults
        assert c.post("/v2/auth/token", json=body).status_code == 502


def test_request_log_names_credentials_without_secrets(
    sim: Simulator, client: httpx.Client, login: Login
) -> None:
    client.get("/v2/access-tokens", headers=login("alice", "pat"))
    client.post("/v2/auth/token", json={"identifier": "alice", "secret": "wrong"})
    client.get("/v2/namespaces/acme/repositories")
    log = sim.requests()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("POST", "/v2/auth/token", 200),
        ("GET", "/v2/access-tokens", 200),
        ("POST", "/v2/auth/token", 401),
        ("GET", "/v2/namespaces/acme/repositories", 200),
    ]
    assert [e["credential"] for e in log] == [
        "pat:alice:9a3a5abf-94f0-4ee2-92fe-810d90b09ce6",
        "pat:alice:9a3a5abf-94f0-4ee2-92fe-810d90b09ce6",
        "exchange:alice",
        "anonymous",
    ]
    text = orjson.dumps(log).decode() + orjson.dumps(client.get("/_sim/requests").json()).decode()
    assert PATS["alice"] not in text and PASSWORDS["alice"] not in text and "Bearer" not in text
    assert client.delete("/_sim/requests").status_code == 204
    assert sim.requests() == []
