"""Streaming record sources: CSV, TSV, JSON Lines and Parquet, from a file or stdin.

Every reader is a generator over lists of at most ``batch_rows`` items and holds one block
(CSV), one line (JSON Lines) or one record batch (Parquet) at a time, so memory stays flat
whatever the size of the input. An item is a :class:`~sink.model.Record` or, for a row that
cannot be read, a :class:`BadRow` in its place: the stream goes on after it. Input that cannot
be read at all (unknown format, missing file, truncated Parquet, a file that is not the format it
is named, a quoted CSV value that is never closed) raises :class:`~sink.errors.SourceError` naming
the file and the position. A CSV row that is not valid UTF-8 is a :class:`BadRow`, as a JSON Lines
line is.

A CSV quoted value may hold line breaks, but one whose closing quote is missing must not fold the
rows after it into one value: every row whose values hold a line break is parsed again, strictly,
from its raw bytes, and a quote that is not closed where a value can end stops the reading with
the line where it opened.

A JSON Lines line longer than ``max_record_bytes`` (default :data:`MAX_RECORD_BYTES`, 1 MiB;
the destination config's ``max_record_bytes``) is a :class:`BadRow` naming its line, and the
reading goes on at the next line: the long line is skipped in pieces, never held whole, so an
endless line (``/dev/zero``) costs no memory. A CSV or TSV row is bounded by pyarrow's block
(256 KiB): a longer one stops the reading with a :class:`~sink.errors.SourceError`.

``Record.index`` is the 0-based position of the record among the data rows of the input; a bad
row occupies its index too, so the records after it keep their true positions. Blank lines are
not records (and a CSV row whose cells are all empty, as spreadsheets write them, counts as a
blank line), but line numbers stay true.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
import shutil
import sys
import tempfile
import weakref
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from sink.errors import SourceError
from sink.model import Record
from sink.source.delimited import CsvReader
from sink.source.rows import (
    BLANK,
    BOM,
    HEAD_LIMIT,
    BadRow,
    Item,
    line_text,
    peek,
    seekable,
)

if TYPE_CHECKING:
    pass

FORMATS = ("csv", "tsv", "jsonl", "parquet")
"""The input formats, by their canonical names."""

_ALIASES = {"json": "jsonl", "ndjson": "jsonl", "pq": "parquet"}
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_SKIP_PIECE = 1 << 16  # bytes read at a time while skipping the rest of a line that is too long
_RAW_KEPT = 200  # bytes of a line that is too long kept for the rejects file
# Twenty digits in a row: an integer beyond 64 bits, which orjson reads as a float.
_DIGITS = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))  # digit -> 0, else space
_LONG_DIGITS = b"0" * 20
_GZIP_MAGIC = b"\x1f\x8b"

MAX_RECORD_BYTES = 1 << 20
"""The default longest JSON Lines line, in bytes (its line break not counted)."""

Source = str | Path | BinaryIO | None


def read_records(
    source: Source,
    fmt: str | None = None,
    *,
    batch_rows: int = 8192,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> Iterator[Item]:
    """The records of ``source`` one by one (see :func:`read_batches`)."""
    return itertools.chain.from_iterable(
        read_batches(source, fmt, batch_rows=batch_rows, max_record_bytes=max_record_bytes)
    )


def read_batches(
    source: Source,
    fmt: str | None = None,
    *,
    batch_rows: int = 8192,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> Iterator[list[Item]]:
    """The records of ``source`` in lists of at most ``batch_rows``, in input order.

    ``source`` is a path, ``"-"`` or ``None`` for stdin, or a binary file object. ``fmt`` is one
    of :data:`FORMATS` (``json`` and ``ndjson`` mean ``jsonl``); when ``None`` it is inferred from
    the file extension (``.gz`` is read through gzip for the text formats), and for stdin or a
    file object from the first bytes: ``PAR1`` is Parquet, a first non-blank ``{`` is JSON Lines,
    a first line with more tabs than commas TSV, anything else CSV. A file that is plainly not
    the format it is named or given (Parquet or gzip bytes in a text format, NUL bytes in a CSV,
    a JSON object as a CSV header, a tab-separated header in a CSV or the other way round, a
    JSON Lines file whose first line is not JSON) is refused with a
    :class:`~sink.errors.SourceError` saying what it looks like.

    CSV and TSV need a header row; every cell is read as a string (``007`` stays ``"007"``) and
    an empty cell is ``None``. JSON Lines integers stay exact ``int`` values whatever their
    size. Parquet needs a seekable file, so Parquet from stdin or a pipe is first copied to a
    temporary file.

    ``max_record_bytes`` caps a JSON Lines line (see the module docstring).

    The format and the existence of a file are checked at once; everything else when iterated.
    """
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    if max_record_bytes < 1:
        raise ValueError("max_record_bytes must be at least 1")
    limits = _Limits(batch_rows, max_record_bytes)
    if source is None or (isinstance(source, str) and source == "-"):
        return _read_stream(sys.stdin.buffer, "<stdin>", _canonical(fmt), limits)
    if isinstance(source, str | Path):
        path = Path(source)
        name = str(source)
        known = _canonical(fmt) or _format_of(path)
        if not path.exists():
            raise SourceError(f"no such file: {name}")
        if path.is_dir():
            raise SourceError(f"{name} is a directory, not a file of records")
        return _read_path(path, name, known, limits)
    label = getattr(source, "name", None)
    label = label if isinstance(label, str) else "<stream>"
    return _read_stream(source, label, _canonical(fmt), limits)


@dataclass(frozen=True, slots=True)
class _Limits:
    batch_rows: int
    max_record_bytes: int


def _canonical(fmt: str | None) -> str | None:
    if fmt is None:
        return None
    name = fmt.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in FORMATS:
        accepted = ", ".join([*FORMATS, *_ALIASES])
        raise SourceError(f"unknown input format {fmt!r}; accepted: {accepted}")
    return name


def file_format(path: Path, fmt: str | None = None) -> str | None:
    """The format the readers take ``path`` to be: ``fmt`` (a name or an alias) when given,
    else its extension's (``.gz`` looked through); None when it cannot tell (reading it then
    says why)."""
    if fmt is not None:
        name = fmt.strip().lower()
        name = _ALIASES.get(name, name)
        return name if name in FORMATS else None
    suffixes = _suffixes(path)
    return _EXTENSIONS.get(suffixes[-1]) if suffixes else None


def _suffixes(path: Path) -> list[str]:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return suffixes


def _format_of(path: Path) -> str:
    found = file_format(path)
    if found is None:
        suffixes = _suffixes(path)
        ext = suffixes[-1] if suffixes else "no extension"
        raise SourceError(
            f"cannot tell the format of {path} from its extension ({ext}); "
            f"give the format: {', '.join(FORMATS)}"
        )
    return found


def _read_path(path: Path, name: str, fmt: str, limits: _Limits) -> Iterator[list[Item]]:
    gzipped = path.suffix.lower() == ".gz"
    if fmt == "parquet":
        if gzipped:
            raise SourceError(f"{name}: Parquet is compressed inside; read it without .gz")
        yield from _parquet_batches(path, name, limits.batch_rows)
        return
    try:
        opened = gzip.open(path, "rb") if gzipped else open(path, "rb")  # noqa: SIM115
        stream = cast(BinaryIO, opened)
    except OSError as exc:
        raise SourceError(f"cannot open {name}: {exc.strerror or exc}") from exc
    with stream, _reading(path) as reading:
        for batch in _text_batches(stream, name, fmt, limits, rereadable=path):
            reading.rows += len(batch)
            yield batch
        reading.finished = True


def _read_stream(
    stream: BinaryIO, name: str, fmt: str | None, limits: _Limits
) -> Iterator[list[Item]]:
    batch_rows = limits.batch_rows
    head, stream = peek(stream, name)
    if fmt is None:
        fmt = _sniff(head)
    if fmt == "parquet":
        if seekable(stream):
            yield from _parquet_batches(stream, name, batch_rows)
            return
        # pyarrow reads Parquet's footer first, so a pipe is copied to a temporary file.
        with tempfile.TemporaryFile(prefix="sink-", suffix=".parquet") as spool:
            try:
                shutil.copyfileobj(stream, spool, 1 << 20)
            except OSError as exc:
                raise SourceError(f"cannot read {name}: {exc}") from exc
            spool.seek(0)
            yield from _parquet_batches(spool, name, batch_rows)
        return
    yield from _text_batches(stream, name, fmt, limits, rereadable=None)


def _sniff(head: bytes) -> str:
    if head.startswith(b"PAR1"):
        return "parquet"
    text = head.removeprefix(BOM).lstrip(BLANK)
    if text.startswith(b"{"):
        return "jsonl"
    first = text.split(b"\n", 1)[0]
    return "tsv" if first.count(b"\t") > first.count(b",") else "csv"


_FORMAT_NAMES = {"csv": "CSV", "tsv": "TSV", "jsonl": "JSON Lines", "parquet": "Parquet"}


def _check_head(head: bytes, fmt: str, name: str) -> None:
    """Refuse a text input whose first bytes are plainly not ``fmt``, saying what they look like."""
    named = _FORMAT_NAMES[fmt]

    def refuse(looks: str, hint: str) -> SourceError:
        return SourceError(f"{name} is not {named}: {looks}; {hint}")

    if head.startswith(b"PAR1"):
        raise refuse("it is a Parquet file", "give the format parquet")
    if head.startswith(_GZIP_MAGIC):
        raise refuse("it is gzip-compressed", "name it .gz (for example records.csv.gz)")
    text = head.removeprefix(BOM).lstrip(BLANK)
    first = text.split(b"\n", 1)[0].rstrip(b"\r")
    if fmt == "jsonl":
        header_like = (b"," in first or b"\t" in first) and b"\x00" not in first
        if header_like and not first.startswith((b"{", b"[")) and not _is_json(first):
            raise refuse(
                f"its first line looks like a CSV header ({line_text(first[:60])!r})",
                "give the format csv or tsv",
            )
        return
    if b"\x00" in head:
        raise refuse("it holds NUL bytes (binary data, or UTF-16 text)", "give a UTF-8 text file")
    if first.startswith(b"{") and (first.startswith(b'{"') or _is_json(first)):
        raise refuse("its first line is a JSON object", "give the format jsonl")
    tabs, commas = first.count(b"\t"), first.count(b",")
    if fmt == "csv" and tabs and not commas:
        raise refuse("its header is separated by tabs", "give the format tsv")
    if fmt == "tsv" and commas and not tabs:
        raise refuse("its header is separated by commas", "give the format csv")


def _is_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _text_batches(
    stream: BinaryIO, name: str, fmt: str, limits: _Limits, rereadable: Path | None
) -> Iterator[list[Item]]:
    batch_rows = limits.batch_rows
    try:
        head, stream = peek(stream, name)
        _check_head(head, fmt, name)
        if fmt == "jsonl":
            yield from _chunked(_jsonl_items(stream, limits.max_record_bytes), batch_rows)
        else:
            delimiter = "\t" if fmt == "tsv" else ","
            yield from CsvReader(stream, name, delimiter, rereadable).batches(batch_rows)
    except (OSError, EOFError, zlib.error) as exc:
        raise SourceError(f"cannot read {name}: {exc}") from exc


def _chunked(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# JSON Lines -------------------------------------------------------------------------------------


def _jsonl_items(stream: BinaryIO, max_bytes: int) -> Iterator[Item]:
    index = 0
    loads = orjson.loads
    readline = stream.readline
    limit = max_bytes + 2  # room for the line break, "\r\n" included
    number = 0
    while line := readline(limit):
        number += 1
        if number == 1:
            line = line.removeprefix(BOM)
        if len(line) >= max_bytes and len(line.rstrip(b"\r\n")) > max_bytes:
            if not line.endswith(b"\n"):
                _skip_line(stream)
            kept = line_text(line[:_RAW_KEPT])
            error = (
                f"the line is longer than {max_bytes:,} bytes (max_record_bytes); it was skipped"
            )
            yield BadRow(index, number, kept + "…", error)
            index += 1
            continue
        try:
            data = loads(line)
        except orjson.JSONDecodeError as exc:
            if not line.strip():
                continue  # a blank line is not a record
            yield BadRow(index, number, line_text(line), _json_error(line, exc))
            index += 1
            continue
        if _LONG_DIGITS in line.translate(_DIGITS):
            data = _exact(line, data)
        if type(data) is dict:
            yield Record(index, data)
        else:
            error = f"a record must be a JSON object, not {_json_kind(data)}"
            yield BadRow(index, number, line_text(line), error)
        index += 1


def _exact(line: bytes, data: Any) -> Any:
    """``line`` parsed again keeping integers beyond 64 bits exact (orjson makes them floats)."""
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return data


def _skip_line(stream: BinaryIO) -> None:
    """Read past the end of the current line, a piece at a time (never the whole line)."""
    readline = stream.readline
    while piece := readline(_SKIP_PIECE):
        if piece.endswith(b"\n"):
            return


def _json_error(line: bytes, exc: orjson.JSONDecodeError) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8 at byte {bad.start + 1} of the line"
    return f"invalid JSON at column {exc.colno}: {exc.msg}"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "a number"


# Parquet ----------------------------------------------------------------------------------------


def _parquet_batches(source: Path | BinaryIO, name: str, batch_rows: int) -> Iterator[list[Item]]:
    try:
        # Column chunks are streamed through a 1 MiB buffer instead of read whole, and decoded
        # on this thread: measured faster and flatter in memory (mimalloc keeps what the
        # decoding threads freed) than pyarrow's defaults.
        parquet = pq.ParquetFile(source, pre_buffer=False, buffer_size=1 << 20)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{name}: not a readable Parquet file ({_brief(exc)})") from exc
    index = 0
    try:
        for batch in parquet.iter_batches(batch_size=batch_rows, use_threads=False):
            rows = batch.num_rows
            yield list(map(Record, range(index, index + rows), batch.to_pylist()))
            index += rows
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(
            f"{name}: Parquet data is damaged after record {index} ({_brief(exc)})"
        ) from exc
    finally:
        parquet.close()


def _brief(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# How many records a file holds, known cheaply (for a progress display) ---------------------------


class _Reading:
    """A text file's reading: the items given so far, and whether its end was reached."""

    __slots__ = ("__weakref__", "finished", "rows", "started")

    def __init__(self) -> None:
        self.rows = 0
        self.started = False
        self.finished = False


_READING: weakref.WeakValueDictionary[Path, _Reading] = weakref.WeakValueDictionary()
"""The next or current reading of a text file in this process, by resolved path: an
:class:`InputProgress` made before the reading starts sees it without reaching into the
reader."""


def _next_reading(key: Path) -> _Reading:
    reading = _READING.get(key)
    if reading is None or reading.started:
        reading = _Reading()
        _READING[key] = reading
    return reading


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[_Reading]:
    reading = _next_reading(path.resolve())
    reading.started = True
    yield reading


class InputProgress:
    """How many records an input file holds, as far as it is known cheaply at any moment.

    A Parquet file's count is in its metadata: exact before anything is read. A text file's is
    estimated from its size and the lines in its first MiB (blank lines and line breaks inside
    quoted values make it approximate), and exact once the reader that starts next on the file
    (the run's) reached its end. Asking costs nothing: a progress display may ask often.
    """

    def __init__(
        self,
        path: Path,
        *,
        records: int | None = None,
        size: int | None = None,
        estimate: int | None = None,
    ) -> None:
        self.path = path
        self.records = records
        """The exact number of records when known before reading (Parquet's metadata)."""
        self.size = size
        """The file's size in bytes (a text file; compressed, for gzip)."""
        self.estimate = estimate
        """The records a text file is estimated to hold, before it is read to its end."""
        self._reading = _next_reading(path.resolve()) if records is None else None

    def total(self) -> tuple[int, bool] | None:
        """The input's records and whether the figure is exact; None when nothing is known."""
        if self.records is not None:
            return self.records, True
        reading = self._reading
        if reading is not None and reading.finished:
            return reading.rows, True
        if self.estimate is None:
            return None
        return max(self.estimate, reading.rows if reading is not None else 0), False


def input_progress(source: Source, fmt: str | None = None) -> InputProgress | None:
    """What can be known cheaply of how many records the file ``source`` holds (see
    :class:`InputProgress`): at most Parquet's footer or a text file's first MiB is read. None
    for stdin, a stream, or a file that cannot be sized."""
    if not isinstance(source, str | Path) or str(source) == "-":
        return None
    path = Path(source)
    try:
        kind = _canonical(fmt) or _format_of(path)
        if not path.is_file():
            return None
        if kind == "parquet":
            return InputProgress(path, records=pq.read_metadata(path).num_rows)
        size = path.stat().st_size
        if not size:
            return None
        estimate = _estimated_rows(path, 0 if kind == "jsonl" else 1, size)
    except (SourceError, OSError, EOFError, zlib.error, pa.ArrowException):
        return None
    return InputProgress(path, size=size, estimate=estimate)


def _estimated_rows(path: Path, header: int, size: int) -> int | None:
    """The data rows of a text file, from the lines in its first MiB (read through gzip for
    ``.gz``) and the share of the file they took."""
    with open(path, "rb") as raw:
        stream: BinaryIO = raw
        if path.suffix.lower() == ".gz":
            stream = cast(BinaryIO, gzip.GzipFile(fileobj=raw))
        sample = stream.read(HEAD_LIMIT)
        whole = not stream.read(1)
        used = raw.tell()
    if not sample or not used:
        return None
    lines = sample.count(b"\n") + (whole and not sample.endswith(b"\n"))
    if not whole:
        lines = round(lines * size / used)
    return max(lines - header, 0)
