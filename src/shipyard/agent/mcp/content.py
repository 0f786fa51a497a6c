"""What an MCP tool call answered, as the model sees it: its text, other content named, not inlined."""

from __future__ import annotations

import json

import mcp_types

from shipyard.agent.tools.base import ToolResult

OUTPUT_CHARS = 30_000
"""Most of a tool's answer the model sees."""


def tool_result(result: mcp_types.CallToolResult) -> ToolResult:
    """The call's text for the model; other content is named, not inlined."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        elif isinstance(block, mcp_types.EmbeddedResource) and isinstance(
            block.resource, mcp_types.TextResourceContents
        ):
            parts.append(block.resource.text)
        else:
            parts.append(f"[{block.type} content left out]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    text = "\n".join(parts)
    if len(text) > OUTPUT_CHARS:
        text = text[:OUTPUT_CHARS] + f"\n[... {len(text) - OUTPUT_CHARS} characters cut ...]"
    return ToolResult(content=text, ok=not result.is_error, data={"is_error": result.is_error})
