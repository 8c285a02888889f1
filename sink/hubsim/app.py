"""The simulator as one ASGI application: routes, the fault/header layer and its state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from sink.hubsim import (
    control,
    routes_audit,
    routes_auth,
    routes_invites,
    routes_orgs,
    routes_repos,
    routes_tokens,
)
from sink.hubsim.faults import FaultConfig, Faults, fault_config
from sink.hubsim.hub import Hub
from sink.hubsim.layer import HubLayer, RequestLog, client_left
from sink.hubsim.web import Router

HUB_ROUTES = [
    *routes_repos.ROUTES,
    *routes_auth.ROUTES,
    *routes_tokens.ROUTES,
    *routes_orgs.ROUTES,
    *routes_invites.ROUTES,
    *routes_audit.ROUTES,
]


class SimApp:
    """A simulated Docker Hub as an ASGI app (mount it in any ASGI server or test client)."""

    def __init__(
        self,
        seed: str | Path | dict[str, Any] | None = None,
        *,
        jwt_ttl: float = 600,
        latency_ms: float = 0,
        faults: FaultConfig | dict[str, Any] | str | None = None,
        control_api: bool = True,
        log_size: int = 100_000,
    ) -> None:
        config = fault_config(faults)
        if latency_ms and not config.latency_ms:
            config = config.model_copy(update={"latency_ms": latency_ms})
        self.hub = Hub(seed, jwt_ttl=jwt_ttl)
        self.initial_faults = config
        self.faults = Faults(config)
        self.log = RequestLog(log_size)
        routes = [*HUB_ROUTES, *(control.ROUTES if control_api else [])]
        router = Router(self, routes)
        self._asgi = HubLayer(
            router, lambda: self.hub, lambda: self.faults, self.log, router.template_of
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "lifespan":
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        try:
            await self._asgi(scope, receive, send)
        except ClientDisconnect:  # a control route's client left (the Hub routes log it too)
            client_left(scope)

    def snapshot(self) -> dict[str, Any]:
        """The whole state in the seed format."""
        return self.hub.state.to_seed()

    def set_faults(self, faults: FaultConfig | dict[str, Any] | str | None) -> FaultConfig:
        """Replace the fault settings (``None``: none); counters and the RNG start over."""
        config = fault_config(faults)
        self.faults.configure(config)
        return config

    def reset(self) -> None:
        """State back to the seed, faults back to the initial settings, request log cleared."""
        self.hub.reset()
        self.faults.configure(self.initial_faults)
        self.log.clear()
