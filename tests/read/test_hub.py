"""The read client through the simulator: pages, list shapes, rate limits, errors, and the
effect look-ups (next links kept on the connection's origin, missing parents, one read of a
list per run)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs

import httpx
import orjson
import pytest
import yaml

from sink.destination import open_destination
from sink.errors import CredentialsError, NeedsOrgToken, RejectRecord, StopRun
from sink.hubsim import Simulator
from sink.hubsim.seed import default_seed_text
from sink.model import Request
from sink.read.credentials import Credentials
from sink.read.hub import HubReader, matches, missing_parent, read_error
from sink.request.templates import Lookup
from sink.run import RunOptions, RunSummary, output_paths, run_async
from sink.send.auth import HubAuth, token_url_for
from sink.send.ledger import DONE, REJECTED, SENT, Ledger
from sink.send.pacing import Pacer
from sink.send.transport import make_client
from tests.seed import ACME_OAT, ALICE_PAT, OAT

EVENTS = 50
CAROL_TOKENS = 150  # two pages of 100
CAROL_PASSWORD = "carol-sings-in-c"
T = TypeVar("T")


def carol_token(number: int) -> dict[str, Any]:
    secret = hashlib.sha256(f"carol-{number}".encode()).hexdigest()[:27]
    return {
        "token": f"dckr_pat_{secret}",
        "label": f"carol-{number:03d}",
        "scopes": ["repo:read"],
        "created_at": "2025-02-01T10:00:00.000000Z",
    }


def seed() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(default_seed_text())
    carol = next(user for user in doc["users"] if user["username"] == "carol")
    carol["tokens"] = [carol_token(i) for i in range(CAROL_TOKENS)]
    doc["audit_logs"] = [
        {
            "account": "acme",
            "action": "repo.push",
            "name": "acme/api",
            "actor": "bob",
            "timestamp": f"2025-03-{1 + i // 24:02d}T{i % 24:02d}:00:00.000000Z",
            "data": {"tag": f"v{i}"},
        }
        for i in range(EVENTS)
    ]
    return doc


@pytest.fixture(scope="module")
def hub() -> Iterator[Simulator]:
    with Simulator(seed()) as simulator:
        yield simulator


pytestmark = pytest.mark.usefixtures("fresh_hub")


@asynccontextmanager
async def reading(
    hub: Simulator, identifier: str = "acme", secret: str = ACME_OAT
) -> AsyncIterator[HubReader]:
    auth = HubAuth(identifier, secret, token_url=token_url_for(hub.url))
    async with make_client(hub.url, auth, concurrency=2) as client:
        yield HubReader(client, backoff=0.01)


def run(hub: Simulator, body: Callable[[HubReader], Awaitable[T]], **who: str) -> T:
    async def main() -> T:
        async with reading(hub, **who) as reader:
            return await body(reader)

    return asyncio.run(main())


async def collect(reader: HubReader, url: str, **options: Any) -> list[dict[str, Any]]:
    return [item async for item in reader.items(url, **options)]


def calls(hub: Simulator, path: str) -> list[dict[str, Any]]:
    return [r for r in hub.requests() if r["path"] == path]


def test_items_follow_next_links_page_by_page(hub: Simulator) -> None:
    found = run(hub, lambda r: collect(r, "/v2/namespaces/acme/repositories", page_size=2))
    assert [repo["name"] for repo in found] == ["api", "ops-tools", "web"]
    pages = calls(hub, "/v2/namespaces/acme/repositories")
    assert [parse_qs(p["query"]).get("page", ["1"]) for p in pages] == [["1"], ["2"]]


def test_page_size_is_capped_at_100_and_limit_stops_early(hub: Simulator) -> None:
    found = run(hub, lambda r: collect(r, "/v2/namespaces/acme/repositories", page_size=500))
    assert len(found) == 3
    assert parse_qs(calls(hub, "/v2/namespaces/acme/repositories")[0]["query"]) == {
        "page_size": ["100"]
    }
    hub.reset()
    first = run(hub, lambda r: collect(r, "/v2/namespaces/acme/repositories", page_size=1, limit=1))
    assert [repo["name"] for repo in first] == ["api"]
    assert len(calls(hub, "/v2/namespaces/acme/repositories")) == 1


def test_the_org_token_list_with_total(hub: Simulator) -> None:
    found = run(
        hub,
        lambda r: collect(r, f"{hub.url}/v2/orgs/acme/access-tokens", page_size=1),
        identifier="alice",
        secret="correct-horse-battery",
    )
    assert [t["label"] for t in found] == ["auditor", "sink automation"]
    assert len(calls(hub, "/v2/orgs/acme/access-tokens")) == 2


def test_the_invites_list_is_one_page_of_data(hub: Simulator) -> None:
    found = run(hub, lambda r: collect(r, "/v2/orgs/acme/invites", page_size=1))
    assert [i["invitee"] for i in found] == ["frank@example.com"]
    assert len(calls(hub, "/v2/orgs/acme/invites")) == 1


def test_the_audit_log_is_paged_by_number_until_a_short_page(hub: Simulator) -> None:
    found = run(hub, lambda r: collect(r, "/v2/auditlogs/acme", page_size=20))
    assert len(found) == EVENTS
    assert found[0]["data"] == {"tag": f"v{EVENTS - 1}"}  # newest first
    pages = [parse_qs(c["query"]) for c in calls(hub, "/v2/auditlogs/acme")]
    assert [p.get("page", ["1"]) for p in pages] == [["1"], ["2"], ["3"]]  # 20, 20, 10


def test_the_audit_log_stops_on_an_empty_page(hub: Simulator) -> None:
    found = run(hub, lambda r: collect(r, "/v2/auditlogs/acme", page_size=25))
    assert len(found) == EVENTS
    assert len(calls(hub, "/v2/auditlogs/acme")) == 3  # 25, 25, then an empty page


def test_rate_limits_are_waited_out(hub: Simulator) -> None:
    hub.set_faults({"burst_every": 2, "burst_length": 1, "retry_after": 0})
    found = run(hub, lambda r: collect(r, "/v2/auditlogs/acme", page_size=10))
    assert len(found) == EVENTS
    statuses = [c["status"] for c in calls(hub, "/v2/auditlogs/acme")]
    assert 429 in statuses and statuses[-1] == 200


def test_a_5xx_is_sent_again_then_reported(hub: Simulator) -> None:
    hub.set_faults(
        {"rules": [{"path": "/v2/orgs/acme/groups", "error_rate": 1, "error_statuses": [503]}]}
    )

    async def body(reader: HubReader) -> None:
        with pytest.raises(StopRun, match="HTTP 503"):
            await collect(reader, "/v2/orgs/acme/groups", strict=True)

    run(hub, body)
    assert [c["status"] for c in calls(hub, "/v2/orgs/acme/groups")] == [503, 503, 503]


def test_refused_reads_become_clear_errors(hub: Simulator) -> None:
    async def body(reader: HubReader) -> None:
        with pytest.raises(NeedsOrgToken, match="personal access token is not allowed"):
            await reader.get_json("/v2/orgs/acme/members")

    run(hub, body, identifier="alice", secret=ALICE_PAT)
    request = httpx.Request("GET", "https://hub.example.test/v2/x")
    refused = httpx.Response(401, json={"message": "unauthorized"}, request=request)
    assert isinstance(read_error(refused), CredentialsError)
    missing = httpx.Response(404, json={"message": "object not found"}, request=request)
    assert str(read_error(missing, str(request.url))) == "GET /v2/x: HTTP 404: object not found"


# -- next links: followed on the connection's origin only ------------------------------------

BASE = "https://hub.example.test"
FIRST = "/v2/namespaces/a/repositories?page_size=1"


def follow(next_link: str, base: str = BASE) -> tuple[list[dict[str, Any]], list[httpx.URL]]:
    """Read a two-page list whose first page links to ``next_link``; the items and every URL a
    request (carrying the bearer token) went to."""
    sent: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer jwt-of-the-connection"
        sent.append(request.url)
        if len(sent) == 1:
            return httpx.Response(
                200, json={"count": 2, "results": [{"name": "a"}], "next": next_link}
            )
        return httpx.Response(200, json={"count": 2, "results": [{"name": "b"}], "next": None})

    async def main() -> list[dict[str, Any]]:
        headers = {"Authorization": "Bearer jwt-of-the-connection"}
        async with httpx.AsyncClient(
            base_url=base, headers=headers, transport=httpx.MockTransport(answer)
        ) as client:
            return await collect(HubReader(client), FIRST)

    try:
        return asyncio.run(main()), sent
    except StopRun:
        assert len(sent) == 1  # nothing went to the refused link
        raise


@pytest.mark.parametrize(
    ("link", "shown"),
    [
        (
            "https://hub.example.test:8443/v2/namespaces/a/repositories?page=2&page_size=1",
            "https://hub.example.test:8443/v2/namespaces/a/repositories",
        ),  # another port
        (
            "http://hub.example.test/v2/namespaces/a/repositories?page=2",
            "http://hub.example.test/v2/namespaces/a/repositories",
        ),  # https → http
        ("https://evil.example/v2/x?page=2&token=leak", "https://evil.example/v2/x"),
        ("//evil.example/v2/x?page=2", "https://evil.example/v2/x"),  # scheme-relative
        ("https://hub.docker.com@evil.example/v2/x?page=2", "https://evil.example/v2/x"),
        (
            "https://someone:pw@hub.example.test/v2/namespaces/a/repositories?page=2",
            "https://hub.example.test/v2/namespaces/a/repositories",
        ),  # userinfo, same host
    ],
)
def test_a_next_link_off_the_connections_origin_is_refused(link: str, shown: str) -> None:
    with pytest.raises(StopRun) as caught:
        follow(link)
    message = str(caught.value)
    assert f"next link to {shown}," in message
    assert "page=2" not in message and "leak" not in message and "pw" not in message
    assert "https://hub.example.test" in message  # the origin it may go to


@pytest.mark.parametrize(
    ("base", "link", "path"),
    [
        (
            BASE,
            "https://hub.example.test:443/v2/namespaces/a/repositories?page=2",
            "/v2/namespaces/a/repositories",
        ),  # the default port, spelt out
        ("https://hub.example.test:443", "https://HUB.example.test/v2/x?page=2", "/v2/x"),
        (BASE, "/v2/namespaces/a/repositories?page=2", "/v2/namespaces/a/repositories"),
        (BASE, "?page=2&page_size=1", "/v2/namespaces/a/repositories"),  # against the current URL
        ("http://127.0.0.1:47002", "http://127.0.0.1:47002/v2/x?page=2", "/v2/x"),
    ],
)
def test_a_next_link_on_the_connections_origin_is_followed(base: str, link: str, path: str) -> None:
    found, sent = follow(link, base)
    assert [item["name"] for item in found] == ["a", "b"]
    assert sent[1].path == path and sent[1].params["page"] == "2"


def test_a_next_link_back_to_a_page_already_read_stops() -> None:
    with pytest.raises(StopRun, match="already read"):
        follow(f"{BASE}{FIRST}")


def test_a_dropped_connection_is_retried() -> None:
    attempts: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        if len(attempts) == 1:
            raise httpx.RemoteProtocolError("server disconnected", request=request)
        return httpx.Response(200, json={"results": [{"name": "a"}], "next": None})

    async def main() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(
            base_url="https://hub.example.test", transport=httpx.MockTransport(answer)
        ) as client:
            return await collect(HubReader(client, backoff=0.001), "/v2/orgs/a/groups")

    assert asyncio.run(main()) == [{"name": "a"}]
    assert len(attempts) == 2


def reads_answered(*statuses: int, **reader: Any) -> tuple[int, list[int]]:
    """The status a read ends with, and every status it met on the way."""
    met: list[int] = []
    pending = list(statuses)

    def answer(request: httpx.Request) -> httpx.Response:
        status = pending.pop(0) if len(pending) > 1 else pending[0]
        met.append(status)
        return httpx.Response(status, json={"message": f"status {status}"})

    async def main() -> int:
        async with httpx.AsyncClient(
            base_url="https://hub.example.test", transport=httpx.MockTransport(answer)
        ) as client:
            response = await HubReader(client, backoff=0.001, **reader).get("/v2/orgs/a")
            return response.status_code

    return asyncio.run(main()), met


@pytest.mark.parametrize("status", [408, 500, 501, 502, 503, 504, 507])
def test_a_read_is_sent_again_when_classify_says_retry(status: int) -> None:
    # The dispatcher's classify() decides for reads too: every 5xx and a 408.
    assert reads_answered(status, 200) == (200, [status, 200])


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409])
def test_a_read_refused_is_returned_at_once(status: int) -> None:
    assert reads_answered(status, 200) == (status, [status])


def test_a_read_still_failing_after_its_retries_returns_the_answer() -> None:
    assert reads_answered(503, max_retries=2) == (503, [503, 503, 503])


def test_a_read_takes_a_slot_of_the_pacer_it_shares() -> None:
    pacer = Pacer()
    starts: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        starts.append(pacer.in_flight)
        return httpx.Response(200, json={})

    async def main() -> None:
        async with httpx.AsyncClient(
            base_url="https://hub.example.test", transport=httpx.MockTransport(answer)
        ) as client:
            await HubReader(client, pacer=pacer).get("/v2/orgs/a")

    asyncio.run(main())
    assert starts == [1]  # in flight on the pacer while it was sent
    assert pacer.in_flight == 0  # and completed


def test_matches_compares_text_without_case() -> None:
    assert matches({"role": "Owner", "is_private": False}, {"role": "owner", "is_private": "false"})
    assert not matches({"role": "Member"}, {"role": "owner"})


# -- a missing parent settles the look-up --------------------------------------------------


TEAM_MEMBERS = Lookup(
    path="/v2/orgs/{o}/groups/{g}/members",
    params={"o": "x", "g": "y"},
    list="results",
    match={"username": "{{ record.username }}"},
)


def look(
    hub: Simulator,
    path: str,
    *,
    spec: Lookup = TEAM_MEMBERS,
    fresh: bool = True,
    match: dict[str, Any] | None = None,
    **who: str,
) -> bool | None:
    request = Request("GET", f"{hub.url}{path}", (), None, ("k",), "t", (0,))

    async def body(reader: HubReader) -> bool | None:
        return await reader.effect_present(spec, request, match or {"username": "bob"}, fresh=fresh)

    return run(hub, body, **who)


@pytest.mark.parametrize("fresh", [True, False])
def test_a_team_that_does_not_exist_settles_the_look_up(hub: Simulator, fresh: bool) -> None:
    assert look(hub, "/v2/orgs/acme/groups/developers/members?search=bob", fresh=fresh) is True
    assert look(hub, "/v2/orgs/acme/groups/developers/members?search=carol", fresh=fresh) is False
    with pytest.raises(RejectRecord) as caught:
        look(hub, "/v2/orgs/acme/groups/ghosts/members?search=bob", fresh=fresh)
    assert caught.value.message.startswith(
        "the team 'ghosts' does not exist in the organization acme (GET "
        "/v2/orgs/acme/groups/ghosts/members: HTTP 404"
    )
    assert caught.value.status == 404


def test_an_organization_that_does_not_exist_settles_every_list_look_up(hub: Simulator) -> None:
    invites = Lookup(path="/v2/x", list="data", match={"id": "{{ record.id }}"}, effect="absent")
    with pytest.raises(RejectRecord, match=r"^the organization 'nowhere' does not exist"):
        look(hub, "/v2/orgs/nowhere/invites", spec=invites, match={"id": "c2d7"})
    with pytest.raises(RejectRecord, match=r"^the namespace 'nowhere' does not exist"):
        look(hub, "/v2/namespaces/nowhere/repositories", spec=invites, match={"name": "x"})


@pytest.mark.parametrize(
    ("url", "sentence"),
    [
        (
            "https://hub.docker.com/v2/orgs/acme/groups/dev%20ops/members?search=bob",
            "the team 'dev ops' does not exist in the organization acme",
        ),
        ("/v2/orgs/acme/members", "the organization 'acme' does not exist"),
        ("/v2/orgs/acme/access-tokens", "the organization 'acme' does not exist"),
        ("/v2/namespaces/acme/repositories", "the namespace 'acme' does not exist"),
        ("/v2/namespaces/acme/repositories/api/tags", "the repository 'acme/api' does not exist"),
        ("/v2/repositories/acme/api/groups", "the repository 'acme/api' does not exist"),
        ("/v2/access-tokens", None),
    ],
)
def test_the_missing_parent_is_named_from_the_path(url: str, sentence: str | None) -> None:
    assert missing_parent(url) == sentence


def test_a_404_on_a_list_with_no_parent_cannot_tell() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"message": "not found"})

    async def main() -> bool | None:
        async with httpx.AsyncClient(
            base_url=BASE, transport=httpx.MockTransport(answer)
        ) as client:
            request = Request("GET", f"{BASE}/v2/access-tokens", (), None, ("k",), "t")
            spec = Lookup(path="/v2/access-tokens", list="results", match={"uuid": "u"})
            return await HubReader(client).effect_present(spec, request, {"uuid": "u"})

    assert asyncio.run(main()) is None


# -- one read of a list per run -------------------------------------------------------------

TOKENS = Lookup(
    path="/v2/access-tokens", list="results", match={"token_label": "{{ record.token_label }}"}
)


def test_concurrent_look_ups_of_one_list_share_one_read_until_a_write(hub: Simulator) -> None:
    request = Request("GET", f"{hub.url}/v2/access-tokens", (), None, ("k",), "t", (0,))

    async def present(reader: HubReader, label: str, fresh: bool = False) -> bool | None:
        return await reader.effect_present(TOKENS, request, {"token_label": label}, fresh=fresh)

    async def body(reader: HubReader) -> list[int]:
        counts = []
        labels = [f"carol-{i:03d}" for i in range(0, CAROL_TOKENS, 5)] + ["missing"]
        found = await asyncio.gather(*(present(reader, label) for label in labels))
        assert found == [True] * (len(labels) - 1) + [False]
        assert await present(reader, "carol-149") is True  # from the list already read
        counts.append(len(calls(hub, "/v2/access-tokens")))
        refused = await reader.client.post("/v2/access-tokens", json={"token_label": ""})
        assert refused.status_code == 400  # a refused write changes nothing: still cached
        assert await present(reader, "carol-001") is True
        counts.append(len(calls(hub, "/v2/access-tokens")))
        created = await reader.client.post(
            "/v2/access-tokens", json={"token_label": "made-now", "scopes": ["repo:read"]}
        )
        assert created.status_code == 201
        assert await present(reader, "made-now") is True  # the write dropped the cached list
        counts.append(len(calls(hub, "/v2/access-tokens")))
        assert await present(reader, "made-now", fresh=True) is True  # fresh: read again
        counts.append(len(calls(hub, "/v2/access-tokens")))
        return counts

    gets = run(hub, body, identifier="carol", secret=CAROL_PASSWORD)
    # Each count includes the POSTs before it; reads are 2 pages of 100 each time.
    assert gets == [2, 2 + 1, 2 + 1 + 1 + 2, 2 + 1 + 1 + 2 + 1]
    pages = [parse_qs(c["query"]) for c in calls(hub, "/v2/access-tokens") if c["method"] == "GET"]
    assert all(page["page_size"] == ["100"] for page in pages)


# -- end to end: a run's look-ups settle what Hub answered --------------------------------------


def run_config(
    hub: Simulator,
    folder: Path,
    config: dict[str, Any],
    rows: list[dict[str, Any]],
    *,
    identifier: str = "acme",
    secret: str = OAT,
    left_sent: list[str] | None = None,
) -> RunSummary:
    (folder / "records.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    connection = {"identifier": identifier, "secret_env": "SINK_HUB_TEST_SECRET"}
    path = folder / "dest.yaml"
    path.write_text(yaml.safe_dump({"input": "records.jsonl", "connection": connection, **config}))
    destination = open_destination(path, base_url=hub.url)
    if left_sent:  # what a kill after marking them sent leaves: their outcome unknown
        with Ledger(output_paths(destination).ledger) as ledger:
            ledger.mark_sent(((key, i) for i, key in enumerate(left_sent)), destination.template_id)
    kind = "oat" if secret.startswith("dckr_oat_") else "password"
    credentials = Credentials(hub.url, identifier, secret, kind)  # type: ignore[arg-type]
    options = RunOptions(folder / "records.jsonl", yes=True)
    return asyncio.run(run_async(destination, credentials, options))


def outputs(folder: Path, name: str) -> list[dict[str, Any]]:
    path = folder / "out" / f"dest-{name}.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


ADD = {
    "template": "add-team-member",
    "settings": {"org": "acme"},
    "key_field": "key",
    "retry": {"max_attempts": 2, "max_seconds": 10},
}
GHOST_TEAM = "the team 'ghosts' does not exist in the organization acme"


def test_a_record_left_in_doubt_whose_team_does_not_exist_is_rejected_on_resume(
    hub: Simulator, tmp_path: Path
) -> None:
    rows = [
        {"key": "ghost", "team": "ghosts", "username": "bob"},
        {"key": "real", "team": "developers", "username": "carol"},
    ]
    summary = run_config(hub, tmp_path, ADD, rows, left_sent=["ghost", "real"])
    assert (summary.counts.ok, summary.counts.rejected, summary.counts.failed) == (1, 1, 0)
    posts = [
        c["path"]
        for c in hub.requests()
        if c["method"] == "POST" and c["path"].startswith("/v2/orgs/")
    ]
    assert posts == ["/v2/orgs/acme/groups/developers/members"]  # the ghost one not again
    with Ledger(tmp_path / "dest.ledger.sqlite") as ledger:
        ghost = ledger.get("ghost")
        assert ghost is not None and ghost.state == REJECTED
        assert ghost.note is not None and ghost.note.startswith(GHOST_TEAM)
        assert ledger.counts()[SENT] == 0  # nothing left in doubt
    [reject] = outputs(tmp_path, "rejects")
    assert GHOST_TEAM in orjson.dumps(reject).decode()


def test_an_ambiguous_add_to_a_team_that_does_not_exist_is_rejected_not_in_doubt(
    hub: Simulator, tmp_path: Path
) -> None:
    hub.set_faults(
        {
            "rules": [
                {
                    "method": "POST",
                    "path": "/v2/orgs/acme/groups/ghosts/members",
                    "error_rate": 1,
                    "error_statuses": [502],
                }
            ]
        }
    )
    summary = run_config(hub, tmp_path, ADD, [{"key": "g", "team": "ghosts", "username": "bob"}])
    assert (summary.counts.rejected, summary.counts.failed) == (1, 0)
    [line] = outputs(tmp_path, "responses")
    assert line["status"] == "rejected" and GHOST_TEAM in line["error"]
    assert "in_doubt" not in line
    with Ledger(tmp_path / "dest.ledger.sqlite") as ledger:
        assert ledger.get("g").state == REJECTED  # type: ignore[union-attr]


def test_an_offboarding_rerun_reports_what_is_already_gone(hub: Simulator, tmp_path: Path) -> None:
    remove = {"template": "remove-team-member", "settings": {"org": "acme"}, "key_field": "key"}
    rows = [
        {"key": "now", "team": "developers", "username": "bob"},
        {"key": "gone", "team": "developers", "username": "carol"},  # never was in it
        {"key": "typo", "team": "ghosts", "username": "bob"},
    ]
    summary = run_config(hub, tmp_path, remove, rows)
    counts = summary.counts
    assert (counts.ok, counts.already_absent, counts.rejected, counts.failed) == (2, 1, 1, 0)
    lines = {line["keys"][0]: line for line in outputs(tmp_path, "responses")}
    assert lines["gone"]["status"] == "ok" and lines["gone"]["extra"] == {"already_gone": True}
    assert "extra" not in lines["now"]
    assert lines["typo"]["status"] == "rejected" and GHOST_TEAM in lines["typo"]["error"]
    with Ledger(tmp_path / "dest.ledger.sqlite") as ledger:
        assert [ledger.get(k).state for k in ("now", "gone", "typo")] == [  # type: ignore[union-attr]
            DONE,
            DONE,
            REJECTED,
        ]
    # Again on a new ledger (as after the offboarding was done some other way): all absent.
    (tmp_path / "again").mkdir()
    again = run_config(hub, tmp_path / "again", remove, rows[:2])
    assert (again.counts.ok, again.counts.already_absent, again.counts.rejected) == (2, 2, 0)


def test_an_organization_member_already_removed_is_already_absent(
    hub: Simulator, tmp_path: Path
) -> None:
    remove = {"template": "remove-member", "settings": {"org": "acme"}, "key_field": "username"}
    summary = run_config(hub, tmp_path, remove, [{"username": "dave"}])  # not in acme
    assert (summary.counts.ok, summary.counts.already_absent, summary.counts.rejected) == (1, 1, 0)


def test_a_resume_reads_a_list_once_for_all_its_look_ups(hub: Simulator, tmp_path: Path) -> None:
    config = {"template": "create-personal-access-token", "key_field": "token_label"}
    rows = [{"token_label": f"resumed-{i:02d}", "scopes": "repo:read"} for i in range(40)]
    summary = run_config(
        hub,
        tmp_path,
        config,
        rows,
        identifier="carol",
        secret=CAROL_PASSWORD,
        left_sent=[r["token_label"] for r in rows],
    )
    assert (summary.counts.ok, summary.counts.failed) == (40, 0)  # none there: all sent
    gets = [c for c in calls(hub, "/v2/access-tokens") if c["method"] == "GET"]
    assert len(gets) == 2  # 40 look-ups, one read of 150 tokens in pages of 100
