"""Tests of the responses webhook (sink/outputs/webhook.py): its own client, nothing lost."""

from __future__ import annotations

import asyncio
import http.server
import stat
import threading
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from sink.destination import open_destination
from sink.errors import ConfigError
from sink.hubsim import Simulator
from sink.outputs.redact import Redactor
from sink.outputs.webhook import WebhookResponses, webhook_url_problem
from sink.read.credentials import Credentials
from sink.run import RunOptions, RunSummary, run_async
from tests.outputs.support import JWT, SECRETS, lines, pat_outcome
from tests.seed import OAT as ACME_OAT


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_webhook_posts_lines_and_retries(tmp_path: Path) -> None:
    received: list[Any] = []
    answers = [503, httpx.ConnectError("refused"), 200, 200]

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if answer == 200:
            received.append(orjson.loads(request.content))
        return httpx.Response(answer)

    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    hook = WebhookResponses(
        "https://hooks.example.test/in?api_key=s3cr3t-key",
        undelivered=tmp_path / "undelivered.jsonl",
        transport=httpx.MockTransport(handler),
        secret_fields=("token",),
        sleep=sleep,
    )
    await hook.write(pat_outcome("a"))
    await hook.write(pat_outcome("b"))
    await hook.aclose()
    assert [line["keys"] for line in received] == [["a"], ["b"]]
    assert received[0]["body"]["token"] == "***"
    assert len(sleeps) == 2
    assert all(0 <= wait <= hook.backoff_cap for wait in sleeps)
    assert (hook.written, hook.undelivered, hook.summary()) == (2, 0, None)
    assert not (tmp_path / "undelivered.jsonl").exists()
    assert "s3cr3t-key" not in repr(hook)


@pytest.mark.anyio
async def test_webhook_batches_and_keeps_refused_lines_without_stopping(tmp_path: Path) -> None:
    batches: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        batches.append(orjson.loads(request.content))
        return httpx.Response(200 if len(batches) == 1 else 403)

    spill = tmp_path / "out" / "dest-responses-undelivered.jsonl"
    hook = WebhookResponses(
        "https://hooks.example.test/in?api_key=s3cr3t-key",
        undelivered=spill,
        transport=httpx.MockTransport(handler),
        batch_size=2,
    )
    await hook.write(pat_outcome("a"))
    assert batches == []
    await hook.write(pat_outcome("b"))
    await hook.flush()
    assert [line["keys"] for line in batches[0]] == [["a"], ["b"]]
    await hook.write(pat_outcome("c"))
    await hook.aclose()  # a refusal is no reason to stop the run
    assert len(batches) == 2  # a 403 is not retried
    [kept] = lines(spill)
    assert kept["keys"] == ["c"]
    assert kept["_sink_webhook_error"] == "HTTP 403"
    assert (hook.written, hook.undelivered) == (2, 1)
    summary = hook.summary()
    assert summary is not None
    assert summary.startswith("1 response line could not be delivered to the webhook")
    assert str(spill) in summary and "HTTP 403" in summary
    assert "s3cr3t-key" not in summary
    assert stat.S_IMODE(spill.stat().st_mode) == 0o600
    assert stat.S_IMODE(spill.parent.stat().st_mode) == 0o700


@pytest.mark.anyio
async def test_webhook_client_carries_no_credential_cookie_or_redirect(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(200, headers={"Set-Cookie": "session=abc123; Path=/"})
        if len(seen) == 2:
            return httpx.Response(302, headers={"Location": "https://elsewhere.example.test/"})
        return httpx.Response(204)

    hook = WebhookResponses(
        "https://hooks.example.test/in",
        undelivered=tmp_path / "undelivered.jsonl",
        transport=httpx.MockTransport(handler),
        redactor=Redactor([JWT]),
    )
    for key in ("a", "b", "c"):
        await hook.write(pat_outcome(key))
    await hook.aclose()
    assert [str(request.url) for request in seen] == ["https://hooks.example.test/in"] * 3
    for request in seen:
        assert "authorization" not in request.headers
        assert "cookie" not in request.headers
        assert request.headers["content-type"] == "application/json"
        for value in (*request.headers.values(), request.content.decode()):
            assert not any(secret in value for secret in SECRETS)
            assert "Bearer" not in value
    [kept] = lines(tmp_path / "undelivered.jsonl")
    assert kept["keys"] == ["b"]
    assert kept["_sink_webhook_error"] == "HTTP 302 (redirects are not followed)"


@pytest.mark.anyio
async def test_a_webhook_that_fails_is_given_up_on_and_nothing_is_lost(tmp_path: Path) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(orjson.loads(request.content)["keys"][0])
        raise httpx.ConnectError("connection refused")

    async def sleep(seconds: float) -> None:
        return None

    hook = WebhookResponses(
        "https://hooks.example.test/in",
        undelivered=tmp_path / "undelivered.jsonl",
        transport=httpx.MockTransport(handler),
        max_attempts=3,
        give_up_after=2,
        sleep=sleep,
    )
    keys = [f"k{i}" for i in range(6)]
    for key in keys:
        await hook.write(pat_outcome(key))
    await hook.aclose()
    assert calls == ["k0"] * 3 + ["k1"] * 3  # then the rest are not tried
    kept = lines(tmp_path / "undelivered.jsonl")
    assert [line["keys"][0] for line in kept] == keys
    assert kept[0]["_sink_webhook_error"] == "ConnectError, after 3 attempts"
    assert kept[-1]["_sink_webhook_error"].startswith("not tried: 2 deliveries in a row failed")
    assert (hook.written, hook.undelivered) == (0, 6)


@pytest.mark.anyio
async def test_a_webhook_that_never_answers_holds_nothing_for_good(tmp_path: Path) -> None:
    never = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        await never.wait()
        return httpx.Response(200)

    hook = WebhookResponses(
        "https://hooks.example.test/in",
        undelivered=tmp_path / "undelivered.jsonl",
        transport=httpx.MockTransport(handler),
        timeout=0.05,
        max_attempts=1,
    )
    await hook.write(pat_outcome("slow"))
    await hook.flush()
    [kept] = lines(tmp_path / "undelivered.jsonl")
    assert kept["_sink_webhook_error"] == "no answer within 0.05 s, after 1 attempt"
    # A queue still busy when the run ends is kept on disk after close_timeout.
    hook.timeout, hook.close_timeout = 3600.0, 0.05
    await hook.write(pat_outcome("late"))
    await hook.aclose()
    assert [line["keys"] for line in lines(tmp_path / "undelivered.jsonl")] == [["slow"], ["late"]]
    assert hook.undelivered == 2


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://hooks.example.test/in", "plain http"),
        ("https://hub.docker.com@hooks.example.test/in?key=s3cr3t-key", "user info"),
        ("https://user:pw-s3cr3t@hooks.example.test/in", "user info"),
        ("ftp://hooks.example.test/in", "https:// URL"),
    ],
)
def test_webhook_urls_are_checked(tmp_path: Path, url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        WebhookResponses(url, undelivered=tmp_path / "u.jsonl")
    assert "s3cr3t" not in str(caught.value)
    assert webhook_url_problem(url) is not None


def test_webhook_urls_to_this_machine_may_be_plain_http(tmp_path: Path) -> None:
    for url in ("http://127.0.0.1:8080/in", "http://[::1]:8080/in", "http://localhost/in"):
        assert webhook_url_problem(url) is None
    assert webhook_url_problem("https://hooks.example.test/in?key=x") is None


class Receiver:
    """A webhook on 127.0.0.1 that records what it is sent and answers ``status``."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append((dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?key=hook-s3cr3t"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_with_webhook(hub: Simulator, folder: Path, webhook: str, count: int) -> RunSummary:
    rows = [{"name": f"hooked-{i:02d}", "description": "x"} for i in range(count)]
    (folder / "records.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    config = {
        "connection": {"identifier": "acme", "secret_env": "SINK_TEST_SECRET"},
        "template": "create-repository",
        "settings": {"namespace": "acme"},
        "key_field": "name",
        "input": "records.jsonl",
        "responses": {"webhook": webhook},
    }
    (folder / "dest.yaml").write_text(yaml.safe_dump(config))
    destination = open_destination(folder / "dest.yaml", base_url=hub.url)
    credentials = Credentials(hub.url, "acme", ACME_OAT, "oat")
    return asyncio.run(run_async(destination, credentials, RunOptions(folder / "records.jsonl")))


@pytest.mark.parametrize("status", [200, 401])
def test_the_webhook_gets_no_hub_credential_and_its_401_is_not_hubs(
    hub: Simulator, tmp_path: Path, status: int
) -> None:
    hub.reset()
    with Receiver(status) as receiver:
        summary = run_with_webhook(hub, tmp_path, receiver.url, 4)
    assert summary.stopped is None
    assert (summary.counts.ok, summary.counts.failed) == (4, 0)
    exchanges = [r for r in hub.requests() if r["path"] == "/v2/auth/token"]
    assert len(exchanges) == 1  # the webhook's 401 is no reason to sign in again
    assert receiver.received
    for headers, body in receiver.received:
        assert "authorization" not in {name.lower() for name in headers}
        assert "cookie" not in {name.lower() for name in headers}
        seen = " ".join([*headers.values(), body.decode()])
        assert ACME_OAT not in seen and "dckr_" not in seen and "eyJ" not in seen
        assert "Bearer" not in seen
    spill = tmp_path / "out" / "dest-responses-undelivered.jsonl"
    if status == 200:
        assert len(receiver.received) == 4
        assert not spill.exists()
    else:
        kept = lines(spill)
        assert sorted(line["keys"][0] for line in kept) == [f"hooked-{i:02d}" for i in range(4)]
        assert {line["_sink_webhook_error"] for line in kept} >= {"HTTP 401"}
