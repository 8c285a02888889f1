"""A credential's session: one client factory, and one pacer for its reads and its writes."""

from __future__ import annotations

import asyncio

import httpx

from sink.config import ConnectionConfig, DestinationConfig, RetryConfig
from sink.model import Request, Status
from sink.read.credentials import Credentials
from sink.send.dispatch import Dispatcher
from sink.send.session import HubSession, hub_client

BASE = "https://hub.example.test"
OAT = "dckr_oat_Hq3LmZ8rTx2VwN5kPb7cJd9fYg4sAe6u"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhY21lIn0.c2lnbmF0dXJl"
CREDENTIALS = Credentials(BASE, "acme", OAT, "oat")


class Hub:
    """A token exchange and one repository list; it records who asked what, signed how."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path, request.headers.get("authorization")))
        if request.url.path == "/v2/auth/token":
            return httpx.Response(200, json={"access_token": JWT})
        if request.method == "POST":
            return httpx.Response(201, json={"name": "app"})
        return httpx.Response(200, json={"count": 0, "results": []})


def test_the_reader_reads_on_the_sessions_client_and_pacer() -> None:
    hub = Hub()

    async def main() -> int:
        transport = httpx.MockTransport(hub)
        async with HubSession(CREDENTIALS, transport=transport) as session:
            assert session.reader.client is session.client
            assert session.reader.pacer is session.pacer
            response = await session.reader.get("/v2/orgs/acme/members")
            return response.status_code

    assert asyncio.run(main()) == 200
    assert hub.seen == [
        ("POST", "/v2/auth/token", None),
        ("GET", "/v2/orgs/acme/members", f"Bearer {JWT}"),
    ]


def test_a_destinations_session_has_its_rate_limit_and_longest_wait() -> None:
    config = DestinationConfig(
        connection=ConnectionConfig(identifier="acme"),
        template="create-repository",
        rate_limit=4.0,
        concurrency=3,
        retry=RetryConfig(max_seconds=120.0),
    )
    session = HubSession.for_destination(CREDENTIALS, config)
    try:
        assert session.pacer.min_interval == 0.25
        assert session.pacer.max_wait == 120.0
    finally:
        asyncio.run(session.aclose())


def test_reads_and_writes_of_one_credential_take_slots_of_one_pacer() -> None:
    hub = Hub()
    request = Request(
        "POST", f"{BASE}/v2/repositories/acme", (), b'{"name":"app"}', ("k",), "create-repository"
    )
    slots: list[str] = []

    async def main() -> Status:
        async with HubSession(CREDENTIALS, transport=httpx.MockTransport(hub)) as session:
            pacer = session.pacer
            wait = pacer.wait

            async def counted() -> None:
                slots.append("slot")
                await wait()

            pacer.wait = counted  # type: ignore[method-assign]
            dispatcher = Dispatcher(session.client, pacer=pacer)
            outcome = await dispatcher.send(request)
            await session.reader.get("/v2/orgs/acme/members")
            assert pacer.in_flight == 0
            return outcome.status

    assert asyncio.run(main()) is Status.OK
    assert slots == ["slot", "slot"]  # the write's and the read's, from the one pacer
    assert [path for _, path, _ in hub.seen].count("/v2/auth/token") == 1  # one sign-in


def test_the_client_factory_signs_in_with_the_credential_and_hides_its_secret() -> None:
    client = hub_client(CREDENTIALS)
    try:
        auth = client.auth
        assert OAT not in repr(auth)
        assert str(client.base_url).startswith(BASE)
    finally:
        asyncio.run(client.aclose())
