"""The read side of the command line: ``connection``, ``check`` and ``export``.

:func:`add_commands` registers the subcommands on ``sink``'s parser. Handlers take the parsed
arguments and return the exit code; errors are :class:`~sink.errors.SinkError` subclasses that
``sink.cli.main.main`` prints. Secrets are read from flags, standard input or a hidden prompt, and
never printed.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from sink.cli.main import ExitCode
from sink.errors import ConfigError, StopRun
from sink.origin import DEFAULT_BASE_URL

if TYPE_CHECKING:
    from sink.read.connections import Connection, ConnectionKind, ConnectionStore

# The store (``sink.read.connections``: cryptography, the credentials, the config models) and the
# export's client are imported by the functions that use them, so that ``sink --help`` and
# the other commands do not load them; the parsers of ``connection`` and ``export`` get their
# arguments (which list the store's kinds and the export's choices) only when they run.

Handler = Callable[[argparse.Namespace], ExitCode]


def _store() -> ConnectionStore:
    """The connection store."""
    from sink.read.connections import ConnectionStore

    return ConnectionStore()


@dataclass
class Prompter:
    """Asks for missing values on a terminal (prompts on stderr, secrets hidden).

    ``interactive`` ``None`` means: when standard input and standard error are terminals.
    """

    interactive: bool | None = None
    stdin: IO[str] = field(default_factory=lambda: sys.stdin)
    err: IO[str] = field(default_factory=lambda: sys.stderr)
    ask_secret: Callable[[str], str] = getpass.getpass

    def __post_init__(self) -> None:
        if self.interactive is None:
            try:
                self.interactive = self.stdin.isatty() and self.err.isatty()
            except (AttributeError, ValueError, OSError):
                self.interactive = False

    def say(self, text: str) -> None:
        """One line to the person at the terminal."""
        self.err.write(text + "\n")
        self.err.flush()

    def ask(self, label: str) -> str:
        """A line typed by the user (without its newline); EOF stops."""
        self.err.write(label)
        self.err.flush()
        line = self.stdin.readline()
        if not line:
            raise StopRun("no answer (end of input)")
        return line.rstrip("\r\n")

    def secret(self, label: str) -> str:
        """A secret typed without echo."""
        try:
            return self.ask_secret(label)
        except EOFError as exc:
            raise StopRun("no answer (end of input)") from exc

    def read_stdin_secret(self) -> str:
        """The first line of standard input (``--token-stdin``)."""
        return self.stdin.readline().strip()


def _ask_valid(
    prompter: Prompter,
    kind: ConnectionKind,
    which: Any,
    *,
    keep: str | None = None,
    default: str | None = None,
    attempts: int = 5,
) -> str | None:
    """Ask until the value is valid; ``keep``: Enter keeps the stored value (returns None)."""
    from sink.read.connections import field_label, field_problem

    label = field_label(kind, which)
    for _ in range(attempts):
        if keep is not None:
            suffix = " (Enter keeps the stored one)" if which == "secret" else f" [{keep}]"
        else:
            suffix = f" [{default}]" if default else ""
        prompt = f"{label}{suffix}: "
        value = prompter.secret(prompt) if which == "secret" else prompter.ask(prompt)
        if keep is not None and not value.strip():
            return None
        if default is not None and value == "":
            return default
        problem = field_problem(kind, which, value)
        if problem is None:
            return value.strip()
        prompter.say(problem)
    raise StopRun(f"{label}: no valid value after {attempts} attempts")


def _read_secret(args: argparse.Namespace, prompter: Prompter) -> str | None:
    if getattr(args, "token_stdin", False) or getattr(args, "password_stdin", False):
        return prompter.read_stdin_secret()
    token: str | None = getattr(args, "token", None)
    return token


def _identifier_flag(args: argparse.Namespace, kind: ConnectionKind) -> str | None:
    username, org = args.username, args.org
    if username is not None and org is not None:
        raise ConfigError("give --username or --org, not both")
    if kind == "organization" and username is not None:
        raise ConfigError("an organization connection takes --org (the organization name)")
    if kind != "organization" and org is not None:
        raise ConfigError(
            f"a {kind} connection takes --username; for an organization access token use "
            "--kind organization"
        )
    value: str | None = org if kind == "organization" else username
    return value


def add_connection(
    args: argparse.Namespace,
    prompter: Prompter,
    store: ConnectionStore,
    verify: Callable[[Connection], int] | None,
) -> tuple[Connection, int | None]:
    """``sink connection add``: the stored connection and its repository count (if verified)."""
    from sink.read.connections import KINDS, check_kind, new_connection

    if args.kind is None and args.org is not None:
        args.kind = "organization"
    if args.kind is None and prompter.interactive:
        answer = prompter.ask(f"Connection kind ({'/'.join(KINDS)}) [personal]: ").strip()
        args.kind = answer or "personal"
    kind = check_kind(args.kind or "personal")
    identifier = _identifier_flag(args, kind)
    secret = _read_secret(args, prompter)
    name, base_url = args.instance_name, args.base_url
    if prompter.interactive:
        if name is None:
            name = _ask_valid(prompter, kind, "name")
        if identifier is None:
            identifier = _ask_valid(prompter, kind, "identifier")
        if secret is None:
            secret = _ask_valid(prompter, kind, "secret")
        if base_url is None:
            base_url = _ask_valid(prompter, kind, "base_url", default=DEFAULT_BASE_URL)
    connection = new_connection(
        kind, name=name, identifier=identifier, secret=secret, base_url=base_url
    )
    if connection.name in store.names():
        store.add(connection)  # raises: the name is taken (before any network call)
    count = verify(connection) if verify is not None else None
    store.add(connection)
    return connection, count


def edit_connection(
    args: argparse.Namespace,
    prompter: Prompter,
    store: ConnectionStore,
    verify: Callable[[Connection], int] | None,
) -> tuple[Connection, int | None]:
    """``sink connection edit NAME``: fields left empty keep their stored values."""
    from sink.read.connections import Connection, check_kind, edited_connection

    info = store.info(args.name)
    secret = _read_secret(args, prompter)
    try:
        stored = store.get(args.name)
    except ConfigError:
        if not secret:
            raise
        stored = Connection(info.name, info.kind, info.identifier, "", info.base_url)
    kind = check_kind(args.kind) if args.kind else stored.kind
    identifier = _identifier_flag(args, kind)
    name, base_url = args.instance_name, args.base_url
    if prompter.interactive:
        same = kind == stored.kind
        if name is None:
            name = _ask_valid(prompter, kind, "name", keep=stored.name)
        if identifier is None:
            identifier = _ask_valid(
                prompter, kind, "identifier", keep=stored.identifier if same else None
            )
        if secret is None:
            secret = _ask_valid(prompter, kind, "secret", keep="" if same else None)
        if base_url is None:
            base_url = _ask_valid(prompter, kind, "base_url", keep=stored.base_url)
    connection = edited_connection(
        stored, kind=kind, name=name, identifier=identifier, secret=secret, base_url=base_url
    )
    changed = (connection.kind, connection.identifier, connection.secret, connection.base_url) != (
        stored.kind,
        stored.identifier,
        stored.secret,
        stored.base_url,
    )
    count = verify(connection) if verify is not None and changed else None
    store.replace(args.name, connection)
    return connection, count


def _verifier(args: argparse.Namespace) -> Callable[[Connection], int] | None:
    if args.no_verify:
        return None
    from sink.read.checks import verify

    return lambda connection: verify(connection.credentials())


def _describe(connection: Connection, count: int | None) -> str:
    from sink.read.connections import identifier_label

    where = f"{connection.kind}, {identifier_label(connection.kind)} {connection.identifier}, "
    where += connection.base_url
    checked = (
        f"; verified: {count} repositories in namespace {connection.identifier}"
        if count is not None
        else "; not verified"
    )
    return f"({where}{checked})"


def _usage_of(parser: argparse.ArgumentParser) -> Handler:
    """A handler that prints ``parser``'s help (its actions) and exits 2: no action was given."""

    def usage(args: argparse.Namespace) -> ExitCode:
        parser.print_help(sys.stderr)
        return ExitCode.STOPPED

    return usage


def cmd_connection_add(args: argparse.Namespace) -> ExitCode:
    """``sink connection add``."""
    connection, count = add_connection(args, Prompter(), _store(), _verifier(args))
    print(f"Connection {connection.name!r} added {_describe(connection, count)}.")
    return ExitCode.OK


def cmd_connection_edit(args: argparse.Namespace) -> ExitCode:
    """``sink connection edit NAME``."""
    connection, count = edit_connection(args, Prompter(), _store(), _verifier(args))
    print(f"Connection {connection.name!r} saved {_describe(connection, count)}.")
    return ExitCode.OK


def show_lines(connection: Connection, created: str = "", updated: str = "") -> list[str]:
    """What ``connection show`` prints: the token as bullets plus its last 4 characters."""
    from sink.read.connections import identifier_label, secret_label

    rows = [
        ("Instance Name", connection.name),
        ("Kind", connection.kind),
        (identifier_label(connection.kind), connection.identifier),
        (secret_label(connection.kind), connection.masked_secret()),
        ("Base URL", connection.base_url),
        ("Created", created),
        ("Updated", updated),
    ]
    width = max(len(label) for label, _ in rows) + 1
    return [f"{label + ':':<{width}} {value}" for label, value in rows if value]


def cmd_connection_show(args: argparse.Namespace) -> ExitCode:
    """``sink connection show NAME``."""
    store = _store()
    info = store.info(args.name)
    connection = store.get(args.name)
    if args.json:
        _print_json(
            {
                "name": connection.name,
                "kind": connection.kind,
                "identifier": connection.identifier,
                "base_url": connection.base_url,
                "secret": connection.masked_secret(),
                "created_at": info.created_at,
                "updated_at": info.updated_at,
            }
        )
    else:
        print("\n".join(show_lines(connection, info.created_at, info.updated_at)))
    return ExitCode.OK


def cmd_connection_list(args: argparse.Namespace) -> ExitCode:
    """``sink connection list``."""
    infos = _store().entries()
    if args.json:
        _print_json(
            [
                {"name": i.name, "kind": i.kind, "identifier": i.identifier, "base_url": i.base_url}
                for i in infos
            ]
        )
        return ExitCode.OK
    if not infos:
        print("No stored connections; add one with `sink connection add`.")
        return ExitCode.OK
    rows = [("NAME", "KIND", "USERNAME / ORGANIZATION", "BASE URL")]
    rows += [(i.name, i.kind, i.identifier, i.base_url) for i in infos]
    widths = [max(len(row[c]) for row in rows) for c in range(3)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + "  "
            + row[3]
        )
    return ExitCode.OK


def cmd_connection_remove(args: argparse.Namespace) -> ExitCode:
    """``sink connection remove NAME``."""
    _store().remove(args.name)
    print(f"Connection {args.name!r} removed.")
    return ExitCode.OK


def cmd_check(args: argparse.Namespace) -> ExitCode:
    """``sink check NAME``: exit 1 when any check fails."""
    from sink.read.checks import all_passed, format_results, run_checks

    connection = _store().get(args.name)
    results = run_checks(connection.credentials(args.base_url))
    passed = all_passed(results)
    if args.json:
        _print_json(
            {
                "connection": connection.name,
                "kind": connection.kind,
                "ok": passed,
                "checks": [r.as_dict() for r in results],
            }
        )
    else:
        print(
            f"Checking connection {connection.name!r} ({connection.kind}, "
            f"{connection.identifier}, {args.base_url or connection.base_url})"
        )
        print(format_results(results))
    return ExitCode.OK if passed else ExitCode.REJECTED


def _export_target(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The output file and the end date, from ``--to`` (either), ``--output`` and ``--until``."""
    from sink.read.export import _EXTENSIONS, is_date

    output, until = args.output, args.until
    for value in args.to or []:
        if value == "-" or any(value.lower().endswith(ext) for ext in _EXTENSIONS):
            output = value
        elif is_date(value):
            until = value
        else:
            raise ConfigError(
                f"--to {value!r}: give an output file ending in .csv, .jsonl or .parquet, "
                "or (for the audit log) a date such as 2025-01-31"
            )
    return output, until


def _export_connection(args: argparse.Namespace) -> Connection:
    store = _store()
    if args.connection:
        return store.get(args.connection)
    names = store.names()
    if len(names) == 1:
        return store.get(names[0])
    listed = ", ".join(names) if names else "none; add one with `sink connection add`"
    raise ConfigError(f"which connection? give --connection NAME (stored: {listed})")


def cmd_export(args: argparse.Namespace) -> ExitCode:
    """``sink export WHAT``."""
    import asyncio

    from sink.read.export import ExportOptions, counted, export_async, open_writer

    output, until = _export_target(args)
    connection = _export_connection(args)
    options = ExportOptions(
        namespace=args.namespace,
        repository=args.repository,
        tag=args.tag,
        team=args.team,
        name=args.name,
        ordering=args.ordering,
        page_size=args.page_size,
        search=args.search,
        role=args.role,
        type=args.type,
        invitees=args.invitees,
        teams=args.teams,
        since=args.since,
        until=until,
        action=args.action,
        actor=args.actor,
    )
    credentials = connection.credentials(args.base_url)
    with open_writer(output, args.format) as writer:
        count = asyncio.run(export_async(credentials, args.what, options, writer))
    where = output if output not in (None, "-") else "standard output"
    print(f"exported {counted(args.what, count)} to {where}", file=sys.stderr)
    if writer.dropped:
        print(
            f"warning: fields first seen after the first 1,000 records were left out: "
            f"{', '.join(sorted(writer.dropped))} (JSON Lines keeps every field)",
            file=sys.stderr,
        )
    return ExitCode.OK


def _print_json(value: Any) -> None:
    import orjson

    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


# -- the parser -----------------------------------------------------------------------------


def _connection_fields(parser: argparse.ArgumentParser, *, editing: bool) -> None:
    from sink.read.connections import KINDS

    keep = " (empty: keep the stored one)" if editing else ""
    parser.add_argument(
        "--kind",
        choices=KINDS,
        help="personal (username + PAT), organization (organization + OAT) or "
        "password (username + password)" + ("" if editing else "; default personal"),
    )
    parser.add_argument("--instance-name", help="the name configs and commands use" + keep)
    parser.add_argument("--username", help="Docker ID (personal, password)" + keep)
    parser.add_argument("--org", help="organization name (organization)" + keep)
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument(
        "--token",
        help="the access token (visible to other local users: "
        "prefer --token-stdin or the prompt)" + keep,
    )
    secret.add_argument(
        "--token-stdin",
        action="store_true",
        help="read the access token from the first line of standard input",
    )
    secret.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    parser.add_argument("--base-url", help=f"Docker Hub API (default {DEFAULT_BASE_URL})" + keep)
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="store without listing the namespace's repositories first",
    )


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``connection``, ``check`` and ``export`` on ``sink``'s subcommands.

    ``commands`` makes :class:`~sink.cli.main.CommandParser` parsers: the options of
    ``connection add``, ``connection edit`` and ``export`` come from the store's and the export's
    modules, so they are added (and those modules imported) only when one of these commands is
    parsed.
    """
    connection = commands.add_parser(
        "connection",
        help="store Docker Hub connections (secrets encrypted at rest)",
        description=(
            "Store a Docker Hub connection once and refer to it by instance name "
            "(configs: `connection: {name: NAME}`). Secrets are encrypted at rest and never "
            "shown again. The store is in $SINK_HOME, else $XDG_CONFIG_HOME/sink, else "
            "~/.config/sink. The key is kept apart from the store, so that whoever can read "
            "the store's folder cannot decrypt it: in the OS keyring when the keyring package "
            "has a usable backend (SINK_KEYRING=off: never), else in a key file outside the "
            "store's folder: $SINK_KEY_FILE, else $XDG_STATE_HOME/sink/connections.key, else "
            "(with $SINK_HOME set) $SINK_HOME-key/connections.key, else "
            "~/.local/state/sink/connections.key; mode 0600 in a folder created 0700. A key "
            "file that group or others can read, or that another user owns, is refused. A key "
            "left in the store's folder by an earlier version is moved out on first use."
        ),
    )
    actions = connection.add_subparsers(title="actions", metavar="ACTION")
    connection.set_defaults(handler=_usage_of(connection))  # `sink connection` alone
    add = actions.add_parser(
        "add",
        help="add a connection (prompts for what is missing)",
        description="Add a connection; values missing from the flags are "
        "asked on the terminal (the secret without echo). The "
        "connection is verified by listing its namespace's "
        "repositories.",
        arguments=lambda parser: _connection_fields(parser, editing=False),
    )
    add.set_defaults(handler=cmd_connection_add)

    edit = actions.add_parser(
        "edit",
        help="change a connection (empty fields keep their value)",
        description="Change a stored connection. A field left empty keeps "
        "its stored value, so a connection can be renamed "
        "without entering its token again.",
        arguments=_edit_arguments,
    )
    edit.set_defaults(handler=cmd_connection_edit)

    show = actions.add_parser("show", help="show a connection (the token masked)")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print JSON for machines")
    show.set_defaults(handler=cmd_connection_show)

    listing = actions.add_parser("list", help="list the stored connections")
    listing.add_argument("--json", action="store_true", help="print JSON for machines")
    listing.set_defaults(handler=cmd_connection_list)

    remove = actions.add_parser("remove", help="forget a connection")
    remove.add_argument("name")
    remove.set_defaults(handler=cmd_connection_remove)

    check = commands.add_parser(
        "check",
        help="run a stored connection's health checks",
        description="Run the health checks of a stored connection's kind and print each with "
        "its result. Exits 1 when any check fails.",
    )
    check.add_argument("name", help="the connection's instance name")
    check.add_argument("--json", action="store_true", help="print JSON for machines")
    check.add_argument("--base-url", help="check against this Docker Hub instead (a simulator)")
    check.set_defaults(handler=cmd_check)

    export = commands.add_parser(
        "export",
        help="export Hub's data (repositories, members, audit log, ...) as records",
        arguments=_export_arguments,
    )
    export.set_defaults(handler=cmd_export)


def _edit_arguments(edit: argparse.ArgumentParser) -> None:
    edit.add_argument("name", help="the connection's instance name")
    _connection_fields(edit, editing=True)


def _export_arguments(export: argparse.ArgumentParser) -> None:
    from sink.read.export import EXPORTS, FORMATS, MEMBER_TYPES, ORDERINGS, ROLES

    listed = "; ".join(f"{name}: {text}" for name, (_, text) in EXPORTS.items())
    export.description = (
        "Stream Docker Hub's own data as records: JSON Lines to standard output by default, "
        f"or --to FILE.csv|.jsonl|.parquet. WHAT: {listed}."
    )
    export.add_argument("what", choices=list(EXPORTS), metavar="WHAT")
    export.add_argument("--connection", "-c", help="stored connection (default: the only one)")
    export.add_argument(
        "--to",
        action="append",
        metavar="FILE|DATE",
        help="output file (.csv, .jsonl, .parquet; - for stdout); for audit-log "
        "a date is the end of the range",
    )
    export.add_argument("--output", "-o", metavar="FILE", help="output file (same as --to FILE)")
    export.add_argument(
        "--format",
        choices=FORMATS,
        help="output format (default: from the file name; JSON Lines on stdout)",
    )
    export.add_argument("--base-url", help="read from this Docker Hub instead (a simulator)")
    export.add_argument(
        "--namespace",
        "--org",
        dest="namespace",
        help="namespace, organization or audit-log account (default: the "
        "connection's username or organization)",
    )
    export.add_argument("--repository", help="repository NAME or NAMESPACE/NAME")
    export.add_argument("--tag", help="tag name (tag)")
    export.add_argument("--team", help="team name (team-members)")
    export.add_argument("--name", help="repositories: name filter; audit-log: object name")
    export.add_argument("--ordering", choices=ORDERINGS, help="repositories' order")
    export.add_argument(
        "--page-size",
        type=int,
        metavar="N",
        help="items per page, 1-100 (default 10; audit-log 25)",
    )
    export.add_argument("--search", help="members, teams, team-members: search term")
    export.add_argument("--role", choices=ROLES, help="members: role filter")
    export.add_argument("--type", choices=MEMBER_TYPES, help="members: member type filter")
    export.add_argument("--invitees", action="store_true", help="members: include invitees")
    export.add_argument(
        "--teams", action="store_true", help="members: add each member's teams (the access review)"
    )
    export.add_argument(
        "--from",
        "--since",
        dest="since",
        metavar="DATE",
        help="audit-log: from this date or date-time",
    )
    export.add_argument("--until", metavar="DATE", help="audit-log: up to this date (inclusive)")
    export.add_argument("--action", help="audit-log: action, e.g. repo.push, team.member.add")
    export.add_argument("--actor", help="audit-log: who acted")
