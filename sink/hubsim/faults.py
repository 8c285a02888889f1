"""Fault injection: what to do to a request, decided from a :class:`FaultConfig`.

Global settings apply to every ``/v2`` request; a rule (method + path pattern) replaces them for
the requests it matches (the first matching rule wins). Random choices come from one RNG seeded
with ``FaultConfig.seed``, drawn in a fixed order per request, so a sequential client sees the
same faults on every run.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Any

import orjson
import pydantic

from sink import yamltext
from sink.errors import ConfigError

UNLIMITED = 1_000_000  # X-RateLimit-Limit shown when no rate limit is configured
WINDOW = 60.0  # the rate limit counts requests per credential per minute, by default


class FaultSpec(pydantic.BaseModel):
    """What to do to matching requests (all off by default)."""

    model_config = pydantic.ConfigDict(extra="forbid")

    latency_ms: float = pydantic.Field(default=0, ge=0)
    latency_jitter_ms: float = pydantic.Field(default=0, ge=0)
    rate_limit: int | None = pydantic.Field(default=None, ge=1)
    rate_window: float = pydantic.Field(default=WINDOW, gt=0)
    quota_headers: bool = True
    throttle_rate: float = pydantic.Field(default=0, ge=0, le=1)
    burst_every: int = pydantic.Field(default=0, ge=0)
    burst_length: int = pydantic.Field(default=0, ge=0)
    retry_after: int = pydantic.Field(default=1, ge=0)
    error_rate: float = pydantic.Field(default=0, ge=0, le=1)
    error_statuses: list[int] = [500, 502, 503]
    drop_rate: float = pydantic.Field(default=0, ge=0, le=1)
    slow_rate: float = pydantic.Field(default=0, ge=0, le=1)
    slow_ms: float = pydantic.Field(default=0, ge=0)
    apply_first: bool = False

    @pydantic.field_validator("error_statuses")
    @classmethod
    def _statuses(cls, value: list[int]) -> list[int]:
        if not value or any(s < 500 or s > 599 for s in value):
            raise ValueError("error_statuses must be a non-empty list of 5xx codes")
        return value

    @pydantic.model_validator(mode="after")
    def _burst(self) -> FaultSpec:
        if self.burst_length > self.burst_every:
            raise ValueError("burst_length cannot exceed burst_every")
        return self


class FaultRule(FaultSpec):
    """A :class:`FaultSpec` for one endpoint: ``method`` (or ``*``) and ``path``.

    ``path`` is a spec template or a glob: ``{param}`` and ``*`` match one path segment, ``**``
    any number of segments; a trailing slash is optional.
    """

    method: str = "*"
    path: str


class FaultConfig(FaultSpec):
    """Global fault settings, per-endpoint ``rules`` and the RNG ``seed``."""

    seed: int = 0
    rules: list[FaultRule] = []


def fault_config(value: FaultConfig | dict[str, Any] | str | None) -> FaultConfig:
    """A :class:`FaultConfig` from a config, a dict, JSON text or a JSON/YAML file path."""
    if value is None:
        return FaultConfig()
    if isinstance(value, FaultConfig):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.startswith("{"):
                value = orjson.loads(text)
            else:
                with open(text, encoding="utf-8") as handle:
                    value = yamltext.load(handle)
        except (OSError, orjson.JSONDecodeError, yamltext.YAMLError) as exc:
            raise ConfigError(f"cannot read the fault settings {text!r}: {exc}") from exc
    try:
        return FaultConfig.model_validate(value)
    except pydantic.ValidationError as exc:
        raise ConfigError(f"invalid fault settings: {exc}") from exc


def _pattern(path: str) -> re.Pattern[str]:
    out = []
    for part in re.split(r"(\{[^}/]*\}|\*\*|\*)", path.rstrip("/")):
        if part == "**":
            out.append(".*")
        elif part == "*" or (part.startswith("{") and part.endswith("}")):
            out.append("[^/]+")
        else:
            out.append(re.escape(part))
    return re.compile("^" + "".join(out) + "/?$")


@dataclass(slots=True)
class Decision:
    """The faults chosen for one request."""

    delay: float = 0.0
    throttle: float | None = None  # Retry-After seconds of a 429
    drop: bool = False
    error: int | None = None
    slow: float = 0.0
    apply_first: bool = False
    limit: int = UNLIMITED
    remaining: int = UNLIMITED
    reset: int = 0
    quota_headers: bool = True
    labels: tuple[str, ...] = ()


class Faults:
    """The fault engine: config, RNG, burst counters and rate-limit windows."""

    def __init__(self, config: FaultConfig) -> None:
        self.configure(config)

    def configure(self, config: FaultConfig) -> None:
        """Use ``config`` from now on (counters, windows and the RNG start over)."""
        self.config = config
        self.rng = random.Random(config.seed)
        self._rules = [(r.method.upper(), _pattern(r.path), r) for r in config.rules]
        self._counts: dict[int, int] = {}
        self._windows: dict[tuple[int, str], list[float]] = {}
        self._match_cache: dict[tuple[str, str], tuple[int, FaultSpec]] = {}
        self.active = config != FaultConfig(seed=config.seed)

    def spec_for(self, method: str, path: str) -> tuple[int, FaultSpec]:
        """The rule index (-1: global) and settings that apply to ``method path``."""
        key = (method, path)
        found = self._match_cache.get(key)
        if found is None:
            found = (-1, self.config)
            for i, (rule_method, pattern, rule) in enumerate(self._rules):
                if rule_method in ("*", method) and pattern.match(path):
                    found = (i, rule)
                    break
            if len(self._match_cache) > 4096:
                self._match_cache.clear()
            self._match_cache[key] = found
        return found

    def decide(self, method: str, path: str, credential: str, now: float) -> Decision:
        """Roll the dice for one request."""
        index, spec = self.spec_for(method, path)
        decision = Decision(apply_first=spec.apply_first, quota_headers=spec.quota_headers)
        labels: list[str] = []
        # rate-limit window per credential (counted even when unlimited, for the headers)
        # A fixed window, starting on the whole second of the credential's first request (so
        # that X-RateLimit-Reset, a whole second, is its exact end when the length is too).
        length = spec.rate_window
        window = self._windows.get((index, credential))
        if window is None or now >= window[0] + length:
            window = [float(math.floor(now)), 0.0]
            self._windows[(index, credential)] = window
        window[1] += 1
        limit = spec.rate_limit or UNLIMITED
        decision.limit = limit
        decision.remaining = max(0, limit - int(window[1]))
        decision.reset = math.ceil(window[0] + length)
        if not self.active:
            return decision
        rng = self.rng
        if spec.latency_ms or spec.latency_jitter_ms:
            jitter = rng.uniform(0, spec.latency_jitter_ms) if spec.latency_jitter_ms else 0.0
            decision.delay = (spec.latency_ms + jitter) / 1000
            labels.append(f"latency:{decision.delay * 1000:.0f}ms")
        if spec.rate_limit is not None and window[1] > spec.rate_limit:
            decision.throttle = float(max(1, math.ceil(window[0] + length - now)))
            labels.append("rate_limit")
        if spec.burst_every:
            n = self._counts.get(index, 0)
            self._counts[index] = n + 1
            if decision.throttle is None and n % spec.burst_every >= (
                spec.burst_every - spec.burst_length
            ):
                decision.throttle = float(spec.retry_after)
                labels.append("burst")
        if spec.throttle_rate and rng.random() < spec.throttle_rate and decision.throttle is None:
            decision.throttle = float(spec.retry_after)
            labels.append("throttle")
        if spec.drop_rate and rng.random() < spec.drop_rate:
            decision.drop = True
        if spec.error_rate and rng.random() < spec.error_rate:
            decision.error = rng.choice(spec.error_statuses)
        if spec.slow_rate and rng.random() < spec.slow_rate:
            decision.slow = spec.slow_ms / 1000
        if decision.throttle is None:
            if decision.drop:
                labels.append("drop")
            elif decision.error is not None:
                labels.append(f"error:{decision.error}")
            if decision.slow and not decision.drop and decision.error is None:
                labels.append(f"slow:{spec.slow_ms:.0f}ms")
        decision.labels = tuple(labels)
        return decision
