"""Sending, end to end, through the simulator as a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from sink.destination import open_destination
from sink.errors import NeedsOrgToken
from sink.hubsim import Simulator
from sink.read.credentials import Credentials
from sink.run import RunOptions, RunSummary, run_async
from tests.seed import ALICE_PASSWORD, ALICE_PAT, OAT

pytestmark = pytest.mark.usefixtures("fresh_hub")


def write_config(folder: Path, config: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    (folder / "records.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    config = {"input": "records.jsonl", **config}
    path = folder / "dest.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run(
    hub: Simulator,
    folder: Path,
    config: dict[str, Any],
    rows: list[dict[str, Any]],
    *,
    identifier: str = "acme",
    secret: str = OAT,
) -> RunSummary:
    base = {"connection": {"identifier": identifier, "secret_env": "SINK_TEST_SECRET"}}
    path = write_config(folder, {**base, **config}, rows)
    destination = open_destination(path, base_url=hub.url)
    kind = (
        "oat"
        if secret.startswith("dckr_oat_")
        else ("pat" if secret.startswith("dckr_pat_") else "password")
    )
    credentials = Credentials(hub.url, identifier, secret, kind)  # type: ignore[arg-type]
    options = RunOptions(folder / "records.jsonl", yes=True)
    return asyncio.run(run_async(destination, credentials, options))


def repositories(hub: Simulator, namespace: str = "acme") -> list[str]:
    return [r["name"] for r in hub.state()["repositories"] if r["namespace"] == namespace]


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


REPO_CONFIG = {
    "template": "create-repository",
    "settings": {"namespace": "acme"},
    "key_field": "name",
}


def repo_rows(count: int, prefix: str = "svc") -> list[dict[str, Any]]:
    return [{"name": f"{prefix}-{i:04d}", "description": f"service {i}"} for i in range(count)]


def test_creates_each_repository_once_and_a_second_run_finds_them(
    hub: Simulator, tmp_path: Path
) -> None:
    rows = repo_rows(25)
    first = run(hub, tmp_path, REPO_CONFIG, rows)
    assert (first.counts.ok, first.counts.rejected, first.counts.failed) == (25, 0, 0)
    posts = len([r for r in hub.requests() if r["method"] == "POST"])
    second = run(hub, tmp_path, REPO_CONFIG, rows)
    assert second.counts.done_before == 25
    assert len([r for r in hub.requests() if r["method"] == "POST"]) == posts
    # Without the ledger's memory, Hub's 409 is looked up: there already, so ok.
    third = run(hub, tmp_path, {**REPO_CONFIG, "ledger": "other.sqlite"}, rows)
    assert third.counts.ok == 25
    assert third.counts.already_existed == 25
    names = repositories(hub)
    assert sorted(n for n in names if n.startswith("svc-")) == [r["name"] for r in rows]
    responses = lines(tmp_path / "out" / "dest-responses.jsonl")
    assert len(responses) == 50
    assert {r["http_status"] for r in responses[:25]} == {201}
    assert {r["http_status"] for r in responses[25:]} == {409}


def test_invalid_records_are_rejected_replayable_and_never_sent(
    hub: Simulator, tmp_path: Path
) -> None:
    rows = [{"name": "good-one"}, {"name": "Bad_Name"}, {"name": "x"}]
    summary = run(hub, tmp_path, REPO_CONFIG, rows)
    assert (summary.counts.ok, summary.counts.rejected) == (1, 2)
    rejects = lines(summary.outputs.rejects)
    assert [r["name"] for r in rejects] == ["Bad_Name", "x"]
    assert all(r["_sink_error"] and r["_sink_index"] in (1, 2) for r in rejects)
    posts = [r for r in hub.requests() if r["method"] == "POST" and "repositories" in r["path"]]
    assert len(posts) == 1
    # The rejects file is an input: fixed and replayed, the _sink_ attributes are left out.
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_bytes(
        b"".join(
            orjson.dumps({**r, "name": r["name"].lower().replace("_", "-") + "-fixed"}) + b"\n"
            for r in rejects
        )
    )
    path = tmp_path / "dest.yaml"
    destination = open_destination(path, base_url=hub.url)
    credentials = Credentials(hub.url, "acme", OAT, "oat")
    replay = asyncio.run(run_async(destination, credentials, RunOptions(fixed, yes=True)))
    assert replay.counts.ok == 2
    assert {"bad-name-fixed", "x-fixed"} <= set(repositories(hub))


def test_jwt_expiry_is_crossed_mid_run(tmp_path: Path) -> None:
    with Simulator(jwt_ttl=1) as short:
        config = {**REPO_CONFIG, "rate_limit": 20}
        summary = run(short, tmp_path, config, repo_rows(50))
        exchanges = [r for r in short.requests() if r["path"] == "/v2/auth/token"]
        unauthorized = [r for r in short.requests() if r["status"] == 401]
    assert summary.counts.ok == 50
    assert summary.seconds > 2
    assert len(exchanges) >= 2
    assert unauthorized == [] or len(unauthorized) <= 2


def test_an_isolated_429_delays_only_its_own_record(hub: Simulator, tmp_path: Path) -> None:
    # One create in ten is answered 429 (Retry-After: 1) while Hub reports plenty of quota;
    # the others take 50 ms, so the run lasts longer than the wait.
    hub.set_faults(
        {
            "rules": [
                {
                    "method": "POST",
                    "path": "/v2/namespaces/*/repositories",
                    "burst_every": 10,
                    "burst_length": 1,
                    "retry_after": 1,
                    "latency_ms": 50,
                }
            ]
        }
    )
    summary = run(hub, tmp_path, {**REPO_CONFIG, "concurrency": 4}, repo_rows(60))
    assert summary.counts.ok == 60
    assert summary.stats is not None and summary.stats.rate_limited >= 1
    log = [r for r in hub.requests() if r["method"] == "POST" and "repositories" in r["path"]]
    first = next(r["time"] for r in log if r["status"] == 429)
    # The other workers went on while the throttled record waited its second...
    assert [r for r in log if first + 0.05 < r["time"] < first + 0.95 and r["status"] == 201]
    # ...and the throttled records were sent again only after it.
    throttled = [
        line for line in lines(tmp_path / "out" / "dest-responses.jsonl") if line["attempts"] > 1
    ]
    assert len(throttled) == summary.stats.rate_limited
    assert all(line["duration"] >= 1.0 and line["http_status"] == 201 for line in throttled)
    assert sorted(n for n in repositories(hub) if n.startswith("svc-")) == [
        r["name"] for r in repo_rows(60)
    ]


def test_dense_429s_hold_every_worker(hub: Simulator, tmp_path: Path) -> None:
    # Half the creates are answered 429: the quota Hub reports is not what is limiting.
    hub.set_faults(
        {
            "rules": [
                {
                    "method": "POST",
                    "path": "/v2/namespaces/*/repositories",
                    "burst_every": 4,
                    "burst_length": 2,
                    "retry_after": 1,
                }
            ]
        }
    )
    summary = run(hub, tmp_path, {**REPO_CONFIG, "concurrency": 4}, repo_rows(20))
    assert summary.counts.ok == 20
    assert summary.stats is not None and summary.stats.rate_limit_wait >= 1.0  # shared holds
    log = [r for r in hub.requests() if r["method"] == "POST" and "repositories" in r["path"]]
    holds = 0
    for moment in (r["time"] for r in log if r["status"] == 429):
        later = [r["time"] - moment for r in log if r["time"] > moment + 0.05]
        holds += bool(later) and min(later) >= 0.95  # nobody sent within the second after it
    assert holds >= 1
    assert sorted(n for n in repositories(hub) if n.startswith("svc-")) == [
        r["name"] for r in repo_rows(20)
    ]


def test_5xx_and_dropped_connections_are_retried_without_duplicates(
    hub: Simulator, tmp_path: Path
) -> None:
    hub.set_faults(
        {
            "seed": 7,
            "rules": [
                {
                    "method": "POST",
                    "path": "/v2/namespaces/*/repositories",
                    "error_rate": 0.25,
                    "drop_rate": 0.1,
                }
            ],
        }
    )
    config = {**REPO_CONFIG, "retry": {"max_attempts": 10, "max_seconds": 60}}
    rows = repo_rows(40)
    summary = run(hub, tmp_path, config, rows)
    assert (summary.counts.ok, summary.counts.failed) == (40, 0)
    statuses = {r["status"] for r in hub.requests() if r["method"] == "POST"}
    assert statuses & {500, 502, 503}
    names = repositories(hub)
    assert sorted(n for n in names if n.startswith("svc-")) == [r["name"] for r in rows]
    assert len(names) == len(set(names))


def test_ambiguous_creates_are_looked_up_never_duplicated(hub: Simulator, tmp_path: Path) -> None:
    # The change is applied, then the answer comes too late: the client times out.
    hub.set_faults(
        {
            "seed": 3,
            "rules": [
                {
                    "method": "POST",
                    "path": "/v2/namespaces/*/repositories",
                    "slow_rate": 0.3,
                    "slow_ms": 1500,
                    "apply_first": True,
                }
            ],
        }
    )
    config = {**REPO_CONFIG, "timeout": 0.5}
    rows = repo_rows(20)
    summary = run(hub, tmp_path, config, rows)
    assert summary.counts.ok == 20
    assert summary.counts.recovered + summary.counts.already_existed >= 1
    heads = [r for r in hub.requests() if r["method"] == "HEAD"]
    assert heads
    names = repositories(hub)
    assert sorted(n for n in names if n.startswith("svc-")) == [r["name"] for r in rows]
    assert len(names) == len(set(names))


def test_a_pat_on_an_org_endpoint_stops_with_the_reason(hub: Simulator, tmp_path: Path) -> None:
    config = {"template": "create-team", "settings": {"org": "acme"}}
    with pytest.raises(NeedsOrgToken, match="organization access token"):
        run(hub, tmp_path, config, [{"team": "qa"}], identifier="alice", secret=ALICE_PAT)
    assert [r for r in hub.requests() if r["method"] == "POST" and "groups" in r["path"]] == []


def test_a_pat_refused_by_hub_stops_the_run(hub: Simulator, tmp_path: Path) -> None:
    config = {
        "manual": {
            "method": "POST",
            "url": "/v2/orgs/acme/groups",
            "body": {"name": "{{ record.team }}"},
        }
    }
    summary = run(
        hub,
        tmp_path,
        config,
        [{"team": "qa"}, {"team": "ops"}],
        identifier="alice",
        secret=ALICE_PAT,
    )
    assert summary.stopped is not None
    assert "organization access token" in summary.stopped
    assert summary.counts.ok == 0


def test_bulk_invite_results_are_mapped_to_their_records(hub: Simulator, tmp_path: Path) -> None:
    config = {
        "template": "bulk-invite",
        "settings": {"org": "acme"},
        "key_field": "invitee",
        "batching": {"mode": "json_property", "property": "invitees", "size": 10},
    }
    rows = [
        {"invitee": "newcomer@example.com"},
        {"invitee": "bob"},
        {"invitee": "not an email or id!"},
        {"invitee": "frank@example.com"},
    ]
    summary = run(hub, tmp_path, config, rows)
    assert summary.counts.requests == 1
    rejected = {r["invitee"]: r["_sink_error"] for r in lines(summary.outputs.rejects)}
    assert list(rejected) == ["not an email or id!"]
    assert "invalid" in rejected["not an email or id!"]
    assert summary.counts.ok == 3
    invites = {
        i["invitee"] for o in hub.state()["orgs"] if o["name"] == "acme" for i in o["invites"]
    }
    assert {"newcomer@example.com", "frank@example.com"} <= invites


def secrets_issued(hub: Simulator) -> list[str]:
    state = hub.state()
    found = [t["token"] for u in state["users"] for t in u.get("tokens", [])]
    found += [t["token"] for o in state["orgs"] for t in o.get("access_tokens", [])]
    return found


def test_created_secrets_go_only_to_the_vault(hub: Simulator, tmp_path: Path) -> None:
    rows = [{"token_label": f"ci-{i}", "scopes": "repo:read,repo:write"} for i in range(5)]
    config = {
        "template": "create-personal-access-token",
        "key_field": "token_label",
        "connection": {"identifier": "alice", "secret_env": "SINK_TEST_SECRET"},
    }
    path = write_config(tmp_path, config, rows)
    env = {**os.environ, "SINK_TEST_SECRET": ALICE_PASSWORD}
    done = subprocess.run(
        [sys.executable, "-m", "sink", "run", str(path), "--base-url", hub.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    vault = tmp_path / "out" / "dest-vault.jsonl"
    assert (vault.stat().st_mode & 0o777) == 0o600
    stored = {line["label"]: line["token"] for line in lines(vault)}
    assert sorted(stored) == [f"ci-{i}" for i in range(5)]
    created = [s for s in secrets_issued(hub) if s in stored.values()]
    assert len(created) == 5
    everything_else = (
        done.stdout
        + done.stderr
        + "".join(p.read_text() for p in (tmp_path / "out").iterdir() if p != vault)
    )
    for secret in [*secrets_issued(hub), ALICE_PASSWORD]:
        assert secret not in everything_else
    assert '"token":"***"' in (tmp_path / "out" / "dest-responses.jsonl").read_text()


def test_ctrl_c_stops_intake_flushes_and_exits_130(tmp_path: Path) -> None:
    with Simulator(latency_ms=50) as slow:
        config = {
            "connection": {"identifier": "acme", "secret_env": "SINK_TEST_SECRET"},
            **REPO_CONFIG,
            "concurrency": 2,
        }
        path = write_config(tmp_path, config, repo_rows(400))
        env = {**os.environ, "SINK_TEST_SECRET": OAT}
        process = subprocess.Popen(
            [sys.executable, "-m", "sink", "run", str(path), "--base-url", slow.url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        responses = tmp_path / "out" / "dest-responses.jsonl"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(lines(responses)) < 10:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        created = [n for n in repositories(slow) if n.startswith("svc-")]
    assert process.returncode == 130, err
    written = lines(responses)
    assert 10 <= len(written) < 400
    # Every repository created has its response line: nothing in flight was lost.
    assert sorted(created) == sorted(line["keys"][0] for line in written)
    assert "Interrupted" in err


def test_a_team_named_by_name_is_granted_by_its_looked_up_id(
    hub: Simulator, tmp_path: Path
) -> None:
    config = {"template": "grant-team-repository", "settings": {"namespace": "acme"}}
    rows = [
        {"repository": "web", "team": "developers", "permission": "read"},
        {"repository": "web", "team": "no-such-team", "permission": "read"},
    ]
    summary = run(hub, tmp_path, config, rows)
    assert (summary.counts.ok, summary.counts.rejected) == (1, 1)
    [rejected] = lines(summary.outputs.rejects)
    assert rejected["_sink_error"] == "team 'no-such-team' does not exist in organization acme"
    web = next(
        r for r in hub.state()["repositories"] if (r["namespace"], r["name"]) == ("acme", "web")
    )
    assert web["teams"] == {"developers": "read"}
    group_lists = [r for r in hub.requests() if r["path"] == "/v2/orgs/acme/groups"]
    assert len(group_lists) == 1  # looked up once, then cached


def test_adding_a_non_member_to_a_team_is_rejected_before_sending(
    hub: Simulator, tmp_path: Path
) -> None:
    config = {"template": "add-team-member", "settings": {"org": "acme"}}
    rows = [{"team": "developers", "username": "carol"}, {"team": "developers", "username": "dave"}]
    summary = run(hub, tmp_path, config, rows)
    assert (summary.counts.ok, summary.counts.rejected) == (1, 1)
    [rejected] = lines(summary.outputs.rejects)
    assert rejected["username"] == "dave"
    assert "is not a member of the organization acme" in rejected["_sink_error"]
    posts = [r for r in hub.requests() if r["method"] == "POST" and r["path"].endswith("/members")]
    assert len(posts) == 1


def test_a_run_sends_the_batches_a_preview_shows(hub: Simulator, tmp_path: Path) -> None:
    import io

    from sink.preview import preview

    # 300 invitees in two groups (team), more than one ledger chunk: batches of 100 are cut
    # by the batching settings alone, never at a chunk's end.
    rows = [
        {"invitee": f"person{n:03d}@example.com", "team": ["developers", "owners"][n % 7 == 0]}
        for n in range(300)
    ]
    config = {
        "template": "bulk-invite",
        "settings": {"org": "acme"},
        "batching": {"mode": "json_property", "property": "invitees", "size": 100},
        "key_field": "invitee",
    }
    base = {"connection": {"identifier": "acme", "secret_env": "SINK_TEST_SECRET"}}
    path = write_config(tmp_path, {**base, **config}, rows)
    destination = open_destination(path, base_url=hub.url)
    report = preview(destination, tmp_path / "records.jsonl", limit=None, out=io.BytesIO())
    summary = run(hub, tmp_path, config, rows)
    posts = [r for r in hub.requests() if r["method"] == "POST" and r["path"] == "/v2/invites/bulk"]
    assert report.requests == len(posts) == summary.counts.requests == 4  # 257 + 43


def test_a_tested_record_is_done_for_the_next_run_and_audited(
    hub: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sink.cli.main import main

    rows = [{"token_label": f"tested-{n}", "scopes": "repo:read"} for n in range(2)]
    config = {
        "connection": {"identifier": "alice", "secret_env": "SINK_TEST_SECRET"},
        "template": "create-personal-access-token",
        "key_field": "token_label",
    }
    path = write_config(tmp_path, config, rows)
    monkeypatch.setenv("SINK_TEST_SECRET", ALICE_PASSWORD)
    assert main(["test", str(path), "--record", "1", "--base-url", hub.url]) == 0
    assert main(["run", str(path), "--base-url", hub.url]) == 0
    alice = next(u for u in hub.state()["users"] if u["username"] == "alice")
    labels = sorted(t["label"] for t in alice["tokens"] if t["label"].startswith("tested-"))
    assert labels == ["tested-0", "tested-1"]  # the tested one was not created twice
    audit = lines(tmp_path / "out" / "dest-audit.jsonl")
    assert sum(1 for line in audit if line.get("method") == "POST") == 2
    vault = lines(tmp_path / "out" / "dest-vault.jsonl")
    assert sorted(line["key"] for line in vault) == ["tested-0", "tested-1"]


def test_a_test_resolves_team_names_like_a_run(
    hub: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sink.cli.main import main

    config = {
        "connection": {"identifier": "acme", "secret_env": "SINK_TEST_SECRET"},
        "template": "grant-team-repository",
        "settings": {"namespace": "acme"},
    }
    rows = [{"repository": "web", "team": "developers", "permission": "read"}]
    path = write_config(tmp_path, config, rows)
    monkeypatch.setenv("SINK_TEST_SECRET", OAT)
    assert main(["test", str(path), "--base-url", hub.url]) == 0
    posts = [r for r in hub.requests() if r["method"] == "POST" and r["path"].endswith("/groups")]
    assert len(posts) == 1


def test_a_hand_edited_body_is_kept_under_its_own_key(
    hub: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sink.cli.main import main
    from sink.send.ledger import Ledger

    connection = {"connection": {"identifier": "acme", "secret_env": "SINK_TEST_SECRET"}}
    path = write_config(tmp_path, {**connection, **REPO_CONFIG}, repo_rows(1, "orig"))
    monkeypatch.setenv("SINK_TEST_SECRET", OAT)
    body = '{"name": "edited-one", "namespace": "acme"}'
    assert main(["test", str(path), "--body", body, "--base-url", hub.url]) == 0
    with Ledger(tmp_path / "dest.ledger.sqlite") as ledger:
        states = ledger.states(["orig-0000"])
    assert states == {}  # record 1 itself was not sent: the next run sends it
    assert "edited-one" in repositories(hub)


def test_run_files_close_every_output_in_one_place_even_when_the_webhook_stops(
    tmp_path: Path,
) -> None:
    from sink.errors import StopRun
    from sink.outputs.audit import AuditLog
    from sink.outputs.files import RejectsFile
    from sink.outputs.redact import Redactor
    from sink.outputs.results import Recorder
    from sink.outputs.vault import Vault
    from sink.run import RunFiles
    from sink.send.ledger import Ledger

    class FailingHook:
        written = 0
        closed = False

        def write(self, outcome: object) -> None:
            raise AssertionError("nothing is written here")

        async def aclose(self) -> None:
            self.closed = True
            raise StopRun("webhook lines could not be kept")

    hook = FailingHook()
    vault = Vault(tmp_path / "vault.jsonl")
    rejects = RejectsFile(tmp_path / "rejects.jsonl", redactor=Redactor())
    files = RunFiles(
        ledger=Ledger(tmp_path / "ledger.sqlite"),
        responses=hook,  # type: ignore[arg-type]
        recorder=Recorder(hook, rejects, vault=vault),
        audit=AuditLog(tmp_path / "audit.jsonl", who="acme", redactor=Redactor()),
    )
    with pytest.raises(StopRun, match="could not be kept"):
        asyncio.run(files.aclose())
    assert hook.closed
    # The vault's lock is released and the ledger closed: both can be opened again at once.
    Vault(tmp_path / "vault.jsonl").close()
    Ledger(tmp_path / "ledger.sqlite").close()
