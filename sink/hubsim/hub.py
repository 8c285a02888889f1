"""The simulated Hub: state, token exchange and bearer checks, audit recording."""

from __future__ import annotations

import math
import time
import uuid
from pathlib import Path
from typing import Any

from sink.hubsim import tokens
from sink.hubsim.access import ANONYMOUS, Principal
from sink.hubsim.errors import unauthorized
from sink.hubsim.seed import load_state, read_seed
from sink.hubsim.state import AuditEvent, State, now_iso, parse_time

# Claim carrying what the bearer was exchanged from (see README: "Tokens").
SOURCE_CLAIM = "https://hub.docker.com"
_CACHE_LIMIT = 10_000


class Hub:
    """One simulated Docker Hub: holds the state and answers "who is this bearer?"."""

    def __init__(self, seed: str | Path | dict[str, Any] | None, *, jwt_ttl: float = 600) -> None:
        self.seed_doc = read_seed(seed)
        self.state: State = load_state(self.seed_doc)
        self.jwt_ttl = jwt_ttl
        self.key = tokens.new_signing_key()
        self._claims: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        """Back to the seed (bearers already issued stay valid while their credential exists)."""
        self.state = load_state(self.seed_doc)

    # token exchange
    def exchange(self, identifier: str, secret: str) -> tuple[str, str]:
        """Trade ``identifier`` + ``secret`` (password, PAT or OAT) for a JWT.

        Returns ``(jwt, credential)`` where ``credential`` names the credential for logs.
        """
        state = self.state
        now = time.time()
        if secret.startswith("dckr_oat_"):
            oat = state.oat_secrets.get(secret)
            if oat is None or oat.org.lower() != identifier.lower() or not oat.is_active:
                raise unauthorized("incorrect authentication credentials")
            if oat.expires_at is not None and parse_time(oat.expires_at) <= now:
                raise unauthorized("incorrect authentication credentials: the token has expired")
            oat.last_used_at = now_iso()
            cred = f"oat:{oat.org}:{oat.id}"
            return self._issue("oat", oat.org, cred, [], now), cred
        user = state.user(identifier)
        if user is None:
            raise unauthorized("incorrect authentication credentials")
        if secret.startswith("dckr_pat_"):
            pat = state.pat_secrets.get(secret)
            if pat is None or pat.username != user.username or not pat.is_active:
                raise unauthorized("incorrect authentication credentials")
            if pat.expires_at is not None and parse_time(pat.expires_at) <= now:
                raise unauthorized("incorrect authentication credentials: the token has expired")
            pat.last_used = now_iso()
            cred = f"pat:{user.username}:{pat.uuid}"
            return self._issue("pat", user.username, cred, list(pat.scopes), now), cred
        if secret != user.password:
            raise unauthorized("incorrect authentication credentials")
        cred = f"password:{user.username}"
        return self._issue("password", user.username, cred, ["repo:admin"], now), cred

    def _issue(self, kind: str, subject: str, cred: str, scopes: list[str], now: float) -> str:
        claims = {
            "iss": "hubsim",
            "sub": subject,
            "iat": int(now),
            "exp": math.ceil(now + self.jwt_ttl),
            "jti": str(uuid.uuid4()),
            SOURCE_CLAIM: {
                "source": {"type": kind, "id": cred},
                "username": subject,
                "scopes": scopes,
            },
        }
        return tokens.encode(claims, self.key)

    # bearer checks
    def claims(self, bearer: str) -> dict[str, Any] | None:
        """The verified claims of ``bearer`` (cached), or ``None`` if it is not ours."""
        found = self._claims.get(bearer)
        if found is None:
            try:
                found = tokens.decode(bearer, self.key)
            except tokens.InvalidToken:
                return None
            if len(self._claims) >= _CACHE_LIMIT:
                self._claims.clear()
            self._claims[bearer] = found
        return found

    def principal(self, authorization: str | None, *, optional: bool = False) -> Principal:
        """The caller behind an ``Authorization`` header value.

        No header: anonymous if ``optional``, else 401. A bearer that is malformed, not signed
        by this simulator, expired, or whose credential was deleted or disabled: 401.
        """
        if not authorization:
            if optional:
                return ANONYMOUS
            raise unauthorized("authentication required")
        scheme, _, bearer = authorization.partition(" ")
        if scheme.lower() != "bearer" or not bearer:
            raise unauthorized("authentication required: use Authorization: Bearer <token>")
        claims = self.claims(bearer.strip())
        if claims is None:
            raise unauthorized("invalid token")
        if claims.get("exp", 0) <= time.time():
            raise unauthorized("token expired")
        return self._resolve(claims)

    def _resolve(self, claims: dict[str, Any]) -> Principal:
        source = claims.get(SOURCE_CLAIM, {})
        kind = source.get("source", {}).get("type")
        cred = source.get("source", {}).get("id", "")
        name = claims.get("sub", "")
        state = self.state
        if kind == "oat":
            token_id = cred.rsplit(":", 1)[-1]
            org = state.org(name)
            oat = org.tokens.get(token_id) if org is not None else None
            if oat is None or not oat.is_active:
                raise unauthorized("the access token was revoked")
            return Principal("oat", org.name if org else name, cred, token=oat)
        user = state.user(name)
        if user is None:
            raise unauthorized("unknown user")
        if kind == "pat":
            pat = state.pats.get(cred.rsplit(":", 1)[-1])
            if pat is None or not pat.is_active:
                raise unauthorized("the personal access token was revoked")
            return Principal("pat", user.username, cred, tuple(pat.scopes), user=user)
        if kind == "password":
            return Principal("password", user.username, cred, ("repo:admin",), user=user)
        raise unauthorized("invalid token")

    def credential_of(self, authorization: str | None) -> str | None:
        """The credential name behind a header, without any check but the signature."""
        if not authorization or authorization[:7].lower() != "bearer ":
            return None
        claims = self.claims(authorization[7:].strip())
        if claims is None:
            return None
        source = claims.get(SOURCE_CLAIM, {}).get("source", {})
        cred = source.get("id")
        return cred if isinstance(cred, str) else None

    # audit log
    def record(
        self,
        account: str,
        action: str,
        name: str,
        actor: Principal,
        description: str,
        data: dict[str, str] | None = None,
    ) -> None:
        """Append an audit-log event; the actor of an OAT is shown as the org's token."""
        actor_name = actor.name if actor.kind != "oat" else f"{actor.name} (access token)"
        self.state.audit.append(
            AuditEvent(account, action, name, actor_name, data or {}, now_iso(), description)
        )
