"""Writing tools (edit_file, write_file, apply_patch): each target is checked against the run's
forbidden paths before anything runs, then changed by ``inside.py`` or ``git apply`` in the sandbox.

The guard here is the early, explained refusal; the policy still halts any change that touches a
forbidden path, whichever tool (``run_command`` included) made it.
"""

from __future__ import annotations

from dataclasses import dataclass

from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet

from shipyard.agent.messages import ToolSpec
from shipyard.agent.tools import inside
from shipyard.agent.tools.base import Capability, ToolContext, ToolResult
from shipyard.agent.tools.files import Args, BadRequest, SandboxTool, call_inside, schema

WRITE = frozenset({Capability.READ, Capability.WRITE})


def check_writable(path: str, ctx: ToolContext) -> None:
    """Refuses a workspace-relative path the run may not write, with the reason."""
    if inside.in_git_dir(path):
        raise BadRequest(f"refused: {path} is inside .git; the repository's history is not yours")
    refusal = ctx.guard.refusal(path)
    if refusal is not None:
        raise BadRequest(refusal)


class EditFile(SandboxTool):
    spec = ToolSpec(
        name="edit_file",
        description="Replace the exact text old with new in one file. old must match exactly once "
        "(whitespace included) unless replace_all is true. Read the file first.",
        parameters=schema(
            {"path": {"type": "string"}, "old": {"type": "string"}, "new": {"type": "string"}},
            {"replace_all": {"type": "boolean"}},
        ),
    )
    capabilities = WRITE

    def run(self, args: Args, ctx: ToolContext) -> ToolResult:
        path, old, new = args.path("path"), args.text("old"), args.text("new")
        replace_all = args.flag("replace_all")
        check_writable(path, ctx)
        if not old:
            raise BadRequest("old is empty; to create or replace a whole file use write_file")
        if old == new:
            raise BadRequest("old and new are the same; nothing would change")
        got = call_inside(
            ctx, {"op": "edit", "path": path, "old": old, "new": new, "replace_all": replace_all}
        )
        n = got["replacements"]
        return ToolResult(
            content=f"edited {path} ({n} replacement{'s' if n > 1 else ''}):\n{got['snippet']}",
            data={"paths": [path], "replacements": n},
        )


class WriteFile(SandboxTool):
    spec = ToolSpec(
        name="write_file",
        description="Create a file, or overwrite it whole, with content (parent directories are "
        "created). Prefer edit_file for changing part of an existing file.",
        parameters=schema({"path": {"type": "string"}, "content": {"type": "string"}}),
    )
    capabilities = WRITE

    def run(self, args: Args, ctx: ToolContext) -> ToolResult:
        path, content = args.path("path"), args.text("content")
        check_writable(path, ctx)
        got = call_inside(ctx, {"op": "write", "path": path, "content": content})
        verb = "created" if got["created"] else "overwrote"
        return ToolResult(
            content=f"{verb} {path} ({got['lines']} lines)",
            data={"paths": [path], "created": got["created"]},
        )


@dataclass(frozen=True)
class FileChange:
    """One file of a patch: its path before and after (None for a created or deleted file)."""

    old: str | None
    new: str | None

    def describe(self) -> str:
        if self.old is None:
            return f"{self.new} (new)"
        if self.new is None:
            return f"{self.old} (deleted)"
        return self.new if self.old == self.new else f"{self.new} (renamed from {self.old})"


def patch_changes(patch: str) -> tuple[int, list[FileChange]]:
    """The ``-p`` strip level and each file a unified diff changes, renames with both names."""
    try:
        files = list(PatchSet(patch))
    except UnidiffParseError as exc:
        raise BadRequest(f"the patch is not a unified diff: {exc}") from None
    if not files:
        raise BadRequest("the patch has no file diffs (--- a/PATH / +++ b/PATH / @@ hunks)")
    pairs = [(f.source_file or "/dev/null", f.target_file or "/dev/null") for f in files]
    prefixed = all(
        (s == "/dev/null" or s.startswith("a/")) and (t == "/dev/null" or t.startswith("b/"))
        for s, t in pairs
    )
    strip = 1 if prefixed else 0

    def name(raw: str) -> str | None:
        if raw == "/dev/null":
            return None
        try:
            return inside.relative(raw[2:] if strip else raw)
        except inside.Refused as exc:
            raise BadRequest(str(exc)) from None

    return strip, [FileChange(old=name(s), new=name(t)) for s, t in pairs]


class ApplyPatch(SandboxTool):
    spec = ToolSpec(
        name="apply_patch",
        description="Apply a unified diff (as git diff writes it) to the repository. It applies "
        "whole or not at all; a hunk that does not match changes nothing.",
        parameters=schema({"patch": {"type": "string"}}),
    )
    capabilities = WRITE

    def run(self, args: Args, ctx: ToolContext) -> ToolResult:
        patch = args.text("patch")
        if not patch.endswith("\n"):
            patch += "\n"
        strip, changes = patch_changes(patch)
        paths = sorted({p for c in changes for p in (c.old, c.new) if p is not None})
        for path in paths:
            check_writable(path, ctx)
        call_inside(ctx, {"op": "patch", "patch": patch, "strip": strip, "paths": paths})
        return ToolResult(
            content="applied: " + ", ".join(c.describe() for c in changes),
            data={"paths": paths},
        )
