"""CSV and TSV read in pyarrow blocks, with exact indexes and line numbers: ragged rows and rows
that are not UTF-8 become :class:`~sink.source.rows.BadRow`, a quoted value that is never
closed stops the reading with the line where it opened."""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import re
import sys
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from sink.errors import SourceError
from sink.model import Record

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

from sink.source.rows import BLANK, BOM, BadRow, Item, line_text, peek, seekable

_CSV_BLOCK = 1 << 18  # 256 KiB: measured faster and flatter in memory than 1 MiB
_MAX_COLUMNS = 10_000
_ROW_IN_MESSAGE = re.compile(r"Row #(\d+)")
_TAIL_KEPT = 8 * _CSV_BLOCK  # raw CSV bytes kept to re-read a row (a row fits in a block)


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


class CsvReader:
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
        head, self._stream = peek(self._stream, self._name)
        body = head.removeprefix(BOM)
        content = body.lstrip(b"\r\n")
        if not content.strip(BLANK):
            return False  # nothing but blank lines: no header, no records
        skipped = body[: len(body) - len(content)]
        if not skipped:
            return True
        self._extra_lines = skipped.count(b"\n") or skipped.count(b"\r")
        offset = len(head) - len(content)
        if seekable(self._stream):
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
        return line_text(bytes(kept[start:end]))

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
