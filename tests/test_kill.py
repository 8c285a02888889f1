"""Crash safety: a run SIGKILLed at random moments and resumed has every effect exactly once.

The big test drives five destinations (2,000 records: repositories, personal access tokens,
teams, team members, bulk invites) in a subprocess against the simulator in its own process,
with faults that make creates ambiguous (applied, then answered after the client's timeout) or
drop their connections. It kills the driver at random moments (the RNG seed is printed; set
``SINK_KILL_SEED`` to replay one), resumes each time, runs to completion, and then checks the
simulator's state, the request log, the vault and the ledgers.

The small tests pin down single moments a kill can leave behind (a ledger row ``sent`` with
the effect in place or not, a secret already in the vault), deterministically.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

import sink.hubsim
from sink.cli import main as cli
from sink.destination import open_destination
from sink.hubsim import ProcessSimulator, Simulator, start_process
from sink.pipeline import record_key
from sink.read.credentials import Credentials
from sink.run import RunOptions, RunSummary, run_async
from sink.send.ledger import DONE, FAILED, SECRET_LOST, SENT, Ledger
from tests.seed import ALICE_PASSWORD, OAT

DEFAULT_SEED = Path(sink.hubsim.__file__).with_name("default_seed.yaml")

KILLS = 24
SEED = int(os.environ.get("SINK_KILL_SEED", "5005"))
USERS = [f"crew{i:02d}" for i in range(10)]
CREWS = [f"crew-{i:02d}" for i in range(30)]
SLOW_MS = 1500
LATENCY_MS = 20

DRIVER = """\
import sys
from sink.cli.main import main
base = sys.argv[1]
for config in sys.argv[2:]:
    code = main(["run", config, "--base-url", base])
    print(config, code, flush=True)
"""


def hub_seed() -> dict[str, Any]:
    """The default seed plus ten more acme members and thirty teams for them to join."""
    seed: dict[str, Any] = yaml.safe_load(DEFAULT_SEED.read_text())
    for name in USERS:
        seed["users"].append(
            {"username": name, "password": f"{name}-passes-{name}", "email": f"{name}@example.com"}
        )
    acme = next(org for org in seed["orgs"] if org["name"] == "acme")
    acme["members"].update(dict.fromkeys(USERS, "member"))
    acme["teams"] += [{"name": crew, "members": []} for crew in CREWS]
    return seed


def _rule(method: str, path: str, *, slow: float, drop: float, apply_first: bool) -> dict[str, Any]:
    return {
        "method": method,
        "path": path,
        "latency_ms": LATENCY_MS,
        "slow_rate": slow,
        "slow_ms": SLOW_MS,
        "drop_rate": drop,
        "apply_first": apply_first,
    }


FAULTS = {
    "seed": SEED,
    "rules": [
        _rule("POST", "/v2/namespaces/*/repositories", slow=0.03, drop=0.02, apply_first=True),
        _rule("POST", "/v2/access-tokens", slow=0.04, drop=0.02, apply_first=True),
        _rule("POST", "/v2/orgs/*/groups", slow=0.03, drop=0.03, apply_first=False),
        _rule("POST", "/v2/orgs/*/groups/*/members", slow=0.03, drop=0.02, apply_first=True),
        _rule("POST", "/v2/invites/bulk", slow=0.05, drop=0.03, apply_first=True),
    ],
}


@dataclass(frozen=True)
class Flow:
    """One destination of the mix: its config and its records."""

    name: str
    config: dict[str, Any]
    rows: list[dict[str, Any]]


def flows() -> list[Flow]:
    """2,000 records over five templates, each in its own destination."""
    org = {
        "connection": {"identifier": "acme", "secret_env": "SINK_KILL_OAT"},
        "concurrency": 16,
        "timeout": 0.5,
        "retry": {"max_attempts": 8, "max_seconds": 60},
    }
    alice = {**org, "connection": {"identifier": "alice", "secret_env": "SINK_KILL_ALICE"}}
    return [
        Flow(
            "repos",
            {
                **org,
                "template": "create-repository",
                "settings": {"namespace": "acme"},
                "key_field": "name",
            },
            [{"name": f"kill-repo-{i:04d}", "description": f"service {i}"} for i in range(700)],
        ),
        Flow(
            "pats",
            {**alice, "template": "create-personal-access-token", "key_field": "token_label"},
            [{"token_label": f"kill-pat-{i:04d}", "scopes": "repo:read"} for i in range(400)],
        ),
        Flow(
            "teams",
            {**org, "template": "create-team", "settings": {"org": "acme"}, "key_field": "team"},
            [
                {"team": f"kill-team-{i:03d}", "description": "made by the kill test"}
                for i in range(300)
            ],
        ),
        # No key field: the key is a hash of the record's content and the template.
        Flow(
            "members",
            {**org, "template": "add-team-member", "settings": {"org": "acme"}},
            [{"team": crew, "username": user} for crew in CREWS for user in USERS],
        ),
        Flow(
            "invites",
            {
                **org,
                "template": "bulk-invite",
                "settings": {"org": "acme"},
                "key_field": "invitee",
                "batching": {"mode": "json_property", "property": "invitees", "size": 10},
            },
            [{"invitee": f"kill-{i:03d}@example.com"} for i in range(300)],
        ),
    ]


def write_flow(folder: Path, flow: Flow) -> Path:
    """The flow's config and records in ``folder/NAME/``; returns the config's path."""
    home = folder / flow.name
    home.mkdir(parents=True, exist_ok=True)
    (home / "records.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in flow.rows))
    path = home / f"{flow.name}.yaml"
    path.write_text(yaml.safe_dump({"input": "records.jsonl", **flow.config}))
    return path


def ledger_states(path: Path) -> Counter[str]:
    """The ledger's rows per state, read on a connection of our own (as another process)."""
    if not path.exists():
        return Counter()
    db = sqlite3.connect(path)
    try:
        return Counter(dict(db.execute("SELECT state, count(*) FROM records GROUP BY state")))
    except sqlite3.OperationalError:  # killed between creating the file and its table
        return Counter()
    finally:
        db.close()


def written_since(paths: list[Path], moment: float, state: str | None = None) -> int:
    """Ledger rows written at or after ``moment`` (wall clock), in ``state`` if given."""
    query = "SELECT count(*) FROM records WHERE updated >= ?"
    args: tuple[Any, ...] = (moment,)
    if state is not None:
        query += " AND state = ?"
        args = (moment, state)
    total = 0
    for path in paths:
        if not path.exists():
            continue
        db = sqlite3.connect(path)
        try:
            total += db.execute(query, args).fetchone()[0]
        except sqlite3.OperationalError:  # killed between creating the file and its table
            pass
        finally:
            db.close()
    return total


def wait_for_writes(
    process: subprocess.Popen[bytes], ledgers: list[Path], since: float, count: int
) -> bool:
    """Wait until the driver wrote ``count`` ledger rows since ``since``; False if it ended."""
    while process.poll() is None:
        if written_since(ledgers, since) >= count:
            return True
        time.sleep(0.005)
    return False


def jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    # A killed process may leave its last line half-written; a whole line is what counts.
    out = []
    for line in path.read_bytes().splitlines():
        with contextlib.suppress(orjson.JSONDecodeError):
            out.append(orjson.loads(line))
    return out


@pytest.fixture(scope="module")
def kill_hub() -> Iterator[ProcessSimulator]:
    with start_process(hub_seed(), faults=FAULTS, latency_ms=LATENCY_MS) as hub:
        yield hub


@pytest.mark.timeout(400)
def test_sigkill_at_random_moments_then_resume_has_every_effect_exactly_once(
    kill_hub: ProcessSimulator, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    hub = kill_hub
    mix = flows()
    assert sum(len(flow.rows) for flow in mix) == 2000
    configs = [write_flow(tmp_path, flow) for flow in mix]
    ledgers = [
        path.parent / f"{flow.name}.ledger.sqlite" for path, flow in zip(configs, mix, strict=True)
    ]
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "SINK_KILL_OAT": OAT, "SINK_KILL_ALICE": ALICE_PASSWORD}
    command = [sys.executable, str(driver), hub.url, *map(str, configs)]
    rng = random.Random(SEED)

    def say(line: str) -> None:
        with capsysbinary.disabled():
            print(line, flush=True)

    say(f"\nkill test: RNG seed {SEED} (replay with SINK_KILL_SEED={SEED})")

    killed = killed_sending = 0
    started = time.monotonic()
    log = (tmp_path / "driver.log").open("ab")
    for round_ in range(KILLS):
        spawned = time.time()
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        # A random moment, in progress rather than in time: after the run wrote a random
        # number of ledger rows (the first ones settle what the last kill left in flight;
        # then each request is marked sent before it leaves, and settled when it is answered).
        target = rng.randint(1, 120)
        if wait_for_writes(process, ledgers, spawned, target):
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.wait(timeout=30)
        in_flight = written_since(ledgers, spawned, SENT)  # sent by this process, no answer
        killed_sending += in_flight > 0
        done = sum(ledger_states(path)[DONE] for path in ledgers)
        say(
            f"round {round_ + 1:2d}: killed after {target} ledger writes, {done} done, "
            f"{in_flight} of its requests in flight"
        )
    kill_seconds = time.monotonic() - started

    final = subprocess.run(command, env=env, capture_output=True, timeout=180)
    log.close()
    codes = dict(line.rsplit(" ", 1) for line in final.stdout.decode().splitlines())
    say(
        f"{killed} kills in {kill_seconds:.1f}s, {killed_sending} with requests in flight; "
        f"final run exit codes {sorted(codes.values())}"
    )
    assert killed >= 20
    assert killed_sending >= 10
    # A run that finds tokens created by a killed run without their secrets exits 1 (their
    # secrets are lost: never a success); every other flow ends with exit 0.
    pats_config = str(configs[1])
    lost_now = "Secret lost" in final.stderr.decode()
    assert codes.pop(pats_config) == ("1" if lost_now else "0"), final.stderr.decode()[-3000:]
    assert set(codes.values()) == {"0"}, final.stderr.decode()[-3000:]

    # Requests answered slowly finish (and are logged) up to SLOW_MS after their client left.
    time.sleep(SLOW_MS / 1000 + 0.5)
    state = hub.state()
    requests = hub.requests()
    check_effects(state, requests, mix)
    check_no_second_sends(tmp_path, mix)
    say(check_secrets(state, tmp_path, ledgers[1]))
    check_ledgers_and_status(configs, ledgers, mix, capsysbinary)


def _posts(requests: list[dict[str, Any]], prefix: str, suffix: str = "") -> list[dict[str, Any]]:
    return [
        r
        for r in requests
        if r["method"] == "POST" and r["path"].startswith(prefix) and r["path"].endswith(suffix)
    ]


def _applied(entries: list[dict[str, Any]], *, apply_first: bool) -> int:
    """Requests that changed something: a 2xx, or a connection dropped after the change."""
    count = 0
    for entry in entries:
        status = entry["status"]
        answered = status is not None and 200 <= status < 300
        dropped = "drop" in entry["faults"] and "client_left" not in entry["faults"]
        if answered or (status is None and apply_first and dropped):
            count += 1
    return count


def check_effects(state: dict[str, Any], requests: list[dict[str, Any]], mix: list[Flow]) -> None:
    """Each intended effect is in the simulator exactly once, and none is missing."""
    repos, pats, teams, members, invites = (flow.rows for flow in mix)
    names = [
        r["name"]
        for r in state["repositories"]
        if r["namespace"] == "acme" and r["name"].startswith("kill-repo-")
    ]
    assert Counter(names) == Counter(r["name"] for r in repos)
    repo_posts = _posts(requests, "/v2/namespaces/acme/repositories")
    assert [r for r in repo_posts if r["status"] == 409] == []  # never sent a second time
    assert _applied(repo_posts, apply_first=True) == len(repos)

    alice = next(u for u in state["users"] if u["username"] == "alice")
    labels = [t["label"] for t in alice["tokens"] if t["label"].startswith("kill-pat-")]
    assert Counter(labels) == Counter(r["token_label"] for r in pats)  # unique, none lost
    assert _applied(_posts(requests, "/v2/access-tokens"), apply_first=True) == len(pats)

    acme = next(o for o in state["orgs"] if o["name"] == "acme")
    made = [t["name"] for t in acme["teams"] if t["name"].startswith("kill-team-")]
    assert Counter(made) == Counter(r["team"] for r in teams)
    team_posts = [r for r in _posts(requests, "/v2/orgs/acme/groups") if r["path"].count("/") == 4]
    assert [r for r in team_posts if r["status"] == 409] == []
    assert _applied(team_posts, apply_first=False) == len(teams)

    crews = {t["name"]: t["members"] for t in acme["teams"] if t["name"] in CREWS}
    pairs = [(crew, user) for crew, users in crews.items() for user in users]
    assert Counter(pairs) == Counter((r["team"], r["username"]) for r in members)
    member_posts = _posts(requests, "/v2/orgs/acme/groups/", "/members")
    assert _applied(member_posts, apply_first=True) == len(members)  # one add per pair

    invited = [i["invitee"] for i in acme["invites"] if i["invitee"].startswith("kill-")]
    assert Counter(invited) == Counter(r["invitee"] for r in invites)
    events = Counter(e["action"] for e in state["audit_logs"] if e["account"] == "acme")
    assert events["org.member.invite.send"] == len(invites)


def check_no_second_sends(folder: Path, mix: list[Flow]) -> None:
    """No answer says the effect was already there: nothing was sent a second time."""
    for flow in mix:
        for line in jsonl(folder / flow.name / "out" / f"{flow.name}-responses.jsonl"):
            assert line["http_status"] != 409, line
            assert "already_invited" not in orjson.dumps(line["body"]).decode(), line


def check_secrets(state: dict[str, Any], folder: Path, ledger: Path) -> str:
    """Every created token's secret is in the vault, or its loss is reported; none leaks."""
    alice = next(u for u in state["users"] if u["username"] == "alice")
    issued = {t["label"]: t["token"] for t in alice["tokens"] if t["label"].startswith("kill-")}
    vault = {
        line["label"]: line["token"] for line in jsonl(folder / "pats" / "out" / "pats-vault.jsonl")
    }
    # A vault line is a token Hub really issued, with the secret Hub issued.
    assert {label: issued.get(label) for label in vault} == vault
    with Ledger(ledger) as book:
        lost = {entry.key for entry in book.notes(SECRET_LOST)}
        attention = {entry.key for entry in book.attention(limit=10_000)}
    missing = set(issued) - set(vault) - lost
    assert missing == set(), "tokens whose secret is neither in the vault nor reported lost"
    assert lost <= attention  # `sink status` lists them
    outside = b"".join(
        p.read_bytes() for p in (folder / "pats" / "out").iterdir() if p.name != "pats-vault.jsonl"
    )
    outside += (folder / "driver.log").read_bytes()
    for secret in issued.values():
        assert secret.encode() not in outside
    assert (folder / "pats" / "out" / "pats-vault.jsonl").stat().st_mode & 0o777 == 0o600
    return (
        f"tokens: {len(issued)} issued, {len(vault)} in the vault, {len(lost)} reported "
        f"lost, {len(lost & set(vault))} of them reported lost although the vault has them"
    )


def check_ledgers_and_status(
    configs: list[Path],
    ledgers: list[Path],
    mix: list[Flow],
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    """Every record is done in its ledger, and ``sink status`` says the same."""
    for config, ledger, flow in zip(configs, ledgers, mix, strict=True):
        keys = {
            record_key(row, flow.config["template"], flow.config.get("key_field"))
            for row in flow.rows
        }
        with Ledger(ledger) as book:
            assert book.counts() == {DONE: len(flow.rows), SENT: 0, FAILED: 0, "rejected": 0}
            assert set(book.states(sorted(keys))) == keys
            lost = {entry.key for entry in book.notes(SECRET_LOST)}
        capsysbinary.readouterr()
        code = cli.main(["status", str(config), "--json"])
        status = orjson.loads(capsysbinary.readouterr().out)
        assert status["counts"] == {"done": len(flow.rows), "sent": 0, "failed": 0, "rejected": 0}
        listed = {row["key"] for row in status["attention"]}  # the first 50
        assert listed <= lost and len(listed) == min(len(lost), 50)
        assert code == (1 if lost else 0)


# -- single moments a kill can leave behind, deterministically ---------------------------------


def _run(
    hub: Simulator,
    folder: Path,
    config: dict[str, Any],
    rows: list[dict[str, Any]],
    *,
    identifier: str = "acme",
    secret: str = OAT,
    resend_unknown: bool = False,
) -> RunSummary:
    base = {"connection": {"identifier": identifier, "secret_env": "SINK_KILL_SECRET"}}
    path = write_flow(folder, Flow("dest", {**base, **config}, rows))
    destination = open_destination(path, base_url=hub.url)
    kind = "oat" if secret.startswith("dckr_oat_") else "password"
    credentials = Credentials(hub.url, identifier, secret, kind)
    options = RunOptions(path.parent / "records.jsonl", yes=True, resend_unknown=resend_unknown)
    return asyncio.run(run_async(destination, credentials, options))


REPOS = {"template": "create-repository", "settings": {"namespace": "acme"}, "key_field": "name"}
PATS = {"template": "create-personal-access-token", "key_field": "token_label"}


def _left_in_flight(folder: Path, keys: list[str], template: str) -> None:
    """What a kill after ``mark_sent`` leaves: the records ``sent``, their outcome unknown."""
    with Ledger(folder / "dest" / "dest.ledger.sqlite") as ledger:
        ledger.mark_sent(((key, index) for index, key in enumerate(keys)), template)


def _posts_to(hub: Simulator, path: str) -> int:
    return len([r for r in hub.requests() if r["method"] == "POST" and r["path"] == path])


def _tokens(hub: Simulator, prefix: str) -> dict[str, str]:
    alice = next(u for u in hub.state()["users"] if u["username"] == "alice")
    labels = [t["label"] for t in alice["tokens"] if t["label"].startswith(prefix)]
    assert len(labels) == len(set(labels)), f"duplicate tokens: {sorted(labels)}"
    return {t["label"]: t["token"] for t in alice["tokens"] if t["label"].startswith(prefix)}


def test_records_left_sent_are_looked_up_present_ones_settled_absent_ones_sent_once(
    hub: Simulator, tmp_path: Path
) -> None:
    hub.reset()
    rows = [{"name": f"doubt-{i}"} for i in range(6)]
    first = _run(hub, tmp_path, REPOS, rows[:3])  # these three reached Hub...
    assert first.counts.ok == 3
    # ...and a kill left all six `sent`: three applied, three that never left.
    _left_in_flight(tmp_path, [r["name"] for r in rows], "create-repository")
    hub.reset()
    _run(hub, tmp_path / "seed", REPOS, rows[:3])  # the three are there in Hub again
    before = _posts_to(hub, "/v2/namespaces/acme/repositories")

    summary = _run(hub, tmp_path, REPOS, rows)
    assert summary.counts.recovered == 3
    assert summary.counts.ok == 6
    assert _posts_to(hub, "/v2/namespaces/acme/repositories") - before == 3  # only the absent
    heads = [r for r in hub.requests() if r["method"] == "HEAD"]
    assert len(heads) >= 6
    audit = jsonl(tmp_path / "dest" / "out" / "dest-audit.jsonl")
    looked_up = {
        line["url"].rsplit("/", 1)[1]
        for line in audit
        if line["outcome"] == "read" and line["method"] == "HEAD"
    }
    assert looked_up == {r["name"] for r in rows}  # the look-ups are in the audit log too
    with Ledger(tmp_path / "dest" / "dest.ledger.sqlite") as ledger:
        assert ledger.counts()[DONE] == 6
        assert ledger.get("doubt-0").note == "found in place after an interrupted run"  # type: ignore[union-attr]
    again = _run(hub, tmp_path, REPOS, rows)
    assert (again.counts.done_before, again.counts.requests) == (6, 0)


def test_a_token_created_by_a_killed_run_is_reported_as_needing_rotation(
    hub: Simulator, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    hub.reset()
    config = {**PATS, "connection": {"identifier": "alice", "secret_env": "SINK_KILL_SECRET"}}
    # The token was created, but its answer died with the process that sent it.
    _run(
        hub,
        tmp_path / "elsewhere",
        config,
        [{"token_label": "lost-1", "scopes": "repo:read"}],
        identifier="alice",
        secret=ALICE_PASSWORD,
    )
    _left_in_flight(tmp_path, ["lost-1"], "create-personal-access-token")
    rows = [
        {"token_label": "lost-1", "scopes": "repo:read"},
        {"token_label": "fresh-1", "scopes": "repo:read"},
    ]
    summary = _run(hub, tmp_path, config, rows, identifier="alice", secret=ALICE_PASSWORD)
    assert summary.counts.secrets_lost == ["lost-1"]
    assert set(_tokens(hub, "lost-")) == {"lost-1"}  # not created a second time
    vault = jsonl(tmp_path / "dest" / "out" / "dest-vault.jsonl")
    assert [line["label"] for line in vault] == ["fresh-1"]
    with Ledger(tmp_path / "dest" / "dest.ledger.sqlite") as ledger:
        entry = ledger.get("lost-1")
        assert entry is not None and entry.state == DONE
        assert entry.note is not None and entry.note.startswith(SECRET_LOST)
    capsysbinary.readouterr()
    assert cli.main(["status", str(tmp_path / "dest" / "dest.yaml"), "--json"]) == 1
    status = orjson.loads(capsysbinary.readouterr().out)
    assert [row["key"] for row in status["attention"]] == ["lost-1"]


def test_a_secret_already_in_the_vault_is_not_reported_lost(hub: Simulator, tmp_path: Path) -> None:
    # Killed after the vault line was fsync'd and before the ledger said done: the secret is
    # safe, so telling the user to revoke the token would be wrong.
    hub.reset()
    config = {**PATS, "connection": {"identifier": "alice", "secret_env": "SINK_KILL_SECRET"}}
    rows = [{"token_label": "kept-1", "scopes": "repo:read"}]
    _run(hub, tmp_path, config, rows, identifier="alice", secret=ALICE_PASSWORD)
    _left_in_flight(tmp_path, ["kept-1"], "create-personal-access-token")
    summary = _run(hub, tmp_path, config, rows, identifier="alice", secret=ALICE_PASSWORD)
    assert set(_tokens(hub, "kept-")) == {"kept-1"}
    assert summary.counts.secrets_lost == []
    with Ledger(tmp_path / "dest" / "dest.ledger.sqlite") as ledger:
        entry = ledger.get("kept-1")
        assert entry is not None and entry.state == DONE
        assert SECRET_LOST not in (entry.note or "")


def test_a_create_that_failed_ambiguously_is_looked_up_before_it_is_sent_again(
    hub: Simulator, tmp_path: Path
) -> None:
    # Dropped after Hub created the token, with no attempt left: the record ends `failed`
    # ("may have reached Docker Hub"). The next run must look it up, not create a second one.
    hub.reset()
    hub.set_faults(
        {
            "rules": [
                {
                    "method": "POST",
                    "path": "/v2/access-tokens",
                    "drop_rate": 1.0,
                    "apply_first": True,
                }
            ]
        }
    )
    config = {
        **PATS,
        "connection": {"identifier": "alice", "secret_env": "SINK_KILL_SECRET"},
        "retry": {"max_attempts": 1},
    }
    rows = [{"token_label": "once-1", "scopes": "repo:read"}]
    first = _run(hub, tmp_path, config, rows, identifier="alice", secret=ALICE_PASSWORD)
    assert first.counts.failed == 1
    hub.set_faults(None)
    _run(hub, tmp_path, config, rows, identifier="alice", secret=ALICE_PASSWORD)
    assert set(_tokens(hub, "once-")) == {"once-1"}


def test_a_bulk_invite_batch_found_in_place_after_a_timeout_is_done_for_every_record(
    hub: Simulator, tmp_path: Path
) -> None:
    # The batch is applied, its answer comes after the client's timeout, the look-up finds
    # every invite: every record is done (not rejected, which would send it again next run).
    hub.reset()
    hub.set_faults(
        {
            "rules": [
                {
                    "method": "POST",
                    "path": "/v2/invites/bulk",
                    "slow_rate": 1.0,
                    "slow_ms": 1200,
                    "apply_first": True,
                }
            ]
        }
    )
    config = {
        "template": "bulk-invite",
        "settings": {"org": "acme"},
        "key_field": "invitee",
        "timeout": 0.4,
        "batching": {"mode": "json_property", "property": "invitees"},
    }
    rows = [{"invitee": f"slow-{i}@example.com"} for i in range(3)]
    summary = _run(hub, tmp_path, config, rows)
    hub.set_faults(None)
    assert summary.counts.recovered == 3
    assert (summary.counts.ok, summary.counts.rejected) == (3, 0)


def test_a_post_in_doubt_that_cannot_be_looked_up_is_sent_again_only_when_the_user_says(
    hub: Simulator, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    # A manual-mode create has no effect look-up. Its connection drops after sending: whether
    # Hub applied it cannot be told, so no run sends it again until the user has checked.
    hub.reset()
    create = "/v2/namespaces/acme/repositories"
    config = {
        "manual": {"method": "POST", "url": create, "body_is_record": True},
        "key_field": "name",
        "retry": {"max_attempts": 1},
    }
    rows = [{"name": "doubtful-1", "namespace": "acme"}]
    hub.set_faults({"rules": [{"method": "POST", "path": create, "drop_rate": 1.0}]})
    first = _run(hub, tmp_path, config, rows)
    hub.set_faults(None)
    assert first.counts.failed == 1
    ledger_path = tmp_path / "dest" / "dest.ledger.sqlite"
    with Ledger(ledger_path) as ledger:
        assert ledger.get("doubtful-1").state == SENT  # type: ignore[union-attr]

    again = _run(hub, tmp_path, config, rows)
    assert again.counts.failed == 1
    assert _posts_to(hub, create) == 1  # not sent a second time
    rejects = jsonl(tmp_path / "dest" / "out" / "dest-rejects.jsonl")
    assert "--resend-unknown" in rejects[-1]["_sink_error"]
    capsysbinary.readouterr()
    assert cli.main(["status", str(tmp_path / "dest" / "dest.yaml"), "--json"]) == 1
    status = orjson.loads(capsysbinary.readouterr().out)
    assert [row["key"] for row in status["attention"]] == ["doubtful-1"]

    # The user looked on Hub: it did not happen (the drop came before Hub applied it).
    told = _run(hub, tmp_path, config, rows, resend_unknown=True)
    assert (told.counts.ok, told.counts.failed) == (1, 0)
    assert _posts_to(hub, create) == 2
    with Ledger(ledger_path) as ledger:
        assert ledger.get("doubtful-1").state == DONE  # type: ignore[union-attr]


def test_an_idempotent_request_left_in_flight_is_sent_again_without_a_look_up(
    hub: Simulator, tmp_path: Path
) -> None:
    # update-immutable-tags has no effect look-up, and sending the same rules twice is harmless.
    hub.reset()
    config = {
        "template": "update-immutable-tags",
        "settings": {"namespace": "acme"},
        "key_field": "repository",
    }
    _left_in_flight(tmp_path, ["api"], "update-immutable-tags")
    summary = _run(
        hub, tmp_path, config, [{"repository": "api", "enabled": "true", "rules": "v.*"}]
    )
    assert (summary.counts.ok, summary.counts.failed) == (1, 0)
    api = next(
        r for r in hub.state()["repositories"] if (r["namespace"], r["name"]) == ("acme", "api")
    )
    assert api["immutable_tags"] == {"enabled": True, "rules": ["v.*"]}


def test_a_manual_post_declared_idempotent_is_not_left_in_doubt(
    hub: Simulator, tmp_path: Path
) -> None:
    hub.reset()
    grant = "/v2/repositories/acme/api/groups"
    config = {
        "manual": {"method": "POST", "url": grant, "body_is_record": True, "idempotent": True},
        "key_field": "group_id",
    }
    acme = next(org for org in hub.state()["orgs"] if org["name"] == "acme")
    team_id = acme["teams"][0]["id"]
    _left_in_flight(tmp_path, [str(team_id)], "manual")  # a kill left the grant in doubt
    summary = _run(hub, tmp_path, config, [{"group_id": team_id, "permission": "read"}])
    assert (summary.counts.ok, summary.counts.failed) == (1, 0)  # sent again, not held
    assert len([r for r in hub.requests() if r["path"] == grant]) == 1
