"""The secrets vault: the secrets Hub shows once (PAT and OAT creation), in a file created 0600
and locked for the run, each line fsync'd before :meth:`Vault.write` returns."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson

from sink.errors import ConfigError
from sink.model import VaultEntry
from sink.outputs.files import check_private_target, open_private, refusal

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
                    raise refusal(self.WHAT, self.path, exc.strerror or str(exc)) from exc
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
