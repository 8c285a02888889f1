"""Secrets kept out of outputs: named fields, token shapes anywhere, known secrets in text."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from sink.outputs.redact import (
    REDACTED,
    Redactor,
    looks_secret,
    redact,
    redact_headers,
    split_secrets,
)
from tests.outputs.support import JWT, OAT, PASSWORD, PAT

SHAPES = [PAT, OAT, JWT, "DCKR_PAT_Upper0case1Token", "dckr_pat_with=padding+and/slash"]

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def plant(value: Any, secret: str, where: int) -> Any:
    """``value`` with ``secret`` put at one place chosen by ``where``."""
    if isinstance(value, dict) and value:
        key = sorted(value)[where % len(value)]
        return {**value, key: plant(value[key], secret, where // 2)}
    if isinstance(value, list) and value:
        at = where % len(value)
        return [*value[:at], plant(value[at], secret, where // 2), *value[at + 1 :]]
    return {"unexpected": secret}


@given(json_values, st.sampled_from(SHAPES), st.integers(min_value=0, max_value=1000))
def test_a_token_shaped_value_anywhere_is_taken_out_of_the_body(
    body: Any, secret: str, where: int
) -> None:
    planted = plant(body, secret, where)
    cleaned, found = split_secrets(planted, ["token"])
    assert secret not in orjson.dumps(cleaned).decode()
    assert secret in found.values()


def test_declared_fields_and_shapes_are_found_with_their_paths() -> None:
    body = {"uuid": "b30b", "token": "not-shaped-at-all", "items": [{"note": f"use {PAT}"}]}
    cleaned, found = split_secrets(body, ["token"])
    assert cleaned == {"uuid": "b30b", "token": REDACTED, "items": [{"note": REDACTED}]}
    assert found == {"token": "not-shaped-at-all", "items.0.note": f"use {PAT}"}
    assert body["token"] == "not-shaped-at-all"  # the input is not changed


def test_empty_declared_field_is_not_a_secret() -> None:
    assert split_secrets({"token": ""}, ["token"]) == ({"token": ""}, {})
    assert split_secrets({"token": None}, ["token"])[1] == {}


def test_looks_secret() -> None:
    assert all(looks_secret(shape) for shape in SHAPES)
    assert not looks_secret("dckr_pit_nothing") and not looks_secret(42)


def test_redactor_hides_the_whole_token_whatever_it_holds() -> None:
    scrub = Redactor(["correct-horse-battery"])
    text = scrub(f"a {SHAPES[-1]} b {JWT} c correct-horse-battery")
    assert "padding" not in text and "slash" not in text
    assert "correct-horse" not in text and "eyJ" not in text
    assert scrub.json_line({"x": "correct-horse-battery"}) == b'{"x":"***"}\n'


def test_redact_and_headers() -> None:
    assert redact({"a": [{"token": PAT}]}, ["token"]) == {"a": [{"token": REDACTED}]}
    shown = redact_headers([("Authorization", f"Bearer {JWT}"), ("Accept", "x")])
    assert shown == [("Authorization", "Bearer ***"), ("Accept", "x")]


def test_redact_replaces_secret_fields_at_any_depth_without_changing_the_input() -> None:
    body = {
        "token": PAT,
        "results": [{"token": OAT, "label": "a"}, {"nested": {"token": "x", "keep": 1}}],
        "label": "token",
    }
    redacted = redact(body, {"token"})
    assert redacted == {
        "token": "***",
        "results": [{"token": "***", "label": "a"}, {"nested": {"token": "***", "keep": 1}}],
        "label": "token",
    }
    assert body["token"] == PAT
    assert redact("plain", {"token"}) == "plain"
    assert redact(body, ()) is body


def test_secrets_are_keyed_by_path_and_blanks_skipped() -> None:
    body = {"token": PAT, "items": [{"token": OAT}, {"token": ""}]}
    assert split_secrets(body, {"token"})[1] == {"token": PAT, "items.0.token": OAT}


def test_redactor_replaces_known_secrets_and_token_shapes() -> None:
    redactor = Redactor([PASSWORD])
    text = f"login {PASSWORD} pat {PAT} oat {OAT} jwt {JWT} fine"
    assert redactor(text) == "login *** pat *** oat *** jwt *** fine"
    redactor.add("ab")  # too short to be worth replacing everywhere
    assert redactor("abc") == "abc"
    assert redactor.scrub({"k": [PASSWORD, 3]}) == {"k": ["***", 3]}
    assert PASSWORD not in repr(redactor)


def test_redact_headers_hides_the_bearer() -> None:
    shown = redact_headers([("Authorization", f"Bearer {JWT}"), ("Accept", "application/json")])
    assert shown == [("Authorization", "Bearer ***"), ("Accept", "application/json")]
