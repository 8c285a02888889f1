"""Preview: the pipeline stopped after rendering. Prints the exact requests; sends nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO

import orjson

from sink.destination import Destination
from sink.model import Rejected, Request
from sink.pipeline import prepare, render_stream
from sink.sources import read_records


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
    return b"".join((
        b'{"method":', _json_text(request.method),
        b',"url":', orjson.dumps(request.url),
        b',"headers":', _json_headers(request.headers),
        b',"body":', b"null" if request.body is None else request.body,
        b"}\n",
    ))


@lru_cache(maxsize=256)
def _json_headers(headers: tuple[tuple[str, str], ...]) -> bytes:
    return orjson.dumps(dict((REDACTED_AUTH, *headers)))


@lru_cache(maxsize=16)
def _json_text(text: str) -> bytes:
    return orjson.dumps(text)


def format_http(request: Request) -> bytes:
    """One request as an HTTP message (Authorization redacted), the body pretty-printed."""
    lines = [f"{request.method} {request.url}"]
    lines += [f"{name}: {value}" for name, value in (REDACTED_AUTH, *request.headers)]
    text = "\n".join(lines) + "\n"
    if request.body is not None:
        body = orjson.dumps(orjson.loads(request.body), option=orjson.OPT_INDENT_2)
        text += "\n" + body.decode() + "\n"
    return (text + "\n").encode()
