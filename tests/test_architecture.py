"""docs/architecture.md names every module of sink/, and nothing that is not there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LISTED_WHOLE = ("hubsim", "request/spec")
"""Packages the table names as a whole (their own README or data), not module by module."""


def test_the_module_table_matches_the_code() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    table = doc.split("## Modules", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(sink/[\w/]+(?:\.py|/))`", table))
    package = ROOT / "sink"
    whole = {package / part for part in LISTED_WHOLE}
    modules = {
        f"sink/{path.relative_to(package).as_posix()}"
        for path in package.rglob("*.py")
        if not any(path.is_relative_to(folder) for folder in whole)
        and not (path.name == "__init__.py" and path.parent != package)
    }
    assert named == modules | {f"sink/{part}/" for part in LISTED_WHOLE}


def test_every_package_says_what_it_is_for() -> None:
    for init in (ROOT / "sink").glob("*/__init__.py"):
        text = init.read_text()
        assert text.startswith('"""'), init


def test_building_a_request_imports_nothing_that_does_io() -> None:
    allowed = {"sink.errors", "sink.model", "sink.request", "sink.yamltext"}
    for path in (ROOT / "sink" / "request").rglob("*.py"):
        text = path.read_text()
        found = re.findall(r"^\s*(?:from|import) (sink(?:\.\w+)+)", text, re.M)
        found += [f"sink.{name}" for name in re.findall(r"^\s*from sink import (\w+)", text, re.M)]
        for module in found:
            top = ".".join(module.split(".")[:2])
            assert top in allowed, f"{path.relative_to(ROOT)} imports {module}"
