"""Fixtures for the simulator's tests: one server per session, state reset per test, and an
httpx client whose every answer is checked against the official spec (see hubsim_spec.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from hubsim_creds import OATS, PASSWORDS, PATS, exchange
from hubsim_spec import SpecChecker

from sink.hubsim import Simulator


@pytest.fixture(scope="session")
def spec_checker() -> SpecChecker:
    """The session's spec checker."""
    return SpecChecker()


@pytest.fixture(scope="session")
def shared_sim() -> Iterator[Simulator]:
    """One simulator for the session (tests reset it through :func:`sim`)."""
    with Simulator() as simulator:
        yield simulator


@pytest.fixture
def sim(shared_sim: Simulator) -> Simulator:
    """The shared simulator with its state, faults and log back at the seed's."""
    shared_sim.reset()
    shared_sim.app.hub.jwt_ttl = 600
    return shared_sim


@pytest.fixture
def client(sim: Simulator, spec_checker: SpecChecker) -> Iterator[httpx.Client]:
    """An httpx client on the simulator; every answer is checked against the spec."""
    with httpx.Client(
        base_url=sim.url, timeout=10, event_hooks={"response": [spec_checker.check]}
    ) as c:
        yield c


@pytest.fixture
def login(client: httpx.Client) -> Callable[..., dict[str, str]]:
    """``login("alice")`` (password), ``login("alice", "pat")``, ``login("acme", "oat")``,
    ``login("alice-read", "pat")``, ``login("acme-auditor", "oat")`` → auth headers."""

    def make(who: str, kind: str = "password") -> dict[str, str]:
        identifier = who.split("-")[0]
        secret = {"password": PASSWORDS, "pat": PATS, "oat": OATS}[kind][who]
        return {"Authorization": f"Bearer {exchange(client, identifier, secret)}"}

    return make
