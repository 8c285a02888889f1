"""The simulator as a real server on 127.0.0.1 (port 0), shared by a module's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sink.hubsim import Simulator


@pytest.fixture(scope="module")
def hub() -> Iterator[Simulator]:
    """One simulator for the module's tests."""
    with Simulator() as simulator:
        yield simulator


@pytest.fixture
def fresh_hub(hub: Simulator) -> Simulator:
    """The module's simulator with its state, faults and log back at the seed's."""
    hub.reset()
    return hub
