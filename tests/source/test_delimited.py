"""CSV and TSV (sink/source/delimited.py) through the public readers: lines, bad rows, quotes."""

from __future__ import annotations

import csv
import gzip
import io
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sink.errors import SourceError
from sink.model import Record
from sink.source import delimited
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


def test_csv_from_file_keeps_every_cell_a_string(tmp_path: Path) -> None:
    path = write(tmp_path, "repos.csv", REPOS_CSV)
    items = read_items(path)
    assert data_of(items) == REPOS_ROWS
    assert all(item.key == "" for item in items if isinstance(item, Record))


def test_csv_cells_that_look_like_other_types_stay_strings(tmp_path: Path) -> None:
    data = b"a,b,c,d,e\n007,true,1e3,2024-01-01,NA\nnull,nan,-0,N/A,0x1F\n"
    rows = data_of(read_items(write(tmp_path, "x.csv", data)))
    assert rows == [
        (0, {"a": "007", "b": "true", "c": "1e3", "d": "2024-01-01", "e": "NA"}),
        (1, {"a": "null", "b": "nan", "c": "-0", "d": "N/A", "e": "0x1F"}),
    ]


def test_csv_empty_cells_quoted_or_not_are_none(tmp_path: Path) -> None:
    data = b'a,b,c\n,"",x\n'
    assert data_of(read_items(write(tmp_path, "x.csv", data))) == [
        (0, {"a": None, "b": None, "c": "x"})
    ]


def test_csv_quoted_values_keep_newlines_commas_and_quotes(tmp_path: Path) -> None:
    data = b'name,description\nalpha,"two\nlines, and a ""quote"""\nbeta,"crlf\r\nhere"\n'
    assert data_of(read_items(write(tmp_path, "x.csv", data))) == [
        (0, {"name": "alpha", "description": 'two\nlines, and a "quote"'}),
        (1, {"name": "beta", "description": "crlf\r\nhere"}),
    ]


def test_tsv_from_file(tmp_path: Path) -> None:
    data = b"name\tdescription\nalpha\ta, b and c\n007\t\n"
    assert data_of(read_items(write(tmp_path, "repos.tsv", data))) == [
        (0, {"name": "alpha", "description": "a, b and c"}),
        (1, {"name": "007", "description": None}),
    ]


def test_csv_with_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbfname,n\r\nalpha,1\r\n"
    assert data_of(read_items(write(tmp_path, "x.csv", data))) == [(0, {"name": "alpha", "n": "1"})]


def test_gzipped_csv_and_jsonl(tmp_path: Path) -> None:
    csv_path = write(tmp_path, "r.csv.gz", gzip.compress(REPOS_CSV))
    jsonl_path = write(tmp_path, "r.jsonl.gz", gzip.compress(b'{"name": "alpha"}\n'))
    assert data_of(read_items(csv_path)) == REPOS_ROWS
    assert data_of(read_items(jsonl_path)) == [(0, {"name": "alpha"})]


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
    items = read_items(write(tmp_path, "x.csv", data))
    assert [type(item).__name__ for item in items] == [
        "Record", "BadRow", "Record", "BadRow", "BadRow", "Record",
    ]  # fmt: skip
    assert [item.index for item in items] == [0, 1, 2, 3, 4, 5]
    assert items[1] == BadRow(1, 4, "b", "expected 2 columns, got 1")
    assert items[3] == BadRow(3, 9, "d,4,extra", "expected 2 columns, got 3")
    bad = items[4]
    assert isinstance(bad, BadRow)
    assert (bad.index, bad.line, bad.raw) == (4, 10, '"e\n\ne",5,x')
    assert data_of(items) == [
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
    path = write(tmp_path, "big.csv", b"\n".join(lines) + b"\n")
    items = read_items(path, batch_rows=1000)
    assert [item.index for item in items] == list(range(60_000))
    bad = [(item.index, item.line) for item in items if isinstance(item, BadRow)]
    assert len(bad) == 8
    assert bad == expected
    assert isinstance(items[5003], Record)
    assert items[5003].data["n"] == "5003"
    assert items[59_999].data["name"] == "repo-59999"  # type: ignore[union-attr]


def test_invalid_utf8_in_csv_rejects_that_row_and_goes_on(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", b"name,n\nalpha,1\nbeta,\xff\xfe\ngamma,3\n")
    items = read_items(path)
    assert [type(item) for item in items] == [Record, BadRow, Record]
    bad = items[1]
    assert isinstance(bad, BadRow) and (bad.index, bad.line) == (1, 3)
    assert "invalid UTF-8 in column 'n'" in bad.error
    assert bad.raw == "beta,\ufffd\ufffd"
    assert items[2] == Record(2, {"name": "gamma", "n": "3"})


def test_invalid_utf8_in_a_ragged_csv_row(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", b"name,n\nalpha,1\nbeta,\xff,3\n")
    with pytest.raises(SourceError, match=r"invalid UTF-8 at line 3"):
        read_items(path)


def test_invalid_utf8_in_csv_from_stdin_rejects_the_row_by_its_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = b"name,n\n" + b"alpha,1\n" * 10 + b'beta,"two\nlines \xff"\n' + b"omega,9\n"
    monkeypatch.setattr(sys, "stdin", Stdin(data))
    items = read_items("-", "csv")
    bad = [item for item in items if isinstance(item, BadRow)]
    assert [(b.index, b.line) for b in bad] == [(10, 12)]
    assert bad[0].raw == 'beta,"two\nlines \ufffd"'
    assert items[-1] == Record(11, {"name": "omega", "n": "9"})


def test_a_header_that_is_not_utf8_stops(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", b"na\xffme,n\nalpha,1\n")
    with pytest.raises(SourceError, match=r"x\.csv, line 1: the header is not valid UTF-8"):
        read_items(path)


def test_duplicate_header_names(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"columns 1 and 3 have the same name 'name'"):
        read_items(write(tmp_path, "x.csv", b"name,n,name\n1,2,3\n"))


def test_large_csv_in_several_batches_keeps_order_and_indexes(tmp_path: Path) -> None:
    names = many_rows(50_000)
    data = ("name,n\n" + "".join(f"{name},{i}\n" for i, name in enumerate(names))).encode()
    batches = list(read_batches(write(tmp_path, "x.csv", data), batch_rows=4096))
    assert len(batches) == 13
    assert all(len(batch) == 4096 for batch in batches[:-1])
    records = [item for batch in batches for item in batch]
    assert [r.index for r in records] == list(range(50_000))
    assert [r.data["name"] for r in records] == names  # type: ignore[union-attr]


def test_csv_from_a_pipe_with_leading_blank_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    names = many_rows(20_000)
    data = ("\r\n\r\nname\n" + "".join(f"{name}\n" for name in names) + "x,y\n").encode()
    monkeypatch.setattr(sys, "stdin", Stdin(data))
    items = read_items("-", "csv")
    assert [(r.index, r.data["name"]) for r in items[:-1]] == list(enumerate(names))  # type: ignore[union-attr]
    assert items[-1] == BadRow(20_000, 20_004, "x,y", "expected 1 columns, got 2")


_CELL = st.text(alphabet='ab7 ,"\n', max_size=12)


_RECORD = st.lists(_CELL, min_size=3, max_size=3)  # a blank row when every cell is empty


_RAGGED = st.lists(_CELL, min_size=1, max_size=5).filter(lambda cells: len(cells) != 3)


_BLANK_LINE: st.SearchStrategy[list[str]] = st.just([])


_ROW = st.one_of(*[_RECORD] * 6, _RAGGED, _RAGGED, _BLANK_LINE)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(_ROW, max_size=40))
def test_csv_indexes_and_lines_match_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[list[str]]
) -> None:
    monkeypatch.setattr(delimited, "_CSV_BLOCK", 256)  # many blocks even for a small file
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
    path = write(tmp_path, "p.csv", text.getvalue().encode())
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


@pytest.mark.parametrize("tail", [b"", b"3,z\n4,w\n", b"3,z\n4,w", b"3,z\r\n4,w\r\n"])
def test_an_unterminated_quote_stops_at_the_line_where_it_opens(
    tmp_path: Path, tail: bytes
) -> None:
    path = write(tmp_path, "x.csv", b'name,n\nalpha,1\nbeta,"two\n' + tail)
    with pytest.raises(SourceError, match=r"x\.csv, line 3: a quoted value opens on this line"):
        read_items(path)


def test_an_unterminated_quote_after_many_blocks_and_multiline_values(tmp_path: Path) -> None:
    rows = b"".join(b'r%d,"multi\nline %d"\n' % (i, i) for i in range(20_000))
    path = write(tmp_path, "x.csv", b"name,n\n" + rows + b'bad,"open\n' + b"later,1\n" * 50)
    with pytest.raises(SourceError, match=r"line 40002: a quoted value opens on this line"):
        read_items(path)


def test_a_quote_closed_by_a_later_rows_quote_is_not_folded(tmp_path: Path) -> None:
    data = b'name,n\nalpha,"one\nbeta,2\ngamma,"three"\ndelta,4\n'
    with pytest.raises(SourceError, match=r"line 2: .* closing quote on line 4 is followed"):
        read_items(write(tmp_path, "x.csv", data))


def test_an_unterminated_quote_on_stdin_and_in_tsv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", Stdin(b'name\tn\nalpha\t"1\nbeta\t2\n'))
    with pytest.raises(SourceError, match=r"<stdin>, line 2: a quoted value opens"):
        read_items("-", "tsv")


def test_quoted_line_breaks_that_are_closed_still_read(tmp_path: Path) -> None:
    data = b'name,n\nalpha,"a ""quoted""\nvalue, with a comma"\nbeta,"x\r\ny"\ngamma,5\'6"\n'
    assert data_of(read_items(write(tmp_path, "x.csv", data))) == [
        (0, {"name": "alpha", "n": 'a "quoted"\nvalue, with a comma'}),
        (1, {"name": "beta", "n": "x\r\ny"}),
        (2, {"name": "gamma", "n": "5'6\""}),
    ]


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
    monkeypatch.setattr(sys, "stdin", Stdin(data, pipe=pipe))
    assert data_of(read_items("-")) == expected


def test_run_stops_with_exit_two_on_an_unterminated_quote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sink.cli.main import ExitCode, main
    from sink.hubsim import Simulator
    from tests.seed import OAT

    monkeypatch.setenv("SINK_TEST_SECRET", OAT)
    rows = b'name,description\nrepo-a,"fine"\nrepo-b,"oops\nrepo-c,x\nrepo-d,y\nrepo-e,z\n'
    path = cli_config(tmp_path, rows)
    with Simulator() as hub:
        assert main(["preview", str(path)]) == ExitCode.STOPPED
        code = main(["run", str(path), "--base-url", hub.url])
        created = [r["name"] for r in hub.state()["repositories"] if r["namespace"] == "acme"]
    assert code == ExitCode.STOPPED
    assert "repo-c" not in created and "repo-e" not in created
    assert "line 3: a quoted value opens on this line" in capsys.readouterr().err
