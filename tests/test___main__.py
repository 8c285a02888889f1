"""``python -m sink`` (sink/__main__.py) is the ``sink`` command."""

from __future__ import annotations

import subprocess
import sys

from sink import __version__


def test_python_dash_m_sink_is_the_command_and_exits_with_its_code() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "sink", "--version"], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0 and __version__ in shown.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "sink", "run", "/nonexistent/destination.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "no such config file" in refused.stderr and "Traceback" not in refused.stderr
