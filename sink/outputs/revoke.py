"""A ready-to-run revoke for the tokens a run created but whose secrets it lost.

A token whose create answer never arrived (or arrived without its secret) exists on Docker Hub
and works, but nobody has its secret: it must be deleted and created again. After such a run,
:func:`write_revoke` looks each lost token up on Hub (its template's ``exists`` list, matched
like the effect look-up, keeping only tokens created since the run started) and writes two
files beside the other outputs, both mode 0600:

- ``NAME-revoke.jsonl``: one record per token found, for the template that deletes it;
- ``NAME-revoke.yaml``: a destination config with the same connection, that template and that
  input, run with ``sink run NAME-revoke.yaml --yes``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import yaml

from sink.destination import Destination
from sink.errors import ConfigError
from sink.model import Record
from sink.read.hub import HubReader, matches

CLOCK_SKEW = 300.0
"""Seconds a token's ``created_at`` may precede the run's start and still count as the run's."""


@dataclass(frozen=True)
class RevokePlan:
    """The revoke files written after a run, and what the look-up found."""

    config: Path
    records: Path
    tokens: int
    """Tokens found on Hub and listed for deletion."""
    not_found: tuple[str, ...]
    """Record keys whose token could not be found on Hub (check by hand)."""
    command: str


async def write_revoke(
    destination: Destination, reader: HubReader, lost: Sequence[Record], *, since: float
) -> RevokePlan | None:
    """Look the lost tokens up and write the revoke files; None when the template has no
    ``revoke`` (nothing it creates can be revoked this way) or nothing was lost."""
    template = destination.template
    if template is None or template.revoke is None or template.exists is None or not lost:
        return None
    spec = template.revoke
    id_field = template.exists.id_field
    renderer = destination.renderer
    rows: list[dict[str, Any]] = []
    not_found: list[str] = []
    listed: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    for record in lost:
        found = renderer.lookup(record)
        if found is None or id_field is None:
            not_found.append(record.key)
            continue
        lookup, request = found
        match = renderer.lookup_match(lookup, record)
        try:
            items = listed.get(request.url)
            if items is None:
                items = listed[request.url] = [
                    item
                    async for item in reader.items(
                        request.url, list_key=lookup.list, page_size=100, strict=True
                    )
                ]
        except Exception:  # noqa: BLE001 - a failed read leaves the token for a manual check
            not_found.append(record.key)
            continue
        ids = [
            str(item[id_field])
            for item in items
            if item.get(id_field) is not None
            and matches(item, match)
            and _created_since(item.get("created_at"), since)
        ]
        if not ids:
            not_found.append(record.key)
        for token_id in ids:
            if token_id not in seen:
                seen.add(token_id)
                rows.append({spec.field: token_id, **match, "lost_by_record": record.key})
    folder = _folder(destination)
    records_path = folder / f"{destination.name}-revoke.jsonl"
    config_path = folder / f"{destination.name}-revoke.yaml"
    _write_private(records_path, b"".join(orjson.dumps(row) + b"\n" for row in rows))
    _write_private(
        config_path, _config_text(destination, spec.template, spec.field, records_path.name)
    )
    command = f"sink run {config_path} --yes"
    if destination.config.connection.name is not None and (
        destination.base_url != _stored_base_url(destination)
    ):
        command += f" --base-url {destination.base_url}"
    return RevokePlan(config_path, records_path, len(rows), tuple(not_found), command)


def _created_since(value: Any, since: float) -> bool:
    """Whether a token created at ``value`` (ISO 8601) may be this run's; unknown: yes."""
    if not isinstance(value, str):
        return True
    try:
        created = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return True
    if created.tzinfo is None:
        return True
    return created.timestamp() >= since - CLOCK_SKEW


def _folder(destination: Destination) -> Path:
    from sink.run import output_paths

    folder = output_paths(destination).rejects.parent
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot make the folder {folder}: {exc.strerror or exc}") from exc
    return folder


def _stored_base_url(destination: Destination) -> str:
    from sink.destination import base_url_of

    try:
        return base_url_of(destination.config.connection)
    except Exception:  # noqa: BLE001 - only decides whether the command needs --base-url
        return ""


def _config_text(
    destination: Destination, template_id: str, field: str, records_name: str
) -> bytes:
    from sink.request.templates import load_registry

    config = destination.config
    connection = config.connection.model_dump(exclude_defaults=True)
    if config.connection.secret_file is not None:
        secret = destination.path(config.connection.secret_file)
        connection["secret_file"] = str(secret)
    if config.connection.name is None:
        connection["base_url"] = destination.base_url
    delete = load_registry().get(template_id)
    settings = {
        name: value for name, value in config.settings.items() if name in delete.settings_fields
    }
    stem = Path(records_name).stem
    document: dict[str, Any] = {
        "connection": connection,
        "template": template_id,
        "settings": settings,
        "input": records_name,
        "key_field": field,
        "responses": {"file": f"{stem}-responses.jsonl"},
        "rejects": f"{stem}-rejects.jsonl",
        "audit": f"{stem}-audit.jsonl",
        "ledger": f"{stem}.ledger.sqlite",
    }
    head = (
        f"# Written by `sink run` for the tokens {destination.name} created whose secrets were\n"
        "# lost: they work, but nobody has their secret. Check the records, then run:\n"
        f"#   sink run {Path(records_name).with_suffix('.yaml').name} --yes\n"
    )
    return (head + yaml.safe_dump(document, sort_keys=False)).encode()


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (replaced whole), readable by its owner only."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write the revoke file {path}: {exc.strerror or exc}") from exc
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
