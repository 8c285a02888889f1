"""The thin command line: parse, call the library, map errors to exit codes (:class:`ExitCode`).

Start-up is kept short: this module imports only what the parser needs, and each command
imports the modules it uses when it runs, so that ``sink --help`` does not load pydantic, the
template registry or Docker's spec (``tests/test_cli.py`` pins that).
"""

from __future__ import annotations

import argparse
import enum
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sink import __version__
from sink.errors import ConfigError, SinkError, StopRun

if TYPE_CHECKING:
    from sink.destination import Destination
    from sink.read.credentials import Credentials
    from sink.run import RunSummary


class ExitCode(enum.IntEnum):
    """What every ``sink`` command exits with."""

    OK = 0
    """Everything went as asked."""
    REJECTED = 1
    """Some records were rejected, invalid or failed, a secret was lost, or a check failed."""
    STOPPED = 2
    """Stopped: bad config, input or credentials (nothing further could succeed)."""
    CHANGES = 3
    """``sink plan --detailed-exitcode``: the plan has changes (0 then means none)."""
    INTERRUPTED_SIGINT = 128 + signal.SIGINT
    """Interrupted by SIGINT (Ctrl-C): 130."""
    INTERRUPTED_SIGTERM = 128 + signal.SIGTERM
    """Interrupted by SIGTERM: 143."""

    @classmethod
    def interrupted(cls, signum: int) -> ExitCode:
        """The code of a run interrupted by signal ``signum`` (SIGINT or SIGTERM): 128 + it."""
        return cls(128 + signum)


Handler = Callable[[argparse.Namespace], ExitCode]


class CommandParser(argparse.ArgumentParser):
    """An argument parser that may add its arguments only when it is used.

    ``arguments``, when given, is called with the parser the first time it parses or formats
    its help: a command whose options come from a module slow to import (``export``'s lists,
    the connection kinds) then imports it when that command runs, not for every ``sink``.
    """

    def __init__(
        self,
        *args: Any,
        arguments: Callable[[argparse.ArgumentParser], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._arguments = arguments

    def _add_arguments(self) -> None:
        arguments, self._arguments = self._arguments, None
        if arguments is not None:
            arguments(self)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Add the arguments (once), then parse as argparse does."""
        self._add_arguments()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        """Add the arguments (once), then format as argparse does."""
        self._add_arguments()
        return super().format_usage()

    def format_help(self) -> str:
        """Add the arguments (once), then format as argparse does."""
        self._add_arguments()
        return super().format_help()


def main(argv: Sequence[str] | None = None) -> ExitCode:
    """Run the ``sink`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return ExitCode.STOPPED
    try:
        return handler(args)
    except StopRun as exc:
        print(f"sink: stopped: {exc}", file=sys.stderr)
        return ExitCode.STOPPED
    except SinkError as exc:
        print(f"sink: {exc}", file=sys.stderr)
        return ExitCode.STOPPED
    except BrokenPipeError:
        return ExitCode.OK
    except KeyboardInterrupt:  # a Ctrl-C outside a run's own handling: no traceback
        print("sink: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED_SIGINT
    except Exception as exc:
        if os.environ.get("SINK_TRACEBACK"):
            raise
        print(f"sink: {unexpected(exc)}", file=sys.stderr)
        return ExitCode.STOPPED


def unexpected(exc: Exception) -> str:
    """One line for an error no command translated: where Hub could not be reached, or what
    failed (token-shaped values redacted). ``SINK_TRACEBACK=1`` shows the traceback instead."""
    import httpx

    from sink.outputs.redact import Redactor

    text = Redactor()(str(exc) or type(exc).__name__)
    if isinstance(exc, httpx.TransportError):
        try:
            url = exc.request.url
            where = f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")
        except RuntimeError:  # no request attached
            where = "Docker Hub"
        return f"stopped: cannot reach {where}: {text}"
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"cannot use {exc.filename}: {exc.strerror or text}"
    return f"failed: {type(exc).__name__}: {text} (set SINK_TRACEBACK=1 to see where)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = CommandParser(
        prog="sink",
        description=(
            "Stream records (CSV, TSV, JSON Lines, Parquet or stdin) into correct, safe calls to "
            "Docker Hub's management API."
        ),
        epilog="Start with `sink templates`, then `sink preview CONFIG`. Docs: README.md.",
    )
    parser.add_argument("--version", action="version", version=f"sink {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    templates = commands.add_parser(
        "templates",
        help="list the endpoint templates, or show one",
        description=(
            "List the Docker Hub endpoint templates, or show one with its fields, credential, "
            "scope, warnings and an example request."
        ),
    )
    templates.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    templates.add_argument("id", nargs="?", help="template id, for `show`")
    templates.add_argument("--json", action="store_true", help="print JSON for machines")
    templates.set_defaults(handler=cmd_templates)

    preview = commands.add_parser(
        "preview",
        help="print the requests a destination would send, without sending anything",
        description=(
            "Render the first N records (or batches) of the input into the exact HTTP requests "
            "that would go to Docker Hub, check every record against Docker's published spec, "
            "and list the invalid ones. Nothing is sent. Exits 1 if any record is invalid."
        ),
    )
    preview.add_argument("config", help="destination config (YAML)")
    _input_arguments(preview)
    preview.add_argument("-n", type=int, default=5, metavar="N", help="requests to print (5)")
    preview.add_argument("--all", action="store_true", help="print every request")
    preview.add_argument(
        "--format",
        choices=["json", "http"],
        default="json",
        help="json: one JSON line per request; http: HTTP messages (default json)",
    )
    preview.add_argument(
        "--base-url",
        help="preview for this Docker Hub (e.g. a `sink hubsim` URL) instead of the config's",
    )
    preview.add_argument(
        "--online",
        action="store_true",
        help="also do the run's read-only steps on Docker Hub (team ids, membership, the "
        "last-owner check, effect look-ups) and say per record what the run would do; needs "
        "the connection's secret; sends nothing that writes",
    )
    preview.set_defaults(handler=cmd_preview)

    run = commands.add_parser(
        "run",
        help="send every record to Docker Hub",
        description=(
            "Send every record of the input as the destination config says: authenticated, "
            "paced to Hub's rate limits, retried where that is safe. Responses go to the "
            "responses stream, created secrets to the vault (mode 0600), refused records to "
            "the rejects file (replayable with --input). Ctrl-C stops taking records, lets "
            "requests in flight finish and flushes every output. Exit codes: 0 all ok, "
            "1 some rejected or failed, 2 stopped, 130/143 interrupted."
        ),
    )
    run.add_argument("config", help="destination config (YAML)")
    _input_arguments(run)
    run.add_argument("--dry-run", action="store_true", help="preview instead of sending")
    run.add_argument("--yes", action="store_true", help="confirm a destructive template")
    run.add_argument(
        "--fresh",
        action="store_true",
        help="start a new ledger (the old one is kept aside): send records a past run finished",
    )
    run.add_argument(
        "--resend-unknown",
        action="store_true",
        help="send again the records whose outcome a past run left unknown and that cannot be "
        "looked up (`sink status` lists them): only after checking on Hub that they did not "
        "happen",
    )
    run.add_argument(
        "--engine",
        choices=("ray",),
        help="send on many workers (Ray Data; needs `pip install 'sink[ray]'`): one ledger, "
        "one vault and one rate budget for all of them",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="N",
        help="with --engine: write tasks at once, sharing the config's concurrency (default 2)",
    )
    _connection_arguments(run)
    run.set_defaults(handler=cmd_run)

    test = commands.add_parser(
        "test",
        help="send one record (or a hand-edited body) and show request and response",
        description=(
            "Render one record of the input (or send --body as it is), send it, and print the "
            "request (Authorization redacted) and Docker Hub's response (secrets redacted; a "
            "created token's secret goes to the vault)."
        ),
    )
    test.add_argument("config", help="destination config (YAML)")
    _input_arguments(test)
    test.add_argument("--record", type=int, default=1, metavar="N", help="1-based record (1)")
    test.add_argument("--body", help="send this JSON body instead of rendering a record")
    test.add_argument("--yes", action="store_true", help="confirm a destructive template")
    _connection_arguments(test)
    test.set_defaults(handler=cmd_test)

    status = commands.add_parser(
        "status",
        help="what the ledger says: records done, refused, failed or in doubt",
        description=(
            "Show the destination's ledger: how many records are done, rejected, failed or "
            "were left in flight by an interrupted run, and the records that need attention."
        ),
    )
    status.add_argument("config", help="destination config (YAML)")
    status.add_argument("--json", action="store_true", help="print JSON for machines")
    status.set_defaults(handler=cmd_status)

    validate = commands.add_parser(
        "validate",
        help="check a destination config and name each problem",
        description="Check a destination config: keys, template, settings, input and secret.",
    )
    validate.add_argument("config", help="destination config (YAML)")
    _connection_arguments(validate)
    validate.set_defaults(handler=cmd_validate)

    hubsim = commands.add_parser(
        "hubsim",
        help="run the local Docker Hub simulator",
        description=(
            "Serve a Docker Hub stand-in on loopback (state in memory) to rehearse a flow "
            "before running it for real. Prints the URL it listens on."
        ),
    )
    hubsim.add_argument("--host", default="127.0.0.1")
    hubsim.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    hubsim.add_argument(
        "--seed", help="seed state (YAML or JSON file, or 'large'; default: the sample seed)"
    )
    hubsim.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request")
    hubsim.add_argument("--faults", help="fault injection, JSON text or a file")
    hubsim.add_argument("--jwt-ttl", type=float, default=600.0, help="JWT lifetime in seconds")
    hubsim.add_argument(
        "--no-control", action="store_true", help="do not serve the test-only /_sim control API"
    )
    hubsim.add_argument(
        "--http",
        choices=["auto", "h11", "httptools"],
        default="auto",
        help="uvicorn's HTTP implementation (auto: httptools when installed)",
    )
    hubsim.set_defaults(handler=cmd_hubsim)
    from sink.cli.read import add_commands as add_read_commands  # it imports ExitCode from here

    add_read_commands(commands)
    from sink.cli.plan import add_commands as add_plan_commands  # the plan package: on use only

    add_plan_commands(commands)
    from sink.cli.mcp import add_command as add_mcp_command  # the mcp package: only on `sink mcp`

    add_mcp_command(commands)
    return parser


def _connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url",
        help="send to this Docker Hub (e.g. a `sink hubsim` URL) instead of the config's",
    )


def _input_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", "-i", help="records file, or - for stdin (default: config)")
    parser.add_argument(
        "--input-format",
        choices=["csv", "tsv", "jsonl", "parquet"],
        help="input format (default: from the file name, or sniffed on stdin)",
    )


def cmd_templates(args: argparse.Namespace) -> ExitCode:
    """``sink templates [list|show ID]``."""
    from sink.cli import describe
    from sink.request.templates import load_registry

    registry = load_registry()
    if args.action == "show" or args.id:
        if not args.id:
            raise StopRun("which template? `sink templates show ID` (ids: `sink templates`)")
        template = registry.get(args.id)
        if args.json:
            _print_json(describe.template_info(template))
        else:
            describe.print_template(template)
        return ExitCode.OK
    if args.json:
        _print_json([describe.template_summary(t) for t in registry])
    else:
        describe.print_templates(registry)
    return ExitCode.OK


def cmd_preview(args: argparse.Namespace) -> ExitCode:
    """``sink preview CONFIG``."""
    from sink.cli import describe
    from sink.destination import open_destination
    from sink.preview import preview

    destination = open_destination(args.config, base_url=args.base_url)
    source = _input_of(args, destination)
    limit = None if args.all else max(args.n, 0)
    out = sys.stdout.buffer
    report = preview(
        destination,
        source,
        input_format=args.input_format,
        limit=limit,
        out=out,
        style=args.format,
    )
    out.flush()
    describe.print_preview_report(destination, report, shown=limit)
    trouble = bool(report.rejected_count)
    if args.online:
        import asyncio

        from sink.online import preview_online
        from sink.read.secrets import resolve

        credentials = resolve(
            destination.config.connection, destination.folder, base_url=destination.base_url
        )
        online = asyncio.run(
            preview_online(destination, credentials, source, input_format=args.input_format)
        )
        describe.print_online_report(online)
        trouble = trouble or bool(online.counts.get("refuse") or online.counts.get("reject"))
    return ExitCode.REJECTED if trouble else ExitCode.OK


def cmd_run(args: argparse.Namespace) -> ExitCode:
    """``sink run CONFIG``."""
    if args.dry_run:
        args.n, args.all, args.format = 5, False, "json"
        return cmd_preview(args)
    from sink.cli import describe
    from sink.destination import open_destination
    from sink.outputs.progress import Progress
    from sink.read.secrets import resolve
    from sink.run import RunOptions, guard_destructive, run
    from sink.source.read import input_progress

    destination = open_destination(args.config, base_url=args.base_url)
    guard_destructive(destination, args.yes)
    source = _input_of(args, destination)
    credentials = resolve(
        destination.config.connection, destination.folder, base_url=destination.base_url
    )
    fmt = args.input_format or destination.config.input_format
    if args.engine is not None:
        summary = _run_engine(args, destination, credentials, source)
        describe.print_run_summary(destination, summary)
        return _run_exit(summary)
    total = input_progress(source, fmt)  # Parquet's row count, or a text file's bytes read
    with Progress(f"sink run {destination.template_id}", total=total) as progress:
        options = RunOptions(
            source,
            args.input_format,
            yes=args.yes,
            fresh=args.fresh,
            resend_unknown=args.resend_unknown,
            progress=progress,
        )
        summary = run(destination, credentials, options)
    describe.print_run_summary(destination, summary)
    return _run_exit(summary)


def _run_exit(summary: RunSummary) -> ExitCode:
    """A run's exit code."""
    if summary.interrupted is not None:
        return ExitCode.interrupted(summary.interrupted)
    if summary.stopped is not None:
        return ExitCode.STOPPED
    counts = summary.counts
    trouble = counts.rejected or counts.failed or counts.skipped or counts.secrets_lost
    empty = not (counts.records or counts.done_before or counts.duplicates)  # nothing to send
    return ExitCode.REJECTED if trouble or empty else ExitCode.OK


def _run_engine(
    args: argparse.Namespace, destination: Destination, credentials: Credentials, source: Any
) -> RunSummary:
    """``sink run CONFIG --engine ray``: the engine's extra is imported only here."""
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    try:
        from sink.engine.ray import run_ray
    except ImportError as exc:
        raise ConfigError(
            f"--engine ray needs Ray Data ({exc.name or exc}): pip install 'sink[ray]'"
        ) from None
    return run_ray(
        destination,
        credentials,
        source,
        args.input_format,
        workers=args.workers,
        yes=args.yes,
        fresh=args.fresh,
        resend_unknown=args.resend_unknown,
    )


def cmd_test(args: argparse.Namespace) -> ExitCode:
    """``sink test CONFIG``."""
    import asyncio

    from sink.cli import describe
    from sink.destination import open_destination
    from sink.pipeline import pick_record, test_request
    from sink.read.secrets import resolve
    from sink.run import guard_destructive, send_one_async

    destination = open_destination(args.config, base_url=args.base_url)
    guard_destructive(destination, args.yes)
    has_input = args.input is not None or destination.config.input is not None
    if has_input or args.body is None:
        source = _input_of(args, destination)
        record = pick_record(destination, source, args.input_format, args.record)
    else:
        record = None
    # A record goes through the run's look-ups and renderer; a hand-edited body is checked
    # against the spec here, then sent as it is.
    item = record if args.body is None and record is not None else None
    pair = test_request(destination, record, args.body) if item is None else None
    credentials = resolve(
        destination.config.connection, destination.folder, base_url=destination.base_url
    )
    sent = item if item is not None else pair
    assert sent is not None
    result = asyncio.run(send_one_async(destination, credentials, sent))
    describe.print_test_result(result)
    ok = result.outcome is not None and result.outcome.status.value == "ok"
    return ExitCode.OK if ok or result.done_before else ExitCode.REJECTED


def cmd_status(args: argparse.Namespace) -> ExitCode:
    """``sink status CONFIG``."""
    from sink.cli import describe
    from sink.destination import open_destination
    from sink.run import output_paths
    from sink.send.ledger import Ledger

    destination = open_destination(args.config)
    path = output_paths(destination).ledger
    if not path.exists():
        print(f"{args.config}: no ledger yet ({path}): nothing has been sent")
        return ExitCode.OK
    with Ledger(path) as ledger:
        counts = ledger.counts()
        attention = list(ledger.attention(limit=50))
    if args.json:
        rows = [entry.__dict__ for entry in attention]
        _print_json({"ledger": str(path), "counts": counts, "attention": rows})
    else:
        describe.print_status(path, counts, attention)
    return ExitCode.OK if not attention else ExitCode.REJECTED


def cmd_validate(args: argparse.Namespace) -> ExitCode:
    """``sink validate CONFIG``."""
    from sink.destination import open_destination
    from sink.validate import check

    destination = open_destination(args.config, base_url=args.base_url)
    found, warnings = check(destination)
    for problem in found:
        print(f"problem: {problem}", file=sys.stderr)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if found:
        return ExitCode.STOPPED
    template = destination.template_id
    print(f"{args.config}: ok ({template}, requests go to {destination.base_url})")
    return ExitCode.OK


def cmd_hubsim(args: argparse.Namespace) -> ExitCode:
    """``sink hubsim``."""
    from sink.hubsim import serve

    serve(
        host=args.host,
        port=args.port,
        seed=args.seed,
        latency_ms=args.latency_ms,
        faults=args.faults,
        jwt_ttl=args.jwt_ttl,
        http=args.http,
        control=not args.no_control,
    )
    return ExitCode.OK


def _input_of(args: argparse.Namespace, destination: Destination) -> str | Path:
    if args.input:
        return "-" if args.input == "-" else Path(args.input)
    configured = destination.path(destination.config.input)
    if configured is None:
        raise StopRun("no input: give --input FILE (or - for stdin), or input: in the config")
    return configured


def _print_json(value: Any) -> None:
    import orjson

    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
