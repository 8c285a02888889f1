"""Where a destination's requests go: the one place that decides and checks the base URL.

The credential goes wherever the base URL points, so a base URL is a scheme, a host and an
optional port, nothing else: no user info (``https://hub.docker.com@evil`` sends to ``evil``),
no path, query or fragment. Plain ``http`` is refused except to this machine (a simulator).

The base URL a destination uses is, in order: ``--base-url``; the stored connection's, for
``connection: {name: ...}``; the config's ``base_url``. :func:`destination_base_url` decides it
and every command (run, test, preview, validate, check, export) uses what it says.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from sink.errors import ConfigError

if TYPE_CHECKING:
    import httpx

DEFAULT_BASE_URL = "https://hub.docker.com"

_SHAPE = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?)"
    r"(?::(?P<port>[0-9]{1,5}))?/?"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def base_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a base URL, in words, or None when it is fit."""
    match = _SHAPE.fullmatch(url)
    if match is None:
        if "@" in url:
            return "must not hold user info (user@ or user:password@ before the host)"
        return "must be a scheme and host only, like https://hub.docker.com"
    scheme = match["scheme"].lower()
    host = match["host"]
    if scheme not in _DEFAULT_PORTS:
        return f"scheme {scheme} is not supported: use https"
    port = match["port"]
    if port is not None and not 0 < int(port) < 65536:
        return f"port {port} is out of range"
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{host} is not an IPv6 address"
    elif ".." in host:
        return f"{host} is not a host name"
    if scheme == "http" and not is_loopback(host):
        return (
            "plain http would send the credential unencrypted: use https "
            "(http is accepted only for this machine, e.g. a `sink hubsim`)"
        )
    return None


def check_base_url(url: str, *, what: str = "base URL") -> str:
    """``url`` normalised (lower-case scheme and host, default port and trailing slash
    dropped), or a :class:`ConfigError` that says what is wrong."""
    problem = base_url_problem(url)
    if problem is not None:
        raise ConfigError(f"{what} {url!r} {problem}")
    return normalise(url)


def normalise(url: str) -> str:
    """A checked base URL in one spelling: ``https://hub.docker.com``."""
    match = _SHAPE.fullmatch(url)
    assert match is not None
    scheme = match["scheme"].lower()
    host = match["host"].lower()
    port = match["port"]
    text = f"{scheme}://{host}"
    if port is not None and int(port) != _DEFAULT_PORTS[scheme]:
        text += f":{int(port)}"
    return text


def origin(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a checked base URL, the default port filled in."""
    match = _SHAPE.fullmatch(url)
    if match is None:
        raise ConfigError(f"base URL {url!r} must be a scheme and host only")
    scheme = match["scheme"].lower()
    port = match["port"]
    return scheme, match["host"].lower(), int(port) if port else _DEFAULT_PORTS[scheme]


def url_origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of a parsed URL, lower-case, the default port filled in: two
    URLs whose origins are equal may carry the same credential."""
    scheme = url.scheme.lower()
    return scheme, url.host.lower(), url.port or _DEFAULT_PORTS.get(scheme)


def destination_base_url(
    configured: str, *, stored: str | None = None, override: str | None = None
) -> str:
    """The base URL a destination's requests go to: ``override`` (``--base-url``), else the
    stored connection's (``stored``), else the config's; checked and normalised."""
    if override is not None:
        return check_base_url(override, what="--base-url")
    if stored is not None:
        return check_base_url(stored, what="the stored connection's base URL")
    return check_base_url(configured, what="connection.base_url")
