"""Making a plan: the state file read, Hub refreshed, the diff, and every action's requests
rendered and guarded as apply will send them.

Rendering here is the run's (templates, spec checks, batching: bulk invites carry up to 100
invitees a call), so the plan's call count is apply's. The guard is the run's too (the policy
with Hub's names for ids, and the last owner read from Hub): its refusals show in the plan.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sink.config import DestinationConfig
from sink.destination import Destination, bind
from sink.model import Record, Rejected
from sink.plan.diff import (
    CHANGES,
    CREATE,
    DELETE,
    ENSURE,
    UPDATE,
    WAITING,
    Action,
    Diff,
    diff,
    wanted,
)
from sink.plan.refresh import Current, refresh
from sink.plan.state import DesiredState, load_state
from sink.read.credentials import Credentials

BATCHED = {"bulk-invite": {"mode": "json_property", "property": "invitees", "size": 100}}
"""Templates whose records share calls."""

SETTING_VALUES = ("org", "namespace")


@dataclass
class Plan:
    """A plan: what to send, and what it was made from."""

    state: DesiredState
    actions: list[Action]
    unchanged: dict[str, int]
    notes: list[str]
    calls: int
    """Calls apply would send (a bulk invite of 100 people is one)."""
    reads: int
    """Reads the refresh made."""
    minimum_reads: int
    refreshed_hash: str
    id: str = field(
        default_factory=lambda: f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
    )
    refresh_seconds: float = 0.0
    refresh_first: float = 0.0
    """Seconds of the refresh until its first answer (the sign-in and the pacer's probe)."""

    @property
    def counts(self) -> dict[str, int]:
        """How many actions of each kind of change (refused ones apart)."""
        counts = {"add": 0, "change": 0, "destroy": 0, "ensure": 0, "waiting": 0, "refused": 0}
        names = {CREATE: "add", UPDATE: "change", DELETE: "destroy", ENSURE: "ensure"}
        for action in self.actions:
            if action.refused is not None:
                counts["refused"] += 1
            elif action.op == WAITING:
                counts["waiting"] += 1
            else:
                counts[names[action.op]] += 1
        return counts

    @property
    def changes(self) -> int:
        """Actions that send calls."""
        return sum(1 for a in self.actions if a.refused is None and a.op in CHANGES)

    @property
    def destructive(self) -> bool:
        return any(a.refused is None and a.op == DELETE for a in self.actions)

    def sendable(self) -> list[Action]:
        return [a for a in self.actions if a.refused is None and a.steps]


def step_key(plan_id: str, action: Action, template: str) -> str:
    """The ledger key of one step of an action (the plan's id in it: applying the same plan
    again resumes it; a new plan starts afresh from what Hub holds). A grant's key names its
    permission: a later plan knows which grants an apply ensured (see :func:`ensured`)."""
    what = f"{action.kind} {action.key}"
    if action.kind == "repository_teams" and action.changes:
        what += f" {action.changes[0][2]}"
    return f"plan {plan_id}: {what} {template}"


def apply_ledger(state: DesiredState) -> Path:
    """The ledger every apply of ``state`` shares."""
    return state.out / f"{state.name}-apply.ledger.sqlite"


def ensured(state: DesiredState) -> set[str]:
    """The grants (``kind key permission``) an earlier apply of ``state`` sent and Hub
    confirmed, read from the apply ledger (read-only; none when there is no ledger)."""
    import sqlite3

    path = apply_ledger(state)
    if not path.exists():
        return set()
    suffix = " grant-team-repository"
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = db.execute(
                "SELECT key FROM records WHERE state = 'done' AND key LIKE ?",
                (f"plan %: repository_teams %{suffix}",),
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return set()
    return {str(key).split(": ", 1)[1].removesuffix(suffix) for (key,) in rows}


def destination_for(
    state: DesiredState, template: str, *, base_url: str | None = None, outputs: bool = True
) -> Destination:
    """A destination for one template of the plan: the state's connection, limits and
    policy; outputs (one ledger, audit log and responses file for the whole apply, rejects per
    template) in the state's ``out`` folder."""
    from sink.request.templates import load_registry

    config = state.config
    spec = load_registry().get(template)
    values = {"org": state.org, "namespace": state.namespace}
    settings = {name: values[name] for name in spec.example_settings if name in values}
    out = state.out
    stem = state.name
    data: dict[str, Any] = {
        "connection": config.connection.model_dump(exclude_unset=True),
        "template": template,
        "settings": settings,
        "concurrency": config.concurrency,
        "timeout": config.timeout,
        "retry": config.retry.model_dump(),
        "allow_destructive": config.allow_destructive,
    }
    if template in BATCHED:
        data["batching"] = BATCHED[template]
    if config.rate_limit is not None:
        data["rate_limit"] = config.rate_limit
    if config.policy is not None:
        data["policy"] = config.policy.model_dump(exclude_none=True)
    if outputs:
        data |= {
            "ledger": str(apply_ledger(state)),
            "audit": str(out / f"{stem}-apply-audit.jsonl"),
            "responses": {"file": str(out / f"{stem}-apply-responses.jsonl")},
            "rejects": str(out / f"{stem}-{template}-rejects.jsonl"),
            "vault": str(out / f"{stem}-apply-vault.jsonl"),
        }
    destination = bind(DestinationConfig.model_validate(data), state.folder, base_url=base_url)
    destination.name = f"{stem}-{template}"
    return destination


def records_of(
    plan_id: str, actions: list[Action], template: str, current: Current | None = None
) -> Iterator[tuple[Record, Action]]:
    """The records of every step of ``actions`` for ``template``, keyed."""
    index = 0
    teams = (current.teams if current is not None else None) or {}
    for action in actions:
        for step in action.steps:
            if step.template != template:
                continue
            data = dict(step.record)
            if template == "grant-team-repository" and current is not None:
                team = teams.get(str(data["team"]))
                # A team this plan creates has no id yet: the run looks it up then.
                data["group_id"] = str(team["id"]) if team else "0"
            yield Record(index, data, step_key(plan_id, action, template)), action
            index += 1


async def make_plan(
    state: DesiredState,
    credentials: Credentials,
    *,
    base_url: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    ensure_all: bool = False,
) -> Plan:
    """Refresh, diff, render and guard (see the module). Grants an earlier apply of this
    state ensured are not planned again unless ``ensure_all`` (Hub has no read to say whether
    they are still there)."""
    from sink.guard.check import Guard
    from sink.outputs.redact import Redactor
    from sink.read.hub import HubReader
    from sink.run import dispatch_client
    from sink.send.pacing import Pacer

    config = state.config
    probe = destination_for(state, "create-team", base_url=base_url, outputs=False)
    redactor = Redactor([credentials.secret])
    client = dispatch_client(credentials, redactor, probe.config, config.concurrency, transport)
    async with client:
        reader = HubReader(
            client, pacer=Pacer(config.rate_limit, max_wait=config.retry.max_seconds)
        )
        started = time.monotonic()
        current = await refresh(
            reader, state.org, state.namespace, wanted(state), concurrency=config.concurrency
        )
        seconds = time.monotonic() - started
        found = diff(state, current)
        if not ensure_all:
            _skip_ensured(state, found)
        plan = Plan(
            state,
            found.actions,
            found.unchanged,
            found.notes,
            0,
            current.reads,
            current.minimum,
            current.digest(),
            refresh_seconds=seconds,
            refresh_first=current.first_answer,
        )
        _check_credentials(plan, credentials)
        plan.calls = await _render_and_guard(
            plan, found, current, Guard(reader, config.policy), base_url
        )
    return plan


def _check_credentials(plan: Plan, credentials: Credentials) -> None:
    """Refuse, in the plan, the actions whose templates cannot take this credential."""
    from sink.errors import StopRun
    from sink.read.credentials import check_accepted
    from sink.request.templates import load_registry

    registry = load_registry()
    for action in plan.sendable():
        for step in action.steps:
            template = registry.get(step.template)
            try:
                check_accepted(credentials, list(template.credentials), template.id)
            except StopRun as exc:
                action.refused = str(exc)
                break


def _skip_ensured(state: DesiredState, found: Diff) -> None:
    done = ensured(state)
    if not done:
        return
    kept = []
    skipped = 0
    for action in found.actions:
        if (
            action.kind == "repository_teams"
            and f"{action.kind} {action.key} {action.changes[0][2]}" in done
        ):
            skipped += 1
            continue
        kept.append(action)
    if skipped:
        found.actions = kept
        found.unchanged["repository_teams"] = found.unchanged.get("repository_teams", 0) + skipped
        found.notes.append(
            f"{skipped} grant(s) an earlier apply ensured are counted unchanged, not read "
            "(a grant removed in Hub's UI since is not seen: `sink plan --ensure-grants` "
            "sends every grant again)"
        )


async def _render_and_guard(
    plan: Plan, found: Diff, current: Current, guard: Any, base_url: str | None
) -> int:
    """Render every step as apply will; refuse the actions the guard refuses; count calls."""
    from sink.pipeline import Rendering

    calls = 0
    planned_teams = {a.key for a in found.actions if a.kind == "teams" and a.op == CREATE}
    templates = list(dict.fromkeys(s.template for a in plan.sendable() for s in a.steps))
    for template in templates:
        destination = destination_for(plan.state, template, base_url=base_url, outputs=False)
        pairs = list(records_of(plan.id, plan.sendable(), template, current))
        by_key = {record.key: action for record, action in pairs}
        rendering = Rendering(destination)
        rendered = [*rendering.feed([record for record, _ in pairs]), *rendering.finish()]
        for item in rendered:
            if isinstance(item, Rejected):
                action = by_key[item.key]
                action.refused = action.refused or item.error
                continue
            request, carried = item
            actions = [by_key[record.key] for record in carried]
            if template == "grant-team-repository" and any(
                str(record.data.get("team")) in planned_teams for record in carried
            ):
                calls += 1  # its team is created first: guarded when apply sends it
                continue
            refusal = await guard.refusal(request)
            if refusal is not None:
                for action in actions:
                    action.refused = refusal
                continue
            guard.settled(request, True)  # as a run would once Hub confirmed it
            calls += 1
    return calls


def credentials_for(state: DesiredState, base_url: str | None = None) -> Credentials:
    """The credentials of ``state``'s connection, bound to where its requests go."""
    from sink.read.secrets import resolve

    base = destination_for(state, "create-team", base_url=base_url, outputs=False).base_url
    return resolve(state.config.connection, state.folder, base_url=base)


def plan_state(
    path: str | Path,
    *,
    base_url: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    credentials: Credentials | None = None,
    ensure_all: bool = False,
) -> Plan:
    """Read the state file at ``path`` and make its plan (reads Hub; writes nothing)."""
    import asyncio

    state = load_state(path)
    if credentials is None:
        credentials = credentials_for(state, base_url)
    return asyncio.run(
        make_plan(state, credentials, base_url=base_url, transport=transport, ensure_all=ensure_all)
    )
