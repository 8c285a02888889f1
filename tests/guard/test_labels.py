"""No token created twice by accident (``sink/guard/labels.py``).

Unit tests read a fake Hub (httpx.MockTransport); the end-to-end ones run through the simulator,
seeded with the default seed plus tokens that are inactive or expired.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from sink.destination import open_destination
from sink.errors import CredentialsError
from sink.guard.labels import LabelCheck, body_label, live, token_list
from sink.hubsim import Simulator
from sink.model import Record, Request
from sink.read.credentials import Credentials
from sink.read.hub import HubReader
from sink.run import RunOptions, RunSummary, run_async
from sink.send.ledger import REJECTED, Ledger, run_lock
from tests.seed import ALICE_PASSWORD, ALICE_PAT

SEED = Path(__file__).resolve().parents[2] / "sink" / "hubsim" / "default_seed.yaml"
HUB = "https://hub.docker.com"

PATS: dict[str, Any] = {
    "template": "create-personal-access-token",
    "key_field": "token_label",
    "connection": {"identifier": "alice", "secret_env": "SINK_TEST_SECRET"},
}
OATS: dict[str, Any] = {
    "template": "create-org-access-token",
    "settings": {"org": "acme"},
    "key_field": "label",
    "connection": {"identifier": "alice", "secret_env": "SINK_TEST_SECRET"},
}
PULL = '[{"type": "TYPE_REPO", "path": "acme/*", "scopes": ["scope-image-pull"]}]'


def _seed() -> dict[str, Any]:
    seed: dict[str, Any] = yaml.safe_load(SEED.read_text())
    alice = next(user for user in seed["users"] if user["username"] == "alice")
    alice["tokens"] += [
        {
            "label": "old laptop",
            "token": "dckr_pat_Qd7RkVbN2pLx9TmW4sYhJc8Fe3A",
            "scopes": ["repo:read"],
            "is_active": False,
        },
        {
            "label": "last year",
            "token": "dckr_pat_Zt5MnB8xKq2WvR7pLd4HsJ9Gc1E",
            "scopes": ["repo:read"],
            "expires_at": "2024-12-31T23:59:59Z",
        },
    ]
    acme = next(org for org in seed["orgs"] if org["name"] == "acme")
    acme["access_tokens"].append(
        {
            "label": "retired",
            "token": "dckr_oat_Hv3Kp9QxL2mRt7WzN5bYc8Jd4FsGa6Tu",
            "created_by": "alice",
            "resources": [{"type": "TYPE_ORG", "path": "acme", "scopes": ["scope-member-read"]}],
            "is_active": False,
        }
    )
    return seed


@pytest.fixture(scope="module")
def hub() -> Iterator[Simulator]:
    """The default seed plus an inactive and an expired PAT of alice, an inactive acme OAT."""
    with Simulator(_seed()) as simulator:
        yield simulator


pytestmark = pytest.mark.usefixtures("fresh_hub")


def _run(
    hub: Simulator,
    folder: Path,
    config: dict[str, Any],
    rows: list[dict[str, Any]],
    *,
    fresh: bool = False,
    secret: str = ALICE_PASSWORD,
) -> RunSummary:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "records.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    path = folder / "dest.yaml"
    path.write_text(yaml.safe_dump({"input": "records.jsonl", **config}))
    destination = open_destination(path, base_url=hub.url)
    kind = "pat" if secret.startswith("dckr_pat_") else "password"
    credentials = Credentials(hub.url, "alice", secret, kind)  # type: ignore[arg-type]
    options = RunOptions(folder / "records.jsonl", yes=True, fresh=fresh)
    return asyncio.run(run_async(destination, credentials, options))


def _labels(hub: Simulator, org: str | None = None) -> list[str]:
    state = hub.state()
    if org is None:
        alice = next(user for user in state["users"] if user["username"] == "alice")
        return sorted(token["label"] for token in alice["tokens"])
    found = next(o for o in state["orgs"] if o["name"] == org)
    return sorted(token["label"] for token in found["access_tokens"])


def _posts(hub: Simulator, path: str) -> int:
    return sum(1 for r in hub.requests() if r["method"] == "POST" and r["path"] == path)


def _rejects(summary: RunSummary) -> dict[str, str]:
    path = summary.outputs.rejects
    if not path.exists():
        return {}
    out = {}
    for line in path.read_bytes().splitlines():
        row = orjson.loads(line)
        out[row.get("token_label") or row.get("label")] = row["_sink_error"]
    return out


# --------------------------------------------------------------------------- end to end


def test_an_active_label_is_refused_naming_it_and_nothing_is_created(
    hub: Simulator, tmp_path: Path
) -> None:
    rows = [
        {"token_label": "sink admin", "scopes": "repo:read"},  # alice's, active
        {"token_label": "READ ONLY", "scopes": "repo:read"},  # "read only", without case
        {"token_label": "brand new", "scopes": "repo:read"},
    ]
    summary = _run(hub, tmp_path, PATS, rows)
    assert (summary.counts.ok, summary.counts.rejected) == (1, 2)
    assert _posts(hub, "/v2/access-tokens") == 1  # only the new label went
    assert _labels(hub).count("sink admin") == 1
    assert _labels(hub).count("read only") == 1
    assert "brand new" in _labels(hub)
    rejects = _rejects(summary)
    assert set(rejects) == {"sink admin", "READ ONLY"}
    assert "'sink admin'" in rejects["sink admin"]
    assert "already exists on Docker Hub" in rejects["sink admin"]
    assert "9a3a5abf-94f0-4ee2-92fe-810d90b09ce6" in rejects["sink admin"]  # which token
    assert "allow_duplicate_labels" in rejects["sink admin"]
    # One read of the list serves the whole run.
    lists = [r for r in hub.requests() if r["method"] == "GET" and r["path"] == "/v2/access-tokens"]
    assert len(lists) == 1
    with Ledger(summary.outputs.ledger) as ledger:
        entry = ledger.get("sink admin")
        assert entry is not None and entry.state == REJECTED
        assert "already exists" in (entry.note or "")
    audit = [orjson.loads(x) for x in summary.outputs.audit.read_bytes().splitlines()]
    assert sum(1 for line in audit if line["outcome"] == "refused") == 2


def test_an_inactive_or_expired_label_may_be_used_again(hub: Simulator, tmp_path: Path) -> None:
    rows = [
        {"token_label": "old laptop", "scopes": "repo:read"},
        {"token_label": "last year", "scopes": "repo:read"},
    ]
    summary = _run(hub, tmp_path, PATS, rows)
    assert (summary.counts.ok, summary.counts.rejected) == (2, 0)
    assert _labels(hub).count("old laptop") == 2
    assert _labels(hub).count("last year") == 2


def test_a_label_repeated_in_one_input_creates_one_token(hub: Simulator, tmp_path: Path) -> None:
    config = {**PATS, "key_field": None}  # keys from the content: the two records differ
    rows = [
        {"token_label": "ci", "scopes": "repo:read"},
        {"token_label": "other", "scopes": "repo:read"},
        {"token_label": "CI", "scopes": "repo:write"},
    ]
    summary = _run(hub, tmp_path, config, rows)
    assert (summary.counts.ok, summary.counts.rejected) == (2, 1)
    assert _labels(hub).count("ci") == 1 and "CI" not in _labels(hub)
    rejects = _rejects(summary)
    assert list(rejects) == ["CI"]
    assert "record 1 of the input" in rejects["CI"]
    assert "'CI'" in rejects["CI"]


def test_a_fresh_rerun_of_a_token_file_creates_no_duplicate(hub: Simulator, tmp_path: Path) -> None:
    rows = [{"token_label": f"deploy-{i}", "scopes": "repo:read"} for i in range(3)]
    first = _run(hub, tmp_path, PATS, rows)
    assert first.counts.ok == 3
    again = _run(hub, tmp_path, PATS, rows, fresh=True)
    assert (again.counts.ok, again.counts.rejected) == (0, 3)
    assert _posts(hub, "/v2/access-tokens") == 3
    assert [label for label in _labels(hub) if label.startswith("deploy-")] == [
        f"deploy-{i}" for i in range(3)
    ]
    # The same labels in another file (another ledger) are refused the same way.
    other = _run(hub, tmp_path / "other", PATS, rows[:1])
    assert other.counts.rejected == 1
    assert _posts(hub, "/v2/access-tokens") == 3


def test_the_config_may_ask_for_duplicates(hub: Simulator, tmp_path: Path) -> None:
    config = {**PATS, "key_field": None, "allow_duplicate_labels": True}
    rows = [
        {"token_label": "sink admin", "scopes": "repo:read"},
        {"token_label": "twice", "scopes": "repo:read"},
        {"token_label": "twice", "scopes": "repo:write"},
    ]
    summary = _run(hub, tmp_path, config, rows)
    assert (summary.counts.ok, summary.counts.rejected) == (3, 0)
    assert _labels(hub).count("sink admin") == 2
    assert _labels(hub).count("twice") == 2
    assert not any(r["path"] == "/v2/access-tokens" for r in hub.requests() if r["method"] == "GET")


def test_organization_access_tokens_are_checked_in_their_organization(
    hub: Simulator, tmp_path: Path
) -> None:
    rows = [
        {"label": "auditor", "resources": PULL},  # acme's, active
        {"label": "retired", "resources": PULL},  # acme's, inactive
        {"label": "pull only", "resources": PULL},
        {"label": "Pull Only", "resources": PULL, "description": "again"},
    ]
    summary = _run(hub, tmp_path, {**OATS, "key_field": None}, rows)
    assert (summary.counts.ok, summary.counts.rejected) == (2, 2)
    labels = _labels(hub, "acme")
    assert labels.count("auditor") == 1
    assert labels.count("retired") == 2
    assert labels.count("pull only") == 1 and "Pull Only" not in labels
    rejects = _rejects(summary)
    assert "access token of organization acme" in rejects["auditor"]
    assert "74140c29-b5f1-4db6-8bd4-013c282b4526" in rejects["auditor"]
    assert "record 3 of the input" in rejects["Pull Only"]


def test_a_manual_post_to_the_token_endpoint_is_checked_too(hub: Simulator, tmp_path: Path) -> None:
    config = {
        "connection": PATS["connection"],
        "manual": {
            "method": "POST",
            "url": "/v2/access-tokens",
            "body": {"token_label": "{{ record.name }}", "scopes": ["repo:read"]},
        },
        "key_field": "name",
    }
    summary = _run(hub, tmp_path, config, [{"name": "laptop"}, {"name": "sink admin"}])
    assert (summary.counts.ok, summary.counts.rejected) == (1, 1)
    assert _labels(hub).count("sink admin") == 1


def test_a_record_resume_sends_is_not_refused_by_its_own_label(
    hub: Simulator, tmp_path: Path
) -> None:
    # A kill left "doubt-1" sent (it never reached Hub) and "doubt-2" sent (it did): resume
    # looks both up; the one it sends again is not refused, the other is settled as done.
    _run(hub, tmp_path / "elsewhere", PATS, [{"token_label": "doubt-2", "scopes": "repo:read"}])
    ledger_path = tmp_path / "dest.ledger.sqlite"
    with run_lock(ledger_path), Ledger(ledger_path) as ledger:
        ledger.mark_sent([("doubt-1", 0), ("doubt-2", 1)], "create-personal-access-token")
    rows = [
        {"token_label": "doubt-1", "scopes": "repo:read"},
        {"token_label": "doubt-2", "scopes": "repo:read"},
    ]
    summary = _run(hub, tmp_path, PATS, rows)
    assert (summary.counts.ok, summary.counts.rejected) == (1, 0)
    assert summary.counts.recovered == 1
    assert summary.counts.secrets_lost == ["doubt-2"]  # its answer died with the killed run
    assert _labels(hub).count("doubt-1") == 1
    assert _labels(hub).count("doubt-2") == 1


def test_a_test_send_is_checked_too(hub: Simulator, tmp_path: Path) -> None:
    from sink.run import send_one_async

    path = tmp_path / "dest.yaml"
    path.write_text(yaml.safe_dump(PATS))
    destination = open_destination(path, base_url=hub.url)
    record = Record(0, {"token_label": "sink admin", "scopes": "repo:read"}, "sink admin")
    credentials = Credentials(hub.url, "alice", ALICE_PAT, "pat")
    result = asyncio.run(send_one_async(destination, credentials, record))
    assert result.outcome is None and result.rejected is not None
    assert "'sink admin'" in result.rejected.error
    assert _posts(hub, "/v2/access-tokens") == 0


# --------------------------------------------------------------------------- units


def _request(url: str, body: dict[str, Any] | None, method: str = "POST") -> Request:
    raw = None if body is None else orjson.dumps(body)
    return Request(method, url, (), raw, ("k",), "manual", (4,))


def test_token_creations_are_recognised_by_method_and_path() -> None:
    pat = token_list(_request(f"{HUB}/v2/access-tokens/", {}))
    assert pat is not None and (pat.url, pat.body_field) == (
        f"{HUB}/v2/access-tokens",
        "token_label",
    )
    oat = token_list(_request(f"{HUB}/v2/orgs/Acme/access-tokens?x=1", {}))
    assert oat is not None and (oat.url, oat.body_field) == (
        f"{HUB}/v2/orgs/Acme/access-tokens",
        "label",
    )
    assert token_list(_request(f"{HUB}/v2/access-tokens/9a3a", {}, "PATCH")) is None
    assert token_list(_request(f"{HUB}/v2/access-tokens/9a3a", {})) is None
    assert token_list(_request(f"{HUB}/v2/namespaces/acme/repositories", {})) is None
    assert body_label(_request(HUB, {"label": "x"}), "label") == "x"
    assert body_label(_request(HUB, {"label": 3}), "label") is None
    assert body_label(_request(HUB, None), "label") is None


def test_a_token_is_live_while_active_and_unexpired() -> None:
    from datetime import UTC, datetime

    now = datetime(2025, 6, 1, tzinfo=UTC)
    assert live({}, now)
    assert not live({"is_active": False}, now)
    assert not live({"expires_at": "2025-05-31T23:59:59Z"}, now)
    assert live({"expires_at": "2025-06-01T00:00:01Z"}, now)
    assert live({"expires_at": "not a date"}, now)  # unreadable: the safe side


def _check(handler: Any) -> tuple[LabelCheck, httpx.AsyncClient]:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url=HUB)
    return LabelCheck(HubReader(client, max_retries=0)), client


def test_the_list_is_read_once_across_pages_and_kept_up_to_date() -> None:
    reads: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        reads.append(request)
        if request.url.params.get("page") == "2":
            return httpx.Response(200, json={"next": None, "results": [{"token_label": "b"}]})
        page = {"next": f"{HUB}/v2/access-tokens?page=2", "results": [{"token_label": "a"}]}
        return httpx.Response(200, json=page)

    check, client = _check(handler)

    async def decide() -> list[str | None]:
        async with client:
            labels = ["a", "b", "c", "C", "d"]
            return [
                await check.refusal(_request(f"{HUB}/v2/access-tokens", {"token_label": label}))
                for label in labels
            ]

    a, b, c, c_again, d = asyncio.run(decide())
    assert a is not None and "'a'" in a and b is not None
    assert c is None and d is None
    assert c_again is not None and "record 5 of the input" in c_again
    assert len(reads) == 2
    assert reads[0].url.params["page_size"] == "100"


def test_an_unreadable_list_refuses_the_creations_it_would_clear() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"message": "access denied"})

    check, client = _check(handler)

    async def decide() -> tuple[str | None, str | None]:
        async with client:
            oat = _request(f"{HUB}/v2/orgs/acme/access-tokens", {"label": "x"})
            other = _request(f"{HUB}/v2/namespaces/acme/repositories", {"name": "x"})
            return await check.refusal(oat), await check.refusal(other)

    refused, other = asyncio.run(decide())
    assert refused is not None and "cannot be read" in refused and "access denied" in refused
    assert other is None


def test_wrong_credentials_stop_the_run() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"message": "bad token"})

    check, client = _check(handler)

    async def decide() -> None:
        async with client:
            await check.refusal(_request(f"{HUB}/v2/access-tokens", {"token_label": "x"}))

    with pytest.raises(CredentialsError):
        asyncio.run(decide())
