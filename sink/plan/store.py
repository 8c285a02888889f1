"""Saving and loading a plan (``sink plan --out``): JSON, mode 0600, with a hash of the
refreshed state and of the inputs, so that apply can tell a plan made from other inputs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from sink.errors import ConfigError
from sink.plan.diff import Action, Step
from sink.plan.make import Plan
from sink.plan.show import data
from sink.plan.state import load_state


def save_plan(plan: Plan, path: str | Path) -> Path:
    """Write ``plan`` to ``path`` (0600, replaced whole)."""
    from sink.outputs.files import open_private

    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    fd, _ = open_private(partial, os.O_WRONLY | os.O_TRUNC, what="the plan file")
    with os.fdopen(fd, "wb") as file:
        file.write(orjson.dumps(data(plan), option=orjson.OPT_INDENT_2))
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, target)
    return target


def load_plan(path: str | Path) -> Plan:
    """Read a saved plan; its state file is read again and must hash as it did."""
    file = Path(path)
    try:
        saved: Any = orjson.loads(file.read_bytes())
    except FileNotFoundError as exc:
        raise ConfigError(f"{file}: no such plan file") from exc
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"{file}: not a plan file: {exc}") from exc
    if not isinstance(saved, dict) or saved.get("format") != 1:
        raise ConfigError(f"{file}: not a plan file (made by `sink plan --out`)")
    state = load_state(saved["state"])
    if state.inputs_hash != saved["inputs_hash"]:
        raise ConfigError(
            f"{file}: the state file {saved['state']} or its inputs changed since this plan "
            "was made; make a new plan (`sink plan STATE --out PLAN`)"
        )
    actions = [
        Action(
            item["kind"],
            item["op"],
            item["key"],
            changes=[(c["field"], c["before"], c["after"]) for c in item["changes"]],
            steps=[Step(s["template"], s["record"]) for s in item["steps"]],
            before=item["before"],
            after=item["after"],
            note=item["note"],
            refused=item["refused"],
            check=item["check"],
        )
        for item in saved["actions"]
    ]
    return Plan(
        state,
        actions,
        dict(saved["unchanged"]),
        list(saved["notes"]),
        int(saved["calls"]),
        int(saved["reads"]),
        int(saved["minimum_reads"]),
        str(saved["refreshed_hash"]),
        id=str(saved["id"]),
    )
