"""The resolve stage: look-ups a template needs before it can render a record.

A record may name a team where Hub wants the team's numeric id (granting a team access to a
repository); adding a user to a team first checks that the user is a member of the organization.
Each name is looked up once per run (see :mod:`sink.guard.lookups`). A preview does no I/O: it fills
ids with a placeholder and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sink.errors import ConfigError
from sink.guard.lookups import Membership, TeamIds
from sink.model import Record
from sink.request.templates import EndpointTemplate, Resolve
from sink.request.values import ABSENT, compile_value

if TYPE_CHECKING:
    from sink.destination import Destination
    from sink.read.hub import HubReader

PREVIEW_ID = 0
"""The id a preview shows for a team that the run will look up."""


class Resolver:
    """Applies a template's ``resolve`` steps to records."""

    def __init__(
        self, template: EndpointTemplate, settings: Mapping[str, Any], reader: HubReader | None
    ) -> None:
        self.steps: list[tuple[Resolve, str]] = []
        for step in template.resolve:
            const, org = compile_value(step.org, settings)
            if not const or org is ABSENT:
                raise ConfigError(f"template {template.id}: resolve needs {step.org!r} set")
            self.steps.append((step, str(org)))
        self.reader = reader
        self._teams: dict[str, TeamIds] = {}
        self._members: dict[str, Membership] = {}
        self.deferred = 0

    def __bool__(self) -> bool:
        return bool(self.steps)

    async def apply(self, record: Record) -> None:
        """Do the look-ups for ``record``; raises :class:`RejectRecord` when one fails."""
        if self.reader is None:
            raise RuntimeError("a resolver without a reader can only preview")
        data = record.data
        for step, org in self.steps:
            name = data.get(step.source)
            if step.kind == "team-id":
                if _given(data.get(step.target or "")) or not _given(name):
                    continue
                ids = self._teams.setdefault(org, TeamIds(self.reader, org))
                record.data = data = {**data, step.target or "": await ids.id_of(str(name))}
            elif _given(name):
                members = self._members.setdefault(org, Membership(self.reader, org))
                await members.require(str(name), team=_team(data))

    def preview(self, record: Record) -> None:
        """Fill ids the run would look up with :data:`PREVIEW_ID`, counting them."""
        data = record.data
        for step, _ in self.steps:
            if step.kind != "team-id" or step.target is None:
                continue
            if not _given(data.get(step.target)) and _given(data.get(step.source)):
                record.data = data = {**data, step.target: PREVIEW_ID}
                self.deferred += 1


def _given(value: Any) -> bool:
    return value is not None and value != ""


def _team(data: Mapping[str, Any]) -> str | None:
    team = data.get("team")
    return str(team) if _given(team) else None


def resolver_for(destination: Destination, reader: HubReader | None) -> Resolver | None:
    """The look-ups ``destination``'s template does before rendering, or None when it has
    none; without ``reader`` (a preview) ids are placeholders."""
    template = destination.template
    if template is None or not template.resolve:
        return None
    return Resolver(template, destination.config.settings, reader)
