"""Stored connections: Docker Hub credentials kept once, encrypted at rest, used by name.

A connection has a kind (``personal``: username + personal access token; ``organization``:
organization name + organization access token; ``password``: username + password), an instance
name (how configs and commands refer to it) and a base URL. The store is one JSON file,
``connections.json``, in the store folder (``$SINK_HOME``, else ``$XDG_CONFIG_HOME/sink``, else
``~/.config/sink``); the secrets in it are Fernet tokens (``cryptography``). The key is kept in
the OS keyring when the optional ``keyring`` package has a usable backend, else in the file
``key`` (mode 0600) beside the store; the store file records which, so that a key that moved
is not silently replaced by a new one. ``SINK_KEYRING=off`` keeps the key in the file.

Validation follows the messages users know from Docker Hub integrations: see
:func:`field_problem`, :func:`new_connection` and :func:`edited_connection`.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import orjson
from cryptography.fernet import Fernet, InvalidToken

from sink.credentials import Credentials, Kind
from sink.errors import ConfigError

ConnectionKind = Literal["personal", "organization", "password"]
KINDS: tuple[ConnectionKind, ...] = ("personal", "organization", "password")
CREDENTIAL_KIND: dict[ConnectionKind, Kind] = {
    "personal": "pat",
    "organization": "oat",
    "password": "password",
}
DEFAULT_BASE_URL = "https://hub.docker.com"
STORE_FILE = "connections.json"
KEY_FILE = "key"
KEYRING_SERVICE = "sink"

REQUIRED = "This field is required"
"""What an empty field says (the field itself is named by the caller)."""

INSTANCE_NAME_REQUIRED = (
    "Instance Name is required to distinguish multiple DockerHub connections."
)
_IDENTIFIER_LABEL: dict[ConnectionKind, str] = {
    "personal": "Username",
    "organization": "Organization Name",
    "password": "Username",
}
_SECRET_LABEL: dict[ConnectionKind, str] = {
    "personal": "Personal Access Token",
    "organization": "Organization Access Token",
    "password": "Password",
}
_BASE_URL = re.compile(r"^https?://[^/\s?#]+/?$")

Field = Literal["name", "identifier", "secret", "base_url"]


def identifier_label(kind: ConnectionKind) -> str:
    """What the identifier is called for this kind (``Username``, ``Organization Name``)."""
    return _IDENTIFIER_LABEL[kind]


def secret_label(kind: ConnectionKind) -> str:
    """What the secret is called for this kind (``Personal Access Token``, ...)."""
    return _SECRET_LABEL[kind]


def field_label(kind: ConnectionKind, which: Field) -> str:
    """The name of a field as prompts and messages show it."""
    if which == "identifier":
        return identifier_label(kind)
    if which == "secret":
        return secret_label(kind)
    return "Instance Name" if which == "name" else "Base URL"


def missing_message(kind: ConnectionKind, which: Field) -> str:
    """The message for a required field that is missing or only spaces."""
    if which == "name":
        return INSTANCE_NAME_REQUIRED
    return f"{field_label(kind, which)} is required."


def edit_missing_message(kind: ConnectionKind) -> str:
    """The message of an edit that leaves a required field without any value."""
    return (
        f"{identifier_label(kind)}, {secret_label(kind)}, and Instance Name are required."
    )


def field_problem(kind: ConnectionKind, which: Field, value: str | None) -> str | None:
    """What is wrong with one field's value as typed, or ``None``.

    ``""`` (nothing typed) → :data:`REQUIRED`; ``None`` (not given) or only spaces → the
    field's own message (``Username is required.``, ...). Names and identifiers are trimmed
    before they are checked; a secret is checked as it is, after trimming its ends.
    """
    if value == "":
        return REQUIRED
    if value is None or not value.strip():
        return missing_message(kind, which)
    text = value.strip()
    if which == "secret":
        return _secret_problem(kind, text)
    if which == "base_url" and not _BASE_URL.match(text):
        return "Base URL must be a scheme and host only, like https://hub.docker.com"
    if which == "name" and len(text) > 100:
        return "Instance Name must be at most 100 characters."
    if which == "identifier" and any(c.isspace() for c in text):
        return f"{identifier_label(kind)} cannot contain spaces."
    return None


def _secret_problem(kind: ConnectionKind, secret: str) -> str | None:
    if kind == "personal" and secret.startswith("dckr_oat_"):
        return (
            "This is an organization access token (dckr_oat_...), not a Personal Access Token: "
            "add it as an organization connection (--kind organization)."
        )
    if kind == "organization" and secret.startswith("dckr_pat_"):
        return (
            "This is a personal access token (dckr_pat_...), not an Organization Access Token: "
            "add it as a personal connection (--kind personal)."
        )
    return None


@dataclass(frozen=True)
class Connection:
    """A stored connection with its secret in clear (never printed: see ``__repr__``)."""

    name: str
    kind: ConnectionKind
    identifier: str
    secret: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL

    def __repr__(self) -> str:
        return (
            f"Connection({self.name!r}, {self.kind}, {self.identifier!r}, "
            f"{self.base_url!r}, secret=***)"
        )

    def credentials(self, base_url: str | None = None) -> Credentials:
        """The credentials the dispatcher and the read client use."""
        return Credentials(
            (base_url or self.base_url).rstrip("/"),
            self.identifier,
            self.secret,
            CREDENTIAL_KIND[self.kind],
        )

    def masked_secret(self) -> str:
        """Bullets plus the last four characters (bullets only for a password)."""
        if self.kind == "password" or len(self.secret) < 12:
            return "•" * 8
        return "•" * 8 + self.secret[-4:]


def _problems(kind: ConnectionKind, values: dict[Field, str | None]) -> list[str]:
    found = []
    order: tuple[Field, ...] = ("identifier", "secret", "name", "base_url")
    for which in order:
        problem = field_problem(kind, which, values[which])
        if problem == REQUIRED:
            problem = f"{field_label(kind, which)}: {REQUIRED}"
        if problem is not None:
            found.append(problem)
    return found


def check_kind(kind: str | None) -> ConnectionKind:
    """A connection kind, or a :class:`ConfigError` naming the valid ones."""
    if kind not in KINDS:
        raise ConfigError(f"unknown connection kind {kind!r}: use one of {', '.join(KINDS)}")
    return kind


def new_connection(
    kind: str,
    *,
    name: str | None,
    identifier: str | None,
    secret: str | None,
    base_url: str | None = None,
) -> Connection:
    """A validated new connection; a :class:`ConfigError` lists every problem.

    ``base_url`` ``None`` means the default, ``https://hub.docker.com``.
    """
    checked = check_kind(kind)
    url = DEFAULT_BASE_URL if base_url is None else base_url
    problems = _problems(
        checked, {"name": name, "identifier": identifier, "secret": secret, "base_url": url}
    )
    if problems:
        raise ConfigError(" ".join(problems))
    assert name is not None and identifier is not None and secret is not None
    return Connection(
        name.strip(), checked, identifier.strip(), secret.strip(), url.strip().rstrip("/")
    )


def edited_connection(
    stored: Connection | None,
    *,
    kind: str | None = None,
    name: str | None = None,
    identifier: str | None = None,
    secret: str | None = None,
    base_url: str | None = None,
) -> Connection:
    """``stored`` with the given fields changed; a field left empty (``None``, ``""`` or only
    spaces) keeps its stored value, so a connection can be renamed without its token.

    A change of kind needs a new identifier and secret (a personal token is no organization
    token). When a required field has no value at all, the edit is refused with
    :func:`edit_missing_message`.
    """
    new_kind = check_kind(kind) if kind else (stored.kind if stored else "personal")

    def keep(given: str | None, old: str | None) -> str | None:
        return given.strip() if given is not None and given.strip() else old

    same_kind = stored is not None and stored.kind == new_kind
    values: dict[Field, str | None] = {
        "name": keep(name, stored.name if stored else None),
        "identifier": keep(identifier, stored.identifier if same_kind and stored else None),
        "secret": keep(secret, stored.secret if same_kind and stored else None),
        "base_url": keep(base_url, stored.base_url if stored else DEFAULT_BASE_URL),
    }
    if not values["name"] or not values["identifier"] or not values["secret"]:
        raise ConfigError(edit_missing_message(new_kind))
    problems = _problems(new_kind, values)
    if problems:
        raise ConfigError(" ".join(problems))
    return new_connection(
        new_kind,
        name=values["name"],
        identifier=values["identifier"],
        secret=values["secret"],
        base_url=values["base_url"],
    )


# -- where things are kept -------------------------------------------------------------------


def store_folder() -> Path:
    """``$SINK_HOME``, else ``$XDG_CONFIG_HOME/sink``, else ``~/.config/sink``."""
    home = os.environ.get("SINK_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg:
        return Path(xdg).expanduser() / "sink"
    return Path.home() / ".config" / "sink"


class KeyringLike(Protocol):
    """The part of the ``keyring`` module the store uses."""

    def get_password(self, service_name: str, username: str) -> str | None:
        """The stored value, or ``None``."""

    def set_password(self, service_name: str, username: str, password: str) -> None:
        """Store a value."""


def system_keyring() -> KeyringLike | None:
    """The ``keyring`` module when it is installed and has a usable backend, else ``None``.

    ``SINK_KEYRING=off`` (or ``0``, ``no``) turns it off.
    """
    if os.environ.get("SINK_KEYRING", "").strip().lower() in ("off", "0", "no", "false"):
        return None
    try:
        import keyring  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
        priority = float(getattr(backend, "priority", 0))
    except Exception:  # noqa: BLE001 - any failure means no usable keyring
        return None
    module = type(backend).__module__
    if priority <= 0 or module.endswith((".fail", ".null")):
        return None
    return cast(KeyringLike, keyring)


_UNSET: Any = object()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ConnectionInfo:
    """What ``list`` shows of a connection: everything but the secret."""

    name: str
    kind: ConnectionKind
    identifier: str
    base_url: str
    created_at: str = ""
    updated_at: str = ""


class ConnectionStore:
    """The stored connections of one folder (default :func:`store_folder`).

    ``keyring`` is a keyring-like object for the key, ``None`` for the key file, or left out to
    use :func:`system_keyring` when a new store is created.
    """

    def __init__(self, folder: Path | None = None, *, keyring: KeyringLike | None = _UNSET):
        self.folder = folder if folder is not None else store_folder()
        self.path = self.folder / STORE_FILE
        self.key_path = self.folder / KEY_FILE
        self._keyring = keyring

    # -- the document ---------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {"version": 1, "key": None, "connections": {}}
        except OSError as exc:
            raise ConfigError(f"cannot read the connection store {self.path}: {exc}") from exc
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"the connection store {self.path} is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("connections"), dict):
            raise ConfigError(f"the connection store {self.path} is damaged (no connections)")
        return doc

    def _write(self, doc: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        handle, temp = tempfile.mkstemp(prefix=".connections-", dir=self.folder)
        try:
            os.fchmod(handle, 0o600)
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    # -- the key --------------------------------------------------------------------------

    def _keyring_account(self) -> str:
        return f"connections:{self.folder.resolve()}"

    def _chosen_keyring(self) -> KeyringLike | None:
        return system_keyring() if self._keyring is _UNSET else self._keyring

    def _key(self, doc: dict[str, Any], *, create: bool) -> bytes | None:
        """The store's key; a new one (recorded in ``doc``) when ``create`` and there is none."""
        source = doc.get("key")
        if source is None:
            if not create:
                return None
            key = Fernet.generate_key()
            ring = self._chosen_keyring()
            if ring is not None:
                ring.set_password(KEYRING_SERVICE, self._keyring_account(), key.decode())
                doc["key"] = "keyring"
            else:
                self._write_key_file(key)
                doc["key"] = "file"
            return key
        if source == "keyring":
            ring = self._chosen_keyring()
            if ring is None:
                raise ConfigError(
                    f"the key of the connection store {self.path} is in the OS keyring, which "
                    "is not available here (install the keyring package, or unset SINK_KEYRING)"
                )
            value = ring.get_password(KEYRING_SERVICE, self._keyring_account())
            return value.encode() if value else None
        try:
            return self.key_path.read_bytes().strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read the key file {self.key_path}: {exc}") from exc

    def _write_key_file(self, key: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        handle = os.open(self.key_path, flags, 0o600)
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "wb") as out:
            out.write(key + b"\n")
            out.flush()
            os.fsync(out.fileno())

    def _key_place(self, doc: dict[str, Any]) -> str:
        if doc.get("key") == "keyring":
            return f"the OS keyring entry {KEYRING_SERVICE}/{self._keyring_account()}"
        return f"the key file {self.key_path}"

    def _decrypt(self, doc: dict[str, Any], name: str, token: str) -> str:
        key = self._key(doc, create=False)
        if key is None:
            raise ConfigError(
                f"cannot decrypt the stored secret of connection {name!r}: the key is missing "
                f"({self._key_place(doc)} is gone); add the connection again with "
                f"`sink connection edit {name} --token-stdin`"
            )
        try:
            return Fernet(key).decrypt(token.encode()).decode()
        except (InvalidToken, ValueError) as exc:
            raise ConfigError(
                f"cannot decrypt the stored secret of connection {name!r}: the key does not "
                f"match the one it was encrypted with ({self._key_place(doc)} was replaced "
                f"or belongs to another store); enter the secret again with "
                f"`sink connection edit {name} --token-stdin`"
            ) from exc

    # -- the connections ------------------------------------------------------------------

    def entries(self) -> list[ConnectionInfo]:
        """Every connection, by name, without secrets (nothing is decrypted)."""
        doc = self._read()
        return [_info(name, entry) for name, entry in sorted(doc["connections"].items())]

    def names(self) -> list[str]:
        """The instance names, sorted."""
        return sorted(self._read()["connections"])

    def get(self, name: str) -> Connection:
        """The connection ``name`` with its secret decrypted."""
        doc = self._read()
        entry = doc["connections"].get(name)
        if entry is None:
            raise ConfigError(_unknown(name, sorted(doc["connections"])))
        info = _info(name, entry)
        secret = self._decrypt(doc, name, str(entry.get("secret", "")))
        return Connection(info.name, info.kind, info.identifier, secret, info.base_url)

    def info(self, name: str) -> ConnectionInfo:
        """The connection ``name`` without its secret."""
        doc = self._read()
        entry = doc["connections"].get(name)
        if entry is None:
            raise ConfigError(_unknown(name, sorted(doc["connections"])))
        return _info(name, entry)

    def add(self, connection: Connection) -> None:
        """Store a new connection; its name must be free."""
        doc = self._read()
        if connection.name in doc["connections"]:
            raise ConfigError(
                f"a connection named {connection.name!r} already exists; change it with "
                f"`sink connection edit {connection.name}` or pick another Instance Name"
            )
        self._put(doc, connection, created=_now())

    def replace(self, old_name: str, connection: Connection) -> None:
        """Replace the connection ``old_name`` by ``connection`` (which may be renamed)."""
        doc = self._read()
        entry = doc["connections"].get(old_name)
        if entry is None:
            raise ConfigError(_unknown(old_name, sorted(doc["connections"])))
        if connection.name != old_name and connection.name in doc["connections"]:
            raise ConfigError(f"a connection named {connection.name!r} already exists")
        del doc["connections"][old_name]
        self._put(doc, connection, created=str(entry.get("created_at", "")) or _now())

    def remove(self, name: str) -> None:
        """Forget the connection ``name``."""
        doc = self._read()
        if name not in doc["connections"]:
            raise ConfigError(_unknown(name, sorted(doc["connections"])))
        del doc["connections"][name]
        self._write(doc)

    def _put(self, doc: dict[str, Any], connection: Connection, *, created: str) -> None:
        key = self._key(doc, create=True)
        if key is None:
            raise ConfigError(
                f"cannot store the secret of connection {connection.name!r}: the key is "
                f"missing ({self._key_place(doc)} is gone)"
            )
        token = Fernet(key).encrypt(connection.secret.encode()).decode()
        doc["connections"][connection.name] = {
            "kind": connection.kind,
            "identifier": connection.identifier,
            "base_url": connection.base_url,
            "secret": token,
            "created_at": created,
            "updated_at": _now(),
        }
        self._write(doc)


def _info(name: str, entry: Any) -> ConnectionInfo:
    if not isinstance(entry, dict) or entry.get("kind") not in KINDS:
        raise ConfigError(f"the stored connection {name!r} is damaged; remove and add it again")
    return ConnectionInfo(
        name=name,
        kind=entry["kind"],
        identifier=str(entry.get("identifier", "")),
        base_url=str(entry.get("base_url") or DEFAULT_BASE_URL),
        created_at=str(entry.get("created_at", "")),
        updated_at=str(entry.get("updated_at", "")),
    )


def _unknown(name: str, known: list[str]) -> str:
    listed = ", ".join(known) if known else "none yet; add one with `sink connection add`"
    return f"no stored connection named {name!r} (stored: {listed})"


def load_credentials(name: str, *, base_url: str | None = None) -> Credentials:
    """The credentials of the stored connection ``name`` (for ``connection: {name: ...}``).

    ``base_url`` overrides the stored one (``--base-url``, e.g. a simulator).
    """
    return ConnectionStore().get(name).credentials(base_url)
