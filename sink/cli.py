"""The thin command line: parse, call the library, map errors to exit codes.

Exit codes: 0 all ok; 1 some records rejected or invalid; 2 stopped (bad config, input or
credentials); 130/143 interrupted by SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from sink import __version__
from sink.errors import SinkError, StopRun

if TYPE_CHECKING:
    from sink.pipeline import Destination

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_STOPPED = 2

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sink`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_STOPPED
    try:
        return handler(args)
    except StopRun as exc:
        print(f"sink: stopped: {exc}", file=sys.stderr)
        return EXIT_STOPPED
    except SinkError as exc:
        print(f"sink: {exc}", file=sys.stderr)
        return EXIT_STOPPED
    except BrokenPipeError:
        return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
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
        "templates", help="list the endpoint templates, or show one", description=(
            "List the Docker Hub endpoint templates, or show one with its fields, credential, "
            "scope, warnings and an example request."
        )
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
        "--format", choices=["json", "http"], default="json",
        help="json: one JSON line per request; http: HTTP messages (default json)",
    )
    preview.add_argument("--base-url", help=argparse.SUPPRESS)
    preview.set_defaults(handler=cmd_preview)
    return parser


def _input_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", "-i", help="records file, or - for stdin (default: config)")
    parser.add_argument(
        "--input-format", choices=["csv", "tsv", "jsonl", "parquet"],
        help="input format (default: from the file name, or sniffed on stdin)",
    )


def cmd_templates(args: argparse.Namespace) -> int:
    """``sink templates [list|show ID]``."""
    from sink import describe
    from sink.templates import load_registry

    registry = load_registry()
    if args.action == "show" or args.id:
        if not args.id:
            raise StopRun("which template? `sink templates show ID` (ids: `sink templates`)")
        template = registry.get(args.id)
        if args.json:
            _print_json(describe.template_info(template))
        else:
            describe.print_template(template)
        return EXIT_OK
    if args.json:
        _print_json([describe.template_summary(t) for t in registry])
    else:
        describe.print_templates(registry)
    return EXIT_OK


def cmd_preview(args: argparse.Namespace) -> int:
    """``sink preview CONFIG``."""
    from sink import describe, pipeline

    destination = pipeline.open_destination(args.config, base_url=args.base_url)
    source = _input_of(args, destination)
    limit = None if args.all else max(args.n, 0)
    out = sys.stdout.buffer
    report = pipeline.preview(
        destination,
        source,
        input_format=args.input_format,
        limit=limit,
        out=out,
        style=args.format,
    )
    out.flush()
    describe.print_preview_report(destination, report, shown=limit)
    return EXIT_REJECTED if report.rejected_count else EXIT_OK


def _input_of(args: argparse.Namespace, destination: Destination) -> str | Path | None:
    if args.input:
        return None if args.input == "-" else Path(args.input)
    configured = destination.path(destination.config.input)
    if configured is None:
        raise StopRun("no input: give --input FILE (or - for stdin), or input: in the config")
    return configured


def _print_json(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
