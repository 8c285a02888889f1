"""Request-body validation and CSV-string coercion, from Docker Hub's official spec.

``find_operation`` and ``match_operation`` look an operation up in the (corrected) spec;
``compile_body`` turns its request schema, once, into nested closures that check a body and
return it coerced to the schema's types. Records arrive from CSV as strings, so ``"true"``
becomes ``True`` for a boolean, ``"42"`` becomes ``42`` for an integer and
``"repo:read,repo:write"`` becomes a list for an array.

Choices (where the spec is silent):

- Every problem of a body is reported, not only the first: the message joins them with
  ``"; "`` and ``SchemaViolation.field`` names the first field at fault.
- A field the schema does not declare is rejected, unless the schema sets
  ``additionalProperties`` (sending Hub an unknown field is a mistake the user should see). A
  ``type: object`` without ``properties`` takes anything.
- A number where a string is expected is converted with ``str()`` (a Parquet column of ints
  for names is fine); a boolean, list or object where a string is expected is rejected.
- A string matching an enum value but for its case (``"Owner"`` for ``owner``, as the members
  list spells roles) is folded to the enum's spelling.
- ``default`` is not applied; absent fields stay absent.
- ``oneOf`` and ``anyOf`` (no request schema of the stored spec uses them) both take the first
  branch that accepts the value.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlsplit

import orjson

from sink.errors import ConfigError, SchemaViolation
from sink.request.spec import corrected_spec, follow_ref, resolve_schema

BodyChecker = Callable[[Any], Any]
"""``checker(body) -> body coerced to the schema``; raises :class:`SchemaViolation`."""

_Check = Callable[[Any], Any]
_METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")
_INT_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_PATTERN_HINTS = {
    "^[a-z0-9]+(?:[._-][a-z0-9]+)*$": "lowercase letters, digits, and . _ - between them",
    "^[^,]*$": "no commas",
}
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_INTEGER = re.compile(r"\s*[+-]?\d+\s*", re.ASCII)
_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*", re.ASCII)
_DATE_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?(?:([Zz])|([+-])(\d\d):(\d\d))?",
    re.ASCII,
)


# --------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Operation:
    """One operation of the spec, with its request body schema fully resolved.

    ``body_schema`` has every ``$ref`` inlined, every ``allOf`` merged and the known spec
    defects corrected; it is shared, so do not change it. ``success_codes`` are the 2xx
    statuses the spec lists, as ints.
    """

    method: str
    path: str
    operation_id: str | None
    summary: str
    body_schema: dict[str, Any] | None = field(compare=False, hash=False, repr=False)
    body_required: bool
    success_codes: tuple[int, ...]
    deprecated: bool = False
    content_type: str | None = None

    @property
    def key(self) -> str:
        """``"METHOD /path"``, the name of an operation without an operationId."""
        return f"{self.method} {self.path}"

    @property
    def name(self) -> str:
        """The operationId when there is one, else ``"METHOD /path"``."""
        return self.operation_id or self.key


@dataclass(frozen=True)
class _Index:
    by_name: dict[str, Operation]
    by_method: dict[str, list[tuple[re.Pattern[str], Operation]]]


def operations() -> list[Operation]:
    """Every operation of the spec, in the spec's order."""
    return [op for name, op in _index().by_name.items() if name == op.key]


def find_operation(operation: str) -> Operation:
    """Return the operation named by an operationId or by ``"METHOD /path"`` as in the spec.

    Raises :class:`ConfigError` (with close matches) for a name the spec does not have.
    """
    index = _index()
    name = operation.strip()
    method, _, path = name.partition(" ")
    if path:
        name = f"{method.upper()} {path.strip()}"
    found = index.by_name.get(name)
    if found is None:
        folded = {key.lower(): op for key, op in index.by_name.items()}
        found = folded.get(name.lower())
    if found is None:
        close = difflib.get_close_matches(name, list(index.by_name), n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ConfigError(f"the Docker Hub spec has no operation {operation!r}{hint}")
    return found


def match_operation(method: str, path: str) -> Operation | None:
    """Return the operation whose path template matches a concrete path, or None.

    ``path`` may carry a query string or be an absolute URL; one trailing slash is ignored.
    Each ``{param}`` matches exactly one non-empty segment (percent-encoded segments are
    taken as they are). A literal segment wins over a parameter
    (``/v2/orgs/acme/members/export`` is the export, not a member named ``export``).
    """
    if "://" in path:
        path = urlsplit(path).path
    path = path.split("?", 1)[0].split("#", 1)[0]
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    for regex, op in _index().by_method.get(method.upper(), ()):
        if regex.fullmatch(path):
            return op
    return None


@functools.cache
def _index() -> _Index:
    return _build_index(corrected_spec())


def _build_index(spec: dict[str, Any]) -> _Index:
    by_name: dict[str, Operation] = {}
    templates: dict[str, list[tuple[tuple[int, int], re.Pattern[str], Operation]]] = {}
    for path, item in spec["paths"].items():
        for method in _METHODS:
            raw = item.get(method)
            if not isinstance(raw, dict):
                continue
            op = _operation(spec, method.upper(), path, raw)
            by_name[op.key] = op
            if op.operation_id:
                by_name[op.operation_id] = op
            params = path.count("{")
            rank = (params, -(len(path) - len("".join(re.findall(r"\{[^}]*\}", path)))))
            templates.setdefault(op.method, []).append((rank, _path_regex(path), op))
    by_method = {
        method: [(regex, op) for _, regex, op in sorted(entries, key=lambda e: e[0])]
        for method, entries in templates.items()
    }
    return _Index(by_name, by_method)


def _path_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]*\})", template)
    return re.compile(
        "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
    )


def _operation(spec: dict[str, Any], method: str, path: str, raw: dict[str, Any]) -> Operation:
    body = raw.get("requestBody")
    while isinstance(body, dict) and isinstance(body.get("$ref"), str):
        body = follow_ref(body["$ref"], spec)
    schema: dict[str, Any] | None = None
    content_type: str | None = None
    if isinstance(body, dict):
        content = body.get("content") or {}
        for candidate in ("application/json", *content):
            if candidate in content and "json" in candidate:
                content_type = candidate
                schema = resolve_schema(content[candidate].get("schema"), spec)
                break
    # Five operations use unquoted status keys (`200:`), which YAML reads as ints.
    statuses = [str(code) for code in raw.get("responses") or {}]
    codes = sorted(int(code) for code in statuses if code.isdigit() and code.startswith("2"))
    return Operation(
        method=method,
        path=path,
        operation_id=raw.get("operationId"),
        summary=str(raw.get("summary") or ""),
        body_schema=schema,
        body_required=bool(isinstance(body, dict) and body.get("required")),
        success_codes=tuple(codes),
        deprecated=bool(raw.get("deprecated", False)),
        content_type=content_type,
    )


# --------------------------------------------------------------------------- compiling


class FieldInvalid(Exception):
    """A value a compiled checker refused: the problems found, each a (reversed path, rule)
    pair. Callers of :func:`compile_fields` catch it and run the whole-body checker, which turns
    the problems into a :class:`SchemaViolation` naming every field."""

    def __init__(self, problems: list[tuple[list[str | int], str]]) -> None:
        super().__init__()
        self.problems = problems


_Invalid = FieldInvalid


def _fail(rule: str) -> NoReturn:
    raise _Invalid([([], rule)])


_checkers: dict[tuple[str, str], tuple[Operation, BodyChecker]] = {}
_MAX_PROBLEMS = 10  # problems listed in one message; the rest are counted


def compile_body(operation: str | Operation) -> BodyChecker:
    """Return the (cached) checker of an operation's request body.

    ``checker(body)`` returns the body coerced to the schema's types (a new dict where
    anything changed; the given one is never modified) and raises :class:`SchemaViolation`
    naming every field at fault and the rule it breaks. ``None`` stands for "no body".
    """
    op = operation if isinstance(operation, Operation) else find_operation(operation)
    cache_key = (op.method, op.path)
    cached = _checkers.get(cache_key)
    if cached is not None and cached[0].body_schema is op.body_schema:
        return cached[1]
    checker = _body_checker(op)
    if cached is None:
        _checkers[cache_key] = (op, checker)
    return checker


@dataclass(frozen=True)
class BodyFields:
    """An object body's top-level fields compiled one by one, for callers that build the body
    field by field and want to check each value as it is placed (the renderer's fast path).

    ``check[name](value)`` returns the coerced value or raises :class:`FieldInvalid`; on any
    failure, run the whole-body checker for the full message. ``required`` are the fields that
    must be present; ``closed`` means unknown fields are refused.
    """

    check: Mapping[str, Callable[[Any], Any]]
    required: frozenset[str]
    closed: bool


def compile_fields(operation: str | Operation) -> BodyFields | None:
    """The per-field checkers of an operation's body, or None if it is not a plain object."""
    op = operation if isinstance(operation, Operation) else find_operation(operation)
    schema = op.body_schema
    if schema is None or _kind(schema) != "object" or schema.get("nullable"):
        return None
    if any(schema.get(keyword) for keyword in ("oneOf", "anyOf")):
        return None
    if schema.get("additionalProperties") not in (None, False):
        return None
    checks = {name: _compile(sub) for name, sub in (schema.get("properties") or {}).items()}
    return BodyFields(checks, frozenset(schema.get("required") or ()), closed=True)


def _body_checker(op: Operation) -> BodyChecker:
    name, required = op.name, op.body_required
    if op.body_schema is None:

        def no_body(body: Any) -> Any:
            if body is None:
                return None
            raise SchemaViolation(f"{name} takes no request body")

        return no_body
    root = _compile(op.body_schema)

    def checker(body: Any) -> Any:
        if body is None:
            if required:
                raise SchemaViolation(f"{name} needs a request body")
            return None
        try:
            return root(body)
        except _Invalid as exc:
            raise _to_error(exc) from None

    return checker


def _to_error(exc: _Invalid) -> SchemaViolation:
    parts = [(_field_name(path), rule) for path, rule in exc.problems[:_MAX_PROBLEMS]]
    message = "; ".join(f"{where or 'request body'}: {rule}" for where, rule in parts)
    if len(exc.problems) > _MAX_PROBLEMS:
        message += f"; and {len(exc.problems) - _MAX_PROBLEMS} more problems"
    return SchemaViolation(message, field=parts[0][0] or None)


def _field_name(reversed_path: list[str | int]) -> str:
    text = ""
    for part in reversed(reversed_path):
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _compile(schema: Mapping[str, Any]) -> _Check:
    for keyword in ("oneOf", "anyOf"):
        if schema.get(keyword):
            return _alternatives(schema, keyword)
    kind = _kind(schema)
    if kind == "object":
        check = _object(schema)
    elif kind == "array":
        check = _array(schema)
    elif kind == "string":
        check = _string(schema)
    elif kind in ("integer", "number"):
        check = _numeric(schema, kind)
    elif kind == "boolean":
        check = _boolean()
    else:
        check = _anything(schema)
    if schema.get("nullable"):
        inner = check

        def nullable(value: Any) -> Any:
            return None if value is None else inner(value)

        return nullable
    return check


def _kind(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind
    # Several request schemas (groups, member role, org settings) omit `type: object`.
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    enum = schema.get("enum")
    if enum and all(isinstance(item, str) for item in enum):
        return "string"
    return None


def _object(schema: Mapping[str, Any]) -> _Check:
    declared = schema.get("properties")
    props = {name: _compile(sub) for name, sub in (declared or {}).items()}
    extra_schema = schema.get("additionalProperties")
    extra: _Check | None = None
    if isinstance(extra_schema, dict):
        extra = _compile(extra_schema)
    elif extra_schema is True or (extra_schema is None and declared is None):
        extra = _same
    required = tuple(schema.get("required") or ())
    required_set = frozenset(required)
    allowed = ", ".join(props)
    get = props.get

    def check(value: Any) -> Any:
        if type(value) is not dict:
            value = _to_object(value)
        out: dict[str, Any] | None = None
        problems: list[tuple[list[str | int], str]] | None = None
        for key, item in value.items():
            sub = get(key)
            if sub is None:
                if extra is None:
                    problems = problems or []
                    problems.append(([key], f"unknown field (allowed: {allowed})"))
                    continue
                sub = extra
            try:
                new = sub(item)
            except _Invalid as exc:
                problems = problems or []
                for path, rule in exc.problems:
                    path.append(key)
                    problems.append((path, rule))
                continue
            if new is not item:
                if out is None:
                    out = dict(value)
                out[key] = new
        if required_set and not value.keys() >= required_set:
            problems = problems or []
            problems.extend(([name], "required") for name in required if name not in value)
        if problems:
            raise _Invalid(problems)
        return value if out is None else out

    return check


def _array(schema: Mapping[str, Any]) -> _Check:
    items = schema.get("items")
    item_check = _compile(items) if isinstance(items, dict) and items else None
    low, high = schema.get("minItems", 0), schema.get("maxItems", sys.maxsize)

    def check(value: Any) -> Any:
        if type(value) is not list:
            value = _to_list(value)
        count = len(value)
        if count < low or count > high:
            _fail(_size_rule(count, low, high, "item"))
        if item_check is None:
            return value
        out: list[Any] | None = None
        problems: list[tuple[list[str | int], str]] | None = None
        for position, item in enumerate(value):
            try:
                new = item_check(item)
            except _Invalid as exc:
                problems = problems or []
                for path, rule in exc.problems:
                    path.append(position)
                    problems.append((path, rule))
                continue
            if new is not item:
                if out is None:
                    out = list(value)
                out[position] = new
        if problems:
            raise _Invalid(problems)
        return value if out is None else out

    return check


def _string(schema: Mapping[str, Any]) -> _Check:
    low, high = schema.get("minLength", 0), schema.get("maxLength", sys.maxsize)
    pattern = schema.get("pattern")
    search = _spec_regex(pattern).search if pattern else None
    enum = schema.get("enum")
    date_time = schema.get("format") == "date-time"
    to_str = _datetime_to_str if date_time else _to_str
    finish: _Check | None = _date_time if date_time else None
    if enum:
        finish = _enum(enum)
    if not (low or high < sys.maxsize or search or finish):

        def plain(value: Any) -> Any:
            return value if type(value) is str else to_str(value)

        return plain
    hint = _PATTERN_HINTS.get(pattern or "")
    pattern_rule = f"does not match the pattern {pattern}" + (f" ({hint})" if hint else "")

    def check(value: Any) -> Any:
        if type(value) is not str:
            value = to_str(value)
        size = len(value)
        if size < low or size > high:
            _fail(_length_rule(size, low, high))
        if search is not None and search(value) is None:
            _fail(f"{_show(value)} {pattern_rule}")
        return value if finish is None else finish(value)

    return check


def _spec_regex(pattern: str) -> re.Pattern[str]:
    """Compile a spec (ECMA-262) pattern: ``\\d`` and ``\\w`` are ASCII only, and a final ``$``
    is the very end (Python's ``$`` also matches before a trailing newline)."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    try:
        return re.compile(pattern, re.ASCII)
    except re.error as exc:
        raise ConfigError(
            f"the Docker Hub spec has a pattern Python cannot read: {pattern}"
        ) from exc


def _numeric(schema: Mapping[str, Any], kind: str) -> _Check:
    fmt = schema.get("format") if kind == "integer" else None
    low, high = _INT_BOUNDS.get(fmt or "", (-math.inf, math.inf))
    low = max(low, schema.get("minimum", low))
    high = min(high, schema.get("maximum", high))
    strict_low = bool(schema.get("exclusiveMinimum"))
    strict_high = bool(schema.get("exclusiveMaximum"))
    finish = _enum(schema["enum"]) if schema.get("enum") else None

    def out_of_range(number: float) -> NoReturn:
        _fail(_range_rule(number, low, high, fmt, strict_low, strict_high))

    if kind == "integer":

        def check_integer(value: Any) -> Any:
            number = value if type(value) is int else _to_int(value)
            if (
                number < low
                or number > high
                or (strict_low and number == low)
                or (strict_high and number == high)
            ):
                out_of_range(number)
            return number if finish is None else finish(number)

        return check_integer

    def check_number(value: Any) -> Any:
        kind_of = type(value)
        number = value if kind_of is int or kind_of is float else _to_number(value)
        if number != number or number == math.inf or number == -math.inf:
            _fail(f"{_show(number)} is not a finite number")
        if (
            number < low
            or number > high
            or (strict_low and number == low)
            or (strict_high and number == high)
        ):
            out_of_range(number)
        return number if finish is None else finish(number)

    return check_number


def _boolean() -> _Check:
    words = {word: True for word in _TRUE} | {word: False for word in _FALSE}
    words |= {word.title(): flag for word, flag in words.items()}
    exact = words.get

    def check(value: Any) -> Any:
        if type(value) is bool:
            return value
        if type(value) is str:  # the usual CSV spellings without a strip/lower
            flag = exact(value)
            if flag is not None:
                return flag
        return _to_bool(value)

    return check


def _anything(schema: Mapping[str, Any]) -> _Check:
    if not schema.get("enum"):
        return _same
    values = list(schema["enum"])
    listing = ", ".join(_show(item) for item in values)

    def check(value: Any) -> Any:
        # No type to coerce to: compare as JSON does (1 is not true, a list is never a member).
        for item in values:
            if item == value and type(item) is type(value):
                return value
        _fail(f"{_show(value)} is not one of {listing}")

    return check


def _alternatives(schema: Mapping[str, Any], keyword: str) -> _Check:
    branches = [_compile(branch) for branch in schema[keyword]]

    def check(value: Any) -> Any:
        rules: list[str] = []
        for branch in branches:
            try:
                return branch(value)
            except _Invalid as exc:
                rules.append(", ".join(rule for _, rule in exc.problems))
        _fail("matches none of the allowed shapes: " + " | ".join(rules))

    return check


def _enum(values: list[Any]) -> _Check:
    """Check a value already coerced to the enum's type; strings match regardless of case."""
    allowed = frozenset(values)
    listing = ", ".join(str(item) for item in values)
    folded: dict[str, Any] = {}
    for item in values:
        if isinstance(item, str):
            folded[item.lower()] = None if item.lower() in folded else item

    def check(value: Any) -> Any:
        if value in allowed:
            return value
        if type(value) is str:
            match = folded.get(value.strip().lower())
            if match is not None:
                return match
        _fail(f"{_show(value)} is not one of {listing}")

    return check


def _same(value: Any) -> Any:
    return value


# --------------------------------------------------------------------------- coercions


def _to_object(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str) and value.lstrip().startswith("{"):
        parsed = _parse_json(value)
        if isinstance(parsed, dict):
            return parsed
    _fail(f"expected an object, got {_show(value)}")


def _to_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            parsed = _parse_json(text)
            if isinstance(parsed, list):
                return parsed
            _fail(f"expected a list, got {_show(value)}")
        # A CSV cell such as "repo:read, repo:write"; empty parts are left out.
        return [part for part in (piece.strip() for piece in text.split(",")) if part]
    _fail(f"expected a list, got {_show(value)}")


def _parse_json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        _fail(f"{_show(text)} is not valid JSON ({exc})")


def _to_str(value: Any) -> str:
    if isinstance(value, str):  # a str subclass (StrEnum and the like)
        return str(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            _fail(f"expected a string, got {_show(value)}")
        try:
            return str(value)
        except ValueError:  # an int past Python's digit limit
            _fail("expected a string, got a very large number")
    _fail(f"expected a string, got {_show(value)}")


def _datetime_to_str(value: Any) -> str:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # a Parquet timestamp without zone is UTC by convention
            value = value.replace(tzinfo=dt.UTC)
        text: str = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, dt.date):
        _fail(f"expected a date-time, got the date {value.isoformat()} without a time")
    return _to_str(value)


def _date_time(value: str) -> str:
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        _fail(f"{_show(value)} is not an ISO-8601 date-time (e.g. 2025-01-31T12:00:00Z)")
    year, month, day, hour, minute, second, _fraction, zulu, sign, zh, zm = match.groups()
    if not zulu and not sign:
        _fail(f"{_show(value)} has no time zone (add Z for UTC, e.g. 2025-01-31T12:00:00Z)")
    try:
        dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
        if sign and (int(zh) > 23 or int(zm) > 59):
            raise ValueError("offset out of range")
    except ValueError:
        _fail(f"{_show(value)} is not a valid date-time")
    if value[10] != "T" or zulu == "z":  # Hub parses RFC 3339 strictly: "T" and "Z"
        value = f"{value[:10]}T{value[11:-1]}Z" if zulu else f"{value[:10]}T{value[11:]}"
    return value


def _to_int(value: Any) -> int:
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        try:
            return int(value)
        except ValueError:  # past Python's digit limit
            _fail(f"{_show(value)} is too large")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    _fail(f"expected an integer, got {_show(value)}")


def _to_number(value: Any) -> int | float:
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        text = value.strip()
        if any(mark in text for mark in ".eE"):
            return float(text)
        try:
            return int(text)
        except ValueError:
            _fail(f"{_show(value)} is too large")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    _fail(f"expected a number, got {_show(value)}")


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    elif type(value) is int and value in (0, 1):
        return value == 1
    _fail(f"expected true or false, got {_show(value)}")


# --------------------------------------------------------------------------- messages


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = orjson.dumps(value).decode()
        return text if len(text) <= 80 else text[:76] + '..."'
    if isinstance(value, int | float):
        text = repr(value) if not isinstance(value, int) or value.bit_length() < 200 else ""
        return text or "a very large number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


def _length_rule(size: int, low: int, high: int) -> str:
    if size > high:
        return f"longer than {high} characters ({size})"
    if low == 1:
        return "must not be empty"
    return f"shorter than {low} characters ({size})"


def _size_rule(count: int, low: int, high: int, noun: str) -> str:
    if count > high:
        return f"more than {high} {noun}s ({count})"
    if low == 1:
        return "must not be empty"
    return f"fewer than {low} {noun}s ({count})"


def _range_rule(
    number: float, low: float, high: float, fmt: str | None, strict_low: bool, strict_high: bool
) -> str:
    bounds = _INT_BOUNDS.get(fmt or "")
    if bounds and not bounds[0] <= number <= bounds[1]:
        return f"{_show(number)} does not fit in a {(fmt or '')[3:]}-bit integer"
    if number < low or (strict_low and number == low):
        if strict_low:
            return f"{_show(number)} must be more than {low}"
        return f"{_show(number)} is less than the minimum {low}"
    if strict_high:
        return f"{_show(number)} must be less than {high}"
    return f"{_show(number)} is more than the maximum {high}"
