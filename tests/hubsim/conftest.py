"""Fixtures for the simulator's tests: one server per session, state reset per test, and an
httpx client whose every answer is checked against the official spec (see hubsim_spec.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from hubsim_creds import OATS, PASSWORDS, PATS, exchange
from hubsim_spec import SpecChecker

from sink.hubsim import Simulator
from sink.hubsim.seed import large_seed


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


# A generated state big enough that every list spans several pages of 100 (see hubsim_pages).
BIG_SIZES = {
    "members": 450,
    "teams": 230,
    "big_team_members": 150,
    "repositories": 250,
    "invites": 130,
    "outsiders": 70,
    "personal_tokens": 110,
    "org_tokens": 105,
}


@pytest.fixture(scope="session")
def shared_big_sim() -> Iterator[Simulator]:
    """One simulator on a generated seed (``large_seed(**BIG_SIZES)``) for the session."""
    with Simulator(seed=large_seed(**BIG_SIZES)) as simulator:
        yield simulator


@pytest.fixture
def big(shared_big_sim: Simulator) -> Simulator:
    """The generated-seed simulator, back at its seed."""
    shared_big_sim.reset()
    return shared_big_sim


@pytest.fixture
def big_client(big: Simulator, spec_checker: SpecChecker) -> Iterator[httpx.Client]:
    """An httpx client on the generated-seed simulator, answers checked against the spec."""
    with httpx.Client(
        base_url=big.url, timeout=10, event_hooks={"response": [spec_checker.check]}
    ) as c:
        yield c


@pytest.fixture
def big_login(big_client: httpx.Client) -> Callable[..., dict[str, str]]:
    """``login`` for the generated-seed simulator (the default seed's credentials)."""

    def make(who: str, kind: str = "password") -> dict[str, str]:
        identifier = who.split("-")[0]
        secret = {"password": PASSWORDS, "pat": PATS, "oat": OATS}[kind][who]
        return {"Authorization": f"Bearer {exchange(big_client, identifier, secret)}"}

    return make
