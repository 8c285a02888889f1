"""Applying a plan against the simulator: the send core's machinery, drift refused, resumable
after kill -9 with every effect once, and a plan right after an apply has no changes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from sink.errors import ConfigError, PlanDrift
from sink.hubsim import Simulator, start_process
from sink.plan.apply import apply_plan
from sink.plan.make import plan_state
from sink.plan.store import load_plan, save_plan
from sink.send.ledger import DONE, Ledger
from tests.plan.conftest import StateFile


def writes(hub: Any, since: int = 0) -> list[dict[str, Any]]:
    return [
        r
        for r in hub.requests()[since:]
        if r["method"] not in ("GET", "HEAD") and r["path"] != "/v2/auth/token"
    ]


def test_apply_sends_exactly_the_changes_then_a_plan_has_none(
    fresh_hub: Simulator, state_file: StateFile, tmp_path: Path
) -> None:
    path = state_file(
        members=[
            {"username": "alice", "role": "owner"},
            {"username": "bob", "role": "editor"},
            {"username": "carol"},
            {"username": "erin", "role": "editor"},
            {"email": "grace@example.com"},
        ],
        teams=[{"name": "platform", "description": "Runs it"}, {"name": "developers"}],
        team_members=[
            {"team": "platform", "username": "bob"},
            {"team": "platform", "username": "grace@example.com"},
        ],
        repository_teams=[{"repository": "web", "team": "platform", "permission": "read"}],
    )
    plan = plan_state(path, base_url=fresh_hub.url)
    assert plan.changes == 5 and plan.calls == 5
    before = len(fresh_hub.requests())
    summary = apply_plan(plan, base_url=fresh_hub.url)
    sent = writes(fresh_hub, before)
    assert summary.calls == 5 and not summary.trouble
    assert [(r["method"], r["path"]) for r in sent] == [
        ("POST", "/v2/orgs/acme/groups"),
        ("POST", "/v2/invites/bulk"),
        ("PUT", "/v2/orgs/acme/members/bob"),  # a role change in place: one PUT
        ("POST", "/v2/orgs/acme/groups/platform/members"),
        ("POST", "/v2/repositories/acme/web/groups"),
    ]
    state = fresh_hub.state()
    acme = next(o for o in state["orgs"] if o["name"] == "acme")
    assert acme["members"]["bob"] == "editor"
    again = plan_state(path, base_url=fresh_hub.url)
    assert again.changes == 0 and again.counts["waiting"] == 1  # grace has not joined
    out = tmp_path / "out"
    audit = [
        orjson.loads(line) for line in (out / "state-apply-audit.jsonl").read_bytes().splitlines()
    ]
    assert sum(1 for line in audit if line.get("outcome") == "ok") == 5
    assert (out / "state-apply.ledger.sqlite").stat().st_mode & 0o777 == 0o600


def test_drift_between_plan_and_apply_is_refused_and_nothing_sent(
    fresh_hub: Simulator, state_file: StateFile, tmp_path: Path
) -> None:
    path = state_file(members=[{"username": "bob", "role": "editor"}], teams=[{"name": "platform"}])
    saved = save_plan(plan_state(path, base_url=fresh_hub.url), tmp_path / "plan.json")
    assert saved.stat().st_mode & 0o777 == 0o600
    # Someone changes bob's role in Hub's UI meanwhile.
    fresh_hub.app.hub.state.orgs["acme"].roles["bob"] = "owner"
    before = len(fresh_hub.requests())
    with pytest.raises(
        PlanDrift, match=r"member acme/bob: planned from role member, Hub now has role owner"
    ):
        apply_plan(load_plan(saved), base_url=fresh_hub.url)
    assert writes(fresh_hub, before) == []


def test_a_changed_input_or_a_destroying_plan_without_yes_is_refused(
    fresh_hub: Simulator, state_file: StateFile, tmp_path: Path
) -> None:
    path = state_file(members={"rows": [{"username": "alice", "role": "owner"}], "prune": True})
    plan = plan_state(path, base_url=fresh_hub.url)
    assert plan.destructive
    with pytest.raises(
        ConfigError, match=r"destroys 4: invite acme/frank@example.com, member acme/bob"
    ):
        apply_plan(plan, base_url=fresh_hub.url)
    saved = save_plan(plan, tmp_path / "plan.json")
    state_file(members={"rows": [{"username": "alice", "role": "owner"}], "prune": False})
    with pytest.raises(ConfigError, match=r"changed since this plan"):
        load_plan(saved)


TEAMS = 12
DRIVER = "import sys\nfrom sink.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"


def test_kill_9_during_apply_then_apply_again_applies_each_effect_once(
    state_file: StateFile, tmp_path: Path
) -> None:
    teams = [{"name": f"crew-{i:02d}", "description": f"Crew {i}"} for i in range(TEAMS)]
    path = state_file(
        members=[
            {"username": "alice", "role": "owner"},
            {"username": "bob"},
            {"username": "carol"},
            {"username": "erin", "role": "editor"},
        ]
        + [{"email": f"hire{i}@example.com"} for i in range(5)],
        teams=teams,
        team_members=[{"team": t["name"], "username": "carol"} for t in teams],
        concurrency=2,
    )
    with start_process(latency_ms=30) as hub:
        plan_file = save_plan(plan_state(path, base_url=hub.url), tmp_path / "plan.json")
        command = [sys.executable, "-c", DRIVER, "apply", str(plan_file), "--base-url", hub.url]
        kills = 0
        for target in (4, 12, 19):
            process = subprocess.Popen(
                command, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline = time.monotonic() + 60
            while (
                len(writes(hub)) < target and process.poll() is None and time.monotonic() < deadline
            ):
                time.sleep(0.02)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait()
        assert kills >= 2
        summary = apply_plan(load_plan(plan_file), base_url=hub.url)
        assert not summary.trouble
        done = writes(hub)
        created = [r for r in done if r["path"] == "/v2/orgs/acme/groups" and r["status"] == 201]
        assert len(created) == TEAMS  # each team once (a second create would be a 409)
        joined = [r for r in done if r["path"].endswith("/members") and r["method"] == "POST"]
        assert len({r["path"] for r in joined}) == TEAMS
        assert len([r for r in joined if r["status"] == 200]) <= TEAMS
        invites = [
            i for i in next(o for o in hub.state()["orgs"] if o["name"] == "acme")["invites"]
        ]
        hires = sorted(i["invitee"] for i in invites if i["invitee"].startswith("hire"))
        assert hires == [f"hire{i}@example.com" for i in range(5)]  # each invited once
        with Ledger(tmp_path / "out" / "state-apply.ledger.sqlite") as ledger:
            assert ledger.counts()[DONE] == TEAMS * 2 + 5
        assert plan_state(path, base_url=hub.url).changes == 0


def test_tokens_created_with_secrets_in_the_vault_deactivated_and_pruned(
    fresh_hub: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    from tests.seed import ALICE_PASSWORD

    monkeypatch.setenv("PLAN_ALICE_PASSWORD", ALICE_PASSWORD)
    resources = '[{"type": "TYPE_ORG", "path": "acme", "scopes": ["scope-member-read"]}]'
    doc = {
        "connection": {"identifier": "alice", "secret_env": "PLAN_ALICE_PASSWORD"},
        "org": "acme",
        "access_tokens": {
            "rows": [
                {"label": "sink admin"},
                {"label": "read only", "active": False},
                {"label": "ci new", "scopes": "repo:read"},
            ]
        },
        "org_access_tokens": {
            "rows": [{"label": "sink automation"}, {"label": "deploy", "resources": resources}],
            "prune": True,
        },
    }
    path = tmp_path / "tokens.yaml"
    path.write_text(yaml.safe_dump(doc))
    plan = plan_state(path, base_url=fresh_hub.url)
    assert sorted((a.op, a.kind, a.key) for a in plan.actions) == [
        ("create", "access_tokens", "ci new"),
        ("create", "org_access_tokens", "deploy"),
        ("delete", "org_access_tokens", "auditor"),
        ("update", "access_tokens", "read only"),
    ]
    summary = apply_plan(plan, yes=True, base_url=fresh_hub.url)
    assert summary.calls == 4 and not summary.trouble
    vault = (tmp_path / "out" / "tokens-apply-vault.jsonl").read_bytes().splitlines()
    assert len(vault) == 2 and all(b"dckr_" in line for line in vault)
    assert (tmp_path / "out" / "tokens-apply-vault.jsonl").stat().st_mode & 0o777 == 0o600
    responses = (tmp_path / "out" / "tokens-apply-responses.jsonl").read_bytes()
    assert b"dckr_pat_" not in responses and b"dckr_oat_" not in responses
    assert plan_state(path, base_url=fresh_hub.url).changes == 0
