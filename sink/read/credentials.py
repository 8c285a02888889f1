"""Who sends the requests: an identifier and a secret, read from where the config says.

The secret comes from an environment variable, a file, standard input, or a stored connection;
it is never part of the config itself, and it never appears in a repr, a message or an output.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TextIO

from sink.config import ConnectionConfig, resolve_path
from sink.errors import ConfigError, NeedsOrgToken
from sink.origin import check_base_url

Kind = Literal["pat", "oat", "password"]
KIND_NAMES = {
    "pat": "a personal access token",
    "oat": "an organization access token",
    "password": "a password",
}


@dataclass(frozen=True)
class Credentials:
    """An identifier (username or organization name) and its secret, bound to the one base URL
    it may be sent to (checked: no user info, https except to this machine)."""

    base_url: str
    identifier: str
    secret: str = field(repr=False)
    kind: Kind

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", check_base_url(self.base_url))

    def __repr__(self) -> str:
        return f"Credentials({self.identifier!r}, {self.kind}, secret=***)"


def kind_of(secret: str) -> Kind:
    """What a secret is, from its prefix (Docker Hub's tokens say what they are)."""
    if secret.startswith("dckr_pat_"):
        return "pat"
    if secret.startswith("dckr_oat_"):
        return "oat"
    return "password"


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
        from sink.read.connections import load_credentials

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


def check_accepted(credentials: Credentials, accepted: list[str], what: str) -> None:
    """Stop before sending when the template cannot take this kind of credential."""
    if credentials.kind in accepted:
        return
    wanted = " or ".join(KIND_NAMES[kind] for kind in accepted)
    message = f"{what} needs {wanted}; the connection has {KIND_NAMES[credentials.kind]}"
    if "oat" in accepted and credentials.kind == "pat":
        message += (
            ". Use an organization access token: identifier = the organization name, "
            "secret = dckr_oat_..."
        )
    raise NeedsOrgToken(message) if credentials.kind == "pat" else ConfigError(message)
