"""``sink validate``: every problem of a destination that would stop a run, in plain words."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from sink.destination import Destination
from sink.source.columns import check as check_columns
from sink.source.columns import input_columns


def check(destination: Destination) -> tuple[list[str], list[str]]:
    """Problems (a run would stop) and warnings, beyond the config's own shape (checked on load)."""
    found: list[str] = []
    warnings: list[str] = []
    config = destination.config
    connection = config.connection
    if connection.secret_env and not os.environ.get(connection.secret_env, "").strip():
        found.append(
            f"connection.secret_env: the environment variable {connection.secret_env} is not set"
        )
    if connection.secret_file:
        path = destination.path(connection.secret_file)
        if path is None or not path.is_file():
            found.append(f"connection.secret_file: no such file: {path}")
    if config.input is not None:
        path = destination.path(config.input)
        if path is not None and str(path) != "-" and not path.is_file():
            found.append(f"input: no such file: {path}")
        elif path is not None:
            _check_columns(destination, path, found, warnings)
    if destination.destructive and not config.allow_destructive:
        warnings.append(
            f"{destination.template_id} is destructive: a run needs --yes or "
            "allow_destructive: true"
        )
    if config.responses is not None and config.responses.webhook is not None:
        try:
            url = httpx.URL(config.responses.webhook)
        except httpx.InvalidURL as exc:
            found.append(f"responses.webhook: {exc}")
        else:
            if url.scheme not in ("http", "https") or not url.host:
                found.append("responses.webhook: must be an http(s) URL")
    return found, warnings


def _check_columns(
    destination: Destination, path: Path, found: list[str], warnings: list[str]
) -> None:
    """The names the destination reads against the input's columns (:mod:`sink.source.columns`)."""
    config = destination.config
    if str(path) == "-":
        warnings.append(
            "input is stdin: its columns are checked when preview or run reads the first records"
        )
        return
    columns = input_columns(path, config.input_format, max_record_bytes=config.max_record_bytes)
    if columns is None:
        warnings.append(f"input: the columns of {path.name} cannot be read; preview to check it")
        return
    report = check_columns(destination, columns)
    found.extend(report.problems)
    warnings.extend(report.warnings)
