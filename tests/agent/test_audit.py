"""The agent's audit lines: name, tool, redacted arguments, decision, rule, outcome."""

from __future__ import annotations

from pathlib import Path

import orjson

from sink.agent.audit import AgentAudit
from sink.outputs.redact import Redactor
from tests.seed import ACME_OAT


def test_a_tool_call_line(tmp_path: Path) -> None:
    path = tmp_path / "out" / "audit.jsonl"
    audit = AgentAudit(path, agent="release-bot", redactor=Redactor([ACME_OAT]))
    audit.tool_call(
        "create_team",
        "write",
        {"team": "team-a", "confirm": "sinkc_abc", "password": "hunter22", "note": ACME_OAT},
        "refused",
        rule="policy.teams",
        error="policy does not allow team 'team-a'",
        key="mcp:1234",
    )
    audit.close()
    (line,) = [orjson.loads(raw) for raw in path.read_bytes().splitlines()]
    assert line["who"] == "agent:release-bot" and line["agent"] == "release-bot"
    assert (line["tool"], line["kind"], line["decision"]) == ("create_team", "write", "refused")
    assert line["rule"] == "policy.teams" and line["keys"] == ["mcp:1234"]
    assert line["arguments"] == {
        "team": "team-a",
        "confirm": "***",
        "password": "***",
        "note": "***",
    }
    assert path.stat().st_mode & 0o777 == 0o600
