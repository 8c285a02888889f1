"""The wiring: source → prepare → batch → render → guard → dispatch → outputs.

``preview`` (in :mod:`sink.preview`) is the pipeline stopped after ``render``; :func:`send_one`
sends one rendered request; :func:`run` sends them all. This module is the only place that knows
every stage.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, overload

import orjson

from sink import render as rendering
from sink.batching import batches
from sink.destination import Destination
from sink.errors import ConfigError, RejectRecord
from sink.model import Record, Rejected, Request
from sink.sources import BadRow, read_records

REPLAY_FIELDS = frozenset({"_sink_error", "_sink_status", "_sink_index", "_sink_key"})
"""Fields the rejects file adds to a record; dropped when the rejects are replayed as input."""


def record_key(data: dict[str, Any], template_id: str, key_field: str | None) -> str:
    """A stable key: the key field's value, or a hash of the record's content and the template."""
    if key_field is not None:
        value = data.get(key_field)
        if value is None or value == "":
            raise RejectRecord(f"key field {key_field!r} is missing", field=key_field)
        return str(value)
    content = orjson.dumps(data, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.blake2b(content, digest_size=12, person=template_id.encode()[:16]).hexdigest()


def prepare(
    rows: Iterable[Record | BadRow],
    *,
    exclude: Iterable[str] = (),
    key_field: str | None = None,
    template_id: str = "",
    keyed: bool = True,
) -> Iterator[Record | Rejected]:
    """Drop excluded attributes, give each record its key, turn unreadable rows into rejections."""
    dropped = frozenset(exclude) | REPLAY_FIELDS
    for row in rows:
        if isinstance(row, BadRow):
            where = f"line {row.line}: " if row.line is not None else ""
            yield Rejected(row.index, None, f"{where}{row.error}", raw=row.raw)
            continue
        data = row.data
        if not dropped.isdisjoint(data):
            data = row.data = {k: v for k, v in data.items() if k not in dropped}
        if keyed:
            try:
                row.key = record_key(data, template_id, key_field)
            except RejectRecord as exc:
                yield Rejected(row.index, data, exc.message, field=exc.field)
                continue
        yield row


Carried = tuple[Request, tuple[Record, ...]]


def records(
    destination: Destination,
    source: str | Path | None,
    input_format: str | None = None,
    *,
    keyed: bool = True,
) -> Iterator[Record | Rejected]:
    """The destination's input, read and prepared (the format defaults to the config's)."""
    config = destination.config
    return prepare(
        read_records(
            source,
            input_format or config.input_format,
            max_record_bytes=config.max_record_bytes,
        ),
        exclude=config.exclude,
        key_field=config.key_field,
        template_id=destination.template_id,
        keyed=keyed,
    )


@overload
def render_stream(
    destination: Destination,
    records: Iterable[Record | Rejected],
    *,
    with_records: Literal[False] = False,
) -> Iterator[Request | Rejected]: ...


@overload
def render_stream(
    destination: Destination, records: Iterable[Record | Rejected], *, with_records: Literal[True]
) -> Iterator[Carried | Rejected]: ...


def render_stream(
    destination: Destination, records: Iterable[Record | Rejected], *, with_records: bool = False
) -> Iterator[Request | Carried | Rejected]:
    """Rendered requests (with the records they carry if asked), rejections as they happen.

    Per-record mode keeps the input order.
    """
    renderer = destination.renderer
    if not renderer.batched:
        render = renderer.render
        for record in records:
            if isinstance(record, Rejected):
                yield record
                continue
            try:
                request = render(record)
            except RejectRecord as exc:
                yield _rejected(record, exc)
                continue
            yield (request, (record,)) if with_records else request
        return
    pending: deque[Rejected] = deque()

    def items() -> Iterator[rendering.Item]:
        for record in records:
            if isinstance(record, Rejected):
                pending.append(record)
                continue
            try:
                yield renderer.item(record)
            except RejectRecord as exc:
                pending.append(_rejected(record, exc))

    for batch in batches(items(), renderer.batching.size):
        while pending:
            yield pending.popleft()
        try:
            request = renderer.request(batch)
        except RejectRecord as exc:
            for item in batch:
                yield _rejected(item.record, exc)
            continue
        yield (request, tuple(item.record for item in batch)) if with_records else request
    yield from pending


def _rejected(record: Record, exc: RejectRecord) -> Rejected:
    return Rejected(record.index, record.data, exc.message, record.key, exc.field, exc.status)


def pick_record(
    destination: Destination, source: str | Path | None, input_format: str | None, number: int
) -> Record:
    """The ``number``-th (1-based) record of the input, prepared as a run would."""
    if number < 1:
        raise ConfigError("--record counts from 1")
    for item in records(destination, source, input_format):
        if item.index + 1 < number:
            continue
        if isinstance(item, Rejected):
            raise ConfigError(f"record {number} cannot be read: {item.error}")
        return item
    raise ConfigError(f"the input has fewer than {number} records")


def test_request(
    destination: Destination, record: Record | None, body: str | None
) -> tuple[Request, tuple[Record, ...]]:
    """The request ``sink test`` sends: the record rendered, its body replaced by ``body`` if given.

    A hand-edited body is checked against the spec like a rendered one.
    """
    renderer = destination.renderer
    record = record or Record(0, {}, key="test")
    if body is None:
        return renderer.render(record), (record,)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"--body is not valid JSON: {exc}") from exc
    return renderer.with_body(record, value), (record,)
