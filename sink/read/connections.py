"""Stored connections: Docker Hub credentials kept once, encrypted at rest, used by name.

A connection has a kind (``personal``: username + personal access token; ``organization``:
organization name + organization access token; ``password``: username + password), an instance
name (how configs and commands refer to it) and a base URL. The store is one JSON file,
``connections.json``, in the store folder (``$SINK_HOME``, else ``$XDG_CONFIG_HOME/sink``, else
``~/.config/sink``); the secrets in it are Fernet tokens (``cryptography``).

The key is kept apart from the store, so that whoever reads (or copies, or backs up) the store
folder cannot decrypt it: in the OS keyring when the optional ``keyring`` package has a usable
backend, else in a key file outside the store folder (:func:`key_file_path`: ``$SINK_KEY_FILE``,
else ``$XDG_STATE_HOME/sink/connections.key``, else, when ``$SINK_HOME`` is set,
``$SINK_HOME-key/connections.key``, else ``~/.local/state/sink/connections.key``), mode 0600
in a folder created 0700. A key file that group or others may read, that another user owns,
or that is a symlink is refused. The store file records where the key is, so that a key that
moved is not silently replaced by a new one. ``SINK_KEYRING=off`` keeps the key in the file.

A store made by an earlier sink keeps its key in the file ``key`` inside the store folder; the
first use that needs the key moves it out (to the keyring or the key file), encrypts the secrets
again with it, deletes the old file and says so.

Validation follows the messages users know from Docker Hub integrations: see
:func:`field_problem`, :func:`new_connection` and :func:`edited_connection`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import orjson
from cryptography.fernet import Fernet, InvalidToken

from sink.errors import ConfigError
from sink.origin import DEFAULT_BASE_URL, base_url_problem
from sink.outputs.files import private_dirs
from sink.read.credentials import Credentials, Kind

ConnectionKind = Literal["personal", "organization", "password"]
KINDS: tuple[ConnectionKind, ...] = ("personal", "organization", "password")
CREDENTIAL_KIND: dict[ConnectionKind, Kind] = {
    "personal": "pat",
    "organization": "oat",
    "password": "password",
}
STORE_FILE = "connections.json"
KEY_FILE = "key"
"""The key file of stores made by earlier versions, inside the store folder (moved out)."""
KEY_FILE_NAME = "connections.key"
KEY_FILE_ENV = "SINK_KEY_FILE"
"""The environment variable that says where the key file goes (when there is no keyring)."""
KEYRING_SERVICE = "sink"

REQUIRED = "This field is required"
"""What an empty field says (the field itself is named by the caller)."""

INSTANCE_NAME_REQUIRED = "Instance Name is required to distinguish multiple DockerHub connections."
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
    return f"{identifier_label(kind)}, {secret_label(kind)}, and Instance Name are required."


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
    if which == "base_url":
        problem = base_url_problem(text)
        if problem is not None:
            return f"Base URL {problem}."
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


def key_file_path() -> Path:
    """Where a new store's key file goes when there is no keyring: ``$SINK_KEY_FILE``, else
    ``$XDG_STATE_HOME/sink/connections.key``, else (``$SINK_HOME`` set) beside that folder in
    ``$SINK_HOME-key/``, else ``~/.local/state/sink/connections.key``: never in the store
    folder itself."""
    given = os.environ.get(KEY_FILE_ENV)
    if given:
        return Path(given).expanduser()
    state = os.environ.get("XDG_STATE_HOME")
    if state:
        return Path(state).expanduser() / "sink" / KEY_FILE_NAME
    home = os.environ.get("SINK_HOME")
    if home:
        folder = Path(home).expanduser()
        return folder.with_name(f"{folder.name}-key") / KEY_FILE_NAME
    return Path.home() / ".local" / "state" / "sink" / KEY_FILE_NAME


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def read_key_file(path: Path) -> bytes | None:
    """The key in ``path`` (None when there is no such file), after its checks: a regular
    file (not a symlink), owned by this user, that neither group nor others may read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW: the last part is a symlink
            raise ConfigError(
                f"the key file {path} is a symbolic link; the key must be a regular file "
                "(move the file it points to there)"
            ) from exc
        raise ConfigError(f"cannot read the key file {path}: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"the key file {path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise ConfigError(
                f"the key file {path} belongs to another user (uid {info.st_uid}): whoever owns "
                "it can read the stored secrets; remove it and add the connections again"
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"the key file {path} has mode {mode:04o}: group or others may read it, and "
                "with it decrypt the stored secrets. Run `chmod 600 " + str(path) + "`; if "
                "anyone else could have read it, revoke and recreate the stored tokens"
            )
        chunks = []
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    finally:
        os.close(fd)
    key = b"".join(chunks).strip()
    return key or None


def _write_key_file(path: Path, key: bytes) -> bytes:
    """Create ``path`` (0600, its new folders 0700) holding ``key``; when another process made
    it first, its key is the one to use."""
    try:
        private_dirs(path.parent)
        fd = os.open(
            path,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
        )
    except FileExistsError:
        found = read_key_file(path)
        if found is None:
            raise ConfigError(f"the key file {path} is empty") from None
        return found
    except OSError as exc:
        raise ConfigError(f"cannot create the key file {path}: {exc.strerror or exc}") from exc
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, key + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return key


def _say(message: str) -> None:
    print(f"sink: {message}", file=sys.stderr)


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
    use :func:`system_keyring` when a new store is created. ``key_file`` is where a new key
    file goes (default :func:`key_file_path`); ``notify`` hears what the store did on its own
    (moving a key out of the store folder; default: a line on standard error).
    """

    def __init__(
        self,
        folder: Path | None = None,
        *,
        keyring: KeyringLike | None = _UNSET,
        key_file: Path | None = None,
        notify: Callable[[str], None] | None = None,
    ):
        self.folder = folder if folder is not None else store_folder()
        self.path = self.folder / STORE_FILE
        self.key_path = key_file if key_file is not None else key_file_path()
        """Where a new key file goes; an existing store's is recorded in its file."""
        self.legacy_key_path = self.folder / KEY_FILE
        self._keyring = keyring
        self._notify = notify if notify is not None else _say

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
        """The store's key; a new one (recorded in ``doc``) when ``create`` and there is none.
        A key still in the store folder (an earlier sink's) is moved out first."""
        source = doc.get("key")
        if source is None:
            return self._new_key(doc) if create else None
        if source == "file" and not doc.get("key_file"):
            return self._move_key_out(doc)
        self._forget_legacy_key(doc)
        if source == "keyring":
            ring = self._chosen_keyring()
            if ring is None:
                raise ConfigError(
                    f"the key of the connection store {self.path} is in the OS keyring, which "
                    "is not available here (install the keyring package, or unset SINK_KEYRING)"
                )
            try:
                value = ring.get_password(KEYRING_SERVICE, self._keyring_account())
            except Exception as exc:  # keyring backends raise their own errors
                raise ConfigError(
                    f"cannot read the key of the connection store {self.path} from the OS "
                    f"keyring: {type(exc).__name__}: {exc}"
                ) from exc
            return value.encode() if value else None
        return read_key_file(Path(str(doc["key_file"])))

    def _new_key(self, doc: dict[str, Any]) -> bytes:
        """A key for a store that has none: in the keyring when there is one, else in the key
        file (an existing key file's key is reused: other stores may use it too)."""
        ring = self._chosen_keyring()
        if ring is not None:
            key = Fernet.generate_key()
            try:
                ring.set_password(KEYRING_SERVICE, self._keyring_account(), key.decode())
            except Exception as exc:  # noqa: BLE001 - keyring backends raise their own errors
                self._notify(
                    f"the OS keyring did not take the key of the connection store "
                    f"({type(exc).__name__}); it goes to the key file {self.key_path} instead"
                )
            else:
                doc["key"] = "keyring"
                doc.pop("key_file", None)
                return key
        path = self.key_path
        if _inside(path, self.folder):
            raise ConfigError(
                f"the key file {path} would be inside the connection store's folder "
                f"{self.folder}, where whoever reads the store could decrypt it; set "
                f"{KEY_FILE_ENV} to a path outside it"
            )
        key = read_key_file(path) or _write_key_file(path, Fernet.generate_key())
        doc["key"] = "file"
        doc["key_file"] = str(path.absolute())
        return key

    def _move_key_out(self, doc: dict[str, Any]) -> bytes | None:
        """An earlier sink's store: its key is in the store folder. Move it out (a new key in
        the keyring or the key file, every secret encrypted again), then delete the old file."""
        legacy = self.legacy_key_path
        try:
            old = legacy.read_bytes().strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read the key file {legacy}: {exc.strerror or exc}") from exc
        try:
            clear = {
                name: Fernet(old).decrypt(str(entry.get("secret", "")).encode())
                for name, entry in doc["connections"].items()
                if isinstance(entry, dict)
            }
        except (InvalidToken, ValueError):
            return old  # it does not open these secrets: say so (_decrypt), change nothing
        moved = dict(doc)
        key = self._new_key(moved)
        fernet = Fernet(key)
        moved["connections"] = {
            name: {**entry, "secret": fernet.encrypt(clear[name]).decode()}
            if name in clear
            else entry
            for name, entry in doc["connections"].items()
        }
        self._write(moved)
        doc.clear()
        doc.update(moved)
        legacy.unlink()
        self._notify(
            f"moved the key of the connection store {self.path} out of its folder (whoever "
            f"could read {self.folder} could decrypt the stored secrets) to "
            f"{self._key_place(doc)}, and encrypted the secrets again with it; if anyone else "
            "could read that folder, revoke and recreate the stored tokens"
        )
        return key

    def _forget_legacy_key(self, doc: dict[str, Any]) -> None:
        # A move interrupted after the store was written: the old key opens nothing now.
        if doc.get("key_file") or doc.get("key") == "keyring":
            with contextlib.suppress(FileNotFoundError):
                self.legacy_key_path.unlink()
                self._notify(f"deleted the old key file {self.legacy_key_path} (no longer used)")

    def _key_place(self, doc: dict[str, Any]) -> str:
        if doc.get("key") == "keyring":
            return f"the OS keyring entry {KEYRING_SERVICE}/{self._keyring_account()}"
        if doc.get("key_file"):
            return f"the key file {doc['key_file']}"
        return f"the key file {self.legacy_key_path}"

    def _decrypt(self, doc: dict[str, Any], name: str) -> str:
        key = self._key(doc, create=False)  # first: moving the key out encrypts anew
        token = str(doc["connections"][name].get("secret", ""))
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
        secret = self._decrypt(doc, name)
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
