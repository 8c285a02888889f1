"""``sink plan`` and ``sink apply``: make Docker Hub match a desired-state file.

:func:`add_commands` registers both on ``sink``'s parser; the plan package is imported only
when one of them runs.
"""

from __future__ import annotations

import argparse
import sys

from sink.cli.main import ExitCode
from sink.errors import ConfigError

PLAN_HELP = (
    "Read the desired-state file (YAML: the connection, the organization and, per managed "
    "kind, an input file or inline rows), read Docker Hub's current state of every managed "
    "kind (bulk, paginated reads), and print what apply would do: + add, ~ change in place, "
    "- destroy (only with prune), = ensure (repository team grants: Hub has no read of "
    "them), … waiting (team memberships of people invited but not joined), ! refused (the "
    "policy, the last owner, no documented route). Nothing is written to Hub. Exit codes: "
    "0 success, 1 the plan has refusals, 2 stopped (bad state file, input or credentials); "
    "with --detailed-exitcode, 3 when the plan has changes (0 then means no changes)."
)

APPLY_HELP = (
    "Apply a saved plan (from `sink plan --out`) or a state file. A state file is planned "
    "first and the plan is shown and confirmed (--yes for scripts). A saved plan is applied "
    "as it is, after checking that the state file and its inputs are unchanged and that "
    "Docker Hub did not change what the plan touches (drift: nothing is sent, make a new "
    "plan). Actions go through the same machinery as `sink run` (ledger, guards, vault, audit "
    "log, responses) in dependency order; a killed apply resumes when applied again. A plan "
    "that destroys needs --yes (or allow_destructive: true). Exit codes: 0 all applied, "
    "1 some refused, rejected or failed, 2 stopped (drift, bad plan, credentials), 130/143 "
    "interrupted."
)


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``plan`` and ``apply``."""
    plan = commands.add_parser(
        "plan",
        help="show what it takes to make Docker Hub match a state file",
        description=PLAN_HELP,
    )
    plan.add_argument("state", help="desired-state file (YAML)")
    plan.add_argument("--out", metavar="PLAN", help="save the plan here (JSON, 0600) for apply")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 3 when there are changes, 0 when there are none",
    )
    plan.add_argument(
        "--ensure-grants",
        action="store_true",
        help="plan every repository team grant, also those an earlier apply ensured",
    )
    plan.add_argument("--base-url", help="read this Docker Hub (e.g. a `sink hubsim` URL)")
    plan.set_defaults(handler=cmd_plan)

    apply = commands.add_parser(
        "apply", help="apply a plan (or a state file) to Docker Hub", description=APPLY_HELP
    )
    apply.add_argument("plan", help="a plan file (`sink plan --out`) or a state file (YAML)")
    apply.add_argument("--yes", action="store_true", help="no confirmation; allow destroying")
    apply.add_argument("--base-url", help="send to this Docker Hub (e.g. a `sink hubsim` URL)")
    apply.set_defaults(handler=cmd_apply)


def cmd_plan(args: argparse.Namespace) -> ExitCode:
    """``sink plan STATE``."""
    import orjson

    from sink.plan.make import plan_state
    from sink.plan.show import data, text
    from sink.plan.store import save_plan

    plan = plan_state(args.state, base_url=args.base_url, ensure_all=args.ensure_grants)
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(data(plan), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        sys.stdout.write(text(plan))
    if args.out:
        saved = save_plan(plan, args.out)
        print(f"Saved the plan to {saved}; apply it with `sink apply {saved}`.", file=sys.stderr)
    if plan.counts["refused"]:
        return ExitCode.REJECTED
    if args.detailed_exitcode and plan.changes:
        return ExitCode.CHANGES
    return ExitCode.OK


def _is_plan_file(path: str) -> bool:
    """A saved plan is a JSON object with the plan's own keys (a state file is YAML)."""
    import orjson

    try:
        with open(path, "rb") as file:
            saved = orjson.loads(file.read())
    except (OSError, orjson.JSONDecodeError):
        return False
    return isinstance(saved, dict) and "format" in saved and "actions" in saved


def cmd_apply(args: argparse.Namespace) -> ExitCode:
    """``sink apply PLAN|STATE``."""
    from sink.plan.apply import apply_plan
    from sink.plan.make import credentials_for, plan_state
    from sink.plan.show import text
    from sink.plan.state import load_state
    from sink.plan.store import load_plan

    if _is_plan_file(args.plan):
        plan = load_plan(args.plan)
        credentials = credentials_for(plan.state, args.base_url)
    else:
        # The secret is read once (it may come from standard input) for the plan and the apply.
        credentials = credentials_for(load_state(args.plan), args.base_url)
        plan = plan_state(args.plan, base_url=args.base_url, credentials=credentials)
        sys.stdout.write(text(plan))
        if not plan.changes:
            return ExitCode.REJECTED if plan.counts["refused"] else ExitCode.OK
        if not args.yes:
            if not sys.stdin.isatty():
                raise ConfigError("confirm with --yes (no terminal to ask on)")
            answer = input("Apply this plan? Only 'yes' is accepted: ")
            if answer.strip() != "yes":
                print("Not applied.", file=sys.stderr)
                return ExitCode.STOPPED
            args.yes = True
    summary = apply_plan(plan, yes=args.yes, base_url=args.base_url, credentials=credentials)
    for template, run in summary.runs:
        counts = run.counts
        line = f"{template}: {counts.ok} ok"
        for name in ("rejected", "failed", "done_before"):
            value = getattr(counts, name)
            if value:
                line += f", {value} {name.replace('_', ' ')}"
        print(line)
        if run.stopped:
            print(f"  stopped: {run.stopped}")
    refused = plan.counts["refused"]
    tail = f"; {refused} refused in the plan, not sent" if refused else ""
    print(f"Applied: {summary.calls} calls for {plan.changes} changes{tail}.")
    if summary.interrupted is not None:
        return ExitCode.interrupted(summary.interrupted)
    if summary.stopped is not None:
        print(f"sink: stopped: {summary.stopped}", file=sys.stderr)
        return ExitCode.STOPPED
    return ExitCode.REJECTED if summary.trouble else ExitCode.OK
