"""Human-readable output of the CLI: template listings and details, preview summaries."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sink.errors import SinkError

if TYPE_CHECKING:
    from sink.destination import Destination
    from sink.online import OnlineReport
    from sink.preview import PreviewReport
    from sink.request.templates import EndpointTemplate, Registry
    from sink.run import RunSummary, TestResult
    from sink.send.ledger import Entry

# Docker's spec (``schema``), the renderer and the redactor are imported by the functions that
# use them: ``sink templates`` lists the registry without loading the spec.

CREDENTIAL_NAMES = {
    "pat": "personal access token",
    "oat": "organization access token",
    "password": "password",
}


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 160  # piped output: do not squeeze tables to 80 columns
    return Console(file=stream, highlight=False, soft_wrap=True, width=width)


def plural(count: int, one: str, many: str | None = None) -> str:
    """``count`` and its noun: ``1 request``, ``2 requests`` (``many`` when not ``one + s``)."""
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def printable(text: str) -> str:
    """Text from data (a record key, Hub's message) fit to print with rich: its markup escaped,
    and every character that is not printable (ESC and the other controls, bidirectional
    overrides, line separators) written as its escape, so nothing reaches the terminal raw."""
    if not text.isprintable():
        text = "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
    return escape(text)


def template_summary(template: EndpointTemplate) -> dict[str, Any]:
    """The short form of a template, as in ``sink templates --json``."""
    return {
        "id": template.id,
        "title": template.title,
        "method": template.method,
        "path": template.path,
        "destructive": template.destructive,
        "idempotent": template.idempotent,
        "credentials": list(template.credentials),
    }


def field_table(template: EndpointTemplate) -> list[dict[str, Any]]:
    """Every record and settings value the template reads, and whether it must be given."""
    required = _required_body_fields(template)
    in_path = set(template.params.values())
    rows = []
    sources = (("record", template.record_fields), ("settings", template.settings_fields))
    for source, names in sources:
        for name in names:
            reference = f"{{{{ {source}.{name} }}}}"
            needed = reference in in_path or any(
                isinstance(template.body, dict) and template.body.get(key) == reference
                for key in required
            )
            rows.append({"from": source, "name": name, "required": needed})
    return rows


def _required_body_fields(template: EndpointTemplate) -> list[str]:
    from sink.request import schema

    try:
        operation = schema.find_operation(template.operation)
    except SinkError:
        return []
    body = operation.body_schema or {}
    return list(body.get("required", []))


def example_request(template: EndpointTemplate) -> bytes | None:
    """The template's example record rendered as an HTTP message, or None if it cannot be."""
    from sink.model import Record
    from sink.origin import DEFAULT_BASE_URL
    from sink.preview import format_http
    from sink.request.render import for_template

    try:
        renderer = for_template(template, template.example_settings, DEFAULT_BASE_URL)
        return format_http(renderer.render(Record(0, dict(template.example))))
    except SinkError:
        return None


def template_info(template: EndpointTemplate) -> dict[str, Any]:
    """Everything about one template, as in ``sink templates show ID --json``."""
    info = template.model_dump(mode="json")
    info["fields"] = field_table(template)
    example = example_request(template)
    info["example_request"] = example.decode() if example else None
    return info


def print_templates(registry: Registry) -> None:
    """The registry as a table."""
    table = Table(title=f"{len(registry)} Docker Hub endpoint templates", title_justify="left")
    table.add_column("id", style="bold")
    table.add_column("method")
    table.add_column("path")
    table.add_column("credentials")
    table.add_column("destructive")
    for template in registry:
        table.add_row(
            template.id,
            template.method,
            template.path,
            ", ".join(template.credentials),
            "[red]yes[/red]" if template.destructive else "",
        )
    console = _console()
    console.print(table)
    console.print("Details: sink templates show ID")


def print_template(template: EndpointTemplate) -> None:
    """One template in full."""
    console = _console()
    console.print(f"[bold]{template.id}[/bold]: {template.title}")
    if template.description:
        console.print(template.description.strip())
    console.print(f"\nSpec operation: {template.operation}")
    console.print(f"Request:        {template.method} {template.path}")
    kinds = ", ".join(CREDENTIAL_NAMES[kind] for kind in template.credentials)
    console.print(f"Credentials:    {kinds}")
    console.print(f"Scope:          {template.scope}")
    guard = "yes: a run needs --yes or allow_destructive" if template.destructive else "no"
    console.print(f"Destructive:    {guard}")
    if template.idempotent:
        console.print("Idempotent:     yes: an unknown outcome is sent again without a look-up")
    if template.secrets:
        console.print(f"Secrets:        {', '.join(template.secrets)} (written only to the vault)")
    if template.exists is not None:
        lookup = template.exists
        how = f"{lookup.method} {lookup.path}"
        if lookup.list:
            how += f", item in {lookup.list!r} matching {', '.join(lookup.match)}"
        console.print(f"Effect look-up: {how} ({lookup.effect} means done)")
    table = Table(title="Fields", title_justify="left")
    for column in ("from", "name", "required"):
        table.add_column(column)
    for row in field_table(template):
        table.add_row(row["from"], row["name"], "yes" if row["required"] else "")
    console.print(table)
    for warning in template.warnings:
        console.print(f"[yellow]Warning:[/yellow] {warning}")
    example = example_request(template)
    if example:
        console.print("\nExample request:")
        console.print(example.decode(), markup=False)


def print_preview_report(
    destination: Destination, report: PreviewReport, *, shown: int | None
) -> None:
    """The summary after a preview: invalid records, counts, destructive warning (stderr)."""
    from sink.guard.resolve import PREVIEW_ID

    console = _console(stderr=True)
    for rejected in report.rejected:
        where = f"record {rejected.index + 1}"
        console.print(f"[red]invalid[/red] {where}: {printable(rejected.error)}")
    if report.rejected_count > len(report.rejected):
        more = report.rejected_count - len(report.rejected)
        console.print(f"... and {plural(more, 'more invalid record')}")
    printed = report.requests if shown is None else min(shown, report.requests)
    console.print(
        f"{plural(report.records, 'record')}: {plural(report.requests, 'request')} "
        f"({printed:,} printed), {report.rejected_count:,} invalid. Nothing was sent."
    )
    if not (report.records or report.rejected_count):
        console.print("[bold yellow]Warning:[/bold yellow] the input has no records.")
    if report.refused:
        console.print(
            f"[red]{plural(report.refused, 'record')} would be refused by the run's "
            "guard[/red] (the policy, the owners team); they are among the invalid above."
        )
    for index, why in report.undecided:
        console.print(
            f"[yellow]decided at send time[/yellow] record {index + 1}: {printable(why)}",
            markup=True,
        )
    if report.undecided_count > len(report.undecided):
        more = report.undecided_count - len(report.undecided)
        console.print(f"... and {plural(more, 'more request')} decided at send time")
    if report.deferred:
        console.print(
            f"Note: {plural(report.deferred, 'record')} "
            f"{'names' if report.deferred == 1 else 'name'} a team whose numeric id the run "
            f"looks up from Docker Hub; the requests above show it as {PREVIEW_ID}."
        )
    if destination.destructive:
        what = destination.template.title if destination.template else "DELETE requests"
        console.print(
            f"[bold red]Destructive:[/bold red] {plural(report.requests, 'request')} would run "
            f"'{what}'. A run needs --yes or allow_destructive: true."
        )


def print_online_report(report: OnlineReport) -> None:
    """What a run would do with each record, after the read-only steps on Docker Hub."""
    console = _console(stderr=True)
    labels = {"send": "would send", "skip": "already in place", "refuse": "refused"}
    for verdict in report.verdicts:
        if verdict.action == "send" and not verdict.why:
            continue
        label = labels.get(verdict.action, "invalid")
        why = f": {printable(verdict.why)}" if verdict.why else ""
        console.print(f"[bold]{label}[/bold] record {verdict.position + 1}{why}")
    parts = [f"{count} {labels.get(action, 'invalid')}" for action, count in report.counts.items()]
    console.print(f"Online (read-only, nothing written): {', '.join(parts) or 'no records'}.")


def print_run_summary(destination: Destination, summary: RunSummary) -> None:
    """The summary at the end of a run, with where every output is (stderr).

    A run that stopped (an error, a signal) says why first, then only the counts that matter:
    records, ok and those that are not zero. It is printed with SIGINT ignored, so a Ctrl-C
    meanwhile never cuts it short into a traceback."""
    from sink.outputs.progress import no_interrupts

    with no_interrupts():
        _print_run_summary(destination, summary)


def _print_run_summary(destination: Destination, summary: RunSummary) -> None:
    console = _console(stderr=True)
    counts = summary.counts
    stats = summary.stats
    ended = summary.stopped is not None or summary.interrupted is not None
    if summary.stopped:
        console.print(f"[bold red]Stopped:[/bold red] {printable(summary.stopped)}")
    if summary.interrupted is not None:
        console.print(_interruption(summary))
    title = f"sink run {destination.template_id}" + (" (stopped)" if ended else "")
    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("", justify="right")
    rate = counts.requests / summary.seconds if summary.seconds > 0 else 0.0
    rows = [
        ("records", counts.records),
        ("done by an earlier run (skipped)", counts.done_before),
        ("duplicates in the input (skipped)", counts.duplicates),
        ("ok", counts.ok),
        ("rejected", counts.rejected),
        ("failed", counts.failed),
        ("secrets lost (revoke them)", len(counts.secrets_lost)),
        ("not sent (stopped)", counts.skipped),
        ("in doubt (sent, outcome unknown)", summary.in_doubt),
        ("requests", counts.requests),
        ("already there (looked up)", counts.already_existed + counts.recovered),
        ("already absent (nothing to delete)", counts.already_absent),
    ]
    if stats is not None:
        rows += [("retries", stats.retries), ("429 answers", stats.rate_limited)]
    for name, value in rows:
        # A run that stopped shows what is not zero; in doubt is only ever shown when not.
        if value or name in ("records", "ok") or not (ended or name.startswith("in doubt")):
            table.add_row(name, f"{value:,}")
    table.add_row("seconds", f"{summary.seconds:,.1f}")
    if not ended:
        table.add_row("requests/s", f"{rate:,.1f}")
    console.print(table)
    if not (counts.records or counts.done_before or counts.duplicates or ended):
        console.print(
            "[bold yellow]Warning:[/bold yellow] the input has no records: nothing was sent."
        )
    outputs = summary.outputs
    console.print(f"Sent to:   {destination.base_url}")
    console.print(f"Responses: {outputs.responses or _shown_url(outputs.webhook or '')}")
    if counts.rejected or counts.failed:
        console.print(f"Rejects:   {outputs.rejects} (copy, fix and replay them with --input)")
    if outputs.vault is not None:
        console.print(f"Vault:     {outputs.vault} ({plural(counts.secrets, 'secret')}, mode 0600)")
    console.print(f"Ledger:    {outputs.ledger} (`sink status` shows it)")
    console.print(f"Audit:     {outputs.audit}")
    for key in counts.secrets_lost:
        console.print(
            f"[bold red]Secret lost:[/bold red] record {printable(key)}: the token was created but "
            "its secret never reached the vault. Revoke it and create it again."
        )
    plan = summary.revoke
    if plan is not None:
        console.print(
            f"Revoke:    {plural(plan.tokens, 'token')} listed in {plan.records}; check them, then "
            f"run: {printable(plan.command)}"
        )
        for key in plan.not_found:
            console.print(
                f"[yellow]Not found on Docker Hub:[/yellow] the token of record {printable(key)}; "
                "look for it by hand (`sink export` or Hub's settings) and delete it."
            )
    for note in summary.notes:
        console.print(f"[yellow]Note:[/yellow] {printable(note)}")


def _interruption(summary: RunSummary) -> str:
    """What a signal did to the run, as it happened."""
    doubt = summary.in_doubt
    if summary.cancelled:
        text = (
            "[bold yellow]Interrupted twice:[/bold yellow] stopped at once, without waiting for "
            "the requests in flight; outputs flushed. "
        )
    else:
        text = "[yellow]Interrupted:[/yellow] intake stopped, "
        text += "requests in flight finished, " if not doubt else ""
        text += "outputs flushed. "
    if doubt:
        text += (
            f"{plural(doubt, 'record')} in doubt (sent, outcome unknown): `sink status` lists "
            "them and the next run looks each one up before sending it again."
        )
    elif summary.cancelled:
        text += "Nothing is in doubt: no request was on its way to Docker Hub."
    if summary.counts.skipped:
        text += f" {plural(summary.counts.skipped, 'record')} not sent: the next run sends them."
    return text.rstrip()


def print_test_result(result: TestResult) -> None:
    """The request sent (redacted) and the response (secrets redacted)."""
    import orjson

    from sink.outputs.redact import Redactor
    from sink.preview import format_http

    console = _console()
    if result.done_before:
        console.print(
            "Not sent: the ledger says an earlier run or test already did it "
            "(`sink status` shows it; --record N picks another)."
        )
        return
    if result.rejected is not None:
        console.print(f"Not sent: {escape(result.rejected.error)}", style="bold red")
        return
    assert result.request is not None and result.outcome is not None
    console.print("Request:", style="bold")
    console.print(format_http(result.request).decode().rstrip(), markup=False)
    outcome = result.outcome
    console.print(f"\nResponse: {outcome.http_status} ({outcome.status.value})", style="bold")
    scrub = Redactor()  # the last line of defence: anything token-shaped is hidden
    if outcome.body is not None:
        text = orjson.dumps(outcome.body, option=orjson.OPT_INDENT_2, default=str).decode()
        console.print(scrub(text), markup=False)
    if outcome.error:
        console.print(f"Error: {scrub(outcome.error)}", markup=False)
    if result.vault is not None:
        console.print(f"The created secret was written to the vault: {result.vault}")


def print_status(path: Path, counts: dict[str, int], attention: list[Entry]) -> None:
    """The ledger's counts and the records that need attention."""
    console = _console()
    total = sum(counts.values())
    console.print(f"Ledger {printable(str(path))}: {plural(total, 'record')}")
    labels = {
        "done": "done",
        "rejected": "rejected (refused; fix and run again)",
        "failed": "failed (looked up, then retried on the next run)",
        "sent": "in doubt (sent, outcome unknown: the next run looks them up; those it cannot "
        "look up wait for you: check on Hub, then `sink run --resend-unknown`)",
    }
    for state, label in labels.items():
        console.print(f"  {counts.get(state, 0):>9,}  {label}")
    if attention:
        table = Table(title="Needs attention", title_justify="left")
        for column in ("record", "key", "state", "HTTP", "note"):
            table.add_column(column)
        for entry in attention:
            position = "" if entry.position is None else str(entry.position + 1)
            table.add_row(
                position,
                printable(entry.key),
                entry.state,
                str(entry.http_status or ""),
                printable(entry.note or ""),
            )
        console.print(table)


def _shown_url(url: str) -> str:
    """A URL fit to print: no user info, query or fragment (a webhook's often hold a key)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
