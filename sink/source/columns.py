"""An input's columns, read cheaply, and the check that a destination's names can match them.

A one-letter typo must never reach Hub: ``exclude: [descriptoin]`` would send the column it
meant to drop, ``key_field: nmae`` would reject every record, and ``{{ record.nmae }}`` would
leave a required field out of every request. So before anything is sent, the names a
destination reads from records are checked against the input's columns:

- the columns come from the CSV or TSV header, the Parquet schema (no row is read), or the
  keys of the first :data:`SAMPLE` JSON Lines records (a *sample*: a key may first appear
  later, so a sample only proves what is there);
- ``key_field`` must be a column (and not excluded): otherwise every record is rejected;
- a record field the request cannot do without must be a column: a path value, a body field
  the spec marks required (walking into required objects and one-item lists), a manual URL's
  values; a team-id look-up's target is also satisfied by its source column (a team name);
- ``exclude`` must name columns (of a sample: a name close to a sampled key is a typo);
- a field that is optional (absent values are left out of the request) need not be a column:
  a CSV without the optional ``description`` column is valid. In manual mode, where the config
  spells every name, an optional ``record.x`` that is not a column while an unread column is
  close to it (``descriptoin`` / ``description``) is a typo and an error; for a template, whose
  names are fixed, the same closeness is only a warning of ``sink validate``.

Standard input cannot be read twice: its columns come from the first records as the run reads
them (see :func:`checked`), and the check passes as soon as every name it needs was seen, so a
slow stream is not held back.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import gzip
import io
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import orjson

from sink.errors import ConfigError
from sink.model import Record
from sink.source.read import file_format

if TYPE_CHECKING:
    from sink.destination import Destination

SAMPLE = 100
"""JSON Lines records (and records read from stdin) whose keys make the columns."""

_HEAD_LIMIT = 1 << 20  # bytes read at most to find a CSV header
_ITEMS_LIMIT = 10 * SAMPLE  # items (bad rows included) looked at on a stream before deciding
_TYPO_CUTOFF = 0.7  # an optional name this close to an unread column is a typo
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Columns:
    """The column names of an input, and where they come from."""

    names: tuple[str, ...]
    where: str
    """In words, for messages: ``records.csv's header``, ``the first 100 records of x.jsonl``."""
    exact: bool = True
    """True for a header or a schema; False for the keys of sampled records."""


@dataclass(frozen=True)
class Need:
    """A record field the destination reads."""

    name: str
    where: str
    """In words: ``the path``, ``the body's name``, ``the url``, ``a header``."""
    required: bool
    alternatives: tuple[str, ...] = ()
    """Other columns that do instead (the team name a team-id look-up turns into the id)."""


@dataclass
class Report:
    """What the check found: problems stop the run; warnings are for ``sink validate``."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# Reading columns --------------------------------------------------------------------------------


def input_columns(
    source: str | Path | None,
    fmt: str | None = None,
    *,
    max_record_bytes: int = 1 << 20,
) -> Columns | None:
    """The columns of the file ``source`` without reading it all; None when they cannot be
    known cheaply and surely: stdin, an unknown or empty file, or a file that does not look
    like its format (the reader then says what is wrong)."""
    if source is None or str(source) == "-":
        return None
    path = Path(source)
    kind = file_format(path, fmt)
    if kind is None or not path.is_file():
        return None
    try:
        if kind == "parquet":
            return _parquet_columns(path)
        with _open(path) as stream:
            if kind == "jsonl":
                return _jsonl_columns(stream, path.name, max_record_bytes)
            return _csv_columns(stream, path.name, "\t" if kind == "tsv" else ",")
    except (OSError, EOFError, ValueError, UnicodeDecodeError, csv.Error):
        return None


def _open(path: Path) -> BinaryIO:
    if path.suffix.lower() == ".gz":
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")


def _parquet_columns(path: Path) -> Columns | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError):
        return None
    return Columns(tuple(schema.names), f"the Parquet schema of {path.name}")


def _csv_columns(stream: BinaryIO, name: str, delimiter: str) -> Columns | None:
    head = b""
    while len(head) < _HEAD_LIMIT:  # up to the header's line break, not the whole limit
        chunk = stream.read(1 << 16)
        head += chunk
        if not chunk or b"\n" in head.removeprefix(_BOM).lstrip(b"\r\n"):
            break
    head = head.removeprefix(_BOM).lstrip(b"\r\n")
    if not head.strip() or b"\0" in head or head[:1] in (b"{", b"["):
        return None  # empty, binary, or JSON: the reader names the problem
    # A header cut at the limit may end in a broken UTF-8 sequence: decode what is whole.
    text = codecs.getincrementaldecoder("utf-8")().decode(head)
    try:
        cells = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except StopIteration:
        return None
    names = tuple(cell.strip() for cell in cells)
    other = "," if delimiter == "\t" else "\t"
    if len(names) == 1 and other in names[0]:
        return None  # a TSV named .csv (or the other way round): the reader decides
    return Columns(names, f"the header of {name}")


def _jsonl_columns(stream: BinaryIO, name: str, max_bytes: int) -> Columns | None:
    keys: dict[str, None] = {}
    seen = 0
    for number in itertools.count(1):
        if seen >= SAMPLE or number > _ITEMS_LIMIT:
            break
        line = stream.readline(max_bytes + 2)
        if not line:
            break
        if not line.endswith(b"\n") and len(line) > max_bytes:
            _skip_line(stream)  # too long: the run rejects it; its keys are not known
            continue
        if number == 1:
            line = line.removeprefix(_BOM)
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(data, dict):
            seen += 1
            keys.update(dict.fromkeys(data))
    if not seen:
        return None
    return Columns(tuple(keys), _first(seen, name), exact=False)


def _first(count: int, name: str) -> str:
    return f"the first record of {name}" if count == 1 else f"the first {count} records of {name}"


def _skip_line(stream: BinaryIO) -> None:
    while piece := stream.readline(1 << 16):
        if piece.endswith(b"\n"):
            return


# What a destination reads -----------------------------------------------------------------------


def needs(destination: Destination) -> list[Need]:
    """Every record field the destination's requests read, and whether it must be given."""
    from sink.request.templates import references

    config = destination.config
    template = destination.template
    code = config.batching.mode == "code"  # the function builds the body from whole records
    found: list[Need] = []
    if template is not None:
        for placeholder, value in template.params.items():
            found += _all(value, f"the path's {placeholder}", required=True)
        if not code:
            operation = _operation(template.operation)
            found += _body(template.body, _body_schema(operation), "the body", True)
        for part, values in (("query", template.query), ("header", template.headers)):
            for key, value in values.items():
                found += _all(value, f"the {part} {key}", required=False)
        for step in template.resolve:
            found.append(Need(step.source, f"the {step.kind} look-up", required=False))
        targets = {s.target: s.source for s in template.resolve if s.target is not None}
        found = [
            Need(n.name, n.where, n.required, (targets[n.name],)) if n.name in targets else n
            for n in found
        ]
    else:
        manual = config.manual
        assert manual is not None
        found += _all(manual.url, "the url", required=True)
        from sink.request.values import parse_headers

        for key, value in parse_headers(manual.headers).items():
            found += _all(value, f"the header {key}", required=False)
        if not code and not manual.body_is_record and manual.body is not None:
            body = manual.body
            if isinstance(body, str):
                body = orjson.loads(body)  # bind() parsed it already: it is JSON
            found += _body(body, _manual_schema(manual.method, manual.url), "the body", True)
    for key, value in config.extra_headers.items():
        found += [
            Need(name, f"the header {key}", required=False)
            for name in references(iter([value]), "record")
        ]
    return found


def _all(value: Any, where: str, *, required: bool) -> list[Need]:
    from sink.request.templates import references

    strings = [value] if isinstance(value, str) else []
    return [Need(name, where, required) for name in references(iter(strings), "record")]


def _body(value: Any, schema: Mapping[str, Any] | None, where: str, needed: bool) -> list[Need]:
    """The record fields of a body template; a plain look-up is required when the spec
    requires its place (and every place above it)."""
    from sink.request.values import is_record_lookup, lookup_name

    if isinstance(value, str):
        if is_record_lookup(value):
            return [Need(lookup_name(value), where, needed and schema is not None)]
        return _all(value, where, required=False)  # an expression may default: optional
    if isinstance(value, Mapping):
        required = set(schema.get("required") or ()) if schema is not None else set()
        properties = (schema or {}).get("properties") or {}
        out: list[Need] = []
        for key, item in value.items():
            sub = properties.get(key) if isinstance(properties, Mapping) else None
            label = f"the body's {key}" if where == "the body" else f"{where}.{key}"
            out += _body(item, sub, label, needed and key in required)
        return out
    if isinstance(value, list):
        items = (schema or {}).get("items")
        sub = items if isinstance(items, Mapping) else None
        # One item: absent, the list is empty. Several: an absent one is just dropped.
        alone = needed and len(value) == 1
        return [need for item in value for need in _body(item, sub, where, alone)]
    return []


def _operation(name: str) -> Any:
    from sink.errors import SinkError
    from sink.request import schema

    try:
        return schema.find_operation(name)
    except SinkError:
        return None


def _manual_schema(method: str, url: str) -> Mapping[str, Any] | None:
    import re

    from sink.request import schema

    path = re.sub(r"\{\{.*?\}\}", "x", url)
    if path.startswith(("http://", "https://")):
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    return _body_schema(schema.match_operation(method.upper(), path.split("?", 1)[0]))


def _body_schema(operation: Any) -> Mapping[str, Any] | None:
    body = getattr(operation, "body_schema", None)
    return body if isinstance(body, Mapping) else None


# The check --------------------------------------------------------------------------------------


def check(destination: Destination, columns: Columns) -> Report:
    """Whether the destination's names can match these columns (see the module docstring)."""
    config = destination.config
    names = set(columns.names)
    excluded = set(config.exclude)
    available = [name for name in columns.names if name not in excluded]
    report = Report()
    has = _has(columns)

    for name in config.exclude:
        if name in names:
            continue
        close = _close(name, available, 0.6 if columns.exact else _TYPO_CUTOFF)
        if columns.exact or close:
            report.problems.append(f"exclude: {_no(name, columns, close)}")

    key = config.key_field
    if key is not None:
        if key in excluded and key in names:
            report.problems.append(
                f"key_field: {key!r} is also in exclude, which drops it before the key is read"
            )
        elif key not in names:
            close = _close(key, available)
            report.problems.append(f"key_field: {_no(key, columns, close)}")

    found = needs(destination)
    read = {need.name for need in found} | {a for need in found for a in need.alternatives}
    read |= {key} if key else set()
    unread = [name for name in available if name not in read]
    flagged: set[str] = set()
    missing: dict[str, str] = {}  # optional names of a template the input has not: where used
    for need in found:
        if need.name in flagged:
            continue
        options = (need.name, *need.alternatives)
        if need.required:
            if any(option in available for option in options):
                continue
            flagged.add(need.name)
            either = f" (or {', '.join(need.alternatives)})" if need.alternatives else ""
            what = f"record.{need.name}{either} ({need.where}, required)"
            if need.name in excluded and need.name in names:
                report.problems.append(f"{what}: it is in exclude, so no request can be built")
            else:
                close = _close(need.name, available)
                report.problems.append(f"{what}: {_no(need.name, columns, close)}")
            continue
        if need.name in available or need.name in excluded:
            continue
        if destination.template is not None:
            missing.setdefault(need.name, need.where)
            continue
        close = _close(need.name, unread, _TYPO_CUTOFF)
        if not close:
            continue  # an optional column the input does not have: left out, as it should be
        flagged.add(need.name)
        report.problems.append(
            f"record.{need.name} ({need.where}): {_no(need.name, columns, close)} "
            f"(if {close[0]!r} is not meant for it, add it to exclude)"
        )
    for column in unread:
        # A template's names are fixed: a column close to one it reads is misspelt in the file.
        best = _close(column, missing, _TYPO_CUTOFF)[:1]
        for name in best:
            report.warnings.append(
                f"column {column!r} is not read by {destination.template_id}, which reads the "
                f"optional {name!r} ({missing[name]}); {has} no {name!r}: is the column misspelt?"
            )
    return report


def _has(columns: Columns) -> str:
    return "the input has" if columns.exact else "the sampled records have"


def _no(name: str, columns: Columns, close: list[str]) -> str:
    shown = ", ".join(columns.names[:20]) + (", ..." if len(columns.names) > 20 else "")
    if columns.exact:
        return f"{columns.where} has no column {name!r}{_mean(close)} (columns: {shown or 'none'})"
    return f"no key {name!r} in {columns.where}{_mean(close)} (keys: {shown or 'none'})"


def _close(name: str, candidates: Iterable[str], cutoff: float = 0.6) -> list[str]:
    return difflib.get_close_matches(name, list(candidates), n=3, cutoff=cutoff)


def _mean(close: list[str]) -> str:
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def require(destination: Destination, columns: Columns) -> None:
    """Raise :class:`ConfigError` naming every problem :func:`check` finds."""
    problems = check(destination, columns).problems
    if problems:
        raise ConfigError(
            "the config does not match the input; nothing was sent:\n  " + "\n  ".join(problems)
        )


def checked(
    destination: Destination,
    source: str | Path | None,
    fmt: str | None,
    rows: Iterator[Any],
) -> Iterator[Any]:
    """``rows`` (the reader's records of ``source``) once the destination's names are known to
    match the input's columns; raises :class:`ConfigError` before the first row otherwise.

    A file's columns are read at once (header, schema, first JSON Lines records). Where that
    cannot be done (stdin, or a file that does not look like its format) the columns come from
    the first records the reader gives, before the first one goes on: up to :data:`SAMPLE`
    records, fewer when every name the check needs was already seen.
    """
    columns = input_columns(source, fmt, max_record_bytes=destination.config.max_record_bytes)
    if columns is not None:
        require(destination, columns)
        return rows
    label = "stdin" if source is None or str(source) == "-" else Path(source).name
    return _checked_stream(destination, rows, label)


def _checked_stream(destination: Destination, rows: Iterator[Any], label: str) -> Iterator[Any]:
    config = destination.config
    wanted = [(n.name, *n.alternatives) for n in needs(destination) if n.required]
    wanted += [(config.key_field,)] if config.key_field else []
    buffered: list[Any] = []
    keys: dict[str, None] = {}
    records = 0
    for row in rows:
        buffered.append(row)
        if isinstance(row, Record):
            records += 1
            keys.update(dict.fromkeys(row.data))
            seen = all(any(name in keys for name in options) for options in wanted)
            if seen or records >= SAMPLE:
                break
        if len(buffered) >= _ITEMS_LIMIT:
            break
    if records:
        require(destination, Columns(tuple(keys), _first(records, label), exact=False))
    yield from buffered
    yield from rows
