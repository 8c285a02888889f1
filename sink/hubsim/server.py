"""Running the simulator: in a background thread, in a child process, or in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import orjson
import uvicorn

from sink.hubsim.app import SimApp
from sink.hubsim.faults import FaultConfig, fault_config
from sink.hubsim.layer import LOG

T = TypeVar("T")
Seed = str | Path | dict[str, Any] | None
Faults = FaultConfig | dict[str, Any] | str | None


class _Server(uvicorn.Server):
    """uvicorn's server without its signal capture (which re-raises the signal on exit):
    :func:`run_blocking` handles SIGINT/SIGTERM itself and exits cleanly."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _server(app: SimApp, host: str, port: int, http: str) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=http,
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=2,
    )
    return _Server(config)


def _url(server: uvicorn.Server, host: str) -> str:
    port = server.servers[0].sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class Simulator:
    """A simulated Docker Hub served by uvicorn in a background thread.

    ``with Simulator() as hub: ... hub.url ...`` or ``hub = Simulator().start()`` and
    ``hub.stop()``. ``seed`` is a YAML/JSON path or a dict (``None``: the default seed);
    ``faults`` a :class:`FaultConfig`, a dict, JSON text or a file path.
    """

    def __init__(
        self,
        seed: Seed = None,
        *,
        latency_ms: float = 0,
        jwt_ttl: float = 600,
        faults: Faults = None,
        host: str = "127.0.0.1",
        port: int = 0,
        control: bool = True,
        http: str = "auto",
    ) -> None:
        self.app = SimApp(
            seed, jwt_ttl=jwt_ttl, latency_ms=latency_ms, faults=faults, control_api=control
        )
        self.host = host
        self.port = port
        self.http = http
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None

    def start(self) -> Simulator:
        """Start serving; returns once the socket listens (``self.url`` is then set)."""
        if self._thread is not None:
            return self
        server = _server(self.app, self.host, self.port, self.http)
        self._server = server

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(server.serve())
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                self._failure = exc
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="hubsim", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._thread.join(timeout=1)
                self._thread = None
                raise RuntimeError(
                    f"the Docker Hub simulator did not start on {self.host}:{self.port}"
                ) from self._failure
            time.sleep(0.005)
        self.url = _url(server, self.host)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout=5)
        self._thread = None
        self._server = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _call(self, fn: Callable[[], T]) -> T:
        loop = self._loop
        if loop is None or not loop.is_running():
            return fn()

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=30)

    def state(self) -> dict[str, Any]:
        """The whole state (the same document as ``GET /_sim/state``)."""
        return self._call(self.app.snapshot)

    def set_faults(self, faults: Faults) -> FaultConfig:
        """Replace the fault settings at run time (``None``: no faults)."""
        return self._call(lambda: self.app.set_faults(faults))

    def requests(self) -> list[dict[str, Any]]:
        """The request log: method, path, query, status, credential name, faults; no secrets."""
        return self._call(self.app.log.entries)

    def request_counts(self, method: str | None = None) -> dict[str, Any]:
        """Requests per route, ``{"total": n, "routes": {"GET /v2/orgs/{org_name}/members":
        k, ...}}`` (the same as ``GET /_sim/requests/counts[?method=GET]``)."""
        return self._call(lambda: self.app.log.counts(method))

    def clear_requests(self) -> None:
        """Empty the request log (the state stays as it is)."""
        self._call(self.app.log.clear)

    def reset(self) -> None:
        """State back to the seed, faults back to the start, request log cleared."""
        self._call(self.app.reset)


class ProcessSimulator:
    """A simulator running in a child process (see :func:`start_process`)."""

    def __init__(
        self, process: subprocess.Popen[bytes], url: str, cleanup: Callable[[], None] = lambda: None
    ) -> None:
        self.process = process
        self.url = url
        self._cleanup = cleanup

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(method, self.url + path, json=body, timeout=30)
        response.raise_for_status()
        return response.json() if response.content else None

    def state(self) -> dict[str, Any]:
        """The whole state, through ``GET /_sim/state``."""
        result: dict[str, Any] = self._control("GET", "/_sim/state")
        return result

    def set_faults(self, faults: FaultConfig | dict[str, Any] | None) -> None:
        """Replace the fault settings through ``PUT /_sim/faults``."""
        body = faults.model_dump() if isinstance(faults, FaultConfig) else (faults or {})
        self._control("PUT", "/_sim/faults", body)

    def requests(self) -> list[dict[str, Any]]:
        """The request log, through ``GET /_sim/requests``."""
        result: list[dict[str, Any]] = self._control("GET", "/_sim/requests")
        return result

    def request_counts(self, method: str | None = None) -> dict[str, Any]:
        """Requests per route, through ``GET /_sim/requests/counts``."""
        query = f"?method={method}" if method else ""
        result: dict[str, Any] = self._control("GET", "/_sim/requests/counts" + query)
        return result

    def clear_requests(self) -> None:
        """Empty the request log through ``DELETE /_sim/requests``."""
        self._control("DELETE", "/_sim/requests")

    def reset(self) -> None:
        """``POST /_sim/reset``."""
        self._control("POST", "/_sim/reset")

    def stop(self) -> None:
        """Terminate the child (SIGTERM: uvicorn shuts down cleanly) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._cleanup()

    def __enter__(self) -> ProcessSimulator:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_process(
    seed: Seed = None,
    *,
    latency_ms: float = 0,
    jwt_ttl: float = 600,
    faults: Faults = None,
    host: str = "127.0.0.1",
    port: int = 0,
    control: bool = True,
    http: str = "auto",
) -> ProcessSimulator:
    """Run a simulator in a child process (its CPU is not the caller's); ``.url``, ``.stop()``.

    The child is ``python -m sink.hubsim`` with the same options; a dict seed is written to a
    temporary JSON file for it.
    """
    command = [
        sys.executable,
        "-m",
        "sink.hubsim",
        "--host",
        host,
        "--port",
        str(port),
        "--latency-ms",
        str(latency_ms),
        "--jwt-ttl",
        str(jwt_ttl),
        "--http",
        http,
    ]
    temp: list[str] = []
    if isinstance(seed, dict):
        handle, name = tempfile.mkstemp(prefix="hubsim-seed-", suffix=".json")
        with os.fdopen(handle, "wb") as out:
            out.write(orjson.dumps(seed))
        temp.append(name)
        command += ["--seed", name]
    elif seed is not None:
        command += ["--seed", str(seed)]
    if faults is not None:
        config = faults if isinstance(faults, FaultConfig) else fault_config(faults)
        command += ["--faults", config.model_dump_json()]
    if not control:
        command.append("--no-control")

    def cleanup() -> None:
        for name in temp:
            with contextlib.suppress(OSError):
                os.unlink(name)

    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    stdout = process.stdout
    assert stdout is not None
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=60)
    line = lines[0].decode().strip() if lines else ""
    prefix = "Docker Hub simulator listening on "
    if not line.startswith(prefix):
        process.kill()
        process.wait(timeout=5)
        cleanup()
        raise RuntimeError(f"the Docker Hub simulator process did not start: {line!r}")
    return ProcessSimulator(process, line[len(prefix) :], cleanup)


def run_blocking(
    app: SimApp, host: str, port: int, http: str, on_ready: Callable[[str], None]
) -> None:
    """Serve ``app`` in this thread until SIGINT/SIGTERM; ``on_ready(url)`` once listening."""
    server = _server(app, host, port, http)

    async def main() -> None:
        if threading.current_thread() is threading.main_thread():
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                await task
                raise RuntimeError(f"the Docker Hub simulator could not listen on {host}:{port}")
            await asyncio.sleep(0.005)
        on_ready(_url(server, host))
        await task

    asyncio.run(main())


def _quiet_lines_to_stderr() -> None:
    """The simulator's one-line notes (a client that left mid-request) on stderr, once."""
    if not LOG.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("hubsim: %(message)s"))
        LOG.addHandler(handler)
        LOG.setLevel(logging.INFO)
        LOG.propagate = False


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    seed: Seed = None,
    latency_ms: float = 0,
    faults: Faults = None,
    jwt_ttl: float = 600,
    *,
    http: str = "auto",
    control: bool = True,
) -> None:
    """Serve in the foreground until SIGINT/SIGTERM, printing the URL once listening."""
    app = SimApp(seed, jwt_ttl=jwt_ttl, latency_ms=latency_ms, faults=faults, control_api=control)
    _quiet_lines_to_stderr()
    # The seed lives as long as the process: out of the collector's full passes, which walked
    # all of a large seed (tens of ms) while every request in flight waited.
    gc.collect()
    gc.freeze()

    def announce(url: str) -> None:
        print(f"Docker Hub simulator listening on {url}", flush=True)

    run_blocking(app, host, port, http, announce)
    sys.stdout.flush()
