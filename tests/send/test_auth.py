"""HubAuth: token exchange, caching, refresh, one exchange at a time, secrets kept out."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable

import httpx
import pytest

from sink.errors import CredentialsError, RetryLater
from sink.outputs.redact import Redactor
from sink.send.auth import HubAuth, jwt_claims, token_url_for

BASE = "https://hub.example.test"
SECRET = "dckr_pat_7fK2mQ9xWbL4nR8vT1yZ3cH6jD0sA5eU"
USER = "octo"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_jwt(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


class FakeHub:
    """Token endpoint plus one protected endpoint, with knobs for the tests."""

    def __init__(self, clock: Callable[[], float], lifetime: float = 600.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.exchanges = 0
        self.valid: set[str] = set()
        self.refuse_secret = False
        self.exchange_status = 200
        self.reject_tokens: set[str] = set()
        self.calls: list[str] = []
        self.exchange_pause: asyncio.Event | None = None

    def issue(self) -> str:
        self.exchanges += 1
        now = self.clock()
        token = make_jwt(
            {"sub": USER, "iat": int(now), "exp": int(now + self.lifetime), "n": self.exchanges}
        )
        self.valid.add(token)
        return token

    def token_response(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if self.exchange_status != 200:
            return httpx.Response(self.exchange_status, json={"message": "unavailable"})
        if body != {"identifier": USER, "secret": SECRET} or self.refuse_secret:
            # A careless server that echoes what it was sent.
            return httpx.Response(
                401, json={"message": f"bad credentials for {USER} / {body['secret']}"}
            )
        return httpx.Response(200, json={"access_token": self.issue()})

    def api_response(self, request: httpx.Request) -> httpx.Response:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ")
        self.calls.append(token)
        if token not in self.valid or token in self.reject_tokens:
            return httpx.Response(401, json={"message": "unauthorized"})
        return httpx.Response(200, json={"ok": True})

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/auth/token":
            return self.token_response(request)
        return self.api_response(request)

    async def async_handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/auth/token" and self.exchange_pause is not None:
            await self.exchange_pause.wait()
        for _ in range(3):
            await asyncio.sleep(0)  # let other requests interleave
        return self.handler(request)


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_auth(clock: Clock, **kwargs: object) -> HubAuth:
    return HubAuth(USER, SECRET, token_url=token_url_for(BASE), clock=clock, **kwargs)  # type: ignore[arg-type]


def async_client(hub: FakeHub, auth: HubAuth) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=BASE, auth=auth, transport=httpx.MockTransport(hub.async_handler)
    )


def test_token_url_and_claims() -> None:
    assert token_url_for(BASE + "/") == BASE + "/v2/auth/token"
    assert jwt_claims(make_jwt({"exp": 5})) == {"exp": 5}
    assert jwt_claims("not-a-jwt") == {}
    assert jwt_claims("a.!!!.c") == {}


@pytest.mark.anyio
async def test_exchanges_once_and_caches_the_token() -> None:
    clock = Clock()
    hub = FakeHub(clock)
    auth = make_auth(clock)
    async with async_client(hub, auth) as client:
        for _ in range(5):
            response = await client.get("/v2/namespaces/octo/repositories")
            assert response.status_code == 200
    assert hub.exchanges == 1
    assert auth.exchanges == 1
    assert len(set(hub.calls)) == 1


@pytest.mark.anyio
async def test_exchanges_again_before_the_token_expires() -> None:
    clock = Clock()
    hub = FakeHub(clock, lifetime=600)
    auth = make_auth(clock, refresh_margin=60)
    async with async_client(hub, auth) as client:
        await client.get("/v2/x")
        clock.now += 539  # 61 s before expiry: still good
        await client.get("/v2/x")
        assert hub.exchanges == 1
        clock.now += 2  # 59 s before expiry: due
        await client.get("/v2/x")
        assert hub.exchanges == 2
    assert hub.calls[0] == hub.calls[1] != hub.calls[2]


@pytest.mark.anyio
async def test_short_lived_tokens_are_refreshed_at_half_life_not_every_request() -> None:
    clock = Clock()
    hub = FakeHub(clock, lifetime=10)  # shorter than the refresh margin
    auth = make_auth(clock, refresh_margin=60)
    async with async_client(hub, auth) as client:
        await client.get("/v2/x")
        await client.get("/v2/x")
        clock.now += 4
        await client.get("/v2/x")
        assert hub.exchanges == 1
        clock.now += 2
        await client.get("/v2/x")
        assert hub.exchanges == 2


@pytest.mark.anyio
async def test_expiry_is_reckoned_from_the_token_lifetime_not_the_local_clock() -> None:
    clock = Clock()
    hub = FakeHub(Clock(clock.now - 3600), lifetime=600)  # the server's clock is an hour behind
    auth = make_auth(clock, refresh_margin=60)
    async with async_client(hub, auth) as client:
        await client.get("/v2/x")
        await client.get("/v2/x")
    assert hub.exchanges == 1


@pytest.mark.anyio
async def test_a_token_without_exp_lives_the_documented_ten_minutes() -> None:
    clock = Clock()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/auth/token":
            return httpx.Response(200, json={"access_token": "opaque-token-value"})
        return httpx.Response(200)

    auth = make_auth(clock, refresh_margin=60)
    async with httpx.AsyncClient(auth=auth, transport=httpx.MockTransport(handler)) as client:
        await client.get(BASE + "/v2/x")
        clock.now += 530
        await client.get(BASE + "/v2/x")
        assert auth.exchanges == 1
        clock.now += 20
        await client.get(BASE + "/v2/x")
        assert auth.exchanges == 2


@pytest.mark.anyio
async def test_one_exchange_for_fifty_concurrent_requests() -> None:
    clock = Clock()
    hub = FakeHub(clock)
    hub.exchange_pause = asyncio.Event()
    auth = make_auth(clock)
    async with async_client(hub, auth) as client:
        tasks = [asyncio.create_task(client.get(f"/v2/x/{n}")) for n in range(50)]
        for _ in range(10):
            await asyncio.sleep(0)  # every request is now waiting for the one exchange
        hub.exchange_pause.set()
        responses = await asyncio.gather(*tasks)
    assert [r.status_code for r in responses] == [200] * 50
    assert hub.exchanges == 1
    assert len(set(hub.calls)) == 1


@pytest.mark.anyio
async def test_a_401_exchanges_again_once_and_succeeds() -> None:
    clock = Clock()
    hub = FakeHub(clock)
    auth = make_auth(clock)
    async with async_client(hub, auth) as client:
        await client.get("/v2/x")
        hub.reject_tokens.add(hub.calls[0])  # Hub forgot the token before it expired
        response = await client.get("/v2/x")
    assert response.status_code == 200
    assert hub.exchanges == 2


@pytest.mark.anyio
async def test_concurrent_401s_share_one_new_exchange() -> None:
    clock = Clock()
    hub = FakeHub(clock)
    auth = make_auth(clock)
    async with async_client(hub, auth) as client:
        await client.get("/v2/x")
        hub.reject_tokens.add(hub.calls[0])
        responses = await asyncio.gather(*(client.get(f"/v2/x/{n}") for n in range(20)))
    assert all(r.status_code == 200 for r in responses)
    assert hub.exchanges == 2


@pytest.mark.anyio
async def test_a_second_401_raises_credentials_error_without_secrets() -> None:
    clock = Clock()
    hub = FakeHub(clock)
    auth = make_auth(clock)
    async with async_client(hub, auth) as client:
        await client.get("/v2/x")
        hub.reject_tokens.update(hub.valid)
        original_issue = hub.issue

        def issue_rejected() -> str:
            token = original_issue()
            hub.reject_tokens.add(token)  # the credential itself was revoked
            return token

        hub.issue = issue_rejected  # type: ignore[method-assign]
        with pytest.raises(CredentialsError) as caught:
            await client.get("/v2/x")
    assert hub.exchanges == 2
    message = str(caught.value) + repr(caught.value)
    assert SECRET not in message
    for token in hub.valid:
        assert token not in message


@pytest.mark.anyio
async def test_a_refused_exchange_names_the_user_but_never_the_secret() -> None:
    clock = Clock()
    hub = FakeHub(clock)
    hub.refuse_secret = True
    auth = make_auth(clock)
    async with async_client(hub, auth) as client:
        with pytest.raises(CredentialsError) as caught:
            await client.get("/v2/x")
    message = str(caught.value)
    assert USER in message
    assert "401" in message
    assert SECRET not in message  # the server echoed it; the redactor removed it
    assert "***" in message
    assert hub.calls == []  # nothing was sent without a token


@pytest.mark.anyio
async def test_a_failing_exchange_is_a_transient_failure() -> None:
    clock = Clock()
    hub = FakeHub(clock)
    hub.exchange_status = 503
    async with async_client(hub, make_auth(clock)) as client:
        with pytest.raises(RetryLater):
            await client.get("/v2/x")
        hub.exchange_status = 200
        assert (await client.get("/v2/x")).status_code == 200


def test_sync_client_works_and_shares_the_logic() -> None:
    clock = Clock()
    hub = FakeHub(clock)
    auth = make_auth(clock)
    with httpx.Client(base_url=BASE, auth=auth, transport=httpx.MockTransport(hub.handler)) as c:
        assert c.get("/v2/x").status_code == 200
        assert c.get("/v2/x").status_code == 200
        hub.reject_tokens.add(hub.calls[0])
        assert c.get("/v2/x").status_code == 200
        hub.refuse_secret = True
        hub.reject_tokens.update(hub.valid)
        with pytest.raises(CredentialsError):
            c.get("/v2/x")
    assert hub.exchanges == 2


@pytest.mark.anyio
async def test_the_exchange_goes_through_the_client_transport() -> None:
    clock = Clock()
    hub = FakeHub(clock)
    seen: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        return await hub.async_handler(request)

    auth = make_auth(clock)
    async with httpx.AsyncClient(
        base_url=BASE, auth=auth, transport=httpx.MockTransport(handler)
    ) as client:
        await client.post("/v2/namespaces/octo/repositories", json={"name": "a"})
    assert seen == ["POST /v2/auth/token", "POST /v2/namespaces/octo/repositories"]


def test_repr_and_redactor_hide_the_secret_and_tokens() -> None:
    clock = Clock()
    hub = FakeHub(clock)
    redactor = Redactor()
    auth = make_auth(clock, redactor=redactor)
    assert SECRET not in repr(auth)
    assert "***" in repr(auth)
    with httpx.Client(base_url=BASE, auth=auth, transport=httpx.MockTransport(hub.handler)) as c:
        request = c.build_request("GET", "/v2/x")
        c.send(request)
    token = hub.calls[0]
    assert redactor(f"secret {SECRET} token {token}") == "secret *** token ***"
    assert token not in repr(request.headers)


@pytest.mark.parametrize(
    "elsewhere",
    [
        "https://hub.docker.com:8443/v2/repositories",  # another port
        "http://hub.docker.com/v2/repositories",  # a downgrade
        "https://evil.example/v2/repositories",  # another host
        "https://hub.docker.com.evil.example/v2/x",
    ],
)
def test_the_bearer_goes_to_the_connections_origin_only(elsewhere: str) -> None:
    from sink.errors import StopRun

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "eyJh.eyJzdWIiOiJ4In0.sig"})

    auth = HubAuth(
        "acme", "dckr_oat_Fake0Secret1For2Tests3", token_url=token_url_for("https://hub.docker.com")
    )
    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        assert client.get("https://hub.docker.com:443/v2/orgs/acme").status_code == 200
        with pytest.raises(StopRun, match="refusing to send the Docker Hub credential"):
            client.get(elsewhere)
    assert all(r.url.host == "hub.docker.com" and r.url.scheme == "https" for r in seen)


def test_the_exchange_is_a_json_request_with_its_content_type() -> None:
    clock = Clock()
    hub = FakeHub(clock)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return hub.handler(request)

    auth = make_auth(clock)
    with httpx.Client(base_url=BASE, auth=auth, transport=httpx.MockTransport(handler)) as c:
        assert c.get("/v2/x").status_code == 200
    exchange = seen[0]
    assert exchange.url.path == "/v2/auth/token"
    assert exchange.headers["content-type"] == "application/json"
    assert exchange.headers["accept"] == "application/json"
    assert json.loads(exchange.content) == {"identifier": USER, "secret": SECRET}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "delay", "asked"),
    [
        ({"Retry-After": "1000000000"}, 1e9, "Retry-After: 1000000000"),
        ({"Retry-After": "-3"}, 0.0, "Retry-After: -3"),
        ({}, None, None),
    ],
)
async def test_a_429_on_the_exchange_says_what_it_asked(
    headers: dict[str, str], delay: float | None, asked: str | None
) -> None:
    from sink.errors import Throttled

    clock = Clock()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"detail": "Rate limit exceeded"}, headers=headers)

    async with httpx.AsyncClient(
        base_url=BASE, auth=make_auth(clock), transport=httpx.MockTransport(handler)
    ) as client:
        with pytest.raises(Throttled) as caught:
            await client.get("/v2/x")
    assert caught.value.delay == delay
    assert caught.value.asked == asked
    assert isinstance(caught.value, RetryLater)
    if asked:
        assert f"({asked})" in str(caught.value)
