"""Helpers shared by the tests of outputs/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from sink.model import Outcome, Status, VaultEntry

PAT = "dckr_pat_Q3vN8kT2mL7xR5wB9cH1jF4yD6sA0gEp"

OAT = "dckr_oat_Z8bV1nM4kQ7wE2rT5yU9iO3pA6sD0fGh"

PASSWORD = "correct-horse-battery-staple"

JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJvY3RvIiwiZXhwIjoxNzAwMDAwNjAwfQ."
    "c2lnbmF0dXJlLXZhbHVl"
)

SECRETS = (PAT, OAT, PASSWORD, JWT)


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def pat_outcome(key: str = "k1") -> Outcome:
    entry = VaultEntry.from_body(
        (key,),
        "create-pat",
        {"uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "token_label": "ci"},
        {"token": PAT},
    )
    return Outcome(
        keys=(key,),
        status=Status.OK,
        http_status=201,
        body={"uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "token_label": "ci", "token": "***"},
        attempts=1,
        duration=0.05,
        template="create-pat",
        vault=entry,
    )
