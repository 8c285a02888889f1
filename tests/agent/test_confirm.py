"""Confirmation tokens: bound to one request, single-use, expiring, kept across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from sink.agent.confirm import PREFIX, Confirmations, request_digest
from sink.errors import ToolRefused
from sink.model import Request


def _request(body: bytes = b'{"name":"team-a"}') -> Request:
    return Request("POST", "https://hub.docker.com/v2/orgs/acme/groups", (), body, ("k",), "t")


def test_a_token_is_bound_to_its_request_and_single_use(tmp_path: Path) -> None:
    store = Confirmations(tmp_path / "c.sqlite", ttl=60)
    digest = request_digest("create_team", _request())
    token, issued = store.issue("create_team", digest)
    assert token.startswith(PREFIX) and len(token) > 30
    other = request_digest("create_team", _request(b'{"name":"team-b"}'))
    with pytest.raises(ToolRefused) as refused:
        store.check(token, "create_team", other)
    assert refused.value.rule == "confirmation: bound to another request"
    with pytest.raises(ToolRefused):
        store.check(token, "delete_team", digest)
    checked = store.check(token, "create_team", digest)
    assert checked.id == issued.id and checked.spent is None
    spent = store.spend(checked)
    assert spent.spent is not None and spent.key == f"mcp:{issued.id}"
    with pytest.raises(ToolRefused, match="already used"):
        store.spend(checked)
    assert store.check(token, "create_team", digest).spent is not None  # the caller decides
    with pytest.raises(ToolRefused) as unknown:
        store.check(PREFIX + "x" * 32, "create_team", digest)
    assert unknown.value.rule == "confirmation: unknown token"


def test_a_token_expires(tmp_path: Path) -> None:
    now = [1000.0]
    store = Confirmations(tmp_path / "c.sqlite", ttl=60, clock=lambda: now[0])
    digest = request_digest("t", _request())
    token, _ = store.issue("t", digest)
    now[0] += 61
    with pytest.raises(ToolRefused) as expired:
        store.check(token, "t", digest)
    assert expired.value.rule == "confirmation: expired"


def test_tokens_outlive_the_server_and_only_hashes_are_stored(tmp_path: Path) -> None:
    path = tmp_path / "state" / "c.sqlite"
    store = Confirmations(path, ttl=60)
    digest = request_digest("t", _request())
    token, _ = store.issue("t", digest)
    store.spend(store.check(token, "t", digest))
    store.close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert token.encode() not in path.read_bytes()
    again = Confirmations(path, ttl=60)
    assert again.check(token, "t", digest).spent is not None
    again.close()
