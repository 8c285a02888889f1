"""The dispatcher's decision step: from what one attempt got to the next move.

:class:`~sink.send.dispatch.Dispatcher` sends a request one attempt at a time; each attempt
ends in an :class:`Attempted` (Hub's answer and its :class:`~sink.send.classify.Verdict`, or
the failure that stood in its way). :func:`decide` turns it, with the request's
:class:`Tally` so far and the :class:`~sink.send.settings.Retry` limits, into a :class:`Move`:
settle the record, send again after so many seconds, look its effect up first, give up, or
stop the run. :func:`after_look_up` does the same for a look-up's answer. Both are pure: no
I/O, no clock (the elapsed time is in the tally), the backoff's jitter drawn from the
``uniform`` given (a draw only when a backoff is computed, as before the split).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sink.errors import StopRun, WaitTooLong
from sink.model import Status
from sink.send.classify import Verdict, VerdictKind
from sink.send.pacing import MIN_THROTTLE_WAIT, backoff_delay, too_long, wait_limit
from sink.send.settings import Retry

Uniform = Callable[[float, float], float]


class Tried(enum.Enum):
    """How one attempt ended."""

    ANSWERED = "answered"
    """Hub answered the request (``status``, ``verdict``)."""
    INVALID = "invalid"
    """The request could not be built (a URL httpx refuses): nothing left."""
    HOPELESS = "hopeless"
    """A transport failure that sending again will not mend (an unsupported scheme)."""
    DROPPED = "dropped"
    """No answer: refused, reset or timed out (the attempt may have reached Hub)."""
    TOKEN_THROTTLED = "token_throttled"  # noqa: S105 - a kind, not a password
    """The token exchange answered 429 (``delay``, ``asked``): every request needs it."""
    TOKEN_FAILED = "token_failed"  # noqa: S105 - a kind, not a password
    """The token exchange answered a 5xx (``delay`` when it said one)."""
    BROKEN = "broken"
    """Another HTTP failure (an undecodable body, a redirect)."""


@dataclass(slots=True)
class Attempted:
    """What one attempt got. ``error`` describes a failure; ``delay`` and ``asked`` are a
    wait the server asked for and the header that said it; ``response`` is Hub's answer,
    whose body the settled outcome carries. Treat it as immutable (not frozen: a frozen
    dataclass costs several times as much to create, and every attempt creates one)."""

    tried: Tried
    status: int | None = None
    verdict: Verdict | None = None
    error: str = ""
    delay: float | None = None
    asked: str = ""
    response: Any = None
    cause: BaseException | None = None


@dataclass(slots=True)
class Tally:
    """A request's attempts so far, as far as the decision needs them: failures (429s aside),
    429s, seconds since its first send, whether an earlier attempt may have reached Hub
    without a clear answer (``ambiguous``), whether sending it twice could do its effect
    twice (``risky``: a POST or PATCH not marked idempotent) and whether it is a DELETE.
    Treat it as immutable (not frozen, for the same cost as :class:`Attempted`)."""

    failures: int = 0
    throttled: int = 0
    elapsed: float = 0.0
    ambiguous: bool = False
    risky: bool = True
    delete: bool = False


class Step(enum.Enum):
    """The next move's kind."""

    DONE = "done"
    """A 2xx: the record is done (its secret, if any, goes to the vault)."""
    SETTLE = "settle"
    """The record's outcome is ``status`` with ``error``."""
    RECOVERED = "recovered"
    """The look-up found the effect in place."""
    SEND = "send"
    """The look-up found the effect absent: sending again is safe."""
    RETRY = "retry"
    """Send again after ``delay`` seconds (see :class:`Wait`)."""
    LOOK_UP = "look_up"
    """Look the effect up first; :func:`after_look_up` decides from its answer."""
    GIVE_UP = "give_up"
    """The limits are reached: the record fails (``error``, else the attempt's)."""
    STOP = "stop"
    """The run cannot go on: raise ``stop``."""


class Wait(enum.Enum):
    """Who waits before a retry."""

    OWN = "own"
    """This request alone (a backoff): its place on the wire goes to another meanwhile."""
    SHARED = "shared"
    """A 429: the pacer decides whether every request waits, or this one alone."""
    HOLD = "hold"
    """Every request: nobody starts before ``delay`` has passed (the token exchange's 429)."""


class Purpose(enum.Enum):
    """Why the effect is looked up: what its answer means."""

    RESEND = "resend"
    """Before sending again a request that may have reached Hub."""
    CONFLICT = "conflict"
    """After a 409 or an "already exists"."""
    GONE = "gone"
    """After a DELETE's 404."""


class Looked(enum.Enum):
    """A look-up's answer."""

    PRESENT = "present"
    ABSENT = "absent"
    UNKNOWN = "unknown"
    """It cannot be told (no look-up for the template, part of a batch there)."""
    FAILED = "failed"
    """The look-up met a transient failure."""
    SETTLES = "settles"
    """What the request names as a parent does not exist: the record is rejected."""


@dataclass(frozen=True, slots=True)
class Move:
    """The next move (see :class:`Step`). ``counts_throttle``: a retry after a 429 (counted
    against ``max_throttled``, not ``max_attempts``). ``hold``: seconds every request waits
    whatever the move (the token exchange said when to come back). ``with_body``: the
    outcome carries the answer's body."""

    step: Step
    status: Status = Status.FAILED
    error: str = ""
    delay: float = 0.0
    wait: Wait = Wait.OWN
    counts_throttle: bool = False
    hold: float | None = None
    with_body: bool = False
    purpose: Purpose | None = None
    in_doubt: bool = False
    already_existed: bool = False
    already_gone: bool = False
    stop: StopRun | None = None


DONE = Move(Step.DONE)
_SEND = Move(Step.SEND)
_CAUSES_DOUBT = (
    "; the request may have reached Docker Hub and whether it took effect cannot be looked up, "
    "so it was not sent again"
)


def decide(attempted: Attempted, tally: Tally, retry: Retry, uniform: Uniform) -> Move:
    """The move after one attempt (see the module docstring)."""
    tried = attempted.tried
    if tried is Tried.ANSWERED:
        return _answered(attempted, tally, retry, uniform)
    if tried is Tried.DROPPED:
        return backoff(tally, retry, attempted.error, uniform)
    if tried is Tried.TOKEN_THROTTLED:
        asked = (attempted.delay, attempted.asked) if attempted.delay is not None else None
        delay, why = throttle_wait(tally, retry, asked, "on the token exchange", uniform)
        if why is not None:
            # Every request needs the token: the run cannot go on.
            return Move(Step.STOP, stop=WaitTooLong(why))
        return Move(Step.RETRY, delay=delay, wait=Wait.HOLD, counts_throttle=True)
    if tried is Tried.TOKEN_FAILED:
        if attempted.delay is None:
            return backoff(tally, retry, attempted.error, uniform)
        hold = min(attempted.delay, wait_limit(retry.max_elapsed))
        move = backoff(tally, retry, attempted.error, uniform, sleep=False)
        return Move(move.step, error=move.error, delay=move.delay, hold=hold)
    if tried is Tried.INVALID:
        return Move(Step.SETTLE, status=Status.REJECTED, error=attempted.error)
    return Move(Step.SETTLE, status=Status.FAILED, error=attempted.error)  # HOPELESS, BROKEN


def _answered(attempted: Attempted, tally: Tally, retry: Retry, uniform: Uniform) -> Move:
    verdict = attempted.verdict
    assert verdict is not None
    kind = verdict.kind
    if kind is VerdictKind.OK:
        return DONE
    if kind is VerdictKind.RETRY:
        if attempted.status == 429:
            asked = (attempted.delay, attempted.asked) if attempted.delay is not None else None
            delay, why = throttle_wait(tally, retry, asked, "", uniform)
            if why is not None:
                return Move(Step.GIVE_UP, error=why)
            return Move(Step.RETRY, delay=delay, wait=Wait.SHARED, counts_throttle=True)
        return backoff(tally, retry, verdict.message, uniform)
    if kind is VerdictKind.STOP:
        return Move(Step.STOP, stop=verdict.error())
    if kind is VerdictKind.CONFLICT:
        return Move(Step.LOOK_UP, purpose=Purpose.CONFLICT, error=verdict.message)
    if tally.delete and attempted.status == 404:
        # What the delete was for may be in place: the target is gone (an earlier attempt or
        # run deleted it, or it never was). The look-up tells that from a 404 for the parent
        # the path names (a team that does not exist: the record is wrong) and from a target
        # Hub still lists.
        return Move(Step.LOOK_UP, purpose=Purpose.GONE, error=verdict.message)
    return Move(Step.SETTLE, status=Status.REJECTED, error=verdict.message, with_body=True)


def after_look_up(
    purpose: Purpose,
    looked: Looked,
    tally: Tally,
    retry: Retry,
    uniform: Uniform,
    *,
    error: str = "",
    reason: str = "",
) -> Move:
    """The move after a look-up for ``purpose`` answered ``looked``. ``error`` is what the
    request met so far (for a resend, the failure the look-up follows, the look-up's own
    appended when it failed; otherwise Hub's message), ``reason`` the rejection when the
    look-up settles the record."""
    if looked is Looked.SETTLES:
        body = purpose is not Purpose.RESEND
        return Move(Step.SETTLE, status=Status.REJECTED, error=reason, with_body=body)
    if purpose is Purpose.RESEND:
        if looked is Looked.FAILED:
            return backoff(tally, retry, error, uniform)
        if looked is Looked.UNKNOWN:
            return Move(Step.SETTLE, error=error + _CAUSES_DOUBT, in_doubt=True)
        return Move(Step.RECOVERED) if looked is Looked.PRESENT else _SEND
    if purpose is Purpose.CONFLICT:
        if looked is Looked.PRESENT:
            return Move(Step.RECOVERED, already_existed=not tally.ambiguous)
        return Move(Step.SETTLE, status=Status.REJECTED, error=error, with_body=True)
    # GONE: absent, or it cannot be told: the delete's effect is taken as in place.
    if looked is Looked.ABSENT:
        return Move(Step.SETTLE, status=Status.REJECTED, error=error, with_body=True)
    return Move(Step.SETTLE, status=Status.OK, with_body=True, already_gone=True)


def backoff(
    tally: Tally, retry: Retry, reason: str, uniform: Uniform, *, sleep: bool = True
) -> Move:
    """Send again after a full-jitter backoff (no wait without ``sleep``), or give up when
    the attempts or the time are used up."""
    delay = 0.0
    if sleep:
        delay = backoff_delay(tally.failures, retry.backoff_base, retry.backoff_cap, uniform)
    if tally.failures + 1 >= retry.max_attempts or tally.elapsed + delay > retry.max_elapsed:
        return Move(Step.GIVE_UP)
    return Move(Step.RETRY, error=reason, delay=delay)


def throttle_wait(
    tally: Tally,
    retry: Retry,
    asked: tuple[float, str] | None,
    where: str,
    uniform: Uniform,
) -> tuple[float, str | None]:
    """The wait after a 429: ``(seconds, None)``, or ``(0, why)`` when the request must not
    wait (too long a wait asked, too many 429s, out of time). ``asked`` is the server's delay
    and the header that said it, if it did; ``where`` says where it was met."""
    throttled = tally.throttled + 1
    place = f" {where}" if where else ""
    if asked is not None and asked[0] > wait_limit(retry.max_elapsed):
        return 0.0, too_long(asked[0], asked[1], where, retry.max_elapsed)
    if asked is not None:
        delay = max(MIN_THROTTLE_WAIT, asked[0])
    else:
        drawn = backoff_delay(throttled - 1, retry.backoff_base, retry.backoff_cap, uniform)
        delay = max(MIN_THROTTLE_WAIT, drawn)
    if throttled > retry.max_throttled:
        return 0.0, (
            f"Docker Hub answered HTTP 429 (rate limited) {throttled} times{place}, "
            f"more than retry.max_throttled ({retry.max_throttled})"
        )
    if tally.elapsed + delay > retry.max_elapsed:
        said = f" ({asked[1]})" if asked is not None and asked[1] else ""
        return 0.0, (
            f"HTTP 429 (rate limited){place}: waiting {delay:g} s more{said} would pass "
            f"retry.max_seconds ({retry.max_elapsed:g} s)"
        )
    return delay, None
