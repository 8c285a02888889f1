"""Showing a plan: Terraform-style lines (``+`` add, ``~`` change, ``-`` destroy), or data."""

from __future__ import annotations

from typing import Any

from sink.plan.diff import CREATE, DELETE, ENSURE, UPDATE, WAITING, Action
from sink.plan.make import Plan

SIGNS = {CREATE: "+", UPDATE: "~", DELETE: "-", ENSURE: "=", WAITING: "…"}


def _value(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return repr(text) if (" " in text or not text) else text


def action_line(action: Action) -> str:
    """One line for one action."""
    sign = SIGNS[action.op]
    if action.op == UPDATE and len(action.changes) == 1 and action.kind == "members":
        name, before, after = action.changes[0]
        line = f"{sign} {name} {action.key} {_value(before)} -> {_value(after)}"
    elif action.op == UPDATE:
        fields = ", ".join(f"{n}: {_value(b)} -> {_value(a)}" for n, b, a in action.changes)
        line = f"{sign} {action.label} {action.key} ({fields})"
    elif action.op in (CREATE, ENSURE) and action.changes:
        fields = ", ".join(f"{n}: {_value(a)}" for n, _, a in action.changes)
        line = f"{sign} {action.label} {action.key} ({fields})"
    else:
        line = f"{sign} {action.label} {action.key}"
    if action.op == ENSURE:
        line += " (ensured: no read of grants)"
    if action.note:
        line += f": {action.note}"
    if action.refused is not None:
        line = f"! refused: {line}: {action.refused}"
    return line


def summary_line(plan: Plan) -> str:
    """``Plan: 2 to add, 1 to change, 1 to destroy; 412 unchanged; 5 calls`` and the rest."""
    counts = plan.counts
    unchanged = sum(plan.unchanged.values())
    parts = [
        f"Plan: {counts['add']} to add, {counts['change']} to change, "
        f"{counts['destroy']} to destroy"
    ]
    if counts["ensure"]:
        parts.append(f"{counts['ensure']} to ensure")
    parts.append(f"{unchanged} unchanged")
    if counts["waiting"]:
        parts.append(f"{counts['waiting']} waiting")
    if counts["refused"]:
        parts.append(f"{counts['refused']} refused")
    parts.append(f"{plan.calls} calls")
    return "; ".join(parts)


def text(plan: Plan) -> str:
    """The plan as text (ends with a newline)."""
    lines = [f"Refreshed {plan.state.org}: {plan.reads} reads."]
    if not plan.changes and not plan.counts["refused"]:
        lines.append(f"No changes. Docker Hub matches {plan.state.path.name}.")
        lines.extend(f"  {action_line(a)}" for a in plan.actions)  # waiting ones
        lines.extend(f"note: {note}" for note in plan.notes)
        return "\n".join(lines) + "\n"
    lines.append("")
    lines.extend(f"  {action_line(a)}" for a in plan.actions)
    lines.append("")
    lines.extend(f"note: {note}" for note in plan.notes)
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def action_data(action: Action) -> dict[str, Any]:
    """One action as data."""
    return {
        "kind": action.kind,
        "op": action.op,
        "key": action.key,
        "changes": [{"field": n, "before": b, "after": a} for n, b, a in action.changes],
        "steps": [{"template": s.template, "record": s.record} for s in action.steps],
        "before": action.before,
        "after": action.after,
        "note": action.note,
        "refused": action.refused,
        "check": action.check,
    }


def data(plan: Plan) -> dict[str, Any]:
    """The plan as data (``--json``, and what :mod:`sink.plan.store` saves)."""
    return {
        "format": 1,
        "id": plan.id,
        "state": str(plan.state.path),
        "org": plan.state.org,
        "inputs_hash": plan.state.inputs_hash,
        "refreshed_hash": plan.refreshed_hash,
        "reads": plan.reads,
        "minimum_reads": plan.minimum_reads,
        "calls": plan.calls,
        "counts": plan.counts,
        "unchanged": plan.unchanged,
        "notes": plan.notes,
        "actions": [action_data(a) for a in plan.actions],
    }
