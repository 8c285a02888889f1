"""Helpers shared by the tests of source/."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from sink.model import Record
from sink.source.read import read_records
from sink.source.rows import BadRow


class Stdin:
    """Stands in for ``sys.stdin``: only ``.buffer`` is read."""

    def __init__(self, data: bytes, *, pipe: bool = True) -> None:
        self.buffer = Pipe(data) if pipe else io.BytesIO(data)


class Pipe(io.RawIOBase):
    """A non-seekable byte stream that hands out small reads, like a pipe."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), len(self.data), 7000)
        buffer[:size] = self.data[:size]
        self.data = self.data[size:]
        return size


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_items(source: Any, fmt: str | None = None, **options: Any) -> list[Record | BadRow]:
    return list(read_records(source, fmt, **options))


def data_of(items: list[Record | BadRow]) -> list[tuple[int, dict[str, Any]]]:
    return [(item.index, item.data) for item in items if isinstance(item, Record)]


REPOS_CSV = b"name,description,is_private\nalpha,first one,true\n007,,false\n"

REPOS_ROWS = [
    (0, {"name": "alpha", "description": "first one", "is_private": "true"}),
    (1, {"name": "007", "description": None, "is_private": "false"}),
]


def many_rows(count: int) -> list[str]:
    return [f"repo-{i:06d}" for i in range(count)]


def cli_config(tmp_path: Path, rows: bytes, **extra: Any) -> Path:
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
