"""An MCP server for the tests that cannot start: it exits before speaking, saying why on stderr."""

import sys

print("broken: cannot open /workspace/missing-index.db", file=sys.stderr)
sys.exit(3)
