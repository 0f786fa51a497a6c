"""What a tool is: a spec the model sees, the capabilities it needs, and a call run in the sandbox.

Blueprints grant tools by name; the toolshed refuses every other name the model asks for. Tools
that touch files or run programs do so inside the run's sandbox (DESIGN invariant 1); none can
merge, push, delete branches or reach outside the workspace (invariant 7).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from shipyard.agent.messages import ToolCall, ToolSpec
from shipyard.policy.guardrails import PatternList
from shipyard.sandbox.base import Limits, Sandbox


class Capability(StrEnum):
    """What a tool may do. A blueprint's grant is checked against these, never the other way."""

    READ = "read"
    """Read files of the workspace."""
    WRITE = "write"
    """Change files of the workspace."""
    EXECUTE = "execute"
    """Run programs in the sandbox."""
    NETWORK = "network"
    """Reach the named hosts (``Tool.egress``) through the egress proxy."""


@dataclass(frozen=True, kw_only=True)
class ToolResult:
    """What a call gave: ``content`` goes back to the model; ``data`` is only recorded."""

    content: str
    ok: bool = True
    finished: bool = False
    """Set by ``finish``: the agent says it is done."""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class PathGuard:
    """The policy's forbidden and review paths, as the edit tools enforce and the prompt states."""

    forbidden: PatternList = field(default_factory=PatternList)
    review: PatternList = field(default_factory=PatternList)

    def refusal(self, path: str) -> str | None:
        """Why writing ``path`` is refused, or None when it is allowed."""
        pattern = self.forbidden.match(path)
        if pattern is None:
            return None
        return (
            f"refused: {path} matches the forbidden pattern {pattern!r}; this run may not change "
            "it, and a change touching it is halted by policy. Leave it as it is."
        )


@dataclass(kw_only=True)
class ToolContext:
    """What a tool call may use: the run's workspace, its sandbox and the run's services."""

    run_id: str
    workspace: Path
    """Host path of the workspace; tools reach it only through ``sandbox`` at ``/workspace``."""
    sandbox: Sandbox
    guard: PathGuard = field(default_factory=PathGuard)
    limits: Limits = field(default_factory=lambda: Limits(wall_seconds=120.0))
    """Limits of one sandboxed command (``run_command`` may ask for less time, never more)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Variables every sandboxed command sees (PATH, HOME...)."""
    recall: Callable[[str], str] | None = None
    """The transcript's originals by reference id (``m12``, ``m3-m9``)."""
    run_tests: Callable[[Sequence[str]], str] | None = None
    """The harness's test run on the workspace's current state, as a summary."""


class Tool(Protocol):
    """One tool. ``call`` never raises for a bad request: it answers with what went wrong."""

    spec: ToolSpec
    capabilities: frozenset[Capability]
    egress: tuple[str, ...]
    """Hosts (``host:port``) reachable through the proxy; only with ``Capability.NETWORK``."""

    def call(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult: ...


class Toolshed:
    """Every tool by name; ``grant`` hands a blueprint the subset it names and nothing else."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self.tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.spec.name in self.tools:
                raise ValueError(f"two tools are named {tool.spec.name!r}")
            self.tools[tool.spec.name] = tool

    def grant(self, names: Sequence[str]) -> Granted:
        unknown = [n for n in names if n not in self.tools]
        if unknown:
            known = ", ".join(sorted(self.tools))
            raise KeyError(f"no tool named {', '.join(unknown)}; the toolshed has {known}")
        return Granted({n: self.tools[n] for n in names})


class Granted:
    """The tools one agent may use."""

    def __init__(self, tools: Mapping[str, Tool]) -> None:
        self.tools = dict(tools)

    @property
    def specs(self) -> list[ToolSpec]:
        return [t.spec for t in self.tools.values()]

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset(c for t in self.tools.values() for c in t.capabilities)

    def call(self, call: ToolCall, ctx: ToolContext) -> ToolResult:
        """Run a call the model made; a tool it was not granted is refused with the list it has."""
        tool = self.tools.get(call.name)
        if tool is None:
            granted = ", ".join(sorted(self.tools))
            return ToolResult(
                content=f"error: there is no tool {call.name!r} here; the tools are {granted}.",
                ok=False,
            )
        if (
            call.raw_arguments
            and not call.arguments
            and call.raw_arguments.strip() not in ("{}", "")
        ):
            return ToolResult(
                content=f"error: the arguments of {call.name} are not a JSON object: "
                f"{call.raw_arguments[:200]}",
                ok=False,
            )
        return tool.call(call.arguments, ctx)
