"""A Docker Hub simulator: a real HTTP server on loopback with Hub's endpoints, auth and faults.

>>> from sink.hubsim import Simulator
>>> with Simulator() as hub:          # doctest: +SKIP
...     httpx.post(hub.url + "/v2/auth/token", json={...})

See ``sink/hubsim/README.md`` for the endpoints, the seed format, the fault settings and the
table of choices made where the spec is silent.
"""

from sink.hubsim.app import SimApp
from sink.hubsim.faults import FaultConfig, FaultRule, FaultSpec
from sink.hubsim.server import ProcessSimulator, Simulator, serve, start_process

__all__ = [
    "FaultConfig",
    "FaultRule",
    "FaultSpec",
    "ProcessSimulator",
    "SimApp",
    "Simulator",
    "serve",
    "start_process",
]
