"""YAML read safely, with libyaml's C loader where PyYAML has it (several times faster: the
templates, the packaged spec and configs are read on every command)."""

from __future__ import annotations

from typing import IO, Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

YAMLError = yaml.YAMLError


def load(text: str | bytes | IO[str]) -> Any:
    """The document in ``text``; only plain YAML types (a safe loader)."""
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader
