"""The diff, pure: desired rows against a given current state."""

from __future__ import annotations

from sink.plan.diff import CREATE, DELETE, ENSURE, UPDATE, WAITING, Action, diff, observed, wanted
from sink.plan.refresh import Current
from sink.plan.state import load_state
from tests.plan.conftest import StateFile


def hub() -> Current:
    return Current(
        members={
            "alice": {"username": "alice", "email": "alice@example.com", "role": "owner"},
            "bob": {"username": "bob", "email": "bob@example.com", "role": "member"},
            "dave": {"username": "dave", "email": None, "role": "member"},
        },
        invites={
            "frank@example.com": {"id": "i1", "invitee": "frank@example.com", "role": "member"}
        },
        teams={"owners": {"id": 1, "description": ""}, "devs": {"id": 2, "description": "x"}},
        team_members={"devs": ["bob", "dave"], "owners": ["alice"]},
        repositories={"api": {"description": "API", "private": True, "immutable_tags": []}},
    )


def ops(actions: list[Action]) -> list[tuple[str, str, str]]:
    return [(a.op, a.kind, a.key) for a in actions]


def test_role_change_is_one_update_in_place(state_file: StateFile) -> None:
    state = load_state(
        state_file(
            members=[{"username": "alice", "role": "owner"}, {"username": "BOB", "role": "editor"}]
        )
    )
    found = diff(state, hub())
    assert ops(found.actions) == [(UPDATE, "members", "acme/bob")]
    action = found.actions[0]
    assert [s.template for s in action.steps] == ["update-member-role"]
    assert action.changes == [("role", "member", "editor")]
    assert found.unchanged == {"members": 1}


def test_invites_for_newcomers_never_for_pending_or_by_email_members(state_file: StateFile) -> None:
    rows = [
        {"email": "bob@example.com", "role": "member"},  # a member, matched by e-mail
        {"email": "frank@example.com"},  # invite pending: not re-sent
        {"email": "grace@example.com"},
    ]
    found = diff(load_state(state_file(members=rows)), hub())
    assert ops(found.actions) == [(CREATE, "invites", "acme/grace@example.com")]
    assert found.unchanged == {"members": 2}


def test_prune_removes_members_and_cancels_invites_only_with_prune(state_file: StateFile) -> None:
    rows = [{"username": "alice", "role": "owner"}]
    assert diff(load_state(state_file(members=rows)), hub()).actions == []
    found = diff(load_state(state_file(members={"rows": rows, "prune": True})), hub())
    assert ops(found.actions) == [
        (DELETE, "invites", "acme/frank@example.com"),
        (DELETE, "members", "acme/bob"),
        (DELETE, "members", "acme/dave"),
    ]
    assert found.actions[0].steps[0].record == {"id": "i1"}


def test_teams_before_their_members_and_team_members_of_invitees_wait(
    state_file: StateFile,
) -> None:
    state = load_state(
        state_file(
            members=[{"username": "bob"}, {"username": "carol"}],
            teams=[{"name": "devs", "description": "x"}, {"name": "web"}],
            team_members=[
                {"team": "web", "username": "bob"},
                {"team": "web", "username": "carol"},
                {"team": "web", "username": "zed"},
            ],
        )
    )
    found = diff(state, hub())
    assert ops(found.actions) == [
        (CREATE, "teams", "web"),
        (CREATE, "invites", "acme/carol"),
        (CREATE, "team_members", "web/bob"),
        (CREATE, "team_members", "web/zed"),
        (WAITING, "team_members", "web/carol"),  # no call: last
    ]
    assert found.actions[4].steps == [] and "accept the invite" in found.actions[4].note
    zed = found.actions[3]
    assert zed.refused is not None and "not a member of acme" in zed.refused


def test_team_member_prune_spares_people_leaving_the_org(state_file: StateFile) -> None:
    state = load_state(
        state_file(
            members={
                "rows": [{"username": "alice", "role": "owner"}, {"username": "bob"}],
                "prune": True,
            },
            team_members={"rows": [], "prune": True},
            teams=[{"name": "devs"}],
        )
    )
    found = diff(state, hub())
    removed = [a.key for a in found.actions if a.kind == "team_members"]
    assert removed == ["devs/bob"]  # dave leaves acme, and its teams with it


def test_repositories_create_rules_and_refuse_what_hub_cannot_change(state_file: StateFile) -> None:
    rows = [
        {"name": "api", "description": "New words", "immutable_tags": ["v.*"]},
        {"name": "new", "private": True, "immutable_tags": "v.*"},
    ]
    found = diff(load_state(state_file(repositories={"rows": rows, "prune": True})), hub())
    kinds = [
        (a.op, a.key, [s.template for s in a.steps], a.refused is not None) for a in found.actions
    ]
    assert kinds == [
        (CREATE, "acme/new", ["create-repository", "update-immutable-tags"], False),
        (UPDATE, "acme/api", ["update-immutable-tags"], False),
        (UPDATE, "acme/api", [], True),
    ]


def test_grants_are_ensured_and_teams_read_for_them(state_file: StateFile) -> None:
    state = load_state(
        state_file(repository_teams=[{"repository": "api", "team": "devs", "permission": "read"}])
    )
    found = diff(state, hub())
    assert ops(found.actions) == [(ENSURE, "repository_teams", "acme/api devs")]
    assert any("no read" in note for note in found.notes)
    assert wanted(state).teams and not wanted(state).members


def test_observed_tells_planned_from_applied_from_drifted(state_file: StateFile) -> None:
    state = load_state(state_file(members=[{"username": "bob", "role": "editor"}]))
    current = hub()
    action = diff(state, current).actions[0]
    assert observed(action, current, state) == action.before
    assert current.members is not None
    current.members["bob"]["role"] = "editor"
    assert observed(action, current, state) == action.after
    current.members["bob"]["role"] = "owner"
    assert observed(action, current, state) not in (action.before, action.after)


def test_a_token_label_held_twice_is_refused_not_guessed(state_file: StateFile) -> None:
    current = hub()
    current.access_tokens = {"ci": [{"id": "a", "active": True}, {"id": "b", "active": True}]}
    found = diff(load_state(state_file(access_tokens=[{"label": "ci", "active": False}])), current)
    assert len(found.actions) == 1 and found.actions[0].steps == []
    assert "2 tokens have the label" in (found.actions[0].refused or "")
