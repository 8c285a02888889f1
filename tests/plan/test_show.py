"""Showing a plan: one Terraform-style line per change, the summary line, and data."""

from __future__ import annotations

from sink.hubsim import Simulator
from sink.plan.make import plan_state
from sink.plan.show import data, text
from tests.plan.conftest import StateFile


def test_lines_signs_and_the_summary(fresh_hub: Simulator, state_file: StateFile) -> None:
    path = state_file(
        members={
            "rows": [
                {"username": "alice", "role": "owner"},
                {"username": "bob", "role": "editor"},
                {"username": "carol"},
                {"email": "frank@example.com"},
                {"email": "grace@example.com"},
            ],
            "prune": True,
        },
    )
    shown = text(plan_state(path, base_url=fresh_hub.url))
    lines = shown.splitlines()
    assert "  ~ role acme/bob member -> editor" in lines
    assert "  + invite acme/grace@example.com (role: member)" in lines
    assert "  - member acme/erin" in lines
    assert lines[-1] == "Plan: 1 to add, 1 to change, 1 to destroy; 3 unchanged; 3 calls"


def test_no_changes_and_the_json_shape(fresh_hub: Simulator, state_file: StateFile) -> None:
    plan = plan_state(state_file(teams=[{"name": "developers"}]), base_url=fresh_hub.url)
    assert "No changes. Docker Hub matches state.yaml." in text(plan)
    shown = data(plan)
    assert shown["actions"] == [] and shown["counts"]["add"] == 0
    assert shown["unchanged"] == {"teams": 1} and shown["reads"] == plan.reads
    assert len(shown["inputs_hash"]) == 64 and len(shown["refreshed_hash"]) == 64
