"""Health checks through the simulator: each message byte for byte, and the exit codes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sink.hubsim import Simulator
from sink.hubsim.seed import default_seed_text
from sink.read.checks import (
    AUTH_FAILED,
    LIST_FAILED,
    OAT_HINT,
    ORG_AUTH_UNAUTHORIZED,
    TAGS_FAILED,
    TAGS_NOT_PROVEN,
    CheckResult,
    run_checks,
    run_checks_async,
)
from sink.read.credentials import Credentials
from tests.seed import ACME_OAT, ALICE_PAT

DAVE_PAT = "dckr_pat_PjSxslE75h9kFU4a9ZcOGqhk2vC"
MEMBERS_ONLY_OAT = "dckr_oat_Hq3LmZ8rTx2VwN5kPb7cJd9fYg4sAe6u"
REVOKED_PAT = "dckr_pat_Xw4Lq9Zr2Tn8Vb5Kc3Md7Hf1Gj"


def seed() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(default_seed_text())
    acme = next(org for org in doc["orgs"] if org["name"] == "acme")
    acme["access_tokens"].append(
        {
            "label": "members only",
            "token": MEMBERS_ONLY_OAT,
            "created_by": "alice",
            "resources": [{"type": "TYPE_ORG", "path": "acme", "scopes": ["scope-member-read"]}],
        }
    )
    return doc


@pytest.fixture(scope="module")
def hub() -> Iterator[Simulator]:
    with Simulator(seed()) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def fresh(hub: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.reset()
    monkeypatch.setenv("SINK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SINK_KEYRING", "off")


def check(hub: Simulator, identifier: str, secret: str, kind: str) -> list[CheckResult]:
    return run_checks(Credentials(hub.url, identifier, secret, kind))  # type: ignore[arg-type]


def messages(results: list[CheckResult]) -> list[tuple[str, bool, str]]:
    return [(r.name, r.ok, r.message) for r in results]


def test_personal_checks_pass(hub: Simulator) -> None:
    results = check(hub, "alice", ALICE_PAT, "pat")
    assert messages(results) == [
        (
            "Validate DockerHub API Connection",
            True,
            'Successfully authenticated with DockerHub as "alice" (2 repositories in namespace).',
        ),
        (
            "List DockerHub Repositories",
            True,
            "Successfully listed repositories in the alice namespace (2 total).",
        ),
        (
            "Verify DockerHub Tag Access",
            True,
            'Successfully fetched tag listing for "alice/hello-world" (2 tags).',
        ),
    ]
    assert results[1].detail == "repositories: hello-world, notes"


def test_an_empty_namespace_skips_the_tag_check_and_says_so(hub: Simulator) -> None:
    results = check(hub, "dave", DAVE_PAT, "pat")
    assert messages(results) == [
        (
            "Validate DockerHub API Connection",
            True,
            'Successfully authenticated with DockerHub as "dave" (0 repositories in namespace).',
        ),
        (
            "List DockerHub Repositories",
            True,
            "Successfully listed repositories in the dave namespace (0 total).",
        ),
        (
            "Verify DockerHub Tag Access",
            True,
            'Namespace "dave" has no repositories yet; tag-access check skipped.',
        ),
    ]
    assert results[2].detail == TAGS_NOT_PROVEN
    assert "does not prove tag access" in results[2].detail


def test_a_revoked_token_fails_every_personal_check(hub: Simulator) -> None:
    results = check(hub, "alice", REVOKED_PAT, "pat")
    assert messages(results) == [
        (
            "Validate DockerHub API Connection",
            False,
            "Unable to authenticate with DockerHub. Verify the username and Personal Access "
            "Token, and confirm the PAT has not been revoked.",
        ),
        (
            "List DockerHub Repositories",
            False,
            "Unable to list DockerHub repositories. Ensure the Personal Access Token has at least "
            "the Public Repo Read scope, and that the configured username matches a real "
            "DockerHub namespace.",
        ),
        (
            "Verify DockerHub Tag Access",
            False,
            "Unable to fetch tag listings. This typically indicates the PAT lacks Repo:Read scope, "
            "or the repository in the namespace is private and the PAT does not have access to "
            "it.",
        ),
    ]
    assert [r.message for r in results] == [AUTH_FAILED, LIST_FAILED, TAGS_FAILED]
    assert "incorrect authentication credentials" in results[0].detail
    assert all(REVOKED_PAT not in r.detail for r in results)


def test_a_failing_tag_listing_fails_only_the_tag_check(hub: Simulator) -> None:
    hub.set_faults(
        {
            "rules": [
                {
                    "method": "GET",
                    "error_rate": 1,
                    "error_statuses": [500],
                    "path": "/v2/namespaces/{ns}/repositories/{repo}/tags",
                }
            ]
        }
    )
    results = check(hub, "alice", ALICE_PAT, "pat")
    assert [r.ok for r in results] == [True, True, False]
    assert results[2].message == TAGS_FAILED
    assert results[2].detail.startswith("HTTP 500")


def test_the_organization_token_hint(hub: Simulator) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/auth/token":
            return httpx.Response(200, json={"access_token": "not.a.jwt"})
        return httpx.Response(
            403,
            json={
                "message": "token issued from personal access token is not allowed",
                "errinfo": None,
            },
        )

    credentials = Credentials("https://hub.example.test", "alice", ALICE_PAT, "pat")
    results = asyncio.run(run_checks_async(credentials, transport=httpx.MockTransport(answer)))
    assert results[0].message == f"{AUTH_FAILED} {OAT_HINT}"
    assert "organization connection" in results[0].message
    assert results[1].message == LIST_FAILED


def test_organization_checks_pass(hub: Simulator) -> None:
    results = check(hub, "acme", ACME_OAT, "oat")
    assert messages(results) == [
        (
            "Validate DockerHub Organization Access Token",
            True,
            'Successfully authenticated with DockerHub as organization "acme".',
        ),
        (
            "List DockerHub Organization Members",
            True,
            'Successfully listed members of the "acme" organization (4 members).',
        ),
        (
            "List DockerHub Organization Teams",
            True,
            'Successfully listed teams of the "acme" organization (2 teams).',
        ),
    ]


def test_an_unauthorized_organization_token_is_explained(hub: Simulator) -> None:
    results = check(hub, "acme", "dckr_oat_Revoked0000000000000000000000", "oat")
    assert messages(results) == [
        ("Validate DockerHub Organization Access Token", False, ORG_AUTH_UNAUTHORIZED),
        (
            "List DockerHub Organization Members",
            False,
            "Unable to list organization members: Unauthorized. Docker Hub refused the "
            "Organization Access Token; verify it is active, has not expired and belongs to "
            '"acme".',
        ),
        (
            "List DockerHub Organization Teams",
            False,
            "Unable to list organization teams: Unauthorized. Docker Hub refused the "
            "Organization Access Token; verify it is active, has not expired and belongs to "
            '"acme".',
        ),
    ]
    assert ORG_AUTH_UNAUTHORIZED.startswith("Unable to authenticate with DockerHub: Unauthorized.")


def test_a_missing_scope_is_explained(hub: Simulator) -> None:
    results = check(hub, "acme", MEMBERS_ONLY_OAT, "oat")
    assert [r.ok for r in results] == [True, True, False]
    assert results[2].message == (
        "Unable to list organization teams: Forbidden. Ensure the Organization Access Token "
        'has the scope-group-read scope on "acme".'
    )
    assert "scope-group-read" in results[2].detail


def test_an_unknown_organization_is_explained() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/auth/token":
            return httpx.Response(200, json={"access_token": "not.a.jwt"})
        return httpx.Response(404, json={"message": "organization 'acne' not found"})

    credentials = Credentials("https://hub.example.test", "acne", ACME_OAT, "oat")
    results = asyncio.run(run_checks_async(credentials, transport=httpx.MockTransport(answer)))
    assert results[0].ok
    assert results[1].message == (
        'Unable to list organization members: Organization not found. Verify that "acne" is '
        "the organization's namespace on DockerHub (not its display name)."
    )
    assert results[2].message.startswith(
        "Unable to list organization teams: Organization not found."
    )


def test_the_organization_token_exchange_is_a_read_of_the_credential() -> None:
    # Paced and retried as every read: a 502 from the exchange is sent again, not a failure.
    exchanges: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/auth/token":
            exchanges.append(1)
            if len(exchanges) == 1:
                return httpx.Response(502, json={"message": "bad gateway"})
            return httpx.Response(200, json={"access_token": "eyJh.eyJ9.c2ln"})
        return httpx.Response(200, json={"count": 3, "results": []})

    credentials = Credentials("https://hub.example.test", "acme", ACME_OAT, "oat")
    results = asyncio.run(run_checks_async(credentials, transport=httpx.MockTransport(answer)))
    assert [r.ok for r in results] == [True, True, True]
    assert results[0].message == 'Successfully authenticated with DockerHub as organization "acme".'


def test_a_rate_limited_organization_token_exchange_fails_its_check_only() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/auth/token":
            return httpx.Response(429, headers={"Retry-After": "3600"}, json={"detail": "slow"})
        return httpx.Response(200, json={"count": 0, "results": []})

    credentials = Credentials("https://hub.example.test", "acme", ACME_OAT, "oat")
    results = asyncio.run(run_checks_async(credentials, transport=httpx.MockTransport(answer)))
    assert results[0].ok is False
    assert (
        results[0].message
        == "Unable to authenticate with DockerHub using the Organization Access Token."
    )
    assert "Retry-After: 3600" in results[0].detail


def test_an_unreachable_hub_is_not_called_an_authentication_failure() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    credentials = Credentials("https://hub.example.test", "alice", ALICE_PAT, "pat")
    results = asyncio.run(run_checks_async(credentials, transport=httpx.MockTransport(answer)))
    assert [r.ok for r in results] == [False, False, False]
    assert all(
        r.message.startswith("Unable to reach DockerHub at https://hub.example.test")
        for r in results
    )
