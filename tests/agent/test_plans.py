"""The plan and apply tools, through the SDK's own client against the simulator: the plan as
data with the agent's policy over every step, apply in two steps bound to the plan, drift and
destructive plans refused, everything in the agent's audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

pytest.importorskip("mcp")

from sink.agent.plans import apply_digest
from sink.hubsim import Simulator
from tests.agent.conftest import WRITER_POLICY, audit_lines, client_for, make_agent
from tests.agent.test_server import payload, writes
from tests.seed import ACME_OAT

pytestmark = pytest.mark.anyio

PLANNER_POLICY: dict[str, Any] = {**WRITER_POLICY, "templates": ["create-team", "delete-team"]}


def state_file(folder: Path, name: str = "teams", **sections: Any) -> Path:
    """A desired-state file for acme whose own connection has no secret: the agent's signs in."""
    doc: dict[str, Any] = {
        "connection": {"identifier": "acme", "secret_env": "SINK_TEST_NEVER_SET"},
        "org": "acme",
        **sections,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def teams(hub: Simulator) -> dict[str, str]:
    org = next(org for org in hub.state()["orgs"] if org["name"] == "acme")
    return {team["name"]: team.get("description", "") for team in org["teams"]}


def create_team_by_hand(hub: Simulator, name: str, description: str) -> None:
    """Someone changes Hub behind the plan's back (through its API, as a person would)."""
    with httpx.Client(base_url=hub.url) as http:
        jwt = http.post("/v2/auth/token", json={"identifier": "acme", "secret": ACME_OAT}).json()[
            "access_token"
        ]
        made = http.post(
            "/v2/orgs/acme/groups",
            json={"name": name, "description": description},
            headers={"Authorization": f"Bearer {jwt}"},
        )
        assert made.status_code == 201


async def test_plan_is_data_with_the_agents_policy_over_every_step(
    tmp_path: Path, fresh_hub: Simulator
) -> None:
    state_file(
        tmp_path,
        teams={"rows": [{"name": "team-a", "description": "A"}, {"name": "other"}]},
    )
    agent = make_agent(tmp_path, fresh_hub, policy=PLANNER_POLICY, plans=["teams.yaml"])
    async with client_for(agent) as (client, _):
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        result = payload(await client.call_tool("plan", {"state": "teams.yaml"}))
        unknown = payload(await client.call_tool("plan", {"state": "../elsewhere.yaml"}))
    assert tools["plan"].annotations.read_only_hint is True
    assert tools["plan"].input_schema["properties"]["state"]["enum"] == ["teams.yaml"]
    assert tools["apply"].annotations.destructive_hint is True
    assert writes(fresh_hub) == []  # a plan sends nothing
    plan = result["plan"]
    by_key = {action["key"]: action for action in plan["actions"]}
    assert by_key["team-a"]["op"] == "create" and by_key["team-a"]["refused"] is None
    # The state file has no policy: the agent's (teams: team-*) refuses this step, by name.
    assert by_key["other"]["refused"].startswith("agent policy: policy does not allow team")
    assert result["refused_by_agent_policy"] == [
        {
            "action": "team other",
            "rule": "policy.teams",
            "reason": "policy does not allow team 'other' (allowed: team-*)",
        }
    ]
    assert plan["counts"]["refused"] == 1 and result["changes"] == 1
    assert (agent.state / "plans" / f"{result['plan_id']}.json").stat().st_mode & 0o077 == 0
    assert unknown["rule"] == "input schema"
    lines = [line for line in audit_lines(agent) if line.get("tool") == "plan"]
    assert [(line["agent"], line["decision"]) for line in lines] == [
        ("bot", "allowed"),
        ("bot", "refused"),
    ]


async def test_apply_takes_two_steps_sends_once_and_refuses_a_replay(
    tmp_path: Path, fresh_hub: Simulator
) -> None:
    state_file(tmp_path, teams={"rows": [{"name": "team-a", "description": "A"}, {"name": "x"}]})
    agent = make_agent(tmp_path, fresh_hub, policy=PLANNER_POLICY, plans=["teams.yaml"])
    async with client_for(agent) as (client, _):
        plan_id = payload(await client.call_tool("plan", {"state": "teams.yaml"}))["plan_id"]
        first = payload(await client.call_tool("apply", {"plan_id": plan_id}))
        assert writes(fresh_hub) == []  # nothing sent without confirmation
        done = await client.call_tool("apply", {"plan_id": plan_id, "confirm": first["confirm"]})
        replay = await client.call_tool("apply", {"plan_id": plan_id, "confirm": first["confirm"]})
        again = payload(await client.call_tool("plan", {"state": "teams.yaml"}))
    assert first["status"] == "confirmation_required" and first["sent"] is False
    assert len(first["sends"]) == 1 and first["sends"][0].startswith("+ team team-a")
    assert first["refused"][0].startswith("! refused: + team x")
    assert first["destructive"] is False
    answer = payload(done)
    assert not done.is_error and answer["status"] == "ok" and answer["calls"] == 1
    assert [run["template"] for run in answer["runs"]] == ["create-team"]
    assert payload(replay)["rule"] == "confirmation: already used"
    # Only the step the agent's policy allows was sent, once.
    assert writes(fresh_hub) == [("POST", "/v2/orgs/acme/groups")]
    assert "team-a" in teams(fresh_hub) and "x" not in teams(fresh_hub)
    assert again["changes"] == 0  # the refused step stays refused, nothing else to do
    decisions = [
        (line["agent"], line["tool"], line["decision"])
        for line in audit_lines(agent)
        if line.get("tool") in ("plan", "apply")
    ]
    assert decisions == [
        ("bot", "plan", "allowed"),
        ("bot", "apply", "confirm"),
        ("bot", "apply", "sent"),
        ("bot", "apply", "refused"),
        ("bot", "plan", "allowed"),
    ]


async def test_a_confirmation_is_bound_to_the_plan(tmp_path: Path, fresh_hub: Simulator) -> None:
    state_file(tmp_path, teams={"rows": [{"name": "team-a"}]})
    state_file(tmp_path, "more", teams={"rows": [{"name": "team-b"}]})
    agent = make_agent(
        tmp_path, fresh_hub, policy=PLANNER_POLICY, plans=["teams.yaml", "more.yaml"]
    )
    async with client_for(agent) as (client, gateway):
        one = payload(await client.call_tool("plan", {"state": "teams.yaml"}))["plan_id"]
        two = payload(await client.call_tool("plan", {"state": "more.yaml"}))["plan_id"]
        token = payload(await client.call_tool("apply", {"plan_id": one}))["confirm"]
        crossed = payload(await client.call_tool("apply", {"plan_id": two, "confirm": token}))
        # The state file changes after the plan: its inputs no longer hash as planned.
        state_file(tmp_path, teams={"rows": [{"name": "team-c"}]})
        changed = payload(await client.call_tool("apply", {"plan_id": one, "confirm": token}))
        missing = payload(await client.call_tool("apply", {"plan_id": "20260101T000000-00000000"}))
        plan = gateway_plan(gateway, two)
    assert crossed["rule"] == "confirmation: bound to another request"
    assert changed["rule"] == "plan: inputs changed"
    assert missing["rule"] == "plan: unknown"
    assert writes(fresh_hub) == []
    assert len(apply_digest(plan)) == 64


def gateway_plan(gateway: Any, plan_id: str) -> Any:
    from sink.agent.plans import load_agent_plan

    return load_agent_plan(gateway.agent.state, plan_id)


async def test_drift_is_refused_with_the_difference(tmp_path: Path, fresh_hub: Simulator) -> None:
    state_file(tmp_path, teams={"rows": [{"name": "team-a", "description": "planned"}]})
    agent = make_agent(tmp_path, fresh_hub, policy=PLANNER_POLICY, plans=["teams.yaml"])
    async with client_for(agent) as (client, _):
        plan_id = payload(await client.call_tool("plan", {"state": "teams.yaml"}))["plan_id"]
        token = payload(await client.call_tool("apply", {"plan_id": plan_id}))["confirm"]
        create_team_by_hand(fresh_hub, "team-a", "by hand")
        before = writes(fresh_hub)
        drifted = payload(await client.call_tool("apply", {"plan_id": plan_id, "confirm": token}))
    assert drifted["rule"] == "drift"
    assert "team team-a" in drifted["error"] and "by hand" in drifted["error"]
    assert writes(fresh_hub) == before  # nothing sent
    assert teams(fresh_hub)["team-a"] == "by hand"


async def test_a_destructive_plan_needs_a_human(tmp_path: Path, fresh_hub: Simulator) -> None:
    from mcp_types import ElicitResult

    state_file(
        tmp_path,
        teams={"rows": [{"name": "owners"}], "prune": True},  # developers goes
    )
    policy = {"templates": ["delete-team"], "read": {"namespaces": ["acme"]}}
    agent = make_agent(tmp_path, fresh_hub, policy=policy, plans=["teams.yaml"])
    async with client_for(agent) as (client, _):
        plan = payload(await client.call_tool("plan", {"state": "teams.yaml"}))
        token = payload(await client.call_tool("apply", {"plan_id": plan["plan_id"]}))["confirm"]
        refused = payload(
            await client.call_tool("apply", {"plan_id": plan["plan_id"], "confirm": token})
        )
    assert plan["destructive"] is True
    assert refused["rule"] == "destructive: no human approval"
    assert writes(fresh_hub) == [] and "developers" in teams(fresh_hub)

    asked: list[str] = []

    async def human(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"approve": True})

    async with client_for(agent, elicitation_callback=human) as (client, _):
        token = payload(await client.call_tool("apply", {"plan_id": plan["plan_id"]}))["confirm"]
        done = payload(
            await client.call_tool("apply", {"plan_id": plan["plan_id"], "confirm": token})
        )
    assert len(asked) == 1 and "destroys 1: team developers" in asked[0]
    assert done["status"] == "ok"
    assert writes(fresh_hub) == [("DELETE", "/v2/orgs/acme/groups/developers")]


async def test_a_read_only_agent_plans_but_cannot_apply(
    tmp_path: Path, fresh_hub: Simulator
) -> None:
    state_file(tmp_path, teams={"rows": [{"name": "team-a"}]})
    agent = make_agent(
        tmp_path,
        fresh_hub,
        policy={"read_only": True, "read": {"namespaces": ["acme"]}},
        plans=["teams.yaml"],
    )
    async with client_for(agent) as (client, _):
        names = {tool.name for tool in (await client.list_tools()).tools}
        result = payload(await client.call_tool("plan", {"state": "teams.yaml"}))
        applied = payload(await client.call_tool("apply", {"plan_id": result["plan_id"]}))
    assert "plan" in names and "apply" not in names
    assert result["refused_by_agent_policy"][0]["rule"] == "policy.read_only"
    assert applied["rule"] == "tools"
    assert writes(fresh_hub) == []


async def test_a_state_file_outside_the_read_scope_is_refused(
    tmp_path: Path, fresh_hub: Simulator
) -> None:
    path = state_file(tmp_path, teams={"rows": [{"name": "team-a"}]})
    doc = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**doc, "org": "globex"}))
    agent = make_agent(tmp_path, fresh_hub, policy=PLANNER_POLICY, plans=["teams.yaml"])
    async with client_for(agent) as (client, _):
        refused = payload(await client.call_tool("plan", {"state": "teams.yaml"}))
    assert refused["rule"] == "policy.read.namespaces"
    assert not (agent.state / "plans").exists()


@pytest.mark.parametrize(
    ("own", "budget", "paced"),
    [(None, 2.0, 2.0), (5.0, 2.0, 2.0), (1.0, 2.0, 1.0), (None, None, None)],
)
def test_plans_keep_to_the_agents_rate_budget(
    tmp_path: Path, own: float | None, budget: float | None, paced: float | None
) -> None:
    from sink.agent.plans import within_budget
    from sink.plan.state import load_state

    extra = {} if own is None else {"rate_limit": own}
    state = load_state(state_file(tmp_path, teams={"rows": [{"name": "team-a"}]}, **extra))
    kept = within_budget(state, budget)
    assert kept.config.rate_limit == paced
    assert kept.inputs_hash == state.inputs_hash and kept.path == state.path
