"""Applying a plan: refresh what it touches, refuse on drift, then send its actions through
the same send core as ``sink run``, one template at a time in dependency order.

Each template's steps are fed to :func:`sink.run.run` as prepared records
(:attr:`sink.run.RunOptions.records`), so every one goes through what a run does: the ledger
(keys carry the plan's id: applying the same plan again after a kill resumes it, nothing is
applied twice), the look-ups (team ids, membership), the render and spec checks, the policy
and last-owner guard, the dispatcher, the vault, the audit log and the responses stream. All
templates share one ledger, audit log and responses file in the state's ``out`` folder.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx

from sink.errors import ConfigError, PlanDrift
from sink.plan.diff import DELETE, PHASES, Action, observed
from sink.plan.make import Plan, credentials_for, destination_for, records_of
from sink.plan.refresh import Current, Wanted, refresh
from sink.read.credentials import Credentials
from sink.run import RunOptions, RunSummary, run


@dataclass
class ApplySummary:
    """What an apply did: per template, the run's summary."""

    plan: Plan
    runs: list[tuple[str, RunSummary]] = field(default_factory=list)
    reads: int = 0
    """Reads of the drift check."""
    stopped: str | None = None
    interrupted: int | None = None

    @property
    def calls(self) -> int:
        """Write calls sent (a bulk invite of many people is one)."""
        return sum(summary.counts.requests for _, summary in self.runs)

    @property
    def trouble(self) -> bool:
        """Some step was rejected or failed, or the plan had refusals."""
        refused = any(a.refused is not None for a in self.plan.actions)
        return refused or any(
            s.counts.rejected or s.counts.failed or s.counts.skipped or s.in_doubt
            for _, s in self.runs
        )


def touched(plan: Plan) -> Wanted:
    """What the drift check reads: the kinds and lists of the checked actions."""
    checked = [a for a in plan.sendable() if a.check]
    kinds = {a.kind for a in checked}
    return Wanted(
        members=bool(kinds & {"members", "invites"}),
        teams="teams" in kinds or "team_members" in kinds,
        team_members=sorted({a.key.split("/", 1)[0] for a in checked if a.kind == "team_members"}),
        repositories="repositories" in kinds,
        access_tokens="access_tokens" in kinds,
        org_access_tokens="org_access_tokens" in kinds,
        immutable_tags=sorted(
            {
                a.key.split("/", 1)[1]
                for a in checked
                if a.kind == "repositories"
                and isinstance(a.after, dict)
                and "immutable_tags" in a.after
            }
        ),
    )


def drift(plan: Plan, current: Current) -> list[str]:
    """The checked actions whose key on Hub is now neither as planned nor already applied."""
    found = []
    for action in plan.sendable():
        if not action.check:
            continue
        now = observed(action, current, plan.state)
        if now != action.before and now != action.after:
            found.append(
                f"{action.label} {action.key}: planned from {_shown(action.before)}, "
                f"Hub now has {_shown(now)}"
            )
    return found


def _shown(value: Any) -> str:
    if value is None:
        return "nothing (absent)"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "it"
    return str(value)


async def check_drift(
    plan: Plan,
    credentials: Credentials,
    *,
    base_url: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """Refresh what ``plan`` touches; raise :class:`PlanDrift` with the differences. Returns
    the reads made."""
    from sink.outputs.redact import Redactor
    from sink.read.hub import HubReader
    from sink.run import dispatch_client

    state = plan.state
    config = state.config
    probe = destination_for(state, "create-team", base_url=base_url, outputs=False)
    redactor = Redactor([credentials.secret])
    async with dispatch_client(
        credentials, redactor, probe.config, config.concurrency, transport
    ) as client:
        reader = HubReader(client)
        current = await refresh(
            reader, state.org, state.namespace, touched(plan), concurrency=config.concurrency
        )
    differences = drift(plan, current)
    if differences:
        shown = "; ".join(differences[:20])
        more = f" (and {len(differences) - 20} more)" if len(differences) > 20 else ""
        raise PlanDrift(
            f"Docker Hub changed since plan {plan.id} was made, nothing was sent: {shown}{more}. "
            "Make a new plan (`sink plan STATE`)"
        )
    return current.reads


def check_destructive(plan: Plan, yes: bool) -> None:
    """Refuse a plan that destroys without ``--yes`` (or ``allow_destructive: true``)."""
    if not plan.destructive or yes or plan.state.config.allow_destructive:
        return
    gone = [f"{a.label} {a.key}" for a in plan.actions if a.op == DELETE and a.refused is None]
    raise ConfigError(
        f"this plan destroys {len(gone)}: {', '.join(gone[:10])}"
        f"{' ...' if len(gone) > 10 else ''}. Check it (`sink plan STATE`), then apply with "
        "--yes or set allow_destructive: true in the state file"
    )


def apply_plan(
    plan: Plan,
    *,
    yes: bool = False,
    base_url: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    credentials: Credentials | None = None,
) -> ApplySummary:
    """Check for drift, then send the plan's actions (see the module). Raises
    :class:`~sink.errors.PlanDrift` (nothing sent) when Hub changed what the plan touches."""
    check_destructive(plan, yes)
    state = plan.state
    summary = ApplySummary(plan)
    sendable = plan.sendable()
    if not sendable:
        return summary
    if credentials is None:
        credentials = credentials_for(state, base_url)
    summary.reads = asyncio.run(
        check_drift(plan, credentials, base_url=base_url, transport=transport)
    )
    for template in PHASES:
        records = [record for record, _ in records_of(plan.id, sendable, template)]
        if not records:
            continue
        destination = destination_for(state, template, base_url=base_url)
        options = RunOptions(None, yes=True, records=records, transport=transport)
        result = run(destination, credentials, options)
        summary.runs.append((template, result))
        if result.interrupted is not None or result.cancelled:
            summary.interrupted = result.interrupted
            break
        if result.stopped is not None:
            summary.stopped = result.stopped
            break
    return summary


def actions_by_template(plan: Plan) -> dict[str, list[Action]]:
    """The sendable actions per template, in apply's order."""
    grouped: dict[str, list[Action]] = {}
    for template in PHASES:
        for action in plan.sendable():
            if any(step.template == template for step in action.steps):
                grouped.setdefault(template, []).append(action)
    return grouped
