"""Responses stream, webhook, vault and rejects: streamed, flushed, and free of secrets."""

from __future__ import annotations

import asyncio
import http.server
import os
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
from sink.model import Outcome, Record, Status, VaultEntry
from sink.outputs.files import RejectsFile, ResponsesFile, response_line
from sink.outputs.redact import Redactor, redact, redact_headers, split_secrets
from sink.outputs.vault import Vault, vault_keys
from sink.outputs.webhook import WebhookResponses, webhook_url_problem
from sink.read.credentials import Credentials
from sink.run import RunOptions, RunSummary, run_async
from tests.seed import OAT as ACME_OAT

PAT = "dckr_pat_Q3vN8kT2mL7xR5wB9cH1jF4yD6sA0gEp"
OAT = "dckr_oat_Z8bV1nM4kQ7wE2rT5yU9iO3pA6sD0fGh"
PASSWORD = "correct-horse-battery-staple"
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJvY3RvIiwiZXhwIjoxNzAwMDAwNjAwfQ."
    "c2lnbmF0dXJlLXZhbHVl"
)
SECRETS = (PAT, OAT, PASSWORD, JWT)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def pat_outcome(key: str = "k1") -> Outcome:
    entry = VaultEntry.from_body(
        (key,),
        "create-pat",
        {"uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "token_label": "ci"},
        {"token": PAT},
    )
    return Outcome(
        keys=(key,),
        status=Status.OK,
        http_status=201,
        body={"uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "token_label": "ci", "token": "***"},
        attempts=1,
        duration=0.05,
        template="create-pat",
        vault=entry,
    )


# -- redaction --------------------------------------------------------------------------------


def test_redact_replaces_secret_fields_at_any_depth_without_changing_the_input() -> None:
    body = {
        "token": PAT,
        "results": [{"token": OAT, "label": "a"}, {"nested": {"token": "x", "keep": 1}}],
        "label": "token",
    }
    redacted = redact(body, {"token"})
    assert redacted == {
        "token": "***",
        "results": [{"token": "***", "label": "a"}, {"nested": {"token": "***", "keep": 1}}],
        "label": "token",
    }
    assert body["token"] == PAT
    assert redact("plain", {"token"}) == "plain"
    assert redact(body, ()) is body


def test_secrets_are_keyed_by_path_and_blanks_skipped() -> None:
    body = {"token": PAT, "items": [{"token": OAT}, {"token": ""}]}
    assert split_secrets(body, {"token"})[1] == {"token": PAT, "items.0.token": OAT}


def test_redactor_replaces_known_secrets_and_token_shapes() -> None:
    redactor = Redactor([PASSWORD])
    text = f"login {PASSWORD} pat {PAT} oat {OAT} jwt {JWT} fine"
    assert redactor(text) == "login *** pat *** oat *** jwt *** fine"
    redactor.add("ab")  # too short to be worth replacing everywhere
    assert redactor("abc") == "abc"
    assert redactor.scrub({"k": [PASSWORD, 3]}) == {"k": ["***", 3]}
    assert PASSWORD not in repr(redactor)


def test_redact_headers_hides_the_bearer() -> None:
    shown = redact_headers([("Authorization", f"Bearer {JWT}"), ("Accept", "application/json")])
    assert shown == [("Authorization", "Bearer ***"), ("Accept", "application/json")]


def test_vault_entry_hides_its_secrets() -> None:
    entry = pat_outcome().vault
    assert PAT not in repr(entry)
    assert PAT not in str(entry)
    with pytest.raises(TypeError):
        orjson.dumps(entry)


# -- responses stream -------------------------------------------------------------------------


def test_responses_file_writes_one_flushed_line_per_request(tmp_path: Path) -> None:
    path = tmp_path / "out" / "responses.jsonl"
    responses = ResponsesFile(path, secret_fields=("token",))
    responses.write(pat_outcome())
    # Readable before close: every line reaches the OS as it is written.
    [line] = lines(path)
    assert line == {
        "keys": ["k1"],
        "template": "create-pat",
        "status": "ok",
        "http_status": 201,
        "body": {
            "uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "token_label": "ci",
            "token": "***",
        },
        "error": None,
        "duration": 0.05,
        "attempts": 1,
    }
    rejected = Outcome(
        keys=("k2",),
        status=Status.REJECTED,
        http_status=400,
        body={"message": "bad", "token": OAT},
        error="HTTP 400: bad",
        attempts=1,
        template="create-pat",
        recovered=True,
    )
    responses.write(rejected)
    responses.close()
    second = lines(path)[1]
    assert second["body"]["token"] == "***"
    assert second["extra"] == {"recovered": True}
    assert second["status"] == "rejected"


def test_responses_file_scrubs_secret_shapes_anywhere(tmp_path: Path) -> None:
    path = tmp_path / "responses.jsonl"
    redactor = Redactor([PASSWORD])
    with ResponsesFile(path, redactor=redactor) as responses:
        responses.write(
            Outcome(
                keys=("k",),
                status=Status.FAILED,
                body={"echo": f"Bearer {JWT}", "deep": [{"x": PASSWORD}]},
                error=f"failed with {PAT}",
            )
        )
    text = path.read_text()
    for secret in SECRETS:
        assert secret not in text


def test_response_line_leaves_out_the_vault_entry() -> None:
    line = response_line(pat_outcome())
    assert "extra" not in line
    assert PAT not in orjson.dumps(line).decode()


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


# -- vault ------------------------------------------------------------------------------------


def test_vault_is_created_0600_and_fsyncs_each_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[tuple[int, int]] = []
    real_fsync = os.fsync
    path = tmp_path / "vault.jsonl"

    def recording_fsync(fd: int) -> None:
        # What is on disk when fsync is called must already hold the new line.
        synced.append((fd, path.read_bytes().count(b"\n") if path.exists() else -1))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    previous = os.umask(0)  # the most permissive umask: 0600 must still hold
    try:
        vault = Vault(path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    synced.clear()  # the directory fsync at creation
    vault.write(pat_outcome("k1").vault)
    assert synced[-1][1] == 1
    vault.write(pat_outcome("k2").vault)
    assert synced[-1][1] == 2
    assert len(synced) == 2
    vault.close()
    first = lines(path)[0]
    assert first["key"] == "k1"
    assert first["template"] == "create-pat"
    assert first["token_id"] == "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    assert first["label"] == "ci"
    assert first["token"] == PAT
    assert vault.count == 2


def test_vault_narrows_a_wider_mode_and_counts_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "vault.jsonl"
    path.write_text('{"key":"old","token":"x"}\n')
    path.chmod(0o644)
    with Vault(path) as vault:
        assert vault.mode_fixed
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert vault.count == 1
        vault.write({"key": "new", "token": "y"})
        assert vault.count == 2
        assert vault.written == 1
    assert [line["key"] for line in lines(path)] == ["old", "new"]


def test_vault_refuses_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.jsonl"
    target.write_text("")
    link = tmp_path / "vault.jsonl"
    link.symlink_to(target)
    with pytest.raises(ConfigError, match="vault"):
        Vault(link)


def vault_refusal(path: Path) -> str:
    """The ConfigError Vault(path) raises, from a thread: a FIFO must not hang the test run."""
    caught: list[BaseException] = []

    def attempt() -> None:
        try:
            Vault(path).close()
        except BaseException as exc:
            caught.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(60)  # not a timing assertion: a blocked open never returns at all
    assert not worker.is_alive(), f"opening the vault {path} blocked"
    [error] = caught
    assert isinstance(error, ConfigError), repr(error)
    return str(error)


def test_a_vault_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "vault.jsonl").mkdir()
    assert "is a directory" in vault_refusal(tmp_path / "vault.jsonl")


def test_a_vault_that_is_a_symlink_is_refused_even_dangling(tmp_path: Path) -> None:
    (tmp_path / "vault.jsonl").symlink_to(tmp_path / "not-there.jsonl")
    assert "symbolic link" in vault_refusal(tmp_path / "vault.jsonl")
    assert not (tmp_path / "not-there.jsonl").exists()


def test_a_vault_that_is_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "vault.jsonl")
    assert "FIFO" in vault_refusal(tmp_path / "vault.jsonl")
    with pytest.raises(ConfigError, match="FIFO"):
        vault_keys(tmp_path / "vault.jsonl")  # reading it would block as well


@pytest.mark.parametrize("under", ["file/vault.jsonl", "file/deeper/vault.jsonl"])
def test_a_vault_under_a_regular_file_is_refused(tmp_path: Path, under: str) -> None:
    (tmp_path / "file").write_text("not a folder")
    message = vault_refusal(tmp_path / under)
    assert f"{tmp_path / 'file'} is a file, not a folder" in message


def test_an_unwritable_vault_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root writes anywhere: sysfs refuses new files even to root
        target = Path("/sys/sink-test-no-such-folder/vault.jsonl")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "out" / "vault.jsonl"
    assert "the secrets vault" in vault_refusal(target)


def test_the_vault_is_locked_while_it_is_open(tmp_path: Path) -> None:
    path = tmp_path / "vault.jsonl"
    with Vault.open(path) as vault:
        assert vault.locked
        with pytest.raises(ConfigError, match="in use by another sink process"):
            Vault(path)
        vault.write(pat_outcome("k1").vault)
        assert vault.keys() == frozenset({"k1"})
    with Vault(path) as again:  # closing released it
        assert again.count == 1
        assert again.keys() == vault_keys(path) == frozenset({"k1"})


def test_a_new_vault_folder_is_private(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        Vault(tmp_path / "a" / "b" / "vault.jsonl").close()
    finally:
        os.umask(previous)
    for folder in (tmp_path / "a", tmp_path / "a" / "b"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


# -- every output is private ------------------------------------------------------------------


def test_responses_and_rejects_are_private_whatever_the_umask(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    previous = os.umask(0)
    try:
        responses = ResponsesFile(tmp_path / "out" / "responses.jsonl", append=True)
        rejects = RejectsFile(tmp_path / "out" / "sub" / "rejects.jsonl")
    finally:
        os.umask(previous)
    responses.write(pat_outcome())
    rejects.write({"email": "alice@example.com"}, "bad", 400)
    responses.close()
    rejects.close()
    for path in (tmp_path / "out" / "responses.jsonl", tmp_path / "out" / "sub" / "rejects.jsonl"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for folder in (tmp_path / "out", tmp_path / "out" / "sub"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755  # not ours: left as it was
    assert not responses.mode_fixed and not rejects.mode_fixed


def test_an_existing_wider_output_file_is_narrowed(tmp_path: Path) -> None:
    for name in ("responses.jsonl", "rejects.jsonl"):
        (tmp_path / name).write_text("")
        (tmp_path / name).chmod(0o644)
    responses = ResponsesFile(tmp_path / "responses.jsonl", append=True)
    rejects = RejectsFile(tmp_path / "rejects.jsonl")
    assert responses.mode_fixed and rejects.mode_fixed
    responses.close()
    rejects.close()
    for name in ("responses.jsonl", "rejects.jsonl"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


@pytest.mark.parametrize("kind", ["directory", "symlink", "fifo", "under-file"])
def test_output_files_refuse_what_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "responses.jsonl"
    if kind == "directory":
        path.mkdir()
    elif kind == "symlink":
        (tmp_path / "elsewhere").write_text("")
        path.symlink_to(tmp_path / "elsewhere")
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        (tmp_path / "file").write_text("")
        path = tmp_path / "file" / "responses.jsonl"
    with pytest.raises(ConfigError, match="the responses file"):
        ResponsesFile(path)
    with pytest.raises(ConfigError, match="the rejects file"):
        RejectsFile(path)
    with pytest.raises(ConfigError, match="undelivered"):
        WebhookResponses("https://hooks.example.test/in", undelivered=path)


# -- rejects ----------------------------------------------------------------------------------


def test_rejects_are_the_records_as_they_came_plus_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "rejects.jsonl"
    original = {"name": "Bad Name", "description": "x", "is_private": "true"}
    with RejectsFile(path, redactor=Redactor([PASSWORD])) as rejects:
        rejects.write(Record(index=4, data=original, key="abc"), "HTTP 400: invalid name", 400)
        rejects.write({"name": "y"}, f"failed: {PASSWORD}", None, index=9)
    first, second = lines(path)
    assert first["_sink_error"] == "HTTP 400: invalid name"
    assert first["_sink_status"] == 400
    assert first["_sink_index"] == 4
    assert first["_sink_key"] == "abc"
    replayed = {k: v for k, v in first.items() if not k.startswith("_sink_")}
    assert replayed == original
    assert second["_sink_error"] == "failed: ***"
    assert second["_sink_index"] == 9


def test_rejecting_a_replayed_record_replaces_the_old_reason(tmp_path: Path) -> None:
    path = tmp_path / "rejects.jsonl"
    replayed = {"name": "y", "_sink_error": "old", "_sink_status": 500, "_sink_index": 1}
    with RejectsFile(path) as rejects:
        rejects.write(Record(index=0, data=replayed), "new reason", 404)
    [line] = lines(path)
    assert line == {"name": "y", "_sink_error": "new reason", "_sink_status": 404, "_sink_index": 0}


def test_rejects_keep_values_json_cannot_hold_natively(tmp_path: Path) -> None:
    import decimal

    path = tmp_path / "rejects.jsonl"
    with RejectsFile(path) as rejects:
        rejects.write({"price": decimal.Decimal("1.50")}, "bad", 400)
    assert lines(path)[0]["price"] == "1.50"


# -- nothing secret anywhere ------------------------------------------------------------------


@pytest.mark.anyio
async def test_no_secret_reaches_any_output_but_the_vault(tmp_path: Path) -> None:
    redactor = Redactor([PASSWORD, JWT])
    responses = ResponsesFile(
        tmp_path / "responses.jsonl", secret_fields=("token",), redactor=redactor
    )
    rejects = RejectsFile(tmp_path / "rejects.jsonl", redactor=redactor)
    vault = Vault(tmp_path / "vault.jsonl")
    posted: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append(request.content)
        return httpx.Response(200)

    outcomes = [
        pat_outcome("k1"),
        Outcome(
            keys=("k2",),
            status=Status.REJECTED,
            http_status=401,
            body={"message": f"bad secret {PASSWORD}", "token": OAT},
            error=f"refused Bearer {JWT}",
        ),
    ]
    hook = WebhookResponses(
        "https://hooks.example.test/x",
        undelivered=tmp_path / "undelivered.jsonl",
        transport=httpx.MockTransport(handler),
        redactor=redactor,
    )
    for outcome in outcomes:
        responses.write(outcome)
        await hook.write(outcome)
        entry = outcome.vault
        if entry is not None:
            vault.write(entry)
        else:
            rejects.write({"name": "n"}, outcome.error or "", outcome.http_status)
    await hook.aclose()
    assert len(posted) == 2
    responses.close()
    rejects.close()
    vault.close()
    scanned = {
        "responses": (tmp_path / "responses.jsonl").read_text(),
        "rejects": (tmp_path / "rejects.jsonl").read_text(),
        "webhook": b"".join(posted).decode(),
    }
    for name, text in scanned.items():
        for secret in SECRETS:
            assert secret not in text, f"a secret leaked into {name}"
    assert PAT in (tmp_path / "vault.jsonl").read_text()
    await asyncio.sleep(0)


def test_a_rejected_record_is_written_as_it_came_in_with_its_excluded_columns(
    tmp_path: Path,
) -> None:
    from sink.pipeline import prepare

    rows = [Record(4, {"name": "Bad_Name", "owner": "ann", "note": "keep me"})]
    [record] = prepare(rows, exclude=["owner", "note"], key_field="name")
    assert isinstance(record, Record) and record.data == {"name": "Bad_Name"}
    with RejectsFile(tmp_path / "rejects.jsonl") as rejects:
        rejects.write(record, "invalid name", 400)
    [line] = [orjson.loads(text) for text in (tmp_path / "rejects.jsonl").read_bytes().splitlines()]
    assert line == {
        "name": "Bad_Name",
        "owner": "ann",
        "note": "keep me",
        "_sink_error": "invalid name",
        "_sink_status": 400,
        "_sink_index": 4,
        "_sink_key": "Bad_Name",
    }


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


class _NoResponses:
    written = 0

    def write(self, outcome: Outcome) -> None:
        raise AssertionError("no outcome expected")
