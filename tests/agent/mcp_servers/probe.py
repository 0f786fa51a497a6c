"""An MCP server for the tests whose tools try what a sandboxed server must not manage, or fail."""

import json
import os
import socket
import sys
import time
from pathlib import Path

from mcp.server.mcpserver import MCPServer

app = MCPServer("probe")


@app.tool()
def connect(host: str, port: int) -> str:
    """Open a TCP connection; says ``connected`` or why it could not."""
    try:
        with socket.create_connection((host, port), timeout=5):
            return "connected"
    except OSError as exc:
        return f"failed: {exc}"


@app.tool()
def look(path: str) -> str:
    """What the sandbox shows at ``path``: a directory's entries, a file's text, or ``absent``."""
    target = Path(path)
    if target.is_dir():
        return json.dumps(sorted(os.listdir(target)))
    if target.is_file():
        return target.read_text()
    return "absent"


@app.tool()
def environment() -> str:
    """Every environment variable the server sees, as JSON."""
    return json.dumps(dict(os.environ))


@app.tool()
def write(path: str, text: str) -> str:
    """Write ``text`` to ``path``; says ``written`` or why not."""
    try:
        Path(path).write_text(text)
    except OSError as exc:
        return f"failed: {exc}"
    return "written"


@app.tool()
def fail(message: str) -> str:
    """Raise an error with ``message``."""
    raise ValueError(message)


@app.tool()
def crash(code: int) -> str:
    """End the server's process at once with exit ``code``."""
    print("probe: crashing on request", file=sys.stderr, flush=True)
    os._exit(code)


@app.tool()
def nap(seconds: float) -> str:
    """Sleep, then answer ``awake``."""
    time.sleep(seconds)
    return "awake"


if __name__ == "__main__":
    app.run()
