"""The wiring: source → prepare → batch → render → guard → dispatch → outputs.

``preview`` is the pipeline stopped after ``render``; ``test`` sends one rendered request; ``run``
sends them all. This module is the only place that knows every stage.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from sink import render as rendering
from sink.batching import batches
from sink.config import DestinationConfig, load_config, resolve_path
from sink.errors import ConfigError, RejectRecord
from sink.model import Record, Rejected, Request
from sink.sources import BadRow, read_records
from sink.templates import EndpointTemplate, load_registry
from sink.values import parse_headers

REPLAY_FIELDS = frozenset({"_sink_error", "_sink_status", "_sink_index", "_sink_key"})
"""Fields the rejects file adds to a record; dropped when the rejects are replayed as input."""


@dataclass
class Destination:
    """A destination config bound to its template and renderer, ready to preview or run."""

    config: DestinationConfig
    folder: Path
    template: EndpointTemplate | None
    renderer: rendering.Renderer

    @property
    def template_id(self) -> str:
        """The template id, or ``manual``."""
        return self.renderer.template_id

    @property
    def destructive(self) -> bool:
        """Whether sending deletes or removes something."""
        if self.template is not None:
            return self.template.destructive
        return self.renderer.method == "DELETE"

    @property
    def secret_fields(self) -> tuple[str, ...]:
        """Response fields that go only to the vault."""
        return tuple(self.template.secrets) if self.template is not None else ()

    def path(self, value: str | None) -> Path | None:
        """A path from the config, relative to the config's folder."""
        return resolve_path(self.folder, value)


def open_destination(
    config_path: str | Path, *, base_url: str | None = None, validate: bool = True
) -> Destination:
    """Load a destination config and bind its template (or manual settings)."""
    config, folder = load_config(config_path)
    return bind(config, folder, base_url=base_url, validate=validate)


def bind(
    config: DestinationConfig,
    folder: Path,
    *,
    base_url: str | None = None,
    validate: bool = True,
) -> Destination:
    """Bind a parsed config: look its template up and compile the renderer."""
    base = base_url or config.connection.base_url
    batching = config.batching.to_batching()
    template = None
    if config.template is not None:
        template = load_registry().get(config.template)
        missing = [name for name in template.path_settings if name not in config.settings]
        if missing:
            raise ConfigError(
                f"template {template.id} needs settings: {', '.join(missing)} "
                f"(for example settings: {{{', '.join(f'{m}: ...' for m in missing)}}})"
            )
        if batching.mode == "json_property" and template.batch is None:
            raise ConfigError(
                f"template {template.id} sends one record per request; json_property batching "
                "needs a template with a batch field (bulk-invite) or manual mode"
            )
        renderer = rendering.for_template(
            template,
            config.settings,
            base,
            headers=config.extra_headers,
            batching=batching,
            validate=validate,
        )
    else:
        manual = config.manual
        assert manual is not None
        renderer = rendering.for_manual(
            method=manual.method,
            url=manual.url,
            settings=config.settings,
            base_url=base,
            headers={**parse_headers(manual.headers), **config.extra_headers},
            body=manual.body,
            body_is_record=manual.body_is_record,
            batching=batching,
            validate=validate,
        )
    return Destination(config, folder, template, renderer)


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


def render_stream(
    destination: Destination, records: Iterable[Record | Rejected]
) -> Iterator[Request | Rejected]:
    """Rendered requests, in input order for per-record mode; rejections as they happen."""
    renderer = destination.renderer
    if not renderer.batched:
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
            yield renderer.request(batch)
        except RejectRecord as exc:
            for item in batch:
                yield _rejected(item.record, exc)
    yield from pending


def _rejected(record: Record, exc: RejectRecord) -> Rejected:
    return Rejected(record.index, record.data, exc.message, record.key, exc.field, exc.status)


@dataclass
class PreviewReport:
    """What a preview saw."""

    requests: int = 0
    records: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    rejected_count: int = 0


def preview(
    destination: Destination,
    source: str | Path | None,
    *,
    input_format: str | None = None,
    limit: int | None = 5,
    out: IO[bytes],
    style: str = "json",
    keep_rejected: int = 100,
) -> PreviewReport:
    """Write the first ``limit`` requests (all with ``None``) to ``out``; check every record.

    Nothing is sent. ``Authorization`` is shown as ``Bearer ***``.
    """
    config = destination.config
    rows = read_records(source, input_format or config.input_format)
    records = prepare(
        rows,
        exclude=config.exclude,
        key_field=config.key_field,
        template_id=destination.template_id,
        keyed=False,
    )
    report = PreviewReport()
    write = out.write
    show = format_http if style == "http" else format_json
    buffer: list[bytes] = []
    for item in render_stream(destination, records):
        if isinstance(item, Rejected):
            report.rejected_count += 1
            if len(report.rejected) < keep_rejected:
                report.rejected.append(item)
            continue
        report.requests += 1
        report.records += len(item.indexes)
        if limit is None or report.requests <= limit:
            buffer.append(show(item))
            if len(buffer) >= 4096:
                write(b"".join(buffer))
                buffer.clear()
    write(b"".join(buffer))
    report.records += report.rejected_count
    return report


REDACTED_AUTH = ("Authorization", "Bearer ***")


def format_json(request: Request) -> bytes:
    """One request as a JSON line: method, URL, headers (Authorization redacted), body."""
    headers = dict((REDACTED_AUTH, *request.headers))
    body = orjson.Fragment(request.body) if request.body is not None else None
    line = {"method": request.method, "url": request.url, "headers": headers, "body": body}
    return orjson.dumps(line) + b"\n"


def format_http(request: Request) -> bytes:
    """One request as an HTTP message (Authorization redacted), the body pretty-printed."""
    lines = [f"{request.method} {request.url}"]
    lines += [f"{name}: {value}" for name, value in (REDACTED_AUTH, *request.headers)]
    text = "\n".join(lines) + "\n"
    if request.body is not None:
        body = orjson.dumps(orjson.loads(request.body), option=orjson.OPT_INDENT_2)
        text += "\n" + body.decode() + "\n"
    return (text + "\n").encode()
