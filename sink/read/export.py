"""Hub's own data as records: ``sink export WHAT`` to JSON Lines, CSV or Parquet, streaming.

Each export reads one of Hub's lists page by page through :class:`~sink.read.hub.HubReader` and
hands every item to a writer as soon as it arrives, so memory stays constant however long the
list is (the members-with-teams export also keeps each user's team names). The records are
Hub's items as Hub answers them, with a few fields added where they help a review: ``status``
of a member (``active`` or ``pending`` for an invitee), ``teams`` (``--teams``), ``team`` of a
team member, ``organization`` of the settings; token secrets are never exported.

Writers (:func:`open_writer`):

- JSON Lines (default, to stdout): every field of every record.
- CSV: the columns are the fields of the first 1,000 records, in order of appearance; nested
  values are JSON text, booleans ``true``/``false``, nulls empty, date-times ISO 8601 (as Hub
  wrote them, or, in Go's form, rewritten in UTC: ``2025-03-01T00:30:00.500000Z``).
- Parquet: written in row groups of 1,000 records; the column types come from the first row
  group (text, integer, float, boolean, list of text, timestamp in UTC); nested objects are
  JSON text.

A date-time column (the audit log's ``timestamp``, a repository's ``last_updated``...) is one
whose values in the first 1,000 records are all date-times, ISO 8601 or Go's form that some
Hub lists answer (``2025-03-01 00:30:00.5 +0000 UTC``), so pandas and DuckDB read it as one.

For CSV and Parquet, a field that first appears after the first 1,000 records is left out and
reported (``writer.dropped``). A file is written beside its target and renamed when complete.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from sink.errors import ConfigError, SinkError
from sink.read.credentials import Credentials
from sink.read.hub import HubReader, segment
from sink.send.session import HubSession

BATCH_ROWS = 1_000
ORDERINGS = ("name", "-name", "last_updated", "-last_updated", "pull_count", "-pull_count")
ROLES = ("owner", "editor", "member")
MEMBER_TYPES = ("all", "invitee", "member")
FORMATS = ("jsonl", "csv", "parquet")
AUDIT_PAGE_SIZE = 25
"""Hub's default page size of the audit log (other lists default to 10)."""

_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


@dataclass
class ExportOptions:
    """What to export. ``namespace`` is the namespace, organization or account (default: the
    connection's identifier); dates are RFC 3339 (see :func:`parse_date`)."""

    namespace: str | None = None
    repository: str | None = None
    tag: str | None = None
    team: str | None = None
    name: str | None = None
    ordering: str | None = None
    page_size: int | None = None
    search: str | None = None
    role: str | None = None
    type: str | None = None
    invitees: bool = False
    teams: bool = False
    since: str | None = None
    until: str | None = None
    action: str | None = None
    actor: str | None = None


Records = AsyncIterator[dict[str, Any]]
Exporter = Callable[[HubReader, str, ExportOptions], Records]


def parse_date(text: str, *, end: bool = False) -> str:
    """An RFC 3339 date-time for Hub from ``2025-01-31`` or a full date-time.

    A date alone means the start of that day (UTC), or with ``end`` its last microsecond, so
    that ``--to 2025-01-31`` includes the 31st.
    """
    value = text.strip()
    try:
        if len(value) == 10:
            day = datetime.strptime(value, "%Y-%m-%d")
            clock = "23:59:59.999999" if end else "00:00:00"
            return f"{day:%Y-%m-%d}T{clock}Z"
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError as exc:
        raise ConfigError(
            f"{text!r} is not a date: use 2025-01-31 or 2025-01-31T12:00:00Z"
        ) from exc
    if parsed.tzinfo is None:
        return parsed.isoformat() + "Z"
    return value


def is_date(text: str) -> bool:
    """Whether ``text`` reads as a date or a date-time (not as a file name)."""
    try:
        parse_date(text)
    except ConfigError:
        return False
    return True


def _page_size(options: ExportOptions, default: int = 10) -> int:
    size = options.page_size if options.page_size is not None else default
    if not 1 <= size <= 100:
        raise ConfigError(f"--page-size must be between 1 and 100 (got {size})")
    return size


def _repository(options: ExportOptions, namespace: str) -> tuple[str, str]:
    if not options.repository:
        raise ConfigError("which repository? give --repository NAME (or NAMESPACE/NAME)")
    if "/" in options.repository:
        namespace, _, name = options.repository.partition("/")
        return namespace, name
    return namespace, options.repository


def _choice(value: str | None, allowed: tuple[str, ...], flag: str) -> str | None:
    if value is not None and value not in allowed:
        raise ConfigError(f"{flag} must be one of {', '.join(allowed)} (got {value!r})")
    return value


# -- the exports ----------------------------------------------------------------------------


async def _repositories(reader: HubReader, namespace: str, options: ExportOptions) -> Records:
    params: dict[str, Any] = {}
    if options.name:
        params["name"] = options.name
    if _choice(options.ordering, ORDERINGS, "--ordering"):
        params["ordering"] = options.ordering
    path = f"/v2/namespaces/{segment(namespace)}/repositories"
    async for item in reader.items(path, params=params, page_size=_page_size(options), strict=True):
        yield item


async def _repository_details(reader: HubReader, namespace: str, options: ExportOptions) -> Records:
    namespace, name = _repository(options, namespace)
    body = await reader.get_json(
        f"/v2/namespaces/{segment(namespace)}/repositories/{segment(name)}"
    )
    if isinstance(body, dict):
        yield body


async def _tags(reader: HubReader, namespace: str, options: ExportOptions) -> Records:
    namespace, name = _repository(options, namespace)
    path = f"/v2/namespaces/{segment(namespace)}/repositories/{segment(name)}/tags"
    async for item in reader.items(path, page_size=_page_size(options), strict=True):
        yield item


async def _tag(reader: HubReader, namespace: str, options: ExportOptions) -> Records:
    namespace, name = _repository(options, namespace)
    if not options.tag:
        raise ConfigError("which tag? give --tag NAME")
    body = await reader.get_json(
        f"/v2/namespaces/{segment(namespace)}/repositories/{segment(name)}/tags/"
        f"{segment(options.tag)}"
    )
    if isinstance(body, dict):
        yield body


async def _team_names(reader: HubReader, org: str, page_size: int) -> list[str]:
    names = []
    async for team in reader.items(
        f"/v2/orgs/{segment(org)}/groups", page_size=page_size, strict=True
    ):
        if isinstance(team.get("name"), str):
            names.append(team["name"])
    return names


async def _team_members(
    reader: HubReader, org: str, team: str, page_size: int, search: str | None = None
) -> Records:
    path = f"/v2/orgs/{segment(org)}/groups/{segment(team)}/members"
    params = {"search": search} if search else None
    async for member in reader.items(path, params=params, page_size=page_size, strict=True):
        yield member


async def _members(reader: HubReader, org: str, options: ExportOptions) -> Records:
    size = _page_size(options)
    teams_of: dict[str, list[str]] = {}
    if options.teams:
        for team in await _team_names(reader, org, 100):
            async for member in _team_members(reader, org, team, 100):
                username = str(member.get("username", "")).casefold()
                teams_of.setdefault(username, []).append(team)
    params: dict[str, Any] = {}
    if options.search:
        params["search"] = options.search
    if _choice(options.role, ROLES, "--role"):
        params["role"] = options.role
    if _choice(options.type, MEMBER_TYPES, "--type"):
        params["type"] = options.type
    if options.invitees:
        params["invites"] = "true"
        params.setdefault("type", "all")
    async for member in reader.items(
        f"/v2/orgs/{segment(org)}/members", params=params, page_size=size, strict=True
    ):
        invitee = str(member.get("role", "")).casefold() == "invitee"
        member["status"] = "pending" if invitee else "active"
        if options.teams:
            username = str(member.get("username", "")).casefold()
            known = teams_of.get(username) if username and not invitee else None
            member["teams"] = sorted(known or member.get("groups") or [])
        yield member


async def _teams(reader: HubReader, org: str, options: ExportOptions) -> Records:
    params = {"search": options.search} if options.search else None
    async for team in reader.items(
        f"/v2/orgs/{segment(org)}/groups", params=params, page_size=_page_size(options), strict=True
    ):
        yield team


async def _all_team_members(reader: HubReader, org: str, options: ExportOptions) -> Records:
    size = _page_size(options)
    teams = [options.team] if options.team else await _team_names(reader, org, 100)
    for team in teams:
        async for member in _team_members(reader, org, team, size, options.search):
            yield {"team": team, **member}


async def _invites(reader: HubReader, org: str, options: ExportOptions) -> Records:
    async for invite in reader.items(
        f"/v2/orgs/{segment(org)}/invites", list_key="data", strict=True
    ):
        yield invite


def _without_secret(item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if key != "token"}


async def _tokens(reader: HubReader, _: str, options: ExportOptions) -> Records:
    async for token in reader.items(
        "/v2/access-tokens", page_size=_page_size(options), strict=True
    ):
        yield _without_secret(token)


async def _org_tokens(reader: HubReader, org: str, options: ExportOptions) -> Records:
    async for token in reader.items(
        f"/v2/orgs/{segment(org)}/access-tokens", page_size=_page_size(options), strict=True
    ):
        yield _without_secret(token)


async def _org_settings(reader: HubReader, org: str, options: ExportOptions) -> Records:
    body = await reader.get_json(f"/v2/orgs/{segment(org)}/settings")
    if isinstance(body, dict):
        yield {"organization": org, **body}


async def _audit_log(reader: HubReader, account: str, options: ExportOptions) -> Records:
    params: dict[str, Any] = {}
    if options.since:
        params["from"] = parse_date(options.since)
    if options.until:
        params["to"] = parse_date(options.until, end=True)
    if options.action:
        params["action"] = options.action
    if options.actor:
        params["actor"] = options.actor
    if options.name:
        params["name"] = options.name
    async for event in reader.items(
        f"/v2/auditlogs/{segment(account)}",
        list_key="logs",
        params=params,
        page_size=_page_size(options, AUDIT_PAGE_SIZE),
        strict=True,
    ):
        yield event


async def _audit_actions(reader: HubReader, account: str, options: ExportOptions) -> Records:
    body = await reader.get_json(f"/v2/auditlogs/{segment(account)}/actions")
    groups = body.get("actions") if isinstance(body, dict) else None
    if not isinstance(groups, dict):
        return
    for group, entry in groups.items():
        if not isinstance(entry, dict):
            continue
        for action in entry.get("actions") or []:
            if isinstance(action, dict):
                yield {"group": group, "group_label": entry.get("label"), **action}


EXPORTS: dict[str, tuple[Exporter, str]] = {
    "repositories": (_repositories, "repositories of a namespace"),
    "repository": (_repository_details, "one repository's details (--repository)"),
    "tags": (_tags, "tags of a repository (--repository)"),
    "tag": (_tag, "one tag (--repository, --tag)"),
    "members": (_members, "organization members (--teams adds each member's teams)"),
    "teams": (_teams, "teams of an organization"),
    "team-members": (_all_team_members, "members of one team (--team) or of every team"),
    "invites": (_invites, "pending invites of an organization"),
    "tokens": (_tokens, "personal access tokens of the connection's user (metadata only)"),
    "org-tokens": (_org_tokens, "organization access tokens (metadata only)"),
    "org-settings": (_org_settings, "organization settings"),
    "audit-log": (_audit_log, "the audit log (--from, --to, --action)"),
    "audit-actions": (_audit_actions, "the audit-log actions one can filter on"),
}


NOUNS: dict[str, tuple[str, str]] = {
    "repositories": ("repository", "repositories"),
    "repository": ("repository", "repositories"),
    "tags": ("tag", "tags"),
    "tag": ("tag", "tags"),
    "members": ("member", "members"),
    "teams": ("team", "teams"),
    "team-members": ("team member", "team members"),
    "invites": ("invite", "invites"),
    "tokens": ("personal access token", "personal access tokens"),
    "org-tokens": ("organization access token", "organization access tokens"),
    "org-settings": ("organization's settings", "organizations' settings"),
    "audit-log": ("audit-log event", "audit-log events"),
    "audit-actions": ("audit-log action", "audit-log actions"),
}
"""What the records of each export are, one and several (``exported 4 members``)."""


def counted(what: str, count: int) -> str:
    """``count`` records of the export ``what`` in words: ``1 member``, ``4 members``."""
    one, many = NOUNS.get(what, ("record", "records"))
    return f"{count:,} {one if count == 1 else many}"


def records(reader: HubReader, what: str, namespace: str, options: ExportOptions) -> Records:
    """The records of the export ``what`` (a key of :data:`EXPORTS`)."""
    found = EXPORTS.get(what)
    if found is None:
        raise ConfigError(f"unknown export {what!r}: use one of {', '.join(EXPORTS)}")
    return found[0](reader, namespace, options)


# -- writers --------------------------------------------------------------------------------


class RecordWriter(Protocol):
    """Takes records one at a time; ``close`` finishes the output."""

    @property
    def dropped(self) -> set[str]:
        """Fields left out of the output (CSV and Parquet columns are fixed)."""

    def write(self, record: dict[str, Any]) -> None:
        """Write (or buffer) one record."""

    def close(self) -> None:
        """Write what is buffered and finish the output."""


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


class JsonLinesWriter:
    """One JSON object a line, every field kept."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out

    @property
    def dropped(self) -> set[str]:
        """Nothing is left out of JSON Lines."""
        return set()

    def write(self, record: dict[str, Any]) -> None:
        """Write one record."""
        self.out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))

    def close(self) -> None:
        """Flush."""
        self.out.flush()


class _Columns:
    """Columns settled from the first batch; later records are fitted to them."""

    def __init__(self, batch_rows: int) -> None:
        self.batch_rows = batch_rows
        self.pending: list[dict[str, Any]] = []
        self.names: list[str] | None = None
        self.dropped: set[str] = set()

    def settle(self) -> list[str]:
        names: dict[str, None] = {}
        for record in self.pending:
            names.update(dict.fromkeys(record))
        self.names = list(names)
        return self.names

    def note_extra(self, record: dict[str, Any]) -> None:
        assert self.names is not None
        if len(record) > len(self.names) or any(key not in self.names for key in record):
            self.dropped.update(key for key in record if key not in self.names)


_DATETIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d{1,9}))? ?"
    r"(Z|[+-]\d{2}:?\d{2})(?: UTC)?"
)


def parse_datetime(value: Any) -> datetime | None:
    """A date-time of Hub's, in UTC: ISO 8601 / RFC 3339 with its zone, or Go's
    ``2025-03-01 00:30:00.5 +0000 UTC``; None for anything else (a zone is required)."""
    if not isinstance(value, str) or not 20 <= len(value) <= 40:
        return None
    found = _DATETIME.fullmatch(value)
    if found is None:
        return None
    day, clock, fraction, zone = found.groups()
    if zone == "Z":
        tz = UTC
    else:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        tz = timezone(sign * offset)
    micro = (fraction or "").ljust(6, "0")[:6]
    try:
        local = datetime.fromisoformat(f"{day}T{clock}.{micro}").replace(tzinfo=tz)
    except ValueError:
        return None
    return local.astimezone(UTC)


def iso_text(moment: datetime) -> str:
    """A UTC date-time as ISO 8601: ``2025-03-01T00:30:00Z`` (microseconds when there are)."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


def _datetime_columns(names: list[str], rows: list[dict[str, Any]]) -> frozenset[str]:
    """The columns whose values in ``rows`` (nulls and empty text aside) are all date-times."""
    found = set()
    for name in names:
        present = [row.get(name) for row in rows if row.get(name) not in (None, "")]
        if present and all(parse_datetime(value) is not None for value in present):
            found.add(name)
    return frozenset(found)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return _json_text(value)


class CsvWriter:
    """CSV with a header; nested values as JSON text."""

    def __init__(self, out: IO[str], *, batch_rows: int = BATCH_ROWS) -> None:
        self.out = out
        self.writer = csv.writer(out, lineterminator="\n")
        self._columns = _Columns(batch_rows)
        self._times: frozenset[str] = frozenset()

    @property
    def dropped(self) -> set[str]:
        """Fields left out because they first appeared after the first batch."""
        return self._columns.dropped

    def write(self, record: dict[str, Any]) -> None:
        """Write one record (the first batch is held until the columns are known)."""
        columns = self._columns
        if columns.names is None:
            columns.pending.append(record)
            if len(columns.pending) >= columns.batch_rows:
                self._start()
            return
        columns.note_extra(record)
        self.writer.writerow(self._row(record, columns.names))

    def _row(self, record: dict[str, Any], names: list[str]) -> list[str]:
        times = self._times
        if not times:
            return [_csv_cell(record.get(name)) for name in names]
        cells = []
        for name in names:
            value = record.get(name)
            # ISO 8601 as Hub wrote it stays; Go's form is rewritten as ISO 8601.
            rewrite = name in times and isinstance(value, str) and value[10:11] != "T"
            moment = parse_datetime(value) if rewrite else None
            cells.append(_csv_cell(value) if moment is None else iso_text(moment))
        return cells

    def _start(self) -> None:
        columns = self._columns
        names = columns.settle()
        if names:
            self.writer.writerow(names)
        self._times = _datetime_columns(names, columns.pending)
        pending, columns.pending = columns.pending, []
        for record in pending:
            self.writer.writerow(self._row(record, names))

    def close(self) -> None:
        """Write the held records and flush."""
        if self._columns.names is None:
            self._start()
        self.out.flush()


class ParquetWriter:
    """Parquet in row groups of ``batch_rows`` records; types from the first row group."""

    def __init__(self, path: Path, *, batch_rows: int = BATCH_ROWS) -> None:
        self.path = path
        self._columns = _Columns(batch_rows)
        self._schema: Any = None
        self._writer: Any = None

    @property
    def dropped(self) -> set[str]:
        """Fields left out because they first appeared after the first row group."""
        return self._columns.dropped

    def write(self, record: dict[str, Any]) -> None:
        """Buffer one record; a full batch becomes a row group."""
        columns = self._columns
        if columns.names is not None:
            columns.note_extra(record)
        columns.pending.append(record)
        if len(columns.pending) >= columns.batch_rows:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = self._columns
        if self._schema is None:
            names = columns.settle()
            self._schema = pa.schema(
                [
                    pa.field(name, _arrow_type([r.get(name) for r in columns.pending]))
                    for name in names
                ]
            )
            self._writer = pq.ParquetWriter(str(self.path), self._schema)
        if not columns.pending:
            return
        arrays = []
        for field in self._schema:
            values = [_arrow_value(r.get(field.name), field.type) for r in columns.pending]
            try:
                arrays.append(pa.array(values, type=field.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
                raise SinkError(
                    f"the field {field.name!r} changed type after the first row group "
                    f"({field.type}); export to JSON Lines instead ({exc})"
                ) from exc
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self._schema))
        columns.pending = []

    def close(self) -> None:
        """Write the last row group and the file footer."""
        self._flush()
        if self._writer is not None:
            self._writer.close()


TIMESTAMP_UNIT = "us"


def _arrow_type(values: list[Any]) -> Any:
    import pyarrow as pa

    present = [v for v in values if v is not None]
    if not present:
        return pa.string()
    dated = [v for v in present if v != ""]
    if dated and all(parse_datetime(v) is not None for v in dated):
        return pa.timestamp(TIMESTAMP_UNIT, tz="UTC")
    if all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.int64()
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.float64()
    if all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in present):
        return pa.list_(pa.string())
    return pa.string()


def _arrow_value(value: Any, kind: Any) -> Any:
    import pyarrow as pa

    if value is None:
        return None
    if pa.types.is_timestamp(kind):
        if value == "":
            return None
        moment = parse_datetime(value)
        return value if moment is None else moment  # not a date-time: pyarrow says which field
    if kind == pa.string():
        return value if isinstance(value, str) else _json_text(value)
    if kind == pa.float64() and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if pa.types.is_list(kind) and isinstance(value, list):
        return [i if isinstance(i, str) else _json_text(i) for i in value]
    return value


def format_of(target: str | None, fmt: str | None) -> str:
    """The output format: ``fmt`` if given, else from the target's extension, else JSON Lines."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
        return fmt
    if target in (None, "-"):
        return "jsonl"
    found = _EXTENSIONS.get(Path(target).suffix.lower())
    if found is None:
        raise ConfigError(
            f"cannot tell the format of {target!r}: name it .csv, .jsonl or .parquet, "
            "or give --format"
        )
    return found


@contextlib.contextmanager
def open_writer(
    target: str | None,
    fmt: str | None = None,
    *,
    stdout: IO[bytes] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[RecordWriter]:
    """A writer to ``target`` (``None`` or ``-``: standard output).

    A file is written under a temporary name beside it and renamed when the export is
    complete; an export that fails leaves no partial file.
    """
    kind = format_of(target, fmt)
    if target in (None, "-"):
        if kind == "parquet":
            raise ConfigError("Parquet needs a file: give --to FILE.parquet")
        out = stdout if stdout is not None else sys.stdout.buffer
        if kind == "csv":
            text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
            try:
                csv_writer = CsvWriter(text, batch_rows=batch_rows)
                yield csv_writer
                csv_writer.close()
            finally:
                text.detach()
        else:
            json_writer = JsonLinesWriter(out)
            yield json_writer
            json_writer.close()
        return
    assert target is not None
    path = Path(target)
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    os.close(handle)
    try:
        writer: RecordWriter
        if kind == "parquet":
            writer = ParquetWriter(Path(temp), batch_rows=batch_rows)
            yield writer
            writer.close()
        elif kind == "csv":
            with open(temp, "w", encoding="utf-8", newline="") as text_out:
                writer = CsvWriter(text_out, batch_rows=batch_rows)
                yield writer
                writer.close()
        else:
            with open(temp, "wb") as binary_out:
                writer = JsonLinesWriter(binary_out)
                yield writer
                writer.close()
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


# -- running an export ----------------------------------------------------------------------


async def export_async(
    credentials: Credentials,
    what: str,
    options: ExportOptions,
    writer: RecordWriter,
    *,
    transport: Any = None,
) -> int:
    """Stream the export ``what`` into ``writer``; returns the number of records."""
    namespace = options.namespace or credentials.identifier
    count = 0
    async with HubSession(credentials, timeout=60.0, transport=transport) as session:
        async for record in records(session.reader, what, namespace, options):
            writer.write(record)
            count += 1
    return count
