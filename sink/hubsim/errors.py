"""Hub's error answers: one exception the handlers raise, rendered in the route's body shape."""

from __future__ import annotations

import enum
from typing import Any

import orjson
from starlette.responses import Response

PAT_NOT_ALLOWED = "token issued from personal access token is not allowed"
OAT_NOT_ALLOWED = "token issued from organization access token is not allowed"


class Shape(enum.Enum):
    """The spec's error schemas. Every body carries ``message``, ``errinfo`` and ``detail``;
    ``VALUE`` adds ``fields``/``text`` (spec ``ValueError``) and ``RPC`` adds ``code``/``details``
    (spec ``rpcStatus``)."""

    ERROR = "error"
    VALUE = "ValueError"
    RPC = "rpcStatus"


# gRPC codes for the audit-log routes, whose errors are rpcStatus bodies.
_RPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 429: 8, 500: 13}


class HubError(Exception):
    """An error answer: HTTP ``status``, a message, optional per-field messages."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        fields: dict[str, list[str]] | None = None,
        shape: Shape | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields
        self.shape = shape
        self.headers = headers or {}

    def body(self, default: Shape = Shape.ERROR) -> dict[str, Any]:
        """The JSON body in this error's shape, or ``default`` when the raiser left it open."""
        shape = self.shape or default
        errinfo: dict[str, Any] | None = {"fields": self.fields} if self.fields else None
        body: dict[str, Any] = {"message": self.message, "errinfo": errinfo, "detail": self.message}
        if shape is Shape.VALUE:
            body["fields"] = self.fields or {}
            body["text"] = self.message
        elif shape is Shape.RPC:
            body["code"] = _RPC_CODES.get(self.status, 2)
            body["details"] = []
        return body

    def response(self, default: Shape = Shape.ERROR) -> Response:
        """This error as a JSON response."""
        return Response(
            orjson.dumps(self.body(default)),
            status_code=self.status,
            media_type="application/json",
            headers=self.headers,
        )


def bad_request(message: str, fields: dict[str, list[str]] | None = None) -> HubError:
    """400 with per-field messages."""
    return HubError(400, message, fields=fields)


def unauthorized(message: str = "unauthorized") -> HubError:
    """401: missing, bad or expired bearer, or wrong credentials."""
    return HubError(401, message)


def forbidden(message: str = "permission denied") -> HubError:
    """403: authenticated but not allowed."""
    return HubError(403, message)


def not_found(message: str = "not found") -> HubError:
    """404."""
    return HubError(404, message)


def conflict(message: str) -> HubError:
    """409: the thing already exists."""
    return HubError(409, message)
