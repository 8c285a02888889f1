"""The public library API: exactly what ``sink.__all__`` names, usable from Python."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import sink
from sink.hubsim import Simulator
from tests.seed import OAT

PUBLIC = [
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


def test_all_is_pinned() -> None:
    assert sorted(sink.__all__) == PUBLIC
    assert dir(sink) == sink.__all__


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(sink, name) is not None


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        sink.no_such_thing  # noqa: B018


def test_importing_sink_loads_nothing_heavy() -> None:
    heavy = "('httpx', 'pydantic', 'pyarrow', 'sink.')"
    code = f"import sys, sink; print(sorted(m for m in sys.modules if m.startswith({heavy})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_run_scripted_from_python(
    fresh_hub: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "repos.csv").write_text("name,description\napi-one,first\napi-two,second\n")
    config = {
        "connection": {"identifier": "acme", "secret_env": "SINK_API_SECRET"},
        "template": "create-repository",
        "settings": {"namespace": "acme"},
        "key_field": "name",
        "input": "repos.csv",
    }
    (tmp_path / "repos.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("SINK_API_SECRET", OAT)
    destination = sink.open_destination(tmp_path / "repos.yaml", base_url=fresh_hub.url)
    credentials = sink.resolve_credentials(destination)
    assert credentials.base_url == fresh_hub.url
    summary = sink.run_destination(
        destination, credentials, sink.RunOptions(tmp_path / "repos.csv")
    )
    assert (summary.counts.ok, summary.counts.rejected) == (2, 0)
    names = {r["name"] for r in fresh_hub.state()["repositories"] if r["namespace"] == "acme"}
    assert {"api-one", "api-two"} <= names
