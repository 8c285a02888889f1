"""The grouping modes, pure: which rendered items share one request.

Per-record mode sends every item alone. The JSON-property and code modes gather items of the same
group (same path, headers and, for merging templates, the same other body fields) up to the batch
size. Items wait in one buffer per group, so memory is bounded by groups × size, whatever the
input's length.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import Protocol, TypeVar


class Grouped(Protocol):
    """Anything with a ``group`` key (a rendered item)."""

    @property
    def group(self) -> Hashable: ...


T = TypeVar("T", bound=Grouped)


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Groups of at most ``size`` items sharing a ``group`` key, in order of completion.

    A group is sent as soon as it is full; what is left of every group is sent at the end.
    With ``size`` 1 every item is its own batch.
    """
    if size < 1:
        raise ValueError("batch size must be at least 1")
    if size == 1:
        for item in items:
            yield [item]
        return
    open_groups: dict[Hashable, list[T]] = {}
    for item in items:
        bucket = open_groups.setdefault(item.group, [])
        bucket.append(item)
        if len(bucket) >= size:
            del open_groups[item.group]
            yield bucket
    yield from open_groups.values()
