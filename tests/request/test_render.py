"""Rendering: compiled values, safe paths and headers, manual mode, batching."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sink.errors import ConfigError, RenderError, SchemaViolation
from sink.model import Record
from sink.request.render import Batching, for_manual, for_template
from sink.request.templates import load_registry
from sink.request.values import ABSENT, compile_value, encode_segment, evaluate, parse_headers

BASE = "https://hub.docker.com"


def render_repo(record: dict[str, Any], namespace: str = "acme") -> tuple[str, Any]:
    template = load_registry().get("create-repository")
    request = for_template(template, {"namespace": namespace}, BASE).render(Record(7, record))
    return request.url, orjson.loads(request.body or b"null")


def test_simple_references_keep_types_and_leave_absent_values_out() -> None:
    compiled = compile_value(
        {
            "a": "{{ record.a }}",
            "b": "{{ record.b }}",
            "c": "{{ settings.c }}",
            "d": "x",
            "e": "{{ record['e-f'] }}",
            "n": "{{ record.n }}",
        },
        {"c": 3},
    )
    assert evaluate(compiled, {"a": True, "b": None, "e-f": [1], "n": ""}) == {
        "a": True,
        "c": 3,
        "d": "x",
        "e": [1],
    }


def test_expressions_render_in_the_sandbox_and_missing_values_are_absent() -> None:
    compiled = compile_value("{{ record.first }}-{{ record.last | lower }}", {})
    assert evaluate(compiled, {"first": "Ann", "last": "LEE"}) == "Ann-lee"
    assert evaluate(compiled, {"first": "Ann"}) is ABSENT


def test_sandbox_refuses_unsafe_attribute_access() -> None:
    compiled = compile_value("{{ record.__class__.__mro__ }}", {})
    with pytest.raises(RenderError):
        evaluate(compiled, {})


def test_record_values_are_data_never_template_code() -> None:
    _, body = render_repo({"name": "app", "description": "{{ 7*7 }}"})
    assert body["description"] == "{{ 7*7 }}"
    compiled = compile_value("pre {{ record.x }}", {})
    assert evaluate(compiled, {"x": "{{ 7*7 }}{% raw %}"}) == "pre {{ 7*7 }}{% raw %}"


def test_create_repository_body_and_url() -> None:
    url, body = render_repo({"name": "payments", "is_private": "true", "description": None})
    assert url == "https://hub.docker.com/v2/namespaces/acme/repositories"
    assert body == {"name": "payments", "namespace": "acme", "is_private": True}


@pytest.mark.parametrize("value", ["../orgs/x", "a/b", "x?y#z", "%2e%2e", "a b", "ü"])
def test_path_values_are_one_encoded_segment(value: str) -> None:
    template = load_registry().get("create-repository")
    renderer = for_template(template, {"namespace": value}, BASE)
    request = renderer.render(Record(0, {"name": "app"}))
    url = httpx.URL(request.url)
    assert url.host == "hub.docker.com"
    assert url.query == b""
    assert url.fragment == ""
    segments = url.raw_path.decode().split("/")
    assert segments[:3] == ["", "v2", "namespaces"]
    assert unquote(segments[3]) == value
    assert segments[4:] == ["repositories"]


@pytest.mark.parametrize("value", ["", ".", ".."])
def test_dot_and_empty_segments_are_refused(value: str) -> None:
    with pytest.raises(RenderError):
        encode_segment(value)


def test_a_missing_path_setting_is_a_config_error() -> None:
    template = load_registry().get("create-repository")
    with pytest.raises(ConfigError, match="namespace"):
        for_template(template, {}, BASE)


def test_invalid_body_names_the_field_and_the_record() -> None:
    with pytest.raises(SchemaViolation) as info:
        render_repo({"name": "Bad_Name"})
    assert info.value.field == "name"
    assert info.value.index == 7
    assert "pattern" in str(info.value)


def test_manual_mode_record_as_body_with_headers() -> None:
    renderer = for_manual(
        method="patch",
        url="/v2/orgs/{{ settings.org }}/groups/{{ record.team }}",
        settings={"org": "acme"},
        base_url=BASE,
        headers=parse_headers("X-Analytics-Client-Feature:file, X-Trace:{{ record.trace }}"),
        body={"description": "{{ record.description }}"},
    )
    request = renderer.render(Record(0, {"team": "dev/ops", "description": "D", "trace": "t1"}))
    assert request.method == "PATCH"
    assert request.url == "https://hub.docker.com/v2/orgs/acme/groups/dev%2Fops"
    assert dict(request.headers)["X-Trace"] == "t1"
    assert dict(request.headers)["X-Analytics-Client-Feature"] == "file"
    assert orjson.loads(request.body or b"") == {"description": "D"}


def test_manual_body_given_as_json_text_inserts_values_as_data() -> None:
    renderer = for_manual(
        method="POST",
        url="/v2/orgs/acme/groups",
        settings={},
        base_url=BASE,
        body='{"name": "{{ record.name }}", "description": "{{ record.d }}"}',
    )
    request = renderer.render(Record(0, {"name": "team-a", "d": 'quote " and }}'}))
    assert orjson.loads(request.body or b"") == {"name": "team-a", "description": 'quote " and }}'}


def test_manual_record_itself_as_body() -> None:
    renderer = for_manual(
        method="POST",
        url="https://hub.docker.com/v2/orgs/acme/groups",
        settings={},
        base_url=BASE,
        body_is_record=True,
    )
    request = renderer.render(Record(0, {"name": "team-a"}))
    assert request.url == "https://hub.docker.com/v2/orgs/acme/groups"
    assert orjson.loads(request.body or b"") == {"name": "team-a"}


def test_manual_url_on_another_host_is_refused() -> None:
    with pytest.raises(ConfigError, match="host"):
        for_manual(method="POST", url="https://evil.example/v2/x", settings={}, base_url=BASE)
    with pytest.raises(ConfigError):
        for_manual(method="POST", url="{{ record.url }}", settings={}, base_url=BASE)


def test_manual_url_values_cannot_add_segments_or_queries() -> None:
    renderer = for_manual(
        method="DELETE", url="/v2/orgs/acme/members/{{ record.user }}", settings={}, base_url=BASE
    )
    request = renderer.render(Record(0, {"user": "../../x?y=1#f"}))
    assert request.url == "https://hub.docker.com/v2/orgs/acme/members/..%2F..%2Fx%3Fy%3D1%23f"
    assert request.body is None


def test_manual_method_must_write() -> None:
    with pytest.raises(ConfigError, match="method"):
        for_manual(method="GET", url="/v2/x", settings={}, base_url=BASE)


@pytest.mark.parametrize("value", ["a\r\nX-Evil: 1", "a\nb", "a\rb", "a\x00b"])
def test_header_values_with_line_breaks_are_refused(value: str) -> None:
    renderer = for_manual(
        method="POST",
        url="/v2/orgs/acme/groups",
        settings={},
        base_url=BASE,
        headers={"X-Trace": "{{ record.trace }}"},
        body={"name": "x"},
    )
    with pytest.raises(RenderError, match="line break"):
        renderer.render(Record(0, {"trace": value}))


@pytest.mark.parametrize("name", ["Authorization", "Host", "Bad Name", "X:Y"])
def test_reserved_or_invalid_header_names_are_config_errors(name: str) -> None:
    with pytest.raises(ConfigError):
        for_manual(method="POST", url="/v2/x", settings={}, base_url=BASE, headers={name: "v"})


def test_parse_headers_requires_name_and_colon() -> None:
    assert parse_headers("a:1,b: two ") == {"a": "1", "b": "two"}
    assert parse_headers({"a": 1}) == {"a": "1"}
    with pytest.raises(ConfigError):
        parse_headers("novalue")


def test_json_property_batching_wraps_items_with_extra_props() -> None:
    renderer = for_manual(
        method="POST",
        url="/v2/x",
        settings={},
        base_url=BASE,
        body_is_record=True,
        batching=Batching(mode="json_property", size=2, property="items", extra={"v": 1}),
    )
    items = [renderer.item(Record(i, {"n": i}, key=f"k{i}")) for i in range(2)]
    request = renderer.request(items)
    assert orjson.loads(request.body or b"") == {"v": 1, "items": [{"n": 0}, {"n": 1}]}
    assert request.keys == ("k0", "k1")
    assert request.indexes == (0, 1)


def batch_body(records: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    """A code-batching function used by the test below."""
    return {"names": [r["name"] for r in records], "org": settings["org"]}


def test_code_batching_calls_the_function_with_records_and_settings() -> None:
    renderer = for_manual(
        method="POST",
        url="/v2/x",
        settings={"org": "acme"},
        base_url=BASE,
        body_is_record=True,
        batching=Batching(mode="code", size=10, function="tests.request.test_render:batch_body"),
    )
    items = [renderer.item(Record(i, {"name": f"n{i}"})) for i in range(3)]
    assert orjson.loads(renderer.request(items).body or b"") == {
        "names": ["n0", "n1", "n2"],
        "org": "acme",
    }


def test_code_batching_needs_an_importable_function() -> None:
    with pytest.raises(ConfigError, match="cannot import"):
        for_manual(
            method="POST",
            url="/v2/x",
            settings={},
            base_url=BASE,
            batching=Batching(mode="code", function="no_such_module:f"),
        )


text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(value=text)
def test_property_record_values_never_escape_their_segment(value: str) -> None:
    renderer = for_manual(
        method="DELETE", url="/v2/orgs/acme/members/{{ record.user }}", settings={}, base_url=BASE
    )
    try:
        request = renderer.render(Record(0, {"user": value}))
    except RenderError:
        assert value in (".", "..")
        return
    url = httpx.URL(request.url)
    assert url.host == "hub.docker.com"
    assert url.query == b"" and url.fragment == ""
    segments = url.raw_path.decode("ascii").split("/")
    assert segments[:5] == ["", "v2", "orgs", "acme", "members"]
    assert len(segments) == 6
    assert unquote(segments[5]) == value


@settings(max_examples=300, deadline=None)
@given(value=text)
def test_property_header_values_never_inject(value: str) -> None:
    renderer = for_manual(
        method="POST",
        url="/v2/x",
        settings={},
        base_url=BASE,
        headers={"X-Trace": "{{ record.trace }}"},
        body={"a": "{{ record.trace }}"},
    )
    try:
        request = renderer.render(Record(0, {"trace": value}))
    except RenderError:  # a control character (CR, LF, NUL, ESC...) or one beyond ASCII
        assert not all(c == "\t" or " " <= c <= "~" for c in value)
        return
    header = dict(request.headers)["X-Trace"]
    assert header == value
    assert not any(c in header for c in "\r\n\x00")


@settings(max_examples=300, deadline=None)
@given(value=text)
def test_property_record_values_are_never_evaluated(value: str) -> None:
    compiled = compile_value({"a": "{{ record.v }}", "b": "[{{ record.v }}]"}, {})
    out = evaluate(compiled, {"v": value})
    assert out["a"] == value
    assert out["b"] == f"[{value}]"
