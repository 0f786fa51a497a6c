"""Tools from MCP servers a repository configures (``[agent.mcp.<name>]``), run inside the sandbox.

Each server is started under bubblewrap for the agent's work (no network, the workspace mounted,
shipyard's tools environment read-only at ``/opt/shipyard/tools``) and spoken to over stdio with the
``mcp`` SDK. Its tools join the agent's grant as ``<server>__<tool>`` under the capabilities its config
declares. A server that cannot start stops the run with ``McpServerError``; a call that fails or
hangs, or a server that dies, gives the model an error result.
"""

from __future__ import annotations

from shipyard.agent.mcp.server import McpServer, McpServerError
from shipyard.agent.mcp.tools import McpServers, McpTool, server_tools

__all__ = ["McpServer", "McpServerError", "McpServers", "McpTool", "server_tools"]
