"""Resume: done records skipped, records left in flight looked up before anything is sent."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml

from sink.destination import Destination, open_destination
from sink.model import Record, Rejected
from sink.outputs.files import RejectsFile, ResponsesFile
from sink.outputs.redact import Redactor
from sink.outputs.results import Recorder
from sink.read.hub import HubReader
from sink.send.ledger import DONE, FAILED, SENT, Ledger
from sink.send.resume import Resume

THERE = {"kept", "again"}  # repositories the fake Hub has


def repositories(folder: Path) -> Destination:
    """A create-repository destination keyed by name."""
    config = {
        "connection": {"identifier": "acme", "secret_env": "SINK_TEST_SECRET"},
        "template": "create-repository",
        "settings": {"namespace": "acme"},
        "key_field": "name",
    }
    (folder / "dest.yaml").write_text(yaml.safe_dump(config))
    return open_destination(folder / "dest.yaml")


def outputs(folder: Path) -> Recorder:
    redactor = Redactor()
    return Recorder(
        ResponsesFile(folder / "r.jsonl", redactor=redactor),
        RejectsFile(folder / "x.jsonl", redactor=redactor),
        vault=None,
    )


@pytest.mark.anyio
async def test_past_runs_are_settled_before_sending(tmp_path: Path) -> None:
    destination = repositories(tmp_path)
    looked_up: list[str] = []

    def hub(request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("/", 1)[-1]
        looked_up.append(name)
        return httpx.Response(200 if name in THERE else 404, json={"name": name})

    ledger = Ledger(tmp_path / "dest.ledger.sqlite")
    for key, state in [("done", DONE), ("kept", SENT), ("gone", SENT), ("again", FAILED)]:
        ledger.mark_sent([(key, None)], "create-repository")
        if state != SENT:
            ledger.settle(key, "create-repository", state)
    ledger.flush()
    recorder = outputs(tmp_path)
    async with httpx.AsyncClient(transport=httpx.MockTransport(hub)) as client:
        resume = Resume(destination, HubReader(client), ledger, recorder, started=time.time())
        chunk: list[Record | Rejected] = [
            Record(at, {"name": key}, key=key)
            for at, key in enumerate(["done", "kept", "gone", "again", "new", "new"])
        ]
        todo = await resume.past_runs(chunk)
    assert [item.key for item in todo] == ["gone", "new"]  # not there, or never sent
    assert sorted(looked_up) == ["again", "gone", "kept"]  # only what a past run left open
    counts = recorder.counts
    assert (counts.done_before, counts.recovered, counts.duplicates) == (1, 2, 1)
    states = ledger.states(["kept", "again"])
    assert {key: state for key, (state, _) in states.items()} == {"kept": DONE, "again": DONE}
    recorder.close()
    ledger.close()


@pytest.mark.anyio
async def test_a_repeated_key_with_other_values_is_a_conflict(tmp_path: Path) -> None:
    destination = repositories(tmp_path)
    ledger = Ledger(tmp_path / "dest.ledger.sqlite")
    recorder = outputs(tmp_path)
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(404))) as c:
        resume = Resume(destination, HubReader(c), ledger, recorder, started=time.time())
        rows = [{"name": "api"}, {"name": "api"}, {"name": "api", "description": "other"}]
        first = await resume.past_runs([Record(0, rows[0], "api"), Record(1, rows[1], "api")])
        later = await resume.past_runs([Record(2, rows[2], "api")])  # a later chunk
    assert [item.key for item in first] == ["api"]  # the same values again: a duplicate
    assert recorder.counts.duplicates == 1
    [conflict] = later
    assert isinstance(conflict, Rejected) and conflict.key == ""  # the ledger keeps record 1's
    assert "record 1" in conflict.error and "conflict" in conflict.error
    recorder.close()
    ledger.close()
