"""Write samples/repositories.parquet from samples/repositories.csv, with typed columns.

Run: .venv/bin/python samples/make_parquet.py
Strings stay strings, ``is_private`` becomes a boolean column and empty cells become nulls, as a
data pipeline would write them. The output is small and committed beside this script.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("description", pa.string()),
        ("is_private", pa.bool_()),
        ("full_description", pa.string()),
    ]
)


def build(source: Path) -> pa.Table:
    """The repositories of ``source`` (CSV) as a typed table."""
    options = pacsv.ConvertOptions(
        column_types=SCHEMA,
        strings_can_be_null=True,
        true_values=["true"],
        false_values=["false"],
    )
    table = pacsv.read_csv(source, convert_options=options)
    return table.select(SCHEMA.names)


def main(argv: list[str]) -> int:
    """Write the Parquet file (default: beside this script)."""
    target = Path(argv[0]) if argv else HERE / "repositories.parquet"
    table = build(HERE / "repositories.csv")
    pq.write_table(table, target, compression="zstd")
    print(f"wrote {table.num_rows} rows to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
