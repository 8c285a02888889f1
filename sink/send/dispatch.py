"""Sending requests to Docker Hub: retries, pacing and concurrency.

:func:`sink.send.classify.classify` is the one place that decides what a response means (DESIGN.md,
"What a response means"). :class:`Dispatcher` sends :class:`~sink.model.Request` values on one
``httpx.AsyncClient`` and turns each into an :class:`~sink.model.Outcome`:

- 5xx answers, dropped connections and timeouts are retried with full-jitter exponential
  backoff, up to ``max_attempts`` sends and ``max_elapsed`` seconds;
- a 429 waits until its ``Retry-After`` ends, at least a second (``Retry-After: 0`` or less
  included): only the throttled request waits, unless 429s are dense (a quarter of the recent
  answers) or the quota Hub reported is nearly spent, when every worker waits; a 429 or a 503
  that does not say the quota lowers the number of requests in flight when such answers are
  dense (see :mod:`sink.send.pacing`). 429s do
  not use up ``max_attempts``; they have their own limit, ``max_throttled`` per request, and
  the time limit applies. A wait longer than ``max_elapsed`` (``retry.max_seconds``) or
  :data:`sink.send.pacing.MAX_WAIT` is not waited: the record fails, or for the token exchange
  (which every request shares) the run stops with :class:`~sink.errors.WaitTooLong`, the
  message naming the header and its value;
- every wait ends at once on :meth:`Dispatcher.stop` (or a :class:`~sink.errors.StopRun`):
  the requests waiting get no outcome, and :meth:`Dispatcher.unsent` tells which of them
  cannot have taken effect, so that the run takes them back instead of leaving them in doubt;
- when Docker Hub cannot be reached at all (:data:`UNREACHABLE_AFTER` connection failures in
  a row before any answer in the run, or for :data:`UNREACHABLE_SECONDS` after one), the run
  stops with :class:`~sink.errors.Unreachable` ("cannot reach HOST (reason)");
- a POST or PATCH whose fate is unknown (see :mod:`sink.send.classify`)
  is looked up before it is sent again: present → ok (``extra["recovered"]``), absent → sent
  again, cannot tell → failed with ``extra["in_doubt"]``, never sent blindly;
- a 409 or an "already exists" is looked up: present → ok (``extra["already_existed"]``);
- a 401 after a fresh token exchange, or a personal access token on an endpoint that needs an
  organization access token, raises :class:`~sink.errors.StopRun` (the run cannot go on).

Secrets: for templates listed in ``secret_fields`` the dispatcher removes those fields from
the response body it puts in the outcome (they become ``"***"``) and hands the values over in
``outcome.vault``, a :class:`~sink.model.VaultEntry` whose repr hides them and which JSON
encoders refuse. The pipeline writes it to the vault before the record counts as done;
nothing else should read it.

The client comes from :func:`sink.send.transport.make_client`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from sink.errors import (
    Interrupted,
    RejectRecord,
    RetryLater,
    StopRun,
    Throttled,
    Unreachable,
    WaitTooLong,
)
from sink.model import NON_IDEMPOTENT, Outcome, Request, Status, VaultEntry
from sink.outputs.redact import split_secrets
from sink.send.classify import (
    AMBIGUOUS_5XX,
    VerdictKind,
    classify,
    describe,
    may_have_arrived,
    parse_body,
)
from sink.send.pacing import (
    MIN_THROTTLE_WAIT,
    Pacer,
    backoff_delay,
    parse_quota,
    retry_after,
    too_long,
    wait_limit,
)

# Transport failures that will not go away by sending again.
_HOPELESS: tuple[type[Exception], ...] = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)
_RECORDS_PER_PLACE = 2  # records in progress per place on the wire (see Dispatcher.run)

# Failures to connect (refused, DNS, TLS handshake, connect timeout): the request never left.
_CONNECT_FAILURES: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout)
# Docker Hub counts as unreachable after this many connection failures in a row with no answer
# in between, when nothing in this run has reached it yet; once something has, the failures
# must also have lasted UNREACHABLE_SECONDS, so that a blip mid-run does not stop the run.
UNREACHABLE_AFTER = 8
UNREACHABLE_SECONDS = 30.0
# 429s one request may receive before it fails (retry.max_throttled).
MAX_THROTTLED = 20

Lookup = Callable[[Request], Awaitable[bool | None]]
EventHook = Callable[[str, dict[str, Any]], None]


@dataclass(slots=True)
class DispatchStats:
    """Running counts for progress display."""

    ok: int = 0
    rejected: int = 0
    failed: int = 0
    retries: int = 0
    sent: int = 0  # HTTP requests sent, retries included
    rate_limited: int = 0  # 429 answers received
    lookups: int = 0
    recovered: int = 0
    in_flight: int = 0
    rate_limit_wait: float = 0.0  # seconds during which every start was held back


class _LookupFailed(Exception):
    """The effect look-up met a transient failure (its answer is unknown, try again later)."""


@dataclass(slots=True)
class _Attempt:
    """The state of one request across its attempts."""

    request: Request
    started: float
    attempts: int = 0
    failures: int = 0
    ambiguous: bool = False
    error: str = ""
    status: int | None = None
    place: _Place | None = None
    throttled: int = 0  # 429 answers, the token exchange's included
    sending: bool = False  # on the wire right now (its fate unknown until it returns)
    reached: bool = False  # some attempt of the request itself may have reached Hub


class _Place:
    """A record's place among the ``concurrency`` requests in flight. The record holds it
    while it is sent or looked up, and gives it up while it waits to be retried (a backoff, a
    429's ``Retry-After``), so that another record can go out meanwhile."""

    __slots__ = ("_limit", "held")

    def __init__(self, limit: asyncio.Semaphore) -> None:
        self._limit = limit
        self.held = False

    async def take(self) -> None:
        await self._limit.acquire()
        self.held = True

    def give_up(self) -> None:
        if self.held:
            self.held = False
            self._limit.release()


class Dispatcher:
    """Sends requests with retries, pacing and a concurrency limit (see the module docstring).

    ``lookup(request)`` answers whether the request's effect is already there (True/False) or
    ``None`` when that cannot be told. ``secret_fields`` maps a template id to the response
    fields that are secrets. ``idempotent_templates`` names POST/PATCH templates that are safe
    to send again without a look-up. ``on_event(name, data)`` is told about retries, 429s and
    recoveries (never about plain successes, to keep the common path cheap).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        concurrency: int = 16,
        rate: float | None = None,
        max_attempts: int = 6,
        max_elapsed: float = 300.0,
        max_throttled: int = MAX_THROTTLED,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        lookup: Lookup | None = None,
        on_event: EventHook | None = None,
        secret_fields: Mapping[str, tuple[str, ...]] | None = None,
        idempotent_templates: Iterable[str] = (),
        pacer: Pacer | None = None,
        follow_quota: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if max_throttled < 1:
            raise ValueError("max_throttled must be at least 1")
        self.client = client
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.max_elapsed = max_elapsed
        self.max_throttled = max_throttled
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.lookup = lookup
        self.on_event = on_event
        self.secret_fields = dict(secret_fields or {})
        self.idempotent_templates = frozenset(idempotent_templates)
        if pacer is not None and pacer.on_wait is None:
            pacer.on_wait = self._quota_wait
        self.pacer = pacer or Pacer(
            rate,
            follow_quota=follow_quota,
            clock=clock,
            wall=wall,
            sleep=sleep,
            max_wait=max_elapsed,
            on_wait=self._quota_wait,
        )
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._uniform = (rng or random.Random()).uniform
        self._stats = DispatchStats()
        self._stopping = False
        self._stop_requested = False
        # Requests taken and not finished, by id(request): what a stop leaves without outcome.
        self._open: dict[int, _Attempt] = {}
        self._connect_failures = 0  # in a row, with no answer from Hub in between
        self._failing_since = 0.0
        self._answered = False  # whether anything in this run got an answer from Hub
        self._urls: dict[str, httpx.URL] = {}
        self._places = asyncio.Semaphore(concurrency)

    @property
    def stats(self) -> DispatchStats:
        """The running counts (the same object each time, updated in place)."""
        self._stats.rate_limit_wait = self.pacer.held_seconds
        self._stats.in_flight = self.pacer.in_flight
        return self._stats

    def stop(self) -> None:
        """Stop taking new requests; requests in flight finish and :meth:`run` ends. Requests
        waiting (a backoff, a 429's ``Retry-After``, the pacer's hold) stop waiting at once and
        end without an outcome (see :meth:`unsent`)."""
        self._stop_requested = True
        self._halt()

    def _halt(self) -> None:
        self._stopping = True
        self.pacer.stop()

    def unsent(self) -> list[Request]:
        """The requests taken that ended without an outcome (a stop, a
        :class:`~sink.errors.StopRun`) and cannot have taken effect: they never left, or every
        answer they got says nothing happened (a 429, a 401, a token exchange that failed).
        A request that was on the wire, or whose earlier attempt got no clear answer, is not
        among them: its fate is unknown."""
        return [
            state.request
            for state in self._open.values()
            if not state.sending and not state.ambiguous
        ]

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called (or a worker hit a :class:`StopRun`)."""
        return self._stopping

    def _event(self, name: str, data: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(name, data)

    # -- one request ------------------------------------------------------------------------

    def _build(self, request: Request) -> httpx.Request:
        headers = list(request.headers)
        if request.body is not None and not any(
            name.lower() == "content-type" for name, _ in headers
        ):
            headers.append(("Content-Type", "application/json"))
        # Parsing a URL costs more than the rest of building the request; many runs send to
        # one URL (creates in one namespace), so parsed URLs are kept.
        url = self._urls.get(request.url)
        if url is None:
            if len(self._urls) >= 1024:
                self._urls.clear()
            url = self._urls[request.url] = httpx.URL(request.url)
        return self.client.build_request(request.method, url, headers=headers, content=request.body)

    async def send(self, request: Request) -> Outcome:
        """Send one request until it has an outcome. Raises :class:`StopRun` when the run
        cannot go on (credentials refused, an organization access token needed, Hub out of
        reach or asking for too long a wait), :class:`~sink.errors.Interrupted` when
        :meth:`stop` ended its wait."""
        place = _Place(self._places)
        await place.take()
        try:
            return await self._tracked(request, place)
        finally:
            place.give_up()

    async def _tracked(self, request: Request, place: _Place) -> Outcome:
        """:meth:`_send`, with the request among the open ones until it has its outcome."""
        outcome = await self._send(request, place)
        self._open.pop(id(request), None)
        return outcome

    async def _send(self, request: Request, place: _Place) -> Outcome:
        pacer = self.pacer
        state = _Attempt(request, self._clock(), place=place)
        self._open[id(request)] = state
        risky = self._risky(request)
        while True:
            if state.ambiguous and risky:
                try:
                    found = await self._look_up(state)
                except _LookupFailed:
                    if not await self._backoff(state, state.error):
                        return self._gave_up(state)
                    continue
                except RejectRecord as exc:
                    return self._settled(state, exc)
                if found is None:
                    outcome = self._finish(
                        state,
                        Status.FAILED,
                        error=(
                            f"{state.error}; the request may have reached Docker Hub and "
                            "whether it took effect cannot be looked up, so it was not sent "
                            "again"
                        ),
                    )
                    outcome.in_doubt = True
                    return outcome
                if found:
                    return self._recovered(state)
                state.ambiguous = False  # not there: sending again is safe
            try:
                built = self._build(request)
            except (httpx.InvalidURL, httpx.UnsupportedProtocol, TypeError, ValueError) as exc:
                return self._finish(state, Status.REJECTED, error=f"invalid request: {exc}")
            try:
                response = await self._on_the_wire(built, state)
            except _HOPELESS as exc:
                return self._finish(state, Status.FAILED, error=describe(exc))
            except httpx.TransportError as exc:
                state.error = describe(exc)
                state.status = None
                if isinstance(exc, _CONNECT_FAILURES):
                    self._connect_failed(exc, built)  # raises Unreachable when Hub is out of reach
                failed = _failed_request(exc)
                if may_have_arrived(exc) and (failed is None or failed is built):
                    # The request itself (not the token exchange before it) may have arrived.
                    state.reached = state.ambiguous = True
                if not await self._backoff(state, state.error):
                    return self._gave_up(state)
                continue
            except Throttled as exc:  # the token exchange answered 429: every request waits
                state.error = str(exc)
                self._stats.rate_limited += 1
                asked = (exc.delay, exc.asked or "") if exc.delay is not None else None
                delay, why = self._throttle_wait(state, asked, "on the token exchange")
                if why is not None:
                    # Every request needs the token: the run cannot go on.
                    self._halt()
                    raise WaitTooLong(why) from exc
                pacer.hold(delay)
                self._stats.retries += 1
                self._event(
                    "rate_limited",
                    {"template": request.template, "delay": delay, "everyone": True},
                )
                continue
            except RetryLater as exc:  # the token exchange answered 5xx
                state.error = str(exc)
                if exc.delay is not None:
                    pacer.hold(min(exc.delay, wait_limit(self.max_elapsed)))
                if not await self._backoff(state, state.error, sleep=exc.delay is None):
                    return self._gave_up(state)
                continue
            except StopRun:
                self._halt()
                raise
            except httpx.HTTPError as exc:  # decoding errors, too many redirects
                return self._finish(state, Status.FAILED, error=describe(exc))
            status = response.status_code
            throttled = status == 429
            pacer.complete(
                response.headers if status < 500 and not throttled else None,
                throttled=throttled,
                overloaded=_overloaded(status, response.headers),
            )
            if 200 <= status < 300:
                return self._ok(state, response)
            verdict = classify(response, self._wall())
            kind = verdict.kind
            state.status = status
            state.error = verdict.message
            if kind is VerdictKind.RETRY:
                if status == 429:
                    self._stats.rate_limited += 1
                    delay, why = self._throttle_wait(
                        state, retry_after(response.headers, self._wall()), ""
                    )
                    if why is not None:
                        return self._gave_up(state, why)
                    shared = pacer.throttled(delay)
                    self._stats.retries += 1
                    self._event(
                        "rate_limited",
                        {"template": request.template, "delay": delay, "everyone": shared},
                    )
                    if not shared:
                        await self._pause(state, delay)  # an isolated 429: only this one waits
                    continue
                if status in AMBIGUOUS_5XX:
                    state.ambiguous = True
                if not await self._backoff(state, verdict.message):
                    return self._gave_up(state)
                continue
            if kind is VerdictKind.STOP:
                self._halt()
                self._event("stop", {"template": request.template, "message": verdict.message})
                raise verdict.error()
            body = parse_body(response)
            if kind is VerdictKind.CONFLICT:
                found, settled = await self._look_up_after(state, body)
                if settled is not None:
                    return settled
                if found:
                    return self._recovered(state, already_existed=not state.ambiguous)
                return self._finish(state, Status.REJECTED, body=body, error=verdict.message)
            # REJECT
            if request.method.upper() == "DELETE" and status == 404:
                # What the delete was for is in place: the target is gone (an earlier attempt
                # or an earlier run deleted it, or it never was). The look-up tells that from a
                # 404 for what the path names as the target's parent (a team that does not
                # exist: the record is wrong) and from a target Hub still lists.
                found, settled = await self._look_up_after(state, body)
                if settled is not None:
                    return settled
                if found is not False:
                    outcome = self._finish(state, Status.OK, body=body)
                    outcome.already_gone = True
                    return outcome
            return self._finish(state, Status.REJECTED, body=body, error=verdict.message)

    async def _look_up(self, state: _Attempt) -> bool | None:
        """Whether the request's effect is there (``None``: cannot tell); raises
        :class:`_LookupFailed` when the look-up itself met a transient failure, and lets
        :class:`~sink.errors.RejectRecord` through when Hub's answer to the look-up settles
        the record (the team it names does not exist): the caller makes that a rejection
        (see :meth:`_settled`), never a record left in doubt."""
        if self.lookup is None:
            return None
        self._stats.lookups += 1
        try:
            return await self.lookup(state.request)
        except (httpx.TransportError, RetryLater) as exc:
            state.error = f"{state.error}; the look-up failed ({describe(exc)})"
            raise _LookupFailed from exc

    def _settled(self, state: _Attempt, reason: RejectRecord, body: Any = None) -> Outcome:
        """The rejection a look-up settled the request with (its parent does not exist)."""
        return self._finish(state, Status.REJECTED, body=body, error=reason.message)

    async def _look_up_after(
        self, state: _Attempt, body: Any
    ) -> tuple[bool | None, Outcome | None]:
        """The look-up after a clear answer (a 409, a DELETE's 404): whether the effect is
        there (``None`` when it cannot be told, a transient failure included), or the outcome
        that settles the record when the look-up found what it names missing."""
        try:
            return await self._look_up(state), None
        except _LookupFailed:
            return None, None
        except RejectRecord as exc:
            return None, self._settled(state, exc, body)

    def _backoff_delay(self, failures: int) -> float:
        return backoff_delay(failures, self.backoff_base, self.backoff_cap, self._uniform)

    async def _on_the_wire(self, built: httpx.Request, state: _Attempt) -> httpx.Response:
        """One attempt: a pacing slot, then the exchange."""
        await self.pacer.wait()
        if state.attempts == 0:
            state.started = self._clock()
        state.attempts += 1
        self._stats.sent += 1
        state.sending = True
        try:
            response = await self.client.send(built)
        except asyncio.CancelledError:
            self.pacer.complete(None)
            raise  # still "sending": it may have left, nobody knows
        except BaseException as exc:
            state.sending = False
            self.pacer.complete(None)  # whatever happened, this start is over
            if not isinstance(exc, _CONNECT_FAILURES):
                # Something connected, or the token exchange was answered: Hub is there.
                self._connect_failures = 0
                self._answered = True
            raise
        state.sending = False
        state.reached = True
        self._connect_failures = 0
        self._answered = True
        return response

    def _connect_failed(self, exc: httpx.TransportError, built: httpx.Request) -> None:
        """Count a failure to connect; raise :class:`Unreachable` when Hub is out of reach:
        :data:`UNREACHABLE_AFTER` failures in a row with no answer in between, and, once
        something in this run got an answer, failing for :data:`UNREACHABLE_SECONDS`."""
        now = self._clock()
        if self._connect_failures == 0:
            self._failing_since = now
        self._connect_failures += 1
        if self._connect_failures < UNREACHABLE_AFTER:
            return
        if self._answered and now - self._failing_since < UNREACHABLE_SECONDS:
            return
        failed = _failed_request(exc) or built
        url = failed.url
        host = f"{url.host}:{url.port}" if url.port is not None else url.host
        self._halt()
        raise Unreachable(
            f"cannot reach {host} ({describe(exc)}); {self._connect_failures} attempts in a "
            "row failed to connect. Nothing that failed to connect was sent; check the "
            "connection's base URL and the network, then run again"
        ) from exc

    def _throttle_wait(
        self, state: _Attempt, asked: tuple[float, str] | None, where: str
    ) -> tuple[float, str | None]:
        """Count a 429 and decide its wait: ``(seconds, None)``, or ``(0, why)`` when the
        request must not wait (too long a wait, too many 429s, out of time). ``asked`` is
        the server's delay and the header that said it, if it did."""
        state.throttled += 1
        place = f" {where}" if where else ""
        if asked is not None and asked[0] > wait_limit(self.max_elapsed):
            return 0.0, too_long(asked[0], asked[1], where, self.max_elapsed)
        if asked is not None:
            delay = max(MIN_THROTTLE_WAIT, asked[0])
        else:
            delay = max(MIN_THROTTLE_WAIT, self._backoff_delay(state.throttled - 1))
        if state.throttled > self.max_throttled:
            return 0.0, (
                f"Docker Hub answered HTTP 429 (rate limited) {state.throttled} times{place}, "
                f"more than retry.max_throttled ({self.max_throttled})"
            )
        if self._clock() + delay - state.started > self.max_elapsed:
            said = f" ({asked[1]})" if asked is not None and asked[1] else ""
            return 0.0, (
                f"HTTP 429 (rate limited){place}: waiting {delay:g} s more{said} would pass "
                f"retry.max_seconds ({self.max_elapsed:g} s)"
            )
        return delay, None

    def _quota_wait(self, seconds: float, reason: str) -> None:
        self._event("waiting", {"seconds": seconds, "reason": reason})

    async def _pause(self, state: _Attempt, seconds: float) -> None:
        """Wait between attempts, the record's place on the wire given to another meanwhile;
        :meth:`stop` ends the wait with :class:`~sink.errors.Interrupted`."""
        place = state.place
        if place is not None:
            place.give_up()
        await self.pacer.pause(seconds, self._sleep)
        if place is not None:
            await place.take()

    async def _backoff(self, state: _Attempt, reason: str, *, sleep: bool = True) -> bool:
        """Count a failed attempt and wait before the next; False when the limits are reached."""
        delay = self._backoff_delay(state.failures) if sleep else 0.0
        state.failures += 1
        elapsed = self._clock() - state.started
        if state.failures >= self.max_attempts or elapsed + delay > self.max_elapsed:
            return False
        self._stats.retries += 1
        self._event(
            "retry",
            {
                "template": state.request.template,
                "attempt": state.attempts,
                "reason": reason,
                "delay": delay,
            },
        )
        if delay > 0:
            await self._pause(state, delay)
        return True

    def _gave_up(self, state: _Attempt, reason: str | None = None) -> Outcome:
        tries = "attempt" if state.attempts == 1 else "attempts"
        error = f"gave up after {state.attempts} {tries}: {reason or state.error}"
        in_doubt = state.ambiguous and self._risky(state.request)
        if in_doubt:
            error += " (the request may have reached Docker Hub; check before sending it again)"
        outcome = self._finish(state, Status.FAILED, error=error)
        if in_doubt:
            outcome.in_doubt = True
        if not state.reached:
            # Only the token exchange, or nothing at all, went out: the request never left.
            outcome.not_sent = True
        return outcome

    def _risky(self, request: Request) -> bool:
        """Whether sending ``request`` twice could do its effect twice."""
        return (
            request.method.upper() in NON_IDEMPOTENT
            and request.template not in self.idempotent_templates
        )

    def _finish(
        self, state: _Attempt, status: Status, *, body: Any = None, error: str | None = None
    ) -> Outcome:
        request = state.request
        if status is Status.OK:
            self._stats.ok += 1
        elif status is Status.REJECTED:
            self._stats.rejected += 1
        else:
            self._stats.failed += 1
        fields = self.secret_fields.get(request.template)
        if fields and body is not None:
            body = split_secrets(body, fields)[0]
        return Outcome(
            keys=request.keys,
            status=status,
            http_status=state.status,
            body=body,
            error=error,
            attempts=state.attempts,
            duration=max(0.0, self._clock() - state.started),
            template=request.template,
        )

    def _ok(self, state: _Attempt, response: httpx.Response) -> Outcome:
        request = state.request
        state.status = response.status_code
        body = parse_body(response)
        fields = self.secret_fields.get(request.template)
        entry = None
        if fields and body is not None:
            # Every token-shaped value counts, not only the declared field: a secret in an
            # unexpected place goes to the vault too, never to the responses stream.
            _, secrets = split_secrets(body, fields)
            if secrets:
                entry = VaultEntry.from_body(request.keys, request.template, body, secrets)
        if fields and entry is None:
            # Created, but the answer does not show the secret: as good as lost.
            outcome = self._finish(
                state,
                Status.SECRET_LOST,
                body=body,
                error=(
                    f"Docker Hub answered {state.status} but the answer holds no secret "
                    f"(expected in {', '.join(fields)}); the token exists without a known "
                    "secret: revoke it and create it again"
                ),
            )
            outcome.secret_lost = True
            return outcome
        outcome = self._finish(state, Status.OK, body=body)
        if entry is not None:
            outcome.vault = entry
        return outcome

    def _recovered(self, state: _Attempt, *, already_existed: bool = False) -> Outcome:
        request = state.request
        self._stats.recovered += 1
        secrets = self.secret_fields.get(request.template)
        lost = bool(secrets) and not already_existed
        outcome = self._finish(state, Status.SECRET_LOST if lost else Status.OK)
        if already_existed:
            outcome.already_existed = True
        else:
            outcome.recovered = True
        if secrets and already_existed:
            outcome.secret_missing = True
        elif lost:
            # The response that carried the secret never arrived: it exists, but is lost.
            outcome.secret_lost = True
            outcome.error = (
                "created, but the response carrying its secret was lost; revoke it and "
                "create it again to get a secret"
            )
        self._event(
            "recovered",
            {
                "template": request.template,
                "keys": request.keys,
                "already_existed": already_existed,
            },
        )
        return outcome

    # -- many requests ----------------------------------------------------------------------

    async def run(
        self, requests: AsyncIterable[Request] | Iterable[Request]
    ) -> AsyncIterator[Outcome]:
        """Send every request with at most ``concurrency`` in flight (and up to twice as many
        records in progress, those waiting to be retried included), yielding outcomes as they
        complete. After :meth:`stop` no new request is taken and the run ends once the
        requests in flight are done. A :class:`StopRun` (or a failure of the request source)
        stops the run the same way; it is raised after every finished outcome was yielded.
        The request that caused it has no outcome, nor do the requests that were waiting (a
        backoff, a 429, the pacer) when the run stopped: :meth:`unsent` lists those that cannot
        have taken effect. Leaving the loop early cancels the requests in flight."""
        self._stopping = self._stop_requested
        if not self._stop_requested:
            self.pacer.resume()
        self._connect_failures = 0
        self._answered = False
        source = _Source(requests)
        results: asyncio.Queue[Outcome | None] = asyncio.Queue(maxsize=self.concurrency)
        failures: list[BaseException] = []

        async def worker() -> None:
            place = _Place(self._places)
            try:
                while not self._stopping:
                    await place.take()  # a record is taken only when it can go out
                    if self._stopping:
                        break
                    request = await source.next()
                    if request is None:
                        break
                    outcome = await self._tracked(request, place)
                    place.give_up()
                    await results.put(outcome)
            except asyncio.CancelledError:
                raise
            except Interrupted:
                pass  # a stop ended its wait: no outcome (see unsent())
            except BaseException as exc:  # noqa: BLE001 - re-raised by run() once drained
                failures.append(exc)
                self._halt()
            finally:
                place.give_up()
            await results.put(None)

        # More workers than places on the wire: a record that waits to be retried (a backoff,
        # a 429's Retry-After) gives its place to the next record meanwhile.
        count = self.concurrency * _RECORDS_PER_PLACE
        workers = [asyncio.create_task(worker()) for _ in range(count)]
        try:
            running = len(workers)
            while running:
                item = await results.get()
                if item is None:
                    running -= 1
                else:
                    yield item
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        if failures:
            raise failures[0]


def _overloaded(status: int, headers: Mapping[str, str]) -> bool:
    """Whether an answer says "slow down" without saying the quota: a 503, or a 429 without
    ``X-RateLimit-*`` (a limit other than the credential's quota, or a server that does not
    report one)."""
    if status == 503:
        return True
    return status == 429 and parse_quota(headers) is None


def _failed_request(exc: httpx.TransportError) -> httpx.Request | None:
    """The request a transport failure happened to (the token exchange's, or the request's
    own), when httpx says."""
    try:
        return exc.request
    except RuntimeError:
        return None


class _Source:
    """Hands out requests from a sync or async iterable to many workers, one at a time."""

    def __init__(self, requests: AsyncIterable[Request] | Iterable[Request]) -> None:
        self._sync = iter(requests) if isinstance(requests, Iterable) else None
        self._async = aiter(requests) if isinstance(requests, AsyncIterable) else None
        self._lock = asyncio.Lock()
        self._done = False

    async def next(self) -> Request | None:
        if self._done:
            return None
        if self._sync is not None:
            request = next(self._sync, None)
        else:
            assert self._async is not None
            async with self._lock:  # an async generator cannot be advanced concurrently
                if self._done:
                    return None
                request = await anext(self._async, None)
        if request is None:
            self._done = True
        return request
