"""Binding a config: every setting must be one the template (or manual request) reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from sink.config import parse_config
from sink.destination import Destination, bind
from sink.errors import ConfigError
from sink.model import Record
from sink.request.templates import load_registry

CONNECTION = {"identifier": "acme", "secret_env": "SINK_TEST_SECRET"}
INVITES = {"template": "bulk-invite", "batching": {"mode": "json_property", "property": "invitees"}}


def bound(tmp_path: Path, **config: Any) -> Destination:
    return bind(parse_config({"connection": CONNECTION, **config}), tmp_path)


def test_a_misspelt_setting_is_refused_with_did_you_mean(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        bound(tmp_path, **INVITES, settings={"org": "acme", "dryrun": True})
    assert str(caught.value) == (
        "settings.dryrun: template bulk-invite takes no setting 'dryrun'; did you mean "
        "'dry_run'? (it takes org, dry_run)"
    )


def test_dry_run_spelt_right_reaches_the_request(tmp_path: Path) -> None:
    destination = bound(tmp_path, **INVITES, settings={"org": "acme", "dry_run": True})
    renderer = destination.renderer
    item = renderer.item(Record(0, {"invitee": "grace@example.com"}, key="grace"))
    body = orjson.loads(renderer.request([item]).body or b"")
    assert body == {"org": "acme", "invitees": ["grace@example.com"], "dry_run": True}


def test_a_template_without_settings_takes_none(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="takes no settings"):
        bound(tmp_path, template="create-personal-access-token", settings={"org": "acme"})


def test_every_template_takes_its_example_settings(tmp_path: Path) -> None:
    for template in load_registry():
        bound(tmp_path, template=template.id, settings=dict(template.example_settings))


def test_manual_settings_are_those_the_request_references(tmp_path: Path) -> None:
    manual = {
        "method": "PATCH",
        "url": "/v2/orgs/{{ settings.org }}/groups/{{ record.team }}",
        "headers": {"X-Team-Note": "{{ settings.note }}"},
        "body": '{"description": "{{ settings.about }}"}',
    }
    bound(tmp_path, manual=manual, settings={"org": "acme", "note": "n", "about": "a"})
    with pytest.raises(ConfigError) as caught:
        bound(tmp_path, manual=manual, settings={"org": "acme", "orgs": "x"})
    message = str(caught.value)
    assert message.startswith("settings.orgs: the manual request does not read 'orgs'")
    assert "did you mean 'org'?" in message


def test_extra_headers_and_code_batching_may_read_settings(tmp_path: Path) -> None:
    headers = {"X-Ticket": "{{ settings.ticket }}"}
    settings = {"namespace": "acme", "ticket": "OPS-1"}
    bound(tmp_path, template="create-repository", headers=headers, settings=settings)
    # A batch function is given every setting: nothing can tell which it reads.
    code = {"mode": "code", "function": "json:dumps"}
    manual = {"method": "POST", "url": "/v2/invites/bulk"}
    bound(tmp_path, manual=manual, batching=code, settings={"anything": 1})
