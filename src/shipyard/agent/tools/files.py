"""Reading tools (read_file, list_files, search) and the plumbing every file tool shares.

Nothing here opens a workspace file on the host: each call runs ``inside.py`` in the run's sandbox,
which sees the workspace at ``/workspace`` and nothing of the host's files, so a path or symlink
that points elsewhere finds nothing to read.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from shipyard.agent.messages import ToolSpec
from shipyard.agent.tools import inside
from shipyard.agent.tools.base import Capability, ToolContext, ToolResult
from shipyard.gates.base import TOOLS_PYTHON, tools_mount
from shipyard.sandbox.base import Mount

HELPER = "/opt/shipyard/agent/inside.py"
REQUEST = "/opt/shipyard/agent/request.json"
HELPER_SECONDS = 60.0
"""Longest a file operation may take (a search over a huge tree is the slow case)."""
READ_BYTES = 60_000
LIST_ENTRIES = 1000
SEARCH_MATCHES = 200
SEARCH_BYTES = 40_000


class BadRequest(Exception):
    """Arguments a tool cannot use; the message goes back to the model."""


def schema(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-schema object with the given properties, no others allowed."""
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
        "additionalProperties": False,
    }


class Args:
    """The model's arguments, checked against the tool's spec as they are read."""

    def __init__(self, spec: ToolSpec, arguments: dict[str, Any]) -> None:
        known = spec.parameters.get("properties", {})
        extra = sorted(set(arguments) - set(known))
        if extra:
            raise BadRequest(
                f"{spec.name} takes no argument {', '.join(extra)}; it takes {', '.join(known)}"
            )
        self.name, self.values = spec.name, arguments

    def text(self, key: str) -> str:
        value = self.values.get(key)
        if not isinstance(value, str):
            raise BadRequest(f"{self.name} needs {key} as a string")
        return value

    def optional(self, key: str) -> str | None:
        return None if self.values.get(key) is None else self.text(key)

    def whole(self, key: str) -> int | None:
        value = self.values.get(key)
        if value is None:
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise BadRequest(f"{self.name} needs {key} as a whole number, not {value!r}") from None
        if number < 1:
            raise BadRequest(f"{key} starts at 1, not {number}")
        return number

    def flag(self, key: str) -> bool:
        value = self.values.get(key, False)
        if not isinstance(value, bool):
            raise BadRequest(f"{self.name} needs {key} as true or false")
        return value

    def path(self, key: str) -> str:
        """A workspace-relative path, refused when it leads out of the workspace."""
        try:
            return inside.relative(self.text(key))
        except inside.Refused as exc:
            raise BadRequest(str(exc)) from None

    def optional_path(self, key: str) -> str | None:
        return None if self.values.get(key) is None else self.path(key)


class SandboxTool:
    """A tool whose ``run`` may raise ``BadRequest``; ``call`` turns that into an error result."""

    spec: ToolSpec
    capabilities: frozenset[Capability] = frozenset()
    egress: tuple[str, ...] = ()

    def call(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        try:
            return self.run(Args(self.spec, arguments), ctx)
        except BadRequest as exc:
            text = str(exc)
            return ToolResult(
                content=text if text.startswith("refused") else f"error: {text}", ok=False
            )

    def run(self, args: Args, ctx: ToolContext) -> ToolResult:
        raise NotImplementedError


def call_inside(ctx: ToolContext, request: dict[str, Any]) -> dict[str, Any]:
    """Runs ``inside.py`` on ``request`` in the sandbox; raises ``BadRequest`` with its refusal."""
    python, mounts = _python(ctx)
    seconds = min(ctx.limits.wall_seconds, HELPER_SECONDS)
    with tempfile.TemporaryDirectory(prefix="shipyard-tool-") as tmp:
        path = Path(tmp) / "request.json"
        path.write_text(json.dumps(request), encoding="utf-8")
        result = ctx.sandbox.run(
            [python, "-I", "-S", HELPER, REQUEST],
            workspace=ctx.workspace,
            env={},  # the sandbox's defaults: the helper needs nothing of the blueprint's
            mounts=(
                *mounts,
                Mount(source=Path(inside.__file__), target=HELPER),
                Mount(source=path, target=REQUEST),
            ),
            limits=replace(ctx.limits, wall_seconds=seconds),
            network=False,
        )
    if result.timed_out:
        raise BadRequest(f"{request['op']} took longer than {seconds:g}s; narrow it down")
    try:
        answer: dict[str, Any] = json.loads(result.stdout)
    except ValueError:
        raise BadRequest(
            f"{request['op']} failed in the sandbox (exit {result.exit_code}): "
            f"{result.stderr.strip()[-1000:]}"
        ) from None
    if not answer.get("ok"):
        raise BadRequest(str(answer.get("error")))
    return answer


def _python(ctx: ToolContext) -> tuple[str, tuple[Mount, ...]]:
    """The sandbox's own interpreter when it offers one, else shipyard's mounted environment."""
    interpreter = getattr(ctx.sandbox, "interpreter", None)
    if callable(interpreter):
        return str(interpreter()), ()
    return TOOLS_PYTHON, (tools_mount(),)


class ReadFile(SandboxTool):
    spec = ToolSpec(
        name="read_file",
        description="Read a text file of the repository, with line numbers. Large files are cut; "
        "read on with start_line.",
        parameters=schema(
            {"path": {"type": "string", "description": "relative to the repository root"}},
            {"start_line": {"type": "integer"}, "end_line": {"type": "integer"}},
        ),
    )
    capabilities = frozenset({Capability.READ})

    def run(self, args: Args, ctx: ToolContext) -> ToolResult:
        path = args.path("path")
        start, end = args.whole("start_line"), args.whole("end_line")
        if start and end and end < start:
            raise BadRequest(f"end_line {end} is before start_line {start}")
        got = call_inside(ctx, {"op": "read", "path": path, "start_line": start,
                                "end_line": end, "max_bytes": READ_BYTES})  # fmt: skip
        total = got["total_lines"]
        if total == 0:
            return ToolResult(content=f"{path} is empty.", data={"path": path})
        if got["start"] > total:
            return ToolResult(content=f"{path} has only {total} lines.", data={"path": path})
        head = f"{path} (lines {got['start']}-{got['end']} of {total})"
        body = "\n".join(x for x in (head, got["text"], got["note"]) if x)
        return ToolResult(content=body, data={"path": path, "lines": [got["start"], got["end"]]})


class ListFiles(SandboxTool):
    spec = ToolSpec(
        name="list_files",
        description="List the repository's files (those .gitignore does not exclude), optionally "
        "under a directory and matching a shell pattern (*.py, tests/*/test_*.py).",
        parameters=schema({}, {"path": {"type": "string"}, "pattern": {"type": "string"}}),
    )
    capabilities = frozenset({Capability.READ})

    def run(self, args: Args, ctx: ToolContext) -> ToolResult:
        path = args.optional_path("path") or "."
        pattern = args.optional("pattern")
        got = call_inside(ctx, {"op": "list", "path": path, "pattern": pattern,
                                "max_entries": LIST_ENTRIES})  # fmt: skip
        entries, total = got["entries"], got["total"]
        if not entries:
            return ToolResult(content="no files match.", data={"total": 0})
        note = f"\n[{total - len(entries)} more not shown; narrow path or pattern]"
        content = "\n".join(entries) + (note if total > len(entries) else "")
        return ToolResult(content=content, data={"total": total})


class Search(SandboxTool):
    spec = ToolSpec(
        name="search",
        description="Search file contents with ripgrep (a regular expression unless fixed_string); "
        "answers path:line:text. glob limits the files searched (*.py).",
        parameters=schema(
            {"pattern": {"type": "string"}},
            {
                "path": {"type": "string"},
                "glob": {"type": "string"},
                "fixed_string": {"type": "boolean"},
            },
        ),
    )
    capabilities = frozenset({Capability.READ})

    def run(self, args: Args, ctx: ToolContext) -> ToolResult:
        pattern = args.text("pattern")
        if not pattern:
            raise BadRequest("search needs a non-empty pattern")
        got = call_inside(ctx, {
            "op": "search", "pattern": pattern, "path": args.optional_path("path"),
            "glob": args.optional("glob"), "fixed_string": args.flag("fixed_string"),
            "max_matches": SEARCH_MATCHES, "max_bytes": SEARCH_BYTES,
        })  # fmt: skip
        matches = got["matches"]
        if not matches:
            return ToolResult(content="no matches.", data={"matches": 0})
        note = "\n[more matches not shown; narrow the pattern, path or glob]" if got["more"] else ""
        return ToolResult(
            content="\n".join(matches) + note,
            data={"matches": len(matches), "more": got["more"]},
        )
