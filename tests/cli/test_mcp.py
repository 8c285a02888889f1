"""``sink mcp``: start-up imports, a clear message without the extra, and a real stdio session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from sink.cli.main import ExitCode, main
from sink.hubsim import Simulator
from tests.cli.test_main import imported_by
from tests.seed import ACME_OAT

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_help_imports_neither_mcp_nor_the_gateway() -> None:
    for argv in (("--help",), ("mcp", "--help")):
        out, modules = imported_by(*argv)
        assert "mcp" in out
        assert not {m for m in modules if m.split(".")[0] in ("mcp", "mcp_types", "pydantic")}
        assert not {m for m in modules if m.startswith("sink.agent")}


def test_without_the_extra_the_message_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] in ("mcp", "mcp_types")] + ["mcp"]:
        monkeypatch.setitem(sys.modules, name, None)  # import mcp... → ImportError
    monkeypatch.delitem(sys.modules, "sink.agent.server", raising=False)
    code = main(["mcp", "--agent", "bot", "--agents", str(tmp_path / "none.yaml")])
    assert code == ExitCode.STOPPED
    err = capsys.readouterr().err
    assert "pip install 'sink[mcp]'" in err and "Traceback" not in err


def test_an_unknown_agent_stops_with_a_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["mcp", "--agent", "nobody", "--agents", str(ROOT / "examples" / "agents.yaml")])
    assert code == ExitCode.STOPPED
    assert "no agent 'nobody'" in capsys.readouterr().err


@pytest.mark.anyio
async def test_a_stdio_session_lists_tools_and_reads(tmp_path: Path, hub: Simulator) -> None:
    pytest.importorskip("mcp")
    from mcp import Client, StdioServerParameters, stdio_client

    secret = tmp_path / "oat"
    secret.write_text(ACME_OAT)
    os.chmod(secret, 0o600)
    agents = tmp_path / "agents.yaml"
    agents.write_text(
        "agents:\n"
        "  reader:\n"
        f"    connection: {{base_url: '{hub.url}', identifier: acme, secret_file: oat}}\n"
        "    settings: {org: acme}\n"
        "    policy: {read_only: true, read: {namespaces: [acme]}}\n"
    )
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "sink", "mcp", "--agent", "reader", "--agents", str(agents)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=str(tmp_path),
    )
    with open(tmp_path / "stderr.txt", "w") as errlog:  # pytest's stderr has no file number
        async with Client(stdio_client(server, errlog=errlog)) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            result = await client.call_tool("teams", {})
    assert "sink mcp: agent 'reader'" in (tmp_path / "stderr.txt").read_text()
    assert "teams" in names and "create_repository" not in names
    assert not result.is_error
    assert "developers" in result.content[0].text
    assert ACME_OAT not in result.content[0].text
    assert (tmp_path / "reader.state" / "audit.jsonl").exists()
