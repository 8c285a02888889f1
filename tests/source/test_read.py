"""Tests of the streaming record sources (sink/source/read.py)."""

from __future__ import annotations

import csv
import gzip
import io
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sink.errors import SourceError
from sink.model import Record
from sink.source import read as sources
from sink.source.read import BadRow, read_batches, read_records


class _Stdin:
    """Stands in for ``sys.stdin``: only ``.buffer`` is read."""

    def __init__(self, data: bytes, *, pipe: bool = True) -> None:
        self.buffer = _Pipe(data) if pipe else io.BytesIO(data)


class _Pipe(io.RawIOBase):
    """A non-seekable byte stream that hands out small reads, like a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), len(self._data), 7000)
        buffer[:size] = self._data[:size]
        self._data = self._data[size:]
        return size


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _parquet_bytes(table: pa.Table, **options: Any) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def _items(source: Any, fmt: str | None = None, **options: Any) -> list[Record | BadRow]:
    return list(read_records(source, fmt, **options))


def _data(items: list[Record | BadRow]) -> list[tuple[int, dict[str, Any]]]:
    return [(item.index, item.data) for item in items if isinstance(item, Record)]


REPOS_CSV = b"name,description,is_private\nalpha,first one,true\n007,,false\n"
REPOS_ROWS = [
    (0, {"name": "alpha", "description": "first one", "is_private": "true"}),
    (1, {"name": "007", "description": None, "is_private": "false"}),
]
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


# Each format, from a file and from stdin ---------------------------------------------------------


def test_csv_from_file_keeps_every_cell_a_string(tmp_path: Path) -> None:
    path = _write(tmp_path, "repos.csv", REPOS_CSV)
    items = _items(path)
    assert _data(items) == REPOS_ROWS
    assert all(item.key == "" for item in items if isinstance(item, Record))


def test_csv_cells_that_look_like_other_types_stay_strings(tmp_path: Path) -> None:
    data = b"a,b,c,d,e\n007,true,1e3,2024-01-01,NA\nnull,nan,-0,N/A,0x1F\n"
    rows = _data(_items(_write(tmp_path, "x.csv", data)))
    assert rows == [
        (0, {"a": "007", "b": "true", "c": "1e3", "d": "2024-01-01", "e": "NA"}),
        (1, {"a": "null", "b": "nan", "c": "-0", "d": "N/A", "e": "0x1F"}),
    ]


def test_csv_empty_cells_quoted_or_not_are_none(tmp_path: Path) -> None:
    data = b'a,b,c\n,"",x\n'
    assert _data(_items(_write(tmp_path, "x.csv", data))) == [(0, {"a": None, "b": None, "c": "x"})]


def test_csv_quoted_values_keep_newlines_commas_and_quotes(tmp_path: Path) -> None:
    data = b'name,description\nalpha,"two\nlines, and a ""quote"""\nbeta,"crlf\r\nhere"\n'
    assert _data(_items(_write(tmp_path, "x.csv", data))) == [
        (0, {"name": "alpha", "description": 'two\nlines, and a "quote"'}),
        (1, {"name": "beta", "description": "crlf\r\nhere"}),
    ]


def test_tsv_from_file(tmp_path: Path) -> None:
    data = b"name\tdescription\nalpha\ta, b and c\n007\t\n"
    assert _data(_items(_write(tmp_path, "repos.tsv", data))) == [
        (0, {"name": "alpha", "description": "a, b and c"}),
        (1, {"name": "007", "description": None}),
    ]


def test_csv_with_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbfname,n\r\nalpha,1\r\n"
    assert _data(_items(_write(tmp_path, "x.csv", data))) == [(0, {"name": "alpha", "n": "1"})]


def test_jsonl_from_file_keeps_json_types(tmp_path: Path) -> None:
    items = _items(_write(tmp_path, "repos.jsonl", REPOS_JSONL))
    assert _data(items) == [
        (0, {"name": "alpha", "is_private": True}),
        (1, {"name": "007", "tags": ["a", "b"]}),
    ]


def test_parquet_from_file_with_nested_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, "repos.parquet", _parquet_bytes(REPOS_TABLE))
    assert _data(_items(path)) == REPOS_TABLE_ROWS


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
    monkeypatch.setattr(sys, "stdin", _Stdin(data, pipe=pipe))
    assert _data(_items("-", fmt)) == expected


def test_none_means_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", _Stdin(REPOS_CSV))
    assert _data(_items(None, "csv")) == REPOS_ROWS


def test_binary_file_object(tmp_path: Path) -> None:
    path = _write(tmp_path, "repos.bin", _parquet_bytes(REPOS_TABLE))
    with path.open("rb") as stream:
        assert _data(_items(stream)) == REPOS_TABLE_ROWS


# Format inference and sniffing ------------------------------------------------------------------


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
    items = _items(_write(tmp_path, name, data))
    assert isinstance(items[0], Record)
    assert items[0].data["name"] == "alpha"


def test_gzipped_csv_and_jsonl(tmp_path: Path) -> None:
    csv_path = _write(tmp_path, "r.csv.gz", gzip.compress(REPOS_CSV))
    jsonl_path = _write(tmp_path, "r.jsonl.gz", gzip.compress(b'{"name": "alpha"}\n'))
    assert _data(_items(csv_path)) == REPOS_ROWS
    assert _data(_items(jsonl_path)) == [(0, {"name": "alpha"})]


@pytest.mark.parametrize("alias", ["json", "ndjson", "JSONL"])
def test_format_aliases(tmp_path: Path, alias: str) -> None:
    path = _write(tmp_path, "records.txt", b'{"name": "alpha"}\n')
    assert _data(_items(path, alias)) == [(0, {"name": "alpha"})]


def test_explicit_format_wins_over_extension(tmp_path: Path) -> None:
    path = _write(tmp_path, "records.csv", b"name\tn\nalpha\t1\n")
    assert _data(_items(path, "tsv")) == [(0, {"name": "alpha", "n": "1"})]


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
    monkeypatch.setattr(sys, "stdin", _Stdin(data))
    assert _data(_items("-")) == expected


def test_unknown_format_names_it_and_the_accepted_ones(tmp_path: Path) -> None:
    path = _write(tmp_path, "r.csv", REPOS_CSV)
    with pytest.raises(SourceError) as caught:
        read_batches(path, "xlsx")
    message = str(caught.value)
    assert "'xlsx'" in message
    for accepted in ("csv", "tsv", "jsonl", "parquet"):
        assert accepted in message


def test_unknown_extension_asks_for_a_format(tmp_path: Path) -> None:
    path = _write(tmp_path, "records.xlsx", b"PK\x03\x04")
    with pytest.raises(SourceError, match=r"records\.xlsx.*\.xlsx.*csv, tsv, jsonl, parquet"):
        read_batches(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"
    with pytest.raises(SourceError, match=r"no such file: .*nowhere\.csv"):
        read_batches(path)


def test_batch_rows_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_rows"):
        read_batches(_write(tmp_path, "r.csv", REPOS_CSV), batch_rows=0)


# Bad rows: the rest goes on ---------------------------------------------------------------------


def test_ragged_csv_rows_become_bad_rows_in_place(tmp_path: Path) -> None:
    data = (
        b"\n"  # line 1: blank, before the header
        b"name,n\n"  # line 2
        b"a,1\n"  # line 3, index 0
        b"b\n"  # line 4, index 1: too few
        b'"c\nstill c",3\n'  # lines 5-6, index 2
        b"\n"  # line 7: blank, not a record
        b",\n"  # line 8: every cell empty, not a record
        b"d,4,extra\n"  # line 9, index 3: too many
        b'"e\n\ne",5,x\n'  # lines 10-12, index 4: too many, over three lines
        b"f,6\n"  # line 13, index 5
    )
    items = _items(_write(tmp_path, "x.csv", data))
    assert [type(item).__name__ for item in items] == [
        "Record", "BadRow", "Record", "BadRow", "BadRow", "Record",
    ]  # fmt: skip
    assert [item.index for item in items] == [0, 1, 2, 3, 4, 5]
    assert items[1] == BadRow(1, 4, "b", "expected 2 columns, got 1")
    assert items[3] == BadRow(3, 9, "d,4,extra", "expected 2 columns, got 3")
    bad = items[4]
    assert isinstance(bad, BadRow)
    assert (bad.index, bad.line, bad.raw) == (4, 10, '"e\n\ne",5,x')
    assert _data(items) == [
        (0, {"name": "a", "n": "1"}),
        (2, {"name": "c\nstill c", "n": "3"}),
        (5, {"name": "f", "n": "6"}),
    ]


def test_ragged_rows_across_many_blocks_keep_order(tmp_path: Path) -> None:
    lines = [b"name,n,description"]
    expected: list[tuple[int, int]] = []  # (index, line) of the bad rows
    line = 1
    for i in range(60_000):
        line += 1
        if i % 7919 == 3:
            lines.append(b"bad,row")
            expected.append((i, line))
        elif i % 5003 == 0:
            lines.append(b'"multi\nline",%d,"x\ny"\n' % i)  # three lines, then a blank one
            line += 3
        else:
            lines.append(b"repo-%d,%d,some words to make the file bigger than a block" % (i, i))
    path = _write(tmp_path, "big.csv", b"\n".join(lines) + b"\n")
    items = _items(path, batch_rows=1000)
    assert [item.index for item in items] == list(range(60_000))
    bad = [(item.index, item.line) for item in items if isinstance(item, BadRow)]
    assert len(bad) == 8
    assert bad == expected
    assert isinstance(items[5003], Record)
    assert items[5003].data["n"] == "5003"
    assert items[59_999].data["name"] == "repo-59999"  # type: ignore[union-attr]


def test_broken_json_line_goes_on(tmp_path: Path) -> None:
    data = b'{"name": "a"}\n{"name": \n\n{"name": "c"}\n'
    items = _items(_write(tmp_path, "x.jsonl", data))
    assert _data(items) == [(0, {"name": "a"}), (2, {"name": "c"})]
    bad = items[1]
    assert isinstance(bad, BadRow)
    assert (bad.index, bad.line, bad.raw) == (1, 2, '{"name": ')
    assert "invalid JSON" in bad.error


@pytest.mark.parametrize(
    ("line", "kind"),
    [(b"[1, 2]", "an array"), (b'"alpha"', "a string"), (b"3", "a number"), (b"null", "null")],
)
def test_json_line_that_is_not_an_object(tmp_path: Path, line: bytes, kind: str) -> None:
    items = _items(_write(tmp_path, "x.jsonl", b'{"a": 1}\n' + line + b'\n{"a": 3}\n'))
    assert items[1] == BadRow(1, 2, line.decode(), f"a record must be a JSON object, not {kind}")
    assert _data(items) == [(0, {"a": 1}), (2, {"a": 3})]


def test_invalid_utf8_in_json_line_rejects_that_line(tmp_path: Path) -> None:
    items = _items(_write(tmp_path, "x.jsonl", b'{"a": 1}\n{"a": "\xff"}\n{"a": 3}\n'))
    bad = items[1]
    assert isinstance(bad, BadRow)
    assert (bad.index, bad.line) == (1, 2)
    assert "UTF-8" in bad.error
    assert _data(items) == [(0, {"a": 1}), (2, {"a": 3})]


def test_jsonl_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    items = _items(_write(tmp_path, "x.jsonl", b'\n{"a": 1}\r\n   \n[]\n'))
    assert _data(items) == [(0, {"a": 1})]
    assert isinstance(items[1], BadRow)
    assert (items[1].index, items[1].line) == (1, 4)


# Input that cannot be read at all ---------------------------------------------------------------


def test_invalid_utf8_in_csv_rejects_that_row_and_goes_on(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.csv", b"name,n\nalpha,1\nbeta,\xff\xfe\ngamma,3\n")
    items = _items(path)
    assert [type(item) for item in items] == [Record, BadRow, Record]
    bad = items[1]
    assert isinstance(bad, BadRow) and (bad.index, bad.line) == (1, 3)
    assert "invalid UTF-8 in column 'n'" in bad.error
    assert bad.raw == "beta,\ufffd\ufffd"
    assert items[2] == Record(2, {"name": "gamma", "n": "3"})


def test_invalid_utf8_in_a_ragged_csv_row(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.csv", b"name,n\nalpha,1\nbeta,\xff,3\n")
    with pytest.raises(SourceError, match=r"invalid UTF-8 at line 3"):
        _items(path)


def test_invalid_utf8_in_csv_from_stdin_rejects_the_row_by_its_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = b"name,n\n" + b"alpha,1\n" * 10 + b'beta,"two\nlines \xff"\n' + b"omega,9\n"
    monkeypatch.setattr(sys, "stdin", _Stdin(data))
    items = _items("-", "csv")
    bad = [item for item in items if isinstance(item, BadRow)]
    assert [(b.index, b.line) for b in bad] == [(10, 12)]
    assert bad[0].raw == 'beta,"two\nlines \ufffd"'
    assert items[-1] == Record(11, {"name": "omega", "n": "9"})


def test_a_header_that_is_not_utf8_stops(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.csv", b"na\xffme,n\nalpha,1\n")
    with pytest.raises(SourceError, match=r"x\.csv, line 1: the header is not valid UTF-8"):
        _items(path)


def test_truncated_parquet(tmp_path: Path) -> None:
    data = _parquet_bytes(pa.table({"name": [f"repo-{i}" for i in range(1000)]}))
    path = _write(tmp_path, "x.parquet", data[: len(data) // 2])
    with pytest.raises(SourceError, match=r"x\.parquet: not a readable Parquet file"):
        _items(path)


def test_parquet_with_a_damaged_page(tmp_path: Path) -> None:
    table = pa.table({"name": [f"repo-{i}" for i in range(5000)]})
    data = bytearray(_parquet_bytes(table, compression="snappy", row_group_size=1000))
    middle = len(data) // 2
    data[middle : middle + 200] = b"\x00" * 200
    path = _write(tmp_path, "x.parquet", bytes(data))
    with pytest.raises(SourceError, match=r"x\.parquet: Parquet data is damaged after record"):
        _items(path, batch_rows=500)


def test_not_parquet_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", _Stdin(b"name\nalpha\n"))
    with pytest.raises(SourceError, match="<stdin>: not a readable Parquet file"):
        _items("-", "parquet")


def test_duplicate_header_names(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"columns 1 and 3 have the same name 'name'"):
        _items(_write(tmp_path, "x.csv", b"name,n,name\n1,2,3\n"))


def test_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress(b"name\n" + b"alpha\n" * 10_000)
    with pytest.raises(SourceError, match=r"x\.csv\.gz"):
        _items(_write(tmp_path, "x.csv.gz", data[: len(data) // 2]))


# Empty input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [("x.csv", b""), ("x.csv", b"\n\n"), ("x.csv", b"name,n\n"), ("x.jsonl", b""),
     ("x.jsonl", b"\n \n"), ("x.tsv", b"")],
)  # fmt: skip
def test_empty_text_input_has_no_records(tmp_path: Path, name: str, data: bytes) -> None:
    assert _items(_write(tmp_path, name, data)) == []


def test_empty_parquet_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"x\.parquet: not a readable Parquet file"):
        _items(_write(tmp_path, "x.parquet", b""))


def test_parquet_without_rows(tmp_path: Path) -> None:
    table = pa.table({"name": pa.array([], type=pa.string())})
    assert _items(_write(tmp_path, "x.parquet", _parquet_bytes(table))) == []


def test_empty_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", _Stdin(b""))
    assert _items("-") == []


# Batches ----------------------------------------------------------------------------------------


def _many_rows(count: int) -> list[str]:
    return [f"repo-{i:06d}" for i in range(count)]


def test_large_csv_in_several_batches_keeps_order_and_indexes(tmp_path: Path) -> None:
    names = _many_rows(50_000)
    data = ("name,n\n" + "".join(f"{name},{i}\n" for i, name in enumerate(names))).encode()
    batches = list(read_batches(_write(tmp_path, "x.csv", data), batch_rows=4096))
    assert len(batches) == 13
    assert all(len(batch) == 4096 for batch in batches[:-1])
    records = [item for batch in batches for item in batch]
    assert [r.index for r in records] == list(range(50_000))
    assert [r.data["name"] for r in records] == names  # type: ignore[union-attr]


def test_large_jsonl_in_several_batches(tmp_path: Path) -> None:
    names = _many_rows(20_000)
    data = "".join(f'{{"name": "{name}"}}\n' for name in names).encode()
    batches = list(read_batches(_write(tmp_path, "x.jsonl", data), batch_rows=3000))
    assert [len(batch) for batch in batches] == [3000] * 6 + [2000]
    records = [item for batch in batches for item in batch]
    assert [(r.index, r.data["name"]) for r in records] == list(enumerate(names))  # type: ignore[union-attr]


def test_large_parquet_in_several_batches_across_row_groups(tmp_path: Path) -> None:
    names = _many_rows(30_000)
    data = _parquet_bytes(pa.table({"name": names}), row_group_size=7000)
    batches = list(read_batches(_write(tmp_path, "x.parquet", data), batch_rows=4096))
    assert len(batches) > 7
    assert all(len(batch) <= 4096 for batch in batches)
    records = [item for batch in batches for item in batch]
    assert [(r.index, r.data["name"]) for r in records] == list(enumerate(names))  # type: ignore[union-attr]


def test_large_parquet_from_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    names = _many_rows(20_000)
    monkeypatch.setattr(sys, "stdin", _Stdin(_parquet_bytes(pa.table({"name": names}))))
    records = _items("-")
    assert [(r.index, r.data["name"]) for r in records] == list(enumerate(names))  # type: ignore[union-attr]


def test_csv_from_a_pipe_with_leading_blank_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    names = _many_rows(20_000)
    data = ("\r\n\r\nname\n" + "".join(f"{name}\n" for name in names) + "x,y\n").encode()
    monkeypatch.setattr(sys, "stdin", _Stdin(data))
    items = _items("-", "csv")
    assert [(r.index, r.data["name"]) for r in items[:-1]] == list(enumerate(names))  # type: ignore[union-attr]
    assert items[-1] == BadRow(20_000, 20_004, "x,y", "expected 1 columns, got 2")


# Property: indexes and line numbers match a plain reading of the file ---------------------------

_CELL = st.text(alphabet='ab7 ,"\n', max_size=12)
_RECORD = st.lists(_CELL, min_size=3, max_size=3)  # a blank row when every cell is empty
_RAGGED = st.lists(_CELL, min_size=1, max_size=5).filter(lambda cells: len(cells) != 3)
_BLANK_LINE: st.SearchStrategy[list[str]] = st.just([])
# Mostly records, so that many blocks hold ragged rows and no blank one (the fast path).
_ROW = st.one_of(*[_RECORD] * 6, _RAGGED, _RAGGED, _BLANK_LINE)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(_ROW, max_size=40))
def test_csv_indexes_and_lines_match_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[list[str]]
) -> None:
    monkeypatch.setattr(sources, "_CSV_BLOCK", 256)  # many blocks even for a small file
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["a", "b", "c"])
    expected: list[tuple[str, int, int, Any]] = []
    line = 2
    for cells in rows:
        if not cells:
            text.write("\n")
            line += 1
            continue
        start = text.tell()
        writer.writerow(cells)
        written = text.getvalue()[start:]
        index = len(expected)
        if len(cells) != 3:
            expected.append(("bad", index, line, written.removesuffix("\n")))
        elif any(cells):
            values = dict(zip("abc", [cell or None for cell in cells], strict=True))
            expected.append(("rec", index, line, values))
        line += written.count("\n")
    path = _write(tmp_path, "p.csv", text.getvalue().encode())
    got = [
        ("bad", item.index, item.line, item.raw)
        if isinstance(item, BadRow)
        else ("rec", item.index, None, item.data)
        for item in read_records(path, batch_rows=5)
    ]
    assert got == [
        (kind, index, line if kind == "bad" else None, value)
        for kind, index, line, value in expected
    ]


# -- the JSON Lines line cap --------------------------------------------------------------------


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


# Bad input never merges or drops records silently ---------------------------------------------


@pytest.mark.parametrize("tail", [b"", b"3,z\n4,w\n", b"3,z\n4,w", b"3,z\r\n4,w\r\n"])
def test_an_unterminated_quote_stops_at_the_line_where_it_opens(
    tmp_path: Path, tail: bytes
) -> None:
    path = _write(tmp_path, "x.csv", b'name,n\nalpha,1\nbeta,"two\n' + tail)
    with pytest.raises(SourceError, match=r"x\.csv, line 3: a quoted value opens on this line"):
        _items(path)


def test_an_unterminated_quote_after_many_blocks_and_multiline_values(tmp_path: Path) -> None:
    rows = b"".join(b'r%d,"multi\nline %d"\n' % (i, i) for i in range(20_000))
    path = _write(tmp_path, "x.csv", b"name,n\n" + rows + b'bad,"open\n' + b"later,1\n" * 50)
    with pytest.raises(SourceError, match=r"line 40002: a quoted value opens on this line"):
        _items(path)


def test_a_quote_closed_by_a_later_rows_quote_is_not_folded(tmp_path: Path) -> None:
    data = b'name,n\nalpha,"one\nbeta,2\ngamma,"three"\ndelta,4\n'
    with pytest.raises(SourceError, match=r"line 2: .* closing quote on line 4 is followed"):
        _items(_write(tmp_path, "x.csv", data))


def test_an_unterminated_quote_on_stdin_and_in_tsv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", _Stdin(b'name\tn\nalpha\t"1\nbeta\t2\n'))
    with pytest.raises(SourceError, match=r"<stdin>, line 2: a quoted value opens"):
        _items("-", "tsv")


def test_quoted_line_breaks_that_are_closed_still_read(tmp_path: Path) -> None:
    data = b'name,n\nalpha,"a ""quoted""\nvalue, with a comma"\nbeta,"x\r\ny"\ngamma,5\'6"\n'
    assert _data(_items(_write(tmp_path, "x.csv", data))) == [
        (0, {"name": "alpha", "n": 'a "quoted"\nvalue, with a comma'}),
        (1, {"name": "beta", "n": "x\r\ny"}),
        (2, {"name": "gamma", "n": "5'6\""}),
    ]


def test_jsonl_integers_beyond_64_bits_stay_exact() -> None:
    big = 2**70 + 1
    data = b'{"a": %d, "b": 9007199254740993, "c": -%d, "d": [%d], "e": 1.5}\n' % (big, big, big)
    [record] = read_records(io.BytesIO(data), "jsonl")
    assert isinstance(record, Record)
    assert record.data == {"a": big, "b": 2**53 + 1, "c": -big, "d": [big], "e": 1.5}
    assert type(record.data["a"]) is int


def test_parquet_int64_stays_int(tmp_path: Path) -> None:
    table = pa.table({"n": pa.array([2**63 - 1, 2**53 + 1], pa.int64())})
    items = _items(_write(tmp_path, "n.parquet", _parquet_bytes(table)))
    assert _data(items) == [(0, {"n": 2**63 - 1}), (1, {"n": 2**53 + 1})]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"name\tn\nalpha\t1\n", [(0, {"name": "alpha", "n": "1"})]),
        (b"name,n\nalpha,1\n", [(0, {"name": "alpha", "n": "1"})]),
    ],
)
@pytest.mark.parametrize("pipe", [True, False])
def test_stdin_tells_tsv_from_csv(
    monkeypatch: pytest.MonkeyPatch, data: bytes, expected: list[Any], pipe: bool
) -> None:
    monkeypatch.setattr(sys, "stdin", _Stdin(data, pipe=pipe))
    assert _data(_items("-")) == expected


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
    path = _write(tmp_path, name, data)
    with pytest.raises(SourceError, match=rf"r\.\w+ is not [A-Za-z ]+: .*{message}"):
        _items(path)


def test_a_nul_file_on_stdin_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", _Stdin(b"\x00" * (1 << 20), pipe=True))
    with pytest.raises(SourceError, match=r"<stdin> is not CSV: it holds NUL bytes"):
        _items("-")


# Through the pipeline and the command line ------------------------------------------------------


def test_prepare_keeps_the_record_as_read_for_the_rejects() -> None:
    from sink.outputs.files import reject_line
    from sink.pipeline import prepare

    rows = [Record(0, {"name": "alpha", "note": "internal", "_sink_error": "old"})]
    [record] = prepare(rows, exclude=["note"], key_field="name")
    assert isinstance(record, Record)
    assert record.data == {"name": "alpha"}
    assert sources.as_read(record.data) == {
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


def _cli_config(tmp_path: Path, rows: bytes, **extra: Any) -> Path:
    import yaml

    (tmp_path / "records.csv").write_bytes(rows)
    data = {
        "connection": {"identifier": "acme", "secret_env": "SINK_TEST_SECRET"},
        "template": "create-repository",
        "settings": {"namespace": "acme"},
        "input": "records.csv",
        "rejects": "rejects.jsonl",
        **extra,
    }
    path = tmp_path / "dest.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


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
    path = _cli_config(tmp_path, rows)
    with Simulator() as hub:
        code = main(["run", str(path), "--base-url", hub.url])
        assert main(["preview", str(path)]) == ExitCode.OK
    err = capsys.readouterr().err
    assert code == ExitCode.REJECTED
    assert "the input has no records: nothing was sent" in err
    assert err.count("the input has no records") == 2  # the run, then the preview


def test_run_stops_with_exit_two_on_an_unterminated_quote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sink.cli.main import ExitCode, main
    from sink.hubsim import Simulator
    from tests.seed import OAT

    monkeypatch.setenv("SINK_TEST_SECRET", OAT)
    rows = b'name,description\nrepo-a,"fine"\nrepo-b,"oops\nrepo-c,x\nrepo-d,y\nrepo-e,z\n'
    path = _cli_config(tmp_path, rows)
    with Simulator() as hub:
        assert main(["preview", str(path)]) == ExitCode.STOPPED
        code = main(["run", str(path), "--base-url", hub.url])
        created = [r["name"] for r in hub.state()["repositories"] if r["namespace"] == "acme"]
    assert code == ExitCode.STOPPED
    assert "repo-c" not in created and "repo-e" not in created
    assert "line 3: a quoted value opens on this line" in capsys.readouterr().err


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
    path = _cli_config(tmp_path, rows, exclude=["owner"])
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
