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
replaces known secrets and anything shaped like a Docker Hub token or a JWT.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import stat
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import orjson

from sink.errors import ConfigError, StopRun
from sink.model import Outcome, Record
from sink.redact import REDACTED, Redactor, redact

__all__ = [
    "REJECT_FIELDS",
    "Redactor",
    "RejectsFile",
    "ResponsesFile",
    "Vault",
    "VaultEntry",
    "WebhookResponses",
    "redact",
    "reject_line",
    "response_line",
]

# Keys of Outcome.extra that never leave the process through the responses stream.
PRIVATE_EXTRA = frozenset({"vault"})

# The attributes a rejects line adds to the record; all start with "_sink_" (left out on replay).
REJECT_FIELDS = ("_sink_error", "_sink_status", "_sink_index", "_sink_key")


class VaultEntry:
    """The secrets of one created token, on their way to the vault.

    Deliberately not a dataclass: JSON encoders (orjson serialises dataclasses) refuse it, and
    its repr hides the secret values, so it cannot leak into the responses stream or a log.
    """

    __slots__ = ("keys", "label", "secrets", "template", "token_id")

    def __init__(
        self,
        keys: tuple[str, ...],
        template: str,
        token_id: str | None,
        label: str | None,
        secrets: Mapping[str, Any],
    ) -> None:
        self.keys = keys
        self.template = template
        self.token_id = token_id
        self.label = label
        self.secrets = dict(secrets)

    @classmethod
    def from_body(
        cls, keys: tuple[str, ...], template: str, body: Any, secrets: Mapping[str, Any]
    ) -> VaultEntry:
        """An entry for a create-token response: the id is ``uuid`` (PAT) or ``id`` (OAT),
        the label ``token_label`` (PAT) or ``label`` (OAT)."""
        token_id = label = None
        if isinstance(body, dict):
            raw_id = body.get("uuid") or body.get("id")
            raw_label = body.get("token_label") or body.get("label")
            token_id = None if raw_id is None else str(raw_id)
            label = None if raw_label is None else str(raw_label)
        return cls(keys, template, token_id, label, secrets)

    def __repr__(self) -> str:
        hidden = ", ".join(f"{name}={REDACTED}" for name in self.secrets)
        return (
            f"VaultEntry(keys={self.keys!r}, template={self.template!r}, "
            f"token_id={self.token_id!r}, label={self.label!r}, {hidden})"
        )

    def to_line(self, written_at: float) -> dict[str, Any]:
        """The vault line: the record key(s), template, token id, label and the secrets."""
        line: dict[str, Any] = {
            "key": self.keys[0] if len(self.keys) == 1 else list(self.keys),
            "template": self.template,
            "token_id": self.token_id,
            "label": self.label,
        }
        for name, value in self.secrets.items():
            if name in line:
                name = f"secret.{name}"
            line[name] = value
        line["written_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(written_at))
        return line


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


def _open_lines(path: Path, append: bool) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return open(path, "ab" if append else "wb", buffering=0)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc


class ResponsesFile:
    """The responses stream as a JSON Lines file; every line reaches the OS as it is written.

    ``secret_fields`` are redacted at any depth in every body (on top of what the dispatcher
    already removed); ``redactor`` scrubs known secrets from every string.
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
        self._file = _open_lines(self.path, append)

    def write(self, outcome: Outcome) -> None:
        """Append the line for ``outcome``."""
        line = response_line(outcome, self.secret_fields)
        self._file.write(self.redactor.json_line(line))
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


def _safe_url(url: httpx.URL) -> str:
    """A URL fit to print: no user info, no query (webhook URLs often carry an API key)."""
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))


class WebhookResponses:
    """The responses stream POSTed to a webhook, one line (``batch_size`` 1) or a JSON array
    of up to ``batch_size`` lines per call, with its own retries. A webhook that refuses lines
    for good (4xx, or retries exhausted) stops the run: responses must not be lost."""

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        *,
        secret_fields: Collection[str] = (),
        redactor: Redactor | None = None,
        batch_size: int = 1,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 10.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.url = httpx.URL(url)
        self.client = client
        self.secret_fields = frozenset(secret_fields)
        self.redactor = redactor if redactor is not None else Redactor()
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._uniform = (rng or random.Random()).uniform
        self._pending: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()
        self.written = 0

    def __repr__(self) -> str:
        return f"WebhookResponses({_safe_url(self.url)!r})"

    async def write(self, outcome: Outcome) -> None:
        """Queue the line for ``outcome``; POST once ``batch_size`` lines are queued."""
        self._pending.append(response_line(outcome, self.secret_fields, self.redactor))
        if len(self._pending) >= self.batch_size:
            await self.flush()

    async def flush(self) -> None:
        """POST every queued line now."""
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            payload = batch[0] if self.batch_size == 1 else batch
            await self._post(orjson.dumps(payload))
            self.written += len(batch)

    async def aclose(self) -> None:
        """Flush what is queued."""
        await self.flush()

    async def _post(self, content: bytes) -> None:
        where = _safe_url(self.url)
        problem = ""
        for attempt in range(self.max_attempts):
            if attempt:
                ceiling = min(self.backoff_cap, self.backoff_base * 2.0 ** (attempt - 1))
                await self._sleep(self._uniform(0.0, ceiling))
            try:
                response = await self.client.post(
                    self.url, content=content, headers={"Content-Type": "application/json"}
                )
            except httpx.TransportError as exc:
                problem = type(exc).__name__
                continue
            status = response.status_code
            if status < 300:
                return
            if status == 429 or status >= 500 or status == 408:
                problem = f"HTTP {status}"
                continue
            raise StopRun(f"the responses webhook {where} refused a line (HTTP {status})")
        raise StopRun(
            f"the responses webhook {where} could not be reached after "
            f"{self.max_attempts} attempts ({problem})"
        )


# -- the secrets vault ------------------------------------------------------------------------


class Vault:
    """Secrets shown once by Hub, one JSON line per created token, in a file only its owner can
    read (mode 0600, a wider mode on an existing file is narrowed). :meth:`write` returns only
    once the line is on disk (fsync), so a record is marked done after its secret is safe."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.mode_fixed = False
        self.written = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"cannot open the secrets vault {self.path}: {exc.strerror or exc}"
            ) from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(f"the secrets vault {self.path} is not a regular file")
            if info.st_mode & 0o077:
                os.fchmod(fd, 0o600)
                self.mode_fixed = True
            if created:
                _fsync_directory(self.path.parent)
            self.count = _count_lines(self.path) if not created else 0
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd

    def __repr__(self) -> str:
        return f"Vault({str(self.path)!r}, count={self.count})"

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
        """Close the file."""
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
    """The record keys a vault file holds secrets for (none when there is no file yet)."""
    keys: set[str] = set()
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; a missing file means no keys
    except FileNotFoundError:
        return frozenset()
    with handle:
        for line in handle:
            try:
                key = orjson.loads(line).get("key")
            except (orjson.JSONDecodeError, AttributeError):
                continue  # a torn last line: the kill came before its fsync returned
            if isinstance(key, str):
                keys.add(key)
            elif isinstance(key, list):
                keys.update(k for k in key if isinstance(k, str))
    return frozenset(keys)


def _count_lines(path: Path) -> int:
    count = 0
    with open(path, "rb") as handle:
        for line in handle:
            if line.strip():
                count += 1
    return count


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
) -> dict[str, Any]:
    """The record as it came in (earlier ``_sink_*`` attributes dropped) plus the reason."""
    line = {name: value for name, value in data.items() if not str(name).startswith("_sink_")}
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
        self._file = _open_lines(self.path, append)

    def write(
        self,
        record: Record | Mapping[str, Any],
        error: str,
        status: int | None = None,
        *,
        index: int | None = None,
    ) -> None:
        """Append ``record`` (a :class:`Record` or its values) with the reason it failed."""
        if isinstance(record, Record):
            line = reject_line(
                record.data, self.redactor(error), status, record.index, record.key or None
            )
        else:
            line = reject_line(record, self.redactor(error), status, index)
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
