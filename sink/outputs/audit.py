"""The audit log: every call, every read, and every refusal, as a JSON line, bodies redacted.

It says who (the identifier, never the secret), when, which template, method and URL, which
records, and what came of it. Request bodies are logged with secret fields (the template's,
and :data:`HIDDEN_FIELDS`) replaced by ``***``; response bodies are not logged. Every line
passes the run's :class:`~sink.outputs.redact.Redactor`. Lines are written unbuffered, so a killed
run loses none it wrote. The file is private: mode 0600, in folders created 0700.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import orjson

from sink.model import Outcome, Request
from sink.outputs.files import open_private
from sink.outputs.redact import Redactor, redact

HIDDEN_FIELDS = frozenset({"password", "secret", "token", "access_token", "refresh_token"})
"""Body fields whose values never reach the audit log, whatever the template says."""


class AuditLog:
    """An append-only JSON Lines file (0600; a wider mode is narrowed: ``mode_fixed``)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        who: str,
        redactor: Redactor,
        secret_fields: Collection[str] = (),
    ) -> None:
        self.path = Path(path)
        self.who = who
        self.redactor = redactor
        self.secret_fields = frozenset(secret_fields) | HIDDEN_FIELDS
        fd, self.mode_fixed = open_private(
            self.path, os.O_WRONLY | os.O_APPEND, what="the audit log"
        )
        self._file = os.fdopen(fd, "ab", buffering=0)

    def _write(self, line: dict[str, Any]) -> None:
        self._file.write(self.redactor.json_line(line))

    def _head(self) -> dict[str, Any]:
        return {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "who": self.who}

    def _base(self, request: Request) -> dict[str, Any]:
        body: Any = None
        if request.body is not None:
            try:
                body = redact(orjson.loads(request.body), self.secret_fields)
            except orjson.JSONDecodeError:
                body = "<not JSON>"
        return {
            **self._head(),
            "template": request.template,
            "method": request.method,
            "url": request.url,
            "keys": list(request.keys),
            "body": body,
        }

    def call(self, request: Request, outcome: Outcome) -> None:
        """A request that was sent, and its outcome (response bodies are not logged)."""
        line = self._base(request)
        line.update(
            status=outcome.http_status,
            outcome=outcome.status.value,
            attempts=outcome.attempts,
            error=outcome.error,
        )
        self._write(line)

    def read(self, template: str, method: str, url: str, status: int) -> None:
        """A read the run made of Docker Hub (an effect look-up, a team's id, a membership)."""
        self._write(
            {
                **self._head(),
                "template": template,
                "method": method,
                "url": url,
                "keys": [],
                "body": None,
                "status": status,
                "outcome": "read",
            }
        )

    def refusal(self, request: Request, reason: str) -> None:
        """A request that was never sent, and why."""
        line = self._base(request)
        line.update(status=None, outcome="refused", error=reason)
        self._write(line)

    def close(self) -> None:
        """Close the file (every line is already written)."""
        self._file.close()
