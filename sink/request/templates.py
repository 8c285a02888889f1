"""Endpoint templates: one YAML file per Docker Hub write endpoint, loaded into a registry.

A template says which spec operation it implements, how to build the request (method, path with
its parameters, optional query, headers and body, each value a Jinja expression over ``record``
and ``settings``), what credential and scope it needs, whether it is destructive, which response
fields are secrets, and how to look its effect up (used to resume and to settle ambiguous sends).
The format is described in ``templates/README.md``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sink import yamltext
from sink.errors import ConfigError
from sink.model import NON_IDEMPOTENT

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

CredentialKind = Literal["pat", "oat", "password"]
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Lookup(BaseModel):
    """How to find out whether a request's effect is already in place.

    The look-up request is rendered like the template's own (``path`` with ``params``, ``query``).
    Without ``list`` the answer's status decides: 2xx means present, 404 absent. With ``list``,
    the JSON answer's ``list`` key holds items (paged through ``next``); an item whose fields all
    equal the rendered ``match`` values is the effect. ``effect`` says which of present/absent means
    done: ``present`` for creates and updates, ``absent`` for deletes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["GET", "HEAD"] = "GET"
    path: str
    params: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    list: str | None = None
    match: dict[str, str] = Field(default_factory=dict)
    effect: Literal["present", "absent"] = "present"
    id_field: str | None = None
    note: str = ""

    @model_validator(mode="after")
    def _placeholders(self) -> Lookup:
        _check_placeholders(self.path, self.params)
        return self


class BatchSpec(BaseModel):
    """How records share one request in JSON-property batching (e.g. bulk invites).

    ``property`` is the array field that gathers the records' items; records whose other body
    fields differ go into different requests. ``result_list``/``result_match`` map a per-item
    answer back to its record (``invitees[].invitee`` for bulk invites); ``ok_statuses`` lists the
    item statuses that count as done.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    property: str
    size: int = Field(default=100, ge=1, le=1000)
    result_list: str | None = None
    result_match: str | None = None
    result_status: str = "status"
    ok_statuses: list[str] = Field(default_factory=list)


class Resolve(BaseModel):
    """A look-up done before rendering, per record (cached per run).

    ``team-id``: the record names a team in ``source`` (e.g. ``team``); its numeric id, which
    Hub wants, is written to ``target`` (e.g. ``group_id``) unless the record already has one.
    ``org-member``: the user in ``source`` must already be a member of the organization (Hub
    does not invite someone added to a team); the record is rejected otherwise. ``org`` is the
    organization, a template value over ``settings``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["team-id", "org-member"]
    source: str
    target: str | None = None
    org: str

    @model_validator(mode="after")
    def _target(self) -> Resolve:
        if (self.kind == "team-id") != (self.target is not None):
            raise ValueError("team-id needs a target field; org-member takes none")
        return self


class Revoke(BaseModel):
    """How to undo a created secret whose value was lost: the template that deletes the
    token and the record field that takes its id (the ``exists`` look-up's ``id_field``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    template: str
    field: str


class EndpointTemplate(BaseModel):
    """One Docker Hub write endpoint: how to build its request and what it means to send it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str
    description: str = ""
    operation: str
    method: Literal["POST", "PUT", "PATCH", "DELETE"]
    path: str
    params: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    credentials: list[CredentialKind]
    scope: str
    destructive: bool = False
    idempotent: bool = False
    secrets: list[str] = Field(default_factory=list)
    resource_id: str | None = None
    exists: Lookup | None = None
    revoke: Revoke | None = None
    batch: BatchSpec | None = None
    resolve: list[Resolve] = Field(default_factory=list)
    example: dict[str, Any] = Field(default_factory=dict)
    example_settings: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id_is_slug(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", value):
            raise ValueError("an id is lowercase words joined by '-'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> EndpointTemplate:
        _check_placeholders(self.path, self.params)
        if self.batch is not None and not (
            isinstance(self.body, dict) and isinstance(self.body.get(self.batch.property), list)
        ):
            raise ValueError(f"batch.property {self.batch.property!r} must be a list in the body")
        if self.secrets and (
            self.revoke is None or self.exists is None or self.exists.id_field is None
        ):
            raise ValueError(
                "a template that creates a secret needs `revoke` (the template that deletes "
                "it) and an `exists` list look-up with an `id_field`, so a lost secret can be "
                "revoked"
            )
        if self.method in NON_IDEMPOTENT and self.exists is None and not self.idempotent:
            raise ValueError(
                "a POST or PATCH without an `exists` look-up must be `idempotent: true` (sending "
                "it twice does what sending it once does); otherwise give it a look-up"
            )
        return self

    @cached_property
    def record_fields(self) -> tuple[str, ...]:
        """Record attributes the template reads, in the order they first appear."""
        return tuple(references(self._expressions(), "record"))

    @cached_property
    def path_settings(self) -> tuple[str, ...]:
        """Settings the request path needs: without them no request can be built."""
        return tuple(references(iter(self.params.values()), "settings"))

    @cached_property
    def settings_fields(self) -> tuple[str, ...]:
        """Destination settings the template reads (``namespace``, ``org``, ...).

        These are the settings the template takes: a destination setting not among them is
        an error (see :func:`sink.destination.bind`), so ``dryrun`` for ``dry_run`` never
        passes silently."""
        return tuple(references(self._expressions(), "settings"))

    def _expressions(self) -> Iterator[str]:
        yield from _strings([self.params, self.query, self.headers, self.body])
        yield from (f"{{{{ record.{r.source} }}}}" for r in self.resolve)
        yield from (r.org for r in self.resolve)
        if self.exists is not None:
            yield from _strings([self.exists.params, self.exists.query, self.exists.match])


def _check_placeholders(path: str, params: Mapping[str, str]) -> None:
    if not path.startswith("/v2/"):
        raise ValueError(f"path {path!r} must start with /v2/")
    wanted = set(PLACEHOLDER.findall(path))
    if wanted != set(params):
        raise ValueError(
            f"path placeholders {sorted(wanted)} and params {sorted(params)} must be the same"
        )


def template_strings(value: Any) -> Iterator[str]:
    """Every string inside a template value (mappings and lists walked), for :func:`references`."""
    return _strings(value)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@cache
def _parser() -> SandboxedEnvironment:
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment()


def references(sources: Iterator[str], root: str) -> dict[str, None]:
    """Attribute names read from ``root`` (``record.x`` or ``record['x']``) across expressions."""
    # Here, not at the top: `sink templates` lists them without Jinja.
    from jinja2 import TemplateSyntaxError, nodes

    found: dict[str, None] = {}
    for source in sources:
        if "{" not in source:
            continue
        try:
            parsed = _parser().parse(source)
        except TemplateSyntaxError as exc:
            raise ConfigError(f"template {source!r} does not parse: {exc}") from exc
        for node in parsed.find_all((nodes.Getattr, nodes.Getitem)):
            target = getattr(node, "node", None)
            if not (isinstance(target, nodes.Name) and target.name == root):
                continue
            if isinstance(node, nodes.Getattr):
                found[node.attr] = None
            elif isinstance(node, nodes.Getitem):
                key = node.arg
                if isinstance(key, nodes.Const) and isinstance(key.value, str):
                    found[key.value] = None
    return found


class Registry:
    """The loaded templates, by id."""

    def __init__(self, templates: Mapping[str, EndpointTemplate]) -> None:
        self._templates = dict(sorted(templates.items()))

    def __iter__(self) -> Iterator[EndpointTemplate]:
        return iter(self._templates.values())

    def __len__(self) -> int:
        return len(self._templates)

    def __contains__(self, template_id: object) -> bool:
        return template_id in self._templates

    def get(self, template_id: str) -> EndpointTemplate:
        """The template with this id; a :class:`ConfigError` naming close ids otherwise."""
        try:
            return self._templates[template_id]
        except KeyError:
            close = difflib.get_close_matches(template_id, self._templates, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else " See `sink templates`."
            raise ConfigError(f"unknown template {template_id!r}.{hint}") from None


def templates_dir() -> Path:
    """Where the Docker Hub templates are: inside a wheel, or beside the package when editable."""
    packaged = resources.files("sink") / "_templates" / "dockerhub"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "templates" / "dockerhub"


def load_template(path: Path) -> EndpointTemplate:
    """Parse one template file; a :class:`ConfigError` says which file and field is wrong."""
    try:
        data = yamltext.load(path.read_text(encoding="utf-8"))
    except (OSError, yamltext.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read template: {exc}") from exc
    try:
        return EndpointTemplate.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'template'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc


_REGISTRY: Registry | None = None


def load_registry(directory: Path | None = None) -> Registry:
    """Load every ``*.yaml`` template of ``directory`` (default: the shipped ones), cached."""
    global _REGISTRY
    if directory is None and _REGISTRY is not None:
        return _REGISTRY
    folder = directory or templates_dir()
    templates: dict[str, EndpointTemplate] = {}
    for path in sorted(folder.glob("*.yaml")):
        template = load_template(path)
        if template.id in templates:
            raise ConfigError(f"{path}: duplicate template id {template.id!r}")
        if path.stem != template.id:
            raise ConfigError(f"{path}: file name must be the template id ({template.id}.yaml)")
        templates[template.id] = template
    registry = Registry(templates)
    if directory is None:
        _REGISTRY = registry
    return registry
