"""The default seed's fake credentials, and the token exchange the tests use."""

from __future__ import annotations

import httpx

# Fake credentials of the default seed (sink/hubsim/default_seed.yaml).
PASSWORDS = {
    "alice": "correct-horse-battery",
    "bob": "bob-builds-things-42",
    "carol": "carol-sings-in-c",
    "dave": "dave-is-not-in-acme",
    "erin": "erin-edits-everything",
}
PATS = {
    "alice": "dckr_pat_FvTMFWrwCWop3eZI7ZJnPH49XBd",  # repo:admin
    "alice-read": "dckr_pat_01F-owMhP_mCizGOBaQnl-19m05",  # repo:read
    "bob": "dckr_pat_MWx9xQj7rjDsXc9HzOw5Lit_Q3m",  # repo:write
    "dave": "dckr_pat_PjSxslE75h9kFU4a9ZcOGqhk2vC",  # repo:admin
}
OATS = {
    "acme": "dckr_oat_mGUb8viwoTjRp7goKqWQNFHBziuPKlbZ",  # the "sink automation" token
    "acme-auditor": "dckr_oat_u8xIFpZoivCjKg2bPCWnpSnDSqmKQcRA",  # read-only, no repo list
}


def exchange(client: httpx.Client, identifier: str, secret: str) -> str:
    """Trade a credential for a JWT (asserting success)."""
    response = client.post("/v2/auth/token", json={"identifier": identifier, "secret": secret})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token
