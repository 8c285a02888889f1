"""What a run leaves behind: the responses stream, the secrets vault and the rejects file.

Every output is written as it goes, one JSON line at a time, and flushed line by line:

- :class:`ResponsesFile` / :class:`~sink.outputs.webhook.WebhookResponses`: one line per
  request (record keys, template, status, HTTP status, response body with secret fields
  replaced by ``***``, error, duration, attempts);
- :class:`~sink.outputs.vault.Vault`: the secrets Hub shows once (PAT and OAT creation), in a
  file created with mode 0600, each line fsync'd before it returns;
- :class:`RejectsFile`: each rejected or failed record as it came in, plus ``_sink_error``,
  ``_sink_status`` and ``_sink_index``, so that ``sink run CONFIG --input rejects.jsonl``
  replays it (the config leaves ``_sink_*`` attributes out).

Secrets: response lines and rejects pass through a :class:`~sink.outputs.redact.Redactor`, which
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

import errno
import fcntl
import os
import stat
from collections.abc import Collection, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson

from sink.errors import ConfigError
from sink.model import Outcome, Record
from sink.outputs.redact import Redactor, redact

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
    extra = outcome.flags()
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


def refusal(what: str, path: Path, problem: str) -> ConfigError:
    """The error for a private file at ``path`` that cannot be used as ``what``."""
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
        raise refusal(what, target, exc.strerror or str(exc)) from exc
    else:
        if not stat.S_ISREG(info.st_mode):
            raise refusal(what, target, f"it is {_kind(info.st_mode)}; it must be a regular file")
        return True
    for parent in target.parents:  # the nearest one that exists must be a folder
        try:
            mode = os.stat(parent).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise refusal(what, target, exc.strerror or str(exc)) from exc
        if not stat.S_ISDIR(mode):
            raise refusal(what, target, f"{parent} is a file, not a folder")
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
            raise refusal(what, target, exc.strerror or str(exc)) from exc
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
        raise refusal(what, target, problem) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise refusal(what, target, f"it is {_kind(info.st_mode)}; it must be a regular file")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        narrowed = False
        if stat.S_IMODE(info.st_mode) != PRIVATE_FILE_MODE and (
            not existed or info.st_mode & 0o077
        ):
            try:
                os.fchmod(fd, PRIVATE_FILE_MODE)
            except OSError as exc:
                raise refusal(
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

    Excluded columns are written too (the ``original`` of a :class:`~sink.source.read.Trimmed`,
    looked up by name: importing :mod:`sink.source.read` here would load pyarrow on every start);
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
