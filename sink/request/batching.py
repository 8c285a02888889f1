"""The grouping modes, pure: which rendered items share one request.

Per-record mode sends every item alone. The JSON-property and code modes gather items of the same
group (same path, headers and, for merging templates, the same other body fields) up to the batch
size. Items wait in one buffer per group, so memory is bounded by groups × size, whatever the
input's length.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, Protocol, TypeVar

from sink.errors import ConfigError


class Grouped(Protocol):
    """Anything with a ``group`` key (a rendered item)."""

    @property
    def group(self) -> Hashable: ...


T = TypeVar("T", bound=Grouped)


class Batcher(Generic[T]):
    """Gathers items into groups of at most ``size`` sharing a ``group`` key, fed one at a
    time: a group is complete as soon as it is full; what is left of every group is complete
    at the end (:meth:`rest`). With ``size`` 1 every item is its own batch."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("batch size must be at least 1")
        self.size = size
        self._open: dict[Hashable, list[T]] = {}

    def add(self, item: T) -> list[T] | None:
        """The batch ``item`` completes, or None while its group is not full."""
        if self.size == 1:
            return [item]
        bucket = self._open.setdefault(item.group, [])
        bucket.append(item)
        if len(bucket) < self.size:
            return None
        del self._open[item.group]
        return bucket

    def rest(self) -> list[list[T]]:
        """Every group still open, oldest first (the input has ended); the batcher is empty
        after."""
        rest = list(self._open.values())
        self._open.clear()
        return rest


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Groups of at most ``size`` items sharing a ``group`` key, in order of completion.

    A group is sent as soon as it is full; what is left of every group is sent at the end.
    With ``size`` 1 every item is its own batch.
    """
    batcher: Batcher[T] = Batcher(size)
    for item in items:
        batch = batcher.add(item)
        if batch is not None:
            yield batch
    yield from batcher.rest()


# Code batching: the user's function, imported only from an explicit place.
#
# ``function: module:name`` names an installed module (on ``sys.path``, but never the current
# directory, which ``python -m`` puts first); ``function: path/to/file.py:name`` names a file,
# relative to the config's folder. Neither is imported by ``validate``: it only checks that
# the module or file is there. The function runs (its module is imported) when a request is
# built, in ``preview``, ``test`` and ``run``.


def _split(spec: str) -> tuple[str, str]:
    module, sep, name = spec.rpartition(":")
    if not sep or not module or not name or not name.isidentifier():
        raise ConfigError(
            f"batching function {spec!r} must look like module:function or file.py:function"
        )
    return module, name


def _is_file(module: str) -> bool:
    return module.endswith(".py") or "/" in module or os.sep in module


def _file_of(spec: str, module: str, folder: Path | None) -> Path:
    path = Path(os.path.expanduser(module))
    if not path.is_absolute():
        path = (folder if folder is not None else Path.cwd()) / path
    if not path.is_file():
        raise ConfigError(
            f"batching function {spec!r}: cannot import {module}: no such file {path}"
        )
    return path


def _installed_path() -> list[str]:
    """``sys.path`` without the current directory (``''``, or the cwd ``python -m`` puts first)."""
    cwd = os.path.realpath(os.getcwd())
    return [entry for entry in sys.path if entry and os.path.realpath(entry) != cwd]


def locate_function(spec: str, folder: Path | None = None) -> None:
    """Check that a code-batching function's module can be found, without importing it (no
    user code runs); a :class:`ConfigError` says what is missing."""
    module, _ = _split(spec)
    if _is_file(module):
        _file_of(spec, module, folder)
        return
    top = module.split(".", 1)[0]
    if top in sys.modules or top in sys.builtin_module_names:
        return
    if importlib.machinery.PathFinder.find_spec(top, _installed_path()) is None:
        raise ConfigError(
            f"batching function {spec!r}: cannot import {module}: no installed module {top!r} "
            "(modules of the current directory are not imported; for a file beside the config "
            f"write function: {module.replace('.', '/')}.py:{spec.rpartition(':')[2]})"
        )


def load_function(spec: str, folder: Path | None = None) -> Callable[..., Any]:
    """Import a code-batching function (this runs the user's module): ``module:function`` from
    an installed module, never the current directory; ``file.py:function`` from a file
    relative to ``folder`` (the config's)."""
    module_name, name = _split(spec)
    try:
        if _is_file(module_name):
            module = _import_file(_file_of(spec, module_name, folder))
        else:
            module = _import_installed(module_name)
    except ConfigError:
        raise
    except Exception as exc:  # the user's module failed while it was imported
        raise ConfigError(
            f"batching function {spec!r}: cannot import {module_name}: {exc!r}"
        ) from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(f"batching function {spec!r}: {module_name} has no function {name}")
    return function  # type: ignore[no-any-return]


def _import_installed(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    saved = sys.path[:]
    sys.path[:] = _installed_path()
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"batching function module {name}: cannot import {name}: {exc}") from exc
    finally:
        sys.path[:] = saved


def _import_file(path: Path) -> ModuleType:
    name = "sink_batching_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"batching function file {path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
