"""Compiled template values: constants, plain look-ups and sandboxed Jinja expressions.

Every value of a template is compiled once, when the run starts:

- a constant stays a constant;
- ``{{ record.x }}`` or ``{{ settings.x }}`` alone is a plain look-up that keeps the value's type
  (settings are resolved at compile time, so a body that is a mapping of simple references costs a
  few dict look-ups per record, not a template render);
- anything else is a Jinja expression rendered in a sandbox with strict undefined.

A value that is missing, ``None`` or ``""`` is *absent*: its body field is left out. A record's
values are only ever data: they are never parsed as template code, they are percent-encoded as a
whole into their path segment or query value, and a header value holding a control character
(CR, LF, NUL, ESC...) or anything but ASCII is refused, on load for a static value, per record
for a rendered one. The host comes from the connection and nothing a record holds can change it.
A manual URL is checked whole on load (:func:`compile_manual_url`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, unquote

from jinja2 import StrictUndefined, TemplateError, Undefined, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from sink.errors import ConfigError, RenderError

if TYPE_CHECKING:
    import httpx
    from jinja2 import Template

ABSENT: Final = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()
"""Marks a value that is not there: its field is left out of the body."""

Value = Callable[[Mapping[str, Any]], Any]
"""A compiled value: called with the record's data, returns the value or ``ABSENT``."""

_SIMPLE = re.compile(
    r"""^\{\{-?\s*(record|settings)\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*(['"])([^'"\\]*)\3\s*\])\s*-?\}\}$"""
)
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# A header value is visible ASCII, spaces and tabs: no control character (a line break or NUL
# would inject a header; ESC, DEL and the rest reach logs and terminals raw), and no other
# character, which HTTP clients encode differently or refuse at send time.
_FORBIDDEN_IN_HEADER = re.compile(r"[^\t\x20-\x7e]")
_RESERVED_HEADERS = frozenset({"authorization", "host", "content-length", "transfer-encoding"})


def environment(*, url_safe: bool = False) -> SandboxedEnvironment:
    """The sandboxed Jinja environment templates render in.

    With ``url_safe`` every ``{{ ... }}`` output is percent-encoded as one unit (used for manual
    URLs), so a value can never add a path segment, a query or a fragment.
    """
    env = SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_url_encode if url_safe else None,
    )
    return env


def _url_encode(value: Any) -> str:
    if isinstance(value, Undefined):
        try:
            str(value)
        except UndefinedError as exc:
            raise RenderError(f"the url's value is not there: {exc}") from exc
    return encode_segment(value)


_ENV = environment()


def is_absent(value: Any) -> bool:
    """Whether a looked-up value counts as not given (missing, ``None`` or empty text)."""
    return value is None or value is ABSENT or value == ""


def compile_value(template: Any, settings: Mapping[str, Any]) -> tuple[bool, Any]:
    """Compile one template value; returns ``(True, constant)`` or ``(False, Value)``."""
    if isinstance(template, str):
        return _compile_string(template, settings)
    if isinstance(template, Mapping):
        return _compile_mapping(template, settings)
    if isinstance(template, list):
        return _compile_list(template, settings)
    return True, template


def _compile_string(text: str, settings: Mapping[str, Any]) -> tuple[bool, Any]:
    if "{" not in text:
        return True, text
    simple = _SIMPLE.match(text.strip())
    if simple:
        root, name = simple.group(1), simple.group(2) or simple.group(4)
        if root == "settings":
            value = settings.get(name)
            return True, ABSENT if is_absent(value) else value

        def lookup(record: Mapping[str, Any], name: str = name) -> Any:
            value = record.get(name)
            return ABSENT if value is None or value == "" else value

        return False, lookup
    try:
        compiled = _ENV.from_string(text)
    except TemplateError as exc:
        raise ConfigError(f"template {text!r} does not parse: {exc}") from exc
    frozen_settings = dict(settings)
    if "record" not in text:
        try:
            rendered = compiled.render(settings=frozen_settings)
        except UndefinedError:
            return True, ABSENT
        except (SecurityError, TemplateError) as exc:
            raise ConfigError(f"template {text!r} failed: {exc}") from exc
        return True, ABSENT if rendered == "" else rendered

    def render(record: Mapping[str, Any]) -> Any:
        try:
            rendered = compiled.render(record=record, settings=frozen_settings)
        except UndefinedError:
            return ABSENT
        except SecurityError as exc:
            raise RenderError(f"template {text!r} tried an unsafe operation: {exc}") from exc
        except (TemplateError, ArithmeticError, TypeError, ValueError) as exc:
            raise RenderError(f"template {text!r} failed: {exc}") from exc
        return ABSENT if rendered == "" else rendered

    return False, render


def _compile_mapping(template: Mapping[Any, Any], settings: Mapping[str, Any]) -> tuple[bool, Any]:
    entries: list[tuple[str, int, Any]] = []
    for key, item in template.items():
        const, compiled = compile_value(item, settings)
        if const:
            if compiled is not ABSENT:
                entries.append((str(key), 0, compiled))
        elif is_record_lookup(item):
            entries.append((str(key), 1, lookup_name(item)))
        else:
            entries.append((str(key), 2, compiled))
    if all(kind == 0 for _, kind, _ in entries):
        return True, {key: value for key, _, value in entries}

    def build(record: Mapping[str, Any]) -> Any:
        out: dict[str, Any] = {}
        get = record.get
        for key, kind, payload in entries:
            if kind == 1:
                value = get(payload)
                if value is None or value == "":
                    continue
            elif kind == 0:
                value = payload
            else:
                value = payload(record)
                if value is ABSENT:
                    continue
            out[key] = value
        return out

    return False, build


def is_record_lookup(item: Any) -> bool:
    """Whether a template value is exactly ``{{ record.x }}`` (a plain look-up)."""
    if not isinstance(item, str):
        return False
    simple = _SIMPLE.match(item.strip())
    return simple is not None and simple.group(1) == "record"


def lookup_name(item: str) -> str:
    """The attribute a plain look-up reads (``x`` of ``{{ record.x }}``)."""
    simple = _SIMPLE.match(item.strip())
    if simple is None:
        raise ValueError(f"{item!r} is not a plain look-up")
    return simple.group(2) or simple.group(4)


def _compile_list(template: list[Any], settings: Mapping[str, Any]) -> tuple[bool, Any]:
    compiled = [compile_value(item, settings) for item in template]
    if all(const for const, _ in compiled):
        return True, [value for _, value in compiled if value is not ABSENT]

    def build(record: Mapping[str, Any]) -> Any:
        out = []
        for const, item in compiled:
            value = item if const else item(record)
            if value is not ABSENT:
                out.append(value)
        return out

    return False, build


def evaluate(compiled: tuple[bool, Any], record: Mapping[str, Any]) -> Any:
    """The value of a compiled template value for one record."""
    const, value = compiled
    return value if const else value(record)


def encode_segment(value: Any) -> str:
    """Percent-encode a value as exactly one path segment or query value.

    Everything but unreserved characters is encoded, ``/``, ``?``, ``#`` and ``%`` included.
    Empty values and the dot segments ``.`` and ``..`` are refused: a server or proxy may collapse
    them and so change which resource is addressed.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RenderError(f"a path or query value must be text or a number, not {value!r}")
    text = str(value)
    if text in ("", ".", ".."):
        raise RenderError(f"{text!r} is not a valid path or query value")
    return quote(text, safe="")


class PathBuilder:
    """Builds ``/v2/...?query`` from a path with ``{placeholders}`` and their template values."""

    def __init__(
        self,
        path: str,
        params: Mapping[str, str],
        query: Mapping[str, str],
        settings: Mapping[str, Any],
        *,
        owner: str,
    ) -> None:
        self._parts = _PLACEHOLDER.split(path)
        self._params = {name: compile_value(value, settings) for name, value in params.items()}
        self._query = [(name, compile_value(value, settings)) for name, value in query.items()]
        for name, (const, value) in self._params.items():
            if const and value is ABSENT:
                raise ConfigError(
                    f"{owner}: path value {name!r} comes from {params[name]!r}, which is not set"
                )
        self._constant: str | None = None
        if all(const for const, _ in self._params.values()) and all(
            const for _, (const, _) in self._query
        ):
            self._constant = self._build({})

    @property
    def constant(self) -> str | None:
        """The path when no record value goes into it, else ``None``."""
        return self._constant

    def __call__(self, record: Mapping[str, Any]) -> str:
        """The encoded path and query for this record."""
        if self._constant is not None:
            return self._constant
        return self._build(record)

    def _build(self, record: Mapping[str, Any]) -> str:
        out = []
        for position, part in enumerate(self._parts):
            if position % 2 == 0:
                out.append(part)
                continue
            value = evaluate(self._params[part], record)
            if value is ABSENT:
                raise RenderError(f"path value {part!r} is missing", field=part)
            out.append(encode_segment(value))
        pairs = []
        for name, compiled in self._query:
            value = evaluate(compiled, record)
            if value is not ABSENT:
                pairs.append(f"{quote(name, safe='')}={encode_segment(value)}")
        return "".join(out) + ("?" + "&".join(pairs) if pairs else "")


class HeaderBuilder:
    """Static and templated request headers; a value with a control or non-ASCII character is
    refused (:class:`ConfigError` when static, :class:`RenderError` per record)."""

    def __init__(self, headers: Mapping[str, str], settings: Mapping[str, Any]) -> None:
        self._static: list[tuple[str, str]] = []
        self._dynamic: list[tuple[str, Value]] = []
        for name, template in headers.items():
            if not _HEADER_NAME.match(name):
                raise ConfigError(f"header name {name!r} is not a valid HTTP header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ConfigError(f"header {name!r} is set by sink itself and cannot be configured")
            const, value = compile_value(template, settings)
            if const:
                if value is ABSENT:
                    continue
                self._static.append((name, check_header_value(name, value, ConfigError)))
            else:
                self._dynamic.append((name, value))
        self.static: tuple[tuple[str, str], ...] = tuple(self._static)
        self.constant = not self._dynamic
        """Whether no record value goes into a header (then every request has ``static``)."""

    def __call__(self, record: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
        """The headers for this record."""
        if not self._dynamic:
            return self.static
        out = list(self._static)
        for name, value in self._dynamic:
            rendered = value(record)
            if rendered is not ABSENT:
                out.append((name, check_header_value(name, rendered, RenderError)))
        return tuple(out)


def check_header_value(name: str, value: Any, error: type[Exception]) -> str:
    """A header value as text, refusing control characters (CR and LF: header injection) and
    anything but ASCII; ``error`` is raised (ConfigError on load, RenderError per record)."""
    text = str(value)
    bad = _FORBIDDEN_IN_HEADER.search(text)
    if bad is not None:
        raise error(f"header {name!r} value {header_problem(bad.group())}; refused")
    return text


def header_problem(char: str) -> str:
    """What is wrong with a character a header value may not hold, in words."""
    if char in "\r\n\x00":
        return "holds a line break or NUL"
    if ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0:
        return f"holds the control character {char!r}"
    return f"holds {char!r}, which is not ASCII (percent-encode it, or leave it out)"


def parse_headers(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """Headers given as ``h1:v1,h2:v2`` or as a mapping; a name that is not a header name,
    or a value with a control or non-ASCII character, is a :class:`ConfigError`."""
    if spec is None:
        return {}
    headers: dict[str, str] = {}
    if isinstance(spec, Mapping):
        headers = {str(k).strip(): str(v) for k, v in spec.items()}
    else:
        for item in spec.split(","):
            if not item.strip():
                continue
            name, sep, value = item.partition(":")
            if not sep or not name.strip():
                raise ConfigError(f"header {item.strip()!r} must look like name:value")
            headers[name.strip()] = value.strip()
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise ConfigError(f"header name {name!r} is not a valid HTTP header name")
        # A template's literal text is checked here; what it renders, per record.
        check_header_value(name, value, ConfigError)
    return headers


_MARK = "\x00"  # stands for what a {{ }} or {% %} of a manual URL renders
_URL_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?[]@!$&'()*+,;=%" + _MARK
)
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def compile_manual_url(url: str, base: httpx.URL) -> Template:
    """A manual URL compiled into its path (``/v2/...?query``), every ``{{ ... }}`` output
    percent-encoded as one unit; any problem is a :class:`ConfigError` naming it, on load.

    The URL is a path (``/v2/...``) or an absolute URL on the connection's own scheme, host and
    port, written literally up to its path; its literal text is a URL's characters (no space,
    control or non-ASCII character, no ``{`` outside ``{{ }}``, no fragment), its escapes are
    whole (``%`` and two hex digits, never completed by a value) and it has no ``.`` or ``..``
    segment.
    """
    import httpx  # here: a preview of a template never needs it, and it costs 60 ms

    env = environment(url_safe=True)
    try:
        template = env.from_string(url)
        tokens = list(env.lex(url))
    except (TemplateError, RecursionError, ValueError) as exc:
        raise ConfigError(f"manual url {url!r} does not parse: {exc}") from exc
    shape = "".join(
        value if kind == "data" else _MARK
        for _, kind, value in tokens
        if kind in ("data", "variable_begin", "block_begin")
    )
    for char in shape:
        if char not in _URL_CHARS:
            raise ConfigError(f"manual url {url!r} {_url_char_problem(char)}")
    bad = _BAD_ESCAPE.search(shape)
    if bad is not None:
        raise ConfigError(
            f"manual url {url!r}: '%' must start an escape of two hex digits (%2F), written "
            "whole; a value is percent-encoded for you"
        )
    if shape[:8].lower().startswith(("http://", "https://")):
        scheme, _, rest = shape.partition("://")
        authority, slash, path = rest.partition("/")
        if not slash or _MARK in authority or not authority:
            raise ConfigError(
                f"manual url {url!r} must name its host literally, then a path "
                f"({base.scheme}://{base.netloc.decode('ascii')}/v2/...)"
            )
        if "@" in authority:
            raise ConfigError(
                f"manual url {url!r} holds user info (user@); the connection authenticates"
            )
        try:
            prefix = httpx.URL(f"{scheme}://{authority}/")
        except httpx.InvalidURL as exc:
            raise ConfigError(f"manual url {url!r}: {exc}") from exc
        if (prefix.scheme, prefix.host, prefix.port) != (base.scheme, base.host, base.port):
            raise ConfigError(
                f"manual url {url!r} is not on the connection's host {base.host}; "
                "the host is fixed by the connection"
            )
        literal = f"{scheme}://{authority}"
        if prefix.raw_path != b"/" or not url.startswith(literal + "/"):
            raise ConfigError(f"manual url {url!r} must name its host literally, then a path")
        path = "/" + path
        # The connection's origin is put before the path, as for a relative URL.
        template = env.from_string(url[len(literal) :])
    elif shape.startswith("//"):
        raise ConfigError(f"manual url {url!r} must start with a single / (a path)")
    elif shape.startswith("/"):
        path = shape
    else:
        raise ConfigError(f"manual url {url!r} must start with / or https://{base.host}/")
    segments = path.split("?", 1)[0].split("/")
    if "" in segments[1:-1]:
        raise ConfigError(f"manual url {url!r} has an empty segment (//)")
    for segment in segments:
        if _MARK not in segment and unquote(segment) in (".", ".."):
            raise ConfigError(
                f"manual url {url!r} has a {segment!r} segment, which a server may collapse"
            )
    return template


def _url_char_problem(char: str) -> str:
    if char in "{}":
        return "holds a { or } outside {{ }} (a record value is written {{ record.x }})"
    if char == "#":
        return "holds a fragment (#), which is never sent"
    if char.isspace() or ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0:
        return f"holds the space or control character {char!r}"
    if ord(char) > 0x7F:
        return f"holds {char!r}, which is not ASCII (percent-encode it)"
    return f"holds {char!r}, which a URL cannot hold unencoded (percent-encode it)"


def check_rendered_path(path: str) -> str:
    """A rendered manual path or URL, refused when a ``{% %}`` block left an empty segment
    (``//``) in it; a trailing ``/`` is kept."""
    start = path.find("://")
    if start >= 0:
        slash = path.find("/", start + 3)
        rest = path[slash:] if slash >= 0 else "/"
    else:
        rest = path
    segments = rest.split("?", 1)[0].split("/")[1:-1]
    if any(segment == "" for segment in segments):
        raise RenderError(f"url {path!r} has an empty segment (//); refused")
    return path
