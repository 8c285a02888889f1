"""Sending requests to Docker Hub: retries, pacing and concurrency.

:func:`sink.send.classify.classify` is the one place that decides what a response means
(DESIGN.md, "What a response means"). :class:`Dispatcher` sends :class:`~sink.model.Request`
values on one ``httpx.AsyncClient`` and turns each into an :class:`~sink.model.Outcome`, one
attempt at a time: the attempt (:meth:`Dispatcher._attempt`) sends the request and says what
it got, :func:`sink.send.decide.decide` (pure) says what comes next, and the dispatcher does
it, within the limits of :class:`~sink.send.settings.Retry` and
:class:`~sink.send.settings.Limits`:

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
  is looked up before it is sent again: present → ok (``outcome.recovered``), absent → sent
  again, cannot tell → failed with ``outcome.in_doubt``, never sent blindly;
- a 409 or an "already exists" is looked up: present → ok (``outcome.already_existed``);
- a 401 after a fresh token exchange, or a personal access token on an endpoint that needs an
  organization access token, raises :class:`~sink.errors.StopRun` (the run cannot go on).

Secrets: for a request that names its answer's secret fields (``Request.secrets``) the
dispatcher removes them from the response body it puts in the outcome (they become ``"***"``,
see :mod:`sink.send.secrets`) and hands the values over in ``outcome.vault``, a
:class:`~sink.model.VaultEntry` whose repr hides them and which JSON encoders refuse. The
pipeline writes it to the vault before the record counts as done; nothing else should read it.

The client comes from :func:`sink.send.transport.make_client`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
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
)
from sink.model import NON_IDEMPOTENT, Outcome, Request, Status
from sink.send.classify import (
    AMBIGUOUS_5XX,
    Verdict,
    VerdictKind,
    classify,
    describe,
    may_have_arrived,
    overloaded,
    parse_body,
)
from sink.send.decide import (
    Attempted,
    Looked,
    Move,
    Purpose,
    Step,
    Tally,
    Tried,
    Wait,
    after_look_up,
    decide,
)
from sink.send.pacing import Pacer, retry_after
from sink.send.secrets import hide_secrets, take_secrets
from sink.send.settings import Clock, Limits, Retry

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
_LIMITS = Limits()
_RETRY = Retry()
_OK = Verdict(VerdictKind.OK)
_NOTHING = Attempted(Tried.DROPPED)  # a look-up before any attempt of this round

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
    risky: bool = True  # sending it twice could do its effect twice
    delete: bool = False

    def tally(self, now: float) -> Tally:
        """What the decision needs to know of the attempts so far."""
        return Tally(
            self.failures,
            self.throttled,
            now - self.started,
            self.ambiguous,
            self.risky,
            self.delete,
        )


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

    ``limits`` say how much goes out at once, ``retry`` when a request is sent again and when
    it is given up, ``clock`` the time and the waits (see :mod:`sink.send.settings`).
    ``pacer`` is the credential's :class:`~sink.send.pacing.Pacer`, shared with its reads (by
    default one of the dispatcher's own, from ``limits``). ``lookup(request)`` answers whether
    the request's effect is already there (True/False) or ``None`` when that cannot be told.
    ``on_event(name, data)`` is told about retries, 429s and recoveries (never about plain
    successes, to keep the common path cheap). Whether a request may be sent twice and which
    answer fields are secrets, the request says (``Request.idempotent``, ``Request.secrets``).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        limits: Limits = _LIMITS,
        retry: Retry = _RETRY,
        clock: Clock | None = None,
        pacer: Pacer | None = None,
        lookup: Lookup | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        clock = clock or Clock()
        self.client = client
        self.limits = limits
        self.retry = retry
        self.concurrency = limits.concurrency
        self.lookup = lookup
        self.on_event = on_event
        if pacer is not None and pacer.on_wait is None:
            pacer.on_wait = self._quota_wait
        self.pacer = pacer or Pacer(
            limits.rate,
            follow_quota=limits.follow_quota,
            clock=clock.monotonic,
            wall=clock.wall,
            sleep=clock.sleep,
            max_wait=retry.max_elapsed,
            on_wait=self._quota_wait,
        )
        self._clock = clock.monotonic
        self._wall = clock.wall
        self._sleep = clock.sleep
        self._uniform = clock.rng.uniform
        self._stats = DispatchStats()
        self._stopping = False
        self._stop_requested = False
        # Requests taken and not finished, by id(request): what a stop leaves without outcome.
        self._open: dict[int, _Attempt] = {}
        self._connect_failures = 0  # in a row, with no answer from Hub in between
        self._failing_since = 0.0
        self._answered = False  # whether anything in this run got an answer from Hub
        self._urls: dict[str, httpx.URL] = {}
        self._places = asyncio.Semaphore(limits.concurrency)

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
        """Attempt, decide, act, until the request has its outcome: each attempt ends in an
        :class:`~sink.send.decide.Attempted`, :func:`~sink.send.decide.decide` says what
        comes next, :meth:`_act` does it."""
        state = _Attempt(request, self._clock(), place=place)
        state.risky = request.method.upper() in NON_IDEMPOTENT and not request.idempotent
        state.delete = request.method.upper() == "DELETE"
        self._open[id(request)] = state
        while True:
            if state.ambiguous and state.risky:
                # It may have arrived: sent again only once a look-up says it is not there.
                outcome = await self._look_up_then(state, Purpose.RESEND, None)
            else:
                attempted = await self._attempt(state)
                move = decide(attempted, state.tally(self._clock()), self.retry, self._uniform)
                outcome = await self._act(state, move, attempted)
            if outcome is not None:
                return outcome

    async def _attempt(self, state: _Attempt) -> Attempted:
        """One attempt: build, take a pacing slot, send; what it got, the request's state
        updated with what it tells (its status and error, whether it may have reached Hub).
        Raises :class:`Unreachable` when Hub is out of reach and lets a :class:`StopRun`
        through (the run cannot go on)."""
        try:
            built = self._build(state.request)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, TypeError, ValueError) as exc:
            return Attempted(Tried.INVALID, error=f"invalid request: {exc}")
        try:
            response = await self._on_the_wire(built, state)
        except _HOPELESS as exc:
            return Attempted(Tried.HOPELESS, error=describe(exc))
        except httpx.TransportError as exc:
            state.error = describe(exc)
            state.status = None
            if isinstance(exc, _CONNECT_FAILURES):
                self._connect_failed(exc, built)  # raises Unreachable when Hub is out of reach
            failed = _failed_request(exc)
            if may_have_arrived(exc) and (failed is None or failed is built):
                # The request itself (not the token exchange before it) may have arrived.
                state.reached = state.ambiguous = True
            return Attempted(Tried.DROPPED, error=state.error)
        except Throttled as exc:  # the token exchange answered 429: every request waits
            state.error = str(exc)
            self._stats.rate_limited += 1
            return Attempted(
                Tried.TOKEN_THROTTLED,
                error=state.error,
                delay=exc.delay,
                asked=exc.asked or "",
                cause=exc,
            )
        except RetryLater as exc:  # the token exchange answered 5xx
            state.error = str(exc)
            return Attempted(Tried.TOKEN_FAILED, error=state.error, delay=exc.delay)
        except StopRun:
            self._halt()
            raise
        except httpx.HTTPError as exc:  # decoding errors, too many redirects
            return Attempted(Tried.BROKEN, error=describe(exc))
        status = response.status_code
        throttled = status == 429
        self.pacer.complete(
            response.headers if status < 500 and not throttled else None,
            throttled=throttled,
            overloaded=overloaded(status, response.headers),
        )
        if 200 <= status < 300:
            return Attempted(Tried.ANSWERED, status, _OK, response=response)
        verdict = classify(response, self._wall())
        state.status = status
        state.error = verdict.message
        delay: float | None = None
        asked = ""
        if throttled:
            self._stats.rate_limited += 1
            found = retry_after(response.headers, self._wall())
            if found is not None:
                delay, asked = found
        elif verdict.kind is VerdictKind.RETRY and status in AMBIGUOUS_5XX:
            state.ambiguous = True
        return Attempted(
            Tried.ANSWERED, status, verdict, delay=delay, asked=asked, response=response
        )

    async def _act(self, state: _Attempt, move: Move, attempted: Attempted) -> Outcome | None:
        """Do what ``move`` says: the outcome that settles the request, or ``None`` to go on
        (after the wait a retry asks for)."""
        step = move.step
        if move.hold is not None:
            self.pacer.hold(move.hold)
        if step is Step.DONE:
            return self._ok(state, attempted.response)
        if step is Step.SETTLE:
            body = (
                parse_body(attempted.response)
                if move.with_body and attempted.response is not None
                else None
            )
            outcome = self._finish(state, move.status, body=body, error=move.error or None)
            outcome.in_doubt = move.in_doubt
            outcome.already_gone = move.already_gone
            return outcome
        if step is Step.RETRY:
            await self._retry(state, move)
            return None
        if step is Step.LOOK_UP:
            assert move.purpose is not None
            return await self._look_up_then(state, move.purpose, attempted, move.error)
        if step is Step.RECOVERED:
            return self._recovered(state, already_existed=move.already_existed)
        if step is Step.SEND:
            state.ambiguous = False  # not there: sending again is safe
            return None
        if step is Step.GIVE_UP:
            return self._gave_up(state, move.error or None)
        # STOP
        assert move.stop is not None
        self._halt()
        if attempted.verdict is not None:
            message = attempted.verdict.message
            self._event("stop", {"template": state.request.template, "message": message})
        raise move.stop from attempted.cause

    async def _retry(self, state: _Attempt, move: Move) -> None:
        """Count the retry, tell ``on_event``, and wait as ``move`` says."""
        request = state.request
        self._stats.retries += 1
        delay = move.delay
        if not move.counts_throttle:
            state.failures += 1
            self._event(
                "retry",
                {
                    "template": request.template,
                    "attempt": state.attempts,
                    "reason": move.error,
                    "delay": delay,
                },
            )
            if delay > 0:
                await self._pause(state, delay)
            return
        state.throttled += 1
        if move.wait is Wait.HOLD:
            self.pacer.hold(delay)
            shared = True
        else:
            shared = self.pacer.throttled(delay)
        self._event(
            "rate_limited", {"template": request.template, "delay": delay, "everyone": shared}
        )
        if not shared:
            await self._pause(state, delay)  # an isolated 429: only this one waits

    async def _look_up_then(
        self, state: _Attempt, purpose: Purpose, attempted: Attempted | None, error: str = ""
    ) -> Outcome | None:
        """Look the effect up, then act as :func:`~sink.send.decide.after_look_up` says."""
        reason = ""
        try:
            looked = _looked(await self._look_up(state))
        except _LookupFailed:
            looked = Looked.FAILED
        except RejectRecord as exc:
            looked, reason = Looked.SETTLES, exc.message
        if purpose is Purpose.RESEND:
            error = state.error
        tally = state.tally(self._clock())
        move = after_look_up(
            purpose, looked, tally, self.retry, self._uniform, error=error, reason=reason
        )
        return await self._act(state, move, attempted or _NOTHING)

    async def _look_up(self, state: _Attempt) -> bool | None:
        """Whether the request's effect is there (``None``: cannot tell); raises
        :class:`_LookupFailed` when the look-up itself met a transient failure, and lets
        :class:`~sink.errors.RejectRecord` through when Hub's answer to the look-up settles
        the record (the team it names does not exist): the decision makes that a rejection,
        never a record left in doubt."""
        if self.lookup is None:
            return None
        self._stats.lookups += 1
        try:
            return await self.lookup(state.request)
        except (httpx.TransportError, RetryLater) as exc:
            state.error = f"{state.error}; the look-up failed ({describe(exc)})"
            raise _LookupFailed from exc

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

    # -- outcomes ---------------------------------------------------------------------------

    def _gave_up(self, state: _Attempt, reason: str | None = None) -> Outcome:
        tries = "attempt" if state.attempts == 1 else "attempts"
        error = f"gave up after {state.attempts} {tries}: {reason or state.error}"
        in_doubt = state.ambiguous and state.risky
        if in_doubt:
            error += " (the request may have reached Docker Hub; check before sending it again)"
        outcome = self._finish(state, Status.FAILED, error=error)
        outcome.in_doubt = in_doubt
        # Only the token exchange, or nothing at all, went out: the request never left.
        outcome.not_sent = not state.reached
        return outcome

    def _finish(
        self,
        state: _Attempt,
        status: Status,
        *,
        body: Any = None,
        error: str | None = None,
        hidden: bool = False,
    ) -> Outcome:
        """The outcome; ``hidden``: ``body`` has no secrets left in it already."""
        request = state.request
        if status is Status.OK:
            self._stats.ok += 1
        elif status is Status.REJECTED:
            self._stats.rejected += 1
        else:
            self._stats.failed += 1
        if not hidden and request.secrets:
            body = hide_secrets(request, body)
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
        fields = request.secrets
        if not fields:
            return self._finish(state, Status.OK, body=body)
        taken = take_secrets(request, body)
        if taken.entry is None:
            # Created, but the answer does not show the secret: as good as lost.
            outcome = self._finish(
                state,
                Status.SECRET_LOST,
                body=taken.body,
                hidden=True,
                error=(
                    f"Docker Hub answered {state.status} but the answer holds no secret "
                    f"(expected in {', '.join(fields)}); the token exists without a known "
                    "secret: revoke it and create it again"
                ),
            )
            outcome.secret_lost = True
            return outcome
        outcome = self._finish(state, Status.OK, body=taken.body, hidden=True)
        outcome.vault = taken.entry
        return outcome

    def _recovered(self, state: _Attempt, *, already_existed: bool = False) -> Outcome:
        request = state.request
        self._stats.recovered += 1
        secrets = bool(request.secrets)
        lost = secrets and not already_existed
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


def _looked(found: bool | None) -> Looked:
    if found is None:
        return Looked.UNKNOWN
    return Looked.PRESENT if found else Looked.ABSENT


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
