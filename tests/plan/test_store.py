"""A saved plan: 0600, read back whole, refused when its inputs changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from sink.errors import ConfigError
from sink.hubsim import Simulator
from sink.plan.make import plan_state
from sink.plan.show import data
from sink.plan.store import load_plan, save_plan
from tests.plan.conftest import StateFile


def test_saved_and_loaded_is_the_same_plan(
    fresh_hub: Simulator, state_file: StateFile, tmp_path: Path
) -> None:
    plan = plan_state(
        state_file(members=[{"username": "bob", "role": "editor"}], teams=[{"name": "platform"}]),
        base_url=fresh_hub.url,
    )
    saved = save_plan(plan, tmp_path / "plan.json")
    assert saved.stat().st_mode & 0o777 == 0o600
    assert data(load_plan(saved)) == data(plan)


def test_not_a_plan_or_changed_inputs_are_refused(
    fresh_hub: Simulator, state_file: StateFile, tmp_path: Path
) -> None:
    (tmp_path / "teams.csv").write_text("name\nplatform\n")
    plan = plan_state(state_file(teams={"input": "teams.csv"}), base_url=fresh_hub.url)
    saved = save_plan(plan, tmp_path / "plan.json")
    (tmp_path / "teams.csv").write_text("name\nplatform\nweb\n")
    with pytest.raises(ConfigError, match="changed since this plan"):
        load_plan(saved)
    (tmp_path / "other.json").write_text('{"format": 7}')
    with pytest.raises(ConfigError, match="not a plan file"):
        load_plan(tmp_path / "other.json")
