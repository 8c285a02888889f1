"""Header values and manual URLs: every malformed one is a clear error, never a traceback."""

from __future__ import annotations

import pytest

from sink.errors import ConfigError, RenderError
from sink.model import Record
from sink.request.render import for_manual
from sink.request.values import parse_headers

BASE = "http://127.0.0.1:8080"

BAD_HEADER_VALUES = [
    "a\x1b[31mred",  # ESC
    "a\x7fb",  # DEL
    "a\x0bb",  # VT
    "a\x0cb",  # FF
    "a\x08b",
    "a\x85b",  # a C1 control
    "caf\u00e9",
    "a\u2028b",
    "a\u202eb",  # a bidirectional override
    "a\r\nX-Evil: 1",
    "a\x00b",
]


@pytest.mark.parametrize("value", BAD_HEADER_VALUES)
def test_a_static_header_value_beyond_visible_ascii_is_refused_on_load(value: str) -> None:
    with pytest.raises(ConfigError, match="header 'X-Trace' value holds"):
        parse_headers({"X-Trace": value})
    with pytest.raises(ConfigError, match="header 'X-Trace' value holds"):
        for_manual(
            method="POST", url="/v2/x", settings={}, base_url=BASE, headers={"X-Trace": value}
        )


@pytest.mark.parametrize("value", [v for v in BAD_HEADER_VALUES if v.strip() == v])
def test_a_header_value_in_text_form_is_checked_too(value: str) -> None:
    with pytest.raises(ConfigError, match="value holds"):
        parse_headers(f"X-Ok:fine,X-Trace:{value}")


@pytest.mark.parametrize("value", BAD_HEADER_VALUES)
def test_a_rendered_header_value_is_refused_per_record(value: str) -> None:
    renderer = for_manual(
        method="POST",
        url="/v2/x",
        settings={},
        base_url=BASE,
        headers={"X-Trace": "{{ record.trace }}"},
        body={"a": "{{ record.a }}"},
    )
    with pytest.raises(RenderError, match="header 'X-Trace' value holds") as caught:
        renderer.render(Record(3, {"trace": value, "a": "x"}))
    assert caught.value.index == 3
    for item_value in ("plain", "tab\there", "~!#$%&'*+-.^_`|"):  # the next record goes on
        request = renderer.render(Record(4, {"trace": item_value, "a": "x"}))
        assert dict(request.headers)["X-Trace"] == item_value


def test_a_settings_header_is_checked_on_load() -> None:
    with pytest.raises(ConfigError, match="control character"):
        for_manual(
            method="POST",
            url="/v2/x",
            settings={"trace": "a\x1bb"},
            base_url=BASE,
            headers={"X-Trace": "{{ settings.trace }}"},
        )


BAD_URLS = [
    "http://127.0.0.1:8080{{ record.x }}",
    "http://127.0.0.1:80{{ record.x }}/v2",
    "http://127.0.0.1:{{ record.x }}/v2",
    "http://{{ record.x }}/v2",
    "http://{{ record.x }}127.0.0.1:8080/v2",
    "{{ record.x }}/v2",
    "http://127.0.0.1{# here #}:8080/v2/x",
    "http://127.0.0.1:8080",
    "http://127.0.0.1:8080?x=1/v2",
    "http://user@127.0.0.1:8080/v2",
    "http://[::1/v2",
    "http://127.0.0.1:99999/v2",
    "https://127.0.0.1:8080/v2",
    "http://other.example:8080/v2",
    "http:/127.0.0.1:8080/v2",
    "//evil.example/v2",
    "v2/x",
    "",
    "/v2/{{ record.x",
    "/v2/{{ record.x }",
    "/v2/{% if %}",
    "/v2/{% for x in y %}",
    "/v2/{{ }}",
    "/v2/{{" + "(" * 500 + "1" + ")" * 500 + "}}",
    "/v2/%zz",
    "/v2/%",
    "/v2/%4",
    "/v2/%{{ record.x }}",
    "/v2/%4{{ record.x }}",
    "/v2/a b",
    "/v2/a\tb",
    "/v2/x\n",
    "/v2/\x1b[31m",
    "/v2/\x7f",
    "/v2/caf\u00e9",
    "/v2/{name}",
    "/v2/{% raw %}{{ x }}{% endraw %}",
    "/v2/x#fragment",
    "/v2/../admin",
    "/v2/./x",
    "/v2/%2e%2E/x",
    "/v2//x",
    "/v2/a\\b",
    "/v2/a|b",
    '/v2/a"b',
    "/v2/a<b>",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_malformed_manual_url_is_a_config_error_on_load(url: str) -> None:
    with pytest.raises(ConfigError, match="manual url") as caught:
        for_manual(method="POST", url=url, settings={}, base_url=BASE)
    assert "Traceback" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "data", "message"),
    [
        ("/v2/{{ record.missing }}", {}, "not there"),
        ("/v2/{{ settings.missing }}", {}, "not there"),
        ("/v2/{{ record.x }}", {"x": ""}, "not a valid path"),
        ("/v2/{{ record.x }}", {"x": "."}, "not a valid path"),
        ("/v2/{{ record.x }}", {"x": ".."}, "not a valid path"),
        ("/v2/{{ record.x }}", {"x": [1]}, "text or a number"),
        ("/v2/{{ record.x }}", {"x": {"a": 1}}, "text or a number"),
        ("/v2/{{ record.x.__class__ }}", {"x": "a"}, "unsafe"),
        ("/v2/{{ 1 / record.x }}", {"x": 0}, "failed"),
        ("/v2/{% if record.x %}a{% endif %}/b", {"x": ""}, "empty segment"),
        ("http://127.0.0.1:8080/v2/{{ record.x }}", {}, "not there"),
    ],
)
def test_a_manual_url_that_cannot_be_rendered_rejects_the_record(
    url: str, data: dict[str, object], message: str
) -> None:
    renderer = for_manual(method="POST", url=url, settings={}, base_url=BASE)
    with pytest.raises(RenderError, match=message) as caught:
        renderer.render(Record(7, data))
    assert caught.value.index == 7


@pytest.mark.parametrize(
    ("url", "data", "sent"),
    [
        ("/v2/{{ record.x }}", {"x": "a/b?c#d"}, "/v2/a%2Fb%3Fc%23d"),
        ("/v2/x?q={{ record.x }}&r=1", {"x": "a&b"}, "/v2/x?q=a%26b&r=1"),
        ("http://127.0.0.1:8080/v2/{{ record.x }}", {"x": "y"}, "/v2/y"),
        ("HTTP://127.0.0.1:8080/v2/x", {}, "/v2/x"),
        ("/v2/a%2Fb/{{ record.n }}/", {"n": 5}, "/v2/a%2Fb/5/"),
        ("/v2/{% if record.x %}{{ record.x }}{% endif %}/y", {"x": "z"}, "/v2/z/y"),
        ("/v2/{# a comment #}x", {}, "/v2/x"),
    ],
)
def test_a_good_manual_url_goes_to_the_connection_origin(
    url: str, data: dict[str, object], sent: str
) -> None:
    renderer = for_manual(method="POST", url=url, settings={}, base_url=BASE)
    assert renderer.render(Record(0, data)).url == BASE + sent
