"""MCP servers' tools as toolshed tools, and the set of servers one agent's work starts and stops.

A server's tools carry the capabilities its config declares, and join an agent's grant only when the
blueprint's own tools already hold every one of them: a read-only blueprint never gains a server
that writes. ``write`` is also the only way a server gets a writable workspace (it is mounted
read-only otherwise). The forbidden-path guard of the edit tools cannot see which files a server
writes; the policy still halts any change that touches a forbidden path (DESIGN invariant 5).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.agent.mcp.server import McpServer, McpServerError
from shipyard.agent.messages import ToolSpec
from shipyard.agent.tools.base import Capability, Granted, ToolContext, ToolResult
from shipyard.config import McpServerConfig
from shipyard.sandbox.bwrap import BwrapSandbox

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class McpTool:
    """One tool of a running MCP server, named ``<server>__<tool>``."""

    spec: ToolSpec
    capabilities: frozenset[Capability]
    server: McpServer
    remote: str
    """The tool's name on its server."""
    egress: tuple[str, ...] = field(default=())

    def call(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        return self.server.call(self.remote, arguments)


def server_tools(server: McpServer) -> list[McpTool]:
    """The tools a started server offers, as the model will see them."""
    capabilities = frozenset(Capability(c) for c in server.config.capabilities)
    tools = []
    for tool in server.tools:
        about = tool.description or tool.title or tool.name
        spec = ToolSpec(
            name=f"{server.name}__{tool.name}",
            description=f"{about} (from the MCP server {server.name!r}, in the sandbox)",
            parameters=dict(tool.input_schema),
        )
        tools.append(McpTool(spec=spec, capabilities=capabilities, server=server, remote=tool.name))
    return tools


class McpServers:
    """The configured servers a blueprint's grant admits, started together; ``close`` ends them all.

    After ``close`` each server starts again on its next call, so a blueprint may close them
    whenever the agent pauses (gates, lint) and keep the same tools for its next pass.
    """

    def __init__(self, servers: Iterable[McpServer] = (), skipped: Iterable[str] = ()) -> None:
        self.servers = list(servers)
        self.skipped = list(skipped)
        """Configured servers left out: their capabilities exceed the blueprint's grant."""
        self.tools = [t for s in self.servers for t in server_tools(s)]

    @classmethod
    def start(
        cls,
        configs: Mapping[str, McpServerConfig],
        *,
        workspace: Path,
        allowed: frozenset[Capability],
        sandbox: BwrapSandbox | None = None,
    ) -> McpServers:
        """Start every server whose capabilities ``allowed`` covers; raises ``McpServerError``
        (after stopping the ones already started) when one cannot start."""
        admitted, skipped = [], []
        for name, config in configs.items():
            wanted = frozenset(Capability(c) for c in config.capabilities)
            if wanted <= allowed:
                admitted.append(McpServer(name, config, workspace=workspace, sandbox=sandbox))
            else:
                skipped.append(name)
                log.info(
                    "MCP server %s needs %s, beyond this grant", name, sorted(wanted - allowed)
                )
        started: list[McpServer] = []
        try:
            for server in admitted:
                server.start()
                started.append(server)
        except McpServerError:
            for server in started:
                server.close()
            raise
        return cls(started, skipped)

    def grant(self, granted: Granted) -> Granted:
        """``granted`` with the servers' tools added."""
        return Granted({**granted.tools, **{t.spec.name: t for t in self.tools}})

    def close(self) -> None:
        for server in self.servers:
            server.close()

    def __enter__(self) -> McpServers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
