"""Who sends the requests: an identifier and a secret, read from where the config says.

The secret comes from an environment variable, a file, standard input, or a stored connection;
it is never part of the config itself, and it never appears in a repr, a message or an output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
