"""The source → render stages (sink/pipeline.py): prepared and keyed records, batches cut the
same whatever the chunks, the input's columns checked first, and ``sink test``'s request."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from sink.destination import Destination, open_destination
from sink.errors import ConfigError
from sink.model import Record, Rejected, Request
from sink.outputs.files import reject_line
from sink.pipeline import (
    REPLAY_FIELDS,
    Carried,
    Rendering,
    pick_record,
    prepare,
    record_key,
    records,
    render_stream,
)
from sink.pipeline import test_request as request_for_test  # not a test: pytest would collect it
from sink.source.rows import BadRow, as_read

CONNECTION = {"identifier": "acme", "secret_env": "SINK_TEST_SECRET"}


def destination(folder: Path, rows: list[dict[str, Any]], **config: Any) -> Destination:
    (folder / "records.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    data = {"connection": CONNECTION, "input": "records.jsonl", **config}
    path = folder / "dest.yaml"
    path.write_text(yaml.safe_dump(data))
    return open_destination(path)


def inp(dest: Destination) -> Path | None:
    """The destination's input file (relative to its config's folder)."""
    return dest.path(dest.config.input)


def invites(folder: Path, rows: list[dict[str, Any]], size: int = 2) -> Destination:
    return destination(
        folder,
        rows,
        template="bulk-invite",
        settings={"org": "acme"},
        batching={"mode": "json_property", "property": "invitees", "size": size},
    )


def repos(folder: Path, rows: list[dict[str, Any]], **config: Any) -> Destination:
    return destination(
        folder, rows, template="create-repository", settings={"namespace": "acme"}, **config
    )


def people(count: int, team: str = "developers") -> list[dict[str, Any]]:
    return [{"invitee": f"user{i}@example.com", "team": team} for i in range(count)]


def shown(items: list[Carried | Rejected]) -> list[tuple[Any, ...]]:
    """Each request's keys and invitees, each rejection's index: to compare two streams."""
    out: list[tuple[Any, ...]] = []
    for item in items:
        if isinstance(item, Rejected):
            out.append(("rejected", item.index))
        else:
            request, carried = item
            assert request.keys == tuple(record.key for record in carried)
            out.append((request.keys, orjson.loads(request.body or b"")["invitees"]))
    return out


def test_a_batch_is_cut_when_full_or_at_the_end_never_between_chunks(tmp_path: Path) -> None:
    dest = invites(tmp_path, people(5))
    prepared = list(records(dest, inp(dest)))
    rendering = Rendering(dest)
    first = list(rendering.feed(prepared[:1]))
    assert first == []  # one invitee waits for a second one
    second = list(rendering.feed(prepared[1:3]))
    third = list(rendering.feed(prepared[3:]))
    rest = list(rendering.finish())
    assert [len(second), len(third), len(rest)] == [1, 1, 1]
    chunked = shown(second + third + rest)
    assert chunked == [
        ((prepared[0].key, prepared[1].key), ["user0@example.com", "user1@example.com"]),
        ((prepared[2].key, prepared[3].key), ["user2@example.com", "user3@example.com"]),
        ((prepared[4].key,), ["user4@example.com"]),
    ]
    whole = Rendering(dest)
    at_once = shown(list(itertools.chain(whole.feed(prepared), whole.finish())))
    assert at_once == chunked  # the preview feeds everything at once: the same requests
    streamed = list(render_stream(dest, records(dest, inp(dest)), with_records=True))
    assert shown(streamed) == chunked


def test_records_that_differ_outside_the_batch_field_never_share_a_request(
    tmp_path: Path,
) -> None:
    rows = [*people(1, "developers"), *people(1, "owners"), *people(1, "developers")]
    dest = invites(tmp_path, rows, size=10)
    items = list(render_stream(dest, records(dest, inp(dest)), with_records=True))
    bodies = [orjson.loads(item[0].body or b"") for item in items if not isinstance(item, Rejected)]
    assert sorted((body["team"], len(body["invitees"])) for body in bodies) == [
        ("developers", 2),
        ("owners", 1),
    ]


def test_a_record_that_cannot_render_is_rejected_and_the_batch_goes_on(tmp_path: Path) -> None:
    rows = [*people(1), {"invitee": "", "team": "developers"}, *people(1)]
    dest = invites(tmp_path, rows)
    items = list(render_stream(dest, records(dest, inp(dest)), with_records=True))
    rejected = [item for item in items if isinstance(item, Rejected)]
    sent = [item for item in items if not isinstance(item, Rejected)]
    assert [r.index for r in rejected] == [1]
    assert rejected[0].data == rows[1] and rejected[0].key  # as it came in, with its key
    assert [len(carried) for _, carried in sent] == [2]


def test_per_record_rendering_keeps_the_input_order_with_or_without_records(
    tmp_path: Path,
) -> None:
    rows = [{"name": "api"}, {"name": "Bad Name!"}, {"name": "web"}]
    dest = repos(tmp_path, rows)
    plain = list(render_stream(dest, records(dest, inp(dest))))
    assert [type(item) for item in plain] == [Request, Rejected, Request]
    assert [item.keys for item in plain if isinstance(item, Request)] == [
        (record_key(rows[0], "create-repository", None),),
        (record_key(rows[2], "create-repository", None),),
    ]
    carried = list(render_stream(dest, records(dest, inp(dest)), with_records=True))
    first = carried[0]
    assert not isinstance(first, Rejected)
    request, (record,) = first
    assert record.data == {"name": "api"} and request.keys == (record.key,)
    assert request.url == "https://hub.docker.com/v2/namespaces/acme/repositories"


def test_records_drop_excluded_columns_and_take_the_key_field(tmp_path: Path) -> None:
    rows = [
        {"name": "api", "owner": "ann"},
        {"name": "", "owner": "bob"},
        {"name": "web", "owner": "cy"},
    ]
    dest = repos(tmp_path, rows, exclude=["owner"], key_field="name")
    items = list(records(dest, inp(dest)))
    assert [(type(item).__name__, item.key) for item in items] == [
        ("Record", "api"),
        ("Rejected", ""),
        ("Record", "web"),
    ]
    assert items[0].data == {"name": "api"}
    missing = items[1]
    assert isinstance(missing, Rejected)
    assert (missing.error, missing.field) == ("key field 'name' is missing", "name")


def test_a_name_that_matches_no_column_stops_before_the_first_record(tmp_path: Path) -> None:
    rows = [{"name": "api", "description": "x"}]
    dest = repos(tmp_path, rows, exclude=["descriptoin"])
    with pytest.raises(ConfigError, match="did you mean 'description'"):
        next(records(dest, inp(dest)))
    dest = repos(tmp_path, rows, key_field="nmae")
    with pytest.raises(ConfigError, match="nmae"):
        list(records(dest, inp(dest)))


def test_record_key_is_stable_per_content_and_template() -> None:
    one = record_key({"name": "api", "private": True}, "create-repository", None)
    assert one == record_key({"private": True, "name": "api"}, "create-repository", None)
    assert len(one) == 24 and int(one, 16) >= 0
    assert one != record_key({"name": "api", "private": True}, "delete-repository", None)
    assert one != record_key({"name": "api", "private": False}, "create-repository", None)
    assert record_key({"id": 42}, "t", "id") == "42"


def test_prepare_drops_the_rejects_file_s_fields_and_keeps_the_record_as_read() -> None:
    replayed = {
        "name": "api",
        "note": "internal",
        "_sink_error": "old reason",
        "_sink_status": 400,
        "_sink_index": 3,
        "_sink_key": "api",
    }
    [record] = prepare([Record(0, replayed)], exclude=["note"], key_field="name")
    assert isinstance(record, Record)
    assert record.data == {"name": "api"} and record.key == "api"
    assert {"_sink_error", "_sink_status", "_sink_index", "_sink_key"} <= REPLAY_FIELDS
    line = reject_line(record.data, "refused again", None, 0, record.key)
    assert (line["note"], line["_sink_error"]) == ("internal", "refused again")


def test_prepare_turns_unreadable_rows_into_rejections() -> None:
    rows: list[Record | BadRow] = [
        BadRow(0, 2, "a,b,c", "expected 2 columns, got 3"),
        BadRow(1, None, "{", "not a JSON object"),
        Record(2, {"_sink_raw": "x,y,z", "_sink_error": "line 4: expected 2 columns"}),
    ]
    first, second, third = prepare(rows)
    assert isinstance(first, Rejected) and isinstance(second, Rejected)
    assert (first.error, first.raw, first.data) == (
        "line 2: expected 2 columns, got 3",
        "a,b,c",
        None,
    )
    assert second.error == "not a JSON object"
    assert isinstance(third, Rejected) and (third.raw, third.data) == ("x,y,z", None)
    assert "could not be read" in third.error


def test_prepare_keeps_the_record_as_read_for_the_rejects() -> None:
    from sink.outputs.files import reject_line
    from sink.pipeline import prepare

    rows = [Record(0, {"name": "alpha", "note": "internal", "_sink_error": "old"})]
    [record] = prepare(rows, exclude=["note"], key_field="name")
    assert isinstance(record, Record)
    assert record.data == {"name": "alpha"}
    assert as_read(record.data) == {
        "name": "alpha",
        "note": "internal",
        "_sink_error": "old",
    }
    line = reject_line(record.data, "refused", None, 0, record.key)
    assert line["note"] == "internal" and line["_sink_error"] == "refused"


def test_prepare_rejects_a_replayed_unreadable_row_again() -> None:
    from sink.model import Rejected
    from sink.pipeline import prepare

    rows = [Record(0, {"_sink_raw": "a,b,c", "_sink_error": "line 2: expected 2 columns"})]
    [rejected] = prepare(rows, key_field="name")
    assert isinstance(rejected, Rejected)
    assert rejected.raw == "a,b,c" and rejected.data is None


def test_prepare_without_keys_leaves_them_empty() -> None:
    [record] = prepare([Record(0, {"name": ""})], key_field="name", keyed=False)
    assert isinstance(record, Record) and record.key == ""


def test_pick_record_counts_from_one_and_names_what_is_wrong(tmp_path: Path) -> None:
    dest = repos(tmp_path, [{"name": "api"}, {"name": "web"}])
    assert pick_record(dest, inp(dest), None, 2).data == {"name": "web"}
    with pytest.raises(ConfigError, match="--record counts from 1"):
        pick_record(dest, inp(dest), None, 0)
    with pytest.raises(ConfigError, match="the input has fewer than 3 records"):
        pick_record(dest, inp(dest), None, 3)
    (tmp_path / "records.jsonl").write_bytes(b'{"name": "api"}\n[1, 2]\n')
    with pytest.raises(ConfigError, match="record 2 cannot be read: "):
        pick_record(dest, inp(dest), None, 2)


def test_the_test_request_is_the_record_rendered_under_its_own_key(tmp_path: Path) -> None:
    dest = repos(tmp_path, [{"name": "api"}])
    record = pick_record(dest, inp(dest), None, 1)
    request, (carried,) = request_for_test(dest, record, None)
    assert carried is record and request.keys == (record.key,)
    assert orjson.loads(request.body or b"")["name"] == "api"


def test_a_hand_edited_body_is_a_record_of_its_own(tmp_path: Path) -> None:
    dest = repos(tmp_path, [{"name": "api"}])
    record = pick_record(dest, inp(dest), None, 1)
    body = '{"namespace": "acme", "name": "api-edited", "is_private": true}'
    request, (edited,) = request_for_test(dest, record, body)
    value = orjson.loads(body)
    digest = hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert edited.key == f"hand-edited:{digest[:16]}" != record.key
    assert request.keys == (edited.key,) and edited.data == record.data
    assert orjson.loads(request.body or b"") == value
    reordered = '{"is_private": true, "name": "api-edited", "namespace": "acme"}'
    assert request_for_test(dest, record, reordered)[1][0].key == edited.key  # the same JSON


def test_a_hand_edited_body_that_is_not_json_is_a_config_error(tmp_path: Path) -> None:
    dest = repos(tmp_path, [{"name": "api"}])
    with pytest.raises(ConfigError, match="--body is not valid JSON") as raised:
        request_for_test(dest, None, '{"name": ')
    assert isinstance(raised.value.__cause__, orjson.JSONDecodeError)


def test_without_a_record_the_test_request_renders_an_empty_one(tmp_path: Path) -> None:
    dest = destination(
        tmp_path,
        [],
        manual={"method": "DELETE", "url": "/v2/repositories/acme/api"},
    )
    request, (record,) = request_for_test(dest, None, None)
    assert (record.key, record.data, record.index) == ("test", {}, 0)
    assert (request.method, request.url) == (
        "DELETE",
        "https://hub.docker.com/v2/repositories/acme/api",
    )
