"""Exports through the simulator: several pages in each format match the simulator's state."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from sink.cli import main as cli
from sink.errors import ConfigError, SinkError
from sink.hubsim import Simulator
from sink.hubsim.routes_audit import action_catalog
from sink.hubsim.seed import default_seed_text
from sink.read.connections import ConnectionStore, new_connection
from sink.read.credentials import Credentials
from sink.read.export import (
    EXPORTS,
    NOUNS,
    CsvWriter,
    ExportOptions,
    counted,
    export_async,
    open_writer,
    parse_date,
    parse_datetime,
)
from tests.seed import ACME_OAT, ALICE_PASSWORD, ALICE_PAT

EXTRA_REPOS = 22
EXTRA_USERS = 12
ACTIONS = ("repo.push", "repo.pull", "team.member.add", "team.member.remove", "repo.create")


def seed() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(default_seed_text())
    acme = next(org for org in doc["orgs"] if org["name"] == "acme")
    developers = next(team for team in acme["teams"] if team["name"] == "developers")
    acme["teams"].append({"name": "qa", "description": "Testers", "members": []})
    for i in range(EXTRA_USERS):
        name = f"user{i:02d}"
        doc["users"].append(
            {
                "username": name,
                "password": f"pw-{name}-x",
                "email": f"{name}@example.com",
                "full_name": f"User {i}",
            }
        )
        acme["members"][name] = "member"
        (developers if i % 2 else acme["teams"][-1])["members"].append(name)
    doc["repositories"] += [
        {
            "namespace": "acme",
            "name": f"svc-{i:02d}",
            "description": f"service {i}",
            "is_private": i % 3 == 0,
            "pull_count": 1000 - i * 7,
            "tags": [
                {
                    "name": f"1.{t}",
                    "size": 100 + t,
                    "pushed_by": "bob",
                    "pushed_at": f"2025-05-{t + 1:02d}T10:00:00.000000Z",
                }
                for t in range(i % 4)
            ],
        }
        for i in range(EXTRA_REPOS)
    ]
    api = next(r for r in doc["repositories"] if r["namespace"] == "acme" and r["name"] == "api")
    api["tags"] += [
        {
            "name": f"build-{t}",
            "size": 5000 + t,
            "pushed_by": "bob",
            "pushed_at": f"2025-01-{t + 1:02d}T08:00:00.000000Z",
        }
        for t in range(20)
    ]
    doc["audit_logs"] = [
        {
            "account": "acme",
            "action": ACTIONS[i % len(ACTIONS)],
            "name": f"acme/svc-{i:02d}",
            "actor": "bob",
            "data": {"n": str(i)},
            "timestamp": f"2025-03-{1 + i // 10:02d}T{i % 10:02d}:30:00.000000Z",
        }
        for i in range(40)
    ]
    return doc


@pytest.fixture(scope="module")
def hub() -> Iterator[Simulator]:
    with Simulator(seed()) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def fresh(hub: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.reset()
    monkeypatch.setenv("SINK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SINK_KEYRING", "off")


def oat(hub: Simulator) -> Credentials:
    return Credentials(hub.url, "acme", ACME_OAT, "oat")


def export(
    credentials: Credentials, what: str, target: Path, *, batch_rows: int = 1000, **options: Any
) -> int:
    with open_writer(str(target), batch_rows=batch_rows) as writer:
        return asyncio.run(export_async(credentials, what, ExportOptions(**options), writer))


def read_back(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        return [orjson.loads(line) for line in path.read_bytes().splitlines()]
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    return rows


def state_repos(hub: Simulator, namespace: str = "acme") -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in hub.state()["repositories"] if r["namespace"] == namespace}


def pages_of(hub: Simulator, path: str) -> int:
    return sum(1 for r in hub.requests() if r["path"] == path and r["status"] == 200)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_repositories_over_several_pages_match_the_state(
    hub: Simulator, tmp_path: Path, suffix: str
) -> None:
    target = tmp_path / f"repos{suffix}"
    count = export(
        oat(hub), "repositories", target, batch_rows=10, page_size=7, ordering="-pull_count"
    )
    expected = state_repos(hub)
    assert count == len(expected) == 3 + EXTRA_REPOS
    assert pages_of(hub, "/v2/namespaces/acme/repositories") == 4  # 7 + 7 + 7 + 4
    rows = read_back(target)
    assert [row["name"] for row in rows] == sorted(
        expected, key=lambda n: (-expected[n]["pull_count"], n)
    )
    for row in rows:
        repo = expected[row["name"]]
        text = suffix == ".csv"
        assert row["pull_count"] == (str(repo["pull_count"]) if text else repo["pull_count"])
        assert row["is_private"] == (
            str(repo["is_private"]).lower() if text else repo["is_private"]
        )
        assert row["description"] == repo["description"]
        assert row["namespace"] == "acme"
    if suffix == ".parquet":
        parquet = pq.ParquetFile(target)
        assert parquet.metadata.num_row_groups == 3  # 10 + 10 + 5
        media_types = parquet.schema_arrow.field("media_types").type
        assert pa.types.is_list(media_types) and media_types.value_type == pa.string()
    assert not list(tmp_path.glob(".repos*"))  # no temporary file left behind


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_tags_with_nested_images_match_the_state(
    hub: Simulator, tmp_path: Path, suffix: str
) -> None:
    target = tmp_path / f"tags{suffix}"
    count = export(oat(hub), "tags", target, page_size=10, repository="acme/api")
    tags = {t["name"]: t for t in state_repos(hub)["api"]["tags"]}
    assert count == len(tags) == 23
    assert pages_of(hub, "/v2/namespaces/acme/repositories/api/tags") == 3
    for row in read_back(target):
        tag = tags[row["name"]]
        images = orjson.loads(row["images"]) if suffix != ".jsonl" else row["images"]
        assert images[0]["digest"] == tag["digest"] == row["digest"]
        assert images[0]["size"] == tag["size"]
        assert images[0]["architecture"] == tag["architecture"]
        pushed = row["tag_last_pushed"]
        if suffix == ".parquet":  # a timestamp column (UTC), not text
            assert pushed == parse_datetime(tag["pushed_at"])
        else:
            assert pushed == tag["pushed_at"]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_members_with_teams_for_the_access_review(
    hub: Simulator, tmp_path: Path, suffix: str
) -> None:
    target = tmp_path / f"members{suffix}"
    export(oat(hub), "members", target, page_size=5, teams=True, invitees=True)
    acme = next(org for org in hub.state()["orgs"] if org["name"] == "acme")
    teams_of: dict[str, list[str]] = {}
    for team in acme["teams"]:
        for member in team["members"]:
            teams_of.setdefault(member, []).append(team["name"])
    rows = read_back(target)
    members = [r for r in rows if r["status"] == "active"]
    assert sorted(r["username"] for r in members) == sorted(acme["members"])
    for row in members:
        teams = orjson.loads(row["teams"]) if suffix == ".csv" else row["teams"]
        assert teams == sorted(teams_of.get(row["username"], [])), row["username"]
        assert row["role"] == acme["members"][row["username"]].capitalize()
        assert row["email"] == f"{row['username']}@example.com"
    [invitee] = [r for r in rows if r["status"] == "pending"]
    assert (invitee["email"], invitee["role"]) == ("frank@example.com", "Invitee")
    assert pages_of(hub, "/v2/orgs/acme/members") == 4  # 17 rows, 5 a page


def test_member_filters_are_passed_to_hub(hub: Simulator, tmp_path: Path) -> None:
    target = tmp_path / "owners.jsonl"
    export(oat(hub), "members", target, role="owner")
    assert [r["username"] for r in read_back(target)] == ["alice"]
    export(oat(hub), "members", target, search="user0", page_size=3)
    assert [r["username"] for r in read_back(target)] == [f"user{i:02d}" for i in range(10)]
    with pytest.raises(ConfigError, match="--role must be one of"):
        export(oat(hub), "members", target, role="admin")
    with pytest.raises(ConfigError, match="between 1 and 100"):
        export(oat(hub), "members", target, page_size=101)


def test_the_audit_log_with_a_date_range_and_an_action(hub: Simulator, tmp_path: Path) -> None:
    target = tmp_path / "audit.csv"
    count = export(
        oat(hub),
        "audit-log",
        target,
        page_size=3,
        action="repo.push",
        since="2025-03-02",
        until="2025-03-03",
    )
    expected = [
        e
        for e in hub.state()["audit_logs"]
        if e["action"] == "repo.push" and "2025-03-02" <= e["timestamp"][:10] <= "2025-03-03"
    ]
    rows = read_back(target)
    assert count == len(rows) == len(expected) == 4
    assert [r["name"] for r in rows] == [e["name"] for e in reversed(expected)]
    assert orjson.loads(rows[0]["data"]) == expected[-1]["data"]
    everything = export(oat(hub), "audit-log", tmp_path / "all.jsonl")
    assert everything == 40


def test_the_other_exports_match_the_state(hub: Simulator, tmp_path: Path) -> None:
    state = hub.state()
    acme = next(org for org in state["orgs"] if org["name"] == "acme")
    out = tmp_path / "out.jsonl"

    export(oat(hub), "teams", out, page_size=2)
    assert sorted(r["name"] for r in read_back(out)) == sorted(t["name"] for t in acme["teams"])

    export(oat(hub), "team-members", out, page_size=4)
    pairs = sorted((r["team"], r["username"]) for r in read_back(out))
    assert pairs == sorted((t["name"], m) for t in acme["teams"] for m in t["members"])

    export(oat(hub), "invites", out)
    assert [r["id"] for r in read_back(out)] == [i["id"] for i in acme["invites"]]

    export(oat(hub), "repository", out, repository="api")
    [repo] = read_back(out)
    assert (repo["name"], repo["is_private"], repo["collaborator_count"]) == ("api", True, 0)
    assert repo["permissions"] == {"read": True, "write": True, "admin": True}
    assert repo["immutable_tags_settings"] == {"enabled": False, "rules": []}

    export(oat(hub), "tag", out, repository="acme/web", tag="latest")
    [tag] = read_back(out)
    assert tag["name"] == "latest" and tag["full_size"] == 31000000

    export(oat(hub), "audit-actions", out)
    catalog = action_catalog()["actions"]
    rows = read_back(out)
    assert len(rows) == sum(len(group["actions"]) for group in catalog.values())
    assert {
        "group": "repo",
        "group_label": catalog["repo"].get("label"),
        **catalog["repo"]["actions"][0],
    } in rows

    owner = Credentials(hub.url, "alice", ALICE_PASSWORD, "password")
    export(owner, "org-tokens", out, namespace="acme", page_size=1)
    tokens = read_back(out)
    assert sorted(t["label"] for t in tokens) == sorted(t["label"] for t in acme["access_tokens"])
    assert all("token" not in t for t in tokens)
    assert ACME_OAT not in out.read_text()

    export(owner, "org-settings", out, namespace="acme")
    assert read_back(out) == [{"organization": "acme", **acme["settings"]}]

    export(Credentials(hub.url, "alice", ALICE_PAT, "pat"), "tokens", out, page_size=1)
    alice = next(u for u in state["users"] if u["username"] == "alice")
    pats = read_back(out)
    assert sorted(p["uuid"] for p in pats) == sorted(t["uuid"] for t in alice["tokens"])
    assert all("token" not in p for p in pats)


def test_records_stream_before_the_last_page_is_read(hub: Simulator) -> None:
    seen: list[int] = []

    class Probe:
        @property
        def dropped(self) -> set[str]:
            return set()

        def write(self, record: dict[str, Any]) -> None:
            seen.append(pages_of(hub, "/v2/namespaces/acme/repositories"))

        def close(self) -> None:
            pass

    count = asyncio.run(export_async(oat(hub), "repositories", ExportOptions(page_size=5), Probe()))
    assert count == 25
    assert seen[0] == 1 and seen[-1] == 5


def test_rate_limits_do_not_lose_records(hub: Simulator, tmp_path: Path) -> None:
    hub.set_faults({"burst_every": 3, "burst_length": 1, "retry_after": 0})
    count = export(oat(hub), "repositories", tmp_path / "r.jsonl", page_size=4)
    assert count == 25
    assert any(r["status"] == 429 for r in hub.requests())


def test_csv_and_parquet_keep_the_first_batch_columns(tmp_path: Path) -> None:
    out = io.StringIO()
    writer = CsvWriter(out, batch_rows=2)
    for record in ({"a": 1, "b": {"x": [1]}}, {"a": None, "c": True}, {"a": 3, "d": "late"}):
        writer.write(record)
    writer.close()
    assert out.getvalue() == 'a,b,c\n1,"{""x"":[1]}",\n,,true\n3,,\n'
    assert writer.dropped == {"d"}
    empty = tmp_path / "empty.parquet"
    with open_writer(str(empty)):
        pass
    assert pq.read_table(empty).num_rows == 0


def test_the_audit_log_timestamp_is_a_utc_timestamp_in_parquet_and_iso_in_csv(
    hub: Simulator, tmp_path: Path
) -> None:
    parquet = tmp_path / "audit.parquet"
    assert export(oat(hub), "audit-log", parquet, batch_rows=15) == 40
    kind = pq.ParquetFile(parquet).schema_arrow.field("timestamp").type
    assert pa.types.is_timestamp(kind) and kind.tz == "UTC"
    stamps = pq.read_table(parquet).column("timestamp").to_pylist()
    expected = {e["timestamp"] for e in hub.state()["audit_logs"]}
    assert {stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for stamp in stamps} == expected
    assert all(stamp.utcoffset() == timedelta(0) for stamp in stamps)
    csv_file = tmp_path / "audit.csv"
    export(oat(hub), "audit-log", csv_file)
    assert {row["timestamp"] for row in read_back(csv_file)} == expected  # ISO 8601 as Hub wrote


def test_members_joined_in_gos_form_become_iso_8601_and_a_timestamp(
    hub: Simulator, tmp_path: Path
) -> None:
    csv_file = tmp_path / "members.csv"
    export(oat(hub), "members", csv_file)
    joined = [row["date_joined"] for row in read_back(csv_file) if row["date_joined"]]
    assert joined and all(
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", j) for j in joined
    )
    parquet = tmp_path / "members.parquet"
    export(oat(hub), "members", parquet)
    kind = pq.ParquetFile(parquet).schema_arrow.field("date_joined").type
    assert pa.types.is_timestamp(kind) and kind.tz == "UTC"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-01T00:30:00Z", datetime(2025, 3, 1, 0, 30, tzinfo=UTC)),
        ("2025-03-01T00:30:00.5Z", datetime(2025, 3, 1, 0, 30, 0, 500000, tzinfo=UTC)),
        ("2025-03-01T02:30:00.123456789+02:00", datetime(2025, 3, 1, 0, 30, 0, 123456, tzinfo=UTC)),
        ("2025-03-01 00:30:00.25 +0000 UTC", datetime(2025, 3, 1, 0, 30, 0, 250000, tzinfo=UTC)),
        ("2025-03-01T00:30:00", None),  # no zone: not a point in time
        ("2025-13-01T00:30:00Z", None),
        ("2025-03-01", None),
        ("acme/2025-03-01T00:30:00Z", None),
        (20250301, None),
    ],
)
def test_parse_datetime(text: object, expected: datetime | None) -> None:
    assert parse_datetime(text) == expected


def test_a_later_value_that_is_not_a_date_time_stops_a_parquet_export(tmp_path: Path) -> None:
    target = tmp_path / "x.parquet"
    with (
        pytest.raises(SinkError, match="'when' changed type"),
        open_writer(str(target), batch_rows=1) as writer,
    ):
        writer.write({"when": "2025-03-01T00:30:00Z"})
        writer.write({"when": "soon"})
    with open_writer(str(target), batch_rows=2) as writer:  # empty text is a null
        writer.write({"when": "2025-03-01T00:30:00Z"})
        writer.write({"when": ""})
    assert pq.read_table(target).column("when").to_pylist()[1] is None


@pytest.mark.parametrize(
    ("what", "count", "words"),
    [
        ("members", 4, "4 members"),
        ("members", 1, "1 member"),
        ("repositories", 1, "1 repository"),
        ("repositories", 1200, "1,200 repositories"),
        ("audit-log", 2, "2 audit-log events"),
        ("teams", 0, "0 teams"),
    ],
)
def test_counted(what: str, count: int, words: str) -> None:
    assert counted(what, count) == words
    assert set(NOUNS) == set(EXPORTS)


def test_dates() -> None:
    assert parse_date("2025-03-02") == "2025-03-02T00:00:00Z"
    assert parse_date("2025-03-02", end=True) == "2025-03-02T23:59:59.999999Z"
    assert parse_date("2025-03-02T10:00:00+02:00") == "2025-03-02T10:00:00+02:00"
    with pytest.raises(ConfigError, match="not a date"):
        parse_date("yesterday")


# -- a stored connection in a config (`sink export` itself: tests/cli/test_read.py) ------


def test_validate_names_the_stored_connections_base_url(
    hub: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ConnectionStore().add(
        new_connection(
            "organization", name="acme", identifier="acme", secret=ACME_OAT, base_url=hub.url
        )
    )
    (tmp_path / "repos.csv").write_text("name\nsvc\n")
    config = tmp_path / "dest.yaml"
    config.write_text(
        "connection: {name: acme}\ntemplate: create-repository\n"
        "settings: {namespace: acme}\ninput: repos.csv\n"
    )
    code = cli.main(["validate", str(config)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"requests go to {hub.url})" in out + err
    assert "hub.docker.com" not in out + err
