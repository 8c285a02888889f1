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
import functools
import gzip
import io
import itertools
import json
import re
import shutil
import sys
import tempfile
import weakref
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sink.errors import SourceError
from sink.model import Record

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

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
_BOM = b"\xef\xbb\xbf"
_BLANK = b" \t\r\n"
_HEAD_LIMIT = 1 << 20  # bytes read at most to sniff a format or skip leading blank lines
_CSV_BLOCK = 1 << 18  # 256 KiB: measured faster and flatter in memory than 1 MiB
_MAX_COLUMNS = 10_000
_ROW_IN_MESSAGE = re.compile(r"Row #(\d+)")
_SKIP_PIECE = 1 << 16  # bytes read at a time while skipping the rest of a line that is too long
_RAW_KEPT = 200  # bytes of a line that is too long kept for the rejects file
_TAIL_KEPT = 8 * _CSV_BLOCK  # raw CSV bytes kept to re-read a row (a row fits in a block)
# Twenty digits in a row: an integer beyond 64 bits, which orjson reads as a float.
_DIGITS = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))  # digit -> 0, else space
_LONG_DIGITS = b"0" * 20
_GZIP_MAGIC = b"\x1f\x8b"

MAX_RECORD_BYTES = 1 << 20
"""The default longest JSON Lines line, in bytes (its line break not counted)."""

Source = str | Path | BinaryIO | None


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


def _format_of(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    found = _EXTENSIONS.get(suffixes[-1]) if suffixes else None
    if found is None:
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
    head, stream = _peek(stream, name)
    if fmt is None:
        fmt = _sniff(head)
    if fmt == "parquet":
        if _seekable(stream):
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
    text = head.removeprefix(_BOM).lstrip(_BLANK)
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
    text = head.removeprefix(_BOM).lstrip(_BLANK)
    first = text.split(b"\n", 1)[0].rstrip(b"\r")
    if fmt == "jsonl":
        header_like = (b"," in first or b"\t" in first) and b"\x00" not in first
        if header_like and not first.startswith((b"{", b"[")) and not _is_json(first):
            raise refuse(
                f"its first line looks like a CSV header ({_text(first[:60])!r})",
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


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _peek(stream: BinaryIO, name: str) -> tuple[bytes, BinaryIO]:
    """The first bytes of ``stream`` (up to the first non-blank one) and a stream from its start."""
    try:
        start = stream.tell() if _seekable(stream) else None
        head = b""
        while len(head) < _HEAD_LIMIT and not head.removeprefix(_BOM).lstrip(_BLANK):
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


def _text_batches(
    stream: BinaryIO, name: str, fmt: str, limits: _Limits, rereadable: Path | None
) -> Iterator[list[Item]]:
    batch_rows = limits.batch_rows
    try:
        head, stream = _peek(stream, name)
        _check_head(head, fmt, name)
        if fmt == "jsonl":
            yield from _chunked(_jsonl_items(stream, limits.max_record_bytes), batch_rows)
        else:
            delimiter = "\t" if fmt == "tsv" else ","
            yield from _CsvReader(stream, name, delimiter, rereadable).batches(batch_rows)
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
            line = line.removeprefix(_BOM)
        if len(line) >= max_bytes and len(line.rstrip(b"\r\n")) > max_bytes:
            if not line.endswith(b"\n"):
                _skip_line(stream)
            kept = _text(line[:_RAW_KEPT])
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
            yield BadRow(index, number, _text(line), _json_error(line, exc))
            index += 1
            continue
        if _LONG_DIGITS in line.translate(_DIGITS):
            data = _exact(line, data)
        if type(data) is dict:
            yield Record(index, data)
        else:
            error = f"a record must be a JSON object, not {_json_kind(data)}"
            yield BadRow(index, number, _text(line), error)
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


def _text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r\n")


# CSV and TSV ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ragged:
    number: int | None  # pyarrow's row number: 1 is the header, blank lines count, no line breaks
    text: str
    expected: int
    actual: int


@functools.cache
def _convert_options() -> Any:
    # pyarrow names columns f0, f1, ... when the header is read as a data row; naming them all
    # as strings keeps pyarrow from inferring types ("007" stays "007").
    types = {f"f{i}": pa.string() for i in range(_MAX_COLUMNS)}
    return pacsv.ConvertOptions(
        column_types=types, strings_can_be_null=True, null_values=[""], check_utf8=False
    )


class _Tail(io.RawIOBase):
    """The stream pyarrow reads CSV from, keeping its last raw bytes to re-read a row by line.

    Rows are looked up in increasing line order, so a cursor walks the kept bytes once.
    """

    def __init__(self, stream: BinaryIO, first_line: int) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._base = 0  # offset in the stream of the first byte kept
        self._base_line = first_line  # line of the first byte kept
        self._cursor = (0, first_line)  # an offset where a line starts, and that line

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self._stream.read(-1 if size is None else size)
        self._keep(data)
        return data

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def _keep(self, data: bytes) -> None:
        kept = self._buffer
        kept += data
        if len(kept) > 2 * _TAIL_KEPT:
            cut = len(kept) - _TAIL_KEPT
            self._base_line += kept.count(b"\n", 0, cut)
            del kept[:cut]
            self._base += cut

    @property
    def kept(self) -> bytearray:
        """The last bytes read (do not change them)."""
        return self._buffer

    def locate(self, line: int) -> int | None:
        """Where ``line`` starts in :attr:`kept`, if it is still kept."""
        offset, at = self._cursor
        if at > line or offset < self._base:
            offset, at = self._base, self._base_line
            if at > line:
                return None
        kept = self._buffer
        find = kept.find
        position = offset - self._base
        while at < line:
            found = find(b"\n", position)
            if found < 0:
                return None
            position = found + 1
            at += 1
        self._cursor = (self._base + position, at)
        return position


class _CsvReader:
    """CSV or TSV from a binary stream, in pyarrow blocks, with exact indexes and line numbers.

    The header is read by pyarrow as the first data row (so every column can be typed as a
    string before its name is known). Ragged rows are skipped by pyarrow and reported to
    ``_on_invalid`` with their row number before the block holding them comes out; they are
    merged back in order here. pyarrow's row numbers count rows, not lines, so the line breaks
    inside quoted values are counted to turn them into line numbers.
    """

    def __init__(self, stream: BinaryIO, name: str, delimiter: str, path: Path | None) -> None:
        self._stream = stream
        self._name = name
        self._delimiter = delimiter
        self._path = path
        self._pending: deque[_Ragged] = deque()
        self._names: list[str] | None = None
        self._row = 1  # pyarrow's number of the next row
        self._extra_lines = 0  # line breaks inside values so far, plus skipped leading lines
        self._index = 0
        self._tail: _Tail | None = None

    def batches(self, batch_rows: int) -> Iterator[list[Item]]:
        """Lists of at most ``batch_rows`` items."""
        if not self._skip_leading_blank_lines():
            return
        with self._quiet():
            reader = self._open()
        if reader is None:
            return
        out: list[Item] = []
        while True:
            try:
                with self._quiet():
                    batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowException as exc:
                raise self._error(exc) from exc
            out.extend(self._items(batch))
            start = 0
            while len(out) - start >= batch_rows:
                yield out[start : start + batch_rows]
                start += batch_rows
            del out[:start]
        out.extend(self._flush_pending(everything=True))
        for start in range(0, len(out), batch_rows):
            yield out[start : start + batch_rows]

    def _skip_leading_blank_lines(self) -> bool:
        """Start the stream after a BOM and empty lines (pyarrow takes the first row as header)."""
        head, self._stream = _peek(self._stream, self._name)
        body = head.removeprefix(_BOM)
        content = body.lstrip(b"\r\n")
        if not content.strip(_BLANK):
            return False  # nothing but blank lines: no header, no records
        skipped = body[: len(body) - len(content)]
        if not skipped:
            return True
        self._extra_lines = skipped.count(b"\n") or skipped.count(b"\r")
        offset = len(head) - len(content)
        if _seekable(self._stream):
            self._stream.seek(self._stream.tell() + offset)
        else:
            self._stream.read(offset)
        return True

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Keep pyarrow from printing a traceback for a ragged row that is not UTF-8.

        pyarrow decodes such a row before calling ``_on_invalid``, reports the failure as
        "Exception ignored" and then raises ArrowInvalid, which becomes a SourceError here.
        """
        previous = sys.unraisablehook

        def hook(unraisable: Any) -> None:
            if unraisable.object != self._on_invalid:
                previous(unraisable)

        sys.unraisablehook = hook
        try:
            yield
        finally:
            sys.unraisablehook = previous

    def _open(self) -> Any:
        options = pacsv.ParseOptions(
            delimiter=self._delimiter,
            newlines_in_values=True,
            ignore_empty_lines=False,  # blank lines count as rows, so row numbers track lines
            invalid_row_handler=self._on_invalid,
        )
        self._tail = _Tail(self._stream, 1 + self._extra_lines)
        try:
            return pacsv.open_csv(
                self._tail,
                read_options=pacsv.ReadOptions(
                    use_threads=False, block_size=_CSV_BLOCK, autogenerate_column_names=True
                ),
                parse_options=options,
                convert_options=_convert_options(),
            )
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                return None
            raise self._error(exc) from exc
        except pa.ArrowException as exc:
            raise self._error(exc) from exc

    def _on_invalid(self, row: Any) -> str:
        # Called by pyarrow while it parses a block; it must not raise.
        self._pending.append(
            _Ragged(row.number, row.text, row.expected_columns, row.actual_columns)
        )
        return "skip"

    def _items(self, batch: Any) -> list[Item]:
        if self._names is None:
            if batch.num_rows == 0:
                return []
            try:
                batch.slice(0, 1).validate(full=True)
            except pa.ArrowInvalid as exc:
                where = f"line {1 + self._extra_lines}"
                raise SourceError(f"{self._name}, {where}: the header is not valid UTF-8") from exc
            self._names = self._header(batch.slice(0, 1))
            self._extra_lines += _line_breaks_total(batch.slice(0, 1))
            self._row = 2
            batch = batch.slice(1)
        batch = pa.RecordBatch.from_arrays(batch.columns, names=self._names)
        out = self._flush_pending()
        rows = batch.num_rows
        blank = _blank_rows(batch)
        pending = self._pending
        interleaved = bool(pending) and (
            pending[0].number is None or pending[0].number < self._row + rows
        )
        breaks = _line_breaks_total(batch)
        valid = _valid_utf8(batch)
        if blank is None and not interleaved and not breaks and valid:
            out.extend(map(Record, range(self._index, self._index + rows), batch.to_pylist()))
            self._index += rows
            self._row += rows
        else:
            out.extend(self._merge(batch, blank, valid))
        out.extend(self._flush_pending())
        return out

    def _merge(self, batch: Any, blank: list[bool] | None, valid: bool) -> Iterator[Item]:
        """Records and bad rows in input order, blank rows left out (the slow path).

        Rows that are not UTF-8 become bad rows; rows whose values hold line breaks are parsed
        again from their raw bytes to make sure no quote is left open.
        """
        breaks = _line_breaks(batch)
        rows, errors = (batch.to_pylist(), None) if valid else _decoded_rows(batch)
        for position, data in enumerate(rows):
            yield from self._flush_pending()
            line = self._row + self._extra_lines
            count = breaks[position] if breaks else 0
            self._row += 1
            self._extra_lines += count
            if blank is not None and blank[position]:
                continue
            error = errors[position] if errors is not None else None
            if error is not None:
                yield BadRow(self._index, line, self._raw(line, count, data), error)
            else:
                if count:
                    self._check_quotes(line)
                yield Record(self._index, data)
            self._index += 1

    def _raw(self, line: int, breaks: int, data: dict[str, Any]) -> str:
        """The text of a row from its raw bytes (undecodable bytes replaced)."""
        start = self._tail.locate(line) if self._tail is not None else None
        if self._tail is None or start is None:
            return self._delimiter.join("" if value is None else value for value in data.values())
        kept = self._tail.kept
        end = start
        for _ in range(breaks + 1):
            found = kept.find(b"\n", end)
            end = len(kept) if found < 0 else found + 1
        return _text(bytes(kept[start:end]))

    def _check_quotes(self, line: int) -> None:
        """Stop at a row whose quoted value is never closed, or closes in the middle of a value.

        pyarrow reads such a value to the end of the input (or to the next quote), folding
        every row in between into it; the row's raw bytes, parsed strictly, show the difference.
        """
        start = self._tail.locate(line) if self._tail is not None else None
        if self._tail is None or start is None:
            return
        kept = self._tail.kept
        end, problem = _scan_row(kept, start, self._delimiter.encode())
        if problem == "open":
            raise SourceError(
                f"{self._name}, line {line}: a quoted value opens on this line and is never "
                "closed, so every line after it would be read into it; close the quote"
            )
        if problem == "text after quote":
            closing = line + kept.count(b"\n", start, end)
            raise SourceError(
                f"{self._name}, line {line}: a quoted value opens on this line and its closing "
                f"quote on line {closing} is followed by more text; a quote is missing (write a "
                "quote inside a quoted value as two quotes)"
            )

    def _open_quote(self) -> int | None:
        """The line where the quoted value pyarrow could not close opens, if it can be found."""
        line = self._row + self._extra_lines
        position = self._tail.locate(line) if self._tail is not None else None
        if self._tail is None or position is None:
            return None
        kept = self._tail.kept
        delimiter = self._delimiter.encode()
        while position < len(kept):
            end, problem = _scan_row(kept, position, delimiter)
            if problem == "open":
                return line
            line += kept.count(b"\n", position, end)
            position = end
        return None

    def _flush_pending(self, everything: bool = False) -> list[Item]:
        """The ragged rows due before the next row (all of them at the end), as bad rows."""
        out: list[Item] = []
        pending = self._pending
        while pending:
            ragged = pending[0]
            if not everything and ragged.number is not None and ragged.number > self._row:
                break
            pending.popleft()
            line = None if ragged.number is None else ragged.number + self._extra_lines
            error = f"expected {ragged.expected} columns, got {ragged.actual}"
            out.append(BadRow(self._index, line, ragged.text.rstrip("\r"), error))
            self._index += 1
            self._row += 1
            self._extra_lines += ragged.text.count("\n")
        return out

    def _header(self, first: Any) -> list[str]:
        if first.num_columns > _MAX_COLUMNS:
            raise SourceError(f"{self._name}: more than {_MAX_COLUMNS} columns")
        cells = [column[0].as_py() for column in first.columns]
        names = ["" if cell is None else str(cell).strip() for cell in cells]
        seen: dict[str, int] = {}
        for number, column in enumerate(names, start=1):
            if column in seen:
                raise SourceError(
                    f"{self._name}, line {1 + self._extra_lines}: header columns {seen[column]} "
                    f"and {number} have the same name {column!r}"
                )
            seen[column] = number
        return names

    def _error(self, exc: Exception) -> SourceError:
        """A SourceError for a pyarrow failure, with the best position there is."""
        message = str(exc)
        found = _ROW_IN_MESSAGE.search(message)
        row_line = int(found.group(1)) + self._extra_lines if found else None
        bad_utf8 = "UTF8" in message or "\ufffd" in message
        if self._path is not None and (bad_utf8 or found):
            located = _first_invalid_utf8(self._path)
            if located is not None:
                line, offset = located
                return SourceError(
                    f"{self._name}: invalid UTF-8 at line {line} (byte offset {offset})"
                )
        detail = message.split(": ", 2)[-1] if found else message
        # Counted from pyarrow's row number: low when values still unread hold line breaks.
        where = f", line {row_line}" if row_line is not None else ""
        if "straddl" in message:
            opened = self._open_quote()
            if opened is not None:
                return SourceError(
                    f"{self._name}, line {opened}: a quoted value opens on this line and is not "
                    f"closed within {_CSV_BLOCK // 1024} KiB; close the quote"
                )
            detail = "a quoted value is not closed (or a row is far too long)"
            where = f", after line {self._row - 1 + self._extra_lines}"
        if bad_utf8:
            return SourceError(f"{self._name}{where}: invalid UTF-8")
        return SourceError(f"{self._name}{where}: cannot read CSV: {detail}")


def _blank_rows(batch: Any) -> list[bool] | None:
    """Which rows have every cell empty, or ``None`` when no row does."""
    columns = batch.columns
    if batch.num_rows == 0 or any(column.null_count == 0 for column in columns):
        return None
    mask = functools.reduce(pc.and_, [pc.is_null(column) for column in columns])
    if not pc.any(mask).as_py():
        return None
    flags: list[bool] = mask.to_pylist()
    return flags


_FIELD_ENDS = {b",": re.compile(b"[,\r\n]"), b"\t": re.compile(b"[\t\r\n]")}


def _scan_row(data: bytes | bytearray, position: int, delimiter: bytes) -> tuple[int, str | None]:
    """Where the CSV row starting at ``position`` ends, and what is wrong with its quotes, if any.

    pyarrow's rules: a quote opens a quoted value only at the start of a value, two quotes in a
    quoted value are one, and a quote elsewhere is a plain character.
    """
    size = len(data)
    field_end = _FIELD_ENDS[delimiter]
    while True:
        if data.startswith(b'"', position):
            position += 1
            while True:
                closing = data.find(b'"', position)
                if closing < 0:
                    return size, "open"
                position = closing + 1
                if not data.startswith(b'"', position):
                    break
                position += 1
            if position < size and data[position : position + 1] not in (delimiter, b"\r", b"\n"):
                return position, "text after quote"
        found = field_end.search(data, position)
        if found is None:
            return size, None
        position = found.end()
        if found.group() == delimiter:
            continue
        if found.group() == b"\r" and data.startswith(b"\n", position):
            position += 1
        return position, None


def _valid_utf8(batch: Any) -> bool:
    try:
        batch.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _decoded_rows(batch: Any) -> tuple[list[dict[str, Any]], list[str | None]]:
    """The rows of a batch that holds invalid UTF-8, and for each what is wrong with it, if any.

    A value that is not UTF-8 is kept with its bad bytes replaced, for the row's raw text.
    """
    names = batch.schema.names
    columns = [column.cast(pa.binary()).to_pylist() for column in batch.columns]
    rows: list[dict[str, Any]] = []
    errors: list[str | None] = []
    for cells in zip(*columns, strict=True):
        data: dict[str, Any] = {}
        error = None
        for name, cell in zip(names, cells, strict=True):
            if cell is None:
                data[name] = None
                continue
            try:
                data[name] = cell.decode("utf-8")
            except UnicodeDecodeError as bad:
                data[name] = cell.decode("utf-8", errors="replace")
                if error is None:
                    error = f"invalid UTF-8 in column {name!r} at byte {bad.start + 1} of the value"
        rows.append(data)
        errors.append(error)
    return rows, errors


def _line_breaks_total(batch: Any) -> int:
    total = 0
    for column in batch.columns:
        total += pc.sum(pc.count_substring(column, "\n")).as_py() or 0
    return total


def _line_breaks(batch: Any) -> list[int] | None:
    """Line breaks inside the values of each row, or ``None`` when there are none."""
    if batch.num_rows == 0 or _line_breaks_total(batch) == 0:
        return None
    counts = [pc.fill_null(pc.count_substring(column, "\n"), 0) for column in batch.columns]
    per_row: list[int] = functools.reduce(pc.add, counts).to_pylist()
    return per_row


def _first_invalid_utf8(path: Path) -> tuple[int, int] | None:
    """Line and byte offset of the first byte of ``path`` that is not UTF-8, if any."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    lines = 1
    offset = 0
    carry = b""
    try:
        with opener(path, "rb") as stream:
            while True:
                chunk = stream.read(1 << 20)
                data = carry + chunk
                try:
                    data.decode("utf-8")
                    good = len(data)
                except UnicodeDecodeError as exc:
                    truncated = exc.reason == "unexpected end of data" and chunk
                    if not truncated:
                        bad = offset + exc.start
                        return lines + data[: exc.start].count(b"\n"), bad
                    good = exc.start
                lines += data[:good].count(b"\n")
                offset += good
                carry = data[good:]
                if not chunk:
                    return None
    except (OSError, EOFError, zlib.error):
        return None


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
        sample = stream.read(_HEAD_LIMIT)
        whole = not stream.read(1)
        used = raw.tell()
    if not sample or not used:
        return None
    lines = sample.count(b"\n") + (whole and not sample.endswith(b"\n"))
    if not whole:
        lines = round(lines * size / used)
    return max(lines - header, 0)
