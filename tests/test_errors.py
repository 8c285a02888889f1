"""The one exception tree (sink/errors.py): every error sink raises is a SinkError, grouped by
what the caller does (stop the run, reject the record, send again later), and foreign errors
keep their cause where sink translates them."""

from __future__ import annotations

import inspect
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from jinja2 import TemplateError
from pydantic import ValidationError

from sink import errors
from sink.config import load_config, parse_config
from sink.errors import (
    ConfigError,
    CredentialsError,
    Interrupted,
    NeedsOrgToken,
    PlanDrift,
    RejectRecord,
    RenderError,
    RetryLater,
    RunInProgress,
    SchemaViolation,
    SinkError,
    SourceError,
    StopRun,
    Throttled,
    ToolRefused,
    Unreachable,
    WaitTooLong,
)
from sink.request.values import compile_value, evaluate
from sink.source.read import read_records

GROUPS: dict[type[SinkError], set[type[SinkError]]] = {
    StopRun: {
        ConfigError,
        SourceError,
        CredentialsError,
        NeedsOrgToken,
        RunInProgress,
        Unreachable,
        WaitTooLong,
        PlanDrift,
    },
    RejectRecord: {RenderError, SchemaViolation},
    RetryLater: {Throttled},
}
"""What the caller does with each error: the run stops, the record is rejected, or the request
is sent again later."""

OUTSIDE_THE_GROUPS = {Interrupted, ToolRefused}
"""Errors that are none of the three: a wait cut short by a stop, an agent's refused call."""


def every_error() -> list[type[BaseException]]:
    return [
        value
        for _, value in inspect.getmembers(errors, inspect.isclass)
        if issubclass(value, BaseException) and value.__module__ == errors.__name__
    ]


def test_every_error_is_a_sink_error() -> None:
    found = every_error()
    pinned = {SinkError, *GROUPS, *OUTSIDE_THE_GROUPS}.union(*GROUPS.values())
    assert pinned <= set(found)
    assert all(issubclass(error, SinkError) for error in found)
    assert SinkError.__bases__ == (Exception,)


def test_each_error_is_in_exactly_the_group_of_what_the_caller_does() -> None:
    for error in every_error():
        if error is SinkError or error in GROUPS:
            continue
        groups = [group for group in GROUPS if issubclass(error, group)]
        if error in OUTSIDE_THE_GROUPS:
            assert groups == [], error
        else:
            assert len(groups) == 1, f"{error.__name__}: in {groups}; add it to GROUPS"
            assert error in GROUPS[groups[0]], f"{error.__name__}: add it to GROUPS"


def test_the_groups_are_apart() -> None:
    for group in GROUPS:
        others = [other for other in GROUPS if other is not group]
        assert not any(issubclass(group, other) for other in others)
        assert issubclass(group, SinkError) and group.__bases__ == (SinkError,)


def test_an_unreachable_hub_stops_the_run_rather_than_being_retried() -> None:
    assert issubclass(Unreachable, StopRun) and not issubclass(Unreachable, RetryLater)
    assert issubclass(Throttled, RetryLater) and not issubclass(Throttled, StopRun)


def test_names_removed_or_renamed_by_the_layout_are_gone() -> None:
    # PolicyViolation was never raised; sink's ValidationError shared pydantic's name.
    assert not hasattr(errors, "PolicyViolation")
    assert not hasattr(errors, "ValidationError")


def test_a_rejection_names_the_record_counted_from_one() -> None:
    error = RejectRecord("name: too long", index=4, field="name", status=400)
    assert str(error) == "record 5: name: too long"
    assert (error.message, error.index, error.field, error.status) == (
        "name: too long",
        4,
        "name",
        400,
    )
    unplaced = SchemaViolation("body: 'namespace' is required")
    assert str(unplaced) == "body: 'namespace' is required"
    assert (unplaced.index, unplaced.field, unplaced.status) == (None, None, None)
    assert str(RenderError("missing value", index=0)) == "record 1: missing value"


def test_retry_later_carries_the_wait_and_throttled_the_header_that_asked() -> None:
    assert RetryLater("503 Service Unavailable").delay is None
    assert RetryLater("reset", delay=2.5).delay == 2.5
    throttled = Throttled("429 Too Many Requests", delay=30.0, asked="Retry-After: 30")
    assert (str(throttled), throttled.delay, throttled.asked) == (
        "429 Too Many Requests",
        30.0,
        "Retry-After: 30",
    )
    assert Throttled("429").asked is None


def test_a_refused_tool_call_names_the_rule() -> None:
    refused = ToolRefused("namespace globex is outside the policy", rule="policy")
    assert (str(refused), refused.message, refused.rule) == (
        "namespace globex is outside the policy",
        "namespace globex is outside the policy",
        "policy",
    )


# -- translation points: the foreign error is kept as the cause ---------------------------------


def test_bad_yaml_in_a_config_is_a_config_error_caused_by_the_yaml_error(tmp_path: Path) -> None:
    config = tmp_path / "dest.yaml"
    config.write_text("template: create-repository\nsettings: {namespace: acme\n")
    with pytest.raises(ConfigError, match="not valid YAML") as raised:
        load_config(config)
    assert str(raised.value).startswith(f"{config}: ")
    assert isinstance(raised.value.__cause__, yaml.YAMLError)


def test_a_missing_config_is_a_config_error_caused_by_the_os_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file") as raised:
        load_config(tmp_path / "absent.yaml")
    assert isinstance(raised.value.__cause__, FileNotFoundError)


def test_an_invalid_config_is_a_config_error_caused_by_pydantic() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"template": "create-repository", "batching": {"size": "many"}})
    assert str(raised.value).startswith("config: ")
    assert isinstance(raised.value.__cause__, ValidationError)
    assert not isinstance(raised.value, ValidationError)


def test_a_broken_parquet_file_is_a_source_error_caused_by_arrow(tmp_path: Path) -> None:
    path = tmp_path / "records.parquet"
    pq.write_table(pa.table({"name": [f"repo-{i}" for i in range(100)]}), path)
    path.write_bytes(path.read_bytes()[:40])  # truncated: the footer is gone
    with pytest.raises(SourceError, match="not a readable Parquet file") as raised:
        list(read_records(path))
    assert isinstance(raised.value.__cause__, pa.ArrowException)
    assert isinstance(raised.value, StopRun)


def test_a_template_that_does_not_parse_is_a_config_error_caused_by_jinja() -> None:
    with pytest.raises(ConfigError, match="does not parse") as raised:
        compile_value("{{ record.name ", {})
    assert isinstance(raised.value.__cause__, TemplateError)


def test_a_template_failing_on_one_record_rejects_that_record_with_the_cause() -> None:
    compiled = compile_value("{{ record.total // record.parts }}", {})
    assert evaluate(compiled, {"total": 10, "parts": 2}) == "5"
    with pytest.raises(RenderError, match="failed") as raised:
        evaluate(compiled, {"total": 10, "parts": 0})
    assert isinstance(raised.value, RejectRecord)
    assert isinstance(raised.value.__cause__, ZeroDivisionError)
