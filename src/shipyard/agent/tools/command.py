"""Running tools (run_command, run_tests) and finish.

``run_command`` is a shell in the sandbox: no network, the workspace writable but its ``.git``
read-only, so nothing it runs can commit, push, delete branches or reach the host. Its output is
cut from the front: the end of a build or test log is where the error is.
"""

from __future__ import annotations

from dataclasses import replace

from shipyard.agent.messages import ToolSpec
from shipyard.agent.tools import inside
from shipyard.agent.tools.base import Capability, ToolContext, ToolResult
from shipyard.agent.tools.files import Args, BadRequest, SandboxTool, schema

OUTPUT_CHARS = 12_000
"""Most of a command's output the model sees (stdout and stderr together)."""


def tail(text: str, limit: int) -> str:
    """The last ``limit`` characters of ``text``, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"[... {len(text) - limit} characters cut ...]\n{text[-limit:]}"


def shown_output(stdout: str, stderr: str, limit: int = OUTPUT_CHARS) -> str:
    """Both streams, stderr kept in full when short, each cut from the front to fit ``limit``."""
    err_room = min(len(stderr), limit // 3)
    out_room = limit - err_room
    err_room = limit - min(len(stdout), out_room)
    parts = []
    if stdout:
        parts.append(tail(stdout, out_room))
    if stderr:
        parts.append("[stderr]\n" + tail(stderr, err_room))
    return "\n".join(parts)


class RunCommand(SandboxTool):
    spec = ToolSpec(
        name="run_command",
        description="Run a shell command (/bin/sh -c) in the repository's root, in the sandbox: "
        "no network, .git read-only. Answers the exit code and the end of the output.",
        parameters=schema(
            {"command": {"type": "string"}},
            {"timeout_seconds": {"type": "number", "description": "at most the run's limit"}},
        ),
    )
    capabilities = frozenset({Capability.EXECUTE})

    def run(self, args: Args, ctx: ToolContext) -> ToolResult:
        command = args.text("command")
        ceiling = ctx.limits.wall_seconds
        asked = args.values.get("timeout_seconds")
        try:
            timeout = ceiling if asked is None else float(asked)
        except (TypeError, ValueError):
            raise BadRequest(f"timeout_seconds must be a number, not {asked!r}") from None
        if timeout <= 0:
            raise BadRequest("timeout_seconds must be more than 0")
        timeout = min(timeout, ceiling)
        result = ctx.sandbox.run(
            ["/bin/sh", "-c", command],
            workspace=ctx.workspace,
            env=ctx.env,
            limits=replace(ctx.limits, wall_seconds=timeout),
            network=False,
        )
        if result.timed_out:
            head = f"killed after {timeout:g}s (timeout)"
        else:
            head = f"exit code {result.exit_code}"
        notes = [v for v in result.violations if not v.startswith("wall")]
        if result.output_truncated:
            notes.append(f"output beyond {ctx.limits.output_bytes} bytes per stream was dropped")
        body = shown_output(result.stdout, result.stderr)
        content = "\n".join([head, *(f"[{n}]" for n in notes), *([body] if body else [])])
        return ToolResult(
            content=content,
            ok=result.ok,
            data={
                "exit_code": result.exit_code,
                "timed_out": result.timed_out,
                "seconds": result.duration_seconds,
                "violations": list(result.violations),
            },
        )


class RunTests(SandboxTool):
    spec = ToolSpec(
        name="run_tests",
        description="Run the repository's tests as the harness does (in a sandbox) and answer "
        "a summary; paths limits them to some test files or directories.",
        parameters=schema({}, {"paths": {"type": "array", "items": {"type": "string"}}}),
    )
    capabilities = frozenset({Capability.EXECUTE})

    def run(self, args: Args, ctx: ToolContext) -> ToolResult:
        raw = args.values.get("paths") or []
        if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
            raise BadRequest("paths must be a list of strings")
        try:
            paths = [inside.relative(p) for p in raw]
        except inside.Refused as exc:
            raise BadRequest(str(exc)) from None
        if ctx.run_tests is None:
            return ToolResult(
                content="tests are not available in this blueprint; use run_command to check "
                "your change instead.",
                ok=False,
            )
        return ToolResult(content=ctx.run_tests(paths), data={"paths": paths})


class Finish(SandboxTool):
    spec = ToolSpec(
        name="finish",
        description="Say the task is done (or cannot be done) and why. Nothing runs after this.",
        parameters=schema({"summary": {"type": "string"}}),
    )

    def run(self, args: Args, ctx: ToolContext) -> ToolResult:
        summary = args.text("summary")
        return ToolResult(content="finished.", finished=True, data={"summary": summary})
