"""The agent gateway (``sink mcp``): Docker Hub tools for AI agents, each agent held to its own
policy, every call checked and logged, every write sent through the same send core as ``sink run``.

- :mod:`sink.agent.agents`: the agents file (who each agent signs in as, its policy and budget);
- :mod:`sink.agent.tools`: the read tools and one write tool per endpoint template (pure);
- :mod:`sink.agent.confirm`: two-step writes, single-use expiring confirmation tokens;
- :mod:`sink.agent.gateway`: the calls themselves (reads, prepared and confirmed writes);
- :mod:`sink.agent.audit`: their lines in the audit log;
- :mod:`sink.agent.server`: the MCP server over stdio (needs the ``mcp`` extra).
"""
