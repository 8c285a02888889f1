"""Who sends the requests (sink/read/credentials.py): kinds, accepted kinds, base URLs checked;
the secret never in a repr or a message."""

from __future__ import annotations

import pytest

from sink.errors import ConfigError, NeedsOrgToken, StopRun
from sink.read.credentials import Credentials, check_accepted, kind_of
from tests.seed import ACME_OAT, ALICE_PASSWORD, ALICE_PAT


@pytest.mark.parametrize(
    ("secret", "kind"),
    [
        (ALICE_PAT, "pat"),
        (ACME_OAT, "oat"),
        (ALICE_PASSWORD, "password"),
        ("DCKR_PAT_upper-case-is-not-a-token", "password"),
        ("xdckr_pat_not-a-prefix", "password"),
    ],
)
def test_kind_of_reads_the_prefix(secret: str, kind: str) -> None:
    assert kind_of(secret) == kind


def test_repr_and_str_hide_the_secret() -> None:
    credentials = Credentials("https://hub.docker.com", "alice", ALICE_PAT, "pat")
    assert repr(credentials) == "Credentials('alice', pat, secret=***)"
    assert ALICE_PAT not in str(credentials) and ALICE_PAT not in f"{[credentials]}"


@pytest.mark.parametrize(
    "url", ["https://alice:pw@hub.docker.com", "http://hub.docker.com", "ftp://hub.docker.com"]
)
def test_credentials_are_refused_for_a_base_url_that_could_leak_them(url: str) -> None:
    with pytest.raises(ConfigError, match="base URL") as raised:
        Credentials(url, "alice", ALICE_PAT, "pat")
    assert ALICE_PAT not in str(raised.value)


def test_the_base_url_is_normalised() -> None:
    credentials = Credentials("HTTPS://Hub.Docker.com:443/", "alice", ALICE_PAT, "pat")
    assert credentials.base_url == "https://hub.docker.com"


def test_check_accepted_lets_an_accepted_kind_through() -> None:
    oat = Credentials("https://hub.docker.com", "acme", ACME_OAT, "oat")
    check_accepted(oat, ["pat", "oat"], "template create-repository")


def test_a_pat_where_an_oat_is_needed_says_how_to_make_one() -> None:
    pat = Credentials("https://hub.docker.com", "alice", ALICE_PAT, "pat")
    with pytest.raises(NeedsOrgToken) as raised:
        check_accepted(pat, ["oat"], "template list-org-tokens")
    assert str(raised.value) == (
        "template list-org-tokens needs an organization access token; the connection has a "
        "personal access token. Use an organization access token: identifier = the "
        "organization name, secret = dckr_oat_..."
    )
    assert isinstance(raised.value, StopRun)


def test_a_password_where_tokens_are_needed_is_a_config_error() -> None:
    password = Credentials("https://hub.docker.com", "alice", ALICE_PASSWORD, "password")
    with pytest.raises(ConfigError) as raised:
        check_accepted(password, ["pat", "oat"], "template delete-repository")
    assert not isinstance(raised.value, NeedsOrgToken)
    assert str(raised.value) == (
        "template delete-repository needs a personal access token or an organization access "
        "token; the connection has a password"
    )
    assert ALICE_PASSWORD not in str(raised.value)


def test_an_oat_where_a_pat_is_needed_names_both_kinds_without_the_hint() -> None:
    oat = Credentials("https://hub.docker.com", "acme", ACME_OAT, "oat")
    with pytest.raises(ConfigError) as raised:
        check_accepted(oat, ["pat"], "template create-pat")
    assert str(raised.value) == (
        "template create-pat needs a personal access token; the connection has an "
        "organization access token"
    )
