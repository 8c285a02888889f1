"""docs/architecture.md names every module of sink/, and nothing that is not there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_module_table_matches_the_code() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    table = doc.split("## Modules", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(sink/[\w/]+(?:\.py|/))`", table))
    modules = {f"sink/{p.name}" for p in (ROOT / "sink").glob("*.py")}
    packages = {
        f"sink/{p.name}/"
        for p in (ROOT / "sink").iterdir()
        if p.is_dir() and not p.name.startswith(("_", "."))
    }
    assert named == modules | packages
