"""The agent gateway: one agent's tool calls, checked, logged, and sent through sink's own code.

Independent of MCP (the server, :mod:`sink.agent.server`, is a thin layer over it), so the same
gateway can be driven by a test, a benchmark or another protocol.

- **Reads** go through sink's read client and exports (:class:`~sink.read.hub.HubReader`,
  :func:`sink.read.export.records`), scoped by the agent's read policy; listed repositories the
  policy does not cover are left out. Items are redacted like the responses stream.
- **Writes** are two calls (:mod:`sink.agent.confirm`). The first renders the request as a run
  would (the template's look-ups, the renderer's spec validation), asks the send core's guard
  (the agent's write policy, the last-owner guard, the label check) and looks up whether the
  effect is already in place; it sends nothing and returns the redacted request, the verdict
  and a token. The second, with the token, sends it through :func:`sink.run.send_one_async`:
  the same send core as ``sink run``, with the agent's ledger (a retried call never creates
  twice), vault (a created token's secret goes there; the agent gets its id, label and where the
  vault is), guard and audit log. A destructive call asks a human first (``approve``).
- **Plans** (:mod:`sink.agent.plans`): ``plan`` makes a plan of one of the agent's state files,
  signed in as the agent, every step held to the agent's policy; ``apply`` sends a saved plan
  in two calls like a write, through :func:`sink.plan.apply.apply_plan`.
- **One session**: the agent's reads and its confirmed writes go through one
  :class:`~sink.send.session.HubSession` (one sign-in, one pacer at the agent's
  ``requests_per_second``): the send core is given it (``send_one_async(session=...)``).
- **Every call** goes to the agent's audit log (:mod:`sink.agent.audit`), allowed or refused.
  A refusal names its rule. No result or error carries a credential: results pass the
  responses stream's redaction and a :class:`~sink.outputs.redact.Redactor` that knows the
  connection's secret and every JWT seen.
"""

from __future__ import annotations

import asyncio
import contextvars
import fnmatch
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx
import orjson

from sink.agent.agents import Agent
from sink.agent.agents import rule_of as _rule
from sink.agent.audit import AgentAudit
from sink.agent.confirm import Confirmation, Confirmations, request_digest
from sink.agent.tools import CONFIRM, MAX_LIMIT, ToolSpec, argument_problems, tools_for
from sink.config import DestinationConfig, ResponsesConfig
from sink.destination import Destination, base_url_of, bind
from sink.errors import RejectRecord, RetryLater, SinkError, ToolRefused
from sink.model import Record, Request, Status
from sink.outputs.audit import HIDDEN_FIELDS
from sink.outputs.files import response_line
from sink.outputs.redact import Redactor, redact
from sink.read.credentials import Credentials
from sink.read.hub import HubReader
from sink.read.secrets import resolve

if TYPE_CHECKING:
    from sink.plan.make import Plan
    from sink.plan.state import DesiredState

Answer = Literal["accept", "decline", "cancel", "unsupported"]
Approver = Callable[[str], Awaitable[Answer]]
"""Asks the human to approve a destructive call (``message`` → their answer); ``unsupported``
when the client cannot ask."""

_CURRENT_TOOL: contextvars.ContextVar[str] = contextvars.ContextVar("sink_agent_tool", default="")
_SENDING: contextvars.ContextVar[bool] = contextvars.ContextVar("sink_agent_sending", default=False)
_MINUTE = 60.0
_RESULT_FIELDS = HIDDEN_FIELDS | {"token"}


class Pending(Exception):
    """Raised by an :data:`Approver` that must end the call now and resume it later (an MCP
    client of the 2026-07-28 protocol answers elicitations on a retry of the call). Nothing
    was spent or sent; ``result`` is what the protocol layer returns."""

    def __init__(self, result: Any) -> None:
        super().__init__("waiting for the human's answer")
        self.result = result


@dataclass
class ToolResult:
    """A tool call's answer: a JSON object for the agent, and whether it is an error."""

    payload: dict[str, Any]
    is_error: bool = False


@dataclass
class _Budget:
    per_minute: int | None
    clock: Callable[[], float]
    calls: deque[float] = field(default_factory=deque)

    def take(self) -> None:
        if self.per_minute is None:
            return
        now = self.clock()
        while self.calls and self.calls[0] <= now - _MINUTE:
            self.calls.popleft()
        if len(self.calls) >= self.per_minute:
            raise ToolRefused(
                f"the agent's rate budget is spent: {self.per_minute} tool calls a minute; "
                "try again in a minute",
                rule="budget.calls_per_minute",
            )
        self.calls.append(now)


class Gateway:
    """One agent's tools (see the module). Use as ``async with Gateway(agent) as gateway``."""

    def __init__(
        self,
        agent: Agent,
        *,
        base_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.agent = agent
        self.transport = transport
        self.clock = clock
        self._base_url = base_url
        config = agent.config
        fixed = dict(config.settings)
        self.default_org = (
            str(fixed.get("org") or fixed.get("namespace") or config.connection.identifier or "")
            or None
        )
        self.tools: dict[str, ToolSpec] = {
            spec.name: spec
            for spec in tools_for(
                agent.policy.write_templates(),
                fixed,
                self.default_org,
                plans=list(agent.plans),
                apply=not agent.policy.read_only,
            )
        }
        self._budget = _Budget(config.budget.calls_per_minute, clock)
        self._writes = asyncio.Lock()
        self._destinations: dict[tuple[str, bytes], Destination] = {}
        self._client: httpx.AsyncClient | None = None
        self._started = False

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Gateway:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start(self) -> None:
        """Read the credential, open the read client, the audit log and the confirmations."""
        from sink.outputs.files import private_dirs
        from sink.send.session import HubSession

        agent = self.agent
        connection = agent.config.connection
        self.base_url = base_url_of(connection, self._base_url)
        self.credentials: Credentials = resolve(connection, agent.folder, base_url=self.base_url)
        if self.default_org is None:
            self.default_org = self.credentials.identifier
        self.redactor = Redactor([self.credentials.secret])
        private_dirs(agent.state)
        # One sign-in and one pacer for the agent: its reads, its writes (the send core is
        # given this session) and its plans share them, and its rate budget.
        self.session = HubSession(
            self.credentials,
            concurrency=4,
            timeout=30.0,
            rate=agent.config.budget.requests_per_second,
            redactor=self.redactor,
            transport=self.transport,
        )
        self._client = self.session.client
        self._client.event_hooks["response"].append(self._audit_read)
        self.reader: HubReader = self.session.reader
        self.audit = AgentAudit(self.paths["audit"], agent=agent.name, redactor=self.redactor)
        self.confirmations = Confirmations(
            self.paths["confirmations"], ttl=agent.policy.confirm_seconds, clock=self.clock
        )
        self._started = True

    async def aclose(self) -> None:
        """Close the read client and the files."""
        if not self._started:
            return
        self._started = False
        try:
            if self._client is not None:
                await self.session.aclose()
        finally:
            self.confirmations.close()
            self.audit.close()

    @property
    def paths(self) -> dict[str, Path]:
        """The agent's files, in its state folder."""
        state = self.agent.state
        return {
            "audit": state / "audit.jsonl",
            "vault": state / "vault.jsonl",
            "ledger": state / "ledger.sqlite",
            "rejects": state / "rejects.jsonl",
            "responses": state / "responses.jsonl",
            "confirmations": state / "confirmations.sqlite",
        }

    async def _audit_read(self, response: httpx.Response) -> None:
        request = response.request
        # A confirmed write's reads (its look-ups) are the send core's to audit.
        if request.method in ("GET", "HEAD") and not _SENDING.get():
            template = f"mcp:{_CURRENT_TOOL.get() or 'read'}"
            self.audit.read(template, request.method, str(request.url), response.status_code)

    # -- calls ------------------------------------------------------------------------------

    async def call(
        self, name: str, arguments: Mapping[str, Any], approve: Approver | None = None
    ) -> ToolResult:
        """Call the tool ``name``; never raises for a refusal or a failure (they are results),
        only :class:`Pending` from ``approve``."""
        args = {key: value for key, value in arguments.items() if value is not None}
        spec = self.tools.get(name)
        kind = spec.kind if spec is not None else "unknown"
        token = _CURRENT_TOOL.set(name)
        try:
            if spec is None:
                raise self._unknown(name)
            problems = argument_problems(spec, args)
            if problems:
                raise ToolRefused("invalid arguments: " + "; ".join(problems), rule="input schema")
            self._budget.take()
            self.reader.invalidate()  # a long-lived server: every call reads Hub afresh
            if spec.kind == "read":
                return await self._read(spec, args)
            if spec.kind == "plan":
                return await self._plan(spec, args)
            async with self._writes:
                if spec.kind == "apply":
                    return await self._apply(spec, args, approve)
                return await self._write(spec, args, approve)
        except ToolRefused as exc:
            self.audit.tool_call(name, kind, args, "refused", rule=exc.rule, error=exc.message)
            return self._error("refused", exc.message, rule=exc.rule)
        except (SinkError, httpx.HTTPError) as exc:
            message = _message(exc)
            self.audit.tool_call(name, kind, args, "failed", outcome="error", error=message)
            return self._error("failed", message)
        except Pending:
            raise
        except Exception as exc:  # noqa: BLE001 - logged and answered, never the SDK's raw text
            message = f"internal error ({type(exc).__name__}); see the audit log"
            detail = self.redactor(str(exc))
            self.audit.tool_call(name, kind, args, "failed", outcome="error", error=detail)
            return self._error("failed", message)
        finally:
            _CURRENT_TOOL.reset(token)

    def _unknown(self, name: str) -> ToolRefused:
        """Why the agent has no tool ``name``: a template its policy leaves out names the
        rule (templates, methods, read-only)."""
        from sink.request.templates import load_registry

        policy = self.agent.policy
        template = next((t for t in load_registry() if t.id.replace("-", "_") == name), None)
        if template is None:
            return ToolRefused(f"this agent has no tool {name!r}", rule="tools")
        if policy.read_only:
            return ToolRefused(
                f"policy is read-only: {name} ({template.method}) is not allowed",
                rule="policy.read_only",
            )
        patterns = policy.templates or []
        if not any(fnmatch.fnmatchcase(template.id, pattern) for pattern in patterns):
            allowed = ", ".join(patterns) or "none"
            return ToolRefused(
                f"policy allows templates {allowed}, not {template.id}", rule="policy.templates"
            )
        methods = ", ".join(policy.methods or ())
        return ToolRefused(
            f"policy allows methods {methods}, not {template.method} ({name})",
            rule="policy.methods",
        )

    def _error(self, status: str, message: str, **extra: Any) -> ToolResult:
        payload = {"status": status, "error": message, **extra}
        return ToolResult(self._scrub(payload), is_error=True)

    def _scrub(self, payload: dict[str, Any]) -> dict[str, Any]:
        return dict(self.redactor.scrub(payload))

    # -- reads ------------------------------------------------------------------------------

    async def _read(self, spec: ToolSpec, args: dict[str, Any]) -> ToolResult:
        from sink.read.export import ExportOptions, records

        policy = self.agent.policy
        if spec.scope == "user":
            namespace = self.credentials.identifier
        else:
            given = args.get("account") or args.get("org") or args.get("namespace")
            namespace = str(given or self.default_org)
            refusal = policy.read_refusal(
                namespace=namespace,
                repository=args.get("repository"),
                organization=spec.scope == "organization",
                team=args.get("team"),
            )
            if refusal is not None:
                raise ToolRefused(refusal, rule=_rule(refusal))
        limit = int(args.get("limit", 50))
        offset = int(args.get("offset", 0))
        options = ExportOptions(
            namespace=namespace,
            repository=args.get("repository"),
            tag=args.get("tag"),
            team=args.get("team"),
            name=args.get("name"),
            ordering=args.get("ordering"),
            search=args.get("search"),
            role=args.get("role"),
            type=args.get("type"),
            since=args.get("since"),
            until=args.get("until"),
            action=args.get("action"),
            actor=args.get("actor"),
            page_size=min(100, max(10, offset + limit + 1)) if spec.export != "audit-log" else None,
        )
        assert spec.export is not None
        items: list[dict[str, Any]] = []
        seen = 0
        more = False
        async for item in records(self.reader, spec.export, namespace, options):
            if spec.export == "repositories" and not policy.readable(
                namespace, str(item.get("name", ""))
            ):
                continue
            seen += 1
            if seen <= offset:
                continue
            if len(items) == min(limit, MAX_LIMIT):
                more = True
                break
            items.append(redact(item, _RESULT_FIELDS))
        payload: dict[str, Any] = {"status": "ok", "count": len(items), "items": items}
        if spec.input_schema["properties"].get("limit") is not None:
            payload["more"] = more
            if more:
                payload["next_offset"] = offset + len(items)
        self.audit.tool_call(spec.name, "read", args, "allowed", outcome=f"{len(items)} items")
        return ToolResult(self._scrub(payload))

    # -- writes -----------------------------------------------------------------------------

    def destination(self, spec: ToolSpec, settings: Mapping[str, Any]) -> Destination:
        """The destination a write tool sends through: its template and settings, the agent's
        write policy, its rate budget and its files (cached per template and settings)."""
        assert spec.template is not None
        cache_key = (spec.template.id, orjson.dumps(dict(settings), option=orjson.OPT_SORT_KEYS))
        found = self._destinations.get(cache_key)
        if found is not None:
            return found
        agent = self.agent
        paths = self.paths
        config = DestinationConfig(
            connection=agent.config.connection,
            template=spec.template.id,
            settings=dict(settings),
            policy=agent.policy.write_policy(),
            responses=ResponsesConfig(file=str(paths["responses"])),
            vault=str(paths["vault"]),
            rejects=str(paths["rejects"]),
            ledger=str(paths["ledger"]),
            audit=str(paths["audit"]),
            concurrency=1,
            rate_limit=agent.config.budget.requests_per_second,
            # The gateway asked for the human's approval (or the policy allows it unattended).
            allow_destructive=True,
        )
        destination = bind(config, agent.state, base_url=self.base_url)
        destination.name = agent.name
        self._destinations[cache_key] = destination
        return destination

    async def _write(
        self, spec: ToolSpec, args: dict[str, Any], approve: Approver | None
    ) -> ToolResult:
        settings = {**spec.fixed, **{key: args[key] for key in spec.settings if key in args}}
        data = {
            key: value for key, value in args.items() if key not in spec.settings and key != CONFIRM
        }
        destination = self.destination(spec, settings)
        request, present = await self._prepare(destination, data)
        digest = request_digest(spec.name, request)
        token = args.get(CONFIRM)
        if token is None:
            return self._confirmation(spec, args, destination, request, digest, present)
        confirmation = self.confirmations.check(str(token), spec.name, digest)
        if confirmation.spent is not None:
            confirmation = self._retry(confirmation)
        else:
            if spec.destructive:
                words = f"{spec.title.lower()}: {self._request_words(request)}"
                await self._approved(spec, words, approve, args)
            confirmation = self.confirmations.spend(confirmation)
        return await self._send(spec, args, destination, data, confirmation)

    async def _prepare(
        self, destination: Destination, data: dict[str, Any]
    ) -> tuple[Request, bool | None]:
        """The request a confirmed call would send, checked as the send core would check it:
        the look-ups, the spec, the guard; and whether its effect is already in place."""
        from sink.guard.check import Guard
        from sink.guard.labels import with_label_check
        from sink.guard.resolve import resolver_for
        from sink.read.credentials import check_accepted
        from sink.send.core import look_up_effect

        template = destination.template
        if template is not None:
            try:
                check_accepted(self.credentials, list(template.credentials), template.id)
            except SinkError as exc:
                raise ToolRefused(str(exc), rule="credential") from exc
        record = Record(0, dict(data), key="mcp:prepare")
        try:
            resolver = resolver_for(destination, self.reader)
            if resolver is not None:
                await resolver.apply(record)
            request = destination.renderer.render(record)
        except RejectRecord as exc:
            raise ToolRefused(f"the request cannot be made: {exc.message}", rule="spec") from exc
        guard = with_label_check(
            Guard(self.reader, destination.config.policy), destination.config, self.reader
        )
        refusal = await guard.refusal(request)
        if refusal is not None:
            raise ToolRefused(refusal, rule=_rule(refusal))
        try:
            present = await look_up_effect(destination, self.reader, (record,), fresh=True)
        except RejectRecord as exc:
            raise ToolRefused(f"the request cannot be sent: {exc.message}", rule="look-up") from exc
        return request, present

    def _shown(self, request: Request) -> dict[str, Any]:
        body: Any = None
        if request.body is not None:
            body = redact(orjson.loads(request.body), HIDDEN_FIELDS)
        return {"method": request.method, "url": request.url, "body": body}

    def _confirmation(
        self,
        spec: ToolSpec,
        args: dict[str, Any],
        destination: Destination,
        request: Request,
        digest: str,
        present: bool | None,
    ) -> ToolResult:
        token, confirmation = self.confirmations.issue(spec.name, digest)
        verdict = "allowed by the agent's policy and the guards (they are asked again on send)"
        payload: dict[str, Any] = {
            "status": "confirmation_required",
            "sent": False,
            "request": self._shown(request),
            "decision": verdict,
            "already_in_place": present,
            "destructive": spec.destructive,
            "confirm": token,
            "expires_at": _iso(confirmation.expires),
            "next": (
                f"call {spec.name} again with the same arguments and confirm set to this token"
                + (" (a human will be asked to approve it)" if spec.destructive else "")
            ),
        }
        self.audit.tool_call(spec.name, "write", args, "confirm", outcome="not sent")
        return ToolResult(self._scrub(payload))

    def _retry(self, confirmation: Confirmation) -> Confirmation:
        """A spent token again: only a request the ledger left unsettled (the call was cut
        off) goes on, to be settled by the send core's resume; anything else is a replay."""
        from sink.send.ledger import FAILED, SENT, Ledger

        with Ledger(self.paths["ledger"]) as ledger:
            entry = ledger.get(confirmation.key)
        if entry is not None and entry.state in (SENT, FAILED):
            return confirmation
        state = entry.state if entry is not None else "not recorded"
        raise ToolRefused(
            f"the confirmation token was already used (its request is {state} in the ledger); "
            "nothing was sent",
            rule="confirmation: already used",
        )

    @staticmethod
    def _request_words(request: Request) -> str:
        words = f"{request.method} {request.url}"
        if request.body is not None:
            body = redact(orjson.loads(request.body), HIDDEN_FIELDS)
            words += " " + orjson.dumps(body).decode()
        return words

    async def _approved(
        self, spec: ToolSpec, words: str, approve: Approver | None, args: dict[str, Any]
    ) -> None:
        """Ask the human to approve ``words`` (what the call will do); refuses unless they do
        (or the client cannot ask and the policy allows unattended destructive calls)."""
        policy = self.agent.policy
        message = f"The agent {self.agent.name!r} asks to {words}"
        message = self.redactor(message + ". This cannot be undone. Approve?")
        answer: Answer = "unsupported"
        if approve is not None:
            answer = await _asked(approve, message, self, spec, args)
        if answer == "accept":
            return
        if answer == "unsupported":
            if policy.unattended_destructive:
                return
            raise ToolRefused(
                f"{spec.name} is destructive and needs a human's approval, which this MCP "
                "client cannot ask for (elicitation); the agent's policy does not allow "
                "unattended destructive calls (unattended_destructive: true)",
                rule="destructive: no human approval",
            )
        raise ToolRefused(
            f"the human did not approve {spec.name} ({answer})",
            rule="destructive: declined by the human",
        )

    async def _send(
        self,
        spec: ToolSpec,
        args: dict[str, Any],
        destination: Destination,
        data: dict[str, Any],
        confirmation: Confirmation,
    ) -> ToolResult:
        from sink.run import send_one_async

        key = confirmation.key
        sending = _SENDING.set(True)
        try:
            result = await send_one_async(
                destination,
                self.credentials,
                Record(0, dict(data), key=key),
                transport=self.transport,
                session=self.session,
            )
        finally:
            _SENDING.reset(sending)
            # A send the dispatcher stopped (a StopRun) stops the shared pacer: the agent's
            # next call paces again.
            self.session.pacer.resume()
        if result.rejected is not None:
            message = result.rejected.error
            refused = message.startswith("refused: ") or message.startswith("policy")
            rule = _rule(message.removeprefix("refused: ")) if refused else "spec"
            self.audit.tool_call(
                spec.name, "write", args, "refused", rule=rule, error=message, key=key
            )
            return self._error("refused", message, rule=rule, sent=False)
        if result.outcome is None:
            self.audit.tool_call(spec.name, "write", args, "sent", outcome="done before", key=key)
            return ToolResult(
                self._scrub(
                    {
                        "status": "already_done",
                        "sent": False,
                        "note": "the ledger says this confirmed request was already done",
                    }
                )
            )
        outcome = result.outcome
        line = response_line(outcome, destination.secret_fields, self.redactor)
        payload: dict[str, Any] = {
            "status": outcome.status.value,
            "sent": not outcome.not_sent,
            "http_status": outcome.http_status,
            "body": redact(line.get("body"), _RESULT_FIELDS),
            "error": outcome.error,
        }
        if line.get("extra"):
            payload["flags"] = line["extra"]
        if destination.secret_fields:
            payload["secret"] = self._vaulted(outcome, line.get("body"))
        self.audit.tool_call(
            spec.name, "write", args, "sent", outcome=outcome.status.value, key=key
        )
        return ToolResult(self._scrub(payload), is_error=outcome.status is not Status.OK)

    def _vaulted(self, outcome: Any, body: Any) -> dict[str, Any]:
        entry = outcome.vault
        token_id = label = None
        if entry is not None:
            token_id, label = entry.token_id, entry.label
        elif isinstance(body, dict):
            token_id = body.get("uuid") or body.get("id")
            label = body.get("token_label") or body.get("label")
        return {
            "token_id": None if token_id is None else str(token_id),
            "label": label,
            "vault": str(self.paths["vault"]),
            "note": "the secret is in the vault (0600) on the machine running sink, never here",
        }

    # -- plans ------------------------------------------------------------------------------

    def _plan_scope(self, state: DesiredState) -> None:
        """Refuse a state file of an organization or namespace the agent may not read."""
        policy = self.agent.policy
        for namespace, organization in ((state.org, True), (state.namespace, False)):
            refusal = policy.read_refusal(namespace=namespace, organization=organization)
            if refusal is not None:
                raise ToolRefused(refusal, rule=_rule(refusal))

    def _plan_data(self, plan: Plan) -> dict[str, Any]:
        from sink.plan.show import data

        shown = data(plan)
        shown.pop("format", None)
        actions = shown["actions"]
        if len(actions) > MAX_LIMIT:
            shown["actions"] = actions[:MAX_LIMIT]
            shown["actions_left_out"] = len(actions) - MAX_LIMIT
        return dict(redact(shown, _RESULT_FIELDS))

    async def _plan(self, spec: ToolSpec, args: dict[str, Any]) -> ToolResult:
        """Plan one of the agent's state files, signed in as the agent, every step held to
        the agent's policy; saved for apply (see :mod:`sink.agent.plans`)."""
        from sink.agent.plans import agent_refusals, within_budget
        from sink.outputs.files import private_dirs
        from sink.plan.make import make_plan
        from sink.plan.show import summary_line
        from sink.plan.state import load_state
        from sink.plan.store import save_plan

        budget = self.agent.config.budget.requests_per_second
        state = within_budget(load_state(self.agent.plans[str(args["state"])]), budget)
        self._plan_scope(state)
        plan = await make_plan(
            state,
            self.credentials,
            base_url=self.base_url,
            transport=self.transport,
            ensure_all=bool(args.get("ensure_grants", False)),
        )
        refused = await agent_refusals(
            plan, self.agent.policy.write_policy(), self.reader, base_url=self.base_url
        )
        folder = self.agent.state / "plans"
        private_dirs(folder)
        save_plan(plan, folder / f"{plan.id}.json")
        summary = summary_line(plan)
        can_apply = "apply" in self.tools and plan.sendable()
        payload: dict[str, Any] = {
            "status": "ok",
            "plan_id": plan.id,
            "summary": summary,
            "changes": plan.changes,
            "destructive": plan.destructive,
            "refused_by_agent_policy": refused,
            "plan": self._plan_data(plan),
            "next": (
                f"call apply with plan_id {plan.id} (it answers with a confirmation token)"
                if can_apply
                else "nothing this agent can apply"
            ),
        }
        self.audit.tool_call(
            spec.name, "plan", args, "allowed", outcome=f"plan {plan.id}: {summary}"
        )
        return ToolResult(self._scrub(payload))

    async def _apply(
        self, spec: ToolSpec, args: dict[str, Any], approve: Approver | None
    ) -> ToolResult:
        """Apply a saved plan in two calls (see :mod:`sink.agent.plans`)."""
        from sink.agent.plans import (
            agent_refusals,
            allowed_state,
            apply_digest,
            load_agent_plan,
            within_budget,
        )
        from sink.errors import PlanDrift
        from sink.plan.apply import apply_plan
        from sink.plan.diff import DELETE
        from sink.plan.show import action_line

        plan = load_agent_plan(self.agent.state, str(args["plan_id"]))
        plan.state = within_budget(plan.state, self.agent.config.budget.requests_per_second)
        allowed_state(self.agent.plans, plan.state.path)
        self._plan_scope(plan.state)
        # Checked again: the agents file (or Hub's names for ids) may have changed since.
        refused = await agent_refusals(
            plan, self.agent.policy.write_policy(), self.reader, base_url=self.base_url
        )
        sendable = plan.sendable()
        if not sendable:
            raise ToolRefused(
                f"plan {plan.id} sends nothing this agent may send (no changes, or every change "
                "refused)",
                rule="plan: nothing to apply",
            )
        digest = apply_digest(plan)
        token = args.get(CONFIRM)
        if token is None:
            issued, confirmation = self.confirmations.issue(spec.name, digest)
            payload: dict[str, Any] = {
                "status": "confirmation_required",
                "sent": False,
                "plan_id": plan.id,
                "sends": [action_line(action) for action in sendable],
                "calls": plan.calls,
                "refused": [action_line(a) for a in plan.actions if a.refused is not None],
                "refused_by_agent_policy": refused,
                "destructive": plan.destructive,
                "decision": "allowed by the agent's policy, the state file's and the guards "
                "(asked again on send; Hub is read again first: drift sends nothing)",
                "confirm": issued,
                "expires_at": _iso(confirmation.expires),
                "next": "call apply again with the same plan_id and confirm set to this token"
                + (" (a human will be asked to approve it)" if plan.destructive else ""),
            }
            self.audit.tool_call(spec.name, "apply", args, "confirm", outcome="not sent")
            return ToolResult(self._scrub(payload))
        confirmation = self.confirmations.check(str(token), spec.name, digest)
        if confirmation.spent is not None:
            raise ToolRefused(
                "the confirmation token was already used: call apply without confirm for a new "
                "one (applying the same plan again sends only what it has not done yet)",
                rule="confirmation: already used",
            )
        if plan.destructive:
            gone = [f"{a.label} {a.key}" for a in sendable if a.op == DELETE]
            words = (
                f"apply plan {plan.id} of {plan.state.path.name}, which destroys {len(gone)}: "
                + ", ".join(gone[:20])
                + (" ..." if len(gone) > 20 else "")
            )
            await self._approved(spec, words, approve, args)
        self.confirmations.spend(confirmation)
        try:
            # apply_plan runs each template through the send core on its own event loop.
            summary = await asyncio.to_thread(
                apply_plan,
                plan,
                yes=True,
                base_url=self.base_url,
                transport=self.transport,
                credentials=self.credentials,
            )
        except PlanDrift as exc:
            raise ToolRefused(str(exc), rule="drift") from exc
        runs = [
            {
                "template": template,
                "records": run.counts.records,
                "requests": run.counts.requests,
                "ok": run.counts.ok,
                "rejected": run.counts.rejected,
                "failed": run.counts.failed,
                "skipped": run.counts.skipped,
                "done_before": run.counts.done_before,
                "in_doubt": run.in_doubt,
                "secrets_to_vault": run.counts.secrets,
            }
            for template, run in summary.runs
        ]
        outputs = summary.runs[0][1].outputs if summary.runs else None
        # Steps refused in the plan were never to be sent: trouble is what sending met.
        trouble = summary.stopped is not None or any(
            run["rejected"] or run["failed"] or run["skipped"] or run["in_doubt"] for run in runs
        )
        result: dict[str, Any] = {
            "status": "trouble" if trouble else "ok",
            "sent": summary.calls > 0,
            "plan_id": plan.id,
            "calls": summary.calls,
            "runs": runs,
            "refused_in_plan": sum(a.refused is not None for a in plan.actions),
            "stopped": summary.stopped,
        }
        if outputs is not None:
            result["outputs"] = {
                "ledger": str(outputs.ledger),
                "audit": str(outputs.audit),
                "responses": None if outputs.responses is None else str(outputs.responses),
                "vault": None if outputs.vault is None else str(outputs.vault),
                "note": "created tokens' secrets are in the vault (0600) on the machine "
                "running sink, never here",
            }
        outcome = f"plan {plan.id}: {summary.calls} calls" + (" (trouble)" if trouble else "")
        self.audit.tool_call(spec.name, "apply", args, "sent", outcome=outcome)
        return ToolResult(self._scrub(result), is_error=summary.stopped is not None)


async def _asked(
    approve: Approver, message: str, gateway: Gateway, spec: ToolSpec, args: dict[str, Any]
) -> Answer:
    try:
        return await approve(message)
    except Pending:
        gateway.audit.tool_call(spec.name, "write", args, "asked", outcome="awaiting a human")
        raise


def _message(exc: BaseException) -> str:
    if isinstance(exc, RetryLater):
        return f"Docker Hub asks to wait: {exc}"
    if isinstance(exc, httpx.HTTPError):
        return f"Docker Hub could not be reached ({type(exc).__name__})"
    return getattr(exc, "message", None) or str(exc)


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
