"""What a response from Docker Hub means (DESIGN.md, "What a response means"), and what a
transport failure says about whether the request reached it. Pure functions of a response or
an exception: no I/O."""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from sink.errors import CredentialsError, NeedsOrgToken, StopRun
from sink.send.pacing import parse_quota, parse_retry_after

PAT_NOT_ALLOWED = "token issued from personal access token is not allowed"
OAT_NOT_ALLOWED = "token issued from organization access token is not allowed"


# 5xx answers after which a POST/PATCH may or may not have taken effect. A gateway's 502/503/504
# and an application's 500 can all come after the change was applied (DESIGN.md: "a 503 that
# arrives after Hub applied the change"), so every 5xx counts except those that say the request
# was not understood at all: 501 Not Implemented and 505 HTTP Version Not Supported.
AMBIGUOUS_5XX = frozenset(range(500, 600)) - {501, 505}

# Transport failures after which the request cannot have reached the server.
_NOT_SENT: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
)


class VerdictKind(enum.Enum):
    """What to do with a response."""

    OK = "ok"
    REJECT = "reject"
    RETRY = "retry"
    CONFLICT = "conflict"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The meaning of one response: its kind, Hub's message, and for 429 the delay asked for.

    For ``STOP``, ``stop`` is the :class:`~sink.errors.StopRun` subclass to raise."""

    kind: VerdictKind
    message: str = ""
    delay: float | None = None
    stop: type[StopRun] | None = None

    def error(self) -> StopRun:
        """The exception that stops the run (for ``STOP`` verdicts)."""
        return (self.stop or StopRun)(self.message)


def parse_body(response: httpx.Response) -> Any:
    """A response body as parsed JSON, else as text; ``None`` when empty."""
    content = response.content
    if not content:
        return None
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return response.text


def hub_message(response: httpx.Response, body: Any = None) -> str:
    """Hub's error message, read leniently: ``message``, then ``detail``, then ``text``, with
    ``errinfo``/``fields`` appended when present (REFERENCE.md §3); the raw text otherwise."""
    if body is None:
        body = parse_body(response)
    status = f"HTTP {response.status_code}"
    if isinstance(body, dict):
        message = ""
        for name in ("message", "detail", "text"):
            value = body.get(name)
            if isinstance(value, str) and value.strip():
                message = value.strip()
                break
        details = []
        for name in ("fields", "errinfo"):
            value = body.get(name)
            if value:
                details.append(f"{name}: {orjson.dumps(value).decode()}")
        if message or details:
            return "; ".join([f"{status}: {message}" if message else status, *details])
    if isinstance(body, str) and body.strip():
        return f"{status}: {body.strip()[:300]}"
    return f"{status} {response.reason_phrase}".strip()


def classify(response: httpx.Response, now: float | None = None) -> Verdict:
    """Decide what ``response`` means (DESIGN.md's table). ``now`` is the Unix time used to
    read an ``X-Retry-After`` epoch (default: the current time)."""
    status = response.status_code
    if 200 <= status < 300:
        return Verdict(VerdictKind.OK)
    if status == 429:
        when = time.time() if now is None else now
        return Verdict(
            VerdictKind.RETRY,
            "HTTP 429: rate limited by Docker Hub",
            delay=parse_retry_after(response.headers, when),
        )
    if status >= 500:
        return Verdict(VerdictKind.RETRY, hub_message(response))
    message = hub_message(response)
    lowered = message.lower()
    if status == 401:
        return Verdict(
            VerdictKind.STOP,
            f"Docker Hub refused the credentials ({message}). Check the connection's "
            "identifier and secret.",
            stop=CredentialsError,
        )
    if status == 403 and PAT_NOT_ALLOWED in lowered:
        return Verdict(
            VerdictKind.STOP,
            "this operation needs an organization access token, and the connection uses a "
            "personal access token. Set the connection's identifier to the organization name "
            f"and its secret to an organization access token (dckr_oat_...). ({message})",
            stop=NeedsOrgToken,
        )
    if status == 403 and OAT_NOT_ALLOWED in lowered:
        # Every record of this template would meet the same refusal: stop, like the PAT case.
        return Verdict(
            VerdictKind.STOP,
            "this operation does not accept an organization access token. Use a username "
            f"with a personal access token instead. ({message})",
            stop=StopRun,
        )
    if status == 409 or "already exists" in lowered:
        return Verdict(VerdictKind.CONFLICT, message)
    if status == 408:
        return Verdict(VerdictKind.RETRY, message)
    return Verdict(VerdictKind.REJECT, message)


def overloaded(status: int, headers: Mapping[str, str]) -> bool:
    """Whether an answer says "slow down" without saying the quota: a 503, or a 429 without
    ``X-RateLimit-*`` (a limit other than the credential's quota, or a server that does not
    report one). The pacer lowers the requests in flight when such answers are dense."""
    if status == 503:
        return True
    return status == 429 and parse_quota(headers) is None


def may_have_arrived(exc: Exception) -> bool:
    """Whether a request that failed with ``exc`` may have reached the server (and so may have
    taken effect): false only for failures before or while connecting."""
    return not isinstance(exc, _NOT_SENT)


def describe(exc: BaseException) -> str:
    """A short description of a transport failure."""
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
