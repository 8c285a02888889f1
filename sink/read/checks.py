"""Health checks of a connection: does it authenticate, and can it read what runs will need?

A personal connection (username + personal access token) and a password connection run three
checks: the token exchange with a listing of the namespace's repositories, a listing of the
repositories, and one tag listing of the first repository. An organization connection checks
the organization access token, lists one member and lists one team. Each check gives a
:class:`CheckResult` whose ``message`` is one of the fixed texts below (byte for byte what users
know from other Docker Hub integrations) and whose ``detail`` says what Hub answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from sink.errors import CredentialsError, RetryLater, StopRun
from sink.read.credentials import Credentials
from sink.read.hub import HubReader, segment
from sink.send.auth import token_url_for
from sink.send.classify import PAT_NOT_ALLOWED, hub_message, parse_body
from sink.send.session import HubSession

_MAX_WAIT = 60.0

VALIDATE_CONNECTION = "Validate DockerHub API Connection"
LIST_REPOSITORIES = "List DockerHub Repositories"
VERIFY_TAG_ACCESS = "Verify DockerHub Tag Access"
VALIDATE_ORGANIZATION = "Validate DockerHub Organization Access Token"
LIST_ORG_MEMBERS = "List DockerHub Organization Members"
LIST_ORG_TEAMS = "List DockerHub Organization Teams"

AUTH_FAILED = (
    "Unable to authenticate with DockerHub. Verify the username and Personal Access Token, and "
    "confirm the PAT has not been revoked."
)
AUTH_FAILED_ACCOUNT = (
    "Unable to authenticate with DockerHub. Verify the username and password, and that the "
    "account does not require single sign-on (then use a Personal Access Token)."
)
OAT_HINT = (
    'Docker Hub answered "token issued from personal access token is not allowed": this needs '
    "an Organization Access Token. Add an organization connection (organization name and a "
    "dckr_oat_ token) with `sink connection add --kind organization`."
)
LIST_FAILED = (
    "Unable to list DockerHub repositories. Ensure the Personal Access Token has at least the "
    "Public Repo Read scope, and that the configured username matches a real DockerHub "
    "namespace."
)
LIST_FAILED_ACCOUNT = (
    "Unable to list DockerHub repositories. Ensure that the configured username matches a real "
    "DockerHub namespace."
)
TAGS_FAILED = (
    "Unable to fetch tag listings. This typically indicates the PAT lacks Repo:Read scope, or "
    "the repository in the namespace is private and the PAT does not have access to it."
)
TAGS_FAILED_ACCOUNT = (
    "Unable to fetch tag listings. The repository in the namespace may be private and the "
    "account may not have access to it."
)
TAGS_NOT_PROVEN = (
    "This does not prove tag access: push a repository to the namespace and run the check "
    "again to test it."
)
ORG_AUTH_UNAUTHORIZED = (
    "Unable to authenticate with DockerHub: Unauthorized. Verify the organization name and the "
    "Organization Access Token, and confirm the token is active, has not expired and has not "
    "been revoked."
)
ORG_AUTH_FAILED = "Unable to authenticate with DockerHub using the Organization Access Token."


def unreachable(base_url: str) -> str:
    """The message of a check that could not reach Docker Hub at all."""
    return f"Unable to reach DockerHub at {base_url}. Check the base URL and the network."


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, whether it passed, the fixed message and what Hub answered."""

    name: str
    ok: bool
    message: str
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


class _Failed(Exception):
    """A check's request failed: the HTTP answer, or ``None`` for an exception."""

    def __init__(self, detail: str, response: httpx.Response | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.response = response

    @property
    def status(self) -> int | None:
        return self.response.status_code if self.response is not None else None

    @property
    def pat_not_allowed(self) -> bool:
        return PAT_NOT_ALLOWED in self.detail


async def _page(reader: HubReader, path: str, page_size: int) -> dict[str, Any]:
    """The first page of a list, or :class:`_Failed`."""
    try:
        response = await reader.get(path, params={"page_size": page_size})
    except CredentialsError as exc:
        raise _Failed(str(exc), None) from exc
    except (httpx.TransportError, RetryLater) as exc:
        raise _Failed(f"transport: {type(exc).__name__}: {exc}") from exc
    if not response.is_success:
        raise _Failed(hub_message(response), response)
    body = parse_body(response)
    if not isinstance(body, dict):
        raise _Failed(f"HTTP {response.status_code}: not a list page", response)
    return body


def _count(page: dict[str, Any]) -> int:
    for key in ("count", "total"):
        value = page.get(key)
        if isinstance(value, int):
            return value
    results = page.get("results")
    return len(results) if isinstance(results, list) else 0


def _names(page: dict[str, Any]) -> list[str]:
    results = page.get("results")
    if not isinstance(results, list):
        return []
    return [str(r.get("name")) for r in results if isinstance(r, dict) and r.get("name")]


def _is_transport(failure: _Failed) -> bool:
    return failure.detail.startswith("transport:")


# -- personal and password connections -----------------------------------------------------


async def _user_checks(reader: HubReader, credentials: Credentials) -> list[CheckResult]:
    password = credentials.kind == "password"
    namespace = credentials.identifier
    repos = f"/v2/namespaces/{segment(namespace)}/repositories"
    results: list[CheckResult] = []

    try:
        page = await _page(reader, repos, 1)
        results.append(
            CheckResult(
                VALIDATE_CONNECTION,
                True,
                f'Successfully authenticated with DockerHub as "{namespace}" '
                f"({_count(page)} repositories in namespace).",
            )
        )
    except _Failed as failure:
        message = AUTH_FAILED_ACCOUNT if password else AUTH_FAILED
        if _is_transport(failure):
            message = unreachable(credentials.base_url)
        elif failure.pat_not_allowed:
            message = f"{message} {OAT_HINT}"
        results.append(CheckResult(VALIDATE_CONNECTION, False, message, failure.detail))

    first: str | None = None
    listed: dict[str, Any] | None = None
    try:
        listed = await _page(reader, repos, 5)
        names = _names(listed)
        first = names[0] if names else None
        total = _count(listed)
        shown = ", ".join(names)
        more = f" (and {total - len(names)} more)" if total > len(names) else ""
        results.append(
            CheckResult(
                LIST_REPOSITORIES,
                True,
                f"Successfully listed repositories in the {namespace} namespace ({total} total).",
                f"repositories: {shown}{more}" if names else "the namespace has no repositories",
            )
        )
    except _Failed as failure:
        message = LIST_FAILED_ACCOUNT if password else LIST_FAILED
        if _is_transport(failure):
            message = unreachable(credentials.base_url)
        results.append(CheckResult(LIST_REPOSITORIES, False, message, failure.detail))

    failed_tags = TAGS_FAILED_ACCOUNT if password else TAGS_FAILED
    try:
        if listed is None:
            listed = await _page(reader, repos, 1)
            names = _names(listed)
            first = names[0] if names else None
        if first is None:
            results.append(
                CheckResult(
                    VERIFY_TAG_ACCESS,
                    True,
                    f'Namespace "{namespace}" has no repositories yet; tag-access check skipped.',
                    TAGS_NOT_PROVEN,
                )
            )
        else:
            tags = await _page(reader, f"{repos}/{segment(first)}/tags", 1)
            results.append(
                CheckResult(
                    VERIFY_TAG_ACCESS,
                    True,
                    f'Successfully fetched tag listing for "{namespace}/{first}" '
                    f"({_count(tags)} tags).",
                )
            )
    except _Failed as failure:
        message = unreachable(credentials.base_url) if _is_transport(failure) else failed_tags
        results.append(CheckResult(VERIFY_TAG_ACCESS, False, message, failure.detail))
    return results


# -- organization connections ---------------------------------------------------------------


async def _exchange(reader: HubReader, credentials: Credentials) -> httpx.Response:
    """``POST /v2/auth/token`` with the organization token, without the client's auth (paced,
    and its 429s waited, as every read of the credential)."""
    body = {"identifier": credentials.identifier, "secret": credentials.secret}
    url = token_url_for(str(reader.client.base_url))
    return await reader.get(url, method="POST", json=body, auth=httpx.Auth())


def _org_failure(what: str, scope: str, org: str, failure: _Failed, base_url: str) -> str:
    if _is_transport(failure):
        return unreachable(base_url)
    status = failure.status
    if status == 401 or (status is None and "refused the credentials" in failure.detail):
        return (
            f"Unable to list organization {what}: Unauthorized. Docker Hub refused the "
            "Organization Access Token; verify it is active, has not expired and belongs to "
            f'"{org}".'
        )
    if status == 403:
        if failure.pat_not_allowed:
            return f"Unable to list organization {what}. {OAT_HINT}"
        return (
            f"Unable to list organization {what}: Forbidden. Ensure the Organization Access Token "
            f'has the {scope} scope on "{org}".'
        )
    if status == 404:
        return (
            f'Unable to list organization {what}: Organization not found. Verify that "{org}" '
            "is the organization's namespace on DockerHub (not its display name)."
        )
    return f"Unable to list organization {what}."


async def _org_checks(reader: HubReader, credentials: Credentials) -> list[CheckResult]:
    org = credentials.identifier
    results: list[CheckResult] = []
    try:
        response = await _exchange(reader, credentials)
        if response.status_code == 200:
            results.append(
                CheckResult(
                    VALIDATE_ORGANIZATION,
                    True,
                    f'Successfully authenticated with DockerHub as organization "{org}".',
                )
            )
        else:
            message = ORG_AUTH_UNAUTHORIZED if response.status_code == 401 else ORG_AUTH_FAILED
            results.append(
                CheckResult(VALIDATE_ORGANIZATION, False, message, hub_message(response))
            )
    except httpx.TransportError as exc:
        results.append(
            CheckResult(
                VALIDATE_ORGANIZATION,
                False,
                unreachable(credentials.base_url),
                f"transport: {type(exc).__name__}: {exc}",
            )
        )
    except RetryLater as exc:  # still rate limited, or asked to wait too long
        results.append(CheckResult(VALIDATE_ORGANIZATION, False, ORG_AUTH_FAILED, str(exc)))

    base = f"/v2/orgs/{segment(org)}"
    for name, what, path, scope, unit in (
        (LIST_ORG_MEMBERS, "members", f"{base}/members", "scope-member-read", "members"),
        (LIST_ORG_TEAMS, "teams", f"{base}/groups", "scope-group-read", "teams"),
    ):
        try:
            page = await _page(reader, path, 1)
            results.append(
                CheckResult(
                    name,
                    True,
                    f'Successfully listed {what} of the "{org}" organization '
                    f"({_count(page)} {unit}).",
                )
            )
        except _Failed as failure:
            results.append(
                CheckResult(
                    name,
                    False,
                    _org_failure(what, scope, org, failure, credentials.base_url),
                    failure.detail,
                )
            )
    return results


# -- running them ---------------------------------------------------------------------------


def _session(credentials: Credentials, transport: httpx.AsyncBaseTransport | None) -> HubSession:
    # A check waits a minute at most for a 429: someone is waiting for its answer.
    return HubSession(
        credentials, timeout=30.0, max_wait=_MAX_WAIT, transport=transport, max_retries=1
    )


async def run_checks_async(
    credentials: Credentials, *, transport: httpx.AsyncBaseTransport | None = None
) -> list[CheckResult]:
    """Every check of the connection's kind, in order."""
    async with _session(credentials, transport) as session:
        reader = session.reader
        checks: Callable[[HubReader, Credentials], Awaitable[list[CheckResult]]] = (
            _org_checks if credentials.kind == "oat" else _user_checks
        )
        return await checks(reader, credentials)


def run_checks(
    credentials: Credentials, *, transport: httpx.AsyncBaseTransport | None = None
) -> list[CheckResult]:
    """:func:`run_checks_async` from synchronous code."""
    return asyncio.run(run_checks_async(credentials, transport=transport))


async def verify_async(
    credentials: Credentials, *, transport: httpx.AsyncBaseTransport | None = None
) -> int:
    """List the repositories of the connection's namespace; returns how many there are.

    Raises :class:`~sink.errors.CredentialsError` (or :class:`~sink.errors.StopRun`) with the
    check's message and Hub's answer when the connection does not work.
    """
    async with _session(credentials, transport) as session:
        reader = session.reader
        path = f"/v2/namespaces/{segment(credentials.identifier)}/repositories"
        try:
            return _count(await _page(reader, path, 1))
        except _Failed as failure:
            if _is_transport(failure):
                raise StopRun(f"{unreachable(credentials.base_url)} ({failure.detail})") from None
            if credentials.kind == "oat":
                message = (
                    ORG_AUTH_UNAUTHORIZED
                    if failure.status in (None, 401)
                    else (
                        "Unable to list the organization's repositories with the Organization "
                        "Access Token."
                    )
                )
            elif credentials.kind == "password":
                message = AUTH_FAILED_ACCOUNT
            else:
                message = AUTH_FAILED
            if failure.pat_not_allowed:
                message = f"{message} {OAT_HINT}"
            raise CredentialsError(f"{message} ({failure.detail})") from None


def verify(credentials: Credentials, *, transport: httpx.AsyncBaseTransport | None = None) -> int:
    """:func:`verify_async` from synchronous code."""
    return asyncio.run(verify_async(credentials, transport=transport))


def all_passed(results: list[CheckResult]) -> bool:
    """Whether every check passed."""
    return all(result.ok for result in results)


def format_results(results: list[CheckResult]) -> str:
    """The checks for people: ``PASS``/``FAIL``, the name, the message, Hub's answer."""
    lines = []
    for result in results:
        lines.append(f"{'PASS' if result.ok else 'FAIL'}  {result.name}")
        lines.append(f"      {result.message}")
        if result.detail:
            lines.append(f"      ({result.detail})")
    passed = sum(result.ok for result in results)
    lines.append(f"{passed} of {len(results)} checks passed.")
    return "\n".join(lines)
