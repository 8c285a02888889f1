"""sink: stream records into correct, safe calls to Docker Hub's management API.

The supported library API is what ``__all__`` names (pinned by ``tests/test_api.py``)::

    import sink

    destination = sink.open_destination("samples/repositories.yaml", base_url=url)
    credentials = sink.resolve_credentials(destination)
    report = sink.preview_destination(destination, "repositories.csv", out=sys.stdout.buffer)
    summary = sink.run_destination(destination, credentials, sink.RunOptions("repositories.csv"))

``run`` and ``preview`` are also the names of modules, hence ``run_destination`` and
``preview_destination``. Names are imported when first used, so ``import sink`` stays cheap
(the command line's start-up depends on it).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from typing import TextIO

    from sink.cli.main import ExitCode
    from sink.config import DestinationConfig, load_config, parse_config
    from sink.destination import Destination, open_destination
    from sink.engine.ray import HubDatasink
    from sink.errors import (
        ConfigError,
        CredentialsError,
        PlanDrift,
        RejectRecord,
        RetryLater,
        SinkError,
        StopRun,
    )
    from sink.hubsim import Simulator
    from sink.model import LedgerState, Outcome, Record, Rejected, Request, Status
    from sink.plan.apply import ApplySummary, apply_plan
    from sink.plan.make import Plan, plan_state
    from sink.plan.store import load_plan, save_plan
    from sink.preview import PreviewReport
    from sink.preview import preview as preview_destination
    from sink.read.credentials import Credentials
    from sink.read.hub import HubReader
    from sink.run import RunControl, RunOptions, RunSummary, send_one_async
    from sink.run import run as run_destination
    from sink.run import run_async as run_destination_async
    from sink.send.auth import HubAuth
    from sink.send.dispatch import Dispatcher, DispatchStats
    from sink.send.session import HubSession
    from sink.send.settings import Limits, Retry
    from sink.send.transport import make_client

_HOMES = {
    "ApplySummary": "sink.plan.apply",
    "Plan": "sink.plan.make",
    "PlanDrift": "sink.errors",
    "apply_plan": "sink.plan.apply",
    "load_plan": "sink.plan.store",
    "plan_state": "sink.plan.make",
    "save_plan": "sink.plan.store",
    "Credentials": "sink.read.credentials",
    "ConfigError": "sink.errors",
    "CredentialsError": "sink.errors",
    "Destination": "sink.destination",
    "DestinationConfig": "sink.config",
    "DispatchStats": "sink.send.dispatch",
    "ExitCode": "sink.cli.main",
    "Dispatcher": "sink.send.dispatch",
    "HubAuth": "sink.send.auth",
    "HubDatasink": "sink.engine.ray",
    "HubReader": "sink.read.hub",
    "HubSession": "sink.send.session",
    "Limits": "sink.send.settings",
    "Retry": "sink.send.settings",
    "LedgerState": "sink.model",
    "Outcome": "sink.model",
    "PreviewReport": "sink.preview",
    "Record": "sink.model",
    "RejectRecord": "sink.errors",
    "Rejected": "sink.model",
    "Request": "sink.model",
    "RetryLater": "sink.errors",
    "RunControl": "sink.run",
    "RunOptions": "sink.run",
    "RunSummary": "sink.run",
    "Simulator": "sink.hubsim",
    "SinkError": "sink.errors",
    "Status": "sink.model",
    "StopRun": "sink.errors",
    "load_config": "sink.config",
    "make_client": "sink.send.transport",
    "open_destination": "sink.destination",
    "parse_config": "sink.config",
    "preview_destination": "sink.preview:preview",
    "run_destination": "sink.run:run",
    "run_destination_async": "sink.run:run_async",
    "send_one_async": "sink.run",
}

__all__ = [
    "ApplySummary",
    "ConfigError",
    "Credentials",
    "CredentialsError",
    "Destination",
    "DestinationConfig",
    "DispatchStats",
    "Dispatcher",
    "ExitCode",
    "HubAuth",
    "HubDatasink",
    "HubReader",
    "HubSession",
    "LedgerState",
    "Limits",
    "Outcome",
    "Plan",
    "PlanDrift",
    "PreviewReport",
    "Record",
    "RejectRecord",
    "Rejected",
    "Request",
    "Retry",
    "RetryLater",
    "RunControl",
    "RunOptions",
    "RunSummary",
    "Simulator",
    "SinkError",
    "Status",
    "StopRun",
    "__version__",
    "apply_plan",
    "load_config",
    "load_plan",
    "make_client",
    "open_destination",
    "parse_config",
    "plan_state",
    "preview_destination",
    "resolve_credentials",
    "run_destination",
    "run_destination_async",
    "save_plan",
    "send_one_async",
]


def resolve_credentials(destination: Destination, *, stdin: TextIO | None = None) -> Credentials:
    """The credentials of ``destination``'s connection, read from where its config says (an
    environment variable, a file, standard input or a stored connection), bound to the base
    URL its requests go to."""
    from sink.read.secrets import resolve

    connection = destination.config.connection
    return resolve(connection, destination.folder, base_url=destination.base_url, stdin=stdin)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'sink' has no attribute {name!r}")
    module, _, attribute = home.partition(":")
    value = getattr(import_module(module), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)
