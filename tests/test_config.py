"""Destination configs: exact messages, unknown keys refused, bound to templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from sink.config import load_config, parse_config, resolve_path
from sink.destination import bind
from sink.errors import ConfigError

CONNECTION = {"identifier": "alice", "secret_env": "SINK_HUB_SECRET"}


def test_a_minimal_template_config() -> None:
    config = parse_config(
        {"connection": CONNECTION, "template": "create-repository", "settings": {"namespace": "a"}}
    )
    assert config.connection.base_url == "https://hub.docker.com"
    assert config.batching.mode == "per_record"
    assert config.concurrency == 16


def test_unknown_keys_are_errors_with_their_path() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"connection": {**CONNECTION, "tokne": "x"}, "template": "t", "colour": 1})
    message = str(info.value)
    assert "connection.tokne: unknown key" in message
    assert "colour: unknown key" in message


def test_template_or_manual_exactly_one() -> None:
    with pytest.raises(ConfigError, match="exactly one of template"):
        parse_config({"connection": CONNECTION})
    with pytest.raises(ConfigError, match="exactly one of template"):
        parse_config(
            {
                "connection": CONNECTION,
                "template": "t",
                "manual": {"method": "POST", "url": "/v2/x"},
            }
        )


def test_connection_needs_an_identifier_and_one_secret_source() -> None:
    with pytest.raises(ConfigError, match="identifier"):
        parse_config({"connection": {"secret_env": "X"}, "template": "t"})
    with pytest.raises(ConfigError, match="only one of"):
        parse_config(
            {
                "connection": {"identifier": "a", "secret_env": "X", "secret_file": "f"},
                "template": "t",
            }
        )


def test_base_url_is_scheme_and_host_only() -> None:
    with pytest.raises(ConfigError, match="base_url"):
        parse_config(
            {"connection": {**CONNECTION, "base_url": "https://hub.docker.com/v2"}, "template": "t"}
        )


def test_batching_rules() -> None:
    with pytest.raises(ConfigError, match="function"):
        parse_config({"connection": CONNECTION, "template": "t", "batching": {"mode": "code"}})
    with pytest.raises(ConfigError, match="only used by json_property"):
        parse_config(
            {"connection": CONNECTION, "template": "t", "batching": {"property": "invitees"}}
        )


def test_bind_names_missing_settings_and_unknown_templates(tmp_path: Path) -> None:
    config = parse_config({"connection": CONNECTION, "template": "create-repository"})
    with pytest.raises(ConfigError, match="needs settings: namespace"):
        bind(config, tmp_path)
    config = parse_config({"connection": CONNECTION, "template": "create-repo"})
    with pytest.raises(ConfigError, match="Did you mean create-repository"):
        bind(config, tmp_path)


def test_json_property_batching_needs_a_batching_template(tmp_path: Path) -> None:
    config = parse_config(
        {
            "connection": CONNECTION,
            "template": "create-repository",
            "settings": {"namespace": "a"},
            "batching": {"mode": "json_property", "property": "x"},
        }
    )
    with pytest.raises(ConfigError, match="one record per request"):
        bind(config, tmp_path)


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("connection: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="YAML mapping"):
        load_config(bad)


def test_paths_are_relative_to_the_config(tmp_path: Path) -> None:
    assert resolve_path(tmp_path, "out/r.jsonl") == tmp_path / "out/r.jsonl"
    assert resolve_path(tmp_path, "/abs") == Path("/abs")
    assert resolve_path(tmp_path, None) is None
