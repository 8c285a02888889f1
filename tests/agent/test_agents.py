"""The agents file: loading, validation, and the policy's read and write rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from sink.agent.agents import load_agent, load_agents, parse_agents
from sink.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agents.yaml"


def _one(**agent: object) -> dict[str, object]:
    base: dict[str, object] = {"connection": {"identifier": "acme", "secret_env": "ACME_OAT"}}
    return {"agents": {"bot": {**base, **agent}}}


def test_the_example_loads_a_read_only_agent_and_a_team_scoped_writer() -> None:
    agents, folder = load_agents(EXAMPLE)
    assert folder == EXAMPLE.parent
    auditor = load_agent(EXAMPLE, "auditor")
    assert auditor.policy.read_only and auditor.policy.write_templates() == []
    writer = load_agent(EXAMPLE, "team-bot")
    assert [t.id for t in writer.policy.write_templates()] == [
        "create-repository",
        "grant-team-repository",
        "update-immutable-tags",
    ]
    policy = writer.policy.write_policy()
    assert policy.repositories == ["acme/team-*"] and policy.namespaces == ["acme"]
    assert writer.state == EXAMPLE.parent / "team-bot.state"
    assert set(agents.agents) == {"auditor", "team-bot"}


def test_unknown_keys_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"agents.bot.policy.writes: unknown key"):
        parse_agents(_one(policy={"writes": {}}))


def test_an_unknown_template_is_named_with_close_matches() -> None:
    with pytest.raises(ConfigError, match=r"no template matches 'create-repo'.*create-repository"):
        parse_agents(_one(policy={"templates": ["create-repo"]}))


def test_standard_input_cannot_hold_the_secret() -> None:
    with pytest.raises(ConfigError, match="MCP channel"):
        parse_agents(
            {"agents": {"bot": {"connection": {"identifier": "acme", "secret_stdin": True}}}}
        )


def test_a_setting_no_tool_takes_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"settings.orgg: no tool of this agent takes it"):
        parse_agents(_one(settings={"orgg": "acme"}, policy={"templates": ["create-team"]}))


def test_a_glob_crossing_a_segment_is_refused() -> None:
    with pytest.raises(ConfigError, match="is not namespace/name"):
        parse_agents(_one(policy={"write": {"repositories": ["acme*"]}}))


def test_an_unknown_agent_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no agent 'team-bott'; did you mean team-bot"):
        load_agent(EXAMPLE, "team-bott")


def test_read_rules() -> None:
    agents = parse_agents(
        _one(
            policy={
                "read": {"namespaces": ["acme"], "repositories": ["acme/team-*"]},
                "organizations": ["acme"],
                "teams": ["team-*"],
            }
        )
    )
    policy = agents.agents["bot"].policy
    assert policy.read_refusal(namespace="acme", repository="team-a") is None
    assert "read.namespaces" in str(policy.read_refusal(namespace="globex"))
    assert "read.repositories" in str(policy.read_refusal(namespace="acme", repository="api"))
    assert "teams" in str(policy.read_refusal(namespace="acme", team="owners"))
    assert policy.readable("acme", "team-web") and not policy.readable("acme", "web")
    # Without templates an agent has no writes, whatever else its policy says.
    assert policy.write_templates() == []


def test_plans_are_state_files_beside_the_agents_file(tmp_path: Path) -> None:
    file = tmp_path / "agents.yaml"
    file.write_text(
        "agents:\n  bot:\n    connection: {identifier: acme, secret_env: ACME_OAT}\n"
        "    plans: [states/acme.yaml, /srv/other.yaml]\n"
    )
    agent = load_agent(file, "bot")
    assert agent.plans == {
        "states/acme.yaml": tmp_path / "states" / "acme.yaml",
        "/srv/other.yaml": Path("/srv/other.yaml"),
    }
    assert load_agent(EXAMPLE, "auditor").plans == {}
    assert load_agent(EXAMPLE, "team-bot").plans == {
        "plan/acme.yaml": EXAMPLE.parent / "plan" / "acme.yaml"
    }
    assert (EXAMPLE.parent / "plan" / "acme.yaml").is_file()


@pytest.mark.parametrize(
    ("plans", "message"),
    [
        (["a.yaml", "a.yaml"], "plans: a state file is listed twice"),
        (["-"], "plans: an entry is the path of a desired-state file"),
        ([" "], "plans: an entry is the path of a desired-state file"),
    ],
)
def test_bad_plans_are_named(plans: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_agents(_one(plans=plans))


def test_a_misspelt_plans_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"agents.bot.plan: unknown key"):
        parse_agents(_one(plan=["acme.yaml"]))
