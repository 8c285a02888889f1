"""What a source yields and the byte helpers its readers share (sink/source/rows.py)."""

from __future__ import annotations

import io
import os
from typing import BinaryIO, cast

import pytest

from sink.errors import SourceError
from sink.source.rows import BOM, HEAD_LIMIT, Trimmed, as_read, line_text, peek, seekable


def test_peek_on_a_pipe_replays_what_it_read() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"\n\n  name,n\nalpha,1\n")
    os.close(write_end)
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        assert not seekable(cast(BinaryIO, pipe))
        head, stream = peek(cast(BinaryIO, pipe), "stdin")
        assert head.lstrip().startswith(b"name")
        assert stream.read() == b"\n\n  name,n\nalpha,1\n"  # nothing lost to the peek


def test_peek_on_a_file_seeks_back_to_where_it_was() -> None:
    data = BOM + b"   \n" + b"x" * 10
    stream = io.BytesIO(data)
    stream.seek(1)
    head, same = peek(stream, "input")
    assert same is stream and stream.tell() == 1
    assert head == data[1:]


def test_peek_stops_at_the_head_limit_on_blank_input() -> None:
    stream = io.BytesIO(b" " * (HEAD_LIMIT + (1 << 17)))
    head, _ = peek(stream, "input")
    assert HEAD_LIMIT <= len(head) < HEAD_LIMIT + (1 << 16) + 1


def test_a_read_error_while_peeking_names_the_input() -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: object) -> int:
            raise OSError("device gone")

    with pytest.raises(SourceError, match=r"cannot read input\.csv: device gone"):
        peek(cast(BinaryIO, Broken()), "input.csv")


def test_as_read_gives_the_record_with_its_excluded_columns() -> None:
    trimmed = Trimmed({"name": "alpha"})
    trimmed.original = {"name": "alpha", "note": "internal"}
    assert as_read(trimmed) == {"name": "alpha", "note": "internal"}
    plain = {"name": "beta"}
    assert as_read(plain) is plain


def test_line_text_decodes_what_it_can_and_drops_the_line_break() -> None:
    assert line_text(b"caf\xc3\xa9,1\r\n") == "café,1"
    assert line_text(b"bad \xff\n") == "bad \ufffd"
