"""Plans for agents: the desired-state files an agent may plan and apply, held to its policy.

The ``plan`` tool makes a plan of one of the agent's state files (:attr:`AgentConfig.plans
<sink.agent.agents.AgentConfig.plans>`) with sink's own plan mode (:func:`sink.plan.make.make_plan`,
signed in as the agent, never as the state file's connection), then checks every step of it
against the *agent's* write policy (:func:`agent_refusals`) as well as the state file's own:
a step the agent's policy refuses is refused in the plan, naming the rule, so apply never sends
it. The plan is saved in the agent's state folder (``plans/ID.json``, 0600) and returned as data.

The ``apply`` tool takes a plan id. Like a write tool it takes two calls: the first sends
nothing and returns what the plan would send and a confirmation token bound to the plan's id,
the hash of its state file and inputs, the hash of what the refresh read and the actions it
sends (:func:`apply_digest`); the second, with the token, checks the agent's policy again and
applies it through :func:`sink.plan.apply.apply_plan` (drift refused with the differences,
nothing sent; the same ledger, vault and guards as ``sink apply``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sink.agent.tools import PLAN_ID_PATTERN
from sink.config import PolicyConfig
from sink.errors import ConfigError, ToolRefused
from sink.model import Record, Rejected, Request
from sink.plan.make import Plan
from sink.plan.state import DesiredState
from sink.read.hub import HubReader

PLAN_ID = re.compile(PLAN_ID_PATTERN)
"""A plan id (:attr:`sink.plan.make.Plan.id`)."""
AGENT_REFUSAL = "agent policy: "
"""How a step the agent's policy refuses reads in the plan (``refused``)."""


def plan_path(state_folder: Path, plan_id: str) -> Path:
    """Where the agent's plan ``plan_id`` is saved."""
    if not PLAN_ID.fullmatch(plan_id):
        raise ToolRefused(f"{plan_id!r} is not a plan id", rule="input schema")
    return state_folder / "plans" / f"{plan_id}.json"


def allowed_state(allowed: dict[str, Path], path: Path) -> str:
    """The name under which the agent may use the state file at ``path``; refuses one the
    agents file does not list (a plan saved before the list changed)."""
    resolved = path.resolve()
    for name, given in allowed.items():
        if given.resolve() == resolved:
            return name
    raise ToolRefused(
        f"the state file {path.name} is not among this agent's plans "
        f"({', '.join(allowed) or 'none'})",
        rule="plans",
    )


def apply_digest(plan: Plan) -> str:
    """What an apply's confirmation is bound to: the plan's id, its inputs' hash, the hash of
    what its refresh read, and every action it would send (kind, op, key, steps)."""
    hashed = hashlib.sha256()
    for part in ("apply", plan.id, plan.state.inputs_hash, plan.refreshed_hash):
        hashed.update(part.encode())
        hashed.update(b"\0")
    for action in plan.sendable():
        hashed.update(f"{action.kind}\0{action.op}\0{action.key}\0".encode())
        for step in action.steps:
            hashed.update(step.template.encode())
            hashed.update(repr(sorted(step.record.items())).encode())
    return hashed.hexdigest()


def within_budget(state: DesiredState, rate: float | None) -> DesiredState:
    """``state`` paced at most at the agent's ``rate`` (requests a second), whatever its own
    ``rate_limit``: a plan's reads and an apply's writes keep to the agent's budget too."""
    own = state.config.rate_limit
    if rate is None or (own is not None and own <= rate):
        return state
    config = state.config.model_copy(update={"rate_limit": rate})
    return dataclasses.replace(state, config=config)


async def _team_ids(reader: HubReader, org: str) -> dict[str, str]:
    from urllib.parse import quote

    found: dict[str, str] = {}
    async for team in reader.items(f"/v2/orgs/{quote(org, safe='')}/groups", page_size=100):
        number, name = team.get("id"), team.get("name")
        if isinstance(number, int | float) and isinstance(name, str):
            found[name] = str(int(number))
    return found


def _records(plan: Plan, template: str, teams: dict[str, str]) -> Iterator[tuple[Record, Any]]:
    from sink.plan.make import step_key

    index = 0
    for action in plan.sendable():
        for step in action.steps:
            if step.template != template:
                continue
            data = dict(step.record)
            if template == "grant-team-repository":
                data["group_id"] = teams.get(str(data.get("team")), "0")
            yield Record(index, data, step_key(plan.id, action, template)), action
            index += 1


async def agent_refusals(
    plan: Plan, policy: PolicyConfig, reader: HubReader, *, base_url: str | None
) -> list[dict[str, str]]:
    """Check every step ``plan`` would send against the agent's ``policy`` (rendered as apply
    renders it; ids looked up on Hub as the send core's guard does) and refuse, in the plan,
    the actions it refuses. Returns them: action, rule, reason."""
    from sink.agent.agents import rule_of
    from sink.guard.check import Guard
    from sink.pipeline import Rendering
    from sink.plan.make import destination_for

    state = plan.state
    templates = list(dict.fromkeys(s.template for a in plan.sendable() for s in a.steps))
    needs_teams = "grant-team-repository" in templates
    teams = await _team_ids(reader, state.org) if needs_teams else {}
    guard = Guard(reader, policy)
    refused: list[dict[str, str]] = []

    def refuse(action: Any, reason: str) -> None:
        if action.refused is None:
            action.refused = AGENT_REFUSAL + reason
            label = f"{action.label} {action.key}"
            refused.append({"action": label, "rule": rule_of(reason), "reason": reason})

    for template in templates:
        destination = destination_for(state, template, base_url=base_url, outputs=False)
        pairs = list(_records(plan, template, teams))
        by_key = {record.key: action for record, action in pairs}
        rendering = Rendering(destination)
        for item in [*rendering.feed([record for record, _ in pairs]), *rendering.finish()]:
            if isinstance(item, Rejected):
                refuse(by_key[item.key], f"the request cannot be made: {item.error}")
                continue
            request, carried = item
            actions = [by_key[record.key] for record in carried]
            unknown = [
                str(record.data.get("team"))
                for record in carried
                if template == "grant-team-repository" and record.data.get("group_id") == "0"
            ]
            if unknown:
                # A team this plan creates has no id yet: its name is the plan's.
                reason = _planned_team_refusal(policy, request, unknown)
            else:
                reason = await guard.refusal(request)
                if reason is None:
                    guard.settled(request, True)  # as a run would once Hub confirmed it
            if reason is not None:
                for action in actions:
                    refuse(action, reason)
    return refused


def _planned_team_refusal(policy: PolicyConfig, request: Request, teams: list[str]) -> str | None:
    from sink.guard.policy import references, violation

    resolved = {reference: {"teams": teams} for reference in references(policy, request)}
    return violation(policy, request, resolved)


def load_agent_plan(state_folder: Path, plan_id: str) -> Plan:
    """The agent's saved plan ``plan_id``; refused when there is none or its inputs changed."""
    from sink.plan.store import load_plan

    path = plan_path(state_folder, plan_id)
    if not path.exists():
        raise ToolRefused(
            f"this agent has no plan {plan_id}: make one with the plan tool", rule="plan: unknown"
        )
    try:
        return load_plan(path)
    except ConfigError as exc:
        raise ToolRefused(
            f"plan {plan_id} cannot be applied: {exc}", rule="plan: inputs changed"
        ) from exc
