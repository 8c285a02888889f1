"""Smoke test: the dispatcher, HubAuth and HubTransport against the simulator on 127.0.0.1."""

from __future__ import annotations

import asyncio
import collections
import math

import orjson
import pytest

from sink.errors import CredentialsError
from sink.hubsim import Simulator
from sink.model import Outcome, Request, Status
from sink.send.auth import HubAuth, token_url_for
from sink.send.dispatch import Dispatcher
from sink.send.settings import Clock, Limits, Retry
from sink.send.transport import make_client
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

        dispatcher = Dispatcher(
            client,
            limits=Limits(concurrency=8),
            retry=Retry(backoff_base=0.01),
            lookup=exists,
            **kwargs,  # type: ignore[arg-type]
        )
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
    assert all(o.recovered for o in outcomes)
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


BARE_429S = {"quota_headers": False, "retry_after": 1}


def creates_logged(hub: Simulator) -> list[dict[str, object]]:
    return [r for r in hub.requests() if r["method"] == "POST" and r["path"] == CREATE]


@pytest.mark.anyio
async def test_isolated_429s_without_quota_headers_delay_only_their_own_records(
    hub: Simulator,
) -> None:
    # One create in ten is a bare 429 (no X-RateLimit-*): a sign to slow down, not to stop.
    rule = {"method": "POST", "path": CREATE, "burst_every": 10, "burst_length": 1}
    hub.set_faults({**BARE_429S, "rules": [{**rule, **BARE_429S, "latency_ms": 20}]})
    events: list[tuple[str, dict[str, object]]] = []
    outcomes = await send_all(
        hub,
        [create(hub, f"calm-{n}") for n in range(60)],
        on_event=lambda name, data: events.append((name, data)),
    )
    assert [o.status for o in outcomes] == [Status.OK] * 60
    throttled = [data for name, data in events if name == "rate_limited"]
    assert len(throttled) >= 3 and not any(data["everyone"] for data in throttled)
    log = creates_logged(hub)
    first = next(float(r["time"]) for r in log if r["status"] == 429)  # type: ignore[arg-type]
    # The others went on while the throttled record waited its second...
    assert [r for r in log if first + 0.05 < r["time"] < first + 0.95 and r["status"] == 201]  # type: ignore[operator]
    # ...and each throttled record honoured its own Retry-After.
    retried = [o for o in outcomes if o.attempts > 1]
    assert len(retried) == len(throttled)
    assert all(o.duration >= 1.0 for o in retried)
    assert sorted(acme_repositories(hub, "calm-")) == sorted(f"calm-{n}" for n in range(60))


@pytest.mark.anyio
async def test_dense_429s_without_quota_headers_hold_every_worker(hub: Simulator) -> None:
    rule = {"method": "POST", "path": CREATE, "burst_every": 2, "burst_length": 1}
    hub.set_faults({**BARE_429S, "rules": [{**rule, **BARE_429S}]})
    events: list[tuple[str, dict[str, object]]] = []

    async def quick(seconds: float) -> None:  # the waits are asked; the test need not sit them
        await asyncio.sleep(min(seconds, 0.01))

    outcomes = await send_all(
        hub,
        [create(hub, f"dense-{n}") for n in range(24)],
        on_event=lambda name, data: events.append((name, data)),
        clock=Clock(sleep=quick),
    )
    assert [o.status for o in outcomes] == [Status.OK] * 24
    throttled = [data for name, data in events if name == "rate_limited"]
    assert any(data["everyone"] for data in throttled)  # a shared hold once 429s were dense
    assert not all(data["everyone"] for data in throttled)  # the first ones were isolated
    assert sorted(acme_repositories(hub, "dense-")) == sorted(f"dense-{n}" for n in range(24))


@pytest.mark.anyio
async def test_a_fixed_window_quota_is_spent_in_full_each_window_and_never_overrun(
    hub: Simulator,
) -> None:
    limit, window = 20, 2
    hub.set_faults({"rate_limit": limit, "rate_window": window})
    outcomes = await send_all(hub, [create(hub, f"quota-{n}") for n in range(50)])
    assert [o.status for o in outcomes] == [Status.OK] * 50
    log = creates_logged(hub)
    assert [r["status"] for r in log if r["status"] == 429] == []  # not one refused request
    times = [float(r["time"]) for r in log]  # type: ignore[arg-type]
    start = math.floor(times[0])  # the simulator's first window starts on this second
    per_window = collections.Counter(int((t - start) // window) for t in times)
    assert sorted(per_window.items()) == [(0, 20), (1, 20), (2, 10)]
    # The optimum ends just after the second reset (20 at once, wait, 20, wait, 10): the job
    # ended within a small share of a window of it, not spread over the windows.
    assert max(times) - (start + 2 * window) < 0.25 * window
