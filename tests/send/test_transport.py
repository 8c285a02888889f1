"""sink.send.transport: HubTransport beside httpx's own transport against servers of other projects
(uvicorn with h11 and httptools, hypercorn plain and TLS with h2 offered, nginx plain and TLS),
and against raw loopback servers for what real servers do not send: smuggling-shaped framing,
trickled responses (the total deadline), oversized bodies (the size cap), stale keep-alives."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gzip
import ipaddress
import os
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httptools
import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import sink.send.transport as transport_module
from sink.send.classify import may_have_arrived
from sink.send.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    HubTransport,
    ResponseTooLarge,
    make_client,
)

ALICE_PAT = "dckr_pat_FvTMFWrwCWop3eZI7ZJnPH49XBd"  # tests/seed.py's fake PAT
# Headers that differ between two exchanges by nature, not by transport.
VARYING = {"date", "x-client-port"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- a self-signed certificate for 127.0.0.1 ---------------------------------------------------


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sink test server")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def trusting(cert_path: Path, alpn: list[str] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert_path))
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


# -- an ASGI app for uvicorn and hypercorn -----------------------------------------------------

JSON = {"name": "app", "tags": ["a", "b"], "text": "gr\u00fc\u00dfe \u2713"}
BIG = b"".join(b"%07d sink transport line\n" % n for n in range(40_000))  # ~1.2 MB


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    query = parse_qs(scope["query_string"].decode())
    port = str(scope["client"][1]).encode()

    async def reply(status: int, headers: list[tuple[bytes, bytes]], *parts: bytes) -> None:
        headers = [*headers, (b"x-client-port", port)]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if not parts:
            parts = (b"",)
        for n, part in enumerate(parts):
            await send(
                {"type": "http.response.body", "body": part, "more_body": n < len(parts) - 1}
            )

    json_type = (b"content-type", b"application/json")
    if path == "/json":
        data = orjson.dumps(JSON)
        await reply(200, [json_type, (b"content-length", b"%d" % len(data))], data)
    elif path == "/chunked":
        await reply(200, [json_type], b'{"parts":', b"[1,2,", b"3]}")
    elif path == "/gzip":
        data = gzip.compress(orjson.dumps(JSON))
        await reply(
            200,
            [json_type, (b"content-encoding", b"gzip"), (b"content-length", b"%d" % len(data))],
            data,
        )
    elif path == "/gzip-chunked":
        data = gzip.compress(BIG)
        third = len(data) // 3
        await reply(
            200,
            [(b"content-type", b"text/plain"), (b"content-encoding", b"gzip")],
            data[:third],
            data[third : 2 * third],
            data[2 * third :],
        )
    elif path == "/empty":
        await reply(204, [])
    elif path == "/empty-200":
        await reply(200, [(b"content-length", b"0")])
    elif path == "/notmod":
        await reply(304, [(b"etag", b'"v1"')])
    elif path == "/close":
        await reply(200, [(b"connection", b"close"), (b"content-type", b"text/plain")], b"bye")
    elif path == "/big":
        await reply(200, [(b"content-length", b"%d" % len(BIG))], BIG)
    elif path == "/big-chunked":
        step = len(BIG) // 16 + 1
        await reply(200, [], *(BIG[i : i + step] for i in range(0, len(BIG), step)))
    elif path == "/status":
        code = int(query["code"][0])
        await reply(code, [(b"content-type", b"text/plain")], b"status %d" % code)
    elif path == "/headers":
        await reply(
            200,
            [(b"x-dup", b"one"), (b"x-dup", b"two"), (b"x-spaces", b"a  b"), json_type],
            b"{}",
        )
    elif path == "/echo":
        wanted = {
            b"authorization",
            b"content-length",
            b"content-type",
            b"transfer-encoding",
            b"user-agent",
            b"accept-encoding",
            b"host",
            b"x-custom",
        }
        seen = [[k.decode(), v.decode()] for k, v in scope["headers"] if k in wanted]
        data = orjson.dumps(
            {
                "method": scope["method"],
                "path": scope["raw_path"].decode(),
                "query": scope["query_string"].decode(),
                "headers": seen,
                "body": body.decode("latin-1"),
            }
        )
        await reply(200, [json_type], data)
    else:
        await reply(404, [(b"content-type", b"text/plain")], b"not here")


async def streamed(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


Case = tuple[str, str, Callable[[], dict[str, Any]]]

ASGI_CASES: list[Case] = [
    ("GET", "/json", dict),
    ("HEAD", "/json", dict),
    ("GET", "/chunked", dict),
    ("HEAD", "/chunked", dict),  # a chunked HEAD: the next response must still parse
    ("GET", "/gzip", dict),
    ("GET", "/gzip-chunked", dict),
    ("GET", "/empty", dict),
    ("DELETE", "/empty", dict),
    ("GET", "/empty-200", dict),
    ("GET", "/notmod", lambda: {"headers": {"If-None-Match": '"v1"'}}),
    ("GET", "/close", dict),
    ("GET", "/json", dict),
    ("POST", "/echo", lambda: {"json": {"name": "app-1", "é": "ü"}}),
    ("PUT", "/echo", lambda: {"content": b"raw \x00\xff bytes", "headers": {"X-Custom": "v"}}),
    ("POST", "/echo", lambda: {"content": streamed([b"streamed ", b"", b"body"])}),
    ("PATCH", "/echo", lambda: {"content": streamed([])}),
    ("GET", "/echo?q=1&x=%2F&y=a+b", dict),
    ("OPTIONS", "/echo", dict),
    ("GET", "/big", dict),
    ("GET", "/big-chunked", dict),
    ("GET", "/status?code=404", dict),
    ("GET", "/status?code=500", dict),
    ("POST", "/status?code=201", lambda: {"json": {}}),
    ("GET", "/headers", dict),
]


class ThreadServer:
    """A server of another project in its own thread and event loop, on a socket we bound."""

    def __init__(self, serve: Callable[[socket.socket, asyncio.Event], Awaitable[Any]]) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._serve = serve
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self._serve(self.sock, self._stop)

        asyncio.run(main())

    def __enter__(self) -> ThreadServer:
        self._thread.start()
        self._ready.wait(10)
        wait_for_port(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        with contextlib.suppress(OSError):
            self.sock.close()  # uvicorn closes it on shutdown


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def uvicorn_server(http: str) -> ThreadServer:
    import uvicorn

    async def serve(sock: socket.socket, stop: asyncio.Event) -> None:
        config = uvicorn.Config(
            app, http=http, lifespan="off", log_config=None, log_level="error", access_log=False
        )
        server = uvicorn.Server(config)
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        await stop.wait()
        server.should_exit = True
        await task

    return ThreadServer(serve)


def hypercorn_server(cert: tuple[Path, Path] | None) -> ThreadServer:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    async def serve(sock: socket.socket, stop: asyncio.Event) -> None:
        config = Config()
        config.bind = [f"fd://{sock.fileno()}"]
        config.accesslog = None
        config.errorlog = None
        if cert is not None:
            config.certfile, config.keyfile = str(cert[0]), str(cert[1])
            config.alpn_protocols = ["h2", "http/1.1"]  # h2 offered: the client must not get it
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    return ThreadServer(serve)


@pytest.fixture(scope="module")
def asgi_servers(cert: tuple[Path, Path]) -> Iterator[dict[str, str]]:
    pytest.importorskip(
        "hypercorn", reason="hypercorn is in the test extras: pip install -e .[test]"
    )
    servers = {
        "uvicorn-h11": (uvicorn_server("h11"), "http"),
        "uvicorn-httptools": (uvicorn_server("httptools"), "http"),
        "hypercorn": (hypercorn_server(None), "http"),
        "hypercorn-tls-h2": (hypercorn_server(cert), "https"),
    }
    urls = {}
    for name, (server, scheme) in servers.items():
        server.__enter__()
        urls[name] = f"{scheme}://127.0.0.1:{server.port}"
    yield urls
    for server, _ in servers.values():
        server.__exit__()


# -- nginx from Debian's packages ---------------------------------------------------------------

NGINX_DATA = orjson.dumps({"items": [{"n": n, "name": f"repo-{n}"} for n in range(200)]})


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def nginx(cert: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    binary = find_nginx()
    if binary is None:
        pytest.skip("nginx is not installed here (apt-get install nginx; .ci/run installs it)")
    folder = tmp_path_factory.mktemp("nginx")
    www = folder / "www"
    www.mkdir()
    (www / "data.json").write_bytes(NGINX_DATA)
    (www / "big.txt").write_bytes(BIG)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / sub).mkdir()
    plain, tls, short = free_port(), free_port(), free_port()
    conf = folder / "nginx.conf"
    conf.write_text(
        f"""
daemon off;
master_process off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 128; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    types {{ application/json json; text/plain txt; }}
    default_type application/octet-stream;
    keepalive_timeout 30s;
    gzip on;
    gzip_min_length 1;
    gzip_types application/json text/plain;
    if_modified_since before;
    add_header X-Client-Port $remote_port always;
    server {{
        listen 127.0.0.1:{plain};
        listen 127.0.0.1:{tls} ssl;
        ssl_certificate {cert[0]};
        ssl_certificate_key {cert[1]};
        root {www};
        location /static/ {{ alias {www}/; }}
        location /plain/ {{ alias {www}/; gzip off; }}
        location /noclen/ {{ alias {www}/; chunked_transfer_encoding off; }}
        location = /close {{ keepalive_timeout 0; return 200 "bye\\n"; }}
        location = /empty {{ return 204; }}
        location = /notmod {{ return 304; }}
        location = /echo {{
            default_type text/plain;
            set $lengths "[$http_content_length] [$http_transfer_encoding]";
            return 200 "$request_method $request_uri $lengths [$content_type]\\n";
        }}
    }}
    server {{
        listen 127.0.0.1:{short};
        keepalive_timeout 250ms;
        keepalive_requests 3;
        location / {{ default_type text/plain; return 200 "short\\n"; }}
    }}
}}
"""
    )
    process = subprocess.Popen(
        [binary, "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for port in (plain, tls, short):
            try:
                wait_for_port(port)
            except OSError:
                process.kill()
                _, err = process.communicate()
                pytest.fail(f"nginx did not start: {err.decode(errors='replace')[-2000:]}")
        yield type(
            "Nginx",
            (),
            {
                "plain": f"http://127.0.0.1:{plain}",
                "tls": f"https://127.0.0.1:{tls}",
                "short": f"http://127.0.0.1:{short}",
            },
        )
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


NGINX_CASES: list[Case] = [
    ("GET", "/static/data.json", dict),  # gzip on the fly: chunked
    ("HEAD", "/static/data.json", dict),
    ("GET", "/plain/data.json", dict),  # Content-Length
    ("HEAD", "/plain/big.txt", dict),
    ("GET", "/plain/big.txt", dict),
    ("GET", "/static/big.txt", dict),
    (
        "GET",
        "/plain/data.json",
        lambda: {"headers": {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}},
    ),  # 304 from a static file
    ("GET", "/empty", dict),
    ("GET", "/notmod", dict),
    ("GET", "/close", dict),  # Connection: close
    ("GET", "/plain/data.json", dict),
    ("GET", "/noclen/data.json", dict),  # no Content-Length, not chunked: ends with the close
    ("GET", "/plain/data.json", dict),
    ("GET", "/noclen/big.txt", dict),
    ("POST", "/echo?x=1", lambda: {"json": {"name": "app"}}),
    ("POST", "/echo", lambda: {"content": streamed([b"a chunked ", b"request body"])}),
    ("DELETE", "/echo", dict),
    ("POST", "/plain/data.json", lambda: {"content": b"x" * 3000}),  # 405 from a static file
    ("GET", "/missing", dict),
    ("GET", "/static/data.json", lambda: {"headers": {"Accept-Encoding": "identity"}}),
]


# -- the differential harness -------------------------------------------------------------------


def view(response: httpx.Response) -> tuple[Any, ...]:
    headers = sorted(
        (k.lower(), v) for k, v in response.headers.multi_items() if k.lower() not in VARYING
    )
    return (
        response.status_code,
        response.reason_phrase,
        response.http_version,
        headers,
        response.content,
    )


def clients(verify: ssl.SSLContext | bool = True) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    def client(transport: httpx.AsyncBaseTransport) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=transport,
            timeout=10.0,
            follow_redirects=False,
            headers={"User-Agent": "sink-test/1"},
        )

    return (
        client(HubTransport(verify=verify)),
        client(httpx.AsyncHTTPTransport(verify=verify)),
    )


async def differ(
    url: str, cases: list[Case], verify: ssl.SSLContext | bool = True
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Each case through both transports on kept-alive clients; the differences found, and
    HubTransport's views. Which responses came on a fresh connection must match as well."""
    differences = []
    views = []
    ours, theirs = clients(verify)
    ports: dict[str, list[str]] = {"ours": [], "theirs": []}
    async with ours, theirs:
        for method, path, kwargs in cases:
            got = await ours.request(method, url + path, **kwargs())
            want = await theirs.request(method, url + path, **kwargs())
            ports["ours"].append(got.headers.get("x-client-port", ""))
            ports["theirs"].append(want.headers.get("x-client-port", ""))
            views.append(view(got))
            if view(got) != view(want):
                differences.append(f"{method} {path}: {view(got)!r:.600}\n  != {view(want)!r:.600}")

    def fresh(seq: list[str]) -> list[bool]:
        return [n == 0 or seq[n] != seq[n - 1] for n in range(len(seq))]

    if fresh(ports["ours"]) != fresh(ports["theirs"]):
        differences.append(
            f"new connections at {fresh(ports['ours'])}, httpx's at {fresh(ports['theirs'])}"
        )
    return differences, views


@pytest.mark.anyio
@pytest.mark.parametrize(
    "name", ["uvicorn-h11", "uvicorn-httptools", "hypercorn", "hypercorn-tls-h2"]
)
async def test_same_answers_as_httpx_from_asgi_servers(
    name: str, asgi_servers: dict[str, str], cert: tuple[Path, Path]
) -> None:
    # The client's own context offers h2 (as a caller's might): the transport must still
    # negotiate HTTP/1.1 with hypercorn, which would pick h2.
    verify = trusting(cert[0], alpn=["h2", "http/1.1"])
    differences, views = await differ(asgi_servers[name], ASGI_CASES, verify)
    assert differences == []
    by_case = dict(zip([(m, p) for m, p, _ in ASGI_CASES], views, strict=False))
    assert all(v[2] == "HTTP/1.1" for v in views)
    assert orjson.loads(by_case[("GET", "/json")][4]) == JSON
    assert by_case[("HEAD", "/chunked")][4] == b""
    assert by_case[("GET", "/gzip-chunked")][4] == BIG
    assert by_case[("GET", "/big-chunked")][4] == BIG
    assert by_case[("GET", "/notmod")][0] == 304
    echoes = [
        orjson.loads(v[4])
        for (_, p, _), v in zip(ASGI_CASES, views, strict=True)
        if p.startswith("/echo")
    ]
    assert [e["method"] for e in echoes] == ["POST", "PUT", "POST", "PATCH", "GET", "OPTIONS"]
    assert orjson.loads(echoes[0]["body"].encode("latin-1")) == {"name": "app-1", "é": "ü"}
    assert [e["body"] for e in echoes[1:]] == ["raw \x00\xff bytes", "streamed body", "", "", ""]
    assert echoes[4]["path"] == "/echo" and echoes[4]["query"] == "q=1&x=%2F&y=a+b"


@pytest.mark.anyio
@pytest.mark.parametrize("scheme", ["plain", "tls"])
async def test_same_answers_as_httpx_from_nginx(
    scheme: str, nginx: Any, cert: tuple[Path, Path]
) -> None:
    url = getattr(nginx, scheme)
    differences, views = await differ(url, NGINX_CASES, trusting(cert[0]))
    assert differences == []
    statuses = [v[0] for v in views]
    assert statuses == [200] * 6 + [304, 204, 304] + [200] * 8 + [405, 404, 200]
    by_case = {
        (m, p, n): v for n, ((m, p, _), v) in enumerate(zip(NGINX_CASES, views, strict=True))
    }
    gzipped = by_case[("GET", "/static/data.json", 0)]
    assert ("content-encoding", "gzip") in gzipped[3]
    assert ("transfer-encoding", "chunked") in gzipped[3]
    assert gzipped[4] == NGINX_DATA
    close_delimited = by_case[("GET", "/noclen/big.txt", 13)]
    assert not any(k in ("content-length", "transfer-encoding") for k, _ in close_delimited[3])
    assert close_delimited[4] == BIG
    assert by_case[("HEAD", "/static/data.json", 1)][4] == b""
    assert by_case[("POST", "/echo", 15)][4] == b"POST /echo [] [chunked] []\n"
    assert by_case[("POST", "/echo?x=1", 14)][4] == b"POST /echo?x=1 [14] [] [application/json]\n"


@pytest.mark.anyio
async def test_nginx_closing_kept_alive_connections_costs_no_request(nginx: Any) -> None:
    # keepalive_requests 3: the third answer says Connection: close. keepalive_timeout 250ms:
    # nginx closes an idle connection; once while the client's loop is blocked, so the close
    # is still unread in the socket when the next request goes out.
    async def sequence(client: httpx.AsyncClient) -> list[tuple[int, str]]:
        seen = []
        for n in range(8):
            if n == 4:
                await asyncio.sleep(0.7)
            if n == 6:
                time.sleep(0.7)  # blocks the loop: the FIN waits in the socket, unseen
            response = (
                await client.post(nginx.short, content=b"x")
                if n % 2
                else (await client.get(nginx.short))
            )
            seen.append((response.status_code, response.headers["x-client-port"]))
        return seen

    ours, theirs = clients()
    async with ours, theirs:
        got = await sequence(ours)
        want = await sequence(theirs)

    def pattern(seen: list[tuple[int, str]]) -> list[Any]:
        return [(s, n == 0 or p != seen[n - 1][1]) for n, (s, p) in enumerate(seen)]

    assert pattern(got) == pattern(want)
    assert [fresh for _, fresh in pattern(got)] == [
        True,
        False,
        False,
        True,
        True,
        False,
        True,
        False,
    ]


# -- raw servers: bytes chosen per request ------------------------------------------------------

Answer = Callable[[int, bytes, bytes], Any]


class RawServer:
    """An asyncio loopback server; ``answer(connection number, head, body)`` gives the bytes
    to send: bytes, a list of bytes/"CLOSE"/float (a pause), or an async generator."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[tuple[int, bytes, bytes]] = []
        self.sent = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self.tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in self.tasks:
            task.cancel()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.connections += 1
        number = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                self.requests.append((number, head, body))
                answer = self.answer(number, head, body)
                if answer is None:  # drop the connection without a word
                    break
                if isinstance(answer, bytes):
                    answer = [answer]
                if isinstance(answer, list):
                    answer = streamed(answer)  # type: ignore[arg-type]
                async for part in answer:
                    if part == b"CLOSE":
                        return
                    if isinstance(part, float):
                        await asyncio.sleep(part)
                        continue
                    writer.write(part)
                    self.sent += len(part)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self.tasks.discard(task)


def ok(body: bytes = b'{"ok":true}', extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
        % (len(body), extra, body)
    )


def always(answer: Any) -> Answer:
    return lambda number, head, body: answer


# -- framing: what request-smuggling-aware parsers refuse --------------------------------------

REFUSED = {
    "chunked and Content-Length": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "Content-Length and chunked": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "conflicting lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
    b"hello!",
    "a length list": b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
    "a signed length": b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
    "a coding before chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    b"0\r\n\r\n",
    "not quite chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "chunked twice": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "space before the colon": b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello",
    "a folded header": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n Content-Length: 5\r\n\r\nhello",
    "a bare LF": b"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 5\r\n\r\nhello",
    "a NUL": b"HTTP/1.1 200 OK\r\nX-A: \x00\r\nContent-Length: 5\r\n\r\nhello",
    "a hex-prefixed chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0x5\r\nhello\r\n0\r\n\r\n",
    "a negative chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"-5\r\nhello\r\n0\r\n\r\n",
    "chunk data overrunning its size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nhello\r\n0\r\n\r\n",
    "a malformed trailer": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\nnot a header\r\n\r\n",
    "a two-digit status": b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
    "a five-digit status": b"HTTP/1.1 20000 OK\r\nContent-Length: 0\r\n\r\n",
    "an unknown version": b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    "an unasked upgrade": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n" + ok(),
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", list(REFUSED))
async def test_ambiguous_framing_is_refused_and_the_connection_dropped(case: str) -> None:
    def answer(number: int, head: bytes, body: bytes) -> bytes:
        return REFUSED[case] if number == 1 else ok()

    async with RawServer(answer) as server, make_client(server.url, None, timeout=5.0) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/v2/x")
        assert (await client.get("/v2/x")).json() == {"ok": True}
    assert server.connections == 2


@pytest.mark.anyio
async def test_chunk_extensions_trailers_and_interim_answers_parse_as_httpx_does() -> None:
    answers = [
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n"
        b'Content-Type: text/plain\r\n\r\n4;name=value;other\r\nwiki\r\n5;x="q"\r\npedia\r\n'
        b"0;last\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n00000A\r\n0123456789\r\n0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nhi",
        b"HTTP/1.1 200 \r\nContent-Length: 2\r\nX-Empty:\r\n\r\nno",
        b"HTTP/1.1 299 Whatever It Says\r\nContent-Length: 3\r\nConnection: Keep-Alive, Foo\r\n"
        b"\r\nabc",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end",
    ]
    got, want = [], []
    for answer in answers:
        # HTTP/1.0 without a length: the body ends with the connection
        parts = (
            [answer, b"CLOSE"] if b"Length" not in answer and b"hunked" not in answer else [answer]
        )
        for results, transport in (
            (got, HubTransport()),
            (want, httpx.AsyncHTTPTransport()),
        ):
            async with (
                RawServer(always(parts)) as server,
                httpx.AsyncClient(transport=transport, timeout=5.0) as client,
            ):
                first = await client.get(server.url + "/x")
                second = await client.get(server.url + "/x")
                results.append((view(first), view(second), server.connections))
    assert got == want
    assert got[0][0][4] == b"wikipedia"
    assert got[1][0][4] == b"0123456789"
    assert [connections for _, _, connections in got] == [1, 1, 2, 1, 1, 1, 2]


# -- the parser: llhttp (httptools), and what sink checks itself -------------------------------

# The REFUSED cases llhttp (strict, as sink runs it) accepts on its own: sink refuses these itself.
LLHTTP_ACCEPTS = {
    "a coding before chunked",
    "not quite chunked",
    "chunked twice",
    "an unknown version",
}


class Events:
    """A bare httptools callback object: whether a whole response was parsed."""

    def __init__(self) -> None:
        self.complete = False

    def on_message_complete(self) -> None:
        self.complete = True


def test_llhttp_alone_refuses_all_but_the_cases_sink_checks_itself() -> None:
    accepted = set()
    for case, data in REFUSED.items():
        events = Events()
        try:
            httptools.HttpResponseParser(events).feed_data(data)
        except httptools.HttpParserError:
            continue
        accepted.add(case)
    # "not quite chunked" is read to the close by llhttp: no error, and never complete
    assert accepted == LLHTTP_ACCEPTS


@pytest.mark.anyio
@pytest.mark.parametrize(
    "case",
    [
        "chunked and Content-Length",
        "Content-Length and chunked",
        "a coding before chunked",
        "not quite chunked",
        "chunked twice",
    ],
)
async def test_framing_is_refused_even_by_a_lenient_llhttp(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # llhttp's leniencies would read Transfer-Encoding beside Content-Length as chunked: sink's
    # own checks do not depend on llhttp being strict.
    strict = httptools.HttpResponseParser

    def lenient(protocol: Any) -> Any:
        parser = strict(protocol)
        parser.set_dangerous_leniencies(lenient_chunked_length=True, lenient_transfer_encoding=True)
        return parser

    monkeypatch.setattr(transport_module.httptools, "HttpResponseParser", lenient)

    def answer(number: int, head: bytes, body: bytes) -> bytes:
        return REFUSED[case] if number == 1 else ok()

    async with RawServer(answer) as server, make_client(server.url, None, timeout=5.0) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/v2/x")
        assert (await client.get("/v2/x")).json() == {"ok": True}
    assert server.connections == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n: no name\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/0.9 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 099 Early\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
    ],
    ids=["control", "DEL", "bare CR", "no name", "HTTP/0.9", "status 099", "no CRLF", "size OWS"],
)
async def test_a_head_or_chunk_line_outside_the_grammar_is_refused(head: bytes) -> None:
    # Stricter than h11 for control bytes in a value, HTTP/0.9 and a space after a chunk size
    # (llhttp, as Node.js parses): none is anything Hub or a proxy in front of it sends.
    def answer(number: int, request: bytes, body: bytes) -> bytes:
        return head if number == 1 else ok()

    async with RawServer(answer) as server, make_client(server.url, None, timeout=5.0) as client:
        with pytest.raises(httpx.RemoteProtocolError, match="malformed"):
            await client.get("/v2/x")
        assert (await client.get("/v2/x")).json() == {"ok": True}
    assert server.connections == 2


@pytest.mark.anyio
async def test_a_response_split_anywhere_parses_the_same() -> None:
    whole = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
        b"X-Long: " + b"v" * 3000 + b"\r\n\r\n4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\n"
        b"X-Trailer: t\r\n\r\n"
    )
    for size in (1, 7, 500):
        parts: list[Any] = []
        for n in range(0, len(whole), size):
            parts += [whole[n : n + size], 0.0]
        async with (
            RawServer(lambda n, h, b, parts=parts: streamed(parts) if n == 1 else ok()) as server,
            make_client(server.url, None, timeout=10.0) as client,
        ):
            for _ in range(2):  # the same answer twice, on one connection
                response = await client.get("/v2/x")
                assert response.content == b"wikipedia"
                assert response.headers["x-long"] == "v" * 3000
                assert "x-trailer" not in response.headers
        assert server.connections == 1


@pytest.mark.anyio
@pytest.mark.parametrize("split", [False, True])
async def test_a_repeated_equal_length_is_kept_once_and_unequal_ones_refused(split: bool) -> None:
    # llhttp refuses any repeat; h11 (so httpx) keeps an equal one once: sink parses it again
    def parts(head: bytes, body: bytes) -> list[Any]:
        whole = head + body
        return [whole[:40], 0.02, whole[40:60], 0.02, whole[60:]] if split else [whole]

    equal = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
        b"X-A: 1\r\ncontent-length:  3\r\n\r\n"
    )
    async with (
        RawServer(always(parts(equal, b"abc"))) as server,
        make_client(server.url, None, timeout=5.0) as client,
    ):
        first = await client.get("/v2/x")
        assert first.content == b"abc"
        assert first.headers.get_list("content-length") == ["3"]
        assert first.headers["x-a"] == "1"
        assert (await client.get("/v2/x")).content == b"abc"
    assert server.connections == 1
    unequal = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: 1\r\nContent-Length: 4\r\n\r\n"
    async with (
        RawServer(always(parts(unequal, b"abcd"))) as server,
        make_client(server.url, None, timeout=5.0) as client,
    ):
        with pytest.raises(httpx.RemoteProtocolError, match="Duplicate Content-Length"):
            await client.get("/v2/x")


@pytest.mark.anyio
async def test_a_repeated_length_in_a_head_answer_is_parsed_again_up_to_the_head() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nContent-Length: 9\r\n\r\n"
    async with (
        RawServer(always([head[:30], 0.02, head[30:]])) as server,
        make_client(server.url, None, timeout=5.0) as client,
    ):
        response = await client.head("/v2/x")
        assert response.status_code == 200 and response.content == b""
        assert response.headers["content-length"] == "9"
        assert (await client.head("/v2/x")).status_code == 200
    assert server.connections == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    "answer",
    [
        ok() + ok(),  # a second, unasked response in the same segment
        ok() + b"garbage",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello!!",
        [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0.05, b"late"],
    ],
    ids=["two responses", "garbage", "body overrun", "bytes later"],
)
async def test_bytes_beyond_the_response_close_the_connection(answer: Any) -> None:
    def answers(number: int, head: bytes, body: bytes) -> Any:
        return answer if number == 1 else ok()

    async with RawServer(answers) as server, make_client(server.url, None, timeout=5.0) as client:
        first = await client.get("/v2/x")
        assert first.status_code == 200
        if isinstance(answer, list):
            await asyncio.sleep(0.2)  # the late bytes arrive while the connection is idle
        assert (await client.get("/v2/x")).json() == {"ok": True}
    assert server.connections == 2


@pytest.mark.anyio
async def test_a_head_answer_is_the_head_alone_whatever_its_framing_says() -> None:
    heads = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",  # would be read to the close
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    ]
    replies = iter(heads)
    async with (
        RawServer(lambda number, head, body: next(replies)) as server,
        make_client(server.url, None, timeout=5.0) as client,
    ):
        statuses = [(await client.head("/v2/x")).status_code for _ in heads]
    assert statuses == [200, 200, 200, 204]
    assert server.connections == 1
    # A body sent after a HEAD answer is not taken for the next response.
    async with (
        RawServer(lambda n, h, b: ok(b"oops") if n == 1 else ok()) as server,
        make_client(server.url, None, timeout=5.0) as client,
    ):
        assert (await client.head("/v2/x")).content == b""
        assert (await client.get("/v2/x")).json() == {"ok": True}
    assert server.connections == 2


@pytest.mark.anyio
async def test_a_close_delimited_body_ends_with_the_close_and_a_short_one_is_an_error() -> None:
    async with (
        RawServer(
            always(
                [
                    b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\npart one, ",
                    0.05,
                    b"two",
                    b"CLOSE",
                ]
            )
        ) as server,
        make_client(server.url, None, timeout=5.0) as client,
    ):
        assert (await client.get("/v2/x")).content == b"part one, two"
        assert (await client.get("/v2/x")).content == b"part one, two"
    assert server.connections == 2  # never reused: its end was the close
    async with (
        RawServer(
            always([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", b"CLOSE"])
        ) as server,
        make_client(server.url, None, timeout=5.0) as client,
    ):
        with pytest.raises(httpx.ReadError, match="lost mid-response"):
            await client.get("/v2/x")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "start",
    [
        b"HTTP/1.1 200 OK\r\nX-Endless: ",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-Endless: ",
    ],
    ids=["header", "trailer"],
)
async def test_a_head_or_trailer_that_never_ends_is_refused_early(start: bytes) -> None:
    async def endless() -> AsyncIterator[bytes]:
        yield start
        for _ in range(10_000):
            yield b"v" * 4096

    async with (
        RawServer(lambda n, h, b: endless()) as server,
        make_client(server.url, None, timeout=10.0) as client,
    ):
        with pytest.raises(httpx.RemoteProtocolError, match="too large"):
            await client.get("/v2/x")
    assert server.sent < 4 * 1024 * 1024


# -- the request as sent ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_header_values_that_would_split_the_request_are_refused_before_sending() -> None:
    async with RawServer(always(ok())) as server, make_client(server.url, None) as client:
        for headers in (
            {"X-Label": "a\r\nAuthorization: Bearer stolen"},
            {"X-Label": "a\nX-Injected: 1"},
            {"X-Label": "a\rb"},
            {"X-Label": "a\x00b"},
        ):
            with pytest.raises(httpx.LocalProtocolError):
                await client.get("/v2/x", headers=headers)
        with pytest.raises(httpx.LocalProtocolError):
            await client.get("/v2/x", headers={"Bad Name": "v"})
        assert (await client.get("/v2/x")).status_code == 200
    assert len(server.requests) == 1


@pytest.mark.anyio
async def test_a_streamed_request_body_is_sent_chunked_as_its_header_says() -> None:
    got: list[bytes] = []

    def answer(number: int, head: bytes, body: bytes) -> Any:
        return ok()

    class Reader(RawServer):
        async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            got.append(head)
            got.append(await reader.readuntil(b"0\r\n\r\n"))
            writer.write(ok())
            await writer.drain()
            writer.close()

    async with Reader(answer) as server, make_client(server.url, None) as client:
        response = await client.post("/v2/x", content=streamed([b"hello ", b"world"]))
    assert response.status_code == 200
    assert b"transfer-encoding: chunked" in got[0].lower()
    assert got[1] == b"b\r\nhello world\r\n0\r\n\r\n"


# -- stale keep-alive connections: retried only when nothing can have happened ------------------


class BlockingServer:
    """A plain-socket server in a thread: answers one request per connection with keep-alive,
    then closes the connection and sets ``closed``; so the close can be made to sit unread in
    the client's socket while the client's loop is blocked."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.closed = threading.Event()
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for _ in range(2):
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                self.requests.append(data)
                conn.sendall(ok())
                time.sleep(0.05)
                conn.shutdown(socket.SHUT_RDWR)
            self.closed.set()

    def __enter__(self) -> BlockingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        self.thread.join(5)


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_kept_alive_connection_closed_unseen_is_not_used(method: str) -> None:
    with BlockingServer() as server:
        transport = HubTransport()
        async with httpx.AsyncClient(transport=transport, timeout=5.0) as client:
            url = f"http://127.0.0.1:{server.port}/v2/x"
            assert (await client.get(url)).status_code == 200
            assert server.closed.wait(5)
            idle = next(iter(transport._pools.values())).idle[0]
            select.select([idle.fileno], [], [], 5)  # the FIN is there, the loop has not seen it
            response = await client.request(method, url, content=b"{}")
            assert response.status_code == 200
    assert [r.split(b" ", 1)[0] for r in server.requests] == [b"GET", method.encode()]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "retried"),
    [("GET", True), ("HEAD", True), ("POST", False), ("PUT", False), ("DELETE", False)],
)
async def test_an_unanswered_request_on_a_reused_connection_is_retried_only_if_safe(
    method: str, retried: bool
) -> None:
    # The first connection answers once, then reads the next request and closes unanswered.
    def answer(number: int, head: bytes, body: bytes) -> Any:
        if number == 1 and len([r for r in server.requests if r[0] == 1]) == 2:
            return None
        return ok(b"") if head.startswith(b"HEAD") else ok()

    async with RawServer(answer) as server, make_client(server.url, None, timeout=5.0) as client:
        assert (await client.get("/v2/x")).status_code == 200
        if retried:
            assert (await client.request(method, "/v2/x")).status_code == 200
        else:
            with pytest.raises(httpx.RemoteProtocolError) as caught:
                await client.request(method, "/v2/x", content=b"{}")
            assert may_have_arrived(caught.value)
    sent = [r[1].split(b" ", 1)[0] for r in server.requests[1:]]
    assert sent == [method.encode()] * (2 if retried else 1)


@pytest.mark.anyio
async def test_an_unanswered_request_on_a_fresh_connection_is_not_retried() -> None:
    async with RawServer(always(None)) as server, make_client(server.url, None) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/v2/x")
    assert len(server.requests) == 1


# -- a total deadline per request ---------------------------------------------------------------


async def trickle(head: bytes, count: int, pause: float = 0.05) -> AsyncIterator[Any]:
    yield head
    for _ in range(count):
        await asyncio.sleep(pause)
        yield b"x"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "answer",
    [
        lambda: trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", 100_000),
        lambda: trickle(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n186A0\r\n", 10**5),
        lambda: trickle(b"HTTP/1.1 200 OK\r\n", 100_000),  # the head itself never ends
        lambda: trickle(b"HTTP/1.1 200 OK\r\n\r\n", 100_000),  # ends with the connection
    ],
    ids=["length", "chunked", "head", "close-delimited"],
)
async def test_a_trickling_response_ends_at_the_deadline(answer: Callable[[], Any]) -> None:
    async with (
        RawServer(lambda number, head, body: answer()) as server,
        make_client(server.url, None, timeout=0.4) as client,
    ):
        async with asyncio.timeout(20):  # the old transport ran for 5,000 s
            with pytest.raises(httpx.ReadTimeout, match="total deadline"):
                await client.get("/v2/x")
        assert server.sent < 1000  # stopped early, not read to the end


@pytest.mark.anyio
async def test_the_deadline_is_its_own_setting_and_httpx_timeouts_still_hold() -> None:
    async with (
        RawServer(lambda n, h, b: trickle(ok()[:20], 10**5)) as server,
        make_client(server.url, None, timeout=30.0, deadline=0.3) as client,
    ):
        async with asyncio.timeout(20):
            with pytest.raises(httpx.ReadTimeout, match=r"within 0\.3 s"):
                await client.get("/v2/x")
    # A bare HubTransport applies the request's read timeout as the total.
    async with (
        RawServer(lambda n, h, b: trickle(ok()[:20], 10**5)) as server,
        httpx.AsyncClient(transport=HubTransport(), timeout=0.3) as client,
    ):
        async with asyncio.timeout(20):
            with pytest.raises(httpx.ReadTimeout, match="total deadline"):
                await client.get(server.url)
    # Silence is still the inactivity timeout, sooner than a long deadline.
    async with (
        RawServer(lambda n, h, b: [30.0]) as server,
        make_client(server.url, None, timeout=0.2, deadline=60.0) as client,
    ):
        async with asyncio.timeout(20):
            with pytest.raises(httpx.ReadTimeout, match="no data"):
                await client.get("/v2/x")


@pytest.mark.anyio
async def test_a_response_within_the_deadline_is_untouched() -> None:
    parts = [ok()[:30], 0.05, ok()[30:60], 0.05, ok()[60:]]
    async with (
        RawServer(always(parts)) as server,
        make_client(server.url, None, timeout=5.0) as client,
    ):
        assert (await client.get("/v2/x")).json() == {"ok": True}
        assert (await client.get("/v2/x")).json() == {"ok": True}
    assert server.connections == 1


@pytest.mark.anyio
async def test_deadline_and_cap_hold_through_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # With a proxy set, make_client uses httpx's transport: the raw server plays the proxy.
    async with RawServer(lambda n, h, b: trickle(ok()[:20], 10**5)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        async with make_client("http://hub.invalid", None, timeout=0.3) as client:
            assert not isinstance(client._transport, HubTransport)
            async with asyncio.timeout(20):
                with pytest.raises(httpx.ReadTimeout, match="total deadline"):
                    await client.get("/v2/x")
    big = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1000\r\n" + b"x" * 4096
    async with RawServer(
        always([big + b"\r\n"] * 1 + [b"1000\r\n" + b"y" * 4096 + b"\r\n"] * 8 + [b"0\r\n\r\n"])
    ) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        async with make_client("http://hub.invalid", None, max_response_bytes=10_000) as client:
            with pytest.raises(ResponseTooLarge, match="10,000 bytes"):
                await client.get("/v2/x")


# -- a cap on the response body -----------------------------------------------------------------


def chunked_body(total: int, size: int = 65536) -> AsyncIterator[bytes]:
    async def parts() -> AsyncIterator[bytes]:
        yield b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        piece = b"%x\r\n%s\r\n" % (size, b"z" * size)
        for _ in range(total // size):
            yield piece
        yield b"0\r\n\r\n"

    return parts()


def close_delimited(total: int, size: int = 65536) -> AsyncIterator[bytes]:
    async def parts() -> AsyncIterator[bytes]:
        yield b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
        piece = b"z" * size
        for _ in range(total // size):
            yield piece
        yield b"CLOSE"

    return parts()


def declared(total: int) -> AsyncIterator[bytes]:
    async def parts() -> AsyncIterator[bytes]:
        yield b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total
        await asyncio.sleep(30)  # the body never comes: the head alone is enough to refuse

    return parts()


@pytest.mark.anyio
@pytest.mark.parametrize("shape", ["length", "chunked", "close-delimited"])
async def test_a_body_over_the_cap_is_refused_without_holding_it(shape: str) -> None:
    cap = 1024 * 1024
    total = 64 * 1024 * 1024
    make = {"length": declared, "chunked": chunked_body, "close-delimited": close_delimited}[shape]

    def answer(number: int, head: bytes, body: bytes) -> Any:
        return make(total) if number == 1 else ok()

    async with (
        RawServer(answer) as server,
        make_client(server.url, None, timeout=10.0, max_response_bytes=cap) as client,
    ):
        tracemalloc.start()
        try:
            async with asyncio.timeout(20):
                with pytest.raises(ResponseTooLarge, match=r"1,048,576 bytes") as caught:
                    await client.post("/v2/x", json={"name": "app"})
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert isinstance(caught.value, httpx.RemoteProtocolError)
        assert may_have_arrived(caught.value)  # the POST went out: it may have taken effect
        assert peak < 6 * cap
        assert (await client.get("/v2/x")).json() == {"ok": True}  # on a new connection
    assert server.connections == 2


@pytest.mark.anyio
async def test_a_body_at_the_cap_passes_and_the_default_is_16_mib() -> None:
    assert DEFAULT_MAX_RESPONSE_BYTES == 16 * 1024 * 1024
    assert HubTransport().max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES
    body = b"y" * 5000
    async with (
        RawServer(always(ok(body))) as server,
        make_client(server.url, None, max_response_bytes=5000) as client,
    ):
        assert (await client.get("/v2/x")).content == body
    async with (
        RawServer(always([b"HTTP/1.1 200 OK\r\n\r\n", body, b"CLOSE"])) as server,
        make_client(server.url, None, max_response_bytes=5000) as client,
    ):
        assert (await client.get("/v2/x")).content == body
    async with (
        RawServer(always(ok(body + b"!"))) as server,
        make_client(server.url, None, max_response_bytes=5000) as client,
    ):
        with pytest.raises(ResponseTooLarge):
            await client.get("/v2/x")


@pytest.mark.anyio
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "gzip, gzip"])
async def test_a_compressed_body_over_the_cap_once_decoded_is_refused(encoding: str) -> None:
    import zlib

    data = b"\0" * (8 * 1024 * 1024)
    for coding in encoding.split(", "):
        data = gzip.compress(data) if coding == "gzip" else zlib.compress(data)
    assert len(data) < 64 * 1024

    def answer(number: int, head: bytes, body: bytes) -> bytes:
        if number == 1:
            return ok(data, b"Content-Encoding: %s\r\n" % encoding.encode())
        return ok()

    async with (
        RawServer(answer) as server,
        make_client(server.url, None, max_response_bytes=1024 * 1024) as client,
    ):
        with pytest.raises(ResponseTooLarge, match="once decoded"):
            await client.get("/v2/x")
        assert (await client.get("/v2/x")).json() == {"ok": True}
    assert server.connections == 2


# -- redirects are refused ----------------------------------------------------------------------


class Bearer(httpx.Auth):
    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = f"Bearer {ALICE_PAT}"
        yield request


@pytest.mark.anyio
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_to_another_host_is_not_followed(status: int) -> None:
    async with RawServer(always(ok())) as other:
        location = f"http://localhost:{other.port}/steal".encode()
        redirect = b"HTTP/1.1 %d Moved\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % (
            status,
            location,
        )
        async with (
            RawServer(always(redirect)) as hub,
            make_client(hub.url, Bearer()) as client,
        ):
            response = await client.post("/v2/x", json={"name": "app"})
            assert response.status_code == status
            assert response.next_request is not None  # httpx saw it, and did not go
        assert ALICE_PAT.encode() in hub.requests[0][1]
    assert other.requests == []
