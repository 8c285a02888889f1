"""Tests of the streaming record sources (sink/source/read.py)."""

from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sink.errors import SourceError
from sink.model import Record
from sink.source import read as sources
from sink.source.read import read_batches, read_records
from sink.source.rows import BadRow
from tests.source.support import (
    REPOS_CSV,
    REPOS_ROWS,
    Stdin,
    cli_config,
    data_of,
    many_rows,
    read_items,
    write,
)


def _parquet_bytes(table: pa.Table, **options: Any) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


REPOS_JSONL = b'{"name": "alpha", "is_private": true}\n{"name": "007", "tags": ["a", "b"]}\n'


REPOS_TABLE = pa.table(
    {
        "name": ["alpha", "007"],
        "is_private": [True, None],
        "tags": [["a", "b"], []],
        "extra": [{"k": 1}, {"k": 2}],
    }
)


REPOS_TABLE_ROWS = [
    (0, {"name": "alpha", "is_private": True, "tags": ["a", "b"], "extra": {"k": 1}}),
    (1, {"name": "007", "is_private": None, "tags": [], "extra": {"k": 2}}),
]


def test_jsonl_from_file_keeps_json_types(tmp_path: Path) -> None:
    items = read_items(write(tmp_path, "repos.jsonl", REPOS_JSONL))
    assert data_of(items) == [
        (0, {"name": "alpha", "is_private": True}),
        (1, {"name": "007", "tags": ["a", "b"]}),
    ]


def test_parquet_from_file_with_nested_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "repos.parquet", _parquet_bytes(REPOS_TABLE))
    assert data_of(read_items(path)) == REPOS_TABLE_ROWS


@pytest.mark.parametrize(
    ("fmt", "data", "expected"),
    [
        ("csv", REPOS_CSV, REPOS_ROWS),
        ("tsv", REPOS_CSV.replace(b",", b"\t"), REPOS_ROWS),
        (
            "jsonl",
            REPOS_JSONL,
            [(0, {"name": "alpha", "is_private": True}), (1, {"name": "007", "tags": ["a", "b"]})],
        ),
        ("parquet", _parquet_bytes(REPOS_TABLE), REPOS_TABLE_ROWS),
    ],
)
@pytest.mark.parametrize("pipe", [True, False])
def test_each_format_from_stdin(
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
    data: bytes,
    expected: list[tuple[int, dict[str, Any]]],
    pipe: bool,
) -> None:
    monkeypatch.setattr(sys, "stdin", Stdin(data, pipe=pipe))
    assert data_of(read_items("-", fmt)) == expected


def test_none_means_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", Stdin(REPOS_CSV))
    assert data_of(read_items(None, "csv")) == REPOS_ROWS


def test_binary_file_object(tmp_path: Path) -> None:
    path = write(tmp_path, "repos.bin", _parquet_bytes(REPOS_TABLE))
    with path.open("rb") as stream:
        assert data_of(read_items(stream)) == REPOS_TABLE_ROWS


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("r.csv", REPOS_CSV),
        ("r.CSV", REPOS_CSV),
        ("r.tsv", REPOS_CSV.replace(b",", b"\t")),
        ("r.jsonl", b'{"name": "alpha"}\n'),
        ("r.ndjson", b'{"name": "alpha"}\n'),
        ("r.parquet", _parquet_bytes(pa.table({"name": ["alpha"]}))),
        ("r.pq", _parquet_bytes(pa.table({"name": ["alpha"]}))),
    ],
)
def test_format_inferred_from_extension(tmp_path: Path, name: str, data: bytes) -> None:
    items = read_items(write(tmp_path, name, data))
    assert isinstance(items[0], Record)
    assert items[0].data["name"] == "alpha"


@pytest.mark.parametrize("alias", ["json", "ndjson", "JSONL"])
def test_format_aliases(tmp_path: Path, alias: str) -> None:
    path = write(tmp_path, "records.txt", b'{"name": "alpha"}\n')
    assert data_of(read_items(path, alias)) == [(0, {"name": "alpha"})]


def test_explicit_format_wins_over_extension(tmp_path: Path) -> None:
    path = write(tmp_path, "records.csv", b"name\tn\nalpha\t1\n")
    assert data_of(read_items(path, "tsv")) == [(0, {"name": "alpha", "n": "1"})]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_parquet_bytes(pa.table({"name": ["alpha"]})), [(0, {"name": "alpha"})]),
        (b'\n  {"name": "alpha"}\n', [(0, {"name": "alpha"})]),
        (b'\xef\xbb\xbf{"name": "alpha"}\n', [(0, {"name": "alpha"})]),
        (b"name\nalpha\n", [(0, {"name": "alpha"})]),
    ],
)
def test_stdin_format_sniffed_from_first_bytes(
    monkeypatch: pytest.MonkeyPatch, data: bytes, expected: list[tuple[int, dict[str, Any]]]
) -> None:
    monkeypatch.setattr(sys, "stdin", Stdin(data))
    assert data_of(read_items("-")) == expected


def test_unknown_format_names_it_and_the_accepted_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", REPOS_CSV)
    with pytest.raises(SourceError) as caught:
        read_batches(path, "xlsx")
    message = str(caught.value)
    assert "'xlsx'" in message
    for accepted in ("csv", "tsv", "jsonl", "parquet"):
        assert accepted in message


def test_unknown_extension_asks_for_a_format(tmp_path: Path) -> None:
    path = write(tmp_path, "records.xlsx", b"PK\x03\x04")
    with pytest.raises(SourceError, match=r"records\.xlsx.*\.xlsx.*csv, tsv, jsonl, parquet"):
        read_batches(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"
    with pytest.raises(SourceError, match=r"no such file: .*nowhere\.csv"):
        read_batches(path)


def test_batch_rows_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_rows"):
        read_batches(write(tmp_path, "r.csv", REPOS_CSV), batch_rows=0)


def test_broken_json_line_goes_on(tmp_path: Path) -> None:
    data = b'{"name": "a"}\n{"name": \n\n{"name": "c"}\n'
    items = read_items(write(tmp_path, "x.jsonl", data))
    assert data_of(items) == [(0, {"name": "a"}), (2, {"name": "c"})]
    bad = items[1]
    assert isinstance(bad, BadRow)
    assert (bad.index, bad.line, bad.raw) == (1, 2, '{"name": ')
    assert "invalid JSON" in bad.error


@pytest.mark.parametrize(
    ("line", "kind"),
    [(b"[1, 2]", "an array"), (b'"alpha"', "a string"), (b"3", "a number"), (b"null", "null")],
)
def test_json_line_that_is_not_an_object(tmp_path: Path, line: bytes, kind: str) -> None:
    items = read_items(write(tmp_path, "x.jsonl", b'{"a": 1}\n' + line + b'\n{"a": 3}\n'))
    assert items[1] == BadRow(1, 2, line.decode(), f"a record must be a JSON object, not {kind}")
    assert data_of(items) == [(0, {"a": 1}), (2, {"a": 3})]


def test_invalid_utf8_in_json_line_rejects_that_line(tmp_path: Path) -> None:
    items = read_items(write(tmp_path, "x.jsonl", b'{"a": 1}\n{"a": "\xff"}\n{"a": 3}\n'))
    bad = items[1]
    assert isinstance(bad, BadRow)
    assert (bad.index, bad.line) == (1, 2)
    assert "UTF-8" in bad.error
    assert data_of(items) == [(0, {"a": 1}), (2, {"a": 3})]


def test_jsonl_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    items = read_items(write(tmp_path, "x.jsonl", b'\n{"a": 1}\r\n   \n[]\n'))
    assert data_of(items) == [(0, {"a": 1})]
    assert isinstance(items[1], BadRow)
    assert (items[1].index, items[1].line) == (1, 4)


def test_truncated_parquet(tmp_path: Path) -> None:
    data = _parquet_bytes(pa.table({"name": [f"repo-{i}" for i in range(1000)]}))
    path = write(tmp_path, "x.parquet", data[: len(data) // 2])
    with pytest.raises(SourceError, match=r"x\.parquet: not a readable Parquet file"):
        read_items(path)


def test_parquet_with_a_damaged_page(tmp_path: Path) -> None:
    table = pa.table({"name": [f"repo-{i}" for i in range(5000)]})
    data = bytearray(_parquet_bytes(table, compression="snappy", row_group_size=1000))
    middle = len(data) // 2
    data[middle : middle + 200] = b"\x00" * 200
    path = write(tmp_path, "x.parquet", bytes(data))
    with pytest.raises(SourceError, match=r"x\.parquet: Parquet data is damaged after record"):
        read_items(path, batch_rows=500)


def test_not_parquet_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", Stdin(b"name\nalpha\n"))
    with pytest.raises(SourceError, match="<stdin>: not a readable Parquet file"):
        read_items("-", "parquet")


def test_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress(b"name\n" + b"alpha\n" * 10_000)
    with pytest.raises(SourceError, match=r"x\.csv\.gz"):
        read_items(write(tmp_path, "x.csv.gz", data[: len(data) // 2]))


@pytest.mark.parametrize(
    ("name", "data"),
    [("x.csv", b""), ("x.csv", b"\n\n"), ("x.csv", b"name,n\n"), ("x.jsonl", b""),
     ("x.jsonl", b"\n \n"), ("x.tsv", b"")],
)  # fmt: skip
def test_empty_text_input_has_no_records(tmp_path: Path, name: str, data: bytes) -> None:
    assert read_items(write(tmp_path, name, data)) == []


def test_empty_parquet_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"x\.parquet: not a readable Parquet file"):
        read_items(write(tmp_path, "x.parquet", b""))


def test_parquet_without_rows(tmp_path: Path) -> None:
    table = pa.table({"name": pa.array([], type=pa.string())})
    assert read_items(write(tmp_path, "x.parquet", _parquet_bytes(table))) == []


def test_empty_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", Stdin(b""))
    assert read_items("-") == []


def test_large_jsonl_in_several_batches(tmp_path: Path) -> None:
    names = many_rows(20_000)
    data = "".join(f'{{"name": "{name}"}}\n' for name in names).encode()
    batches = list(read_batches(write(tmp_path, "x.jsonl", data), batch_rows=3000))
    assert [len(batch) for batch in batches] == [3000] * 6 + [2000]
    records = [item for batch in batches for item in batch]
    assert [(r.index, r.data["name"]) for r in records] == list(enumerate(names))  # type: ignore[union-attr]


def test_large_parquet_in_several_batches_across_row_groups(tmp_path: Path) -> None:
    names = many_rows(30_000)
    data = _parquet_bytes(pa.table({"name": names}), row_group_size=7000)
    batches = list(read_batches(write(tmp_path, "x.parquet", data), batch_rows=4096))
    assert len(batches) > 7
    assert all(len(batch) <= 4096 for batch in batches)
    records = [item for batch in batches for item in batch]
    assert [(r.index, r.data["name"]) for r in records] == list(enumerate(names))  # type: ignore[union-attr]


def test_large_parquet_from_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    names = many_rows(20_000)
    monkeypatch.setattr(sys, "stdin", Stdin(_parquet_bytes(pa.table({"name": names}))))
    records = read_items("-")
    assert [(r.index, r.data["name"]) for r in records] == list(enumerate(names))  # type: ignore[union-attr]


class _Zeros(io.RawIOBase):
    """A pipe of ``size`` NUL bytes with no line break (``head -c SIZE /dev/zero``), then
    ``tail``; the bytes are made as they are read, never held."""

    def __init__(self, size: int, tail: bytes = b"") -> None:
        self._left = size
        self._tail = memoryview(tail)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._left:
            size = min(len(view), self._left)
            view[:size] = bytes(size)
            self._left -= size
            return size
        size = min(len(view), len(self._tail))
        view[:size] = self._tail[:size]
        self._tail = self._tail[size:]
        return size


def test_a_line_longer_than_the_cap_is_rejected_with_its_position_and_reading_goes_on() -> None:
    data = b'{"name": "a"}\n{"name": "' + b"x" * 5000 + b'"}\n\n{"name": "b"}\n'
    items = list(read_records(io.BytesIO(data), "jsonl", max_record_bytes=1024))
    assert [type(item) for item in items] == [Record, BadRow, Record]
    bad = items[1]
    assert isinstance(bad, BadRow)
    assert (bad.index, bad.line) == (1, 2)
    assert "longer than 1,024 bytes (max_record_bytes)" in bad.error
    assert len(bad.raw) < 300  # a piece of it, for the rejects file, not the whole line
    assert items[2] == Record(2, {"name": "b"})


def test_a_line_exactly_at_the_cap_is_read() -> None:
    line = b'{"n": "' + b"x" * (1024 - 10) + b'"}'
    assert len(line) == 1024 - 1
    for ending in (b"\n", b"\r\n", b""):
        items = list(read_records(io.BytesIO(line + b"x" + ending), "jsonl", max_record_bytes=1024))
        assert len(items) == 1 and isinstance(items[0], BadRow)  # not JSON, but not too long
        assert "longer than" not in items[0].error
    assert read_records(io.BytesIO(line + b"\n"), "jsonl", max_record_bytes=1024)


def test_an_endless_line_of_nuls_costs_no_memory() -> None:
    import tracemalloc

    stream = io.BufferedReader(_Zeros(8 << 20, b'\n{"name": "after"}\n'))
    tracemalloc.start()
    try:
        items = list(read_records(stream, "jsonl", max_record_bytes=4096))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # the 8 MiB line was never held
    assert [type(item) for item in items] == [BadRow, Record]
    assert isinstance(items[0], BadRow) and items[0].line == 1
    assert items[1] == Record(1, {"name": "after"})


def test_the_default_cap_is_a_mebibyte() -> None:
    assert sources.MAX_RECORD_BYTES == 1 << 20
    big = b'{"n": "' + b"x" * (1 << 20) + b'"}\n'
    [item] = read_records(io.BytesIO(big), "jsonl")
    assert isinstance(item, BadRow) and "longer than 1,048,576 bytes" in item.error


def test_jsonl_integers_beyond_64_bits_stay_exact() -> None:
    big = 2**70 + 1
    data = b'{"a": %d, "b": 9007199254740993, "c": -%d, "d": [%d], "e": 1.5}\n' % (big, big, big)
    [record] = read_records(io.BytesIO(data), "jsonl")
    assert isinstance(record, Record)
    assert record.data == {"a": big, "b": 2**53 + 1, "c": -big, "d": [big], "e": 1.5}
    assert type(record.data["a"]) is int


def test_parquet_int64_stays_int(tmp_path: Path) -> None:
    table = pa.table({"n": pa.array([2**63 - 1, 2**53 + 1], pa.int64())})
    items = read_items(write(tmp_path, "n.parquet", _parquet_bytes(table)))
    assert data_of(items) == [(0, {"n": 2**63 - 1}), (1, {"n": 2**53 + 1})]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("r.csv", b'{"name": "alpha"}\n{"name": "beta"}\n', "first line is a JSON object"),
        ("r.tsv", b'\n{"name": "alpha"}\n', "first line is a JSON object"),
        ("r.csv", b"\x00" * (3 << 20), "NUL bytes"),
        ("r.csv", "name,n\nalpha,1\n".encode("utf-16"), "NUL bytes"),
        ("r.csv", b"name\tn\nalpha\t1\n", "separated by tabs"),
        ("r.tsv", b"name,n\nalpha,1\n", "separated by commas"),
        ("r.jsonl", b"name,n\nalpha,1\n", "looks like a CSV header"),
        ("r.csv", _parquet_bytes(pa.table({"name": ["alpha"]})), "Parquet"),
        ("r.jsonl", gzip.compress(b'{"name": "alpha"}\n'), "gzip"),
    ],
)
def test_a_file_that_is_not_its_named_format_is_refused(
    tmp_path: Path, name: str, data: bytes, message: str
) -> None:
    path = write(tmp_path, name, data)
    with pytest.raises(SourceError, match=rf"r\.\w+ is not [A-Za-z ]+: .*{message}"):
        read_items(path)


def test_a_nul_file_on_stdin_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", Stdin(b"\x00" * (1 << 20), pipe=True))
    with pytest.raises(SourceError, match=r"<stdin> is not CSV: it holds NUL bytes"):
        read_items("-")


def _rejects(tmp_path: Path) -> list[dict[str, Any]]:
    import orjson

    text = (tmp_path / "rejects.jsonl").read_bytes()
    return [orjson.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("rows", [b"", b"\n\n", b"name\n", b"name,description\n\n"])
def test_run_of_an_empty_input_warns_and_exits_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], rows: bytes
) -> None:
    from sink.cli.main import ExitCode, main
    from sink.hubsim import Simulator
    from tests.seed import OAT

    monkeypatch.setenv("SINK_TEST_SECRET", OAT)
    path = cli_config(tmp_path, rows)
    with Simulator() as hub:
        code = main(["run", str(path), "--base-url", hub.url])
        assert main(["preview", str(path)]) == ExitCode.OK
    err = capsys.readouterr().err
    assert code == ExitCode.REJECTED
    assert "the input has no records: nothing was sent" in err
    assert err.count("the input has no records") == 2  # the run, then the preview


def test_rejects_hold_raw_lines_excluded_columns_and_bad_utf8_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sink.cli.main import ExitCode, main
    from sink.hubsim import Simulator
    from tests.seed import OAT

    monkeypatch.setenv("SINK_TEST_SECRET", OAT)
    rows = (
        b"name,description,owner\n"
        b"repo-ok,fine,ann\n"
        b"repo-ragged,too,many,cells\n"
        b"Bad_Name,invalid,bob\n"
        b"repo-\xff,bytes,cy\n"
        b"repo-last,fine,dee\n"
    )
    path = cli_config(tmp_path, rows, exclude=["owner"])
    with Simulator() as hub:
        code = main(["run", str(path), "--base-url", hub.url])
        created = {r["name"] for r in hub.state()["repositories"] if r["namespace"] == "acme"}
    assert code == ExitCode.REJECTED
    assert {"repo-ok", "repo-last"} <= created
    by_index = {line["_sink_index"]: line for line in _rejects(tmp_path)}
    assert by_index[1]["_sink_raw"] == "repo-ragged,too,many,cells"
    assert "expected 3 columns, got 4" in by_index[1]["_sink_error"]
    assert by_index[2]["name"] == "Bad_Name" and by_index[2]["owner"] == "bob"
    assert by_index[3]["_sink_raw"] == "repo-\ufffd,bytes,cy"
    assert "invalid UTF-8" in by_index[3]["_sink_error"]
