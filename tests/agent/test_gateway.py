"""The gateway without MCP: retries after dropped connections, the ledger, the budget."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from sink.agent.gateway import Gateway
from sink.hubsim import Simulator
from tests.agent.conftest import audit_lines, make_agent

pytestmark = pytest.mark.anyio

REPOS = "/v2/namespaces/acme/repositories"


def posts(hub: Simulator) -> int:
    return sum(1 for r in hub.requests() if (r["method"], r["path"]) == ("POST", REPOS))


def created(hub: Simulator, name: str) -> int:
    return sum(
        1 for r in hub.state()["repositories"] if (r["namespace"], r["name"]) == ("acme", name)
    )


async def test_hub_drops_the_connection_after_the_create_nothing_twice(
    tmp_path: Path, fresh_hub: Simulator
) -> None:
    fresh_hub.set_faults(
        {"rules": [{"method": "POST", "path": REPOS, "drop_rate": 1, "apply_first": True}]}
    )
    agent = make_agent(tmp_path, fresh_hub)
    async with Gateway(agent) as gateway:
        first = await gateway.call("create_repository", {"name": "team-drop"})
        token = first.payload["confirm"]
        sent = await gateway.call("create_repository", {"name": "team-drop", "confirm": token})
        again = await gateway.call("create_repository", {"name": "team-drop", "confirm": token})
        fresh = await gateway.call("create_repository", {"name": "team-drop"})
    assert sent.payload["status"] == "ok", sent.payload
    assert sent.payload["flags"] == {"recovered": True}  # the answer was lost; looked up
    assert again.payload["rule"] == "confirmation: already used"
    assert fresh.payload["already_in_place"] is True
    assert posts(fresh_hub) == 1 and created(fresh_hub, "team-drop") == 1


async def test_a_call_cut_off_mid_send_is_settled_by_the_ledger_on_retry(
    tmp_path: Path, fresh_hub: Simulator
) -> None:
    # Hub takes the create, then answers slowly; the client's connection drops meanwhile
    # (the call is cancelled) and a new server retries the call with the same token.
    fresh_hub.set_faults(
        {"rules": [{"method": "POST", "path": REPOS, "slow_rate": 1, "slow_ms": 3_000}]}
    )
    agent = make_agent(tmp_path, fresh_hub)
    arguments = {"name": "team-cut"}
    async with Gateway(agent) as gateway:
        token = (await gateway.call("create_repository", arguments)).payload["confirm"]
        async with anyio.create_task_group() as group:
            group.start_soon(gateway.call, "create_repository", {**arguments, "confirm": token})
            for _ in range(400):  # until Hub has taken it (bounded; no timing asserted)
                if created(fresh_hub, "team-cut"):
                    break
                await anyio.sleep(0.05)
            group.cancel_scope.cancel()
    fresh_hub.set_faults(None)
    assert created(fresh_hub, "team-cut") == 1
    before = posts(fresh_hub)  # the cut-off POST is logged once Hub has answered it
    async with Gateway(agent) as restarted:
        retried = await restarted.call("create_repository", {**arguments, "confirm": token})
        replayed = await restarted.call("create_repository", {**arguments, "confirm": token})
    assert retried.payload["status"] == "already_done", retried.payload
    assert retried.payload["sent"] is False
    assert replayed.payload["rule"] == "confirmation: already used"
    assert posts(fresh_hub) <= max(before, 1) and created(fresh_hub, "team-cut") == 1


async def test_the_call_budget_is_a_named_rule(tmp_path: Path, hub: Simulator) -> None:
    agent = make_agent(
        tmp_path,
        hub,
        policy={"read_only": True},
        budget={"calls_per_minute": 2, "requests_per_second": 50},
    )
    now = [0.0]
    async with Gateway(agent, clock=lambda: now[0]) as gateway:
        answers = [await gateway.call("teams", {}) for _ in range(3)]
        now[0] += 61
        later = await gateway.call("teams", {})
    assert [a.is_error for a in answers] == [False, False, True]
    assert answers[2].payload["rule"] == "budget.calls_per_minute"
    assert not later.is_error
    refused = [line for line in audit_lines(agent) if line.get("decision") == "refused"]
    assert [line["rule"] for line in refused] == ["budget.calls_per_minute"]


async def test_the_last_owner_guard_refuses_before_a_token_is_given(
    tmp_path: Path, fresh_hub: Simulator
) -> None:
    from tests.seed import ALICE_PASSWORD

    agent = make_agent(
        tmp_path,
        fresh_hub,
        identifier="alice",
        secret=ALICE_PASSWORD,
        settings={"org": "acme"},
        policy={"templates": ["remove-member"], "unattended_destructive": True},
    )
    async with Gateway(agent) as gateway:
        refused = await gateway.call("remove_member", {"username": "alice"})
    assert refused.is_error and refused.payload["rule"] == "guard"
    assert "owner" in refused.payload["error"]
    assert "confirm" not in refused.payload


async def test_a_credential_the_template_cannot_use_is_refused_before_a_token(
    tmp_path: Path, fresh_hub: Simulator
) -> None:
    agent = make_agent(  # acme's OAT: Hub lets no OAT manage OATs
        tmp_path, fresh_hub, policy={"templates": ["create-org-access-token"]}
    )
    async with Gateway(agent) as gateway:
        refused = await gateway.call("create_org_access_token", {"label": "x", "resources": []})
    assert refused.payload["rule"] == "credential"
    assert "password" in refused.payload["error"]
    assert "confirm" not in refused.payload


async def test_one_sign_in_and_one_pacer_for_the_agents_reads_and_writes(
    tmp_path: Path, fresh_hub: Simulator
) -> None:
    agent = make_agent(tmp_path, fresh_hub, settings={"org": "acme"})
    phase = ["read"]
    paced: list[str] = []
    async with Gateway(agent) as gateway:
        pacer = gateway.session.pacer
        assert gateway.reader.pacer is pacer
        wait = pacer.wait

        async def counted() -> None:
            paced.append(phase[0])
            await wait()

        pacer.wait = counted  # type: ignore[method-assign]
        assert not (await gateway.call("teams", {})).is_error
        for team in ("team-one", "team-two", "team-three"):
            phase[0] = "read"
            first = await gateway.call("create_team", {"team": team})
            phase[0] = "write"
            confirm = first.payload["confirm"]
            sent = await gateway.call("create_team", {"team": team, "confirm": confirm})
            assert sent.payload["status"] == "ok", sent.payload
        phase[0] = "read"
        assert not (await gateway.call("members", {})).is_error
        hooks = list(gateway.session.client.event_hooks["response"])
    exchanges = [r for r in fresh_hub.requests() if r["path"] == "/v2/auth/token"]
    assert len(exchanges) == 1  # one sign-in for 2 reads and 3 confirmed writes
    created = [r for r in fresh_hub.requests() if (r["method"], r["path"]) == ("POST", GROUPS)]
    assert len(created) == 3
    # The confirmed writes waited on the same pacer as the reads.
    assert paced.count("write") >= 3 and "read" in paced
    # Each send's audit hook went with it: only the gateway's is left on the shared client.
    assert hooks == [gateway._audit_read]


GROUPS = "/v2/orgs/acme/groups"


async def test_an_unforeseen_error_is_logged_and_answered_without_its_text(
    tmp_path: Path, hub: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaked = "dckr_oat_Z8bV1nM4kQ7wE2rT5yU9iO3pA6sD0fGh"
    agent = make_agent(tmp_path, hub, policy={"read_only": True})
    async with Gateway(agent) as gateway:

        async def broken(*args: object, **kwargs: object) -> None:
            raise KeyError(f"team {leaked}")

        monkeypatch.setattr(gateway, "_read", broken)
        answer = await gateway.call("teams", {})
    assert answer.is_error and answer.payload["status"] == "failed"
    assert "KeyError" in answer.payload["error"] and leaked not in str(answer.payload)
    [line] = [line for line in audit_lines(agent) if line.get("decision") == "failed"]
    assert line["agent"] == agent.name and leaked not in str(line)
