"""The responses webhook: each responses line POSTed to the user's own endpoint, by a client of
its own (no Hub credential, JWT or hook ever reaches it); it never stops a run, and lines it does
not take are kept in a local file."""

from __future__ import annotations

import asyncio
import http.cookiejar
import os
import random
import time
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any

import httpx
import orjson

from sink.errors import ConfigError, StopRun
from sink.model import Outcome
from sink.origin import is_loopback
from sink.outputs.files import check_private_target, open_private, response_line
from sink.outputs.redact import Redactor

# -- the responses webhook --------------------------------------------------------------------


def _safe_url(url: httpx.URL) -> str:
    """A URL fit to print: no user info, no query (webhook URLs often carry an API key)."""
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))


def webhook_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a responses webhook, in words, or None when it is fit:
    an ``https`` URL (plain ``http`` only to this machine), with no user info."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        return f"is not a URL ({exc})"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "must be an https:// URL"
    if parsed.userinfo:
        return (
            "must not hold user info (user@ or user:password@ before the host): sink sends no "
            "credentials to a webhook; put the webhook's own key in its path or query"
        )
    if parsed.scheme == "http" and not is_loopback(parsed.host):
        return (
            "plain http would send the responses unencrypted: use https "
            "(http is accepted only for this machine: localhost, 127.0.0.1, ::1)"
        )
    return None


def check_webhook_url(url: str) -> httpx.URL:
    """``url`` parsed, or a :class:`ConfigError` saying what is wrong (never its query)."""
    problem = webhook_url_problem(url)
    if problem is not None:
        try:
            shown = _safe_url(httpx.URL(url))
        except (httpx.InvalidURL, TypeError, ValueError):
            shown = "responses.webhook"
        raise ConfigError(f"the responses webhook {shown} {problem}")
    return httpx.URL(url)


class _NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that keeps nothing: a webhook's cookies are never sent back."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return 0.0
    return seconds if seconds == seconds and seconds > 0 else 0.0  # NaN, negative: no wait


class WebhookResponses:
    """The responses stream POSTed to a webhook, one line (``batch_size`` 1) or a JSON array
    of up to ``batch_size`` lines per call.

    The webhook is not Docker Hub, and nothing of Hub's reaches it: it has its own client,
    with no auth, no event hooks, no cookies, no redirects followed, and its own timeouts and
    retries (jittered, bounded by ``max_seconds`` per delivery, each request by ``timeout``
    from start to end). The client honours proxy settings of the environment (``HTTPS_PROXY``,
    ``NO_PROXY``) and ``SSL_CERT_FILE``; httpx reads no credential from it.

    Lines are delivered in the background, in order; :meth:`write` waits only while
    ``queue_size`` lines are queued already. The webhook never stops a run: a line it cannot
    take (a 4xx, retries exhausted, a transport failure) is appended to ``undelivered`` (a
    private JSON Lines file, each line with ``_sink_webhook_error``), and after
    ``give_up_after`` failed deliveries in a row the rest go there without being tried, so a
    webhook that hangs costs a run at most that many ``max_seconds``. :attr:`undelivered`
    counts them and :meth:`summary` says where they are. :meth:`aclose` delivers what is
    queued (for at most ``close_timeout`` seconds; what is left goes to the file) and closes.
    Only a failure to keep lines in that file stops the run (:class:`StopRun`).
    """

    def __init__(
        self,
        url: str,
        *,
        undelivered: str | os.PathLike[str],
        secret_fields: Collection[str] = (),
        redactor: Redactor | None = None,
        batch_size: int = 1,
        timeout: float = 10.0,
        max_attempts: int = 5,
        max_seconds: float = 30.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 10.0,
        give_up_after: int = 3,
        queue_size: int = 1000,
        close_timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.url = check_webhook_url(url)
        self.undelivered_path = Path(undelivered)
        check_private_target(self.undelivered_path, "the undelivered webhook lines file")
        self.secret_fields = frozenset(secret_fields)
        self.redactor = redactor if redactor is not None else Redactor()
        self.batch_size = batch_size
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.max_seconds = max_seconds
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.give_up_after = max(1, give_up_after)
        self.close_timeout = close_timeout
        self.client = httpx.AsyncClient(
            auth=None,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"User-Agent": "sink/0.1"},
            follow_redirects=False,
            cookies=_NoCookies(),
            transport=transport,
            trust_env=True,
        )
        self._sleep = sleep
        self._uniform = (rng or random.Random()).uniform
        self._pending: list[dict[str, Any]] = []
        self._queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue(
            max(1, queue_size // batch_size)
        )
        self._current: list[dict[str, Any]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._failures = 0  # failed deliveries in a row
        self._down: str | None = None  # why the webhook is no longer tried
        self._spill_fd: int | None = None
        self._spill_error: str | None = None
        self._closed = False
        self.written = 0
        """Lines the webhook took (2xx)."""
        self.undelivered = 0
        """Lines the webhook did not take, kept in :attr:`undelivered_path`."""
        self.problem: str | None = None
        """The last delivery failure, fit to print."""
        self.mode_fixed = False

    def __repr__(self) -> str:
        return f"WebhookResponses({_safe_url(self.url)!r})"

    @property
    def where(self) -> str:
        """The webhook's URL fit to print (no user info, no query)."""
        return _safe_url(self.url)

    def summary(self) -> str | None:
        """What the run's summary says about lines the webhook did not take (None: none)."""
        if not self.undelivered:
            return None
        lines = "line" if self.undelivered == 1 else "lines"
        why = f" ({self.problem})" if self.problem else ""
        return (
            f"{self.undelivered} response {lines} could not be delivered to the webhook "
            f"{self.where}{why}; they are in {self.undelivered_path}"
        )

    async def write(self, outcome: Outcome) -> None:
        """Queue the line for ``outcome``; a full batch goes to the delivery queue."""
        self._check()
        self._pending.append(response_line(outcome, self.secret_fields, self.redactor))
        if len(self._pending) >= self.batch_size:
            await self._enqueue()

    async def flush(self) -> None:
        """Hand every queued line to the webhook and wait until each is delivered or kept in
        the undelivered file."""
        if self._pending:
            await self._enqueue()
        if self._worker is not None:
            await self._queue.join()
        self._check()

    async def aclose(self) -> None:
        """Deliver what is queued (for at most ``close_timeout`` seconds: the rest goes to the
        undelivered file), then close the client and the file."""
        if self._closed:
            return
        try:
            async with asyncio.timeout(self.close_timeout):
                await self.flush()
        except TimeoutError:
            self._down = self._down or f"still busy {self.close_timeout:g} s after the run ended"
        finally:
            self._closed = True
            # Kept before anything else is awaited: a second Ctrl-C must not lose them.
            if self._worker is not None:
                self._worker.cancel()
            reason = self._down or "the run ended before it was delivered"
            if self._current is not None:
                self._spill(self._current, reason)
                self._current = None
            while not self._queue.empty():
                self._spill(self._queue.get_nowait(), reason)
            if self._pending:
                self._spill(self._pending, reason)
                self._pending = []
            try:
                if self._worker is not None:
                    await asyncio.gather(self._worker, return_exceptions=True)
                await self.client.aclose()
            finally:
                if self._spill_fd is not None:
                    os.close(self._spill_fd)
                    self._spill_fd = None
        self._check()

    def _check(self) -> None:
        if self._spill_error is not None:
            raise StopRun(self._spill_error)

    async def _enqueue(self) -> None:
        batch, self._pending = self._pending, []
        if self._down is not None or self._closed:
            self._spill(batch, self._down or "the webhook stream was closed")
            return
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())
        try:
            await self._queue.put(batch)
        except BaseException:
            self._spill(batch, "the run stopped before it was delivered")
            raise

    async def _work(self) -> None:
        while True:
            batch = await self._queue.get()
            self._current = batch
            try:
                if self._down is not None:
                    self._spill(batch, self._down)
                    continue
                problem = await self._deliver(batch)
                if problem is None:
                    self.written += len(batch)
                    self._failures = 0
                    continue
                self._failures += 1
                self._spill(batch, problem)
                if self._failures >= self.give_up_after:
                    self._down = (
                        f"not tried: {self._failures} deliveries in a row failed ({problem})"
                    )
            except Exception as exc:  # noqa: BLE001 - the worker must live on; the line is kept
                self._spill(batch, f"{type(exc).__name__}")
            finally:
                self._current = None
                self._queue.task_done()

    async def _deliver(self, batch: list[dict[str, Any]]) -> str | None:
        """POST one batch with retries; None when the webhook took it, else why not."""
        content = orjson.dumps(batch[0] if self.batch_size == 1 else batch)
        started = time.monotonic()
        problem = "no attempt"
        wait_hint = 0.0
        attempts = 0
        for attempt in range(self.max_attempts):
            if attempt:
                ceiling = min(self.backoff_cap, self.backoff_base * 2.0 ** (attempt - 1))
                wait = min(self.backoff_cap, max(self._uniform(0.0, ceiling), wait_hint))
                if time.monotonic() - started + wait >= self.max_seconds:
                    break
                await self._sleep(wait)
            left = self.max_seconds - (time.monotonic() - started)
            if left <= 0:
                break
            attempts += 1
            wait_hint = 0.0
            try:
                async with asyncio.timeout(min(self.timeout, left)):
                    response = await self.client.send(
                        self.client.build_request(
                            "POST",
                            self.url,
                            content=content,
                            headers={"Content-Type": "application/json"},
                        ),
                        stream=True,  # the answer's body is not read: it could be anything
                    )
                    await response.aclose()
            except TimeoutError:
                problem = f"no answer within {min(self.timeout, left):g} s"
                continue
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
                continue
            status = response.status_code
            if 200 <= status < 300:
                return None
            problem = f"HTTP {status}"
            if status in (408, 429) or status >= 500:
                wait_hint = _retry_after(response)
                continue
            if 300 <= status < 400:
                problem += " (redirects are not followed)"
            return problem  # refused for good
        tries = "attempt" if attempts == 1 else "attempts"
        return f"{problem}, after {attempts} {tries}"

    def _spill(self, batch: list[dict[str, Any]], reason: str) -> None:
        """Keep ``batch`` in the undelivered file (each line fsync'd as a whole)."""
        if not batch:
            return
        self.problem = reason
        data = b"".join(
            orjson.dumps({**line, "_sink_webhook_error": reason}, default=str) + b"\n"
            for line in batch
        )
        try:
            if self._spill_fd is None:
                flags = os.O_WRONLY | os.O_APPEND
                self._spill_fd, self.mode_fixed = open_private(
                    self.undelivered_path, flags, what="the undelivered webhook lines file"
                )
            view = memoryview(data)
            while view:
                view = view[os.write(self._spill_fd, view) :]
        except (OSError, ConfigError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._spill_error = self._spill_error or (
                f"the responses webhook {self.where} did not take {len(batch)} line(s) "
                f"({reason}) and they cannot be kept in {self.undelivered_path}: {detail}"
            )
            return
        self.undelivered += len(batch)
