"""A destination: a config bound to its template (or manual settings) and renderer."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

import orjson

from sink.config import ConnectionConfig, DestinationConfig, load_config, resolve_path
from sink.errors import ConfigError
from sink.model import NON_IDEMPOTENT
from sink.origin import destination_base_url, normalise
from sink.request import render as rendering
from sink.request.templates import EndpointTemplate, load_registry, references, template_strings
from sink.request.values import parse_headers


@dataclass
class Destination:
    """A destination config bound to its template and renderer, ready to preview or run."""

    config: DestinationConfig
    folder: Path
    template: EndpointTemplate | None
    renderer: rendering.Renderer
    name: str = "destination"
    """The config file's stem: default output files are named after it."""
    base_url: str = ""
    """Where every request of this destination goes (see :mod:`sink.origin`)."""

    @property
    def template_id(self) -> str:
        """The template id, or ``manual``."""
        return self.renderer.template_id

    @property
    def destructive(self) -> bool:
        """Whether sending deletes or removes something."""
        if self.template is not None:
            return self.template.destructive
        return self.renderer.method == "DELETE"

    @property
    def idempotent(self) -> bool:
        """Whether sending a request twice does what sending it once does: a PUT or DELETE,
        or a template that says so. Otherwise a request whose outcome is unknown is looked up
        before it is sent again, and stays in doubt when it cannot be."""
        if self.template is not None and self.template.idempotent:
            return True
        if self.config.manual is not None and self.config.manual.idempotent:
            return True
        return self.renderer.method.upper() not in NON_IDEMPOTENT

    @property
    def secret_fields(self) -> tuple[str, ...]:
        """Response fields that go only to the vault: the template's, or for a manual request
        to an endpoint that creates a secret, those of the template for that endpoint."""
        if self.template is not None:
            return tuple(self.template.secrets)
        manual = self.config.manual
        return secrets_of(manual.method, manual.url) if manual is not None else ()

    def path(self, value: str | None) -> Path | None:
        """A path from the config, relative to the config's folder."""
        return resolve_path(self.folder, value)


def open_destination(
    config_path: str | Path, *, base_url: str | None = None, validate: bool = True
) -> Destination:
    """Load a destination config and bind its template (or manual settings)."""
    config, folder = load_config(config_path)
    destination = bind(config, folder, base_url=base_url, validate=validate)
    destination.name = Path(config_path).stem
    return destination


def bind(
    config: DestinationConfig,
    folder: Path,
    *,
    base_url: str | None = None,
    validate: bool = True,
) -> Destination:
    """Bind a parsed config: look its template up and compile the renderer.

    ``base_url`` (``--base-url``) overrides where the requests go; see :func:`base_url_of`."""
    base = base_url_of(config.connection, base_url)
    batching = config.batching.to_batching()
    template = None
    if config.template is not None:
        template = load_registry().get(config.template)
        missing = [name for name in template.path_settings if name not in config.settings]
        if missing:
            raise ConfigError(
                f"template {template.id} needs settings: {', '.join(missing)} "
                f"(for example settings: {{{', '.join(f'{m}: ...' for m in missing)}}})"
            )
        if batching.mode == "json_property" and template.batch is None:
            raise ConfigError(
                f"template {template.id} sends one record per request; json_property batching "
                "needs a template with a batch field (bulk-invite) or manual mode"
            )
        renderer = rendering.for_template(
            template,
            config.settings,
            base,
            headers=config.extra_headers,
            batching=batching,
            validate=validate,
            code_folder=folder,
        )
    else:
        manual = config.manual
        assert manual is not None
        renderer = rendering.for_manual(
            method=manual.method,
            url=manual.url,
            settings=config.settings,
            base_url=base,
            headers={**parse_headers(manual.headers), **config.extra_headers},
            body=manual.body,
            body_is_record=manual.body_is_record,
            batching=batching,
            validate=validate,
            code_folder=folder,
            idempotent=manual.idempotent,
            secrets=secrets_of(manual.method, manual.url),
        )
    check_settings(config, template)
    return Destination(config, folder, template, renderer, base_url=base)


def check_settings(config: DestinationConfig, template: EndpointTemplate | None) -> None:
    """Refuse a setting nothing reads: a template takes the settings its values read (its
    ``settings_fields``); a manual request those its url, body and headers reference. The
    destination's extra headers may read settings too. With code batching the function is
    given every setting, so any name may be meant for it."""
    if not config.settings or config.batching.mode == "code":
        return
    headers = iter(config.extra_headers.values())
    taken = dict.fromkeys(references(headers, "settings"))
    if template is not None:
        owner = f"template {template.id}"
        taken = {**dict.fromkeys(template.settings_fields), **template.example_settings, **taken}
    else:
        manual = config.manual
        assert manual is not None
        owner = "the manual request"
        body = orjson.loads(manual.body) if isinstance(manual.body, str) else manual.body
        strings = template_strings([manual.url, parse_headers(manual.headers), body])
        taken = {**dict.fromkeys(references(strings, "settings")), **taken}
    problems = []
    for name in config.settings:
        if name in taken:
            continue
        close = difflib.get_close_matches(name, list(taken), n=3)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        takes = f"it takes {', '.join(taken)}" if taken else "it takes no settings"
        verb = "does not read" if template is None else "takes no setting"
        problems.append(f"settings.{name}: {owner} {verb} {name!r}{hint} ({takes})")
    if problems:
        raise ConfigError("; ".join(problems))


def base_url_of(connection: ConnectionConfig, override: str | None = None) -> str:
    """Where a connection's requests go: ``override``, else the stored connection's base URL
    (for ``connection: {name: ...}``), else the config's ``base_url``; checked."""
    stored = None
    if override is None and connection.name is not None:
        from sink.read.connections import ConnectionStore

        stored = ConnectionStore().info(connection.name).base_url
        given = "base_url" in connection.model_fields_set
        if given and normalise(connection.base_url) != destination_base_url(stored):
            raise ConfigError(
                f"connection.base_url {connection.base_url} differs from the base URL of the "
                f"stored connection {connection.name!r} ({stored}); remove one of them"
            )
    return destination_base_url(connection.base_url, stored=stored, override=override)


def secrets_of(method: str, url: str) -> tuple[str, ...]:
    """The secret response fields of the endpoint ``method url`` (a manual request, its
    ``{{ }}`` values standing for one path segment each), from the template for it."""
    from sink.request import schema

    path = re.sub(r"\{\{.*?\}\}", "x", url)
    operation = schema.match_operation(method, path)
    if operation is None:
        return ()
    for template in load_registry():
        if template.secrets and (template.method, template.path) == (
            method.upper(),
            operation.path,
        ):
            return tuple(template.secrets)
    return ()
