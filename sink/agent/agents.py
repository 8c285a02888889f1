"""The agents file: which agents may use ``sink mcp``, who each signs in as, and what each may do.

YAML, validated like a destination config (unknown keys are errors, every problem named)::

    agents:
      auditor:                       # read-only: its reads are scoped, it has no write tools
        connection: {name: acme-auditor}     # a stored connection (``sink connection add``)
        settings: {org: acme}
        policy:
          read_only: true
          read: {namespaces: [acme]}
      release-bot:
        connection: {identifier: acme, secret_env: ACME_OAT}
        settings: {namespace: acme, org: acme}
        policy:
          templates: [create-repository, grant-team-repository]
          methods: [POST]
          write: {namespaces: [acme], repositories: ["acme/team-*"]}
        budget: {requests_per_second: 2, calls_per_minute: 30}

An agent names its credential (``connection``: a stored connection's ``name``, or an
``identifier`` with ``secret_env`` / ``secret_file``; never standard input, which is the MCP
channel), fixed template ``settings`` (the organization or namespace it works in; a setting
given here is not a tool argument), a ``policy`` and a rate ``budget``.

The policy is the destination policy's rules (:class:`sink.config.PolicyConfig`: templates,
methods, organizations, teams, read-only) with namespaces and repositories given apart for
reads and writes. An agent writes only with the templates it lists (globs): without
``templates`` it has no write tools. Its writes are checked by the send core's guard with
:meth:`AgentPolicy.write_policy`, its reads by :meth:`AgentPolicy.read_refusal`.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError, model_validator

from sink import yamltext
from sink.config import ConnectionConfig, PolicyConfig, describe, resolve_path
from sink.errors import ConfigError
from sink.guard.policy import matches
from sink.request.templates import EndpointTemplate, load_registry

DEFAULT_AGENTS_FILE = "agents.yaml"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scope(_Strict):
    """Namespaces (``acme``) and repositories (``acme/team-*``) one kind of access may touch;
    a list left out does not limit."""

    namespaces: list[str] | None = None
    repositories: list[str] | None = None

    @model_validator(mode="after")
    def _patterns(self) -> Scope:
        # The destination policy's own checks: a glob never crosses a `/`.
        PolicyConfig(namespaces=self.namespaces, repositories=self.repositories)
        return self


class AgentPolicy(_Strict):
    """What one agent may do (see the module)."""

    templates: list[str] | None = None
    """The endpoint templates the agent has write tools for (globs); none without it."""
    methods: list[Literal["POST", "PUT", "PATCH", "DELETE"]] | None = None
    organizations: list[str] | None = None
    teams: list[str] | None = None
    read: Scope = Field(default_factory=Scope)
    write: Scope = Field(default_factory=Scope)
    read_only: bool = False
    unattended_destructive: bool = False
    """Let a destructive call through without a human's answer when the MCP client cannot ask
    one (elicitation); otherwise such a call is refused."""
    confirm_seconds: float = Field(default=300.0, gt=0, le=3600)
    """How long a confirmation token stays valid."""

    @model_validator(mode="after")
    def _checked(self) -> AgentPolicy:
        PolicyConfig(organizations=self.organizations, teams=self.teams)
        known = [template.id for template in load_registry()]
        for pattern in self.templates or ():
            if not fnmatch.filter(known, pattern):
                close = difflib.get_close_matches(pattern, known, n=3)
                hint = f"; did you mean {' or '.join(close)}?" if close else ""
                raise ValueError(f"templates: no template matches {pattern!r}{hint}")
        return self

    def write_policy(self) -> PolicyConfig:
        """The destination policy the send core's guard applies to this agent's writes."""
        return PolicyConfig(
            templates=list(self.templates or ()),
            methods=self.methods,
            namespaces=self.write.namespaces,
            repositories=self.write.repositories,
            organizations=self.organizations,
            teams=self.teams,
            read_only=self.read_only,
        )

    def write_templates(self) -> list[EndpointTemplate]:
        """The templates the agent has write tools for, in the registry's order."""
        if self.read_only or not self.templates:
            return []
        return [
            template
            for template in load_registry()
            if any(fnmatch.fnmatchcase(template.id, pattern) for pattern in self.templates)
            and (self.methods is None or template.method in self.methods)
        ]

    def read_refusal(
        self,
        *,
        namespace: str | None = None,
        repository: str | None = None,
        organization: bool = False,
        team: str | None = None,
    ) -> str | None:
        """The rule a read breaks, in words, or None. ``namespace`` is the namespace (or, with
        ``organization``, the organization) read; ``repository`` a repository's name in it."""
        if namespace is not None:
            allowed = self.read.namespaces
            if allowed is not None and not matches(namespace, allowed):
                return (
                    f"policy does not allow reading namespace {namespace!r} "
                    f"(read.namespaces: {', '.join(allowed)})"
                )
            orgs = self.organizations
            if organization and orgs is not None and not matches(namespace, orgs):
                return (
                    f"policy does not allow organization {namespace!r} "
                    f"(organizations: {', '.join(orgs)})"
                )
        if repository is not None and namespace is not None:
            allowed = self.read.repositories
            full = f"{namespace}/{repository}"
            if allowed is not None and not matches(full, allowed):
                return (
                    f"policy does not allow reading repository {full!r} "
                    f"(read.repositories: {', '.join(allowed)})"
                )
        if team is not None and self.teams is not None and not matches(team, self.teams):
            return f"policy does not allow team {team!r} (teams: {', '.join(self.teams)})"
        return None

    def readable(self, namespace: str, repository: str) -> bool:
        """Whether a repository listed in a read may be shown to the agent."""
        allowed = self.read.repositories
        return allowed is None or matches(f"{namespace}/{repository}", allowed)


class Budget(_Strict):
    """How much of Docker Hub an agent may use."""

    requests_per_second: PositiveFloat | None = None
    """Requests to Hub per second, reads and writes alike (the send core's pacer)."""
    calls_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    """Tool calls per minute; a call beyond it is refused, naming this rule."""


class AgentConfig(_Strict):
    """One agent: its credential, fixed settings, policy and budget."""

    connection: ConnectionConfig
    description: str = ""
    settings: dict[str, str | int | bool] = Field(default_factory=dict)
    policy: AgentPolicy = Field(default_factory=AgentPolicy)
    budget: Budget = Field(default_factory=Budget)
    state: str | None = None
    """The folder of the agent's ledger, vault, audit log and confirmations (0700; default
    ``NAME.state/`` beside the agents file)."""
    plans: list[str] = Field(default_factory=list)
    """Desired-state files (``sink plan``) the agent may plan and apply, relative to the
    agents file: it gets the ``plan`` tool, and ``apply`` unless it is read-only. Every step of
    its plans is held to its policy too."""

    @model_validator(mode="after")
    def _checked(self) -> AgentConfig:
        if self.connection.secret_stdin:
            raise ValueError(
                "connection.secret_stdin: an MCP server's standard input is the MCP channel; "
                "use a stored connection (name), secret_env or secret_file"
            )
        for entry in self.plans:
            if not entry.strip() or entry == "-" or "\0" in entry:
                raise ValueError("plans: an entry is the path of a desired-state file")
        if len(set(self.plans)) != len(self.plans):
            raise ValueError("plans: a state file is listed twice")
        taken: dict[str, None] = {}
        for template in self.policy.write_templates():
            taken.update(dict.fromkeys(template.settings_fields))
        taken.update({"org": None, "namespace": None})  # the reads' defaults
        for name in self.settings:
            if name not in taken:
                raise ValueError(
                    f"settings.{name}: no tool of this agent takes it "
                    f"(its templates take {', '.join(taken)})"
                )
        return self


class AgentsFile(_Strict):
    """The agents file: agent name → :class:`AgentConfig`."""

    agents: dict[str, AgentConfig]

    @model_validator(mode="after")
    def _names(self) -> AgentsFile:
        for name in self.agents:
            if not _NAME.fullmatch(name):
                raise ValueError(
                    f"agents: {name!r} is not an agent name (letters, digits, . _ -; at most 64)"
                )
        return self


@dataclass(frozen=True)
class Agent:
    """One agent of an agents file, bound to where its files are."""

    name: str
    config: AgentConfig
    folder: Path
    """The agents file's folder: relative paths (a secret file) are relative to it."""

    @property
    def policy(self) -> AgentPolicy:
        """The agent's policy."""
        return self.config.policy

    @property
    def state(self) -> Path:
        """The folder of the agent's ledger, vault, audit log and confirmations."""
        given = resolve_path(self.folder, self.config.state)
        return given if given is not None else self.folder / f"{self.name}.state"

    @property
    def plans(self) -> dict[str, Path]:
        """The state files the agent may plan and apply: name (as listed) → path."""
        found: dict[str, Path] = {}
        for entry in self.config.plans:
            path = resolve_path(self.folder, entry)
            assert path is not None
            found[entry] = path
        return found

    def setting(self, name: str) -> Any:
        """A fixed setting, or None."""
        return self.config.settings.get(name)


def parse_agents(data: Any, *, source: str = "agents file") -> AgentsFile:
    """Validate an agents mapping; every problem named in one :class:`ConfigError`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: an agents file is a YAML mapping with an `agents` key")
    try:
        return AgentsFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: " + describe(exc)) from exc


def load_agents(path: str | os.PathLike[str]) -> tuple[AgentsFile, Path]:
    """Read and check an agents file; returns it with its folder."""
    file = Path(path)
    data, _ = yamltext.load_mapping(file, "agents file")
    return parse_agents(data, source=str(file)), file.resolve().parent


def load_agent(path: str | os.PathLike[str], name: str) -> Agent:
    """The agent ``name`` of the agents file at ``path``."""
    agents, folder = load_agents(path)
    config = agents.agents.get(name)
    if config is None:
        known = list(agents.agents)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ConfigError(f"{path}: no agent {name!r}{hint} (agents: {', '.join(known) or 'none'})")
    return Agent(name, config, folder)


_RULES = (
    ("policy is read-only", "policy.read_only"),
    ("policy allows templates", "policy.templates"),
    ("policy allows methods", "policy.methods"),
    ("policy does not allow reading namespace", "policy.read.namespaces"),
    ("policy does not allow reading repository", "policy.read.repositories"),
    ("policy does not allow namespace", "policy.write.namespaces"),
    ("policy does not allow repository", "policy.write.repositories"),
    ("policy does not allow the token resource", "policy.write"),
    ("policy does not allow organization", "policy.organizations"),
    ("policy does not allow team", "policy.teams"),
)


def rule_of(refusal: str) -> str:
    """The rule of an agent's policy a refusal names (``policy.write.repositories``...), or
    ``guard`` for the send core's other guards (the last owner, a label taken)."""
    for start, rule in _RULES:
        if refusal.startswith(start):
            return rule
    return "policy" if refusal.startswith("policy") else "guard"
