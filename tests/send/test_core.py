"""The send core, driven by plain pairs (no file, no config): guard, ledger, dispatch, record."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from sink.config import PolicyConfig
from sink.guard.check import Guard
from sink.model import Record, Rejected, Request, Status
from sink.outputs.audit import AuditLog
from sink.outputs.files import RejectsFile, ResponsesFile
from sink.outputs.redact import Redactor
from sink.outputs.results import Recorder
from sink.pipeline import Carried
from sink.read.hub import HubReader
from sink.send.core import FLUSH, Flush, SendCore
from sink.send.dispatch import Dispatcher
from sink.send.ledger import DONE, REJECTED, Ledger
from sink.send.settings import Limits

BASE = "https://hub.docker.com"


def pair(name: str, namespace: str = "acme", index: int = 0) -> Carried:
    record = Record(index, {"name": name}, key=name)
    request = Request(
        "POST",
        f"{BASE}/v2/namespaces/{namespace}/repositories",
        (("Content-Type", "application/json"),),
        orjson.dumps({"name": name, "namespace": namespace}),
        (name,),
        "create-repository",
        (index,),
    )
    return request, (record,)


class Parts:
    """A core on a fake Hub that creates every repository it is sent."""

    def __init__(self, folder: Path, policy: PolicyConfig | None = None) -> None:
        self.sent: list[str] = []

        def hub(request: httpx.Request) -> httpx.Response:
            self.sent.append(orjson.loads(request.content)["name"])
            return httpx.Response(201, json={"name": self.sent[-1]})

        self.client = httpx.AsyncClient(transport=httpx.MockTransport(hub))
        redactor = Redactor()
        self.ledger = Ledger(folder / "dest.ledger.sqlite")
        self.recorder = Recorder(
            ResponsesFile(folder / "responses.jsonl", redactor=redactor),
            RejectsFile(folder / "rejects.jsonl", redactor=redactor),
            vault=None,
        )
        self.audit = AuditLog(folder / "audit.jsonl", who="acme", redactor=redactor)
        self.dispatcher = Dispatcher(self.client, limits=Limits(concurrency=4))
        self.core = SendCore(
            dispatcher=self.dispatcher,
            guard=Guard(HubReader(self.client), policy),
            ledger=self.ledger,
            recorder=self.recorder,
            audit=self.audit,
            template_id="create-repository",
            resource_field="name",
            group_size=2,
        )

    async def send(self, items: Any) -> list[Any]:
        outcomes = [sent.outcome async for sent in self.core.send(items)]
        self.core.close()
        self.ledger.flush()
        return outcomes

    async def aclose(self) -> None:
        self.recorder.close()
        self.audit.close()
        self.ledger.close()
        await self.client.aclose()


@pytest.mark.anyio
async def test_pairs_from_a_list_are_sent_recorded_and_settled(tmp_path: Path) -> None:
    parts = Parts(tmp_path)
    items: list[Carried | Rejected | Flush] = [pair("one"), FLUSH, pair("two", index=1)]
    items.append(Rejected(2, {"name": ""}, "name: required", "bad"))
    outcomes = await parts.send(items)
    assert sorted(o.keys[0] for o in outcomes) == ["one", "two"]
    assert all(o.status is Status.OK for o in outcomes)
    assert sorted(parts.sent) == ["one", "two"]
    states = parts.ledger.states(["one", "two", "bad"])
    assert {key: state for key, (state, _) in states.items()} == {
        "one": DONE,
        "two": DONE,
        "bad": REJECTED,
    }
    assert parts.recorder.counts.ok == 2 and parts.recorder.counts.rejected == 1
    await parts.aclose()


@pytest.mark.anyio
async def test_an_async_source_and_a_refusing_guard(tmp_path: Path) -> None:
    parts = Parts(tmp_path, PolicyConfig(namespaces=["acme"]))

    async def source() -> AsyncIterator[Carried]:
        yield pair("inside")
        yield pair("outside", namespace="globex", index=1)

    outcomes = await parts.send(source())
    assert [o.keys for o in outcomes] == [("inside",)]
    assert parts.sent == ["inside"]  # the refused one never left
    rejects = (tmp_path / "rejects.jsonl").read_bytes().splitlines()
    assert "globex" in orjson.loads(rejects[0])["_sink_error"]
    audit = [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    assert any(line.get("outcome") == "refused" for line in audit)
    await parts.aclose()


@pytest.mark.anyio
async def test_requests_marked_sent_that_never_left_are_taken_back(tmp_path: Path) -> None:
    parts = Parts(tmp_path)
    requests = parts.core.requests([pair("a"), pair("b", index=1), pair("c", index=2)])
    first = await anext(requests)  # a group of two is marked sent; one is handed out
    assert first.keys == ("a",)
    assert set(parts.ledger.states(["a", "b"])) == {"a", "b"}
    parts.core.close()  # a stop: "b" never left, "a" is on the wire (no outcome)
    parts.ledger.flush()
    assert set(parts.ledger.states(["a", "b", "c"])) == {"a"}
    assert parts.recorder.counts.skipped == 2  # both ended without an outcome
    await parts.aclose()
