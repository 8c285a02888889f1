"""Taking a created secret out of Docker Hub's answer, for the vault alone.

A request whose template creates a token names the answer's secret fields
(:attr:`sink.model.Request.secrets`). :func:`take_secrets` splits such an answer into the body
the outputs may see (every secret ``"***"``) and a :class:`~sink.model.VaultEntry` carrying the
values; :func:`hide_secrets` hides them from any other answer to such a request (a refusal
may echo what was sent). Every token-shaped value counts, not only the declared fields (see
:func:`sink.outputs.redact.split_secrets`): a secret in an unexpected place goes to the vault
too, never to the responses stream. Pure functions: the dispatcher calls them, the pipeline
writes the entry to the vault before the record counts as done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sink.model import Request, VaultEntry
from sink.outputs.redact import split_secrets


@dataclass(frozen=True, slots=True)
class Taken:
    """An answer split: ``body`` without its secrets, ``entry`` with them (``None`` when the
    answer holds none: the secret is as good as lost)."""

    body: Any
    entry: VaultEntry | None


def take_secrets(request: Request, body: Any) -> Taken:
    """Split the 2xx answer ``body`` to ``request`` (whose ``secrets`` are not empty)."""
    if body is None:
        return Taken(None, None)
    hidden, secrets = split_secrets(body, request.secrets)
    if not secrets:
        return Taken(hidden, None)
    return Taken(hidden, VaultEntry.from_body(request.keys, request.template, body, secrets))


def hide_secrets(request: Request, body: Any) -> Any:
    """``body`` with every secret of an answer to ``request`` replaced by ``"***"``."""
    if not request.secrets or body is None:
        return body
    return split_secrets(body, request.secrets)[0]
