"""Where a connection's secret comes from: the environment, a file, stdin or a stored connection.

Above both :mod:`sink.read.credentials` (the value) and :mod:`sink.read.connections` (the
store), so that neither imports the other back.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

from sink.config import ConnectionConfig, resolve_path
from sink.errors import ConfigError
from sink.read.credentials import Credentials, kind_of


def resolve(
    connection: ConnectionConfig,
    folder: Path,
    *,
    base_url: str | None = None,
    stdin: TextIO | None = None,
) -> Credentials:
    """Read the connection's secret from its source; a :class:`ConfigError` says what is missing.

    ``base_url`` is where the requests go (a destination's ``base_url``, which
    :func:`sink.destination.base_url_of` decided); without it, the connection's own."""
    if connection.name is not None:
        from sink.read.connections import load_credentials  # the store: only when named

        return load_credentials(connection.name, base_url=base_url)
    identifier = (connection.identifier or "").strip()
    if connection.secret_env:
        secret = os.environ.get(connection.secret_env, "")
        if not secret.strip():
            raise ConfigError(
                f"the environment variable {connection.secret_env} (the connection's secret) "
                "is not set"
            )
    elif connection.secret_file:
        path = resolve_path(folder, connection.secret_file)
        assert path is not None
        try:
            secret = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the secret file {path}: {exc.strerror}") from exc
    elif connection.secret_stdin:
        secret = (stdin or sys.stdin).readline()
    else:
        raise ConfigError(
            "the connection has no secret: give secret_env, secret_file, secret_stdin or name"
        )
    secret = secret.strip()
    if not secret:
        raise ConfigError("the connection's secret is empty")
    kind = connection.kind or kind_of(secret)
    return Credentials(base_url or connection.base_url, identifier, secret, kind)
