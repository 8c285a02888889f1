"""The desired-state file: validated like a destination, rows from files or inline."""

from __future__ import annotations

from pathlib import Path

import pytest

from sink.errors import ConfigError
from sink.plan.state import load_state
from tests.plan.conftest import StateFile


def test_unknown_keys_are_errors(state_file: StateFile) -> None:
    path = state_file(teams={"rows": [{"name": "a"}], "prun": True})
    with pytest.raises(ConfigError, match=r"teams.prun: unknown key"):
        load_state(path)


def test_an_unknown_column_and_a_duplicate_key_name_their_rows(state_file: StateFile) -> None:
    path = state_file(members=[{"username": "bob", "rol": "editor"}])
    with pytest.raises(ConfigError, match=r"row 1: rol: unknown key"):
        load_state(path)
    path = state_file(teams=[{"name": "a"}, {"name": "a"}])
    with pytest.raises(ConfigError, match=r"row 2: a is given twice"):
        load_state(path)


def test_rows_come_from_a_csv_file_with_empty_cells_not_given(
    state_file: StateFile, tmp_path: Path
) -> None:
    (tmp_path / "repos.csv").write_text(
        'name,description,private,immutable_tags\napi,,true,"v.*,.*-RELEASE"\nweb,Site,,\n'
    )
    path = state_file(repositories={"input": "repos.csv", "prune": True})
    state = load_state(path)
    rows = state.rows("repositories")
    assert rows is not None and state.prune("repositories")
    assert rows["api"].description is None and rows["api"].private is True
    assert rows["api"].immutable_tags == ["v.*", ".*-RELEASE"]
    assert rows["web"].description == "Site" and rows["web"].immutable_tags is None
    assert state.rows("members") is None  # not named: not managed


def test_the_inputs_hash_follows_the_rows(state_file: StateFile, tmp_path: Path) -> None:
    (tmp_path / "teams.csv").write_text("name\na\n")
    first = load_state(state_file(teams={"input": "teams.csv"})).inputs_hash
    assert load_state(state_file(teams={"input": "teams.csv"})).inputs_hash == first
    (tmp_path / "teams.csv").write_text("name\nb\n")
    assert load_state(state_file(teams={"input": "teams.csv"})).inputs_hash != first


def test_members_need_a_username_or_email_and_roles_are_lowercase(state_file: StateFile) -> None:
    with pytest.raises(ConfigError, match=r"give username or email"):
        load_state(state_file(members=[{"role": "member"}]))
    rows = load_state(state_file(members=[{"email": "G@example.com", "role": "Editor"}])).rows(
        "members"
    )
    assert rows is not None
    assert rows["g@example.com"].role == "editor"
