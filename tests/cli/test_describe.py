"""What the CLI prints from data: control characters neutralised, counts in good English."""

from __future__ import annotations

from pathlib import Path

import pytest

from sink.cli.describe import plural, print_status, print_templates, printable
from sink.request.templates import load_registry
from sink.send.ledger import Entry


def entry(key: str, note: str | None = None) -> Entry:
    return Entry(key, "create-repository", "rejected", 0, 1, 400, None, note, 0.0)


@pytest.mark.parametrize(
    "key",
    [
        "\x1b[31mred\x1b[0m",
        "\x1b]0;owned\x07",
        "a\x08\x08\x08b",
        "a\rb",
        "a\x9bb",  # the C1 control sequence introducer
        "a\u202eb",  # a right-to-left override
        "a\u2028b",
        "[bold]not markup[/bold]",
    ],
)
def test_status_never_prints_a_record_keys_control_characters_raw(
    key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    print_status(Path("dest.ledger.sqlite"), {"rejected": 1}, [entry(key, note=f"bad {key}")])
    out = capsys.readouterr().out
    assert all(char.isprintable() or char in "\n" for char in out)
    assert printable(key).replace("\\[", "[") in out or printable(key) in out


def test_printable_escapes_markup_and_controls() -> None:
    assert printable("plain") == "plain"
    assert printable("\x1b[31m") == "\\x1b[31m"
    assert printable("[red]x") == "\\[red]x"


def test_plural() -> None:
    assert [plural(n, "request") for n in (0, 1, 2, 1500)] == [
        "0 requests",
        "1 request",
        "2 requests",
        "1,500 requests",
    ]
    assert plural(1, "repository", "repositories") == "1 repository"
    assert plural(3, "repository", "repositories") == "3 repositories"


def test_status_says_one_record(capsys: pytest.CaptureFixture[str]) -> None:
    print_status(Path("d.ledger.sqlite"), {"done": 1}, [])
    assert ": 1 record\n" in capsys.readouterr().out


def test_the_templates_listing_names_its_destructive_column(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_templates(load_registry())
    header = next(line for line in capsys.readouterr().out.splitlines() if " id " in line)
    assert [cell.strip() for cell in header.strip("┃ ").split("┃")] == [
        "id",
        "method",
        "path",
        "credentials",
        "destructive",
    ]
