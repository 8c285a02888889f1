"""YAML read safely, with libyaml's C loader where PyYAML has it (several times faster: the
templates, the packaged spec and configs are read on every command).

Beyond a safe loader's plain types, every document is held to two rules, so that a config
cannot hang a command or say something other than what it seems to say:

- a key given twice in one mapping is refused ("duplicate key 'x' at line 4"), where PyYAML
  would silently keep the last value (a ``<<`` merge may still be overridden, as YAML means);
- aliases may repeat anchored nodes, but not expand the document by more than
  :data:`ALIAS_BUDGET` nodes (a "billion laughs" document), nor refer to themselves.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import IO, Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_BASE: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

YAMLError = yaml.YAMLError

ALIAS_BUDGET = 10_000
"""How many nodes aliases may add to a document, expanded (a config needs a handful)."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
# Where an anchor can start: after white space (YAML's line breaks \x85, \u2028 and \u2029
# and a byte order mark included) or a flow indicator, before its name. An alias needs an
# anchor: a document without one (the packaged spec) skips the graph walk.
_ANCHOR_TEXT = re.compile(r"(?:\A|[\s\[{,\x85\u2028\u2029\ufeff])&[^\s\[\]{},]")
_ANCHOR_BYTES = re.compile(
    rb"(?:\A|[\s\[{,]|\xc2\x85|\xe2\x80[\xa8\xa9]|\xef\xbb\xbf)&[^\s\[\]{},]"
)


class Refused(yaml.YAMLError):
    """A document that parses but is refused: a duplicate key, or aliases beyond the budget.

    Its message is one plain sentence (no parser marks)."""


class _Loader(_BASE):  # type: ignore[misc, valid-type]
    """The safe loader (C where available), refusing duplicate keys and alias bombs."""

    def __init__(self, stream: str | bytes | IO[str], *, may_alias: bool = True) -> None:
        super().__init__(stream)
        self._may_alias = may_alias
        self._own_keys: dict[int, list[Node]] = {}
        self._flattening = False

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        if self._may_alias:
            check_expansion(node)
        return self.construct_document(node)

    def flatten_mapping(self, node: MappingNode) -> None:
        # A `<<` merge rewrites the pairs of the nodes it merges (the merged ones first, a key
        # the node sets itself overriding them): keep those nodes' own keys before they change.
        if self._flattening:
            if id(node) not in self._own_keys:
                self._own_keys[id(node)] = [k for k, _ in node.value if k.tag != _MERGE_TAG]
            super().flatten_mapping(node)
            return
        self._flattening = True
        try:
            super().flatten_mapping(node)
        finally:
            self._flattening = False

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode) and len(node.value) > 1:
            keys = self._own_keys.get(id(node))
            if keys is None:
                keys = [key for key, _ in node.value if key.tag != _MERGE_TAG]
            texts = {key.value for key in keys if key.tag == _STR_TAG}
            if len(texts) != len(keys):  # a repeated text key, or keys of other types
                self._refuse_duplicates(keys, deep)
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result

    def _refuse_duplicates(self, keys: list[Node], deep: bool) -> None:
        seen: dict[Any, int] = {}
        for key_node in keys:
            if not isinstance(key_node, ScalarNode):
                continue
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:
                continue  # not hashable: the constructor says so
            if first is not None:
                raise Refused(f"duplicate key {key!r} at line {line} (first at line {first})")
            seen[key] = line


def check_expansion(root: Node) -> None:
    """Refuse a node graph whose aliases expand it by more than :data:`ALIAS_BUDGET` nodes,
    or that refers to itself. Sizes are counted once per distinct node, never expanded."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        ident = id(node)
        if finished:
            open_nodes.discard(ident)
            sizes[ident] = 1 + sum(sizes[id(child)] for child in _children(node))
            continue
        if ident in sizes:
            continue
        if ident in open_nodes:
            raise Refused(f"an alias at line {node.start_mark.line + 1} refers to itself")
        if isinstance(node, ScalarNode):
            sizes[ident] = 1
            continue
        open_nodes.add(ident)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    if sizes[id(root)] - len(sizes) > ALIAS_BUDGET:
        raise Refused(
            f"aliases expand this document by more than {ALIAS_BUDGET} nodes; refused "
            "(write the values out, or anchor fewer)"
        )


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load(text: str | bytes | IO[str]) -> Any:
    """The document in ``text``; only plain YAML types (a safe loader), no duplicate keys and
    no alias bombs (:class:`Refused`, a :data:`YAMLError`)."""
    if isinstance(text, str):
        may_alias = _ANCHOR_TEXT.search(text) is not None
    elif isinstance(text, bytes):
        utf16 = text.startswith((b"\xff\xfe", b"\xfe\xff"))  # the pattern is for UTF-8
        may_alias = utf16 or _ANCHOR_BYTES.search(text) is not None
    else:
        may_alias = True
    loader = _Loader(text, may_alias=may_alias)
    try:
        return loader.get_single_data()
    except RecursionError as exc:
        raise Refused("the document is nested too deeply") from exc
    finally:
        loader.dispose()


def load_mapping(path: str | os.PathLike[str], what: str) -> tuple[dict[str, Any], bytes]:
    """A YAML file that must be a mapping (``what``: "destination config", "state file",
    "agents file"), and its bytes; a :class:`~sink.errors.ConfigError` names the file and
    what is wrong with it."""
    from sink.errors import ConfigError

    file = Path(path)
    try:
        raw = file.read_bytes()
        data = load(raw.decode("utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{file}: no such {what}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from exc
    except Refused as exc:
        raise ConfigError(f"{file}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: a {what} is a YAML mapping")
    return data, raw
