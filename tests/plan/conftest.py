"""Helpers of the plan tests: a state file for the simulator's acme, and its secret."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.seed import OAT

StateFile = Callable[..., Path]


@pytest.fixture
def state_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StateFile:
    """Write ``state.yaml`` in ``tmp_path`` with the given sections (inline rows)."""
    monkeypatch.setenv("PLAN_TEST_OAT", OAT)

    def write(name: str = "state", **sections: Any) -> Path:
        doc: dict[str, Any] = {
            "connection": {"identifier": "acme", "secret_env": "PLAN_TEST_OAT"},
            "org": "acme",
        }
        for kind, value in sections.items():
            if kind in ("policy", "allow_destructive", "concurrency", "out") or isinstance(
                value, dict
            ):
                doc[kind] = value
            else:
                doc[kind] = {"rows": value}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    return write
