"""Making a plan against the simulator: the refresh, the diff, the run's render and guard."""

from __future__ import annotations

from sink.hubsim import Simulator
from sink.plan.make import plan_state
from tests.plan.conftest import StateFile

SEED_MEMBERS = [
    {"username": "alice", "role": "owner"},
    {"username": "bob"},
    {"username": "carol"},
    {"username": "erin", "role": "editor"},
]


def test_every_kind_unchanged_plans_nothing(fresh_hub: Simulator, state_file: StateFile) -> None:
    path = state_file(
        members={"rows": [*SEED_MEMBERS, {"email": "frank@example.com"}], "prune": True},
        teams={"rows": [{"name": "owners"}, {"name": "developers"}], "prune": True},
        team_members=[{"team": "developers", "username": "bob"}],
        repositories=[
            {"name": "api", "private": True},
            {"name": "web", "description": "Acme's website"},
        ],
    )
    plan = plan_state(path, base_url=fresh_hub.url)
    assert plan.actions == [] and plan.calls == 0
    assert plan.unchanged == {"members": 5, "teams": 2, "team_members": 1, "repositories": 2}
    assert plan.reads == plan.minimum_reads
    assert not [
        r
        for r in fresh_hub.requests()
        if r["method"] not in ("GET", "HEAD") and r["path"] != "/v2/auth/token"
    ]


def test_bulk_invites_share_calls_and_waiting_members_cost_none(
    fresh_hub: Simulator, state_file: StateFile
) -> None:
    people = [{"email": f"new{i:03d}@example.com"} for i in range(150)]
    path = state_file(
        members=SEED_MEMBERS + people,
        team_members=[{"team": "developers", "username": "new000@example.com"}],
    )
    plan = plan_state(path, base_url=fresh_hub.url)
    assert plan.counts["add"] == 150 and plan.counts["waiting"] == 1
    assert plan.calls == 2  # 100 invitees a call


def test_policy_and_last_owner_refusals_show_in_the_plan(
    fresh_hub: Simulator, state_file: StateFile
) -> None:
    path = state_file(
        members=[{"username": "alice", "role": "member"}],  # acme's only owner
        teams=[{"name": "platform"}, {"name": "developers", "description": "Ships"}],
        policy={"teams": ["developers"]},
    )
    plan = plan_state(path, base_url=fresh_hub.url)
    refused = {a.key: a.refused for a in plan.actions if a.refused}
    assert set(refused) == {"acme/alice", "platform"}
    assert "owner" in (refused["acme/alice"] or "")
    assert "policy" in (refused["platform"] or "") or "platform" in (refused["platform"] or "")
    assert plan.counts == {
        "add": 0,
        "change": 1,
        "destroy": 0,
        "ensure": 0,
        "waiting": 0,
        "refused": 2,
    }
    assert plan.calls == 1  # the developers description only


def test_update_and_delete_with_and_without_prune(
    fresh_hub: Simulator, state_file: StateFile
) -> None:
    rows = [{"name": "owners"}, {"name": "developers", "description": "Ships it"}]
    kept = plan_state(state_file(teams=rows, team_members=[]), base_url=fresh_hub.url)
    assert [(a.op, a.key) for a in kept.actions] == [("update", "developers")]
    pruned = plan_state(
        state_file(
            teams={"rows": rows[:1], "prune": True},
            team_members={"rows": [], "prune": True},
            repositories={"rows": [{"name": "api"}], "prune": True},
        ),
        base_url=fresh_hub.url,
    )
    shown = [(a.op, a.kind, a.key, a.refused is not None) for a in pruned.actions]
    assert ("delete", "teams", "developers", False) in shown
    # The owners team's last member is the last owner: refused. developers goes whole.
    assert ("delete", "team_members", "owners/alice", True) in shown
    assert not [a for a in pruned.actions if a.key == "developers/bob"]
    assert ("delete", "repositories", "acme/web", True) in shown  # no route deletes one
    assert [s.template for a in pruned.actions if a.key == "developers" for s in a.steps] == [
        "delete-team"
    ]
