"""A created secret split out of Hub's answer: the body keeps ``***``, the entry the value."""

from __future__ import annotations

import orjson
import pytest

from sink.model import Request
from sink.send.secrets import hide_secrets, take_secrets

PAT_SECRET = "dckr_pat_Xb7Qm2LwV9kR4tN8cJ1hF6yD3pS0gE5a"
OAT_SECRET = "dckr_oat_Hq3LmZ8rTx2VwN5kPb7cJd9fYg4sAe6u"


def create_pat() -> Request:
    return Request(
        "POST",
        "https://hub.example.test/v2/access-tokens",
        (),
        b"{}",
        ("ci",),
        "create-pat",
        secrets=("token",),
    )


def test_a_created_tokens_secret_goes_to_the_entry_only() -> None:
    body = {
        "uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "token_label": "ci",
        "token": PAT_SECRET,
    }
    taken = take_secrets(create_pat(), body)
    assert taken.body["token"] == "***"
    assert taken.body["uuid"] == body["uuid"]
    assert taken.entry is not None
    assert taken.entry.secrets == {"token": PAT_SECRET}
    assert (taken.entry.token_id, taken.entry.label, taken.entry.keys) == (
        body["uuid"],
        "ci",
        ("ci",),
    )
    assert PAT_SECRET not in repr(taken)
    with pytest.raises(TypeError):
        orjson.dumps(taken.entry)


def test_a_token_shaped_value_in_an_unexpected_field_counts_too() -> None:
    body = {"id": "7", "label": "bot", "value": {"secret": OAT_SECRET}}
    taken = take_secrets(create_pat(), body)
    assert taken.entry is not None
    assert OAT_SECRET in taken.entry.secrets.values()
    assert OAT_SECRET not in orjson.dumps(taken.body).decode()


def test_an_answer_without_its_secret_has_no_entry() -> None:
    assert take_secrets(create_pat(), {"uuid": "u", "token": ""}).entry is None
    assert take_secrets(create_pat(), None).entry is None


def test_other_answers_are_hidden_too_and_plain_requests_untouched() -> None:
    refusal = {"message": "invalid", "echo": {"token": PAT_SECRET}}
    assert PAT_SECRET not in orjson.dumps(hide_secrets(create_pat(), refusal)).decode()
    plain = Request("POST", "https://hub.example.test/v2/x", (), None, ("k",), "create-repository")
    assert hide_secrets(plain, refusal) is refusal
