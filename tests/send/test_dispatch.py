"""The Dispatcher over MockTransport, a raw server and httpx's own transport."""

from __future__ import annotations

import asyncio
import heapq
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, TypeVar

import httpx
import orjson
import pytest

from sink.errors import CredentialsError, NeedsOrgToken, RejectRecord, StopRun
from sink.model import Outcome, Request, Status
from sink.send.dispatch import Dispatcher
from sink.send.settings import Clock, Limits, Retry
from sink.send.transport import HubTransport, make_client

BASE = "https://hub.example.test"
NOW = 1_700_000_000.0
T = TypeVar("T")
PAT_SECRET = "dckr_pat_Xb7Qm2LwV9kR4tN8cJ1hF6yD3pS0gE5a"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def response(
    status: int, body: Any = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    if isinstance(body, dict | list):
        return httpx.Response(status, json=body, headers=headers)
    return httpx.Response(status, content=(body or "").encode(), headers=headers)


# -- the Dispatcher ---------------------------------------------------------------------------


class FakeClock:
    """Fake monotonic and wall clocks. Outside :meth:`drive`, sleeping moves the clock at once
    (fine for one request at a time); inside it, sleepers wake in deadline order and the clock
    jumps to the next deadline only when every task is waiting (virtual time)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._driving = False

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return NOW + (self.now - 1000.0)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if not self._driving:
            self.now += max(0.0, seconds)
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(0.0, seconds), len(self.sleeps), future))
        await future

    async def drive(self, work: Awaitable[T]) -> T:
        self._driving = True
        task = asyncio.ensure_future(work)
        try:
            while not task.done():
                for _ in range(30):  # let every runnable task run until it waits
                    await asyncio.sleep(0)
                if task.done() or not self._timers:
                    continue
                deadline, _, future = heapq.heappop(self._timers)
                self.now = max(self.now, deadline)
                future.set_result(None)
            return task.result()
        finally:
            self._driving = False


Handler = Callable[[httpx.Request], Any]


def make_request(
    n: int = 0,
    method: str = "POST",
    template: str = "create-repository",
    body: Any = None,
    *,
    idempotent: bool = False,
    secrets: tuple[str, ...] = (),
) -> Request:
    path = "/v2/namespaces/octo/repositories"
    if method in ("DELETE", "PUT", "PATCH"):
        path += f"/app-{n}"
    content = orjson.dumps(body if body is not None else {"name": f"app-{n}"})
    return Request(
        method=method,
        url=BASE + path,
        headers=(("Content-Type", "application/json"),),
        body=None if method == "DELETE" else content,
        keys=(f"k{n}",),
        template=template,
        indexes=(n,),
        idempotent=idempotent,
        secrets=secrets,
    )


_LIMITS = {"concurrency", "rate", "follow_quota"}
_RETRY = {"max_attempts", "max_elapsed", "max_throttled", "backoff_base", "backoff_cap"}


def make_dispatcher(handler: Handler, clock: FakeClock, **kwargs: Any) -> Dispatcher:
    """A dispatcher on a fake clock; the settings' fields are given as keywords."""
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    kwargs.setdefault("follow_quota", False)
    limits = Limits(**{name: kwargs.pop(name) for name in _LIMITS & kwargs.keys()})
    retry = Retry(**{name: kwargs.pop(name) for name in _RETRY & kwargs.keys()})
    return Dispatcher(client, limits=limits, retry=retry, clock=fake(clock), **kwargs)


def fake(clock: FakeClock, seed: int = 7) -> Clock:
    return Clock(clock.monotonic, clock.wall, clock.sleep, random.Random(seed))


class Script:
    """Answers requests from a list of steps (a status, an exception, or a callable)."""

    def __init__(self, *steps: Any, clock: FakeClock | None = None) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []
        self.clock = clock

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.clock is not None:
            self.times.append(self.clock.now)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        if callable(step):
            return step(request)
        return httpx.Response(step, json={"name": "app", "message": f"status {step}"})


async def collect(dispatcher: Dispatcher, requests: Any) -> list[Outcome]:
    return [outcome async for outcome in dispatcher.run(requests)]


class Lookup:
    def __init__(self, *answers: bool | None) -> None:
        self.answers = list(answers)
        self.calls: list[Request] = []

    async def __call__(self, request: Request) -> bool | None:
        self.calls.append(request)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.mark.anyio
async def test_ok_outcome_carries_the_body_and_timing() -> None:
    clock = FakeClock()
    script = Script(201)
    dispatcher = make_dispatcher(script, clock)
    outcome = await dispatcher.send(make_request(3))
    assert outcome.status is Status.OK
    assert outcome.http_status == 201
    assert outcome.body == {"name": "app", "message": "status 201"}
    assert outcome.keys == ("k3",)
    assert outcome.template == "create-repository"
    assert outcome.attempts == 1
    sent = script.requests[0]
    assert sent.method == "POST"
    assert orjson.loads(sent.content) == {"name": "app-3"}
    assert dispatcher.stats.ok == 1


@pytest.mark.anyio
async def test_retries_a_put_through_5xx_to_success_with_full_jitter_backoff() -> None:
    clock = FakeClock()
    script = Script(500, 502, 200)
    dispatcher = make_dispatcher(script, clock, backoff_base=0.5, backoff_cap=30.0)
    outcome = await dispatcher.send(make_request(method="PUT"))
    assert outcome.status is Status.OK
    assert outcome.attempts == 3
    assert len(clock.sleeps) == 2
    assert 0 <= clock.sleeps[0] <= 0.5
    assert 0 <= clock.sleeps[1] <= 1.0
    assert dispatcher.stats.retries == 2


@pytest.mark.anyio
async def test_retries_a_connect_error_without_a_look_up() -> None:
    clock = FakeClock()
    script = Script(httpx.ConnectError("connection refused"), 201)
    lookup = Lookup(True)
    dispatcher = make_dispatcher(script, clock, lookup=lookup)
    outcome = await dispatcher.send(make_request())
    assert outcome.status is Status.OK
    assert outcome.attempts == 2
    assert lookup.calls == []  # it never reached the server: nothing to look up


@pytest.mark.anyio
async def test_ambiguous_post_that_took_effect_is_not_sent_again() -> None:
    clock = FakeClock()
    script = Script(503, 201)
    lookup = Lookup(True)
    dispatcher = make_dispatcher(script, clock, lookup=lookup)
    outcome = await dispatcher.send(make_request())
    assert outcome.status is Status.OK
    assert outcome.flags() == {"recovered": True}
    assert len(script.requests) == 1
    assert len(lookup.calls) == 1


@pytest.mark.anyio
async def test_ambiguous_post_without_effect_is_sent_again() -> None:
    clock = FakeClock()
    script = Script(httpx.ReadTimeout("timed out"), 201)
    lookup = Lookup(False)
    dispatcher = make_dispatcher(script, clock, lookup=lookup)
    outcome = await dispatcher.send(make_request())
    assert outcome.status is Status.OK
    assert outcome.http_status == 201
    assert len(script.requests) == 2
    assert len(lookup.calls) == 1


@pytest.mark.anyio
async def test_ambiguous_post_that_cannot_be_looked_up_fails_and_is_not_resent() -> None:
    clock = FakeClock()
    script = Script(httpx.RemoteProtocolError("Server disconnected"), 201)
    dispatcher = make_dispatcher(script, clock, lookup=Lookup(None))
    outcome = await dispatcher.send(make_request())
    assert outcome.status is Status.FAILED
    assert "not sent again" in (outcome.error or "")
    assert outcome.in_doubt is True  # the run keeps it in doubt, not failed
    assert len(script.requests) == 1
    assert dispatcher.stats.failed == 1


@pytest.mark.anyio
async def test_ambiguous_post_with_no_look_up_at_all_fails() -> None:
    clock = FakeClock()
    script = Script(504, 201)
    dispatcher = make_dispatcher(script, clock)
    outcome = await dispatcher.send(make_request())
    assert outcome.status is Status.FAILED
    assert outcome.in_doubt is True
    assert len(script.requests) == 1


@pytest.mark.anyio
async def test_a_put_that_gave_up_is_not_in_doubt() -> None:
    clock = FakeClock()
    script = Script(httpx.ReadTimeout("timed out"))
    dispatcher = make_dispatcher(script, clock, max_attempts=2)
    outcome = await dispatcher.send(make_request(method="PUT"))
    assert outcome.status is Status.FAILED
    assert not outcome.in_doubt  # sending a PUT again is safe
    assert len(script.requests) == 2


@pytest.mark.anyio
async def test_idempotent_templates_are_resent_without_a_look_up() -> None:
    clock = FakeClock()
    script = Script(503, 200)
    dispatcher = make_dispatcher(script, clock)
    outcome = await dispatcher.send(make_request(template="add-member", idempotent=True))
    assert outcome.status is Status.OK
    assert len(script.requests) == 2


@pytest.mark.anyio
async def test_a_failed_look_up_is_tried_again() -> None:
    clock = FakeClock()
    script = Script(503, 201)
    answers: list[Any] = [httpx.ConnectError("down"), True]

    async def lookup(request: Request) -> bool | None:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return bool(answer)

    dispatcher = make_dispatcher(script, clock, lookup=lookup)
    outcome = await dispatcher.send(make_request())
    assert outcome.status is Status.OK
    assert outcome.recovered is True
    assert len(script.requests) == 1


@pytest.mark.anyio
async def test_recovered_token_create_marks_the_secret_lost() -> None:
    clock = FakeClock()
    script = Script(httpx.ReadTimeout("timed out"))
    dispatcher = make_dispatcher(script, clock, lookup=Lookup(True))
    outcome = await dispatcher.send(make_request(template="create-pat", secrets=("token",)))
    assert outcome.status is Status.SECRET_LOST
    assert outcome.recovered is True
    assert outcome.secret_lost is True
    assert outcome.vault is None


@pytest.mark.anyio
async def test_gives_up_after_max_attempts() -> None:
    clock = FakeClock()
    script = Script(500)
    dispatcher = make_dispatcher(script, clock, max_attempts=3)
    outcome = await dispatcher.send(make_request(method="PUT"))
    assert outcome.status is Status.FAILED
    assert outcome.attempts == 3
    assert outcome.http_status == 500
    assert "gave up after 3 attempts" in (outcome.error or "")
    assert len(script.requests) == 3


@pytest.mark.anyio
async def test_gives_up_when_out_of_time() -> None:
    clock = FakeClock()
    script = Script(500)
    dispatcher = make_dispatcher(
        script, clock, max_attempts=100, max_elapsed=10.0, backoff_base=4.0, backoff_cap=4.0
    )
    outcome = await dispatcher.send(make_request(method="DELETE"))
    assert outcome.status is Status.FAILED
    assert clock.now - 1000.0 <= 10.0


@pytest.mark.anyio
async def test_429_waits_exactly_what_the_server_says() -> None:
    clock = FakeClock()
    script = Script(
        httpx.Response(429, json={"detail": "Rate limit exceeded"}, headers={"Retry-After": "12"}),
        201,
        clock=clock,
    )
    dispatcher = make_dispatcher(script, clock, max_attempts=1)
    outcome = await dispatcher.send(make_request())
    assert outcome.status is Status.OK  # a 429 does not use up the attempts
    assert script.times[1] - script.times[0] >= 12.0
    assert dispatcher.stats.rate_limited == 1
    assert dispatcher.stats.rate_limit_wait == 0.0  # its own wait, nobody else held


@pytest.mark.anyio
async def test_a_429_without_quota_headers_delays_only_its_own_request() -> None:
    clock = FakeClock()
    sends: list[float] = []
    limited: list[tuple[int, float]] = []  # (sends so far, end of the wait) of the one 429

    async def handler(request: httpx.Request) -> httpx.Response:
        sends.append(clock.now)
        position = len(sends)
        await asyncio.sleep(0)
        if position == 5:
            limited.append((len(sends), clock.now + 30.0))
            return httpx.Response(429, headers={"X-Retry-After": str(int(clock.wall()) + 30)})
        return httpx.Response(201, json={})

    concurrency = 8
    dispatcher = make_dispatcher(handler, clock, concurrency=concurrency)
    outcomes = await clock.drive(collect(dispatcher, (make_request(n) for n in range(40))))
    assert len(outcomes) == 40
    assert all(o.status is Status.OK for o in outcomes)
    [(_, until)] = limited
    # The server does not say its quota: one 429 is a sign to slow down, not to stop. The
    # other 39 went on during the 30 s wait; only the throttled record waited it out.
    assert len(sends) == 41
    assert sum(1 for t in sends if t < until) == 40
    assert sends[-1] >= until
    assert dispatcher.stats.rate_limit_wait == 0.0
    assert dispatcher.pacer.allowed == math.inf  # one 429 in 41 answers is not dense


def plentiful_quota(clock: FakeClock) -> dict[str, str]:
    """Hub's rate-limit headers with nearly all of a large quota left."""
    return {
        "X-RateLimit-Limit": "100000",
        "X-RateLimit-Remaining": "99000",
        "X-RateLimit-Reset": str(int(clock.wall()) + 60),
    }


@pytest.mark.anyio
async def test_an_isolated_429_with_plenty_of_quota_holds_only_its_own_request() -> None:
    clock = FakeClock()
    sends: list[tuple[float, str]] = []  # (time, record) of every send
    throttled_at: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        name = orjson.loads(request.content)["name"]
        sends.append((clock.now, name))
        position = len(sends)
        await asyncio.sleep(0)
        if position == 5:
            throttled_at.append(clock.now)
            return httpx.Response(429, headers={"Retry-After": "30"})
        await clock.sleep(0.5)  # every answer takes half a second
        return httpx.Response(201, json={}, headers=plentiful_quota(clock))

    dispatcher = make_dispatcher(handler, clock, concurrency=4, follow_quota=True)
    outcomes = await clock.drive(collect(dispatcher, (make_request(n) for n in range(40))))
    assert [o.status for o in outcomes] == [Status.OK] * 40
    [moment] = throttled_at
    victim = sends[4][1]
    retries = [t for t, name in sends if name == victim]
    assert len(retries) == 2 and retries[1] - retries[0] >= 30.0  # it waited Retry-After
    others = [t for t, name in sends if moment < t < moment + 30.0 and name != victim]
    assert len(others) >= 30  # the other workers went on meanwhile
    assert dispatcher.stats.rate_limited == 1 and dispatcher.stats.rate_limit_wait == 0.0


@pytest.mark.anyio
async def test_429s_that_are_not_isolated_hold_every_worker_despite_the_quota() -> None:
    clock = FakeClock()
    sends: list[float] = []
    throttled_at: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        sends.append(clock.now)
        position = len(sends)
        await asyncio.sleep(0)
        if 10 <= position < 18:  # a run of 429s: more than a quarter of recent answers
            throttled_at.append(clock.now)
            return httpx.Response(429, headers={"Retry-After": "30"})
        await clock.sleep(0.5)
        return httpx.Response(201, json={}, headers=plentiful_quota(clock))

    dispatcher = make_dispatcher(handler, clock, concurrency=4)
    outcomes = await clock.drive(collect(dispatcher, (make_request(n) for n in range(40))))
    assert [o.status for o in outcomes] == [Status.OK] * 40
    assert dispatcher.stats.rate_limit_wait >= 30.0  # a shared hold was placed
    last = throttled_at[-1]
    # Once everyone is held, nothing leaves before the hold ends but requests already on
    # their way (the fake clock stands still until someone sleeps).
    assert [t for t in sends if last < t < last + 30.0] == []


@pytest.mark.anyio
async def test_409_with_the_effect_present_is_ok() -> None:
    clock = FakeClock()
    script = Script(409)
    lookup = Lookup(True)
    dispatcher = make_dispatcher(script, clock, lookup=lookup)
    outcome = await dispatcher.send(make_request())
    assert outcome.status is Status.OK
    assert outcome.flags() == {"already_existed": True}
    assert outcome.http_status == 409


@pytest.mark.anyio
async def test_already_exists_without_the_effect_is_rejected() -> None:
    clock = FakeClock()
    script = Script(httpx.Response(400, json={"message": "team already exists in another org"}))
    dispatcher = make_dispatcher(script, clock, lookup=Lookup(False))
    outcome = await dispatcher.send(make_request())
    assert outcome.status is Status.REJECTED
    assert outcome.error == "HTTP 400: team already exists in another org"


@pytest.mark.anyio
async def test_rejects_carry_hubs_message_and_the_run_goes_on() -> None:
    clock = FakeClock()
    body = {"fields": {"name": ["Invalid repository name"]}, "text": "invalid request"}
    script = Script(httpx.Response(400, json=body))
    dispatcher = make_dispatcher(script, clock)
    outcome = await dispatcher.send(make_request())
    assert outcome.status is Status.REJECTED
    assert outcome.http_status == 400
    assert outcome.body == body
    assert "Invalid repository name" in (outcome.error or "")
    assert dispatcher.stats.rejected == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    "first", [None, httpx.ReadTimeout("timed out"), httpx.ConnectError("refused")]
)
async def test_a_delete_answered_404_is_already_gone(first: Exception | None) -> None:
    script = Script(404) if first is None else Script(first, 404)
    outcome = await make_dispatcher(script, FakeClock()).send(make_request(method="DELETE"))
    assert outcome.status is Status.OK
    assert outcome.flags() == {"already_gone": True}


@pytest.mark.anyio
async def test_a_delete_404_whose_look_up_finds_the_parent_missing_is_rejected() -> None:
    async def parent_missing(request: Request) -> bool | None:
        raise RejectRecord("the team 'ghosts' does not exist in the organization acme")

    async def still_listed(request: Request) -> bool | None:
        return False

    gone = make_dispatcher(Script(404), FakeClock(), lookup=parent_missing)
    outcome = await gone.send(make_request(method="DELETE"))
    assert outcome.status is Status.REJECTED
    assert outcome.error == "the team 'ghosts' does not exist in the organization acme"
    listed = make_dispatcher(Script(404), FakeClock(), lookup=still_listed)
    assert (await listed.send(make_request(method="DELETE"))).status is Status.REJECTED


@pytest.mark.anyio
async def test_an_ambiguous_post_whose_look_up_finds_the_parent_missing_is_rejected() -> None:
    async def parent_missing(request: Request) -> bool | None:
        raise RejectRecord("the team 'ghosts' does not exist in the organization acme")

    script = Script(httpx.ReadTimeout("timed out"))
    dispatcher = make_dispatcher(script, FakeClock(), lookup=parent_missing)
    outcome = await dispatcher.send(make_request())
    assert outcome.status is Status.REJECTED and not outcome.in_doubt
    assert outcome.error == "the team 'ghosts' does not exist in the organization acme"
    assert len(script.requests) == 1  # not sent again


@pytest.mark.anyio
async def test_pat_on_an_org_endpoint_stops_the_run() -> None:
    clock = FakeClock()
    body = {"message": "token issued from personal access token is not allowed"}
    script = Script(httpx.Response(403, json=body))
    dispatcher = make_dispatcher(script, clock)
    with pytest.raises(NeedsOrgToken, match="organization access token"):
        await dispatcher.send(make_request(template="create-team"))


@pytest.mark.anyio
async def test_a_stop_in_run_lets_requests_in_flight_finish_then_raises() -> None:
    clock = FakeClock()
    release = asyncio.Event()

    seen: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        name = orjson.loads(request.content)["name"]
        seen.append(name)
        if name == "app-2":
            return httpx.Response(401, json={"message": "unauthorized"})
        await release.wait()
        return httpx.Response(201, json={"name": name})

    dispatcher = make_dispatcher(handler, clock, concurrency=4)
    outcomes = []

    async def consume() -> None:
        async for outcome in dispatcher.run([make_request(n) for n in range(50)]):
            outcomes.append(outcome)

    task = asyncio.create_task(consume())
    for _ in range(20):
        await asyncio.sleep(0)
    release.set()
    with pytest.raises(CredentialsError):
        await task
    # app-0 and app-1 were in flight: their outcomes are not lost; nothing new was taken.
    assert sorted(o.keys[0] for o in outcomes) == ["k0", "k1"]
    assert seen == ["app-0", "app-1", "app-2"]
    assert dispatcher.stopping


@pytest.mark.anyio
async def test_run_respects_the_concurrency_limit() -> None:
    clock = FakeClock()
    active = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        for _ in range(3):
            await asyncio.sleep(0)
        active -= 1
        return httpx.Response(201, json={})

    dispatcher = make_dispatcher(handler, clock, concurrency=5)
    outcomes = [o async for o in dispatcher.run([make_request(n) for n in range(60)])]
    assert len(outcomes) == 60
    assert peak == 5
    assert sorted(o.keys[0] for o in outcomes) == sorted(f"k{n}" for n in range(60))


@pytest.mark.anyio
async def test_a_record_waiting_to_be_retried_leaves_its_place_on_the_wire() -> None:
    clock = FakeClock()
    sends: list[tuple[float, str]] = []
    on_the_wire = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal on_the_wire, peak
        name = orjson.loads(request.content)["name"]
        sends.append((clock.now, name))
        on_the_wire += 1
        peak = max(peak, on_the_wire)
        await clock.sleep(1.0)
        on_the_wire -= 1
        first_try = [n for _, n in sends].count(name) == 1
        return httpx.Response(503 if name == "app-0" and first_try else 201, json={})

    dispatcher = make_dispatcher(handler, clock, concurrency=1, backoff_base=20.0, backoff_cap=20.0)
    requests = (make_request(n, method="PUT") for n in range(4))  # safe to send again
    outcomes = await clock.drive(collect(dispatcher, requests))
    assert [o.status for o in outcomes].count(Status.OK) == 4
    assert peak == 1  # one request on the wire at a time, as configured
    retried = [t for t, name in sends if name == "app-0"]
    assert len(retried) == 2
    # While app-0 waited for its retry, the next record went out in its place.
    assert [name for t, name in sends if retried[0] < t < retried[1]] != []


@pytest.mark.anyio
async def test_run_takes_an_async_iterable_and_stop_ends_it_early() -> None:
    clock = FakeClock()
    script = Script(201)
    dispatcher = make_dispatcher(script, clock, concurrency=2)

    async def requests() -> AsyncIterator[Request]:
        for n in range(1000):
            yield make_request(n)

    seen = 0
    async for _ in dispatcher.run(requests()):
        seen += 1
        if seen == 10:
            dispatcher.stop()
    assert 10 <= seen <= 10 + 2 * 2  # the records in progress at stop() still finish
    assert len(script.requests) == seen


@pytest.mark.anyio
async def test_secret_fields_go_to_the_vault_entry_not_the_body() -> None:
    clock = FakeClock()
    created = {
        "uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "token_label": "ci",
        "token": PAT_SECRET,
        "scopes": ["repo:read"],
    }
    script = Script(httpx.Response(201, json=created))
    dispatcher = make_dispatcher(script, clock)
    outcome = await dispatcher.send(make_request(template="create-pat", secrets=("token",)))
    assert outcome.body["token"] == "***"
    entry = outcome.vault
    assert entry.secrets == {"token": PAT_SECRET}
    assert entry.token_id == created["uuid"]
    assert entry.label == "ci"
    assert PAT_SECRET not in repr(outcome)
    with pytest.raises(TypeError):
        orjson.dumps({"vault": outcome.vault})  # cannot be serialised by accident


@pytest.mark.anyio
async def test_quota_headers_pace_the_run() -> None:
    clock = FakeClock()
    sends: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sends.append(clock.now)
        remaining = max(0, 10 - len(sends))
        headers = {
            "X-RateLimit-Limit": "10",
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(NOW) + 60),
        }
        return httpx.Response(201, json={}, headers=headers)

    dispatcher = make_dispatcher(handler, clock, concurrency=4, follow_quota=True)
    outcomes = await clock.drive(collect(dispatcher, [make_request(n) for n in range(10)]))
    assert len(outcomes) == 10
    assert dispatcher.stats.rate_limited == 0
    # Ten requests, a quota of ten: spent at once, not spread over the minute.
    assert sends[-1] - sends[0] < 1


@pytest.mark.anyio
async def test_a_fixed_window_quota_is_spent_window_by_window_without_a_429() -> None:
    clock = FakeClock()
    sends: list[float] = []
    windows: dict[int, int] = {}
    limit, window = 10, 60

    def handler(request: httpx.Request) -> httpx.Response:
        sends.append(clock.now)
        at = int((clock.wall() - NOW) // window)
        windows[at] = windows.get(at, 0) + 1
        reset = str(int(NOW) + (at + 1) * window)
        quota = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Reset": reset}
        if windows[at] > limit:
            return httpx.Response(429, headers={**quota, "X-RateLimit-Remaining": "0"})
        left = str(limit - windows[at])
        return httpx.Response(201, json={}, headers={**quota, "X-RateLimit-Remaining": left})

    dispatcher = make_dispatcher(handler, clock, concurrency=4, follow_quota=True)
    outcomes = await clock.drive(collect(dispatcher, [make_request(n) for n in range(25)]))
    assert len(outcomes) == 25 and all(o.status is Status.OK for o in outcomes)
    assert dispatcher.stats.rate_limited == 0  # never a request the quota refuses
    assert windows == {0: 10, 1: 10, 2: 5}  # every window spent in full
    # Each window's requests go at its start; the job ends just after the second reset.
    assert sends[-1] - sends[0] < 2 * window + 1


@pytest.mark.anyio
async def test_a_fixed_rate_is_never_exceeded() -> None:
    clock = FakeClock()
    script = Script(201, clock=clock)
    dispatcher = make_dispatcher(script, clock, concurrency=8, rate=5.0)
    outcomes = await clock.drive(collect(dispatcher, [make_request(n) for n in range(20)]))
    assert len(outcomes) == 20
    gaps = [b - a for a, b in zip(script.times, script.times[1:], strict=False)]
    assert min(gaps) >= 0.2 - 1e-9


@pytest.mark.anyio
async def test_events_report_retries_and_stats_count_them() -> None:
    clock = FakeClock()
    events: list[tuple[str, dict[str, Any]]] = []
    script = Script(503, 200)
    dispatcher = make_dispatcher(script, clock, on_event=lambda n, d: events.append((n, d)))
    await dispatcher.send(make_request(method="PUT"))
    assert [name for name, _ in events] == ["retry"]
    assert events[0][1]["reason"].startswith("HTTP 503")
    stats = dispatcher.stats
    assert (stats.ok, stats.retries, stats.sent, stats.failed) == (1, 1, 2, 0)


@pytest.mark.anyio
async def test_a_plain_401_without_hub_auth_stops() -> None:
    clock = FakeClock()
    dispatcher = make_dispatcher(Script(401), clock)
    with pytest.raises(CredentialsError):
        await dispatcher.send(make_request())


def test_make_client_limits_and_timeouts() -> None:
    client = make_client(BASE, None, concurrency=8, timeout=20.0)
    assert client.timeout.read == 20.0
    assert client.timeout.connect == 10.0
    assert client.timeout.pool is None
    assert client.base_url == httpx.URL(BASE)
    assert not client.follow_redirects


def test_stop_run_is_the_base_of_every_stop() -> None:
    assert issubclass(NeedsOrgToken, StopRun)
    assert issubclass(CredentialsError, StopRun)


# -- HubTransport against a real socket server -----------------------------------------------


class RawServer:
    """A loopback HTTP server whose answers are raw bytes chosen per request."""

    def __init__(self, answer: Callable[[bytes, bytes], Any]) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                answer = self.answer(head, body)
                if asyncio.iscoroutine(answer):
                    answer = await answer
                if answer is None:  # drop the connection without a word
                    break
                for part in answer if isinstance(answer, list) else [answer]:
                    if part == b"CLOSE":
                        writer.close()
                        return
                    writer.write(part)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def ok(body: bytes = b'{"ok":true}', extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
        % (len(body), extra, body)
    )


async def fetch(url: str, method: str = "GET", **kwargs: Any) -> httpx.Response:
    async with make_client(url, None, concurrency=4, timeout=kwargs.pop("timeout", 5.0)) as client:
        return await client.request(method, url + "/v2/x", **kwargs)


@pytest.mark.anyio
async def test_transport_reuses_one_connection_and_sends_the_request_intact() -> None:
    async with (
        RawServer(lambda head, body: ok()) as server,
        make_client(server.url, None, concurrency=4) as client,
    ):
        assert isinstance(client._transport, HubTransport)
        for n in range(5):
            response = await client.post(
                "/v2/namespaces/octo/repositories?x=1", json={"name": f"app-{n}"}
            )
            assert response.status_code == 200
            assert response.json() == {"ok": True}
    assert server.connections == 1
    head, body = server.requests[0]
    assert head.startswith(b"POST /v2/namespaces/octo/repositories?x=1 HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{server.port}".encode() in head.lower()
    assert b"user-agent: sink/" in head.lower()
    assert orjson.loads(body) == {"name": "app-0"}


@pytest.mark.anyio
async def test_transport_reads_chunked_bodies_split_anywhere() -> None:
    parts = [
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n",
        b'Content-Type: application/json\r\n\r\n5\r\n{"a":',
        b"\r\n3;ext=1\r\n12}\r\n0\r\n",
        b"X-Trailer: y\r\n\r\n",
    ]
    async with RawServer(lambda head, body: parts) as server:
        response = await fetch(server.url)
    assert response.status_code == 201
    assert response.json() == {"a": 12}


@pytest.mark.anyio
async def test_transport_reads_a_body_that_ends_with_the_connection() -> None:
    answer = [b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", b"CLOSE"]
    async with RawServer(lambda head, body: answer) as server:
        response = await fetch(server.url)
    assert response.text == "all of it"


@pytest.mark.anyio
async def test_transport_head_204_and_interim_responses_have_no_body() -> None:
    def answer(head: bytes, body: bytes) -> bytes:
        if head.startswith(b"HEAD"):
            return b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
        if head.startswith(b"DELETE"):
            return b"HTTP/1.1 204 No Content\r\n\r\n"
        return b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"[]")

    async with RawServer(answer) as server, make_client(server.url, None) as client:
        head = await client.head("/v2/x")
        gone = await client.delete("/v2/x")
        got = await client.get("/v2/x")
    assert (head.status_code, head.content) == (200, b"")
    assert (gone.status_code, gone.content) == (204, b"")
    assert (got.status_code, got.json()) == (200, [])
    assert server.connections == 1


@pytest.mark.anyio
async def test_transport_opens_a_new_connection_after_connection_close() -> None:
    async with (
        RawServer(lambda head, body: ok(extra=b"Connection: close\r\n")) as server,
        make_client(server.url, None) as client,
    ):
        for _ in range(3):
            assert (await client.get("/v2/x")).status_code == 200
    assert server.connections == 3


@pytest.mark.anyio
async def test_transport_decodes_gzip() -> None:
    import gzip

    packed = gzip.compress(b'{"zipped":true}')
    async with RawServer(lambda head, body: ok(packed, b"Content-Encoding: gzip\r\n")) as server:
        response = await fetch(server.url)
    assert response.json() == {"zipped": True}


@pytest.mark.anyio
async def test_transport_maps_failures_to_httpx_exceptions() -> None:
    async with RawServer(lambda head, body: None) as server:
        with pytest.raises(httpx.RemoteProtocolError):
            await fetch(server.url)
    cut = [b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial', b"CLOSE"]
    async with RawServer(lambda head, body: cut) as server:
        with pytest.raises(httpx.ReadError):
            await fetch(server.url)
    async with RawServer(lambda head, body: b"NONSENSE\r\n\r\n") as server:
        with pytest.raises(httpx.RemoteProtocolError):
            await fetch(server.url)

    async def silent(head: bytes, body: bytes) -> bytes:
        await asyncio.Event().wait()
        return b""

    async with RawServer(silent) as server:
        with pytest.raises(httpx.ReadTimeout):
            await fetch(server.url, timeout=0.2)
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(httpx.ConnectError):
        await fetch(f"http://127.0.0.1:{port}")


@pytest.mark.anyio
async def test_transport_skips_idle_connections_the_server_closed() -> None:
    # The server closes every connection after answering, without saying so.
    async with (
        RawServer(lambda head, body: [ok(), b"CLOSE"]) as server,
        make_client(server.url, None) as client,
    ):
        assert (await client.get("/v2/x")).status_code == 200
        for _ in range(50):
            await asyncio.sleep(0)  # let the close reach the client
        assert (await client.get("/v2/x")).status_code == 200
    assert server.connections == 2


@pytest.mark.anyio
async def test_transport_holds_to_its_connection_limit() -> None:
    active = 0
    peak = 0

    async def slow(head: bytes, body: bytes) -> bytes:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return ok()

    async with RawServer(slow) as server, make_client(server.url, None, concurrency=3) as client:
        responses = await asyncio.gather(*(client.get("/v2/x") for _ in range(20)))
    assert all(r.status_code == 200 for r in responses)
    assert server.connections == 3
    assert peak == 3


@pytest.mark.anyio
async def test_dispatcher_end_to_end_over_the_transport() -> None:
    async with (
        RawServer(lambda head, body: ok(body, b"")) as server,
        make_client(server.url, None, concurrency=8) as client,
    ):
        dispatcher = Dispatcher(client, limits=Limits(concurrency=8))
        requests = [
            Request(
                "POST",
                server.url + "/v2/namespaces/octo/repositories",
                (),
                orjson.dumps({"name": f"app-{n}"}),
                (f"k{n}",),
                "create-repository",
            )
            for n in range(100)
        ]
        outcomes = [o async for o in dispatcher.run(requests)]
    assert len(outcomes) == 100
    assert {o.body["name"] for o in outcomes} == {f"app-{n}" for n in range(100)}
    assert all(b"content-type: application/json" in h.lower() for h, _ in server.requests)
    assert server.connections <= 8


@pytest.mark.anyio
async def test_an_unsendable_url_is_rejected_and_releases_nothing() -> None:
    clock = FakeClock()
    script = Script(201)
    dispatcher = make_dispatcher(script, clock, follow_quota=True)
    bad = Request("POST", "http://hub\x00/x", (), b"{}", ("k",), "create-repository")
    outcome = await dispatcher.send(bad)
    assert outcome.status is Status.REJECTED
    assert (outcome.error or "").startswith("invalid request")
    assert dispatcher.pacer.in_flight == 0
    assert (await dispatcher.send(make_request())).status is Status.OK  # no stuck probe


@pytest.mark.anyio
async def test_an_unexpected_error_still_completes_the_pacer_slot() -> None:
    clock = FakeClock()
    dispatcher = make_dispatcher(Script(RuntimeError("bug")), clock, follow_quota=True)
    with pytest.raises(RuntimeError):
        await dispatcher.send(make_request())
    assert dispatcher.pacer.in_flight == 0
    dispatcher.client = httpx.AsyncClient(transport=httpx.MockTransport(Script(201)))
    assert (await dispatcher.send(make_request())).status is Status.OK


# -- every wait is bounded --------------------------------------------------------------------


def throttled(value: str, header: str = "Retry-After") -> httpx.Response:
    return httpx.Response(429, json={"detail": "Rate limit exceeded"}, headers={header: value})


class Storm:
    """Answers 429 with ``headers`` to every request, up to ``limit`` (then 201, so that code
    that never gives up still ends)."""

    def __init__(self, clock: FakeClock, headers: dict[str, str], limit: int = 500) -> None:
        self.clock = clock
        self.headers = headers
        self.limit = limit
        self.times: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.times.append(self.clock.now)
        if len(self.times) > self.limit:
            return httpx.Response(201, json={})
        return httpx.Response(429, json={"detail": "Rate limit exceeded"}, headers=self.headers)


@pytest.mark.anyio
@pytest.mark.parametrize("value", ["0", "-5", "0.0001"])
async def test_a_429_always_waits_a_second_and_429s_count_against_their_limit(value: str) -> None:
    clock = FakeClock()
    storm = Storm(clock, {"Retry-After": value})
    dispatcher = make_dispatcher(storm, clock, max_throttled=5, max_elapsed=10_000.0)
    outcome = await dispatcher.send(make_request())
    assert outcome.status is Status.FAILED
    assert len(storm.times) == 6  # the first answer and five more, then it gives up
    gaps = [b - a for a, b in zip(storm.times, storm.times[1:], strict=False)]
    assert min(gaps) >= 1.0
    assert "retry.max_throttled (5)" in (outcome.error or "")
    assert not outcome.in_doubt  # a 429 says nothing happened


@pytest.mark.anyio
async def test_429s_without_a_retry_after_stop_at_the_time_limit() -> None:
    clock = FakeClock()
    storm = Storm(clock, {})
    dispatcher = make_dispatcher(storm, clock, max_elapsed=20.0, max_throttled=1000)
    outcome = await dispatcher.send(make_request())
    assert outcome.status is Status.FAILED
    assert 2 <= len(storm.times) <= 21
    assert clock.now - 1000.0 <= 20.0
    assert "retry.max_seconds (20 s)" in (outcome.error or "")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({"Retry-After": "1000000000"}, "Retry-After: 1000000000"),
        ({"Retry-After": "301"}, "Retry-After: 301"),
        (
            {
                "Retry-After": format_datetime(
                    datetime.fromtimestamp(NOW + 86_400, tz=UTC), usegmt=True
                )
            },
            "Retry-After: "
            + format_datetime(datetime.fromtimestamp(NOW + 86_400, tz=UTC), usegmt=True),
        ),
        ({"X-Retry-After": str(int(NOW) + 7200)}, f"X-Retry-After: {int(NOW) + 7200}"),
    ],
)
async def test_a_429_asking_for_too_long_a_wait_fails_the_record_at_once(
    headers: dict[str, str], named: str
) -> None:
    clock = FakeClock()
    script = Script(httpx.Response(429, json={}, headers=headers), 201)
    dispatcher = make_dispatcher(script, clock, max_elapsed=300.0)
    outcome = await dispatcher.send(make_request())
    assert outcome.status is Status.FAILED
    assert len(script.requests) == 1
    assert all(s < 300 for s in clock.sleeps)  # nothing near that long was waited
    error = outcome.error or ""
    assert f"({named})" in error
    assert "more than retry.max_seconds (300 s)" in error


@pytest.mark.anyio
async def test_the_hard_ceiling_caps_a_wait_that_retry_max_seconds_would_allow() -> None:
    from sink.send.pacing import MAX_WAIT

    clock = FakeClock()
    script = Script(throttled(str(int(MAX_WAIT) + 60)), 201)
    dispatcher = make_dispatcher(script, clock, max_elapsed=86_400.0)
    outcome = await dispatcher.send(make_request())
    assert outcome.status is Status.FAILED
    assert f"the longest wait sink allows ({MAX_WAIT:.0f} s)" in (outcome.error or "")
    assert all(s <= MAX_WAIT for s in clock.sleeps)


def hub_client(
    token_answer: Callable[[httpx.Request], httpx.Response],
    api: Callable[[httpx.Request], httpx.Response] | None = None,
    seen: list[httpx.Request] | None = None,
) -> httpx.AsyncClient:
    from sink.send.auth import HubAuth, token_url_for

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if request.url.path == "/v2/auth/token":
            return token_answer(request)
        return api(request) if api is not None else httpx.Response(201, json={})

    auth = HubAuth(
        "acme", "dckr_oat_mGUb8viwoTjRp7goKqWQNFHBziuPKlbZ", token_url=token_url_for(BASE)
    )
    return httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=auth)


@pytest.mark.anyio
async def test_a_429_on_the_token_exchange_asking_too_long_stops_the_run_and_sends_nothing() -> (
    None
):
    from sink.errors import WaitTooLong

    clock = FakeClock()
    seen: list[httpx.Request] = []
    client = hub_client(lambda r: throttled("1000000000"), seen=seen)
    dispatcher = Dispatcher(
        client,
        limits=Limits(concurrency=2, follow_quota=False),
        retry=Retry(max_elapsed=300.0),
        clock=Clock(clock.monotonic, clock.wall, clock.sleep),
    )
    outcomes: list[Outcome] = []
    taken: list[tuple[str, ...]] = []

    def requests() -> Iterator[Request]:
        for n in range(3):
            request = make_request(n)
            taken.append(request.keys)
            yield request

    with pytest.raises(WaitTooLong) as caught:
        async for outcome in dispatcher.run(requests()):
            outcomes.append(outcome)
    message = str(caught.value)
    assert "Docker Hub asked to wait 1000000000 s (Retry-After: 1000000000)" in message
    assert "on the token exchange, more than retry.max_seconds (300 s)" in message
    assert outcomes == []
    assert {r.url.path for r in seen} == {"/v2/auth/token"}  # only the login went out
    # No record left: the run takes back every one it handed over, none is left in doubt.
    assert ("k0",) in taken
    assert sorted(r.keys for r in dispatcher.unsent()) == sorted(taken)
    assert all(s < 300 for s in clock.sleeps)


@pytest.mark.anyio
async def test_a_short_429_on_the_token_exchange_holds_everyone_then_goes_on() -> None:
    clock = FakeClock()
    answers = [throttled("0"), httpx.Response(200, json={"access_token": "eyJh.eyJ9.c2ln"})]
    client = hub_client(lambda r: answers.pop(0) if len(answers) > 1 else answers[0])
    dispatcher = Dispatcher(
        client,
        limits=Limits(follow_quota=False),
        retry=Retry(max_attempts=1),
        clock=Clock(clock.monotonic, clock.wall, clock.sleep),
    )
    outcome = await dispatcher.send(make_request())
    assert outcome.status is Status.OK  # a 429 does not use up the attempts
    assert dispatcher.stats.rate_limited == 1
    assert clock.now - 1000.0 >= 1.0  # Retry-After: 0 still waits a second


@pytest.mark.anyio
async def test_a_token_exchange_that_times_out_leaves_the_request_not_sent_not_in_doubt() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    clock = FakeClock()
    seen: list[httpx.Request] = []
    client = hub_client(timeout, seen=seen)
    dispatcher = Dispatcher(
        client,
        limits=Limits(follow_quota=False),
        retry=Retry(max_attempts=2),
        clock=Clock(clock.monotonic, clock.wall, clock.sleep),
    )
    outcome = await dispatcher.send(make_request())
    assert outcome.status is Status.FAILED
    assert {r.url.path for r in seen} == {"/v2/auth/token"}
    assert not outcome.in_doubt
    assert outcome.not_sent is True


class Forever:
    """A sleep that never ends by itself (a wait only a stop can end)."""

    def __init__(self) -> None:
        self.sleeping = 0

    async def __call__(self, seconds: float) -> None:
        self.sleeping += 1
        await asyncio.Event().wait()


async def until(check: Callable[[], bool]) -> None:
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("never got there")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(429, json={}, headers={"Retry-After": "120"}),  # the pacer's shared hold
        httpx.Response(503, json={}),  # a backoff
    ],
)
async def test_stop_wakes_every_request_waiting_and_they_end_without_outcome(
    answer: httpx.Response,
) -> None:
    forever = Forever()
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(orjson.loads(request.content)["name"])
        return answer

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    dispatcher = Dispatcher(
        client,
        limits=Limits(concurrency=2, follow_quota=False),
        retry=Retry(backoff_base=60.0),
        clock=Clock(sleep=forever, rng=random.Random(3)),
    )
    outcomes: list[Outcome] = []

    async def consume() -> None:
        async for outcome in dispatcher.run(make_request(n, method="PUT") for n in range(50)):
            outcomes.append(outcome)

    task = asyncio.create_task(consume())
    await until(lambda: forever.sleeping >= 1)
    dispatcher.stop()
    await asyncio.wait_for(task, 10)  # never ends if a wait cannot be interrupted
    assert outcomes == []
    assert 1 <= len(sent) <= 4
    unsent = {r.keys[0] for r in dispatcher.unsent()}
    answered = {f"k{name.removeprefix('app-')}" for name in sent}
    if answer.status_code == 429:  # a 429 says nothing happened: it is taken back
        assert answered <= unsent
    else:  # a 503 may have been applied: its fate is unknown, it stays in doubt
        assert not answered & unsent


@pytest.mark.anyio
async def test_hub_unreachable_stops_the_run_after_a_few_connection_failures() -> None:
    from sink.errors import Unreachable

    clock = FakeClock()
    attempts: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(request.url.path)
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    dispatcher = make_dispatcher(refuse, clock, concurrency=4)
    outcomes: list[Outcome] = []
    with pytest.raises(Unreachable, match=r"cannot reach hub\.example\.test \(ConnectError"):
        async for outcome in dispatcher.run(make_request(n) for n in range(1000)):
            outcomes.append(outcome)
    assert outcomes == []  # nothing failed: it was never sent
    assert len(attempts) == 8
    assert 1 <= len(dispatcher.unsent()) <= 8

    # A blip mid-run, once Hub has answered, does not stop the run.
    clock = FakeClock()
    answers = 0

    def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal answers
        answers += 1
        if 20 <= answers < 32:  # twelve connection failures in a row, after some answers
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return httpx.Response(200, json={})

    dispatcher = make_dispatcher(flaky, clock, concurrency=1)
    requests: Iterator[Request] = (make_request(n, method="PUT") for n in range(40))
    outcomes = await clock.drive(collect(dispatcher, requests))
    assert len(outcomes) == 40
    assert [o.status for o in outcomes].count(Status.OK) >= 38
