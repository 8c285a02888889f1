"""Pure rendering: a template (or manual settings) bound to settings turns records into requests.

Rendering happens in two steps so that one bad record never spoils a batch:

1. :meth:`Renderer.item` renders one record: its path, headers and body part, checked against the
   operation's request schema where the whole body is the record's own.
2. :meth:`Renderer.request` turns one or more items into a :class:`~sink.model.Request`: one item
   as it is; several inside a JSON property (``{**extra, property: [...]}``); or, for templates
   that gather a list field themselves (bulk invites), the items merged on that field.

Nothing here touches the network; the connection's base URL fixes scheme, host and port.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from sink.errors import ConfigError, RenderError, SchemaViolation
from sink.model import Batching, Record, Request
from sink.request import schema
from sink.request.batching import load_function, locate_function
from sink.request.templates import EndpointTemplate, Lookup
from sink.request.values import (
    ABSENT,
    HeaderBuilder,
    PathBuilder,
    check_rendered_path,
    compile_manual_url,
    compile_value,
    evaluate,
    is_record_lookup,
    lookup_name,
)

if TYPE_CHECKING:
    import httpx

BodyMode = Literal["template", "record", "none"]
JSON_HEADERS = (("Content-Type", "application/json"),)


@dataclass(slots=True)
class Item:
    """One record rendered: where it goes and its part of the body."""

    record: Record
    path: str
    headers: tuple[tuple[str, str], ...]
    body: Any
    group: Hashable = None


class ManualPath:
    """A manual URL template: every ``{{ ... }}`` output is percent-encoded as one unit; it
    renders the path, which the connection's origin goes before."""

    def __init__(self, url: str, settings: Mapping[str, Any], base: httpx.URL) -> None:
        # Every problem of the URL is a ConfigError here, on load (see compile_manual_url).
        self._template = compile_manual_url(url, base)
        self._settings = dict(settings)
        self._constant = None if "{" in url else self._template.render()

    def __call__(self, record: Mapping[str, Any]) -> str:
        """The encoded path (or same-host URL) for this record."""
        if self._constant is not None:
            return self._constant
        try:
            rendered = self._template.render(record=record, settings=self._settings)
        except RenderError:
            raise
        except Exception as exc:
            raise RenderError(f"manual url failed: {exc}") from exc
        return check_rendered_path(rendered)


class Renderer:
    """Builds the requests of one destination (see :func:`for_template`, :func:`for_manual`)."""

    def __init__(
        self,
        *,
        template_id: str,
        method: str,
        base_url: str,
        path: Callable[[Mapping[str, Any]], str],
        headers: HeaderBuilder,
        body: tuple[bool, Any] | None,
        body_mode: BodyMode,
        operation: str | None,
        validate: bool,
        batching: Batching,
        merge_property: str | None = None,
        lookup: tuple[Lookup, PathBuilder] | None = None,
        settings: Mapping[str, Any] | None = None,
        body_template: Any = None,
        code_folder: Path | None = None,
        idempotent: bool = False,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.template_id = template_id
        self.method = method
        # Carried by every request: the dispatcher decides from the request alone.
        self.idempotent = idempotent
        self.secrets = secrets
        self._base_url = base_url
        self._origin = base_url.rstrip("/")
        self._path = path
        self._headers = headers
        self._json_static = JSON_HEADERS + headers.static
        self._last_path: str | None = None
        self._last_url = ""
        self._raw_body = _body_function(body_mode, body)
        self._fused: Callable[[Any], Any] | None = None
        self._operation = operation
        self._validate = validate
        self.batching = batching
        self._merge = merge_property
        self._lookup = lookup
        self._settings = dict(settings or {})
        self._code: Callable[..., Any] | None = None
        self._code_folder = code_folder
        if batching.mode == "code":  # found now; imported (user code runs) at the first batch
            locate_function(batching.function or "", code_folder)
        self._checker = self._checker_for(operation) if validate and operation else None
        if self._checker is not None and body_template is not None and not self.batched:
            self._fused = fused_body(body_template, self._settings, operation, self._checker)
        # Most templates: a URL and headers no record value goes into, a body built in one
        # pass. Then a request is its body and the same rest (see :meth:`render`).
        self._fixed_url: str | None = None
        constant = path.constant if isinstance(path, PathBuilder) else None
        if self._fused is not None and constant is not None and headers.constant:
            self._fixed_url = self._absolute(constant)

    @staticmethod
    def _checker_for(operation: str) -> Callable[[Any], Any] | None:
        op = schema.find_operation(operation)
        return schema.compile_body(op) if op.body_schema is not None else None

    @property
    def batched(self) -> bool:
        """Whether several records share one request."""
        return self.batching.mode != "per_record"

    def item(self, record: Record) -> Item:
        """Render one record; raises :class:`RejectRecord` with its index if it cannot."""
        try:
            return self._item(record)
        except (RenderError, SchemaViolation) as exc:
            if exc.index is None:
                exc.index = record.index
            raise

    def _item(self, record: Record) -> Item:
        data = record.data
        path = self._path(data)
        headers = self._headers(data)
        body = self._raw_body(data)
        mode = self.batching.mode
        if mode == "per_record" or self._merge is not None:
            body = self._check(body, path)
        group: Hashable = None
        if self._merge is not None and isinstance(body, dict):
            rest = {k: v for k, v in body.items() if k != self._merge}
            group = (path, headers, orjson.dumps(rest, option=orjson.OPT_SORT_KEYS))
        elif mode != "per_record":
            group = (path, headers)
        return Item(record, path, headers, body, group)

    def _check(self, body: Any, path: str) -> Any:
        checker = self._checker
        if checker is None and self._validate and self._operation is None:
            checker = _checker_for_path(self.method, path.split("?", 1)[0])
        if checker is None or body is None:
            return body
        return checker(body)

    def request(self, items: Sequence[Item]) -> Request:
        """One request carrying these items (all of the same group)."""
        first = items[0]
        if len(items) == 1 and self.batching.mode == "per_record":
            body = first.body
        elif self.batching.mode == "code":
            body = self._call_code([item.record.data for item in items])
            body = self._check(body, first.path)
        elif self._merge is not None:
            parts = tuple(tuple(item.body[self._merge]) for item in items)
            body = dict(first.body)
            body[self._merge] = [value for part in parts for value in part]
            body = self._check(body, first.path)
            request = self._request(first.path, first.headers, body, keys(items), indexes(items))
            request.parts = parts
            return request
        else:
            extra = dict(self.batching.extra or {})
            extra[self.batching.property or "records"] = [item.body for item in items]
            body = self._check(extra, first.path)
        return self._request(first.path, first.headers, body, keys(items), indexes(items))

    def _call_code(self, records: list[dict[str, Any]]) -> Any:
        if self._code is None:
            self._code = load_function(self.batching.function or "", self._code_folder)
        try:
            return self._code(records, dict(self._settings))
        except Exception as exc:
            raise RenderError(f"batch function {self.batching.function} failed: {exc!r}") from exc

    def _request(
        self,
        path: str,
        headers: tuple[tuple[str, str], ...],
        body: Any,
        keys: tuple[str, ...],
        indexes: tuple[int, ...],
    ) -> Request:
        # Most templates have a constant path and headers: reuse the URL and the header tuple.
        if path is self._last_path:
            url = self._last_url
        else:
            url = self._origin + path if path[:1] == "/" else self._absolute(path)
            self._last_path, self._last_url = path, url
        payload = None if body is None else orjson.dumps(body, default=_json_default)
        if payload is not None:
            static = headers is self._headers.static
            headers = self._json_static if static else JSON_HEADERS + headers
        return Request(
            self.method,
            url,
            headers,
            payload,
            keys,
            self.template_id,
            indexes,
            (),
            self.idempotent,
            self.secrets,
        )

    @cached_property
    def _base(self) -> httpx.URL:
        import httpx

        return httpx.URL(self._base_url.rstrip("/") + "/")

    def _absolute(self, path: str) -> str:
        if path.startswith("/"):
            return self._origin + path
        import httpx

        try:
            url = httpx.URL(path)
        except httpx.InvalidURL as exc:
            raise RenderError(f"url {path!r} is not a valid URL: {exc}") from exc
        base = self._base
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            raise RenderError(f"url {path!r} would leave the connection's host; refused")
        return path

    def render(self, record: Record) -> Request:
        """One record, one request (per-record mode); the hot path of a run, kept lean."""
        data = record.data
        fixed, fused = self._fixed_url, self._fused
        try:
            if fixed is not None and fused is not None:
                payload = orjson.dumps(fused(data), default=_json_default)
                return Request(
                    self.method,
                    fixed,
                    self._json_static,
                    payload,
                    (record.key,),
                    self.template_id,
                    (record.index,),
                    (),
                    self.idempotent,
                    self.secrets,
                )
            path = self._path(data)
            if fused is not None:
                body = fused(data)
            else:
                body = self._raw_body(data)
                checker = self._checker
                body = checker(body) if checker is not None else self._check(body, path)
            headers = self._headers(data)
        except (RenderError, SchemaViolation) as exc:
            if exc.index is None:
                exc.index = record.index
            raise
        return self._request(path, headers, body, (record.key,), (record.index,))

    def with_body(self, record: Record, body: Any) -> Request:
        """A request for ``record`` with a body given as it is (checked against the spec)."""
        data = record.data
        path = self._path(data)
        checked = self._checker(body) if self._checker is not None else self._check(body, path)
        return self._request(path, self._headers(data), checked, (record.key,), (record.index,))

    def lookup(self, record: Record) -> tuple[Lookup, Request] | None:
        """The effect look-up request for this record, or ``None`` if the template has none."""
        if self._lookup is None:
            return None
        spec, path = self._lookup
        url = self._absolute(path(record.data))
        keys, indexes = (record.key,), (record.index,)
        return spec, Request(spec.method, url, (), None, keys, self.template_id, indexes)

    def lookup_match(self, spec: Lookup, record: Record) -> dict[str, Any]:
        """The rendered ``match`` values of a list look-up for this record."""
        out = {}
        for name, template in spec.match.items():
            value = evaluate(compile_value(template, self._settings), record.data)
            if value is not ABSENT:
                out[name] = value
        return out


def fused_body(
    template: Any,
    settings: Mapping[str, Any],
    operation: str | None,
    whole: Callable[[Any], Any],
) -> Callable[[Mapping[str, Any]], Any] | None:
    """Build and check an object body in one pass, each field checked as it is placed.

    The fast path of a run: a body that is a mapping of look-ups costs a few dict look-ups and
    one check per field. Settings values are checked once, here. On any problem the body is
    built plainly and the whole-body checker names every problem, so messages are the same as
    the slow path's. None when the template or schema does not allow it.
    """
    if operation is None or not isinstance(template, Mapping):
        return None
    fields = schema.compile_fields(operation)
    if fields is None:
        return None
    constants: dict[str, Any] = {}  # checked once, here
    lookups: list[tuple[str, str, Callable[[Any], Any], bool]] = []
    expressions: list[tuple[str, Callable[[Any], Any], Callable[[Any], Any], bool]] = []
    for key, item in template.items():
        name = str(key)
        check = fields.check.get(name)
        if check is None:
            return None
        const, value = compile_value(item, settings)
        needed = name in fields.required
        if const:
            if value is ABSENT:
                continue
            try:
                constants[name] = check(value)
            except schema.FieldInvalid:
                return None
        elif is_record_lookup(item):
            lookups.append((name, lookup_name(item), check, needed))
        else:
            expressions.append((name, value, check, needed))
    placed = set(constants) | {e[0] for e in lookups} | {e[0] for e in expressions}
    if not fields.required <= placed:
        return None  # a required field the template never sets: the slow path says so
    plain = compile_value(template, settings)

    def checked(data: Mapping[str, Any]) -> Any:
        # Constants come first: key order means nothing in a JSON object.
        out = constants.copy()
        get = data.get
        try:
            for key, name, check, needed in lookups:
                value = get(name)
                if value is None or value == "":
                    if needed:
                        raise schema.FieldInvalid([])
                    continue
                out[key] = check(value)
            for key, expression, check, needed in expressions:
                value = expression(data)
                if value is ABSENT:
                    if needed:
                        raise schema.FieldInvalid([])
                    continue
                out[key] = check(value)
        except schema.FieldInvalid:
            return whole(evaluate(plain, data))
        return out

    return checked


def _json_default(value: Any) -> Any:
    """Types orjson does not know (Parquet decimals, for one) are sent as their text."""
    return str(value)


def keys(items: Sequence[Item]) -> tuple[str, ...]:
    """The record keys of some items."""
    return tuple(item.record.key for item in items)


def indexes(items: Sequence[Item]) -> tuple[int, ...]:
    """The input positions of some items."""
    return tuple(item.record.index for item in items)


def _body_function(mode: BodyMode, body: tuple[bool, Any] | None) -> Callable[[Any], Any]:
    """The record's data → the body before checking, chosen once rather than per record."""
    if mode == "record":
        return _same
    if body is None:
        return _nothing
    const, value = body
    if const:
        return lambda _data: value
    return value  # type: ignore[no-any-return]


def _same(data: Any) -> Any:
    return data


def _nothing(_data: Any) -> None:
    return None


@lru_cache(maxsize=1024)
def _checker_for_path(method: str, path: str) -> Callable[[Any], Any] | None:
    op = schema.match_operation(method, path)
    if op is None or op.body_schema is None:
        return None
    return schema.compile_body(op)


def for_template(
    template: EndpointTemplate,
    settings: Mapping[str, Any],
    base_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    batching: Batching | None = None,
    validate: bool = True,
    code_folder: Path | None = None,
) -> Renderer:
    """A renderer for one of the registry's templates (``code_folder``: where code batching's
    ``file.py:function`` is, the config's folder)."""
    batching = batching or Batching()
    owner = f"template {template.id}"
    path = PathBuilder(template.path, template.params, template.query, settings, owner=owner)
    merge = None
    if batching.mode == "json_property" and template.batch is not None:
        if batching.property not in (None, template.batch.property):
            raise ConfigError(
                f"{owner} batches records in {template.batch.property!r}, not {batching.property!r}"
            )
        merge = template.batch.property
    lookup = None
    if template.exists is not None:
        spec = template.exists
        lookup = (spec, PathBuilder(spec.path, spec.params, spec.query, settings, owner=owner))
    return Renderer(
        template_id=template.id,
        method=template.method,
        base_url=base_url,
        path=path,
        headers=HeaderBuilder({**template.headers, **(headers or {})}, settings),
        body=None if template.body is None else compile_value(template.body, settings),
        body_mode="none" if template.body is None else "template",
        operation=template.operation,
        validate=validate,
        batching=batching,
        merge_property=merge,
        lookup=lookup,
        settings=settings,
        body_template=template.body,
        code_folder=code_folder,
        idempotent=template.idempotent,
        secrets=tuple(template.secrets),
    )


def for_manual(
    *,
    method: str,
    url: str,
    settings: Mapping[str, Any],
    base_url: str,
    headers: Mapping[str, str] | None = None,
    body: Any = None,
    body_is_record: bool = False,
    batching: Batching | None = None,
    validate: bool = True,
    code_folder: Path | None = None,
    idempotent: bool = False,
    secrets: tuple[str, ...] = (),
) -> Renderer:
    """A renderer for manual mode: method, URL, headers and a body template or the record itself.

    A body given as JSON text is parsed once into a structure, so record values are inserted as
    data and can never break the JSON. The request body is checked against the spec operation its
    method and path match, when there is one. ``code_folder``: where code batching's
    ``file.py:function`` is (the config's folder). ``idempotent`` (the request is safe to send
    twice) and ``secrets`` (the answer's secret fields) are carried by every request.
    """
    method = method.upper()
    if method not in ("POST", "PUT", "PATCH", "DELETE"):
        raise ConfigError(f"manual method must be POST, PUT, PATCH or DELETE, not {method!r}")
    if isinstance(body, str):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"manual body is not valid JSON: {exc}") from exc
    mode: BodyMode = "record" if body_is_record else ("none" if body is None else "template")
    if body_is_record and body is not None:
        raise ConfigError("manual mode takes either a body template or body_is_record, not both")
    import httpx

    base = httpx.URL(base_url.rstrip("/") + "/")
    return Renderer(
        template_id="manual",
        method=method,
        base_url=base_url,
        path=ManualPath(url, settings, base),
        headers=HeaderBuilder(headers or {}, settings),
        body=None if body is None else compile_value(body, settings),
        body_mode=mode,
        operation=None,
        validate=validate,
        batching=batching or Batching(),
        settings=settings,
        code_folder=code_folder,
        idempotent=idempotent,
        secrets=secrets,
    )
