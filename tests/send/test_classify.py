"""classify() for every row of DESIGN.md's table, hub_message, overloaded and may_have_arrived."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from sink.errors import CredentialsError, NeedsOrgToken
from sink.send.classify import (
    VerdictKind,
    classify,
    hub_message,
    may_have_arrived,
    overloaded,
    parse_body,
)

BASE = "https://hub.example.test"
NOW = 1_700_000_000.0


def response(
    status: int, body: Any = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    if isinstance(body, dict | list):
        return httpx.Response(status, json=body, headers=headers)
    return httpx.Response(status, content=(body or "").encode(), headers=headers)


# -- classify ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_classify_2xx_is_ok(status: int) -> None:
    assert classify(response(status, {"id": 1})).kind is VerdictKind.OK


def test_classify_401_stops_with_credentials_refused() -> None:
    verdict = classify(response(401, {"message": "unauthorized", "errinfo": None}))
    assert verdict.kind is VerdictKind.STOP
    assert verdict.stop is CredentialsError
    assert "refused the credentials" in verdict.message
    assert isinstance(verdict.error(), CredentialsError)


def test_classify_pat_on_an_org_endpoint_stops_asking_for_an_org_token() -> None:
    body = {"message": "token issued from personal access token is not allowed", "errinfo": {}}
    verdict = classify(response(403, body))
    assert verdict.kind is VerdictKind.STOP
    error = verdict.error()
    assert isinstance(error, NeedsOrgToken)
    assert "organization access token" in str(error)
    assert "dckr_oat_" in str(error)
    assert "organization name" in str(error)


def test_classify_oat_on_a_legacy_route_stops_too() -> None:
    body = {"detail": "token issued from organization access token is not allowed"}
    verdict = classify(response(403, body))
    assert verdict.kind is VerdictKind.STOP
    assert "personal access token" in verdict.message


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (403, {"message": "permission denied", "errinfo": None}, "HTTP 403: permission denied"),
        (400, {"detail": "Invalid name"}, "HTTP 400: Invalid name"),
        (
            400,
            {"fields": {"scopes": ["This field is required."]}, "text": "invalid request"},
            'HTTP 400: invalid request; fields: {"scopes":["This field is required."]}',
        ),
        (
            404,
            {"message": "not found", "errinfo": {"namespace": "octo"}},
            'HTTP 404: not found; errinfo: {"namespace":"octo"}',
        ),
        (422, {"message": "", "detail": "unprocessable"}, "HTTP 422: unprocessable"),
        (404, "<html>gone</html>", "HTTP 404: <html>gone</html>"),
        (400, None, "HTTP 400 Bad Request"),
        (410, {"message": "removed"}, "HTTP 410: removed"),
    ],
)
def test_classify_client_errors_reject_with_hubs_message(
    status: int, body: Any, expected: str
) -> None:
    verdict = classify(response(status, body))
    assert verdict.kind is VerdictKind.REJECT
    assert verdict.message == expected


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (409, {"message": "conflict"}),
        (400, {"message": "Repository with name octo/app already exists"}),
        (400, {"fields": {"name": ["already exists"]}}),
    ],
)
def test_classify_conflicts(status: int, body: Any) -> None:
    assert classify(response(status, body)).kind is VerdictKind.CONFLICT


@pytest.mark.parametrize(
    ("headers", "delay"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"X-Retry-After": str(int(NOW) + 45)}, 45.0),
        (
            {"Retry-After": format_datetime(datetime.fromtimestamp(NOW + 8, tz=UTC), usegmt=True)},
            8.0,
        ),
        ({}, None),
    ],
)
def test_classify_429_retries_after_the_servers_delay(
    headers: dict[str, str], delay: float | None
) -> None:
    verdict = classify(response(429, {"detail": "Rate limit exceeded"}, headers), NOW)
    assert verdict.kind is VerdictKind.RETRY
    assert verdict.delay == delay


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_classify_5xx_retries_without_a_server_delay(status: int) -> None:
    verdict = classify(response(status, {"message": "internal error"}, {"Retry-After": "9"}))
    assert verdict.kind is VerdictKind.RETRY
    assert verdict.delay is None


def test_hub_message_is_lenient_about_json() -> None:
    assert hub_message(response(400, '{"message": ')) == 'HTTP 400: {"message":'
    assert hub_message(response(500, ["odd"])) == "HTTP 500 Internal Server Error"


def test_may_have_arrived() -> None:
    request = httpx.Request("POST", BASE)
    assert not may_have_arrived(httpx.ConnectError("refused", request=request))
    assert not may_have_arrived(httpx.ConnectTimeout("slow", request=request))
    assert may_have_arrived(httpx.ReadTimeout("slow", request=request))
    assert may_have_arrived(httpx.RemoteProtocolError("dropped", request=request))
    assert may_have_arrived(httpx.ReadError("reset", request=request))


def test_overloaded_is_a_503_or_a_429_that_does_not_say_the_quota() -> None:
    quota = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 60)}
    assert overloaded(503, {})
    assert overloaded(429, {})
    assert not overloaded(429, quota)  # Hub's quota: the pacer follows it instead
    assert not overloaded(500, {})
    assert not overloaded(200, {})


def test_parse_body_reads_json_else_text_and_none_when_empty() -> None:
    assert parse_body(response(200, {"a": 1})) == {"a": 1}
    assert parse_body(response(502, "<html>bad gateway</html>")) == "<html>bad gateway</html>"
    assert parse_body(response(204)) is None
