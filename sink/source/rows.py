"""What a source yields (a :class:`~sink.model.Record`, or a :class:`BadRow` in its place) and
the byte-level helpers its readers share."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from sink.errors import SourceError
from sink.model import Record

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

BOM = b"\xef\xbb\xbf"
BLANK = b" \t\r\n"
HEAD_LIMIT = 1 << 20  # bytes read at most to sniff a format or skip leading blank lines


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that cannot be read (ragged CSV row, broken JSON line, JSON that is not an object).

    ``index`` is the position it occupies among the data rows, ``line`` its 1-based line in the
    input (when known), ``raw`` its text and ``error`` what is wrong, without the position.
    """

    index: int
    line: int | None
    raw: str
    error: str


Item = Record | BadRow


class Trimmed(dict[str, Any]):
    """A record's values with some columns left out (``exclude``), and the record as it was read.

    It is the plain ``dict`` the stages after the source see; the rejects file writes
    :attr:`original` instead, so a rejected record is replayable with every column it had.
    """

    __slots__ = ("original",)

    original: dict[str, Any]


def as_read(data: dict[str, Any]) -> dict[str, Any]:
    """The values of a record as the source read them (excluded columns included)."""
    return data.original if isinstance(data, Trimmed) else data


def seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def peek(stream: BinaryIO, name: str) -> tuple[bytes, BinaryIO]:
    """The first bytes of ``stream`` (up to the first non-blank one) and a stream from its start."""
    try:
        start = stream.tell() if seekable(stream) else None
        head = b""
        while len(head) < HEAD_LIMIT and not head.removeprefix(BOM).lstrip(BLANK):
            chunk = stream.read(1 << 16)
            if not chunk:
                break
            head += chunk
        if start is not None:
            stream.seek(start)
            return head, stream
    except OSError as exc:
        raise SourceError(f"cannot read {name}: {exc}") from exc
    return head, cast(BinaryIO, io.BufferedReader(_Replay(head, stream), 1 << 16))


class _Replay(io.RawIOBase):
    """A read-only raw stream: bytes already read from a pipe, then the rest of the pipe."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            size = min(len(view), len(self._head))
            view[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        data = self._rest.read(len(view))
        view[: len(data)] = data
        return len(data)


def line_text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r\n")
