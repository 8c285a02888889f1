"""``python -m sink.hubsim``: serve the Docker Hub simulator until interrupted."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from sink.errors import ConfigError
from sink.hubsim.faults import fault_config
from sink.hubsim.seed import read_seed
from sink.hubsim.server import serve


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m sink.hubsim`` (also the ``sink hubsim`` options)."""
    p = argparse.ArgumentParser(
        prog="python -m sink.hubsim",
        description=(
            "Serve a simulated Docker Hub management API (state in memory) until Ctrl-C. "
            "Prints 'Docker Hub simulator listening on URL' once ready. The seed's accounts "
            "and tokens are fake; see sink/hubsim/README.md."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port to bind (default 0: any free port)")
    p.add_argument(
        "--seed",
        default=None,
        help="YAML or JSON seed file (default: the built-in demo seed); 'large': the demo "
        "seed plus 5,000 members, 300 teams and 3,000 repositories in acme",
    )
    p.add_argument(
        "--generate",
        default=None,
        metavar="JSON",
        help='add a generated state to the seed, e.g. \'{"members": 10000, "teams": 500}\' '
        "(the fields of a seed's generate: section; see sink/hubsim/README.md)",
    )
    p.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="fixed latency added to every Hub request, in ms (default 0)",
    )
    p.add_argument(
        "--faults",
        default=None,
        help="fault settings as JSON text or a JSON/YAML file, e.g. "
        '\'{"error_rate": 0.1, "rules": [{"method": "POST", '
        '"path": "/v2/namespaces/*/repositories", "slow_rate": 1, '
        '"slow_ms": 5000}]}\'',
    )
    p.add_argument(
        "--jwt-ttl",
        type=float,
        default=600.0,
        help="lifetime of issued JWTs in seconds (default 600, as Hub)",
    )
    p.add_argument(
        "--no-control", action="store_true", help="disable the test-only control API under /_sim"
    )
    p.add_argument(
        "--http",
        default="auto",
        choices=("auto", "h11", "httptools"),
        help="uvicorn HTTP implementation (default auto)",
    )
    return p


def _with_generate(seed: str | None, text: str) -> dict[str, Any]:
    try:
        sizes = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"--generate is not JSON: {exc}") from exc
    if not isinstance(sizes, dict):
        raise ConfigError("--generate must be a JSON object, e.g. '{\"members\": 10000}'")
    doc = read_seed(seed)
    doc["generate"] = {**(doc.get("generate") or {}), **sizes}
    return doc


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and serve; returns the exit status."""
    args = parser().parse_args(argv)
    try:
        faults = fault_config(args.faults)
        seed = args.seed if args.generate is None else _with_generate(args.seed, args.generate)
        serve(
            args.host,
            args.port,
            seed,
            args.latency_ms,
            faults,
            args.jwt_ttl,
            http=args.http,
            control=not args.no_control,
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
