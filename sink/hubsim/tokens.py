"""HS256 JSON Web Tokens, as Docker Hub's token exchange hands out (standard library only)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

import orjson

_HEADER = base64.urlsafe_b64encode(orjson.dumps({"alg": "HS256", "typ": "JWT"})).rstrip(b"=")


class InvalidToken(Exception):
    """The bearer is not a well-formed JWT signed with this simulator's key."""


def _b64encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _b64decode(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def new_signing_key() -> bytes:
    """A fresh random HS256 key (one per simulator instance)."""
    return secrets.token_bytes(32)


def encode(claims: dict[str, Any], key: bytes) -> str:
    """Sign ``claims`` as a compact HS256 JWT."""
    signing_input = _HEADER + b"." + _b64encode(orjson.dumps(claims))
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + _b64encode(signature)).decode("ascii")


def decode(token: str, key: bytes) -> dict[str, Any]:
    """Verify the signature of ``token`` and return its claims (expiry is the caller's check)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("not a JWT")
    header, payload, signature = parts
    expected = hmac.new(key, f"{header}.{payload}".encode("ascii", "replace"), hashlib.sha256)
    try:
        given = _b64decode(signature)
        if not hmac.compare_digest(expected.digest(), given):
            raise InvalidToken("bad signature")
        if orjson.loads(_b64decode(header)).get("alg") != "HS256":
            raise InvalidToken("unexpected algorithm")
        claims = orjson.loads(_b64decode(payload))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise InvalidToken("malformed JWT") from exc
    if not isinstance(claims, dict):
        raise InvalidToken("claims are not an object")
    return claims
