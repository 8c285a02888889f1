"""The generated large state (``generate:`` in a seed, ``large_seed()``, ``--seed large``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sink.errors import ConfigError
from sink.hubsim import Simulator, start_process
from sink.hubsim.generate import member_name, outsider_name, repository_name, team_name
from sink.hubsim.seed import large_seed, load_state
from sink.hubsim.state import State


def generated(state: State) -> dict[str, Any]:
    """The generated part of a state (the default seed's own parts carry random uuids)."""
    dump = state.to_seed()
    acme = next(o for o in dump["orgs"] if o["name"] == "acme")
    return {
        "users": [u for u in dump["users"] if u["username"].startswith(("user", "guest"))],
        "members": acme["members"],
        "teams": [t for t in acme["teams"] if t["name"].startswith("team-")],
        "invites": acme["invites"],
        "repositories": [r for r in dump["repositories"] if r["name"].startswith("repo-")],
        "oats": [t for t in acme["access_tokens"] if t["label"].startswith("generated")],
        "pats": [u["tokens"] for u in dump["users"] if u["username"] == "alice"],
    }


def test_the_large_seed_has_thousands_of_members_hundreds_of_teams_thousands_of_repos() -> None:
    state = load_state("large")
    acme = state.org("acme")
    assert acme is not None
    assert len(acme.roles) == 5000 + 4  # alice, bob, carol, erin from the default seed
    assert len([t for t in acme.teams if t.startswith("team-")]) == 300
    assert len(state.repos["acme"]) == 3000 + 3
    assert len(acme.invites) == 100 + 1
    assert len([u for u in state.users if u.startswith("guest")]) == 100
    assert len([p for p in state.pats.values() if p.username == "alice"]) == 20 + 2
    assert len(acme.tokens) == 20 + 2
    teams = [t for name, t in acme.teams.items() if name.startswith("team-")]
    assert all(t.members for t in teams)  # every team has members
    assert len(teams[0].members) == 250  # one team spans three pages of team members
    assert max(len(t.members) for t in teams[1:]) > 20
    assert all(set(t.members) <= set(acme.roles) for t in teams)  # teams hold members only
    roles = list(acme.roles.values())
    assert roles.count("owner") == 1 + 2 and "editor" in roles
    repos = list(state.repos["acme"].values())
    assert {r.is_private for r in repos} == {True, False}
    assert any(r.immutable_tags and r.immutable_rules == ["v.*"] for r in repos)
    assert sum(len(r.team_permissions) for r in repos) > 1000
    invitees = [i.invitee for i in acme.invites.values()]
    assert outsider_name(0) in invitees and "invitee00001@example.org" in invitees
    # The default seed's credentials still work on it (and its own data is still there).
    assert state.user("alice") is not None and state.repo("acme", "api") is not None


def test_the_same_numbers_give_the_same_state_and_another_seed_another() -> None:
    first = generated(load_state(large_seed(members=300, teams=40, repositories=200)))
    again = generated(load_state(large_seed(members=300, teams=40, repositories=200)))
    assert first == again
    other = generated(load_state(large_seed(members=300, teams=40, repositories=200, seed=7)))
    assert other["teams"] != first["teams"]


def test_names_follow_their_patterns_and_secrets_look_real() -> None:
    state = load_state(large_seed(members=12, teams=3, repositories=4, invites=0, outsiders=1))
    acme = state.org("acme")
    assert acme is not None
    assert member_name(11) == "user00011" and "user00011" in acme.roles
    assert team_name(2) == "team-0002" and "team-0002" in acme.teams
    assert repository_name(3) == "repo-00003" and state.repo("acme", "repo-00003") is not None
    user = state.user("user00003")
    assert user is not None and user.email == "user00003@example.com" and len(user.id) == 32
    assert state.user_by_email("user00003@example.com") is user
    assert "guest00000" not in acme.roles
    pats = [p for p in state.pats.values() if p.label.startswith("generated")]
    assert all(p.token.startswith("dckr_pat_") and len(p.token) == 36 for p in pats)
    assert any(not p.is_active for p in pats)
    oats = [t for t in acme.tokens.values() if t.label.startswith("generated")]
    assert all(t.token.startswith("dckr_oat_") and len(t.token) == 41 for t in oats)


def test_a_generate_section_can_make_its_own_org() -> None:
    state = load_state({"generate": {"org": "bigco", "members": 5, "teams": 2, "repositories": 3}})
    bigco = state.org("bigco")
    assert bigco is not None and len(bigco.roles) == 5
    assert state.owners_of(bigco) == ["user00000", "user00001"]
    assert set(bigco.teams["owners"].members) == {"user00000", "user00001"}
    assert len(state.repos["bigco"]) == 3


@pytest.mark.parametrize(
    "seed",
    [
        {"generate": {"members": -1}},
        {"generate": {"members": 5, "colour": "blue"}},
        {"generate": {"org": "nowhere", "members": 0}},
        {
            "users": [{"username": "user00000", "password": "x"}],
            "orgs": [{"name": "acme", "members": {"user00000": "owner"}}],
            "generate": {"members": 3},
        },
        {"generate": {"org": "bigco", "members": 3, "token_user": "ghost"}},
    ],
)
def test_a_bad_generate_section_is_a_config_error(seed: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        load_state(seed)


def test_large_seed_refuses_unknown_sizes() -> None:
    with pytest.raises(ConfigError):
        large_seed(repos=3)


def test_a_dump_of_the_large_state_is_a_seed_with_the_same_state() -> None:
    state = load_state(large_seed(members=200, teams=30, repositories=100))
    again = load_state(state.to_seed())
    assert generated(again) == generated(state)


def test_a_seed_file_named_large_is_still_a_file(tmp_path: Path) -> None:
    path = tmp_path / "large"
    path.write_text("users: []\n", encoding="utf-8")
    assert load_state(path).users == {}  # a Path is always a file; only the text "large" is not


def test_simulator_and_child_process_serve_the_large_seed() -> None:
    with Simulator(seed="large") as hub:
        acme = next(o for o in hub.state()["orgs"] if o["name"] == "acme")
        assert len(acme["members"]) == 5004
    with start_process(seed=large_seed(members=150, teams=5, repositories=7)) as child:
        acme = next(o for o in child.state()["orgs"] if o["name"] == "acme")
        assert len(acme["members"]) == 154 and len(acme["teams"]) == 2 + 5
