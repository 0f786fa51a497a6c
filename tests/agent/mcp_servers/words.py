"""A small MCP server for the tests: counts the words and lines of a workspace file."""

from pathlib import Path

from mcp.server.mcpserver import MCPServer

app = MCPServer("words")


@app.tool()
def word_count(path: str) -> str:
    """How many words the file at ``path`` (relative to the workspace) holds."""
    return f"{path}: {len(Path(path).read_text().split())} words"


@app.tool()
def line_count(path: str) -> str:
    """How many lines the file at ``path`` holds."""
    return f"{path}: {len(Path(path).read_text().splitlines())} lines"


if __name__ == "__main__":
    app.run()
