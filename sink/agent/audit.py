"""The agent gateway's lines in the audit log: every tool call, allowed or refused.

The same file, format and redaction as a run's audit log (:class:`sink.outputs.audit.AuditLog`):
a JSON line per call with the agent's name, the tool, its arguments (secret fields and the
confirmation token replaced by ``***``), the decision, the rule that refused it and the outcome.
The writes the send core makes for a confirmed call add their own lines (method, URL, redacted
body, Hub's status), under the same ledger ``key``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sink.outputs.audit import HIDDEN_FIELDS, AuditLog
from sink.outputs.redact import Redactor, redact

_HIDDEN_ARGUMENTS = HIDDEN_FIELDS | {"confirm"}


class AgentAudit(AuditLog):
    """The audit log of one agent's tool calls."""

    def __init__(self, path: str | os.PathLike[str], *, agent: str, redactor: Redactor) -> None:
        super().__init__(path, who=f"agent:{agent}", redactor=redactor)
        self.agent = agent

    def tool_call(
        self,
        tool: str,
        kind: str,
        arguments: Mapping[str, Any],
        decision: str,
        *,
        rule: str | None = None,
        outcome: str | None = None,
        error: str | None = None,
        key: str | None = None,
    ) -> None:
        """One tool call: ``decision`` is ``allowed``, ``refused``, ``confirm`` (a write's
        first step) or ``sent``; ``outcome`` what came of it."""
        line: dict[str, Any] = {
            **self._head(),
            "agent": self.agent,
            "tool": tool,
            "kind": kind,
            "arguments": redact(dict(arguments), _HIDDEN_ARGUMENTS),
            "decision": decision,
            "outcome": outcome,
        }
        if rule is not None:
            line["rule"] = rule
        if error is not None:
            line["error"] = error
        if key is not None:
            line["keys"] = [key]
        self._write(line)
