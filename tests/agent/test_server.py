"""The MCP server, driven by the SDK's own client in-process, against the simulator."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

pytest.importorskip("mcp")

from mcp_types import ElicitResult

from sink.hubsim import Simulator
from tests.agent.conftest import audit_lines, client_for, make_agent
from tests.seed import ACME_OAT, ALICE_PASSWORD

pytestmark = pytest.mark.anyio

SECRET_SHAPES = re.compile(r"dckr_(?:pat|oat)_|eyJ[A-Za-z0-9_\-]+\.eyJ")


def payload(result: Any) -> dict[str, Any]:
    """A tool result's JSON, checked to hold no credential (structured and text alike)."""
    text = result.content[0].text
    assert not SECRET_SHAPES.search(text)
    assert ALICE_PASSWORD not in text and ACME_OAT not in text
    assert orjson.loads(text) == result.structured_content
    return dict(result.structured_content)


def repositories(hub: Simulator, namespace: str = "acme") -> list[str]:
    return sorted(r["name"] for r in hub.state()["repositories"] if r["namespace"] == namespace)


def writes(hub: Simulator) -> list[tuple[str, str]]:
    return [
        (r["method"], r["path"])
        for r in hub.requests()
        if r["method"] in ("POST", "PUT", "PATCH", "DELETE") and r["path"] != "/v2/auth/token"
    ]


# -- tools, schemas and annotations -------------------------------------------------------


async def test_tools_have_schemas_from_the_spec_and_right_annotations(
    tmp_path: Path, hub: Simulator
) -> None:
    agent = make_agent(tmp_path, hub)
    async with client_for(agent) as (client, _):
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    reads = {
        "repositories",
        "repository",
        "tags",
        "tag",
        "members",
        "teams",
        "team_members",
        "invites",
        "access_tokens",
        "org_access_tokens",
        "audit_log",
    }
    assert reads | {"create_repository", "create_team", "delete_team"} <= set(tools)
    for name in reads:
        hints = tools[name].annotations
        assert hints.read_only_hint is True and hints.destructive_hint is False
        assert hints.idempotent_hint is True
    create = tools["create_repository"]
    assert create.annotations.read_only_hint is False
    assert create.annotations.destructive_hint is False
    assert create.annotations.idempotent_hint is False  # a POST
    delete = tools["delete_team"]
    assert delete.annotations.destructive_hint is True
    assert delete.annotations.idempotent_hint is True  # a DELETE
    schema = create.input_schema
    name = schema["properties"]["name"]
    assert name["pattern"] == "^[a-z0-9]+(?:[._-][a-z0-9]+)*$"
    assert (name["minLength"], name["maxLength"]) == (2, 255)
    assert schema["properties"]["description"]["maxLength"] == 100
    assert schema["properties"]["is_private"]["type"] == "boolean"
    assert "namespace" not in schema["properties"]  # fixed by the agent's settings
    assert schema["required"] == ["name"]
    assert schema["additionalProperties"] is False
    assert "confirm" in schema["properties"]
    ordering = tools["repositories"].input_schema["properties"]["ordering"]
    assert "-last_updated" in ordering["enum"]
    assert tools["members"].input_schema["properties"]["role"]["enum"] == [
        "owner",
        "editor",
        "member",
    ]


async def test_a_read_only_agent_has_no_write_tools_and_a_write_is_refused(
    tmp_path: Path, hub: Simulator
) -> None:
    agent = make_agent(tmp_path, hub, policy={"read_only": True, "read": {"namespaces": ["acme"]}})
    async with client_for(agent) as (client, _):
        names = {tool.name for tool in (await client.list_tools()).tools}
        refused = await client.call_tool("create_repository", {"name": "team-x"})
    assert not {name for name in names if name.startswith(("create_", "delete_"))}
    assert refused.is_error
    assert payload(refused)["rule"] == "policy.read_only"


# -- reads ---------------------------------------------------------------------------------


READS: list[tuple[str, dict[str, Any], str]] = [
    ("repositories", {"ordering": "name", "limit": 2}, "api"),
    ("repository", {"repository": "api"}, "api"),
    ("tags", {"repository": "api"}, "v1.1.0"),
    ("tag", {"repository": "api", "tag": "latest"}, "latest"),
    ("members", {"role": "member"}, "bob"),
    ("teams", {}, "developers"),
    ("team_members", {"team": "developers"}, "bob"),
    ("invites", {}, "frank@example.com"),
    ("audit_log", {"since": "2000-01-01", "action": "repo.create"}, ""),
]


async def test_every_read_tool(tmp_path: Path, fresh_hub: Simulator) -> None:
    agent = make_agent(
        tmp_path, fresh_hub, policy={"read_only": True, "read": {"namespaces": ["acme"]}}
    )
    async with client_for(agent) as (client, _):
        for name, arguments, expected in READS:
            result = await client.call_tool(name, arguments)
            answer = payload(result)
            assert not result.is_error, (name, answer)
            assert answer["status"] == "ok"
            assert expected in orjson.dumps(answer["items"]).decode(), name
        # Paging: two by two, the second page starts where the first ended.
        first = payload(await client.call_tool("repositories", {"ordering": "name", "limit": 2}))
        second = payload(
            await client.call_tool(
                "repositories", {"ordering": "name", "limit": 2, "offset": first["next_offset"]}
            )
        )
    assert first["more"] is True
    assert [item["name"] for item in first["items"]] == ["api", "ops-tools"]
    assert [item["name"] for item in second["items"]] == ["web"]
    assert {line["tool"] for line in audit_lines(agent) if "tool" in line} == {
        name for name, _, _ in READS
    }


async def test_token_reads_are_metadata_only(tmp_path: Path, fresh_hub: Simulator) -> None:
    agent = make_agent(
        tmp_path,
        fresh_hub,
        identifier="alice",
        secret=ALICE_PASSWORD,
        settings={},
        policy={"read_only": True},
    )
    async with client_for(agent) as (client, _):
        answer = payload(await client.call_tool("access_tokens", {}))
        org = payload(await client.call_tool("org_access_tokens", {"org": "acme"}))
    assert answer["count"] >= 2
    assert all("token" not in item for item in answer["items"])
    assert {"uuid", "token_label"} <= set(answer["items"][0])
    assert "sink automation" in {item["label"] for item in org["items"]}
    assert all("token" not in item for item in org["items"])


async def test_reads_are_scoped_by_the_read_policy(tmp_path: Path, hub: Simulator) -> None:
    agent = make_agent(
        tmp_path,
        hub,
        policy={"read_only": True, "read": {"namespaces": ["acme"], "repositories": ["acme/a*"]}},
    )
    async with client_for(agent) as (client, _):
        listed = payload(await client.call_tool("repositories", {}))
        other_namespace = await client.call_tool("repositories", {"namespace": "alice"})
        other_repository = await client.call_tool("tags", {"repository": "web"})
    assert [item["name"] for item in listed["items"]] == ["api"]  # web, ops-tools left out
    assert other_namespace.is_error
    assert payload(other_namespace)["rule"] == "policy.read.namespaces"
    assert payload(other_repository)["rule"] == "policy.read.repositories"


async def test_arguments_are_checked_against_the_schema_without_echoing_values(
    tmp_path: Path, hub: Simulator
) -> None:
    agent = make_agent(tmp_path, hub)
    async with client_for(agent) as (client, _):
        bad = await client.call_tool(
            "create_repository", {"name": "Not Valid!", "password": ACME_OAT}
        )
    answer = payload(bad)
    assert bad.is_error and answer["rule"] == "input schema"
    assert "password: not an argument" in answer["error"]
    assert "name: must match" in answer["error"]
    assert "Not Valid!" not in answer["error"]


# -- writes: policy ------------------------------------------------------------------------


async def test_writes_refused_by_namespace_repository_template_and_method(
    tmp_path: Path, fresh_hub: Simulator
) -> None:
    agent = make_agent(
        tmp_path,
        fresh_hub,
        settings={"org": "acme"},
        policy={
            "templates": ["create-repository", "create-team", "delete-team", "remove-member"],
            "methods": ["POST"],
            "write": {"namespaces": ["acme"], "repositories": ["acme/team-*"]},
        },
    )
    async with client_for(agent) as (client, _):
        namespace = await client.call_tool(
            "create_repository", {"namespace": "globex", "name": "team-x"}
        )
        pattern = await client.call_tool(
            "create_repository", {"namespace": "acme", "name": "payments"}
        )
        template = await client.call_tool(
            "update_member_role", {"username": "bob", "role": "owner"}
        )
        method = await client.call_tool("delete_team", {"team": "developers"})
    rules = [payload(result)["rule"] for result in (namespace, pattern, template, method)]
    assert rules == [
        "policy.write.namespaces",
        "policy.write.repositories",
        "policy.templates",
        "policy.methods",
    ]
    assert "acme/team-*" in payload(pattern)["error"]
    assert writes(fresh_hub) == []
    refused = [line for line in audit_lines(agent) if line.get("decision") == "refused"]
    assert [line["rule"] for line in refused] == rules
    assert {line["agent"] for line in refused} == {"bot"}


# -- writes: two steps ---------------------------------------------------------------------


async def test_two_step_write_sends_once_and_refuses_a_replay(
    tmp_path: Path, fresh_hub: Simulator
) -> None:
    agent = make_agent(tmp_path, fresh_hub)
    arguments = {"name": "team-payments", "description": "payments"}
    async with client_for(agent) as (client, _):
        first = payload(await client.call_tool("create_repository", arguments))
        assert writes(fresh_hub) == []  # nothing sent without confirmation
        assert "team-payments" not in repositories(fresh_hub)
        token = first["confirm"]
        other = await client.call_tool(
            "create_repository", {"name": "team-other", "confirm": token}
        )
        sent = await client.call_tool("create_repository", {**arguments, "confirm": token})
        replay = await client.call_tool("create_repository", {**arguments, "confirm": token})
        events = payload(await client.call_tool("audit_log", {"action": "repo.create"}))
    assert [event["name"] for event in events["items"]] == ["acme/team-payments"]
    assert first["status"] == "confirmation_required" and first["sent"] is False
    assert first["request"] == {
        "method": "POST",
        "url": f"{fresh_hub.url}/v2/namespaces/acme/repositories",
        "body": {"namespace": "acme", "name": "team-payments", "description": "payments"},
    }
    assert first["already_in_place"] is False
    assert payload(other)["rule"] == "confirmation: bound to another request"
    answer = payload(sent)
    assert not sent.is_error and answer["status"] == "ok" and answer["http_status"] == 201
    assert payload(replay)["rule"] == "confirmation: already used"
    assert writes(fresh_hub) == [("POST", "/v2/namespaces/acme/repositories")]
    decisions = [(line["tool"], line["decision"]) for line in audit_lines(agent) if "tool" in line]
    assert decisions == [
        ("create_repository", "confirm"),
        ("create_repository", "refused"),
        ("create_repository", "sent"),
        ("create_repository", "refused"),
        ("audit_log", "allowed"),
    ]
    # The send core's own line of the write, under the confirmation's ledger key.
    sent_line = next(line for line in audit_lines(agent) if line.get("decision") == "sent")
    core_line = next(line for line in audit_lines(agent) if line.get("method") == "POST")
    assert core_line["keys"] == sent_line["keys"] and core_line["status"] == 201


async def test_an_expired_token_is_refused(tmp_path: Path, fresh_hub: Simulator) -> None:
    agent = make_agent(tmp_path, fresh_hub)
    now = [1_000_000.0]
    from mcp import Client

    from sink.agent.gateway import Gateway
    from sink.agent.server import build_server

    gateway = Gateway(agent, clock=lambda: now[0])
    async with gateway, Client(build_server(gateway)) as client:
        first = payload(await client.call_tool("create_repository", {"name": "team-late"}))
        now[0] += agent.policy.confirm_seconds + 1
        late = await client.call_tool(
            "create_repository", {"name": "team-late", "confirm": first["confirm"]}
        )
    assert payload(late)["rule"] == "confirmation: expired"
    assert writes(fresh_hub) == []


# -- destructive calls and elicitation -----------------------------------------------------


async def test_destructive_call_without_elicitation_is_refused(
    tmp_path: Path, fresh_hub: Simulator
) -> None:
    agent = make_agent(
        tmp_path, fresh_hub, settings={"org": "acme"}, policy={"templates": ["delete-team"]}
    )
    async with client_for(agent) as (client, _):
        first = payload(await client.call_tool("delete_team", {"team": "developers"}))
        refused = await client.call_tool(
            "delete_team", {"team": "developers", "confirm": first["confirm"]}
        )
    assert first["destructive"] is True
    assert payload(refused)["rule"] == "destructive: no human approval"
    assert writes(fresh_hub) == []


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize("approve", [True, False])
async def test_destructive_call_asks_the_human(
    tmp_path: Path, fresh_hub: Simulator, mode: str, approve: bool
) -> None:
    asked: list[str] = []

    async def human(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"approve": approve})

    agent = make_agent(
        tmp_path, fresh_hub, settings={"org": "acme"}, policy={"templates": ["delete-team"]}
    )
    async with client_for(agent, mode=mode, elicitation_callback=human) as (client, _):
        first = payload(await client.call_tool("delete_team", {"team": "developers"}))
        result = await client.call_tool(
            "delete_team", {"team": "developers", "confirm": first["confirm"]}
        )
    assert len(asked) == 1 and "DELETE" in asked[0] and "/groups/developers" in asked[0]
    teams = {team["name"] for team in fresh_hub.state()["orgs"][0]["teams"]}
    if approve:
        assert payload(result)["status"] == "ok"
        assert "developers" not in teams
    else:
        assert payload(result)["rule"] == "destructive: declined by the human"
        assert "developers" in teams and writes(fresh_hub) == []


async def test_unattended_destructive_calls_when_the_policy_allows_them(
    tmp_path: Path, fresh_hub: Simulator
) -> None:
    agent = make_agent(
        tmp_path,
        fresh_hub,
        settings={"org": "acme"},
        policy={"templates": ["delete-team"], "unattended_destructive": True},
    )
    async with client_for(agent) as (client, _):
        first = payload(await client.call_tool("delete_team", {"team": "developers"}))
        done = await client.call_tool(
            "delete_team", {"team": "developers", "confirm": first["confirm"]}
        )
    assert payload(done)["status"] == "ok"
    assert writes(fresh_hub) == [("DELETE", "/v2/orgs/acme/groups/developers")]


# -- secrets -------------------------------------------------------------------------------


async def test_a_created_tokens_secret_goes_to_the_vault_only(
    tmp_path: Path, fresh_hub: Simulator
) -> None:
    agent = make_agent(
        tmp_path,
        fresh_hub,
        identifier="alice",
        secret=ALICE_PASSWORD,
        settings={"org": "acme"},
        policy={"templates": ["create-org-access-token"], "organizations": ["acme"]},
    )
    arguments = {
        "label": "ci-agent",
        "resources": [{"type": "TYPE_REPO", "path": "acme/api", "scopes": ["scope-image-pull"]}],
    }
    async with client_for(agent) as (client, _):
        first = payload(await client.call_tool("create_org_access_token", arguments))
        created = await client.call_tool(
            "create_org_access_token", {**arguments, "confirm": first["confirm"]}
        )
        listed = await client.call_tool("org_access_tokens", {})
    answer = payload(created)  # no dckr_oat_ anywhere in it
    payload(listed)
    assert answer["status"] == "ok"
    secret = answer["secret"]
    assert secret["label"] == "ci-agent" and secret["token_id"]
    vault = Path(secret["vault"])
    assert vault == agent.state / "vault.jsonl"
    assert vault.stat().st_mode & 0o777 == 0o600
    lines = [orjson.loads(line) for line in vault.read_bytes().splitlines()]
    assert lines[0]["token_id"] == secret["token_id"]
    assert lines[0]["token"].startswith("dckr_oat_")
    everything = b"".join(
        path.read_bytes()
        for path in agent.state.iterdir()
        if path.suffix == ".jsonl"
        if path.name != "vault.jsonl"
    )
    assert lines[0]["token"].encode() not in everything
    assert ALICE_PASSWORD.encode() not in everything
