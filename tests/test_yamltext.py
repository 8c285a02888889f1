"""YAML read safely: duplicate keys and alias bombs are refused, plain documents load as before."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sink import yamltext
from sink.config import load_config
from sink.errors import ConfigError

CONFIG = (
    "connection: {identifier: acme, secret_env: SINK_HUB_SECRET}\ntemplate: create-repository\n"
)


def bomb(levels: int, width: int = 9, indent: str = "") -> str:
    """A "billion laughs" document: each level an anchored list of ``width`` aliases."""
    lines = [f"{indent}l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        aliases = ", ".join([f"*l{level - 1}"] * width)
        lines.append(f"{indent}l{level}: &l{level} [{aliases}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("a: 1\nb: 2\na: 3\n", "'a'", 3),
        ("{a: 1, a: 2}", "'a'", 1),
        ("x:\n  k: 1\n  'k': 2\n", "'k'", 3),
        ('x:\n  k: 1\n  "k": 2\n', "'k'", 3),
        ("1: a\n01: b\n", "1", 2),
        ("- {a: 1}\n- {b: 1, b: 2}\n", "'b'", 2),
        ("a: &x {k: 1}\nb: {<<: *x, j: 1, j: 2}\n", "'j'", 2),
    ],
)
def test_a_duplicate_key_is_refused_with_its_line(text: str, key: str, line: int) -> None:
    with pytest.raises(yamltext.Refused, match=f"duplicate key {key} at line {line}"):
        yamltext.load(text)


def test_a_merge_may_be_overridden_as_yaml_means() -> None:
    text = (
        "one: {two: {b: &b {<<: {x: 2}, x: 1, y: 1}}}\n"
        "a: {<<: *b, x: 3, z: 3}\n"
        "c: &c {p: 1}\n"
        "d: {<<: [*c, {q: 2}], p: 5}\n"
    )
    assert yamltext.load(text) == {
        "one": {"two": {"b": {"x": 1, "y": 1}}},
        "a": {"x": 3, "y": 1, "z": 3},
        "c": {"p": 1},
        "d": {"p": 5, "q": 2},
    }


@pytest.mark.parametrize(
    "text",
    [
        bomb(9),
        "x:\n" + bomb(9, indent="  "),
        bomb(6, width=30),  # 30**6 nodes
        "a: &a [x, x]\nb: &b {<<: {k: *a}, j: [*a, *a, *a]}\n" + bomb(8),  # a bomb after merges
        "\ufeff" + bomb(9),
        bomb(9).replace("\n", "\u2028"),
    ],
)
def test_an_alias_bomb_is_refused_at_once(text: str) -> None:
    with pytest.raises(yamltext.Refused, match="aliases expand this document"):
        yamltext.load(text)
    with pytest.raises(yamltext.Refused):
        yamltext.load(text.encode("utf-8"))


def test_an_alias_bomb_in_utf16_is_refused() -> None:
    with pytest.raises(yamltext.Refused):
        yamltext.load(bomb(9).encode("utf-16"))


@pytest.mark.parametrize("text", ["a: &a [*a]", "a: &a {b: *a}", "&a [x, [*a]]"])
def test_an_alias_to_itself_is_refused(text: str) -> None:
    with pytest.raises(yamltext.Refused, match="refers to itself"):
        yamltext.load(text)


def test_a_few_aliases_are_fine() -> None:
    text = "h: &h {X-Trace: t}\na: *h\nb: *h\nlist: &l [1, 2, 3]\nmore: [*l, *l]\n"
    assert yamltext.load(text)["more"] == [[1, 2, 3], [1, 2, 3]]


def test_the_packaged_spec_loads_as_a_plain_safe_loader_reads_it() -> None:
    path = Path(__file__).resolve().parent.parent / "sink" / "request" / "spec" / "openapi.yaml"
    text = path.read_bytes()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    assert yamltext.load(text) == yaml.load(text, Loader=loader)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("settings: {namespace: acme}\nsettings: {namespace: other}\n", "duplicate key 'settings'"),
        ("settings: {namespace: acme, namespace: other}\n", "duplicate key 'namespace'"),
        ("exclude: &e [a, b]\nsettings: {namespace: acme}\n" + bomb(9), "aliases expand"),
    ],
)
def test_a_config_is_refused_with_a_clear_message(tmp_path: Path, body: str, message: str) -> None:
    config = tmp_path / "dest.yaml"
    config.write_text(CONFIG + body)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(config)
    assert str(caught.value).startswith(f"{config}: ")
    assert "\n" not in str(caught.value)


def test_an_alias_bomb_in_a_config_value_is_refused_on_load(tmp_path: Path) -> None:
    config = tmp_path / "dest.yaml"
    config.write_text(CONFIG + "settings: {namespace: acme}\n" + bomb(7) + "exclude: *l6\n")
    with pytest.raises(ConfigError, match="aliases expand"):
        load_config(config)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"- a\n- b\n", "a state file is a YAML mapping"),
        (b"a: [1, 2\n", "not valid YAML"),
        (b"\xff\xfe: 1\n", "cannot read"),
    ],
)
def test_a_yaml_file_that_is_not_a_mapping_is_refused_naming_it(
    tmp_path: Path, content: bytes, message: str
) -> None:
    from sink.errors import ConfigError
    from sink.yamltext import load_mapping

    path = tmp_path / "acme.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as refused:
        load_mapping(path, "state file")
    assert str(path) in str(refused.value)
    with pytest.raises(ConfigError, match="no such state file"):
        load_mapping(tmp_path / "missing.yaml", "state file")


def test_a_mapping_comes_back_with_its_bytes(tmp_path: Path) -> None:
    from sink.yamltext import load_mapping

    path = tmp_path / "acme.yaml"
    path.write_bytes(b"org: acme\n")
    assert load_mapping(path, "state file") == ({"org": "acme"}, b"org: acme\n")
