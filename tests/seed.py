"""Fake credentials of the simulator's default seed (``sink/hubsim/default_seed.yaml``)."""

from __future__ import annotations

ACME_OAT = "dckr_oat_mGUb8viwoTjRp7goKqWQNFHBziuPKlbZ"  # acme's "sink automation" token
OAT = ACME_OAT
ALICE_PAT = "dckr_pat_FvTMFWrwCWop3eZI7ZJnPH49XBd"  # repo:admin
ALICE_PASSWORD = "correct-horse-battery"
