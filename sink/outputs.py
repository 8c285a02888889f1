"""What a run leaves behind: the responses stream, the secrets vault and the rejects file.

Every output is written as it goes, one JSON line at a time, and flushed line by line:

- :class:`ResponsesFile` / :class:`WebhookResponses`: one line per request (record keys,
  template, status, HTTP status, response body with secret fields replaced by ``***``, error,
  duration, attempts);
- :class:`Vault`: the secrets Hub shows once (PAT and OAT creation), in a file created with
  mode 0600, each line fsync'd before :meth:`Vault.write` returns;
- :class:`RejectsFile`: each rejected or failed record as it came in, plus ``_sink_error``,
  ``_sink_status`` and ``_sink_index``, so that ``sink run CONFIG --input rejects.jsonl``
  replays it (the config leaves ``_sink_*`` attributes out).

Secrets: response lines and rejects pass through a :class:`~sink.redact.Redactor`, which
replaces known secrets and anything shaped like a Docker Hub token or a JWT. The webhook has a
client of its own: no Hub credential, JWT or hook ever reaches it, and it never stops a run
(lines it does not take are kept in a local file).

Privacy: these files hold e-mail addresses, usernames and raw records, so every one is opened
with :func:`open_private`: created 0600 whatever the umask, in folders created 0700 (existing
folders are the user's and left alone), a wider mode on an existing file narrowed, and a path
that is a directory, a symlink, a FIFO, a device or under a file refused with a
:class:`~sink.errors.ConfigError` (without blocking on a FIFO).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import http.cookiejar
import os
import random
import stat
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import orjson

from sink.errors import ConfigError, StopRun
from sink.model import Outcome, Record, VaultEntry
from sink.origin import is_loopback
from sink.redact import Redactor, redact

__all__ = [
    "REJECT_FIELDS",
    "Redactor",
    "RejectsFile",
    "ResponsesFile",
    "Vault",
    "WebhookResponses",
    "check_webhook_url",
    "open_private",
    "private_dirs",
    "redact",
    "reject_line",
    "response_line",
    "webhook_url_problem",
]

# Keys of Outcome.extra that never leave the process through the responses stream.
PRIVATE_EXTRA = frozenset({"vault"})

# The attributes a rejects line adds to the record; all start with "_sink_" (left out on replay).
REJECT_FIELDS = ("_sink_error", "_sink_status", "_sink_index", "_sink_key")


# -- the responses stream ---------------------------------------------------------------------


def response_line(
    outcome: Outcome, secret_fields: Collection[str] = (), redactor: Redactor | None = None
) -> dict[str, Any]:
    """One responses-stream line for ``outcome``, with secret fields replaced by ``***``."""
    line: dict[str, Any] = {
        "keys": list(outcome.keys),
        "template": outcome.template,
        "status": outcome.status.value,
        "http_status": outcome.http_status,
        "body": redact(outcome.body, secret_fields),
        "error": outcome.error,
        "duration": round(outcome.duration, 4),
        "attempts": outcome.attempts,
    }
    extra = {name: value for name, value in outcome.extra.items() if name not in PRIVATE_EXTRA}
    if extra:
        line["extra"] = extra
    return line if redactor is None else dict(redactor.scrub(line))


# -- private files ----------------------------------------------------------------------------

PRIVATE_FILE_MODE = 0o600
"""The mode of every file a run writes: they hold e-mail addresses, usernames, raw records."""
PRIVATE_DIR_MODE = 0o700
"""The mode of every folder sink creates for them (existing folders are left as they are)."""


def private_dirs(directory: str | os.PathLike[str]) -> None:
    """Create ``directory`` and its missing parents with mode 0700 (whatever the umask).

    Folders that already exist are left as they are: they are the user's. A part of the path
    that is a file raises :class:`NotADirectoryError`.
    """
    missing: list[Path] = []
    current = Path(directory)
    while True:
        try:
            info = os.stat(current)  # a symlink to a folder the user made is a folder
        except FileNotFoundError:
            missing.append(current)
            if current.parent == current:
                break
            current = current.parent
            continue
        if not stat.S_ISDIR(info.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "a part of the path is a file", str(current))
        break
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_DIR_MODE)
        except FileExistsError:
            if not folder.is_dir():
                raise NotADirectoryError(
                    errno.ENOTDIR, "a part of the path is a file", str(folder)
                ) from None
            continue  # made by someone else meanwhile: theirs
        os.chmod(folder, PRIVATE_DIR_MODE)  # the umask may have taken more than group/other


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _refusal(what: str, path: Path, problem: str) -> ConfigError:
    return ConfigError(f"cannot use {path} as {what}: {problem}")


def check_private_target(path: str | os.PathLike[str], what: str) -> bool:
    """Refuse a path that cannot become a private regular file (a directory, a symlink, a
    FIFO, a device, a path under a file); True when the file exists already. Nothing is
    created, nothing is opened (a FIFO would block)."""
    target = Path(path)
    try:
        info = os.lstat(target)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as exc:
        raise _refusal(what, target, exc.strerror or str(exc)) from exc
    else:
        if not stat.S_ISREG(info.st_mode):
            raise _refusal(what, target, f"it is {_kind(info.st_mode)}; it must be a regular file")
        return True
    for parent in target.parents:  # the nearest one that exists must be a folder
        try:
            mode = os.stat(parent).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise _refusal(what, target, exc.strerror or str(exc)) from exc
        if not stat.S_ISDIR(mode):
            raise _refusal(what, target, f"{parent} is a file, not a folder")
        break
    return False


def open_private(
    path: str | os.PathLike[str], flags: int, *, what: str, create: bool = True
) -> tuple[int, bool]:
    """Open ``path`` as a private regular file: ``(fd, narrowed)``.

    Missing folders are created 0700 (:func:`private_dirs`); the file is created 0600 whatever
    the umask, and an existing file whose mode lets group or others in is narrowed to 0600
    (``narrowed`` is then True). A directory, a symlink, a FIFO (opened without blocking), a
    device, a path under a file or an unwritable path is a :class:`ConfigError` naming
    ``what``. ``flags`` are the access flags (``os.O_WRONLY | os.O_APPEND``, ...).
    """
    target = Path(path)
    existed = check_private_target(target, what)
    if create:
        try:
            private_dirs(target.parent)
        except OSError as exc:
            raise _refusal(what, target, exc.strerror or str(exc)) from exc
    extra = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    try:
        fd = os.open(target, flags | extra, PRIVATE_FILE_MODE)
    except OSError as exc:
        problem = {
            errno.ELOOP: "it is a symbolic link; it must be a regular file",
            errno.EISDIR: "it is a directory; it must be a regular file",
            errno.ENXIO: "it is a FIFO (named pipe) or a device; it must be a regular file",
            errno.ENOTDIR: "a part of its path is a file, not a folder",
        }.get(exc.errno or 0, exc.strerror or str(exc))
        raise _refusal(what, target, problem) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refusal(what, target, f"it is {_kind(info.st_mode)}; it must be a regular file")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        narrowed = False
        if stat.S_IMODE(info.st_mode) != PRIVATE_FILE_MODE and (
            not existed or info.st_mode & 0o077
        ):
            try:
                os.fchmod(fd, PRIVATE_FILE_MODE)
            except OSError as exc:
                raise _refusal(
                    what,
                    target,
                    f"its mode {stat.S_IMODE(info.st_mode):o} lets others read "
                    f"it and cannot be narrowed ({exc.strerror or exc})",
                ) from exc
            narrowed = existed
    except BaseException:
        os.close(fd)
        raise
    return fd, narrowed


def narrow_if_present(path: str | os.PathLike[str], what: str) -> bool:
    """Narrow an existing private file to 0600 (True when it was wider); a missing file is
    left missing. For files another program creates beside ours (SQLite's ``-wal``)."""
    try:
        fd, narrowed = open_private(path, os.O_RDONLY, what=what, create=False)
    except ConfigError as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            return False
        raise
    os.close(fd)
    return narrowed


def _open_lines(path: Path, append: bool, what: str) -> tuple[Any, bool]:
    flags = os.O_WRONLY | (os.O_APPEND if append else os.O_TRUNC)
    fd, narrowed = open_private(path, flags, what=what)
    return os.fdopen(fd, "ab" if append else "wb", buffering=0), narrowed


class ResponsesFile:
    """The responses stream as a JSON Lines file; every line reaches the OS as it is written.

    ``secret_fields`` are redacted at any depth in every body (on top of what the dispatcher
    already removed); ``redactor`` scrubs known secrets from every string. The file is private
    (0600, in folders created 0700); ``mode_fixed`` says a wider mode was narrowed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        secret_fields: Collection[str] = (),
        redactor: Redactor | None = None,
        append: bool = False,
    ) -> None:
        self.path = Path(path)
        self.secret_fields = frozenset(secret_fields)
        self.redactor = redactor if redactor is not None else Redactor()
        self.written = 0
        self._file, self.mode_fixed = _open_lines(self.path, append, "the responses file")

    def write(self, outcome: Outcome) -> None:
        """Append the line for ``outcome``."""
        line = response_line(outcome, self.secret_fields)
        self._file.write(self.redactor.json_line(line))
        self.written += 1

    def close(self) -> None:
        """Close the file (every line is already written)."""
        self._file.close()

    async def aclose(self) -> None:
        """Close the file: the same call as :meth:`WebhookResponses.aclose`."""
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


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


# -- the secrets vault ------------------------------------------------------------------------


class Vault:
    """Secrets shown once by Hub, one JSON line per created token, in a file only its owner can
    read (mode 0600 in folders created 0700; a wider mode on an existing file is narrowed:
    ``mode_fixed``). :meth:`write` returns only once the line is on disk (fsync), so a record
    is marked done after its secret is safe.

    Open it before the first request (``Vault(path)``): the path is checked then (a directory,
    a symlink, a FIFO, a path under a file or an unwritable path is a :class:`ConfigError`,
    without waiting), the file is created, and it is locked (``flock``, exclusive) so that no
    other sink process writes the same vault meanwhile; ``lock=False`` skips the lock.
    """

    WHAT = "the secrets vault"

    def __init__(self, path: str | os.PathLike[str], *, lock: bool = True) -> None:
        self.path = Path(path)
        self.written = 0
        created = not check_private_target(self.path, self.WHAT)
        fd, self.mode_fixed = open_private(self.path, os.O_RDWR | os.O_APPEND, what=self.WHAT)
        try:
            self.locked = False
            if lock:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise ConfigError(
                        f"the secrets vault {self.path} is in use by another sink process (a "
                        "run or test of a destination that writes the same vault); wait for it "
                        "to finish, or give this destination its own vault"
                    ) from None
                except OSError as exc:
                    raise _refusal(self.WHAT, self.path, exc.strerror or str(exc)) from exc
                self.locked = True
            if created:
                _fsync_directory(self.path.parent)
            self.count = 0 if created else sum(1 for line in _lines_of(fd) if line.strip())
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, lock: bool = True) -> Vault:
        """The vault at ``path``, checked, created and locked (the same as ``Vault(path)``)."""
        return cls(path, lock=lock)

    def __repr__(self) -> str:
        return f"Vault({str(self.path)!r}, count={self.count})"

    def keys(self) -> frozenset[str]:
        """The record keys this vault holds secrets for (read through the open file)."""
        if self._fd is None:
            raise ValueError("the vault is closed")
        return _keys_in(_lines_of(self._fd))

    def write(self, entry: VaultEntry | Mapping[str, Any]) -> None:
        """Append ``entry`` and fsync before returning."""
        if self._fd is None:
            raise ValueError("the vault is closed")
        line = entry.to_line(time.time()) if isinstance(entry, VaultEntry) else dict(entry)
        data = orjson.dumps(line) + b"\n"
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)
        self.count += 1
        self.written += 1

    def close(self) -> None:
        """Close the file (and so release its lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def vault_keys(path: str | os.PathLike[str]) -> frozenset[str]:
    """The record keys a vault file holds secrets for (none when there is no file yet).

    A path that is not a regular file (a FIFO would block a plain open) is a
    :class:`ConfigError`."""
    try:
        fd, _ = open_private(path, os.O_RDONLY, what=Vault.WHAT, create=False)
    except ConfigError as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            return frozenset()
        raise
    try:
        return _keys_in(_lines_of(fd))
    finally:
        os.close(fd)


def _lines_of(fd: int) -> Iterator[bytes]:
    """The lines of the file open as ``fd``, from its start (``pread``: the offset stays)."""
    offset = 0
    rest = b""
    while chunk := os.pread(fd, 1 << 16, offset):
        offset += len(chunk)
        *whole, rest = (rest + chunk).split(b"\n")
        yield from whole
    if rest:
        yield rest


def _keys_in(lines: Iterable[bytes]) -> frozenset[str]:
    keys: set[str] = set()
    for line in lines:
        try:
            key = orjson.loads(line).get("key")
        except (orjson.JSONDecodeError, AttributeError):
            continue  # a torn last line: the kill came before its fsync returned
        if isinstance(key, str):
            keys.add(key)
        elif isinstance(key, list):
            keys.update(k for k in key if isinstance(k, str))
    return frozenset(keys)


def _fsync_directory(directory: Path) -> None:
    # Makes the new file's name durable, not only its content. Not every system allows it.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- rejects ----------------------------------------------------------------------------------


def reject_line(
    data: Mapping[str, Any],
    error: str,
    status: int | None = None,
    index: int | None = None,
    key: str | None = None,
    raw: str | None = None,
) -> dict[str, Any]:
    """The record as it came in (earlier ``_sink_*`` attributes dropped) plus the reason.

    Excluded columns are written too (the ``original`` of a :class:`~sink.sources.Trimmed`,
    looked up by name: importing :mod:`sink.sources` here would load pyarrow on every start);
    ``raw`` is the line of a row that could not be read, as ``_sink_raw``.
    """
    data = getattr(data, "original", data)
    line = {name: value for name, value in data.items() if not str(name).startswith("_sink_")}
    if raw is not None:
        line["_sink_raw"] = raw
    line["_sink_error"] = error
    line["_sink_status"] = status
    line["_sink_index"] = index
    if key:
        line["_sink_key"] = key
    return line


class RejectsFile:
    """Rejected and failed records as JSON Lines, replayable as an input after a fix."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        redactor: Redactor | None = None,
        append: bool = False,
    ) -> None:
        self.path = Path(path)
        self.redactor = redactor if redactor is not None else Redactor()
        self.written = 0
        self._file, self.mode_fixed = _open_lines(self.path, append, "the rejects file")

    def write(
        self,
        record: Record | Mapping[str, Any],
        error: str,
        status: int | None = None,
        *,
        index: int | None = None,
        raw: str | None = None,
    ) -> None:
        """Append ``record`` (a :class:`Record` or its values) with the reason it failed.

        ``raw`` is the text of a row that could not be read into values.
        """
        if isinstance(record, Record):
            line = reject_line(
                record.data, self.redactor(error), status, record.index, record.key or None, raw
            )
        else:
            line = reject_line(record, self.redactor(error), status, index, raw=raw)
        self._file.write(orjson.dumps(line, default=str) + b"\n")
        self.written += 1

    def close(self) -> None:
        """Close the file (every line is already written)."""
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
