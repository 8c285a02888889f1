"""Preview: the pipeline stopped after rendering. Prints the exact requests; sends nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import orjson

from sink import pipeline
from sink.destination import Destination
from sink.guard.check import offline_verdict
from sink.guard.owners import OWNER_PATHS
from sink.guard.resolve import Resolver, resolver_for
from sink.model import Record, Rejected, Request
from sink.pipeline import render_stream

if TYPE_CHECKING:
    from sink.config import PolicyConfig


@dataclass
class PreviewReport:
    """What a preview saw."""

    requests: int = 0
    records: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    rejected_count: int = 0
    deferred: int = 0
    """Records with an id the run looks up (shown as a placeholder)."""
    refused: int = 0
    """Records the run's guard would refuse (the policy, the owners team), among rejected."""
    undecided: list[tuple[int, str]] = field(default_factory=list)
    """(record position, why) for requests only Docker Hub can decide at send time (the
    policy's names for ids, the last-owner check); the first ``keep_rejected`` of them."""
    undecided_count: int = 0


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
    records = pipeline.records(destination, source, input_format, keyed=False)
    resolver = resolver_for(destination, None)
    if resolver is not None:
        records = _with_placeholders(records, resolver)
    report = PreviewReport()
    show = format_http if style == "http" else JsonLines().format
    buffer: list[bytes] = []
    requests = carried = 0
    policy = config.policy
    # Without a policy, a template whose path is not under an organization's members, teams
    # or SCIM can only be refused for an ambiguous URL, which depends on the URL alone: each
    # distinct URL is judged once (a create-repository preview judges one).
    template = destination.template
    guarded = policy is not None or template is None or template.path.startswith(OWNER_PATHS)
    clear: set[str] = set()
    for item in render_stream(destination, records):
        if isinstance(item, Rejected):
            report.rejected_count += 1
            if len(report.rejected) < keep_rejected:
                report.rejected.append(item)
            continue
        if guarded or item.url not in clear:
            if _guard_refuses(policy, item, report, keep_rejected):
                continue
            if not guarded and len(clear) < 4096:
                clear.add(item.url)
        requests += 1
        carried += len(item.indexes)
        if limit is None or requests <= limit:
            buffer.append(show(item))
            if len(buffer) >= 4096:
                out.write(b"".join(buffer))
                buffer.clear()
    out.write(b"".join(buffer))
    report.requests = requests
    report.records = carried + report.rejected_count
    report.deferred = resolver.deferred if resolver is not None else 0
    return report


def _guard_refuses(
    policy: PolicyConfig | None, request: Request, report: PreviewReport, keep: int
) -> bool:
    """Apply the run's guard as far as it decides without Docker Hub: count a refusal (True)
    or note what only Hub can decide at send time."""
    refusal, undecided = offline_verdict(policy, request)
    if refusal is not None:
        report.refused += len(request.indexes)
        for index, key in zip(request.indexes, request.keys, strict=False):
            report.rejected_count += 1
            if len(report.rejected) < keep:
                report.rejected.append(Rejected(index, None, f"refused: {refusal}", key))
        return True
    if undecided is not None:
        report.undecided_count += 1
        if len(report.undecided) < keep:
            report.undecided.append((request.indexes[0] if request.indexes else 0, undecided))
    return False


def _with_placeholders(
    records: Iterator[Record | Rejected], resolver: Resolver
) -> Iterator[Record | Rejected]:
    for record in records:
        if isinstance(record, Record):
            resolver.preview(record)
        yield record


REDACTED_AUTH = ("Authorization", "Bearer ***")


def format_json(request: Request) -> bytes:
    """One request as a JSON line: method, URL, headers (Authorization redacted), body."""
    return _prefix(request.method, request.url, request.headers) + _body(request) + b"}\n"


class JsonLines:
    """:func:`format_json` that reuses the line's start while method, URL and headers repeat
    (they do for most templates: only the body changes from record to record)."""

    def __init__(self) -> None:
        self._key: tuple[str, str, tuple[tuple[str, str], ...]] | None = None
        self._prefix = b""

    def format(self, request: Request) -> bytes:
        """One request as a JSON line."""
        key = (request.method, request.url, request.headers)
        if key != self._key:
            self._key = key
            self._prefix = _prefix(*key)
        return self._prefix + _body(request) + b"}\n"


def _prefix(method: str, url: str, headers: tuple[tuple[str, str], ...]) -> bytes:
    shown = dict((REDACTED_AUTH, *headers))
    start = orjson.dumps({"method": method, "url": url, "headers": shown})
    return start[:-1] + b',"body":'


def _body(request: Request) -> bytes:
    return b"null" if request.body is None else request.body


def format_http(request: Request) -> bytes:
    """One request as an HTTP message (Authorization redacted), the body pretty-printed."""
    lines = [f"{request.method} {request.url}"]
    lines += [f"{name}: {value}" for name, value in (REDACTED_AUTH, *request.headers)]
    text = "\n".join(lines) + "\n"
    if request.body is not None:
        body = orjson.dumps(orjson.loads(request.body), option=orjson.OPT_INDENT_2)
        text += "\n" + body.decode() + "\n"
    return (text + "\n").encode()
