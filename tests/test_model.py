"""The values passed between the stages (sink/model.py): records, requests, outcomes and their
flags, statuses, ledger states, batching, and a created secret on its way to the vault."""

from __future__ import annotations

import calendar
import dataclasses
import json

import orjson
import pytest

from sink.model import (
    NON_IDEMPOTENT,
    REDACTED,
    Batching,
    LedgerState,
    Outcome,
    Record,
    Rejected,
    Request,
    Status,
    VaultEntry,
)

PAT = "dckr_pat_Q3vN8kT2mL7xR5wB9cH1jF4yD6sA0gEp"
OAT = "dckr_oat_Z8bV1nM4kQ7wE2rT5yU9iO3pA6sD0fGh"
PAT_UUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


def test_an_outcome_has_no_flags_set_by_default() -> None:
    outcome = Outcome(("k1",), Status.OK)
    assert outcome.flags() == {}
    assert all(getattr(outcome, name) is False for name in Outcome.FLAGS)
    assert outcome.vault is None


def test_flags_lists_exactly_the_typed_fields_that_are_set() -> None:
    outcome = Outcome(("k1",), Status.OK, already_existed=True, recovered=True)
    assert outcome.flags() == {"already_existed": True, "recovered": True}
    lost = Outcome(("k2",), Status.SECRET_LOST, in_doubt=True, secret_lost=True)
    assert lost.flags() == {"in_doubt": True, "secret_lost": True}


def test_every_boolean_field_of_an_outcome_is_a_flag_and_each_shows_alone() -> None:
    booleans = {f.name for f in dataclasses.fields(Outcome) if f.type in ("bool", bool)}
    assert set(Outcome.FLAGS) == booleans
    assert set(Outcome.FLAGS) == {
        "in_doubt",
        "recovered",
        "already_existed",
        "already_gone",
        "not_sent",
        "secret_missing",
        "secret_lost",
    }
    for name in Outcome.FLAGS:
        outcome = Outcome(("k",), Status.FAILED)
        setattr(outcome, name, True)
        assert outcome.flags() == {name: True}


def test_an_outcome_has_no_free_form_extra_and_refuses_unknown_attributes() -> None:
    outcome = Outcome(("k1",), Status.OK)
    assert not hasattr(outcome, "extra")
    with pytest.raises(AttributeError):
        outcome.extra = {"in_doubt": True}  # type: ignore[attr-defined]


def test_status_and_ledger_state_are_strings_with_stable_values() -> None:
    assert [s.value for s in Status] == ["ok", "rejected", "failed", "skipped", "secret_lost"]
    assert [s.value for s in LedgerState] == ["sent", "done", "rejected", "failed"]
    assert Status("secret_lost") is Status.SECRET_LOST
    assert LedgerState("done") is LedgerState.DONE
    assert f"{Status.OK}" == "ok" and orjson.dumps(LedgerState.SENT) == b'"sent"'
    with pytest.raises(ValueError):
        LedgerState("in_doubt")


def test_record_and_request_defaults() -> None:
    record = Record(3, {"name": "api"})
    assert (record.index, record.data, record.key) == (3, {"name": "api"}, "")
    request = Request(
        "POST",
        "https://hub.docker.com/v2/namespaces/acme/repositories",
        (("Content-Type", "application/json"),),
        b'{"name":"api"}',
        ("api",),
        "create-repository",
    )
    assert (request.indexes, request.parts, request.idempotent, request.secrets) == (
        (),
        (),
        False,
        (),
    )
    assert all("authorization" not in name.lower() for name, _ in request.headers)


def test_requests_and_records_are_slotted() -> None:
    request = Request("DELETE", "https://hub.docker.com/v2/x", (), None, ("k",), "t")
    with pytest.raises(AttributeError):
        request.token = PAT  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        Record(0, {}).extra = 1  # type: ignore[attr-defined]


def test_a_rejection_keeps_the_record_as_it_came_and_why() -> None:
    rejected = Rejected(4, {"name": "Bad Name"}, "name: invalid", "k4", "name", 400)
    assert (rejected.index, rejected.error, rejected.field, rejected.status) == (
        4,
        "name: invalid",
        "name",
        400,
    )
    assert Rejected(2, None, "line 3: bad quoting", raw='a,"b').raw == 'a,"b'


def test_only_post_and_patch_can_do_something_twice() -> None:
    assert frozenset({"POST", "PATCH"}) == NON_IDEMPOTENT
    assert {"PUT", "DELETE", "GET"}.isdisjoint(NON_IDEMPOTENT)


def test_batching_defaults_to_one_request_per_record_and_is_frozen() -> None:
    batching = Batching()
    assert (batching.mode, batching.size, batching.property) == ("per_record", 1, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        batching.size = 100  # type: ignore[misc]
    assert Batching("json_property", 50, "invitees") == Batching("json_property", 50, "invitees")


def pat_entry() -> VaultEntry:
    body = {"uuid": PAT_UUID, "token_label": "ci", "scopes": ["repo:read"]}
    return VaultEntry.from_body(("ci-bot",), "create-pat", body, {"token": PAT})


def test_a_vault_entry_takes_the_id_and_label_of_a_pat_or_an_oat() -> None:
    pat = pat_entry()
    assert (pat.keys, pat.template, pat.token_id, pat.label) == (
        ("ci-bot",),
        "create-pat",
        PAT_UUID,
        "ci",
    )
    oat = VaultEntry.from_body(
        ("deploy",), "create-org-token", {"id": 42, "label": "deploy"}, {"token": OAT}
    )
    assert (oat.token_id, oat.label, oat.secrets) == ("42", "deploy", {"token": OAT})
    bare = VaultEntry.from_body(("x",), "create-pat", "not json", {"token": PAT})
    assert (bare.token_id, bare.label) == (None, None)


def test_a_vault_entry_copies_the_secrets_it_is_given() -> None:
    secrets = {"token": PAT}
    entry = VaultEntry(("k",), "create-pat", None, None, secrets)
    secrets["token"] = "changed"
    assert entry.secrets == {"token": PAT}


def test_a_vault_entry_repr_hides_every_secret_value() -> None:
    entry = VaultEntry(("a", "b"), "create-pat", PAT_UUID, "ci", {"token": PAT, "extra": OAT})
    text = repr(entry)
    assert PAT not in text and OAT not in text
    assert text == (
        f"VaultEntry(keys=('a', 'b'), template='create-pat', token_id='{PAT_UUID}', "
        f"label='ci', token={REDACTED}, extra={REDACTED})"
    )
    assert PAT not in str(entry) and PAT not in f"{[entry]}"
    assert PAT not in repr(Outcome(("ci-bot",), Status.OK, vault=entry))


def test_json_encoders_refuse_a_vault_entry() -> None:
    entry = pat_entry()
    with pytest.raises(TypeError):
        orjson.dumps(entry)
    with pytest.raises(TypeError):
        orjson.dumps({"vault": entry})
    with pytest.raises(TypeError):
        json.dumps(entry)
    assert not dataclasses.is_dataclass(entry)
    with pytest.raises(AttributeError):
        entry.note = "slots"  # type: ignore[attr-defined]


def test_the_vault_line_holds_the_key_the_ids_the_secret_and_when() -> None:
    written = calendar.timegm((2025, 3, 4, 5, 6, 7, 0, 0, 0)) + 0.9
    line = pat_entry().to_line(written)
    assert line == {
        "key": "ci-bot",
        "template": "create-pat",
        "token_id": PAT_UUID,
        "label": "ci",
        "token": PAT,
        "written_at": "2025-03-04T05:06:07Z",
    }


def test_a_batch_s_vault_line_lists_its_keys_and_a_secret_never_overwrites_a_field() -> None:
    entry = VaultEntry(("a", "b"), "create-pat", "id-1", "ci", {"label": PAT, "key": OAT})
    line = entry.to_line(0)
    assert line["key"] == ["a", "b"] and line["label"] == "ci"
    assert (line["secret.label"], line["secret.key"]) == (PAT, OAT)
    assert line["written_at"] == "1970-01-01T00:00:00Z"


def test_a_request_body_is_read_as_json_once_for_every_check() -> None:
    def request(body: bytes | None) -> Request:
        return Request("POST", "https://hub.docker.com/v2/x", (), body, ("k",), "t")

    assert request(b'{"role": "owner", "n": 1}').json_body() == {"role": "owner", "n": 1}
    assert request(b'{"role": "owner"}').body_field("role") == "owner"
    assert request(b'{"role": "owner"}').body_field("name") is None
    for body in (None, b"not json", b"[1, 2]", b'"text"'):
        assert request(body).body_field("role") is None
    assert request(b"not json").json_body() is None and request(None).json_body() is None
    assert request(b"[1, 2]").json_body() == [1, 2]
