"""The control API's request counts (``GET /_sim/requests/counts``) and the log's routes."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from sink.hubsim import Simulator, start_process

Login = Callable[..., dict[str, str]]
MEMBERS = "GET /v2/orgs/{org_name}/members"


def test_counts_are_per_method_and_spec_route(
    sim: Simulator, client: httpx.Client, login: Login
) -> None:
    alice = login("alice")
    for page in (1, 2):
        client.get("/v2/orgs/acme/members", params={"page": page}, headers=alice)
    client.get("/v2/orgs/acme/groups/developers/members", headers=alice)
    client.get("/v2/orgs/acme/groups/owners/members", headers=alice)
    client.post("/v2/orgs/acme/groups", json={"name": "qa"}, headers=alice)
    client.get("/v2/no/such/path", headers=alice)
    counts = sim.request_counts()
    assert counts["routes"] == {
        "POST /v2/auth/token": 1,
        MEMBERS: 2,
        "GET /v2/orgs/{org_name}/groups/{group_name}/members": 2,
        "POST /v2/orgs/{org_name}/groups": 1,
        "GET /v2/no/such/path": 1,  # no route: keyed by its own path
    }
    assert counts["total"] == 7
    gets = client.get("/_sim/requests/counts", params={"method": "get"}).json()
    assert gets == {"total": 5, "routes": {k: v for k, v in counts["routes"].items() if "GET" in k}}
    assert sim.request_counts("GET") == gets
    assert sim.requests()[1]["route"] == "/v2/orgs/{org_name}/members"
    assert sim.requests()[-1]["route"] is None


def test_refused_requests_count_under_their_route(
    sim: Simulator, client: httpx.Client, login: Login
) -> None:
    alice = login("alice")
    sim.set_faults({"rules": [{"path": "/v2/orgs/*/members", "throttle_rate": 1}]})
    assert client.get("/v2/orgs/acme/members", headers=alice).status_code == 429
    assert sim.request_counts("GET")["routes"] == {MEMBERS: 1}


def test_clearing_the_log_starts_the_counts_over(
    sim: Simulator, client: httpx.Client, login: Login
) -> None:
    client.get("/v2/orgs/acme/members", headers=login("alice"))
    sim.clear_requests()
    assert sim.request_counts() == {"total": 0, "routes": {}}
    assert client.get("/v2/orgs/acme", headers=login("alice")).status_code == 404
    assert sim.state()["orgs"][0]["name"] == "acme"  # the state stays as it was


def test_a_child_process_counts_too() -> None:
    with start_process() as child:
        httpx.get(child.url + "/v2/namespaces/acme/repositories")
        httpx.get(child.url + "/v2/namespaces/acme/repositories", params={"page_size": 1})
        assert child.request_counts("GET") == {
            "total": 2,
            "routes": {"GET /v2/namespaces/{namespace}/repositories": 2},
        }
        child.clear_requests()
        assert child.request_counts()["total"] == 0
