"""The wiring: source → prepare → batch → render → guard → dispatch → outputs.

``preview`` (in :mod:`sink.preview`) is the pipeline stopped after ``render``; :func:`send_one`
sends one rendered request; :func:`run` sends them all. This module is the only place that knows
every stage.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, overload

import orjson

from sink.destination import Destination
from sink.errors import ConfigError, RejectRecord
from sink.model import Record, Rejected, Request
from sink.request import render as rendering
from sink.request.batching import Batcher
from sink.source.read import read_records
from sink.source.rows import BadRow, Trimmed

REPLAY_FIELDS = frozenset({"_sink_error", "_sink_status", "_sink_index", "_sink_key", "_sink_raw"})
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
    """Drop excluded attributes, give each record its key, turn unreadable rows into rejections.

    A record that lost attributes keeps them for the rejects file (see
    :class:`~sink.source.read.Trimmed`): a rejected record is written as it came in. A rejects line
    of a row that could not be read (its ``_sink_raw`` and nothing else) is rejected again.
    """
    dropped = frozenset(exclude) | REPLAY_FIELDS
    for row in rows:
        if isinstance(row, BadRow):
            where = f"line {row.line}: " if row.line is not None else ""
            yield Rejected(row.index, None, f"{where}{row.error}", raw=row.raw)
            continue
        data = row.data
        if not dropped.isdisjoint(data):
            trimmed = Trimmed(data)
            for name in dropped.intersection(data):
                del trimmed[name]
            trimmed.original = data
            if not trimmed and isinstance(data.get("_sink_raw"), str):
                error = "a row that could not be read: write its values as fields (_sink_raw)"
                yield Rejected(row.index, None, error, raw=data["_sink_raw"])
                continue
            row.data = data = trimmed
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
    """The destination's input, read and prepared (the format defaults to the config's).

    Raises :class:`ConfigError`, before the first record, when ``exclude``, ``key_field`` or a
    required ``record.x`` cannot match the input's columns (see :mod:`sink.source.columns`): run,
    preview and test all read through here, so none of them sends a typo."""
    from sink.source.columns import checked

    config = destination.config
    fmt = input_format or config.input_format
    rows = read_records(source, fmt, max_record_bytes=config.max_record_bytes)
    return prepare(
        checked(destination, source, fmt, rows),
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

    Per-record mode keeps the input order. Batches are cut by the batching settings alone
    (see :class:`Rendering`), so a preview shows the requests a run sends.
    """
    renderer = destination.renderer
    if not renderer.batched and not with_records:
        # The common preview: one request per record, nothing to carry (the hot loop).
        render = renderer.render
        for record in records:
            if isinstance(record, Rejected):
                yield record
                continue
            try:
                yield render(record)
            except RejectRecord as exc:
                yield _rejected(record, exc)
        return
    rendering = Rendering(destination)
    for item in itertools.chain(rendering.feed(records), rendering.finish()):
        if with_records or isinstance(item, Rejected):
            yield item
        else:
            yield item[0]


class Rendering:
    """Renders records fed in pieces as one stream: a batch is cut when it is full or at the
    end (:meth:`finish`), never where one piece of the input ends and the next begins, so the
    run (which feeds a chunk at a time, between ledger look-ups) and the preview (which feeds
    everything at once) send the same requests."""

    def __init__(self, destination: Destination) -> None:
        self.renderer = destination.renderer
        self._batcher: Batcher[rendering.Item] = Batcher(self.renderer.batching.size)

    def feed(self, records: Iterable[Record | Rejected]) -> Iterator[Carried | Rejected]:
        """The requests completed by ``records`` (and their rejections), in order."""
        renderer = self.renderer
        if not renderer.batched:
            render = renderer.render
            for record in records:
                if isinstance(record, Rejected):
                    yield record
                    continue
                try:
                    yield render(record), (record,)
                except RejectRecord as exc:
                    yield _rejected(record, exc)
            return
        for record in records:
            if isinstance(record, Rejected):
                yield record
                continue
            try:
                item = renderer.item(record)
            except RejectRecord as exc:
                yield _rejected(record, exc)
                continue
            batch = self._batcher.add(item)
            if batch is not None:
                yield from self._request(batch)

    def finish(self) -> Iterator[Carried | Rejected]:
        """The requests of the batches still open (the input has ended)."""
        for batch in self._batcher.rest():
            yield from self._request(batch)

    def _request(self, batch: list[rendering.Item]) -> Iterator[Carried | Rejected]:
        try:
            request = self.renderer.request(batch)
        except RejectRecord as exc:
            for item in batch:
                yield _rejected(item.record, exc)
            return
        yield request, tuple(item.record for item in batch)


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
    # A hand-edited body is its own record: the ledger and the vault keep it under a key of
    # its own, never under the key of the record it was edited from.
    digest = hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()
    edited = Record(record.index, record.data, key=f"hand-edited:{digest[:16]}")
    return renderer.with_body(edited, value), (edited,)
