"""No token created twice by accident: a token label that is already live is refused.

Docker Hub accepts two access tokens with the same label, so a ``--fresh`` run, a second file
that repeats labels, or a ``sink test`` followed by a run would each leave live duplicates.
:class:`LabelCheck` is asked about every request a run (or ``sink test``) sends, after resume
has settled what past runs left (so it sees only requests that are really about to go), and
refuses a request that creates a token when

- an active, unexpired token of the same list (the user's personal access tokens,
  ``GET /v2/access-tokens``; an organization's access tokens,
  ``GET /v2/orgs/{org}/access-tokens``) already has its label; or
- an earlier request of this run already created, or is creating, a token with that label
  (the second record of an input that repeats a label).

Token creations are recognised by method and path, whatever template or manual config built
them: ``POST /v2/access-tokens`` (label in ``token_label``) and
``POST /v2/orgs/{org}/access-tokens`` (label in ``label``). Labels compare without case, as
effect look-ups compare them. Each list is read once per run (100 a page, through the reader's
list cache: resume's look-ups of the same list share the read), then kept up to date with the
labels this run lets go; a list that cannot be read refuses the creations it
would have to clear. ``allow_duplicate_labels: true`` in the config turns the check off.

A refusal rejects that record only (into the rejects file and the ledger, audited like any
refusal): the other records of the run go on, and nothing duplicate is created.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from sink.config import DestinationConfig
from sink.errors import CredentialsError, RejectRecord, RetryLater, StopRun
from sink.guard.check import Guard
from sink.guard.policy import decode_path
from sink.model import Request
from sink.read.hub import HubReader, read_error, segment

_READ_ERRORS = (
    httpx.HTTPError,
    StopRun,
    RetryLater,
    orjson.JSONDecodeError,
    ValueError,
)
_OPT_OUT = "set allow_duplicate_labels: true in the config if duplicates are wanted"


@dataclass(frozen=True)
class TokenList:
    """The list a token-creating request adds to: where it is read, and its field names."""

    url: str
    """The list's absolute URL (no query)."""
    what: str
    """``personal access token`` or ``access token of organization ORG``."""
    body_field: str
    """The label's field in the create request's body (``token_label`` or ``label``)."""
    item_field: str
    """The label's field in the list's items."""
    id_field: str


def token_list(request: Request) -> TokenList | None:
    """The token list ``request`` would add to, when it creates a token; else None (pure).

    A path a server could resolve to another resource is not recognised here: the guard's
    policy and owner checks deal with those.
    """
    if request.method.upper() != "POST" or "access-tokens" not in request.url.lower():
        return None  # the common case, decided without parsing
    parts = urlsplit(request.url)
    segments, _ = decode_path(parts.path)
    if segments is None:
        return None
    folded = [part.casefold() for part in segments]
    origin = f"{parts.scheme}://{parts.netloc}"
    if folded == ["v2", "access-tokens"]:
        return TokenList(
            f"{origin}/v2/access-tokens",
            "personal access token",
            "token_label",
            "token_label",
            "uuid",
        )
    if len(folded) == 4 and folded[:2] == ["v2", "orgs"] and folded[3] == "access-tokens":
        org = segments[2]
        return TokenList(
            f"{origin}/v2/orgs/{segment(org)}/access-tokens",
            f"access token of organization {org}",
            "label",
            "label",
            "id",
        )
    return None


def body_label(request: Request, field: str) -> str | None:
    """The label a create request's JSON body gives in ``field``, or None."""
    label = request.body_field(field)
    return label if isinstance(label, str) and label else None


def live(item: dict[str, Any], now: datetime) -> bool:
    """Whether a listed token still works: active (or not said) and not past its expiry."""
    if item.get("is_active") is False:
        return False
    expires = item.get("expires_at")
    if not isinstance(expires, str) or not expires:
        return True
    try:
        when = datetime.fromisoformat(expires)
    except ValueError:
        return True  # unreadable: counted as live, the safe side
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when > now


@dataclass
class _Labels:
    """What the check knows of one token list."""

    lock: asyncio.Lock
    existing: dict[str, dict[str, Any]] | None = None
    """Live tokens on Hub by casefolded label, as read once; None until read."""
    problem: str | None = None
    """Why the list could not be read (then every creation into it is refused)."""
    claimed: dict[str, str] = field(default_factory=dict)
    """Casefolded label → which request of this run took it (a sentence)."""


class LabelCheck:
    """Refuses a token creation whose label is live on Hub or taken earlier in the run.

    Shaped like the guard (:meth:`refusal`, :meth:`settled`); see the module docstring.
    """

    def __init__(self, reader: HubReader) -> None:
        self.reader = reader
        self._lists: dict[str, _Labels] = {}

    async def refusal(self, request: Request) -> str | None:
        """Why ``request`` must not be sent, or None (its label is then taken for this run)."""
        tokens = token_list(request)
        if tokens is None:
            return None
        label = body_label(request, tokens.body_field)
        if label is None:
            return None  # no label: Docker Hub refuses the request itself
        folded = label.casefold()
        state = self._lists.setdefault(tokens.url.casefold(), _Labels(asyncio.Lock()))
        async with state.lock:
            earlier = state.claimed.get(folded)
            if earlier is not None:
                return (
                    f"refusing to create a {tokens.what} labelled {label!r}: {earlier} in "
                    "this run has that label already, and Docker Hub would hold two live "
                    f"tokens with one label; give each token its own label, or {_OPT_OUT}"
                )
            if state.existing is None and state.problem is None:
                await self._read(tokens, state)
            if state.problem is not None:
                return (
                    f"refusing to create a {tokens.what} labelled {label!r}: the existing "
                    f"tokens cannot be read from Docker Hub ({state.problem}), so sink cannot "
                    f"tell whether one is already labelled so; {_OPT_OUT}"
                )
            assert state.existing is not None
            found = state.existing.get(folded)
            if found is not None:
                return _exists(tokens, label, found)
            state.claimed[folded] = _who(request)
        return None

    def settled(self, request: Request, ok: bool) -> None:
        """What became of a request :meth:`refusal` let go. Its label stays taken either way:
        a record that repeats a label is refused whatever became of the first, so the answer
        never depends on timing."""

    async def _read(self, tokens: TokenList, state: _Labels) -> None:
        # Through the reader's list cache: when resume has just looked records of this run up
        # in the same list, and nothing was written since, its read serves here too.
        existing: dict[str, dict[str, Any]] = {}
        now = datetime.now(UTC)
        try:
            items = await self.reader.listed(tokens.url, "results")
        except httpx.HTTPStatusError as exc:
            refused = read_error(exc.response, tokens.url)
            if isinstance(refused, CredentialsError):
                raise refused from exc  # wrong credentials stop the run, as at the first send
            state.problem = _reason(refused)
            return
        except RejectRecord as exc:  # the organization does not exist
            state.problem = _reason(exc.message)
            return
        except CredentialsError:
            raise
        except _READ_ERRORS as exc:
            state.problem = _reason(exc)
            return
        for item in items:
            label = item.get(tokens.item_field)
            if isinstance(label, str) and live(item, now):
                existing.setdefault(label.casefold(), item)
        state.existing = existing


def _exists(tokens: TokenList, label: str, found: dict[str, Any]) -> str:
    ident = found.get(tokens.id_field)
    details = [f"id {ident}" if ident else ""]
    created = found.get("created_at")
    if isinstance(created, str) and created:
        details.append(f"created {created}")
    shown = found.get(tokens.item_field)
    if isinstance(shown, str) and shown != label:
        details.append(f"labelled {shown!r}")
    said = ", ".join(part for part in details if part)
    return (
        f"refusing to create a {tokens.what} labelled {label!r}: an active token with that "
        f"label already exists on Docker Hub{f' ({said})' if said else ''}, and Docker Hub "
        "would hold two live tokens with one label; delete or deactivate the old token, give "
        f"this one another label, or {_OPT_OUT}"
    )


def _who(request: Request) -> str:
    if request.indexes:
        return f"record {request.indexes[0] + 1} of the input"
    if request.keys:
        return f"the record with key {request.keys[0]!r}"
    return "an earlier request"


def _reason(exc: BaseException | str) -> str:
    text = exc if isinstance(exc, str) else str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class LabelledGuard(Guard):
    """A guard followed by the label check: what the send core asks about each request.

    Every decision is the given guard's first (the policy, the last owner); a request it lets
    go is then asked about by the :class:`LabelCheck`, and a refusal there gives the guard's
    reservation back. :meth:`settled` goes to both.
    """

    def __init__(self, guard: Guard, labels: LabelCheck) -> None:
        super().__init__(guard.reader, guard.policy)
        self.guard = guard
        self.labels = labels
        self.owners = guard.owners

    async def refusal(self, request: Request) -> str | None:
        """Why ``request`` must not be sent (the guard's reason first), or None."""
        refusal = await self.guard.refusal(request)
        if refusal is not None:
            return refusal
        refusal = await self.labels.refusal(request)
        if refusal is not None:
            self.guard.settled(request, False)  # what it reserved, given back
        return refusal

    def settled(self, request: Request, ok: bool) -> None:
        """What became of a request :meth:`refusal` let go."""
        self.guard.settled(request, ok)
        self.labels.settled(request, ok)


def with_label_check(guard: Guard, config: DestinationConfig, reader: HubReader) -> Guard:
    """``guard`` with the label check after it, unless the config allows duplicate labels."""
    if config.allow_duplicate_labels:
        return guard
    return LabelledGuard(guard, LabelCheck(reader))
