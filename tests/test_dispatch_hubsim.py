"""Smoke test: the dispatcher, HubAuth and HubTransport against the simulator on 127.0.0.1."""

from __future__ import annotations

import orjson
import pytest

from sink.auth import HubAuth, token_url_for
from sink.dispatch import Dispatcher
from sink.errors import CredentialsError
from sink.hubsim import Simulator
from sink.model import Outcome, Request, Status
from sink.transport import make_client
from tests.seed import OAT

CREATE = "/v2/namespaces/acme/repositories"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.usefixtures("fresh_hub")


def create(hub: Simulator, name: str) -> Request:
    body = orjson.dumps({"name": name, "namespace": "acme"})
    return Request("POST", hub.url + CREATE, (), body, (name,), "create-repository")


def acme_repositories(hub: Simulator, prefix: str) -> list[str]:
    return [
        r["name"]
        for r in hub.state()["repositories"]
        if r["namespace"] == "acme" and r["name"].startswith(prefix)
    ]


async def send_all(hub: Simulator, requests: list[Request], **kwargs: object) -> list[Outcome]:
    auth = HubAuth("acme", OAT, token_url=token_url_for(hub.url))
    async with make_client(hub.url, auth, concurrency=8) as client:

        async def exists(request: Request) -> bool | None:
            name = orjson.loads(request.body or b"{}")["name"]
            response = await client.head(f"{CREATE}/{name}")
            return {200: True, 404: False}.get(response.status_code)

        dispatcher = Dispatcher(client, concurrency=8, lookup=exists, backoff_base=0.01, **kwargs)  # type: ignore[arg-type]
        return [outcome async for outcome in dispatcher.run(requests)]


@pytest.mark.anyio
async def test_creates_repositories_through_the_simulator(hub: Simulator) -> None:
    outcomes = await send_all(hub, [create(hub, f"smoke-{n}") for n in range(30)])
    assert [o.status for o in outcomes] == [Status.OK] * 30
    assert all(o.http_status == 201 for o in outcomes)
    assert sorted(acme_repositories(hub, "smoke-")) == sorted(f"smoke-{n}" for n in range(30))
    # One token exchange served every request.
    assert sum(1 for r in hub.requests() if r["path"] == "/v2/auth/token") == 1


@pytest.mark.anyio
async def test_creates_answered_503_after_they_took_effect_are_not_duplicated(
    hub: Simulator,
) -> None:
    hub.set_faults(
        {
            "rules": [
                {
                    "method": "POST",
                    "path": CREATE,
                    "error_rate": 1.0,
                    "error_statuses": [503],
                    "apply_first": True,
                }
            ]
        }
    )
    outcomes = await send_all(hub, [create(hub, f"shaky-{n}") for n in range(5)])
    assert all(o.status is Status.OK for o in outcomes)
    assert all(o.extra.get("recovered") for o in outcomes)
    assert sorted(acme_repositories(hub, "shaky-")) == [f"shaky-{n}" for n in range(5)]
    posts = [r for r in hub.requests() if r["method"] == "POST" and r["path"] == CREATE]
    assert len(posts) == 5  # looked up, never sent twice


@pytest.mark.anyio
async def test_a_wrong_secret_stops_with_credentials_error(hub: Simulator) -> None:
    auth = HubAuth(
        "acme", "dckr_oat_notTheRightSecretAtAll000000", token_url=token_url_for(hub.url)
    )
    async with make_client(hub.url, auth) as client:
        dispatcher = Dispatcher(client)
        with pytest.raises(CredentialsError) as caught:
            await dispatcher.send(create(hub, "never"))
    assert "notTheRightSecret" not in str(caught.value)
    assert "'acme'" in str(caught.value)
    assert acme_repositories(hub, "never") == []
