"""What becomes of each outcome (sink/outputs/results.py): the vault first, then the responses
stream, then the rejects; the counts per flag; each record's own result in a batch answer."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from sink.model import Outcome, Record, Rejected, Request, Status, VaultEntry
from sink.outputs.files import RejectsFile, ResponsesFile
from sink.outputs.redact import Redactor
from sink.outputs.results import Recorder
from sink.outputs.vault import Vault
from sink.request.templates import BatchSpec
from tests.outputs.support import PAT, lines, pat_outcome

BULK = BatchSpec(
    property="invitees",
    size=100,
    result_list="invitees",
    result_match="invitee",
    result_status="status",
    ok_statuses=["invited", "existing_org_member", "already_invited"],
)
"""The bulk-invite template's batching (templates/dockerhub/bulk-invite.yaml)."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Outputs:
    folder: Path
    responses: ResponsesFile
    rejects: RejectsFile
    vault: Vault

    @property
    def responses_lines(self) -> list[dict[str, object]]:
        return lines(self.folder / "responses.jsonl")

    @property
    def rejects_lines(self) -> list[dict[str, object]]:
        return lines(self.folder / "rejects.jsonl")

    @property
    def vault_lines(self) -> list[dict[str, object]]:
        return lines(self.folder / "vault.jsonl")


@pytest.fixture
def outputs(tmp_path: Path) -> Iterator[Outputs]:
    redactor = Redactor()
    made = Outputs(
        tmp_path,
        ResponsesFile(tmp_path / "responses.jsonl", secret_fields=("token",), redactor=redactor),
        RejectsFile(tmp_path / "rejects.jsonl", redactor=redactor),
        Vault(tmp_path / "vault.jsonl"),
    )
    yield made
    made.responses.close()
    made.rejects.close()
    made.vault.close()


def repo_request(*names: str) -> tuple[Request, tuple[Record, ...]]:
    records = tuple(Record(i, {"name": name}, key=name) for i, name in enumerate(names))
    request = Request(
        "POST",
        "https://hub.docker.com/v2/namespaces/acme/repositories",
        (("Content-Type", "application/json"),),
        b"{}",
        names,
        "create-repository",
        tuple(range(len(names))),
    )
    return request, records


def bulk_request(*emails: tuple[str, ...]) -> tuple[Request, tuple[Record, ...]]:
    """A bulk invite carrying one record per tuple of e-mail addresses."""
    records = tuple(
        Record(i, {"invitees": ",".join(items)}, key=f"r{i}") for i, items in enumerate(emails)
    )
    request = Request(
        "POST",
        "https://hub.docker.com/v2/invites/bulk",
        (("Content-Type", "application/json"),),
        b"{}",
        tuple(record.key for record in records),
        "bulk-invite",
        tuple(record.index for record in records),
        parts=emails,
    )
    return request, records


@pytest.mark.anyio
async def test_a_created_secret_is_in_the_vault_before_the_responses_hear_of_it(
    outputs: Outputs,
) -> None:
    seen_in_vault: list[list[dict[str, object]]] = []

    class Watching:
        """The responses file, noting what the vault held when each line came."""

        written = 0

        def write(self, outcome: Outcome) -> None:
            seen_in_vault.append(outputs.vault_lines)
            outputs.responses.write(outcome)

    recorder = Recorder(Watching(), outputs.rejects, vault=outputs.vault)
    outcome = pat_outcome("ci-bot")
    request, records = repo_request("ci-bot")
    [result] = await recorder.outcome(outcome, request, records)
    assert result.status is Status.OK
    [vault_line] = seen_in_vault[0]
    assert (vault_line["key"], vault_line["token"]) == ("ci-bot", PAT)
    assert outcome.vault is None  # taken off the outcome: it goes nowhere else
    [line] = outputs.responses_lines
    assert PAT not in orjson.dumps(line).decode()
    assert (recorder.counts.secrets, recorder.counts.ok, recorder.counts.requests) == (1, 1, 1)
    assert outputs.rejects_lines == []


@pytest.mark.anyio
async def test_a_vault_that_cannot_take_the_secret_stops_before_the_responses(
    outputs: Outputs,
) -> None:
    recorder = Recorder(outputs.responses, outputs.rejects, vault=outputs.vault)
    outputs.vault.close()
    request, records = repo_request("ci-bot")
    with pytest.raises(ValueError, match="the vault is closed"):
        await recorder.outcome(pat_outcome("ci-bot"), request, records)
    assert outputs.responses_lines == []  # not reported done with its secret only in memory
    assert (recorder.counts.ok, recorder.counts.secrets) == (0, 0)


@pytest.mark.anyio
async def test_a_secret_for_a_destination_without_a_vault_is_refused(outputs: Outputs) -> None:
    recorder = Recorder(outputs.responses, outputs.rejects, vault=None)
    request, records = repo_request("ci-bot")
    with pytest.raises(RuntimeError, match="has no vault"):
        await recorder.outcome(pat_outcome("ci-bot"), request, records)
    assert outputs.responses_lines == []
    assert recorder.vault_path is None


@pytest.mark.anyio
async def test_an_async_responses_stream_is_awaited(outputs: Outputs) -> None:
    delivered: list[tuple[str, ...]] = []

    class Webhook:
        written = 0

        async def write(self, outcome: Outcome) -> None:
            delivered.append(outcome.keys)

    recorder = Recorder(Webhook(), outputs.rejects, vault=None)
    request, records = repo_request("api")
    await recorder.outcome(Outcome(("api",), Status.OK, 201), request, records)
    assert delivered == [("api",)]


@pytest.mark.anyio
async def test_failures_and_refusals_go_to_the_rejects_with_the_record_as_it_came(
    outputs: Outputs,
) -> None:
    recorder = Recorder(outputs.responses, outputs.rejects, vault=None)
    request, records = repo_request("Bad_Name")
    refused = Outcome(("Bad_Name",), Status.REJECTED, 400, error="name: invalid repository name")
    await recorder.outcome(refused, request, records)
    request, records = repo_request("api")
    await recorder.outcome(Outcome(("api",), Status.FAILED, 503), request, records)
    assert [line["_sink_error"] for line in outputs.rejects_lines] == [
        "name: invalid repository name",
        "failed",  # no message of its own
    ]
    assert [line["_sink_status"] for line in outputs.rejects_lines] == [400, 503]
    assert [line["name"] for line in outputs.rejects_lines] == ["Bad_Name", "api"]
    counts = recorder.counts
    assert (counts.records, counts.requests, counts.rejected, counts.failed, counts.ok) == (
        2,
        2,
        1,
        1,
        0,
    )
    assert [line["status"] for line in outputs.responses_lines] == ["rejected", "failed"]


@pytest.mark.anyio
async def test_the_flags_are_counted_per_record(outputs: Outputs) -> None:
    recorder = Recorder(outputs.responses, outputs.rejects, vault=None)
    request, records = repo_request("a", "b")
    await recorder.outcome(
        Outcome(("a", "b"), Status.OK, 409, already_existed=True), request, records
    )
    request, records = repo_request("c")
    await recorder.outcome(Outcome(("c",), Status.OK, 201, recovered=True), request, records)
    request, records = repo_request("d")
    await recorder.outcome(Outcome(("d",), Status.OK, 404, already_gone=True), request, records)
    request, records = repo_request("e")
    # a 404 on a delete that was not found in the end: not "already absent"
    await recorder.outcome(Outcome(("e",), Status.FAILED, 404, already_gone=True), request, records)
    counts = recorder.counts
    assert (counts.already_existed, counts.recovered, counts.already_absent) == (2, 1, 1)
    assert (counts.ok, counts.failed, counts.records, counts.requests) == (4, 1, 5, 4)
    extras = [line.get("extra") for line in outputs.responses_lines]
    assert extras == [
        {"already_existed": True},
        {"recovered": True},
        {"already_gone": True},
        {"already_gone": True},
    ]


@pytest.mark.anyio
async def test_a_lost_secret_is_listed_for_revoking_never_rejected_for_a_replay(
    outputs: Outputs,
) -> None:
    recorder = Recorder(outputs.responses, outputs.rejects, vault=outputs.vault)
    request, records = repo_request("ci-bot")
    lost = Outcome(("ci-bot",), Status.SECRET_LOST, 201, in_doubt=True, secret_lost=True)
    [result] = await recorder.outcome(lost, request, records)
    assert result.status is Status.SECRET_LOST
    assert recorder.counts.secrets_lost == ["ci-bot"] and recorder.lost == list(records)
    assert outputs.rejects_lines == []  # replaying it would create a second token
    counts = recorder.counts
    assert (counts.records, counts.ok, counts.failed, counts.rejected) == (1, 0, 0, 0)
    assert outputs.responses_lines[0]["extra"] == {"in_doubt": True, "secret_lost": True}
    found = Record(7, {"token_label": "deploy"}, key="deploy")
    recorder.secret_lost(found)  # found created by an interrupted run
    assert recorder.counts.secrets_lost == ["ci-bot", "deploy"]
    assert recorder.lost[-1] is found and recorder.counts.records == 1


@pytest.mark.anyio
async def test_each_record_of_a_bulk_invite_gets_the_result_of_its_own_invitees(
    outputs: Outputs,
) -> None:
    recorder = Recorder(outputs.responses, outputs.rejects, vault=None, batch=BULK)
    request, records = bulk_request(
        ("Ann@Example.com",), ("bob@example.com", "bo2@example.com"), ("cy@example.com",)
    )
    answer = {
        "invitees": [
            {"invitee": "ANN@example.com", "status": "invited"},  # matched case-insensitively
            {"invitee": "bob@example.com", "status": "existing_org_member"},
            {"invitee": "bo2@example.com", "status": "invalid_email"},
        ]
    }
    outcome = Outcome(request.keys, Status.OK, 202, body=answer, template="bulk-invite")
    results = await recorder.outcome(outcome, request, records)
    assert [(r.record.key, r.status, r.error) for r in results] == [
        ("r0", Status.OK, None),
        ("r1", Status.REJECTED, "bo2@example.com: invalid_email"),
        ("r2", Status.REJECTED, "cy@example.com: no result in Docker Hub's answer"),
    ]
    counts = recorder.counts
    assert (counts.requests, counts.records, counts.ok, counts.rejected) == (1, 3, 1, 2)
    assert [(line["_sink_key"], line["_sink_status"]) for line in outputs.rejects_lines] == [
        ("r1", 202),
        ("r2", 202),
    ]


@pytest.mark.anyio
async def test_a_double_wrapped_bulk_answer_is_read_too(outputs: Outputs) -> None:
    recorder = Recorder(outputs.responses, outputs.rejects, vault=None, batch=BULK)
    request, records = bulk_request(("ann@example.com",))
    answer = {
        "invitees": {"invitees": [{"invitee": "ann@example.com", "status": "already_invited"}]}
    }
    outcome = Outcome(request.keys, Status.OK, 202, body=answer)
    [result] = await recorder.outcome(outcome, request, records)
    assert result.status is Status.OK


@pytest.mark.anyio
@pytest.mark.parametrize(
    "outcome",
    [
        Outcome(("r0", "r1"), Status.FAILED, 500, error="server error"),
        Outcome(("r0", "r1"), Status.OK, 202, body=None, recovered=True),
        Outcome(("r0", "r1"), Status.OK, 409, body={"message": "x"}, already_existed=True),
    ],
    ids=["failed", "recovered", "already-existed"],
)
async def test_a_batch_without_a_per_item_answer_gives_every_record_the_outcome(
    outputs: Outputs, outcome: Outcome
) -> None:
    recorder = Recorder(outputs.responses, outputs.rejects, vault=None, batch=BULK)
    request, records = bulk_request(("ann@example.com",), ("bob@example.com",))
    results = await recorder.outcome(outcome, request, records)
    assert [(r.status, r.error) for r in results] == [(outcome.status, outcome.error)] * 2


def test_close_closes_the_vault_and_the_rejects(tmp_path: Path) -> None:
    vault = Vault(tmp_path / "vault.jsonl")
    rejects = RejectsFile(tmp_path / "rejects.jsonl")
    recorder = Recorder(_NoResponses(), rejects, vault=vault)
    assert recorder.vault_path == tmp_path / "vault.jsonl"
    recorder.close()
    with pytest.raises(ValueError, match="closed"):
        vault.write(VaultEntry(("k",), "create-pat", None, None, {"token": PAT}))
    Vault(tmp_path / "vault.jsonl").close()  # the lock is released: another run may open it
    with pytest.raises(ValueError):
        rejects.write({"name": "x"}, "late", None)


def test_an_unreadable_row_is_written_with_its_raw_line(tmp_path: Path) -> None:
    from sink.model import Rejected
    from sink.outputs.results import Recorder

    rejects = RejectsFile(tmp_path / "rejects.jsonl")
    recorder = Recorder(_NoResponses(), rejects, vault=None)
    recorder.rejected(Rejected(2, None, "line 3: expected 2 columns, got 3", raw="a,b,c"))
    recorder.close()
    [line] = [orjson.loads(text) for text in (tmp_path / "rejects.jsonl").read_bytes().splitlines()]
    assert line["_sink_raw"] == "a,b,c"
    assert line["_sink_error"] == "line 3: expected 2 columns, got 3"
    assert line["_sink_index"] == 2
    assert recorder.counts.rejected == 1


def test_a_record_refused_before_sending_is_written_as_it_came(tmp_path: Path) -> None:
    rejects = RejectsFile(tmp_path / "rejects.jsonl")
    recorder = Recorder(_NoResponses(), rejects, vault=None)
    refused = Rejected(5, {"name": "api", "namespace": "globex"}, "outside the policy", "api")
    recorder.rejected(refused)
    recorder.close()
    [line] = lines(tmp_path / "rejects.jsonl")
    assert (line["name"], line["namespace"], line["_sink_error"]) == (
        "api",
        "globex",
        "outside the policy",
    )
    assert (recorder.counts.records, recorder.counts.rejected) == (1, 1)


class _NoResponses:
    written = 0

    def write(self, outcome: Outcome) -> None:
        raise AssertionError("no outcome expected")
