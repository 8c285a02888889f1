"""Token exchange, bearer checks and JWT expiry, through real HTTP."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import httpx
import orjson
import pytest
from hubsim_creds import OATS, PASSWORDS, PATS, exchange

from sink.hubsim import Simulator


def claims_of(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def source_of(token: str) -> dict[str, object]:
    source = claims_of(token)["https://hub.docker.com"]
    assert isinstance(source, dict)
    return source


@pytest.mark.parametrize(
    ("identifier", "secret", "kind", "scopes"),
    [
        ("alice", PASSWORDS["alice"], "password", ["repo:admin"]),
        ("alice", PATS["alice-read"], "pat", ["repo:read"]),
        ("bob", PATS["bob"], "pat", ["repo:write"]),
        ("acme", OATS["acme"], "oat", []),
    ],
)
def test_exchange_issues_a_jwt_naming_the_credential_kind(
    client: httpx.Client, identifier: str, secret: str, kind: str, scopes: list[str]
) -> None:
    token = exchange(client, identifier, secret)
    claims = claims_of(token)
    assert claims["sub"] == identifier
    assert isinstance(claims["exp"], int) and claims["exp"] > time.time() + 590
    source = source_of(token)
    assert source["source"]["type"] == kind  # type: ignore[index]
    assert source["scopes"] == scopes
    assert secret not in token


@pytest.mark.parametrize(
    ("identifier", "secret"),
    [
        ("alice", "wrong-password"),
        ("nobody", "whatever"),
        ("bob", PATS["alice"]),  # alice's PAT with bob's name
        ("globex", OATS["acme"]),  # acme's OAT with another org's name
        ("acme", "dckr_oat_notarealtokenatallnotarealtokenat"),
    ],
)
def test_wrong_credentials_get_401(client: httpx.Client, identifier: str, secret: str) -> None:
    response = client.post("/v2/auth/token", json={"identifier": identifier, "secret": secret})
    assert response.status_code == 401
    assert "incorrect" in response.json()["message"]


def test_exchange_body_is_validated(client: httpx.Client) -> None:
    response = client.post("/v2/auth/token", json={"identifier": "alice"})
    assert response.status_code == 400
    assert "secret" in response.json()["errinfo"]["fields"]
    json_type = {"Content-Type": "application/json"}
    assert client.post("/v2/auth/token", content=b"not json", headers=json_type).status_code == 400


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_json_body_without_the_json_content_type_is_refused(
    client: httpx.Client, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = b'{"identifier": "alice", "secret": "correct-horse-battery"}'
    response = client.post("/v2/auth/token", content=body, headers=headers)  # no type of its own
    assert response.status_code == 415
    error = response.json()
    assert "Unsupported media type" in error["message"] and error["errinfo"] is None
    assert "access_token" not in error
    json_type = {"Content-Type": "application/json; charset=utf-8"}
    assert client.post("/v2/auth/token", content=body, headers=json_type).status_code == 200


def test_deprecated_login_returns_token_and_detail_on_failure(client: httpx.Client) -> None:
    ok = client.post("/v2/users/login", json={"username": "alice", "password": PASSWORDS["alice"]})
    assert ok.status_code == 200
    assert source_of(ok.json()["token"])["source"]["type"] == "password"  # type: ignore[index]
    with_pat = client.post("/v2/users/login", json={"username": "bob", "password": PATS["bob"]})
    assert source_of(with_pat.json()["token"])["source"]["type"] == "pat"  # type: ignore[index]
    bad = client.post("/v2/users/login", json={"username": "alice", "password": "nope"})
    assert bad.status_code == 401
    assert bad.json() == {"detail": "Incorrect authentication credentials"}


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Basic YWxpY2U6cGFzcw==", "Bearer not.a.jwt", "Bearer abc"],
)
def test_missing_or_bad_bearer_gets_401(client: httpx.Client, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.get("/v2/access-tokens", headers=headers)
    assert response.status_code == 401


def test_tampered_jwt_gets_401(client: httpx.Client) -> None:
    token = exchange(client, "bob", PATS["bob"])
    head, _, sig = token.split(".")
    claims = claims_of(token)
    claims["sub"] = "alice"
    forged = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    response = client.get(
        "/v2/access-tokens", headers={"Authorization": f"Bearer {head}.{forged}.{sig}"}
    )
    assert response.status_code == 401


def test_jwt_from_another_simulator_gets_401(client: httpx.Client) -> None:
    with Simulator() as other, httpx.Client(base_url=other.url) as c:
        foreign = exchange(c, "alice", PASSWORDS["alice"])
    response = client.get("/v2/access-tokens", headers={"Authorization": f"Bearer {foreign}"})
    assert response.status_code == 401


def test_jwt_expires_after_its_ttl(sim: Simulator, client: httpx.Client) -> None:
    sim.app.hub.jwt_ttl = 1
    token = exchange(client, "alice", PATS["alice"])
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/v2/access-tokens", headers=headers).status_code == 200
    exp = claims_of(token)["exp"]
    assert isinstance(exp, int)
    time.sleep(max(0.0, exp - time.time()) + 0.05)
    expired = client.get("/v2/access-tokens", headers=headers)
    assert expired.status_code == 401
    assert expired.json()["message"] == "token expired"
    # a fresh exchange works again
    fresh = {"Authorization": f"Bearer {exchange(client, 'alice', PATS['alice'])}"}
    assert client.get("/v2/access-tokens", headers=fresh).status_code == 200


def test_jwt_ttl_can_be_set_through_the_control_api(sim: Simulator, client: httpx.Client) -> None:
    assert client.put("/_sim/config", json={"jwt_ttl": 5}).json() == {"jwt_ttl": 5}
    token = exchange(client, "alice", PASSWORDS["alice"])
    claims = claims_of(token)
    assert isinstance(claims["exp"], int) and isinstance(claims["iat"], int)
    assert claims["exp"] - claims["iat"] <= 6
    assert client.put("/_sim/config", json={"jwt_ttl": 0}).status_code == 400


def test_revoked_or_disabled_pat_stops_working(
    client: httpx.Client, login: Callable[..., dict[str, str]]
) -> None:
    password = login("alice")
    pat_headers = login("alice-read", "pat")
    assert client.get("/v2/access-tokens", headers=pat_headers).status_code == 200
    tokens = client.get("/v2/access-tokens", headers=password).json()["results"]
    read_only = next(t for t in tokens if t["token_label"] == "read only")
    patched = client.patch(
        f"/v2/access-tokens/{read_only['uuid']}", headers=password, json={"is_active": False}
    )
    assert patched.json()["is_active"] is False
    assert client.get("/v2/access-tokens", headers=pat_headers).status_code == 401
    refused = client.post(
        "/v2/auth/token", json={"identifier": "alice", "secret": PATS["alice-read"]}
    )
    assert refused.status_code == 401
    assert (
        client.delete(f"/v2/access-tokens/{read_only['uuid']}", headers=password).status_code == 204
    )
    assert client.get(f"/v2/access-tokens/{read_only['uuid']}", headers=password).status_code == 404


def test_expired_pat_cannot_be_exchanged() -> None:
    seed = {
        "users": [
            {
                "username": "eve",
                "password": "pw-of-eve-000",
                "tokens": [
                    {
                        "label": "old",
                        "token": "dckr_pat_Expired0000000000000000000",
                        "scopes": ["repo:read"],
                        "expires_at": "2020-01-01T00:00:00Z",
                    }
                ],
            }
        ],
    }
    with Simulator(seed) as hub, httpx.Client(base_url=hub.url) as c:
        secret = "dckr_pat_Expired0000000000000000000"
        response = c.post("/v2/auth/token", json={"identifier": "eve", "secret": secret})
        assert response.status_code == 401
        assert "expired" in response.json()["message"]


def test_anonymous_sees_public_repositories_only(client: httpx.Client) -> None:
    listed = client.get("/v2/namespaces/acme/repositories")
    assert listed.status_code == 200
    assert {r["name"] for r in listed.json()["results"]} == {"web"}
    assert client.get("/v2/namespaces/acme/repositories/web").status_code == 200
    assert client.get("/v2/namespaces/acme/repositories/api").status_code == 404
    assert (
        client.post(
            "/v2/namespaces/acme/repositories", json={"name": "x1", "namespace": "acme"}
        ).status_code
        == 401
    )
