"""One exception tree, named for what the caller should do.

- :class:`StopRun`: the run cannot go on (bad config, wrong credentials, unreadable input).
- :class:`RejectRecord`: this record (or batch) cannot be sent as it is; the run goes on.
- :class:`RetryLater`: a transient failure; the same request may succeed if sent again.

Foreign exceptions are translated at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations


class SinkError(Exception):
    """Base of every error sink raises on purpose."""


class StopRun(SinkError):
    """The run must stop; nothing further can succeed until the user fixes something."""


class ConfigError(StopRun):
    """A destination config, template or setting is invalid."""


class SourceError(StopRun):
    """The input cannot be read at all (unknown format, truncated file, bad encoding)."""


class CredentialsError(StopRun):
    """Docker Hub refused the credentials (401 after a fresh token exchange)."""


class NeedsOrgToken(StopRun):
    """The endpoint does not accept a personal access token; an organization token is needed."""


class RunInProgress(StopRun):
    """Another run of the same destination holds its ledger; two at once could send twice."""


class RejectRecord(SinkError):
    """The record cannot be sent as it is; it goes to the rejects with this message.

    ``index`` is the record's position in the input (0-based), when known;
    ``field`` the body field or column at fault, when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        index: int | None = None,
        field: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.index = index
        self.field = field
        self.status = status

    def __str__(self) -> str:
        where = f"record {self.index + 1}: " if self.index is not None else ""
        return f"{where}{self.message}"


class RenderError(RejectRecord):
    """A template could not be rendered for this record (missing value, unsafe value)."""


class SchemaViolation(RejectRecord):
    """A rendered body does not satisfy the operation's request schema."""


class RetryLater(SinkError):
    """A transient failure (5xx, reset, timeout, 429); send again after ``delay`` seconds."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class Throttled(RetryLater):
    """A 429: ``delay`` is the wait the server asked for (``None`` when it did not say) and
    ``asked`` the header that said it, as it came (``"Retry-After: 30"``)."""

    def __init__(
        self, message: str, *, delay: float | None = None, asked: str | None = None
    ) -> None:
        super().__init__(message, delay=delay)
        self.asked = asked


class Unreachable(StopRun):
    """Docker Hub cannot be reached at all (connection refused, DNS failure): the run stops
    and the records it had taken are left unsent."""


class WaitTooLong(StopRun):
    """Docker Hub asked the whole run to wait (a 429 on the token exchange, a spent quota)
    longer than ``retry.max_seconds`` or the hard ceiling allows."""


class PlanDrift(StopRun):
    """``sink apply PLAN``: Docker Hub changed, since the plan was made, what the plan would
    change (the message lists each difference); nothing was sent. Make a new plan."""


class Interrupted(SinkError):
    """A wait (a backoff, a 429's ``Retry-After``, the pacer's hold) ended early because the
    run was asked to stop; the request it held back was not sent."""


class ToolRefused(SinkError):
    """An agent's tool call is refused (``sink mcp``): by its policy or budget, a confirmation
    token that does not hold, or a human who said no. ``rule`` names what refused it."""

    def __init__(self, message: str, *, rule: str) -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule
