"""Keeping secrets out of everything sink writes or prints.

Two tools, for two kinds of data:

- :func:`redact` walks a parsed JSON body and replaces the values of named fields (``token``,
  at any depth) with ``"***"``. Used on response bodies before they reach the responses stream.
- :class:`Redactor` replaces known secret strings (the connection's secret, every JWT seen)
  and anything shaped like a Docker Hub token or a JWT inside free text. Used on log lines,
  error messages and whole output lines as a last line of defence.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import orjson

from sink.model import REDACTED

__all__ = ["REDACTED", "Redactor", "looks_secret", "redact", "redact_headers", "split_secrets"]

# Docker Hub access tokens and compact JWTs (three base64url parts, the first two JSON objects,
# so both start with "eyJ"). Anything of this shape is a credential wherever it turns up.
_SECRET_SHAPES = re.compile(
    r"(?i:dckr_(?:pat|oat)_)[A-Za-z0-9_\-+/=.]+"
    r"|eyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"
)

# Secrets shorter than this are not registered: replacing one or two characters everywhere
# would garble every message and protect nothing (Docker Hub passwords are 9+ characters).
_MIN_SECRET_LENGTH = 3


def redact(body: Any, secret_fields: Collection[str]) -> Any:
    """Return a copy of ``body`` with the value of every field named in ``secret_fields``
    (in objects at any depth, including inside lists) replaced by ``"***"``.

    Values that are not objects or lists are returned as they are. The input is not changed.
    """
    if not secret_fields:
        return body
    if isinstance(body, dict):
        return {
            key: (REDACTED if key in secret_fields else redact(value, secret_fields))
            for key, value in body.items()
        }
    if isinstance(body, list):
        return [redact(item, secret_fields) for item in body]
    return body


def looks_secret(value: Any) -> bool:
    """Whether ``value`` is a string that holds something shaped like a Docker Hub token or a
    JWT (a credential wherever it turns up)."""
    return isinstance(value, str) and _SECRET_SHAPES.search(value) is not None


def split_secrets(body: Any, secret_fields: Collection[str]) -> tuple[Any, dict[str, Any]]:
    """``body`` with its secrets replaced by ``"***"``, and the secrets keyed by dotted path
    (``token``, ``items.0.token``).

    A secret is the value of a field named in ``secret_fields`` (at any depth) and, since an
    answer may carry a token where it is not expected, any string shaped like a token or a
    JWT. For the answer of a request that creates a secret: what is found goes to the vault,
    the redacted body to the responses stream. The input is not changed.
    """
    found: dict[str, Any] = {}

    def walk(value: Any, prefix: str) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                path = f"{prefix}{key}"
                if key in secret_fields and item not in (None, ""):
                    found[path] = item
                    out[key] = REDACTED
                else:
                    out[key] = walk(item, path + ".")
            return out
        if isinstance(value, list):
            return [walk(item, f"{prefix}{at}.") for at, item in enumerate(value)]
        if looks_secret(value):
            found[prefix.removesuffix(".") or "value"] = value
            return REDACTED
        return value

    return walk(body, ""), found


def redact_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Headers with credentials hidden, for printing a request (``Authorization: Bearer ***``)."""
    shown: list[tuple[str, str]] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in ("authorization", "proxy-authorization"):
            scheme = value.split(" ", 1)[0] if " " in value else ""
            shown.append((name, f"{scheme} {REDACTED}".strip()))
        elif lowered in ("cookie", "set-cookie", "x-api-key"):
            shown.append((name, REDACTED))
        else:
            shown.append((name, value))
    return shown


class Redactor:
    """Replaces known secrets, and anything shaped like a Docker Hub token or a JWT, in text.

    Register every secret as soon as it is known (:meth:`add`): the connection's secret when
    the config is loaded, each JWT when the token exchange returns it.
    """

    __slots__ = ("_pattern", "_secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Remember ``secret`` so that it is replaced wherever it appears."""
        if len(secret) >= _MIN_SECRET_LENGTH and secret not in self._secrets:
            self._secrets.add(secret)
            # Its JSON-escaped form too, so that :meth:`json_line` finds it in serialised text.
            self._secrets.add(orjson.dumps(secret).decode()[1:-1])
            # Longest first, so that a secret containing another is replaced whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def __len__(self) -> int:
        return len(self._secrets)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"

    def __call__(self, text: str) -> str:
        """``text`` with every known secret and secret-shaped string replaced by ``***``."""
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        return _SECRET_SHAPES.sub(REDACTED, text)

    def json_line(self, value: Any) -> bytes:
        """``value`` as one JSON line with every secret replaced: the same result as
        :meth:`scrub` then serialising, at a fraction of the cost (one pass over the text)."""
        text = orjson.dumps(value, default=str).decode()
        return (self(text) + "\n").encode()

    def scrub(self, value: Any) -> Any:
        """Apply the redactor to every string inside a parsed JSON value (keys included)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {self(str(key)): self.scrub(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(item) for item in value]
        return value
